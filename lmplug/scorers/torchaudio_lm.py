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

    _CLASS = TorchaudioLMImpl
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
