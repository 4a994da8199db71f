"""Any lmplug scorer inside decoders people already run: pyctcdecode and torchaudio.

- :class:`PyctcdecodeLM` is a pyctcdecode ``AbstractLanguageModel``: pass it to
  ``pyctcdecode.BeamSearchDecoderCTC`` (and through it to Hugging Face's
  ``Wav2Vec2ProcessorWithLM``); :func:`build_pyctcdecode_decoder` does both steps.
- :class:`TorchaudioLM` is a torchaudio ``CTCDecoderLM`` for
  ``torchaudio.models.decoder.ctc_decoder(lm=...)``: word level with a lexicon (the decoder's
  word indices name words), or token level without one (indices name the decoder's tokens, which
  must be the scorer's sentencepiece pieces).

These decoders call the LM one hypothesis at a time; each adapter caches every (state, word)
it has scored, but cannot batch. For batched decoding use :func:`lmplug.ctc.build_ctc_decoder`.
pyctcdecode applies its ``alpha``/``beta`` inside the LM object, so the adapter does too
(``alpha * log P + beta`` per word); torchaudio applies ``lm_weight`` itself, so
:class:`TorchaudioLM` returns plain natural-log probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lmplug.errors import LmplugError
from lmplug.scorer import Scorer, words_signature


def _pyctcdecode():
    try:
        import pyctcdecode
        from pyctcdecode.language_model import AbstractLanguageModel
    except ImportError:
        raise LmplugError(
            "the pyctcdecode adapter needs pyctcdecode: expected it installed, found none; "
            "run `pip install pyctcdecode==0.5.0` (or `pip install 'lmplug[ctc]'`)"
        ) from None
    return pyctcdecode, AbstractLanguageModel


def _torchaudio_decoder():
    try:
        from torchaudio.models.decoder import (  # noqa: F401
            CTCDecoderLM,
            CTCDecoderLMState,
            ctc_decoder,
        )
    except (ImportError, OSError) as e:
        raise LmplugError(
            f"the torchaudio adapter needs torchaudio's CTC decoder: expected it importable, found {e}; "
            "run `pip install torchaudio==2.11.1 flashlight-text==0.0.7`"
        ) from None
    return CTCDecoderLM, CTCDecoderLMState


# adapter classes subclass optional dependencies, so they are made at first use
_CLASSES: dict[str, type] = {}


def _make_pyctcdecode_class():
    if "pyctcdecode" in _CLASSES:
        return _CLASSES["pyctcdecode"]
    Base = _pyctcdecode()[1]

    class PyctcdecodeLMImpl(Base):  # type: ignore[misc, valid-type]
        """See :class:`PyctcdecodeLM`."""

        def __init__(self, scorer: Scorer, alpha: float = 0.5, beta: float = 1.0,
                     unk_score_offset: float = -10.0, score_boundary: bool = True) -> None:
            if not isinstance(scorer, Scorer):
                raise LmplugError(f"expected an lmplug Scorer, found {type(scorer).__name__}")
            self.scorer = scorer
            self.alpha = float(alpha)
            self.beta = float(beta)
            self.unk_score_offset = float(unk_score_offset)
            self.score_boundary = score_boundary
            words = scorer.known_words()
            self._prefixes = {w[:i] for w in words for i in range(1, len(w) + 1)} if words else None
            self._cache: dict[tuple[int, str], tuple[float, Any]] = {}
            self._eos: dict[int, float] = {}
            self._keep: list[Any] = []  # keep states alive: cache keys use id()

        @property
        def order(self) -> int:
            # pyctcdecode's prune_history keeps order-1 words of history; a neural LM has no limit
            return int(getattr(self.scorer, "order", 10_000))

        def get_start_state(self) -> Any:
            """A new utterance (pyctcdecode asks once per decode): the last one's cached scores and
            states are dropped (they pin the Transformer's KV caches; memory would grow with
            every decode). A start state passed as pyctcdecode's ``lm_start_state`` is not one."""
            self._cache.clear()
            self._eos.clear()
            s = self.scorer.init_state(1)[0]
            self._keep = [s]
            return s

        def score_partial_token(self, partial_token: str) -> float:
            if self._prefixes is None or partial_token in self._prefixes:
                return 0.0
            score = self.unk_score_offset
            return score * len(partial_token) / 6 if len(partial_token) > 6 else score

        def score(self, prev_state: Any, word: str, is_last_word: bool = False) -> tuple[float, Any]:
            key = (id(prev_state), word)
            # "": pyctcdecode's last call when the last word is already closed (or nothing was said):
            # KenLM scores it as pyctcdecode's own wrapper does (<unk>), a Transformer as no word
            empty = not word and not self.scorer.scores_empty_word
            hit = (0.0, prev_state) if empty else self._cache.get(key)
            if hit is None:
                s, new = self.scorer.score_words([prev_state], [word])
                hit = (float(s[0]), new[0])
                self._cache[key] = hit
                self._keep.append(new[0])
            raw, state = hit
            if is_last_word and self.score_boundary:  # log P(</s> | history): pyctcdecode's lm_score_boundary
                eos = self._eos.get(id(state))
                if eos is None:
                    eos = self._eos[id(state)] = float(self.scorer.final_score([state])[0])
                raw += eos
            return self.alpha * raw + self.beta, state

        def reset_params(self, **params: Any) -> None:
            for k in ("alpha", "beta", "unk_score_offset"):
                if k in params:
                    setattr(self, k, float(params[k]))
            if "score_boundary" in params:
                if not isinstance(params["score_boundary"], bool):
                    raise LmplugError(f"score_boundary: expected a bool, found {params['score_boundary']!r}")
                self.score_boundary = params["score_boundary"]

        def save_to_dir(self, filepath: str) -> None:
            raise LmplugError("PyctcdecodeLM is not serializable by pyctcdecode; save the lmplug checkpoint instead")

        @classmethod
        def load_from_dir(cls, filepath: str, unigram_encoding: str | None = None):
            raise LmplugError("PyctcdecodeLM cannot be loaded by pyctcdecode; use lmplug.load_lm and wrap it")

    _CLASSES["pyctcdecode"] = PyctcdecodeLMImpl
    return PyctcdecodeLMImpl


