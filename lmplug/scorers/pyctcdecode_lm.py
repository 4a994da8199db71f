"""Any lmplug scorer inside decoders people already run: pyctcdecode and torchaudio.

- :class:`PyctcdecodeLM` is a pyctcdecode ``AbstractLanguageModel``: pass it to
  ``pyctcdecode.BeamSearchDecoderCTC`` (and through it to Hugging Face's
  ``Wav2Vec2ProcessorWithLM``); :func:`build_pyctcdecode_decoder` does both steps.
- :class:`TorchaudioLM` is a torchaudio ``CTCDecoderLM`` for
  ``torchaudio.models.decoder.ctc_decoder(lm=...)``: word level with a lexicon (the decoder's
  word indices name words), or token level without one (indices name the decoder's tokens, which
  must be the scorer's sentencepiece pieces).

These decoders call the LM one hypothesis at a time; each adapter caches every (state, word)
it has scored, but cannot batch. For batched decoding use :func:`lmplug.ctc.decoder.build_ctc_decoder`.
pyctcdecode applies its ``alpha``/``beta`` inside the LM object, so the adapter does too
(``alpha * log P + beta`` per word); torchaudio applies ``lm_weight`` itself, so
:class:`TorchaudioLM` returns plain natural-log probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lmplug.errors import LmplugError
from lmplug.scorers.base import Scorer


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


# the adapter class subclasses an optional dependency's class, so it is made at first use
_CLASS: type | None = None


def _make_pyctcdecode_class():
    global _CLASS
    if _CLASS is not None:
        return _CLASS
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
            # pyctcdecode's prune_history keeps order-1 words of history; a neural LM has no limit,
            # nor (as before Scorer.order) the zero scorer
            order = self.scorer.order
            return 10_000 if order is None or order < 2 else int(order)

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

    _CLASS = PyctcdecodeLMImpl
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
