"""Scorers: one interface (:class:`Scorer`) for every language model a decoder or reranker fuses.

Modules: ``base`` (the interface), ``transformer`` (lmplug's Transformer LM), ``kenlm`` (an n-gram
model through kenlm), ``zero`` (no LM), ``memo`` (any word scorer behind a memo of its scores, for
weight tuning), and the adapters that put any scorer inside decoders people
already run: ``pyctcdecode_lm`` (pyctcdecode's ``AbstractLanguageModel``) and ``torchaudio_lm``
(torchaudio's ``CTCDecoderLM``). Scorers import only the LM core (``lmplug.model``,
``lmplug.checkpoint``, ``lmplug.ngram``, ``lmplug.errors``), never a decoder.
"""

from lmplug.scorers.base import Scorer, words_signature
from lmplug.scorers.kenlm import KenLMScorer
from lmplug.scorers.memo import MemoScorer
from lmplug.scorers.pyctcdecode_lm import PyctcdecodeLM, build_pyctcdecode_decoder
from lmplug.scorers.torchaudio_lm import TorchaudioLM
from lmplug.scorers.transformer import TransformerScorer
from lmplug.scorers.zero import ZeroScorer

__all__ = ["KenLMScorer", "MemoScorer", "PyctcdecodeLM", "Scorer", "TorchaudioLM", "TransformerScorer", "ZeroScorer",
           "build_pyctcdecode_decoder", "words_signature"]