def PyctcdecodeLM(scorer: Scorer, alpha: float = 0.5, beta: float = 1.0, unk_score_offset: float = -10.0):
    """A pyctcdecode ``AbstractLanguageModel`` scoring words with ``scorer``.

    Per completed word it returns ``alpha * log P(word | history) + beta`` (plus ``log P(</s>)``
    inside the weighted term for the last word unless ``reset_params(score_boundary=False)``, i.e.
    pyctcdecode's ``lm_score_boundary=False``), as pyctcdecode's own KenLM wrapper does. The empty
    word pyctcdecode passes at the end of an utterance whose last word is closed: a
    scorer with ``scores_empty_word`` (KenLM) scores it as that wrapper does (``<unk>``), any other
    as no word (the beta every final hypothesis gets, and ``</s>``). Partial words that start no word of
    ``scorer.known_words()`` get ``unk_score_offset``. The history always starts at ``<s>`` (a
    Transformer has no null context).

    Args:
        scorer: any lmplug scorer, e.g. ``TransformerScorer(load_lm(dir))``.
        alpha: LM weight.
        beta: word insertion bonus.
        unk_score_offset: penalty for partial words outside the scorer's vocabulary.
    """
    return _make_pyctcdecode_class()(scorer, alpha=alpha, beta=beta, unk_score_offset=unk_score_offset)


def build_pyctcdecode_decoder(labels: Sequence[str], scorer: Scorer, alpha: float = 0.5, beta: float = 1.0):
    """A ``pyctcdecode.BeamSearchDecoderCTC`` over ``labels`` that fuses ``scorer``."""
    pyctcdecode, _ = _pyctcdecode()
    from pyctcdecode.alphabet import Alphabet

    return pyctcdecode.BeamSearchDecoderCTC(Alphabet.build_alphabet(list(labels)), PyctcdecodeLM(scorer, alpha, beta))


