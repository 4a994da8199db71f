"""Language-model training: AdamW, warmup + cosine decay, clipping, dev perplexity, exact resume.

Output directory::

    checkpoint/        latest checkpoint (config.json, model.safetensors, tokenizer.model, trainer/)
    data/              token shards of the train and dev text
    metrics.jsonl      one JSON object per logged step and per evaluation

Batches are a pure function of (seed, step) (``lmplug.data.sample_batch``), dropout masks of
(seed, rank, step) (``seed_step``), and the checkpoint holds the optimizer state, so a killed run
resumed from its last checkpoint follows the same loss curve as an uninterrupted one. Ctrl-C saves
a checkpoint before exiting; SIGTERM (``kill``, a job scheduler) stops at the end of the current
step with a checkpoint.
Under ``torchrun`` the model is wrapped in DDP (NCCL on CUDA, gloo on CPU); each rank takes its
slice of the same global batch.
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from lmplug.checkpoint import (
    load_weights,
    optimizer_from_tensors,
    optimizer_to_tensors,
    read_json,
    resolve_checkpoint,
    save_json,
    save_lm,
)
from lmplug.data import (IGNORE_INDEX, encode_corpus, eval_batches, eval_starts, load_shard, sample_batch,
                         tokenizer_hash)
from lmplug.errors import LmplugError, expect_number
from lmplug.files import read_jsonl
from lmplug.model import LMConfig, TransformerLM
from lmplug.shard import local_rank, rank_device
from lmplug.tokenizer import Tokenizer


@dataclass
class TrainConfig:
    batch_size: int = 32  # global batch (sequences), split over torchrun processes
    max_steps: int = 2000  # optimizer steps
    lr: float = 1e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # final lr = lr * min_lr_ratio (cosine)
    warmup_steps: int = 100  # linear warmup
    weight_decay: float = 0.1  # on matrices only
    beta2: float = 0.98  # AdamW beta2
    grad_clip: float = 1.0  # max global grad norm (0 = off)
    eval_every: int = 250  # steps between dev evaluations (and checkpoints)
    eval_tokens: int = 200_000  # dev tokens per evaluation
    log_every: int = 10  # steps between metric lines
    seed: int = 1234  # batches and init
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    compile: bool = False  # torch.compile the model (pays on GPU; ~45 s compile on CPU)

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_steps", "eval_every", "eval_tokens", "log_every", "warmup_steps"):
            expect_number("TrainConfig", name, getattr(self, name), integer=True, at_least=0 if name == "warmup_steps" else 1)
        for name in ("grad_clip", "min_lr_ratio", "weight_decay"):
            expect_number("TrainConfig", name, getattr(self, name), at_least=0)
        expect_number("TrainConfig", "lr", self.lr, above=0)
        expect_number("TrainConfig", "beta2", self.beta2, above=0, below=1)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: torch.device) -> Dist:
    """Initialise torch.distributed when started by torchrun (RANK/WORLD_SIZE set)."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), local_rank())


def pick_device(name: str = "auto", local_rank: int | None = None) -> torch.device:
    """CUDA when available, else CPU; an unknown device name, or a CUDA device this machine lacks,
    is an ``LmplugError``.

    With ``local_rank`` (training under torchrun passes ``LOCAL_RANK``) both ``auto`` and ``cuda``
    mean ``cuda:<local_rank>``, one GPU per process, as ``lmplug.shard.rank_device`` maps them for
    decoding; without it ``auto`` is ``cuda:0`` and ``cuda`` stays as given.
    """
    if name == "auto":
        return torch.device(f"cuda:{local_rank or 0}") if torch.cuda.is_available() else torch.device("cpu")
    if local_rank is not None:
        name = rank_device(name, local_rank)
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise LmplugError(f"expected a device such as auto, cpu, cuda or cuda:0, found '{name}'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LmplugError(f"device '{name}' requested but CUDA is not available here")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        raise LmplugError(f"device '{name}' requested but this machine has {n} CUDA device(s): expected cuda:0..cuda:{n - 1}")
    return dev


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to ``lr``, then cosine decay to ``lr * min_lr_ratio`` at ``max_steps``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    extra = {"fused": True} if device.type == "cuda" else {}
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, cfg.beta2), **extra)


def autocast_for(device: torch.device):
    """bf16 autocast on CUDA, nothing (fp32) on CPU."""
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return nullcontext()


def lm_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits, _ = model(x)
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=IGNORE_INDEX)


