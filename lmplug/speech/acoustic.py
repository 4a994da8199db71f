"""A small CTC acoustic model: features -> Conformer -> labels, on one of two inputs:

- ``frontend="fbank"``: 80-dim Kaldi fbank at 100 frames/s -> conv subsampling (x4) -> Conformer
  (the synthetic-speech recipe's model);
- ``frontend=<a pretrained front-end>`` (``lmplug.speech.frontends``, e.g. ``"whisper-base"``): its
  states at 50 frames/s, pairs of frames stacked (``subsample=2``: 25 outputs/s, as the fbank
  model's) -> a linear projection -> Conformer: a CTC *head* on a frozen pretrained encoder (the
  real-speech recipe's model). The checkpoint records the
  front-end's key (its model file's sha256); features of another model are refused.

Nothing in the decoder depends on it. Training goes through ``lmplug.train.fit`` (same
checkpoints, resume, progress as the LM).

Features are computed once per manifest into a float16 memmap (``features.bin`` + ``.json``
index), so epochs cost only the network; a front-end's features also go through the feature
cache (``lmplug.speech.cache``), so each audio file is encoded once across manifests and runs.
Checkpoint directory: ``config.json`` (model + labels + front-end), ``model.safetensors``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from lmplug.errors import LmplugError, config_from_dict
from lmplug.shard import local_rank
from lmplug.speech.audio import load_audio
from lmplug.speech.synthesis import Utterance

CHAR_LABELS = ("", " ", "'", *"abcdefghijklmnopqrstuvwxyz")  # blank first, " " delimits words
FBANK = "fbank"  # AMConfig.frontend of the fbank models
FORMAT = "lmplug-ctc-am"


@dataclass
class AMConfig:
    labels: tuple[str, ...] = CHAR_LABELS  # output columns; labels[0] is the CTC blank
    n_mels: int = 80  # input features per frame: fbank bins, or the front-end's dim
    frontend: str = FBANK  # "fbank", or a front-end name of lmplug.speech.frontends (its states are the input)
    subsample: int = 4  # input frames per output frame: 4 (conv subsampling, fbank), or 1 or 2 (stacked frames)
    d_model: int = 144  # Conformer width
    n_layers: int = 8  # Conformer blocks
    n_heads: int = 4  # attention heads
    ffn_dim: int = 576  # feed-forward width
    conv_kernel: int = 15  # depthwise conv kernel
    dropout: float = 0.1  # everywhere in the encoder
    spec_freq_masks: int = 2  # SpecAugment: frequency masks of up to 15 bins
    spec_time_masks: int = 4  # SpecAugment: time masks of up to 5% of the frames each

    def __post_init__(self) -> None:
        self.labels = tuple(self.labels)
        if self.subsample not in (1, 2, 4):
            raise LmplugError(f"expected subsample 1, 2 or 4, found {self.subsample}")


class ConformerCTC(nn.Module):
    """(B, T, n_mels) fbank + lengths -> (B, T/4, V) log-probs + lengths."""

    def __init__(self, config: AMConfig) -> None:
        super().__init__()
        from torchaudio.models import Conformer

        self.config = config
        self.cmvn: tuple[np.ndarray, np.ndarray] | None = None  # the training features' (mean, std), saved with it
        self.frontend_key: str | None = None  # the front-end whose features it reads (None: fbank)
        c = config.d_model
        if config.subsample == 4:
            self.subsample = nn.Sequential(
                nn.Conv2d(1, c, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(c, c, 3, stride=2, padding=1), nn.ReLU(),
            )
            self.proj = nn.Linear(c * ((config.n_mels + 3) // 4), c)
        else:  # a front-end's states: `subsample` consecutive frames stacked, projected
            self.subsample = None
            self.proj = nn.Linear(config.n_mels * config.subsample, c)
        self.encoder = Conformer(input_dim=c, num_heads=config.n_heads, ffn_dim=config.ffn_dim,
                                 num_layers=config.n_layers, depthwise_conv_kernel_size=config.conv_kernel,
                                 dropout=config.dropout)
        self.out = nn.Linear(c, len(config.labels))

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        if self.subsample is None:  # stacked frames (the last group zero-padded)
            return (lengths + self.config.subsample - 1) // self.config.subsample
        for _ in range(2):
            lengths = (lengths - 1) // 2 + 1
        return lengths

    @property
    def frame_seconds(self) -> float:
        """Seconds per output frame: fbank's 10 ms or a front-end's 20 ms, times the subsampling."""
        return self.config.subsample * (0.01 if self.config.frontend == FBANK else 0.02)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.subsample is not None:
            x = self.subsample(feats.unsqueeze(1))  # (B, C, T/4, F/4)
            B, C, T, Fq = x.shape
            x = self.proj(x.permute(0, 2, 1, 3).reshape(B, T, C * Fq))  # (B, T/4, C)
        else:
            k = self.config.subsample
            B, T0, D = feats.shape
            feats = F.pad(feats, (0, 0, 0, (-T0) % k))  # whole groups of k frames
            x = self.proj(feats.reshape(B, -1, k * D))  # (B, ceil(T0 / k), C)
            T = x.shape[1]
        out_len = self.output_lengths(lengths).clamp(max=T)
        x, _ = self.encoder(x, out_len)
        return F.log_softmax(self.out(x).float(), dim=-1), out_len


def fbank(audio: np.ndarray, n_mels: int = 80) -> np.ndarray:
    """(N,) 16 kHz float32 -> (T, n_mels) log-mel filterbank (Kaldi-compatible, 10 ms hop)."""
    import torchaudio.compliance.kaldi as kaldi

    wav = torch.from_numpy(np.ascontiguousarray(audio)).unsqueeze(0) * 32768.0
    return kaldi.fbank(wav, num_mel_bins=n_mels, sample_frequency=16000, dither=0.0).numpy()


@dataclass
class FeatureSet:
    """Features of one manifest: a (total_frames, n_mels) float16 memmap and per-utterance spans."""

    feats: np.ndarray
    ids: list[str]
    offsets: np.ndarray  # (N,) start frame
    lengths: np.ndarray  # (N,) frames
    texts: list[str] = field(default_factory=list)
    mean: np.ndarray | None = None  # (n_mels,) the normalization applied: (fbank - mean) / std
    std: np.ndarray | None = None
    frontend: str = FBANK  # "fbank", or the key of the front-end whose states these are

    @property
    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        return self.mean, self.std

    def get(self, i: int) -> np.ndarray:
        return np.asarray(self.feats[self.offsets[i] : self.offsets[i] + self.lengths[i]], dtype=np.float32)


def extract_features(utts: Sequence[Utterance], out_prefix: str | Path, n_mels: int = 80,
                     progress: bool = True, stats: tuple[np.ndarray, np.ndarray] | None = None,
                     frontend=None, cache=None) -> FeatureSet:
    """Compute (or reuse) the features of every utterance, mean/variance normalized.

    Args:
        n_mels: fbank bins (ignored with a ``frontend``: its ``dim``).
        stats: ``(mean, std)`` per feature to normalize with: the training set's, which an acoustic
            model's checkpoint carries (``model.cmvn``), so that an utterance's features do not
            depend on the other utterances of its manifest. None: this set's own (a training set).
        frontend: a pretrained front-end (``lmplug.speech.frontends.load_frontend``) whose states
            are the features; None: fbank.
        cache: a :class:`lmplug.speech.cache.FeatureCache` for the front-end's features (None:
            computed, not cached).
    """
    from tqdm import tqdm

    from lmplug.speech.cache import compute_features

    dim = n_mels if frontend is None else frontend.dim
    if stats is not None:  # before any audio is read
        stats = tuple(np.asarray(a, dtype=np.float32) for a in stats)
        if len(stats) != 2 or any(a.shape != (dim,) for a in stats) or not (stats[1] > 0).all():
            raise LmplugError(f"expected normalization statistics (mean, std) of {dim} values with std > 0, found "
                              f"shapes {[a.shape for a in stats]}")
    out = Path(out_prefix)
    meta_path, bin_path = out.with_suffix(".json"), out.with_suffix(".bin")
    ids = [u.id for u in utts]
    source = FBANK if frontend is None else frontend.key
    # the cache is reused only for the same audio files, unchanged (size, mtime), and a whole .bin
    sources = [[str(u.audio), *_stat(u.audio)] for u in utts]
    try:
        meta = json.loads(meta_path.read_text())
        if (meta["ids"] == ids and meta["n_mels"] == dim and meta.get("sources") == sources
                and meta.get("frontend", FBANK) == source
                and meta.get("normalized_by") == _stats_key(stats) and bin_path.stat().st_size == 2 * dim * sum(meta["lengths"])):
            return _load_features(out)
    except (OSError, ValueError, KeyError, TypeError):  # no cache, or a corrupt one: computed again
        pass
    if frontend is None:
        mats = [fbank(load_audio(u.audio), n_mels) for u in tqdm(utts, disable=not progress, desc="fbank", unit="utt")]
    else:
        mats = [m.astype(np.float32) for m in compute_features(frontend, [u.audio for u in utts], cache, progress)]
    out.parent.mkdir(parents=True, exist_ok=True)  # only once every audio file is read
    allf = np.concatenate(mats)
    mean, std = (allf.mean(0), allf.std(0) + 1e-5) if stats is None else stats
    lengths = np.array([len(m) for m in mats])
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    meta_path.unlink(missing_ok=True)  # no metadata beside a half-written .bin
    ((allf - mean) / std).astype(np.float16).tofile(bin_path)
    tmp = meta_path.with_name(meta_path.name + ".tmp")
    tmp.write_text(json.dumps({"ids": ids, "texts": [u.text for u in utts], "n_mels": dim, "frontend": source,
                               "sources": sources, "lengths": lengths.tolist(), "offsets": offsets.tolist(),
                               "normalized_by": _stats_key(stats), "mean": np.asarray(mean, np.float32).tolist(),
                               "std": np.asarray(std, np.float32).tolist()}))
    tmp.replace(meta_path)
    return _load_features(out)


def _stats_key(stats: tuple[np.ndarray, np.ndarray] | None) -> str:
    """Which normalization a feature cache holds: the set's own, or a hash of the given statistics."""
    if stats is None:
        return "own"
    data = b"".join(np.ascontiguousarray(a, dtype=np.float32).tobytes() for a in stats)
    return hashlib.sha1(data).hexdigest()[:16]