def _make_torchaudio_class():
    if "torchaudio" in _CLASSES:
        return _CLASSES["torchaudio"]
    CTCDecoderLM, CTCDecoderLMState = _torchaudio_decoder()

    class TorchaudioLMImpl(CTCDecoderLM):  # type: ignore[misc, valid-type]
        """See :class:`TorchaudioLM`."""

        def __init__(self, scorer: Scorer, words: Sequence[str] | None = None,
                     tokens: Sequence[str] | None = None, unk_word: str = "<unk>",
                     non_pieces: Sequence[str] = ("-", "|")) -> None:
            CTCDecoderLM.__init__(self)
            if (words is None) == (tokens is None):
                raise LmplugError("TorchaudioLM: expected exactly one of words= (lexicon decoding) or tokens= "
                                  f"(lexicon-free), found words={words is not None} tokens={tokens is not None}")
            self.scorer = scorer
            self.words = list(words) if words is not None else None
            self.unk_word = unk_word
            self.token_ids = None
            if tokens is not None:
                if not scorer.token_level or not hasattr(scorer, "tokenizer"):
                    raise LmplugError(f"lexicon-free decoding needs a token-level scorer, found {type(scorer).__name__}")
                tok = scorer.tokenizer
                unk = tok.piece_to_id("<unk>")
                # -1: a token that is no piece (the blank, the silence): scored 0, the history kept
                self.token_ids = [-1 if t in non_pieces else tok.piece_to_id(t) for t in tokens]
                bad = [t for t, i in zip(tokens, self.token_ids) if i == unk and t != "<unk>"]
                if bad:
                    raise LmplugError(f"TorchaudioLM: expected tokens that are pieces of the scorer's tokenizer "
                                      f"(or one of non_pieces={list(non_pieces)}), found {bad[:5]}")
            self.states: dict[Any, Any] = {}
            self.scores: dict[Any, float] = {}

        def start(self, start_with_nothing: bool = False):
            self.states.clear()  # a new utterance: let the last one's states (KV caches) go
            self.scores.clear()
            state = CTCDecoderLMState()
            self.states[state] = self.scorer.init_state(1)[0]
            return state

        def score(self, state, usr_token_idx: int):
            out = state.child(usr_token_idx)
            if out not in self.states:
                prev = self.states[state]
                if self.words is not None:
                    word = self.words[usr_token_idx] if 0 <= usr_token_idx < len(self.words) else self.unk_word
                    s, new = self.scorer.score_words([prev], [word])
                    self.scores[out], self.states[out] = float(s[0]), new[0]
                elif self.token_ids[usr_token_idx] < 0:  # no piece: nothing said
                    self.scores[out], self.states[out] = 0.0, prev
                else:
                    tid = self.token_ids[usr_token_idx]
                    self.scores[out] = float(self.scorer.batch_score([prev])[0, tid])
                    self.states[out] = self.scorer.advance([prev], [[tid]])[0]
            return out, self.scores[out]

        def finish(self, state):
            return state, float(self.scorer.final_score([self.states[state]])[0])

    _CLASSES["torchaudio"] = TorchaudioLMImpl
    return TorchaudioLMImpl


def TorchaudioLM(scorer: Scorer, words: Sequence[str] | None = None, tokens: Sequence[str] | None = None,
                 unk_word: str = "<unk>", non_pieces: Sequence[str] = ("-", "|")):
    """A torchaudio ``CTCDecoderLM`` scoring with ``scorer`` (natural-log; torchaudio weights it).

    Args:
        scorer: any lmplug scorer.
        words: lexicon decoding: the decoder's word list in index order. Pass ``ctc_decoder`` an
            ``lm_dict`` file with these words one per line, in this order (without one the
            decoder numbers the lexicon's words in an order of its own).
        tokens: lexicon-free decoding: the decoder's tokens, which must be the scorer's pieces
            (a token that is none is an ``LmplugError``), but for ``non_pieces``.
        unk_word: the word scored for indices outside ``words``.
        non_pieces: lexicon-free: tokens that are no piece (torchaudio's default blank and
            silence tokens): the LM scores them 0 and keeps its history.
    """
    return _make_torchaudio_class()(scorer, words=words, tokens=tokens, unk_word=unk_word, non_pieces=non_pieces)


