"""Baseline translation systems for the MT recipe: train, save/load, translate to n-best lists.

The same code trained in the reverse direction is the channel model of noisy-channel
reranking (``log P(source | hypothesis)`` by forced decoding, ``Translator.score``).

Checkpoint directory (no pickle, like the LM's)::

    config.json         {"format": "lmplug-seq2seq", "version", "model": Seq2SeqConfig, "train", "direction"}
    model.safetensors   weights (tied output layer omitted)
    tokenizer.model     the shared sentencepiece model
    trainer/            only in training checkpoints (written by ``lmplug.train.fit``)

Training batches are groups of pairs of similar length (fixed once from the seed), one group
drawn per step as a pure function of (seed, step): resume is exact.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from lmplug.checkpoint import load_weights, open_checkpoint, save_lm
from lmplug.constants import NMT_PRESETS
from lmplug.errors import LmplugError, expect_number
from lmplug.mt.seq2seq import (
    IGNORE_INDEX,
    BeamHypothesis,
    Seq2SeqConfig,
    Seq2SeqTransformer,
    beam_search,
    pad_sources,
    pad_targets,
    score_pairs,
    seq2seq_loss,
)
from lmplug.shard import local_rank
from lmplug.tokenizer import Tokenizer
from lmplug.train import Dist, TrainConfig, TrainTask, autocast_for, fit, pick_device, setup_distributed

FORMAT = "lmplug-seq2seq"

LABEL_SMOOTHING = 0.1


def _version() -> str:
    from lmplug.constants import VERSION as __version__

    return __version__


@dataclass
class Translator:
    """A translation model ready to decode and score: model (eval mode), tokenizer, config."""

    model: Seq2SeqTransformer
    tokenizer: Tokenizer
    config: Seq2SeqConfig
    path: str = ""
    direction: str = ""  # e.g. "en-de", from training

    @property
    def device(self) -> torch.device:
        return self.model.wte.weight.device

    def signature(self) -> str:
        c = self.config
        return (f"nmt:transformer|{self.direction or '?'}|E{c.n_enc_layer}-D{c.n_dec_layer}-C{c.n_embd}-H{c.n_head}|"
                f"V{c.vocab_size}|params:{self.model.num_parameters()}|path:{self.path}|lmplug:{_version()}")

    def translate(self, sources: Sequence[str], beam: int = 12, nbest: int | None = None, len_penalty: float = 1.0,
                  batch_sentences: int = 64, progress: bool = False) -> list[list[tuple[str, BeamHypothesis]]]:
        """Beam search; per source up to ``nbest`` (text, hypothesis), best ``score`` first.

        Empty outputs (</s> right away) are left out of the lists: they are never translations and
        n-best files refuse empty hypotheses.
        """
        check_search_args(beam, nbest, batch_sentences)
        ids = self.encode(sources)
        out = []
        for hyps in beam_search(self.model, ids, beam=beam, nbest=beam, len_penalty=len_penalty,
                                batch_sentences=batch_sentences, progress=progress):
            pairs = [(self.tokenizer.decode(list(h.tokens)), h) for h in hyps]
            out.append([(t, h) for t, h in pairs if t.strip()][: nbest or beam])
        return out

    def score(self, sources: Sequence[str], targets: Sequence[str], batch_tokens: int = 8192) -> list[float]:
        """Forced decoding: ``log P(target | source)`` (natural log, incl. </s>) per pair."""
        return score_pairs(self.model, self.encode(sources), self.encode(targets), batch_tokens=batch_tokens)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        limit = self.config.max_len - 1
        return [ids[:limit] for ids in self.tokenizer.encode_batch(list(texts))]


def check_search_args(beam: int, nbest: int | None, batch_sentences: int, owner: str = "Translator.translate") -> None:
    """A beam of at least one, at most ``beam`` hypotheses kept (None: all of them), at least one
    sentence per batch; ``owner`` "" names the command line's flags (``--beam`` ...)."""
    names = ("--beam", "--nbest", "--batch-sentences") if not owner else ("beam", "nbest", "batch_sentences")
    expect_number(owner, names[0], beam, integer=True, at_least=1)
    if nbest is not None:
        expect_number(owner, names[1], nbest, integer=True, at_least=1)
        if nbest > beam:
            raise LmplugError(f"{f'{owner}.' if owner else ''}{names[1]}: expected at most {names[0]} ({beam}) "
                              f"hypotheses, found {nbest}")
    expect_number(owner, names[2], batch_sentences, integer=True, at_least=1)


