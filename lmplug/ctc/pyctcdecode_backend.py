"""The baseline backend: pyctcdecode with its own KenLM, behind the ``CTCDecoder`` surface."""

from __future__ import annotations

from collections.abc import Sequence

from lmplug.ctc.types import WORDS, CTCDecoderConfig
from lmplug.errors import LmplugError
from lmplug.scorers.base import words_signature
from lmplug.scorers.pyctcdecode_lm import _pyctcdecode


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
    :class:`lmplug.ctc.decoder.CTCDecoder`, so the same tuner and CLI drive both. pyctcdecode decodes one
    utterance at a time in Python; its ``alpha`` weighs natural-log LM scores like ours.
    """

    mode = "word"
    history_words = None  # pyctcdecode recombines by its own prune_history
    lookahead_scorers: list[str] = []
    partial_oov_logp = -10.0  # pyctcdecode's own unk_score_offset (its default)

    def __init__(self, labels: Sequence[str], kenlm_path: str, unigrams: Sequence[str] | None,
                 weights: dict[str, float], beam_size: int = CTCDecoderConfig.beam_size,
                 nbest: int = CTCDecoderConfig.nbest, token_min_logp: float = CTCDecoderConfig.token_min_logp) -> None:
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
        unknown = set(weights) - {"kenlm", WORDS}
        if unknown or "kenlm" not in weights:
            raise LmplugError(f"expected weights {{'kenlm': alpha, 'words': beta}}, found {sorted(weights)}")
        self.weights = {"kenlm": float(weights["kenlm"]), WORDS: float(weights.get(WORDS, 0.0))}
        self._decoder.reset_params(alpha=self.weights["kenlm"], beta=self.weights[WORDS])

    def prepare(self, emissions, lengths=None, logits: bool = False):
        """The validated float32 log-probs and lengths, as :meth:`lmplug.ctc.decoder.CTCDecoder.prepare`."""
        from lmplug.ctc.decoder import prepare_emissions

        return prepare_emissions(emissions, lengths, logits, self.n_labels)

    def decode(self, emissions, lengths=None, logits: bool = False) -> list:
        """(B, T, V) log-probs (numpy or torch) + lengths -> per utterance, n-best ``CTCHypothesis`` lists."""
        from lmplug.ctc.rescore import as_hypothesis

        x, lens = self.prepare(emissions, lengths, logits)
        x = x.cpu().numpy() if hasattr(x, "cpu") else x
        out = []
        for b in range(len(x)):
            e = x[b, : int(lens[b])]
            beams = self._decoder.decode_beams(e, beam_width=self.beam_size, token_min_logp=self.token_min_logp)
            out.append([as_hypothesis(bm) for bm in beams[: self.nbest]])
        return out
