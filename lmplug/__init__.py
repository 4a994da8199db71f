"""lmplug: a Transformer LM trained here, plugged into CTC beam search and MT n-best reranking."""

__version__ = "0.1.0"

from lmplug.checkpoint import LanguageModel, load_lm, save_lm
from lmplug.errors import LmplugError
from lmplug.model import KVCache, LMConfig, TransformerLM
from lmplug.scoring import SentenceScore, perplexity, score_sentences
from lmplug.tokenizer import Tokenizer, train_tokenizer
from lmplug.train import TrainConfig, train_lm

__all__ = [
    "__version__",
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
