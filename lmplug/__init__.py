"""lmplug: a Transformer LM trained here, plugged into CTC beam search and MT n-best reranking."""

from lmplug.constants import VERSION as __version__
from lmplug.checkpoint import LanguageModel, load_lm, save_lm
from lmplug.ctc.decoder import CTCDecoder, CTCHypothesis, build_ctc_decoder, greedy_decode
from lmplug.ctc.lexicon import Lexicon, read_lexicon
from lmplug.ctc.rescore import rerank, rescore_nbest
from lmplug.ctc.tune import TuneResult, tune_ctc_weights
from lmplug.errors import LmplugError
from lmplug.model import KVCache, LMConfig, TransformerLM
from lmplug.mt.nbest import NBestEntry, read_nbest, write_nbest
from lmplug.mt.nmt import Translator, load_translator, train_translation
from lmplug.scorers.base import Scorer
from lmplug.scorers.kenlm import KenLMScorer
from lmplug.scorers.memo import MemoScorer
from lmplug.scorers.pyctcdecode_lm import PyctcdecodeLM, build_pyctcdecode_decoder
from lmplug.scorers.torchaudio_lm import TorchaudioLM
from lmplug.scorers.transformer import TransformerScorer
from lmplug.scorers.zero import ZeroScorer
from lmplug.scoring import SentenceScore, perplexity, score_sentences
from lmplug.tokenizer import Tokenizer, train_tokenizer
from lmplug.train import TrainConfig, train_lm

__all__ = [
    "__version__",
    "CTCDecoder",
    "CTCHypothesis",
    "KenLMScorer",
    "Lexicon",
    "MemoScorer",
    "NBestEntry",
    "Translator",
    "load_translator",
    "read_lexicon",
    "read_nbest",
    "train_translation",
    "write_nbest",
    "PyctcdecodeLM",
    "Scorer",
    "TorchaudioLM",
    "TransformerScorer",
    "TuneResult",
    "ZeroScorer",
    "build_ctc_decoder",
    "build_pyctcdecode_decoder",
    "greedy_decode",
    "rerank",
    "rescore_nbest",
    "tune_ctc_weights",
    "KVCache",
    "LMConfig",
    "LanguageModel",
    "LmplugError",
    "SentenceScore",
    "Tokenizer",
    "TrainConfig",
    "TransformerLM",
    "load_lm",
    "perplexity",
    "save_lm",
    "score_sentences",
    "train_lm",
    "train_tokenizer",
]