def _stat(path) -> tuple[int, int]:
    """(size, mtime in ns) of an audio file; (-1, -1) when it cannot be read (load_audio says why)."""
    try:
        st = Path(path).stat()
        return st.st_size, st.st_mtime_ns
    except OSError:
        return -1, -1


def _load_features(out: Path) -> FeatureSet:
    meta = json.loads(out.with_suffix(".json").read_text())
    feats = np.memmap(out.with_suffix(".bin"), dtype=np.float16, mode="r").reshape(-1, meta["n_mels"])
    return FeatureSet(feats, meta["ids"], np.array(meta["offsets"]), np.array(meta["lengths"]), meta["texts"],
                      np.array(meta["mean"], dtype=np.float32), np.array(meta["std"], dtype=np.float32),
                      meta.get("frontend", FBANK))


def encode_text(text: str, labels: Sequence[str]) -> list[int]:
    """Label ids of a transcript; characters outside the label set are an error naming them."""
    index = {l: i for i, l in enumerate(labels) if l}
    bad = sorted({ch for ch in text if ch not in index})
    if bad:
        raise LmplugError(f"transcript {text[:50]!r} has characters outside the label set: {bad}")
    return [index[ch] for ch in " ".join(text.split())]


def pad_features(mats: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(m) for m in mats])
    x = torch.zeros(len(mats), int(lengths.max()), mats[0].shape[1])
    for i, m in enumerate(mats):
        x[i, : len(m)] = torch.from_numpy(m)
    return x, lengths