@torch.no_grad()
def evaluate(model: torch.nn.Module, shard, cfg: TrainConfig, block_size: int, bos_id: int, device) -> float:
    """Mean per-token dev loss (nats) over the first ``eval_tokens`` of the dev shard."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for x, y in eval_batches(shard, cfg.batch_size, block_size, bos_id, cfg.eval_tokens):
        x, y = x.to(device), y.to(device)
        with autocast_for(device):
            logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum")
        total += float(loss)
        count += int((y != IGNORE_INDEX).sum())
    model.train(was_training)
    return total / max(1, count)


def seed_step(seed: int, rank: int, step: int) -> None:
    """Seed torch's RNGs (CPU and CUDA: dropout) for one step of one process from (seed, rank, step).

    Dropout masks are then a pure function of the step, as the batches are, and no RNG state needs
    saving: a run resumed at any step (after Ctrl-C during an evaluation, a save, or mid-step) draws
    the masks the uninterrupted run drew, on every rank; each rank draws its own masks. A run
    resumed on another number of processes draws, from there on, what a run with that many
    processes draws.
    """
    torch.manual_seed(int(np.random.SeedSequence([seed, rank, step]).generate_state(1)[0]))


def _check_tokenizer(ckpt: Path, tokenizer: Tokenizer | None) -> None:
    """Refuse to resume with another tokenizer than the checkpoint's: its ids would name other pieces."""
    if tokenizer is None:  # a model without one (the acoustic model's labels are in its config)
        return
    theirs = tokenizer_hash(Tokenizer.load(ckpt / "tokenizer.model"))
    ours = tokenizer_hash(tokenizer)
    if theirs != ours:
        raise LmplugError(f"{ckpt}: expected the tokenizer the checkpoint was trained with ({ckpt / 'tokenizer.model'}, "
                          f"sha1 {theirs}), found {tokenizer.source} (sha1 {ours}); use that tokenizer, another --out "
                          "or --no-resume")


def _resumable(out: Path) -> bool:
    """Whether ``out`` holds a training checkpoint to resume (the last, or the one before it)."""
    return any((out / n / "trainer" / "state.json").is_file() for n in ("checkpoint", "checkpoint.old"))


def _load_trainer_state(ckpt: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        device: torch.device) -> dict:
    """Weights and optimizer state of training checkpoint ``ckpt`` into ``model`` and ``optimizer``;
    returns its ``trainer/state.json``. A truncated or foreign file (a full disk, a hand copy) is an
    ``LmplugError`` naming it and what was expected, not a traceback."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    load_weights(ckpt, model)
    state_path = ckpt / "trainer" / "state.json"
    state = read_json(state_path)
    keys = ("step", "elapsed_s", "optimizer")
    if not isinstance(state, dict) or any(k not in state for k in keys):
        found = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise LmplugError(f"{state_path}: expected an object with keys {list(keys)}, found {found}")
    opt_path = ckpt / "trainer" / "optimizer.safetensors"
    try:
        optimizer_from_tensors(optimizer, load_file(str(opt_path), device=str(device)), state["optimizer"])
    except (SafetensorError, OSError, RuntimeError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise LmplugError(f"{opt_path}: expected the optimizer state of this model, found a corrupt or foreign "
                          f"file ({type(e).__name__}: {e})") from None
    return state


def _append_jsonl(path: Path, obj: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(obj) + "\n")


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines past ``step`` (written after the checkpoint a resumed run restarts from)."""
    if not path.is_file():
        return
    keep = [row for _, row in read_jsonl(path) if row.get("step", 0) <= step]
    path.write_text("".join(json.dumps(row) + "\n" for row in keep))


@dataclass
class TrainTask:
    """What ``fit`` needs to know about one model family (LM, translation model, acoustic model)."""

    model: torch.nn.Module  # already on its device, seeded
    config: dict  # the model's config; resuming a checkpoint with another config is refused
    batch: Callable[[int, Dist], tuple]  # (global step, dist) -> this rank's batch, on the device
    loss: Callable[[torch.nn.Module, tuple], torch.Tensor]  # mean loss of one batch
    evaluate: Callable[[torch.nn.Module], float]  # dev loss (nats per unit), called on the main rank
    save: Callable[[Path, Callable[[Path], None]], None]  # (checkpoint dir, trainer-state writer)
    units_per_step: int  # tokens (or frames) per global step, for throughput
    unit: str = "tok"  # name of the unit in logs
    tokenizer: Tokenizer | None = None  # saved in the checkpoint; resuming with another is refused


