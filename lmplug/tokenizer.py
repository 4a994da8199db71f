"""sentencepiece tokenizer: train, load, encode, decode.

Sentencepiece never merges across a space, so a sentence's pieces are the concatenation of its
words' pieces; word-level fusion in the CTC decoder relies on that.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Iterable, Sequence

from lmplug.errors import LmplugError


def _spm():
    import sentencepiece as spm  # core dependency, imported here to keep `import lmplug` light

    return spm


class Tokenizer:
    """A loaded sentencepiece model with the ids lmplug uses (<unk>=0, <s>=1, </s>=2)."""

    def __init__(self, model_proto: bytes, source: str = "<bytes>") -> None:
        spm = _spm()
        self.sp = spm.SentencePieceProcessor()
        try:
            self.sp.LoadFromSerializedProto(model_proto)
        except Exception as e:  # sentencepiece raises RuntimeError/OSError on garbage
            raise LmplugError(f"{source}: not a sentencepiece model ({e})") from None
        self.model_proto = model_proto
        self.source = source
        if self.sp.bos_id() < 0 or self.sp.eos_id() < 0:
            raise LmplugError(f"{source}: tokenizer needs <s> and </s> pieces, found bos={self.sp.bos_id()} eos={self.sp.eos_id()}")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Tokenizer":
        p = Path(path)
        if not p.is_file():
            raise LmplugError(f"tokenizer model not found: expected a file at {p}")
        return cls(p.read_bytes(), source=str(p))

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_bytes(self.model_proto)

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    @property
    def bos_id(self) -> int:
        return self.sp.bos_id()

    @property
    def eos_id(self) -> int:
        return self.sp.eos_id()

    @property
    def unk_id(self) -> int:
        return self.sp.unk_id()

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text, out_type=int)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self.sp.encode(list(texts), out_type=int)

    def decode(self, ids: Sequence[int]) -> str:
        return self.sp.decode(list(ids))

    def id_to_piece(self, i: int) -> str:
        return self.sp.id_to_piece(i)

    def piece_to_id(self, piece: str) -> int:
        return self.sp.piece_to_id(piece)

    def pieces(self) -> list[str]:
        return [self.sp.id_to_piece(i) for i in range(self.vocab_size)]


def train_tokenizer(
    lines: Iterable[str] | str | os.PathLike,
    out_path: str | os.PathLike,
    vocab_size: int = 4000,
    model_type: str = "unigram",
    character_coverage: float = 1.0,
    max_sentences: int = 2_000_000,
) -> Tokenizer:
    """Train a sentencepiece model on text (a path, or an iterable of lines) and save it.

    Special ids: <unk>=0, <s>=1, </s>=2, no padding piece. Returns the loaded tokenizer.
    """
    spm = _spm()
    if isinstance(lines, (str, os.PathLike)):
        path = Path(lines)
        if not path.is_file():
            raise LmplugError(f"training text not found: expected a file at {path}")
        lines = path.read_text(encoding="utf-8").splitlines()
    sentences = [s for s in (l.strip() for l in lines) if s]
    if not sentences:
        raise LmplugError("tokenizer training text is empty: expected at least one non-empty line")
    buf = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=buf,
            vocab_size=vocab_size,
            model_type=model_type,
            character_coverage=character_coverage,
            input_sentence_size=max_sentences,
            shuffle_input_sentence=True,
            unk_id=0,
            bos_id=1,
            eos_id=2,
            pad_id=-1,
            hard_vocab_limit=False,
            minloglevel=2,
        )
    except RuntimeError as e:
        raise LmplugError(f"sentencepiece training failed: {e}") from None
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(buf.getvalue())
    return Tokenizer(buf.getvalue(), source=str(out))