def save_translator(path: str | os.PathLike, model: Seq2SeqTransformer, tokenizer: Tokenizer,
                    extra: dict | None = None, trainer_write=None) -> None:
    """Write a checkpoint directory atomically (``trainer_write(dir)`` adds training state).

    The LM's writer serves: same layout, tied output layer left out, ``format`` set to ours.
    """
    save_lm(path, model, tokenizer, extra={**(extra or {}), "format": FORMAT}, trainer_write=trainer_write)


def load_translator(path: str | os.PathLike, device: str | torch.device | None = None) -> Translator:
    """Load a translation checkpoint (a checkpoint dir or a training output dir) in eval mode."""
    ckpt, meta, tokenizer = open_checkpoint(path, FORMAT)
    try:
        config = Seq2SeqConfig.from_dict(meta["model"])
    except LmplugError as e:
        raise LmplugError(f"{ckpt / 'config.json'}: {e}") from None
    if tokenizer.vocab_size != config.vocab_size:
        raise LmplugError(f"{ckpt}: tokenizer has {tokenizer.vocab_size} pieces, expected {config.vocab_size}")
    model = Seq2SeqTransformer(config)
    load_weights(ckpt, model)
    model.eval().to(device or "cpu")
    return Translator(model, tokenizer, config, str(ckpt), meta.get("direction", ""))


def pair_groups(lengths: Sequence[int], batch_size: int, seed: int, world_size: int = 1) -> list[np.ndarray]:
    """Pairs sorted by length (ties broken at random, from ``seed``) and cut into batches.

    Each of ``world_size`` processes takes a slice of a batch, so every batch holds at least
    ``world_size`` pairs: a last batch with fewer joins the one before it (with one process the
    batches are unchanged; a run resumed on another number of processes may then draw other
    batches). Fewer pairs, or a ``batch_size`` smaller than ``world_size``, leave a process nothing
    to train on: an ``LmplugError``.
    """
    if batch_size < world_size or len(lengths) < world_size:
        raise LmplugError(f"expected at least one sentence pair per process in each batch ({world_size} processes), "
                          f"found batch_size {batch_size} and {len(lengths)} pairs")
    rng = np.random.default_rng(seed)
    key = np.asarray(lengths, dtype=np.float64) + rng.random(len(lengths))
    order = np.argsort(key, kind="stable")
    groups = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if len(groups) > 1 and len(groups[-1]) < world_size:
        groups[-2:] = [np.concatenate(groups[-2:])]
    return groups


def _encode_pairs(src: Sequence[str], tgt: Sequence[str], tok: Tokenizer, max_len: int, what: str
                  ) -> tuple[list[list[int]], list[list[int]]]:
    if len(src) != len(tgt):
        raise LmplugError(f"{what}: expected as many source as target lines, found {len(src)} and {len(tgt)}")
    if not src:
        raise LmplugError(f"{what}: no sentence pairs, expected at least one")
    s = [ids[: max_len - 1] for ids in tok.encode_batch(list(src))]
    t = [ids[: max_len - 1] for ids in tok.encode_batch(list(tgt))]
    return s, t


@torch.no_grad()
def dev_loss(model: torch.nn.Module, src: list[list[int]], tgt: list[list[int]], device: torch.device,
             batch_size: int = 128) -> float:
    """Mean per-target-token cross-entropy (nats, no label smoothing) over dev pairs."""
    was = model.training
    model.eval()
    total, count = 0.0, 0
    c = model.config
    for g in pair_groups([len(a) + len(b) for a, b in zip(src, tgt)], batch_size, 0):
        batch = (*pad_sources([src[i] for i in g], c.eos_id, device),
                 *pad_targets([tgt[i] for i in g], c.bos_id, c.eos_id, device))
        with autocast_for(device):
            total += float(seq2seq_loss(model, batch, reduction="sum"))
        count += int((batch[3] != IGNORE_INDEX).sum())
    model.train(was)
    return total / max(1, count)