class _TermFlag:
    """Turns SIGTERM (a scheduler's or ``kill``'s request to stop) into a flag that the training
    loop checks after each step, in the main thread of a single process (under DDP every rank
    would stop at a different step; there SIGTERM keeps its default)."""

    def __init__(self, enabled: bool) -> None:
        self.raised = False
        self.installed = enabled and threading.current_thread() is threading.main_thread()
        if self.installed:
            self.previous = signal.signal(signal.SIGTERM, self._set)

    def _set(self, signum, frame) -> None:
        self.raised = True

    def restore(self) -> None:
        if self.installed:
            signal.signal(signal.SIGTERM, self.previous)
            self.installed = False


@dataclass
class _Run:
    """What the steps of one :func:`fit` call share: the task and its settings, the optimizer, and
    the counters each step advances."""

    task: TrainTask
    cfg: TrainConfig
    out: Path
    dist: Dist
    name: str
    model: torch.nn.Module  # the task's model (evaluated and saved)
    train_model: torch.nn.Module  # the same, as trained: wrapped in DDP and/or compiled
    optimizer: torch.optim.Optimizer
    step: int  # optimizer steps done
    units_seen: int  # tokens (or frames) trained on, over every invocation
    elapsed_before: float  # training seconds of earlier invocations (resumed)
    last_dev: float | None  # the latest dev loss
    t0: float = 0.0  # time.time() when this invocation's training began
    bar: Any = None  # tqdm progress bar
    window_loss: float = 0.0  # summed loss of the steps since the last metrics line
    window_n: int = 0  # their number
    window_t: float = 0.0  # when the window began

    @property
    def metrics_path(self) -> Path:
        return self.out / "metrics.jsonl"

    def elapsed(self) -> float:
        """Training seconds over every invocation."""
        return self.elapsed_before + time.time() - self.t0


def _resume_state(task: TrainTask, out: Path, dist: Dist, optimizer: torch.optim.Optimizer, resume: bool,
                  device: torch.device) -> tuple[int, int, float, float | None]:
    """(step, units seen, elapsed seconds, dev loss) to start from: the checkpoint's when resuming
    one (weights and optimizer state loaded, metric lines past it dropped), else zeros (an old
    metrics log removed).

    Raises:
        LmplugError: the checkpoint holds another model config or tokenizer, or weights without
            the trainer state that exact resume needs.
    """
    metrics_path = out / "metrics.jsonl"
    if resume and _resumable(out):
        ckpt = resolve_checkpoint(out)
        meta = read_json(ckpt / "config.json")
        saved = meta.get("model") if isinstance(meta, dict) else None
        if saved != task.config:
            raise LmplugError(
                f"{ckpt}: holds a model with config {saved}, but this run asks for {task.config}; "
                "use another --out or --no-resume"
            )
        _check_tokenizer(ckpt, task.tokenizer)
        state = _load_trainer_state(ckpt, task.model, optimizer, device)
        if dist.is_main:
            _truncate_metrics(metrics_path, state["step"])
        units_seen = state.get("units_seen", state.get("tokens_seen", 0))  # (older checkpoints)
        return state["step"], units_seen, state["elapsed_s"], state.get("dev_loss")
    if resume and any((out / n / "model.safetensors").is_file() for n in ("checkpoint", "checkpoint.old")):
        raise LmplugError(f"{out}: holds trained weights but no trainer state (checkpoint/trainer/state.json), so "
                          "training cannot resume exactly; use --no-resume to start over (the weights are replaced) "
                          "or another --out")
    if dist.is_main and metrics_path.exists():
        metrics_path.unlink()
    return 0, 0, 0.0, None


def _wrap_for_training(model: torch.nn.Module, cfg: TrainConfig, dist: Dist, device: torch.device) -> torch.nn.Module:
    """The model as trained: in DDP under torchrun (more than one process), compiled with ``cfg.compile``."""
    if dist.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        model = torch.compile(model)
    return model


def _train_step(run: _Run, device: torch.device) -> tuple[float, torch.Tensor | None]:
    """One optimizer step at ``run.step`` (dropout seeded by the step, lr from the schedule,
    gradients clipped); advances the counters. Returns (lr, gradient norm or None).

    Raises:
        LmplugError: the loss is NaN or infinite.
    """
    cfg, step = run.cfg, run.step
    seed_step(cfg.seed, run.dist.rank, step)  # dropout: a pure function of the step, nothing to save
    lr = lr_at(step, cfg)
    for g in run.optimizer.param_groups:
        g["lr"] = lr
    batch = run.task.batch(step, run.dist)
    with autocast_for(device):
        loss = run.task.loss(run.train_model, batch)
    if not torch.isfinite(loss):
        raise LmplugError(f"loss became {float(loss)} at step {step}; lower --lr (now {cfg.lr})")
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip) if cfg.grad_clip > 0 else None
    run.optimizer.step()
    run.step += 1
    run.units_seen += run.task.units_per_step
    run.window_loss += float(loss.detach())
    run.window_n += 1
    run.bar.update(1)
    return lr, grad_norm