class _Signed:
    """Stands in for a scorer where only a signature is asked for (tuning reports)."""

    def __init__(self, signature: str) -> None:
        self._signature = signature

    def signature(self) -> str:
        return self._signature


class PyctcdecodeKenLMDecoder:
    """pyctcdecode with its own KenLM language model, behind the ``CTCDecoder`` surface.

    The baseline of the speech recipe and ``lmplug decode --backend pyctcdecode``: same
    ``set_weights({"kenlm": alpha, "words": beta})`` and ``decode(emissions, lengths)`` as
    :class:`lmplug.ctc.CTCDecoder`, so the same tuner and CLI drive both. pyctcdecode decodes one
    utterance at a time in Python; its ``alpha`` weighs natural-log LM scores like ours.
    """

    mode = "word"
    history_words = None  # pyctcdecode recombines by its own prune_history
    lookahead_scorers: list[str] = []
    partial_oov_logp = -10.0  # pyctcdecode's own unk_score_offset (its default)

    def __init__(self, labels: Sequence[str], kenlm_path: str, unigrams: Sequence[str] | None,
                 weights: dict[str, float], beam_size: int = 16, nbest: int = 1, token_min_logp: float = -5.0) -> None:
        import logging

        pyctcdecode, _ = _pyctcdecode()
        logging.getLogger("pyctcdecode").setLevel(logging.ERROR)
        self._decoder = pyctcdecode.build_ctcdecoder(list(labels), str(kenlm_path),
                                                     unigrams=list(unigrams) if unigrams else None)
        words = f"|unigrams:{words_signature(unigrams)}" if unigrams else ""
        self.scorers = {"kenlm": _Signed(f"pyctcdecode:{pyctcdecode.__version__ if hasattr(pyctcdecode, '__version__') else '0.5'}"
                                         f"|kenlm:{kenlm_path}{words}")}
        self.beam_size, self.nbest, self.token_min_logp = beam_size, nbest, token_min_logp
        self.n_labels = len(labels)
        self.set_weights(weights)

    def set_weights(self, weights: dict[str, float]) -> None:
        unknown = set(weights) - {"kenlm", "words"}
        if unknown or "kenlm" not in weights:
            raise LmplugError(f"expected weights {{'kenlm': alpha, 'words': beta}}, found {sorted(weights)}")
        self.weights = {"kenlm": float(weights["kenlm"]), "words": float(weights.get("words", 0.0))}
        self._decoder.reset_params(alpha=self.weights["kenlm"], beta=self.weights["words"])

    def prepare(self, emissions, lengths=None, logits: bool = False):
        """The validated float32 log-probs and lengths, as :meth:`lmplug.ctc.CTCDecoder.prepare`."""
        from lmplug.ctc import prepare_emissions

        return prepare_emissions(emissions, lengths, logits, self.n_labels)

    def decode(self, emissions, lengths=None, logits: bool = False) -> list:
        """(B, T, V) log-probs (numpy or torch) + lengths -> per utterance, n-best ``CTCHypothesis`` lists."""
        from lmplug.rescore import as_hypothesis

        x, lens = self.prepare(emissions, lengths, logits)
        x = x.cpu().numpy() if hasattr(x, "cpu") else x
        out = []
        for b in range(len(x)):
            e = x[b, : int(lens[b])]
            beams = self._decoder.decode_beams(e, beam_width=self.beam_size, token_min_logp=self.token_min_logp)
            out.append([as_hypothesis(bm) for bm in beams[: self.nbest]])
        return out
