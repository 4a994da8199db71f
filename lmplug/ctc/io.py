"""Reading emissions and labels from files, batching them, writing hypotheses.

Emission inputs:

- ``.npy``: one utterance ``(T, V)``, or a batch ``(B, T, V)`` (all frames valid);
- ``.npz``: one ``(T, V)`` array per utterance (keys are the ids, in sorted order), or the keys
  ``emissions`` ``(B, T, V)`` plus ``lengths`` ``(B,)`` (and optionally ``ids``);
- ``.jsonl`` manifest: one object per utterance, ``{"id": ..., "emissions": "path.npy",
  "text": "reference (optional)"}``; paths are relative to the manifest.

Labels: a JSON list, or a text file with one label per line (``<blank>``/``<pad>`` name the
blank; a line with a single ``|`` or the word ``<space>`` is the word delimiter).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmplug.ctc.decoder import CTCHypothesis
from lmplug.errors import LmplugError, expect_unique_ids
from lmplug.files import read_json, read_jsonl


@dataclass
class UtteranceEmissions:
    """One utterance's CTC emissions, as read from a file (not the audio utterance of
    :class:`lmplug.speech.synthesis.Utterance`)."""

    id: str
    emissions: np.ndarray  # (T, V)
    text: str | None = None  # reference, when known
    source: str = ""  # the file the emissions were read from


def load_labels(path: str | Path) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise LmplugError(f"labels file not found: expected a JSON list or one label per line at {p}")
    if p.suffix == ".json":
        labels = read_json(p)
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise LmplugError(f"{p}: expected a JSON list of strings, found {type(labels).__name__}")
        return labels
    try:
        raw = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise LmplugError(f"{p}: expected UTF-8 labels, found invalid bytes at byte {e.start}") from None
    return [" " if x == "<space>" else x for x in raw.rstrip("\n").split("\n")]


def _read_array(p: Path):
    """``np.load`` without pickles; an unreadable file is an error naming it."""
    import zipfile

    try:
        return np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise LmplugError(f"{p}: expected a numpy .npy/.npz array file, found an unreadable one ({e})") from None


def load_emissions(path: str | Path) -> list[UtteranceEmissions]:
    """Utterances from a ``.npy``, ``.npz`` or ``.jsonl`` manifest (see the module docstring).

    Raises:
        LmplugError: on a missing or unreadable file, a repeated utterance id, or NaN/inf emissions
            (named by utterance id and file: the decoder knows only batch positions).
    """
    utts = _read_emissions(Path(path))
    if not utts:
        raise LmplugError(f"{path}: expected at least one utterance, found none")
    for u in utts:
        if np.issubdtype(u.emissions.dtype, np.floating) and not np.isfinite(u.emissions).all():
            t = int(np.argwhere(~np.isfinite(u.emissions))[0][0])
            raise LmplugError(f"{u.source}: expected finite emissions, found NaN or inf in utterance {u.id!r} at frame {t}")
    return utts


def _read_emissions(p: Path) -> list[UtteranceEmissions]:
    if not p.is_file():
        raise LmplugError(f"emissions not found: expected a .npy, .npz or .jsonl file at {p}")
    if p.suffix == ".npy":
        x = _read_array(p)
        if x.ndim == 2:
            return [UtteranceEmissions(p.stem, x, source=str(p))]
        if x.ndim == 3:
            return [UtteranceEmissions(f"{p.stem}-{i}", x[i], source=str(p)) for i in range(len(x))]
        raise LmplugError(f"{p}: expected emissions of shape (T, V) or (B, T, V), found {x.shape}")
    if p.suffix == ".npz":
        z = _read_array(p)
        if "emissions" in z.files:
            x = z["emissions"]
            if x.ndim != 3:
                raise LmplugError(f"{p}: expected 'emissions' of shape (B, T, V), found {x.shape}")
            lens = z["lengths"] if "lengths" in z.files else np.full(len(x), x.shape[1])
            ids = [str(i) for i in z["ids"]] if "ids" in z.files else [f"{p.stem}-{i}" for i in range(len(x))]
            if lens.shape != (len(x),) or len(ids) != len(x):
                raise LmplugError(f"{p}: expected {len(x)} 'ids' and 'lengths' (one per utterance of 'emissions'), "
                                  f"found {len(ids)} ids and lengths of shape {lens.shape}")
            if not np.issubdtype(lens.dtype, np.integer) or ((lens < 1) | (lens > x.shape[1])).any():
                raise LmplugError(f"{p}: expected integer 'lengths' in [1, {x.shape[1]}], found {lens[:8].tolist()}")
            expect_unique_ids(p, ids, range(len(ids)), unit="positions of 'ids'")
            return [UtteranceEmissions(ids[i], x[i, : int(lens[i])], source=str(p)) for i in range(len(x))]
        return [UtteranceEmissions(k, z[k], source=str(p)) for k in sorted(z.files)]
    if p.suffix == ".jsonl":
        out, lines = [], []
        for n, row in read_jsonl(p, "manifest"):
            if not isinstance(row.get("emissions"), str):
                raise LmplugError(f"{p}:{n}: expected a JSON object with 'emissions' (and 'id', 'text'), found "
                                  f"{json.dumps(row)[:80]!r}")
            f = Path(row["emissions"])
            f = f if f.is_absolute() else p.parent / f
            if f.suffix not in (".npy", ".npz"):
                raise LmplugError(f"{p}:{n}: expected 'emissions' naming a .npy or .npz file, found {str(f)!r}")
            if not isinstance(row.get("text", ""), str):
                raise LmplugError(f"{p}:{n}: expected 'text' as a string, found {row['text']!r}")
            utts = _read_emissions(f)
            if len(utts) != 1:
                raise LmplugError(f"{p}:{n}: expected one (T, V) utterance in {f}, found {len(utts)}")
            out.append(UtteranceEmissions(str(row.get("id", f.stem)), utts[0].emissions, row.get("text"), utts[0].source))
            lines.append(n)
        if not out:
            raise LmplugError(f"{p}: expected at least one utterance, found an empty manifest")
        expect_unique_ids(p, [u.id for u in out], lines)
        return out
    raise LmplugError(f"{p}: expected a .npy, .npz or .jsonl file, found suffix {p.suffix!r}")


def batches(utts: Sequence[UtteranceEmissions], batch_size: int) -> Iterator[tuple[list[int], np.ndarray, np.ndarray]]:
    """Length-sorted batches: (indices into ``utts``, emissions (B, T, V), lengths (B,))."""
    if batch_size < 1:
        raise LmplugError(f"expected batch_size >= 1, found {batch_size}")
    shapes = {u.emissions.shape[1] for u in utts if u.emissions.ndim == 2}
    bad = [u.id for u in utts if u.emissions.ndim != 2]
    if bad or len(shapes) > 1:
        raise LmplugError(f"expected every utterance as (T, V) with one V, found V in {sorted(shapes)} and bad ranks for {bad[:3]}")
    order = sorted(range(len(utts)), key=lambda i: utts[i].emissions.shape[0])
    for a in range(0, len(order), batch_size):
        idx = order[a : a + batch_size]
        lens = np.array([max(1, utts[i].emissions.shape[0]) for i in idx], dtype=np.int64)
        V = utts[idx[0]].emissions.shape[1]
        x = np.full((len(idx), int(lens.max()), V), -np.log(V), dtype=np.float32)
        for r, i in enumerate(idx):
            e = utts[i].emissions
            if e.shape[0] == 0:
                raise LmplugError(f"utterance {utts[i].id!r}: expected at least one frame, found 0")
            x[r, : len(e)] = e
        yield idx, x, lens


def hypothesis_json(uid: str, hyps: Sequence[CTCHypothesis]) -> dict:
    best = hyps[0]
    row = {"id": uid, "text": best.text, "score": best.score, "scores": best.scores,
           "word_frames": [list(f) for f in best.word_frames]}
    if len(hyps) > 1:
        row["nbest"] = [{"text": h.text, "score": h.score, "scores": h.scores} for h in hyps]
    return row



def read_ctc_nbest(path: str | Path) -> tuple[list[str], list[list[dict]]]:
    """Utterance ids and their n-best lists from ``lmplug decode --nbest N`` JSONL (a row with only
    ``text``, ``score``, ``scores`` is a one-best list).

    Raises:
        LmplugError: naming ``path:line``: a row without ``id``, without ``nbest``/``text``, a
            hypothesis without a ``text`` string or with a non-numeric (or NaN, +inf) score; a
            repeated id; no rows.
    """
    ids, lists, lines = [], [], []
    for n, row in read_jsonl(path):
        if "id" not in row:
            raise LmplugError(f"{path}:{n}: expected a JSON object with an 'id', found {json.dumps(row)[:80]!r}")
        if "nbest" not in row and "text" not in row:
            raise LmplugError(f"{path}:{n}: expected 'nbest' (from `lmplug decode --nbest N`) or 'text'")
        ids.append(str(row["id"]))
        lines.append(n)
        if "nbest" in row and (not isinstance(row["nbest"], list) or not row["nbest"]):
            raise LmplugError(f"{path}:{n}: expected 'nbest' as a non-empty list of hypotheses, found {str(row['nbest'])[:80]}")
        lists.append(row["nbest"] if "nbest" in row else [{"text": row["text"], "score": row.get("score", 0.0),
                                                            "scores": row.get("scores", {})}])
        for h in lists[-1]:
            bad = _bad_hypothesis(h)
            if bad:
                raise LmplugError(f"{path}:{n}: expected hypotheses with a 'text' string and numeric (not NaN) "
                                  f"'score'/'scores', found {bad}")
    if not ids:
        raise LmplugError(f"{path}: expected at least one n-best list, found none")
    expect_unique_ids(path, ids, lines)
    return ids, lists


def _bad_hypothesis(h) -> str | None:
    """What is wrong with one n-best hypothesis (None: nothing)."""
    if not isinstance(h, dict) or not isinstance(h.get("text"), str) or not isinstance(h.get("scores", {}), dict):
        return f"{str(h)[:80]!r}"
    nums = {"score": h.get("score", 0.0), **{f"scores.{k}": v for k, v in (h.get("scores") or {}).items()}}
    for k, v in nums.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v) or v == math.inf:
            return f"{k} = {v!r}"
    return None


def read_references(path: str | Path, ids: Sequence[str]) -> list[str]:
    """The reference ``text`` of each of ``ids`` from a JSONL file of ``id`` and ``text`` (an
    emissions manifest), in the order of ``ids``.

    Raises:
        LmplugError: a row without ``id`` or a repeated id (naming ``path:line``), or an id of
            ``ids`` without a non-empty reference string.
    """
    rows = read_jsonl(path)
    for n, r in rows:
        if "id" not in r:
            raise LmplugError(f"{path}:{n}: expected a JSON object with an 'id', found {json.dumps(r)[:80]!r}")
    expect_unique_ids(path, [str(r["id"]) for _, r in rows], [n for n, _ in rows])
    refs = {str(r["id"]): r.get("text") for _, r in rows}
    missing = [i for i in ids if not isinstance(refs.get(i), str) or not refs[i]]
    if missing:
        raise LmplugError(f"{path}: expected a reference 'text' string for every n-best id, found none for "
                          f"{missing[:3]}")
    return [refs[i] for i in ids]