def _maybe_log(run: _Run, lr: float, grad_norm: torch.Tensor | None) -> None:
    """Every ``log_every`` steps (and at the last), the main rank appends the mean loss since the
    last line, lr, throughput and gradient norm to the metrics log."""
    cfg, step, task = run.cfg, run.step, run.task
    if not (run.dist.is_main and (step % cfg.log_every == 0 or step == cfg.max_steps)):
        return
    dt = time.time() - run.window_t
    rate = f"{task.unit}_per_s"
    rec = {"step": step, "loss": round(run.window_loss / run.window_n, 5), "lr": lr, f"{task.unit}_seen": run.units_seen,
           rate: round(run.window_n * task.units_per_step / max(dt, 1e-9), 1), "elapsed_s": round(run.elapsed(), 2)}
    if grad_norm is not None:
        rec["grad_norm"] = round(float(grad_norm), 4)
    _append_jsonl(run.metrics_path, rec)
    run.bar.set_postfix(loss=f"{rec['loss']:.3f}", **{rate: f"{rec[rate]:.0f}"})
    run.window_loss, run.window_n, run.window_t = 0.0, 0, time.time()


def _maybe_evaluate(run: _Run) -> None:
    """Every ``eval_every`` steps (and at the last): dev loss on the main rank, then a checkpoint."""
    cfg, step = run.cfg, run.step
    if not (step % cfg.eval_every == 0 or step == cfg.max_steps):
        return
    if run.dist.is_main:
        run.last_dev = run.task.evaluate(run.model)
        ppl = math.exp(min(run.last_dev, 50.0))
        _append_jsonl(run.metrics_path, {"step": step, "dev_loss": round(run.last_dev, 5), "dev_ppl": round(ppl, 3)})
        run.bar.write(f"[{run.name}] step {step}: dev loss {run.last_dev:.4f}, ppl {ppl:.2f}")
    _save(run)


def _save(run: _Run) -> None:
    """The main rank's atomic checkpoint at ``run.step``: the task's model files plus the trainer
    state (optimizer, step, units seen, elapsed time, dev loss) that exact resume needs."""
    from safetensors.torch import save_file

    if not run.dist.is_main:
        return

    def write_trainer(d: Path) -> None:
        tensors, opt_meta = optimizer_to_tensors(run.optimizer)
        save_file(tensors, str(d / "optimizer.safetensors"))
        save_json(d / "state.json", {"step": run.step, "units_seen": run.units_seen, "elapsed_s": run.elapsed(),
                                     "optimizer": opt_meta, "dev_loss": run.last_dev, "train": asdict(run.cfg)})

    run.task.save(run.out / "checkpoint", write_trainer)


