"""An lmplug scorer as torchaudio's ``CTCDecoderLM`` (see :mod:`lmplug.scorers.pyctcdecode_lm` for the pair)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lmplug.errors import LmplugError
from lmplug.scorers.base import Scorer


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


# the adapter class subclasses an optional dependency's class, so it is made at first use
_CLASS: type | None = None


def _make_torchaudio_class():
    global _CLASS
    if _CLASS is not None:
        return _CLASS
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
            self.unk_word = unk_word
            self.words = None
            if words is not None:  # ctc_decoder asks the word dict for "<unk>" (its lexicon loader adds
                # it to every lexicon) and for unk_word: they get the indices after the words
                self.words = list(words)
                self.words += [w for w in dict.fromkeys(("<unk>", unk_word)) if w not in self.words]
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

        def write_lm_dict(self, path) -> None:
            """Write ``self.words`` one per line: ``ctc_decoder``'s ``lm_dict``, which fixes its word
            indices to this adapter's."""
            if self.words is None:
                raise LmplugError("TorchaudioLM.write_lm_dict: expected lexicon decoding (words=...), found "
                                  "lexicon-free decoding (tokens=...), which takes no lm_dict")
            with open(path, "w", encoding="utf-8") as f:
                f.write("".join(f"{w}\n" for w in self.words))

    _CLASS = TorchaudioLMImpl
    return TorchaudioLMImpl


def TorchaudioLM(scorer: Scorer, words: Sequence[str] | None = None, tokens: Sequence[str] | None = None,
                 unk_word: str = "<unk>", non_pieces: Sequence[str] = ("-", "|")):
    """A torchaudio ``CTCDecoderLM`` scoring with ``scorer`` (natural-log; torchaudio weights it).

    Lexicon decoding, as it runs (``tests/scorers/test_adapters.py`` follows it line by line)::

        from torchaudio.models.decoder import ctc_decoder
        words = ["ate", "bone", "dog", "dot", "the"]  # the lexicon's words, in an order you choose
        Path("lexicon.txt").write_text("".join(f"{w} {' '.join(w)} |\\n" for w in words))
        lm = TorchaudioLM(TransformerScorer(load_lm("models/lm-bible")), words=words)
        lm.write_lm_dict("lm_dict.txt")  # lm.words: the words, then "<unk>" (ctc_decoder asks for it)
        decoder = ctc_decoder(lexicon="lexicon.txt", tokens=["-", "|", "a", ...], lm=lm,
                              lm_dict="lm_dict.txt", lm_weight=0.5, word_score=1.0)
        words = decoder(emissions)[0][0].words  # emissions: (B, T, len(tokens)) float32 log-probs

    Args:
        scorer: any lmplug scorer.
        words: lexicon decoding: the decoder's word list in index order; the adapter appends
            ``"<unk>"`` and ``unk_word`` unless they are in it (``ctc_decoder`` looks both up), and
            keeps the list as ``.words``. Pass ``ctc_decoder`` that list as its ``lm_dict`` file
            (``.write_lm_dict(path)`` writes it), or the decoder numbers the words in an order of
            its own; every lexicon word must be in it.
        tokens: lexicon-free decoding: the decoder's tokens, which must be the scorer's pieces
            (a token that is none is an ``LmplugError``), but for ``non_pieces``. No ``lm_dict``.
        unk_word: the unknown word (``ctc_decoder``'s ``unk_word``: pass it the same if it is not
            ``"<unk>"``), also scored for any index outside ``words``.
        non_pieces: lexicon-free: tokens that are no piece (torchaudio's default blank and
            silence tokens): the LM scores them 0 and keeps its history.
    """
    return _make_torchaudio_class()(scorer, words=words, tokens=tokens, unk_word=unk_word, non_pieces=non_pieces)