def spec_augment(x: torch.Tensor, lengths: torch.Tensor, cfg: AMConfig, gen: torch.Generator) -> torch.Tensor:
    """Frequency and time masks (in place on a copy); x (B, T, F)."""
    x = x.clone()
    B, T, Fq = x.shape
    for b in range(B):
        for _ in range(cfg.spec_freq_masks):
            w = int(torch.randint(0, 16, (1,), generator=gen))
            f0 = int(torch.randint(0, max(1, Fq - w), (1,), generator=gen))
            x[b, :, f0 : f0 + w] = 0
        L = int(lengths[b])
        for _ in range(cfg.spec_time_masks):
            w = int(torch.randint(0, max(1, L // 20), (1,), generator=gen))
            t0 = int(torch.randint(0, max(1, L - w), (1,), generator=gen))
            x[b, t0 : t0 + w] = 0
    return x


def ctc_loss(model: nn.Module, batch: tuple) -> torch.Tensor:
    """Mean CTC loss per target label of a (feats, lengths, targets, target_lengths) batch."""
    feats, lengths, targets, target_lengths = batch
    logp, out_len = model(feats, lengths)
    loss = F.ctc_loss(logp.transpose(0, 1), targets, out_len, target_lengths, blank=0, reduction="sum",
                      zero_infinity=True)
    return loss / target_lengths.sum()


def make_batches(fs: FeatureSet, max_frames: int) -> list[list[int]]:
    """Length-sorted batches of at most ``max_frames`` padded frames each."""
    order = np.argsort(fs.lengths, kind="stable")
    batches, cur, longest = [], [], 0
    for i in order:
        longest_new = max(longest, int(fs.lengths[i]))
        if cur and longest_new * (len(cur) + 1) > max_frames:
            batches.append(cur)
            cur, longest_new = [], int(fs.lengths[i])
        cur.append(int(i))
        longest = longest_new
    if cur:
        batches.append(cur)
    return batches


def collate(fs: FeatureSet, idx: Sequence[int], labels: Sequence[str]) -> tuple:
    x, lengths = pad_features([fs.get(i) for i in idx])
    tgt = [encode_text(fs.texts[i], labels) for i in idx]
    return x, lengths, torch.tensor([t for ts in tgt for t in ts]), torch.tensor([len(t) for t in tgt])


def save_am(path: str | Path, model: ConformerCTC, trainer_write=None) -> None:
    from safetensors.torch import save_file

    from lmplug.checkpoint import atomic_dir, save_json

    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}

    cmvn = {} if model.cmvn is None else {"cmvn": {"mean": np.asarray(model.cmvn[0], np.float32).tolist(),
                                                    "std": np.asarray(model.cmvn[1], np.float32).tolist()}}
    if model.frontend_key is not None:
        cmvn["frontend_key"] = model.frontend_key

    def write(tmp: Path) -> None:
        save_json(tmp / "config.json", {"format": FORMAT, "model": asdict(model.config), **cmvn})
        save_file(state, str(tmp / "model.safetensors"))
        if trainer_write is not None:
            (tmp / "trainer").mkdir()
            trainer_write(tmp / "trainer")

    atomic_dir(Path(path), write)


def load_am(path: str | Path, device: str | torch.device = "cpu") -> ConformerCTC:
    from safetensors.torch import load_file

    from lmplug.checkpoint import read_json, resolve_checkpoint

    ckpt = resolve_checkpoint(path)
    meta = read_json(ckpt / "config.json")
    if meta.get("format") != FORMAT:
        raise LmplugError(f"{ckpt}: expected an acoustic model checkpoint ({FORMAT}), found format {meta.get('format')}")
    try:
        model = ConformerCTC(config_from_dict(AMConfig, meta.get("model")))
    except LmplugError as e:
        raise LmplugError(f"{ckpt / 'config.json'}: {e}") from None
    model.frontend_key = meta.get("frontend_key")
    if model.config.frontend != FBANK and not isinstance(model.frontend_key, str):
        raise LmplugError(f"{ckpt}/config.json: expected 'frontend_key' (the {model.config.frontend} model its "
                          f"features came from), found {model.frontend_key!r}")
    cmvn = meta.get("cmvn")
    if cmvn is not None:
        try:
            model.cmvn = tuple(np.array(cmvn[k], dtype=np.float32) for k in ("mean", "std"))
        except (KeyError, TypeError, ValueError):
            raise LmplugError(f"{ckpt}/config.json: expected 'cmvn' as {{'mean': [...], 'std': [...]}}, "
                              f"found {str(cmvn)[:80]}") from None
    try:
        model.load_state_dict(load_file(str(ckpt / "model.safetensors")))
    except Exception as e:  # safetensors errors and shape mismatches alike
        raise LmplugError(f"{ckpt}/model.safetensors: cannot load ({str(e)[:200]})") from None
    return model.to(device).eval()


@torch.inference_mode()
def emissions(model: ConformerCTC, fs: FeatureSet, max_frames: int = 20000) -> list[np.ndarray]:
    """Log-probs (T', V) float32 per utterance, in ``fs`` order."""
    device = next(model.parameters()).device
    out: list[np.ndarray | None] = [None] * len(fs.ids)
    for idx in make_batches(fs, max_frames):
        x, lengths = pad_features([fs.get(i) for i in idx])
        logp, out_len = model(x.to(device), lengths.to(device))
        for j, i in enumerate(idx):
            out[i] = logp[j, : int(out_len[j])].cpu().numpy()
    return out  # type: ignore[return-value]


def greedy_transcript(logp: np.ndarray, labels: Sequence[str]) -> str:
    """Best-path text of one utterance's (T, V) log-probs: argmax per frame, collapse repeats, drop blanks
    (id 0). The batched, label-set-aware version is :func:`lmplug.ctc.decoder.greedy_decode`."""
    best = logp.argmax(-1)
    keep = np.concatenate([[True], best[1:] != best[:-1]]) & (best != 0)
    return " ".join("".join(labels[i] for i in best[keep]).split())


def train_am(train: FeatureSet, dev: FeatureSet, out_dir: str | Path, config: AMConfig, train_config,
             max_frames: int = 12000, resume: bool = True, progress: bool = True, stop_after: int | None = None) -> dict:
    """Train (or resume) the acoustic model through ``fit``; batches are a pure function of the step.

    ``dev`` must be normalized with ``train``'s statistics (``extract_features(..., stats=train.stats)``),
    which the checkpoints carry for ``lmplug emissions``; other statistics are an ``LmplugError``.
    """
    from lmplug.train import TrainTask, fit, pick_device, setup_distributed

    cfg = train_config
    for name, fs in (("train", train), ("dev", dev)):  # fail before training, not at the step that meets it
        for uid, text in zip(fs.ids, fs.texts):
            try:
                encode_text(text, config.labels)
            except LmplugError as e:
                raise LmplugError(f"{name} utterance {uid}: {e} (rebuild the manifest with `lmplug prepare-speech`, "
                                  f"which keeps only sentences over the labels)") from None
    if dev.mean is None or train.mean is None or _stats_key(dev.stats) != _stats_key(train.stats):
        raise LmplugError("expected the dev features normalized with the training set's statistics "
                          "(extract_features(dev_utts, ..., stats=train.stats)), found other statistics")
    for name, fs in (("train", train), ("dev", dev)):
        found = fs.frontend.split("|")[0]  # a front-end key starts with its name; fbank is "fbank"
        if found != config.frontend or (name == "dev" and fs.frontend != train.frontend):
            raise LmplugError(f"expected {name} features of {config.frontend} (the model's front-end, as the "
                              f"training set's), found {found}")
    device = pick_device(cfg.device, local_rank())  # one GPU per torchrun process
    dist = setup_distributed(device)
    torch.manual_seed(cfg.seed)
    model = ConformerCTC(config).to(device)
    model.cmvn = train.stats  # saved with every checkpoint: `lmplug emissions` normalizes with them
    model.frontend_key = None if config.frontend == FBANK else train.frontend
    batches = make_batches(train, max_frames)
    dev_batches = make_batches(dev, max_frames)
    frames_per_step = int(np.mean([len(b) * max(train.lengths[i] for i in b) for b in batches]))

    def batch(step: int, d) -> tuple:
        rng = np.random.default_rng([cfg.seed, step])
        idx = batches[int(rng.integers(len(batches)))]
        x, lengths, tgt, tlen = collate(train, idx, config.labels)
        gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        x = spec_augment(x, lengths, config, gen)
        return x.to(device), lengths.to(device), tgt.to(device), tlen.to(device)

    @torch.no_grad()
    def evaluate(m: nn.Module) -> float:
        m.eval()
        total, n = 0.0, 0
        for idx in dev_batches:
            x, lengths, tgt, tlen = collate(dev, idx, config.labels)
            total += float(ctc_loss(m, (x.to(device), lengths.to(device), tgt.to(device), tlen.to(device)))) * int(tlen.sum())
            n += int(tlen.sum())
        m.train()
        return total / max(n, 1)

    task = TrainTask(model=model, config=asdict(config) | {"labels": list(config.labels)}, batch=batch,
                     loss=ctc_loss, evaluate=evaluate,
                     save=lambda p, w: save_am(p, model, trainer_write=w),
                     units_per_step=frames_per_step, unit="frames")
    return fit(task, cfg, out_dir, dist, resume=resume, progress=progress, stop_after=stop_after, name="train-am")