def fit(task: TrainTask, cfg: TrainConfig, out_dir: str | Path, dist: Dist, resume: bool = True,
        progress: bool = True, stop_after: int | None = None, name: str = "train") -> dict:
    """The training loop every model family shares.

    AdamW with warmup + cosine, gradient clipping, a JSONL metrics log, dev loss every
    ``eval_every`` steps followed by an atomic checkpoint (``out_dir/checkpoint``), exact resume
    (weights, optimizer, step; dropout reseeded each step by ``seed_step``), Ctrl-C saves before
    exiting, DDP under torchrun. Resuming refuses a checkpoint of another model config or tokenizer.

    Args:
        stop_after: stop (with a checkpoint) after this many steps of *this* invocation (>= 1); used
            to simulate interruption in tests.

    Returns:
        a summary dict, also written to ``out_dir/train_summary.json``.
    """
    from tqdm import tqdm

    if stop_after is not None:
        expect_number("fit", "stop_after", stop_after, integer=True, at_least=1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = task.model
    device = next(model.parameters()).device
    optimizer = make_optimizer(model, cfg, device)
    start_step, units_seen, elapsed_before, last_dev = _resume_state(task, out, dist, optimizer, resume, device)
    run = _Run(task, cfg, out, dist, name, model, _wrap_for_training(model, cfg, dist, device), optimizer,
               start_step, units_seen, elapsed_before, last_dev, t0=time.time())
    n_params = sum(p.numel() for p in model.parameters())
    if dist.is_main:
        print(f"[{name}] {n_params / 1e6:.2f}M parameters, device {device}, world {dist.world_size}, "
              f"steps {start_step}->{cfg.max_steps}", flush=True)
    run.bar = tqdm(total=cfg.max_steps, initial=start_step, disable=not (progress and dist.is_main), desc=name,
                   unit="step", dynamic_ncols=True)
    model.train()
    run.window_t = time.time()
    term = _TermFlag(enabled=dist.world_size == 1)
    try:
        while run.step < cfg.max_steps:
            lr, grad_norm = _train_step(run, device)
            _maybe_log(run, lr, grad_norm)
            _maybe_evaluate(run)
            if stop_after is not None and run.step - start_step >= stop_after:
                _save(run)
                break
            if term.raised:  # SIGTERM: stop at this step boundary, exactly resumable
                _save(run)
                run.bar.close()
                print(f"[{name}] terminated: checkpoint saved at step {run.step}; run the same command to resume",
                      flush=True)
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        if term.raised:
            raise
        _save(run)
        run.bar.close()
        if dist.is_main:
            print(f"[{name}] interrupted: checkpoint saved at step {run.step}; run the same command to resume", flush=True)
        raise
    finally:
        term.restore()
    run.bar.close()
    summary = {"steps": run.step, "units_seen": run.units_seen, "unit": task.unit, "parameters": n_params,
               "elapsed_s": round(run.elapsed(), 1), "dev_loss": run.last_dev,
               "world_size": dist.world_size, "device": str(device), "model": task.config, "train": asdict(cfg)}
    if dist.is_main:
        save_json(out / "train_summary.json", summary)
    return summary


def train_lm(
    train_lines: Sequence[str],
    dev_lines: Sequence[str],
    tokenizer: Tokenizer,
    out_dir: str | Path,
    model_config: LMConfig,
    train_config: TrainConfig,
    resume: bool = True,
    progress: bool = True,
    stop_after: int | None = None,
) -> dict:
    """Train (or resume) a Transformer LM; returns ``fit``'s summary (plus ``tokens_seen``).

    Args:
        train_lines, dev_lines: sentences (already normalized as the LM should see them).
        tokenizer: its vocabulary size and <s>/</s> ids override ``model_config``'s.
        out_dir: see the module docstring; an existing ``checkpoint/`` is resumed when ``resume``.
    """
    cfg = train_config
    out = Path(out_dir)
    device = pick_device(cfg.device, local_rank())
    dist = setup_distributed(device)
    model_config = LMConfig(**{**model_config.to_dict(), "vocab_size": tokenizer.vocab_size,
                               "bos_id": tokenizer.bos_id, "eos_id": tokenizer.eos_id})
    if resume and _resumable(out):  # before the shards are encoded with it (fit checks again: train-nmt)
        _check_tokenizer(resolve_checkpoint(out), tokenizer)
    if dist.is_main:
        encode_corpus(list(train_lines), tokenizer, out / "data" / "train.bin")
        encode_corpus(list(dev_lines), tokenizer, out / "data" / "dev.bin")
    if dist.world_size > 1:
        torch.distributed.barrier()
    train_shard = load_shard(out / "data" / "train.bin")
    dev_shard = load_shard(out / "data" / "dev.bin")
    eval_starts(dev_shard, model_config.block_size, cfg.eval_tokens, "dev")  # fail now, not at the first evaluation
    if dist.is_main:
        print(f"[train-lm] {len(train_shard):,} train tokens, {len(dev_shard):,} dev tokens", flush=True)
    torch.manual_seed(cfg.seed)
    model = TransformerLM(model_config).to(device)
    block, bos = model_config.block_size, model_config.bos_id

    def batch(step: int, d: Dist) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = sample_batch(train_shard, cfg.batch_size, block, cfg.seed, step, bos, d.rank, d.world_size)
        return x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    task = TrainTask(
        model=model,
        config=model_config.to_dict(),
        batch=batch,
        loss=lambda m, b: lm_loss(m, *b),
        evaluate=lambda m: evaluate(m, dev_shard, cfg, block, bos, device),
        save=lambda path, trainer_write: save_lm(path, model, tokenizer, extra={"train": asdict(cfg)},
                                                 trainer_write=trainer_write),
        units_per_step=cfg.batch_size * block,
        tokenizer=tokenizer,
    )
    summary = fit(task, cfg, out, dist, resume=resume, progress=progress, stop_after=stop_after, name="train-lm")
    summary["tokens_seen"] = summary["units_seen"]
    if dist.is_main:
        save_json(out / "train_summary.json", summary)
    return summary
