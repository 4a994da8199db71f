"""A CTC decoder from plain options: the scorers it loads, the backend that runs the search, and
which options each backend accepts.

``lmplug decode`` and ``lmplug tune-ctc`` build a :class:`ScorerSpec` and a :class:`DecodeSpec`
from their flags once; tuning workers rebuild the same decoder from the same two values. Errors
name the options by their ``lmplug decode`` flags.

    models = ScorerSpec(kenlm="ngram5.bin")
    dec = build_decoder(decode_spec, models, load_scorers(models), {"kenlm": 0.5, "words": 1.0})
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lmplug.ctc.types import CTCDecoderConfig
from lmplug.errors import LmplugError

BACKENDS = ("lmplug", "pyctcdecode")  # lmplug's batched search; pyctcdecode with its own KenLM


@dataclass(frozen=True)
class ScorerSpec:
    """Which scorers a decode loads (the file paths and options of ``--lm``, ``--kenlm``...)."""

    lm: str | None = None  # Transformer LM checkpoint dir: scorer "lm"
    kenlm: str | None = None  # KenLM .arpa/.bin: scorer "kenlm"
    unigrams: str | None = None  # word list of a binary KenLM without an .arpa beside it
    vocabulary: str | None = None  # the Transformer's known words (None: the KenLM unigrams, if any)
    word_end: bool = True  # the Transformer scores a word with the probability that it ends there
    lm_unk_offset: float = 0.0  # added to the Transformer's score of a word outside the vocabulary
    device: str = "cpu"  # the Transformer's device


@dataclass(frozen=True)
class DecodeSpec:
    """How a decode searches: the backend and its settings (every field as ``lmplug decode`` has it)."""

    labels: str | Sequence[str]  # the labels, or their file: a JSON list, or one label per line
    backend: str  # one of BACKENDS
    beam_size: int  # beams per utterance
    mode: str  # fusion mode: "word" or "token"
    token_min_logp: float  # labels below this log-prob are not expanded
    lexicon: bool | str  # spell only words of the LM vocabulary (True), or of this pronunciation lexicon file
    history_words: int | None  # recombine beams by the Transformer's last N words (None: no)
    lookahead: tuple[str, ...]  # scorers whose look-ahead guides the search within a word
    oov_penalty: float  # log-score per (partial) word outside the scorers' vocabularies
    lm_prefilter: float  # new words word-scored per frame, as a multiple of the beam size
    search: str  # "numpy" or "torch"
    compile: bool | str  # torch.compile the torch search (a mode name, or True)
    implicit_boundaries: bool = False  # a lexicon file's words may also end without a word delimiter


def read_words(path: str) -> list[str]:
    """A word list: one word per line, or the 1-gram section of an ARPA file (``.arpa``, or a
    KenLM ``.bin`` with its ``.arpa`` beside it)."""
    p = Path(path)
    if p.suffix in (".arpa", ".bin"):
        from lmplug.ngram import arpa_unigrams

        words = arpa_unigrams(p)
        if words is None:
            raise LmplugError(f"expected an ARPA file at {p.with_suffix('.arpa')} to read the words of {p}, found none")
        return words
    if not p.is_file():
        raise LmplugError(f"word list not found: expected a text file (one word per line) at {p}")
    return p.read_text(encoding="utf-8").split()


def load_scorers(spec: ScorerSpec, backend: str = "lmplug") -> dict:
    """The named scorers of ``spec`` (``"kenlm"``, ``"lm"``); pyctcdecode loads its own KenLM, so
    for it the dict is ``{"kenlm": None}``.

    Raises:
        LmplugError: an option of a scorer that ``spec`` does not load (it would be silently unused).
    """
    for flag, value, need in (("--vocabulary", spec.vocabulary, "lm"), ("--no-word-end", not spec.word_end, "lm"),
                              ("--lm-unk-offset", spec.lm_unk_offset, "lm"), ("--unigrams", spec.unigrams, "kenlm")):
        if value and not getattr(spec, need):
            raise LmplugError(f"{flag} configures the scorer of --{need}: expected --{need} with it, found none")
    if backend == "pyctcdecode":
        return {"kenlm": None}
    from lmplug.scorers.kenlm import KenLMScorer
    from lmplug.scorers.transformer import TransformerScorer

    scorers = {}
    if spec.kenlm:
        scorers["kenlm"] = KenLMScorer(spec.kenlm, unigrams=read_words(spec.unigrams) if spec.unigrams else None)
    if spec.lm:
        from lmplug.checkpoint import load_lm

        vocab = None
        if spec.vocabulary:
            vocab = read_words(spec.vocabulary)
        elif "kenlm" in scorers:
            vocab = scorers["kenlm"].known_words()
        scorers["lm"] = TransformerScorer(load_lm(spec.lm, device=spec.device), vocabulary=vocab,
                                          word_end=spec.word_end, unk_offset=spec.lm_unk_offset)
    return scorers


def check_backend(decode: DecodeSpec, scorers: ScorerSpec) -> None:
    """Refuse the options ``decode.backend`` cannot honour (rather than ignore them).

    ``lmplug`` takes every option (:func:`lmplug.ctc.decoder.build_ctc_decoder` checks their
    values); ``pyctcdecode`` takes ``--kenlm`` without ``--lm``, word mode without a lexicon, and
    the defaults of every option it has no equivalent of.

    Raises:
        LmplugError: an unknown backend, or an option the backend does not accept.
    """
    if decode.backend not in BACKENDS:
        raise LmplugError(f"expected a backend in {BACKENDS}, found {decode.backend!r}")
    if decode.backend != "pyctcdecode":
        return
    from lmplug.ctc.pyctcdecode_backend import PyctcdecodeKenLMDecoder

    unk = PyctcdecodeKenLMDecoder.partial_oov_logp
    if not scorers.kenlm or scorers.lm:
        raise LmplugError("--backend pyctcdecode decodes with its own KenLM: expected --kenlm and no --lm")
    if decode.lookahead:
        raise LmplugError(f"--backend pyctcdecode has no look-ahead: expected no --lookahead, found {','.join(decode.lookahead)}")
    if decode.history_words is not None:
        raise LmplugError("--backend pyctcdecode recombines beams by its own history pruning: expected no "
                          f"--history-words, found {decode.history_words}")
    if decode.oov_penalty != unk:
        raise LmplugError(f"--backend pyctcdecode keeps its own unk_score_offset: expected --oov-penalty "
                          f"{unk:g} (the default), found {decode.oov_penalty:g}")
    if decode.lm_prefilter != CTCDecoderConfig.lm_prefilter:
        raise LmplugError(f"--backend pyctcdecode scores every word it forms: expected no --lm-prefilter, "
                          f"found {decode.lm_prefilter:g}")
    if decode.lexicon or decode.mode != "word":
        raise LmplugError(f"--backend pyctcdecode spells words from characters with its own unigrams: expected "
                          f"word mode without --lexicon, found --mode {decode.mode}{' --lexicon' if decode.lexicon else ''}")
    if decode.search != "numpy" or decode.compile:
        raise LmplugError(f"--backend pyctcdecode runs its own search: expected no --search/--compile, found "
                          f"--search {decode.search}{' --compile' if decode.compile else ''}")


def build_decoder(decode: DecodeSpec, scorer_spec: ScorerSpec, scorers: dict, weights: dict[str, float],
                  nbest: int = 1):
    """The decoder of ``decode`` (a :class:`lmplug.ctc.decoder.CTCDecoder`, or pyctcdecode's behind
    the same surface) over ``scorers`` (from :func:`load_scorers`), after :func:`check_backend`."""
    from lmplug.ctc.io import load_labels

    check_backend(decode, scorer_spec)
    labels = list(decode.labels) if isinstance(decode.labels, (list, tuple)) else load_labels(decode.labels)
    if decode.backend == "pyctcdecode":
        from lmplug.ctc.pyctcdecode_backend import PyctcdecodeKenLMDecoder
        from lmplug.ngram import arpa_unigrams

        unis = read_words(scorer_spec.unigrams) if scorer_spec.unigrams else arpa_unigrams(scorer_spec.kenlm)
        return PyctcdecodeKenLMDecoder(labels, scorer_spec.kenlm, unis, weights, beam_size=decode.beam_size,
                                       nbest=nbest, token_min_logp=decode.token_min_logp)
    from lmplug.ctc.decoder import build_ctc_decoder

    lexicon = decode.lexicon
    if isinstance(lexicon, str):  # a pronunciation lexicon file over these labels
        from lmplug.ctc.labels import build_labels
        from lmplug.ctc.lexicon import read_lexicon

        labels = build_labels(labels)
        lexicon = read_lexicon(lexicon, labels)
    return build_ctc_decoder(labels, scorers, weights, beam_size=decode.beam_size, mode=decode.mode, nbest=nbest,
                             token_min_logp=decode.token_min_logp, lexicon=lexicon,
                             implicit_boundaries=decode.implicit_boundaries,
                             history_words=decode.history_words, lookahead=list(decode.lookahead),
                             partial_oov_logp=decode.oov_penalty, lm_prefilter=decode.lm_prefilter,
                             search=decode.search, compile=decode.compile)