def train_translation(
    train_src: Sequence[str],
    train_tgt: Sequence[str],
    dev_src: Sequence[str],
    dev_tgt: Sequence[str],
    tokenizer: Tokenizer,
    out_dir: str | Path,
    model_config: Seq2SeqConfig,
    train_config: TrainConfig,
    direction: str = "",
    label_smoothing: float = LABEL_SMOOTHING,
    resume: bool = True,
    progress: bool = True,
    stop_after: int | None = None,
) -> dict:
    """Train (or resume) a translation model through ``lmplug.train.fit``; returns its summary.

    Args:
        train_src, train_tgt: aligned sentence pairs (raw text; the tokenizer is shared).
        tokenizer: its vocabulary size and <s>/</s> ids override ``model_config``'s.
        train_config: ``batch_size`` counts sentence pairs per step (global, over processes).
        direction: a label such as ``"en-de"``, kept in the checkpoint and its signature.
    """
    cfg = train_config
    device = pick_device(cfg.device, local_rank())
    dist = setup_distributed(device)
    model_config = Seq2SeqConfig(**{**model_config.to_dict(), "vocab_size": tokenizer.vocab_size,
                                    "bos_id": tokenizer.bos_id, "eos_id": tokenizer.eos_id})
    ml = model_config.max_len
    src, tgt = _encode_pairs(train_src, train_tgt, tokenizer, ml, "training pairs")
    dsrc, dtgt = _encode_pairs(dev_src, dev_tgt, tokenizer, ml, "dev pairs")
    groups = pair_groups([len(a) + len(b) for a, b in zip(src, tgt)], cfg.batch_size, cfg.seed, dist.world_size)
    mean_tokens = sum(len(a) + len(b) + 2 for a, b in zip(src, tgt)) / len(src)
    if dist.is_main:
        print(f"[train-nmt] {len(src):,} training pairs ({mean_tokens:.1f} tokens a pair), {len(dsrc):,} dev pairs, "
              f"{len(groups)} batches an epoch", flush=True)
    torch.manual_seed(cfg.seed)
    model = Seq2SeqTransformer(model_config).to(device)

    def batch(step: int, d: Dist) -> tuple[torch.Tensor, ...]:
        g = groups[int(np.random.default_rng([cfg.seed, step]).integers(len(groups)))]
        part = np.array_split(g, d.world_size)[d.rank]
        return (*pad_sources([src[i] for i in part], model_config.eos_id, device),
                *pad_targets([tgt[i] for i in part], model_config.bos_id, model_config.eos_id, device))

    extra = {"train": asdict(cfg), "direction": direction, "label_smoothing": label_smoothing}
    task = TrainTask(
        model=model,
        config=model_config.to_dict(),
        batch=batch,
        loss=lambda m, b: seq2seq_loss(m, b, label_smoothing=label_smoothing),
        evaluate=lambda m: dev_loss(m, dsrc, dtgt, device),
        save=lambda path, trainer_write: save_translator(path, model, tokenizer, extra=extra,
                                                         trainer_write=trainer_write),
        units_per_step=int(round(mean_tokens * cfg.batch_size)),
        tokenizer=tokenizer,
    )
    return fit(task, cfg, out_dir, dist, resume=resume, progress=progress, stop_after=stop_after, name="train-nmt")


def nmt_configs(scale: str, model_overrides: dict | None = None, train_overrides: dict | None = None
                ) -> tuple[Seq2SeqConfig, TrainConfig, int]:
    """(model config, training config, vocabulary size) of a scale preset with overrides."""
    if scale not in NMT_PRESETS:
        raise LmplugError(f"unknown scale '{scale}', expected one of {sorted(NMT_PRESETS)}")
    p = NMT_PRESETS[scale]
    model = Seq2SeqConfig(**{**p["model"], **(model_overrides or {})})
    train = TrainConfig(**{**p["train"], **(train_overrides or {})})
    return model, train, p["vocab"]
