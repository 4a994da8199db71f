"""n-best lists: Moses/Marian text format and JSON lines, read strictly, written back losslessly.

Moses/Marian format, one hypothesis a line, sentences in order, ids counting from 0::

    0 ||| ein Hund läuft . ||| nmt= -2.31 lm= -20.5 ||| -0.31

Moses writes a feature with several values as ``TM0= -1.2 -3.4``; it is read as ``TM0_0`` and
``TM0_1``. The last field (the system's total score) may be absent. JSON lines::

    {"id": 0, "text": "ein Hund läuft .", "scores": {"nmt": -2.31, "lm": -20.5}, "total": -0.31}

Every error names the file and line, and what was expected and found. Ids must run 0, 1, 2, ...
without gaps (a sentence with no hypothesis is an error, not something to skip), and with
``n_sources`` the last id must be ``n_sources - 1``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from lmplug.errors import LmplugError
from lmplug.files import write_lines

SEP = " ||| "


@dataclass
class NBestEntry:
    """One hypothesis of one source sentence, with its named feature values (a
    :class:`lmplug.features.Hypothesis`, as a CTC decoder's ``CTCHypothesis`` is)."""

    id: int  # source sentence index (0-based)
    text: str  # the hypothesis (non-empty)
    scores: dict[str, float] = field(default_factory=dict)  # feature name -> value
    total: float | None = None  # the producing system's overall score, if given


NBest = list[list[NBestEntry]]  # per source sentence, its hypotheses in file order


def _err(path: str | os.PathLike, line: int, msg: str) -> LmplugError:
    return LmplugError(f"{path}:{line}: {msg}")


def _number(tok: str, path, line: int, what: str) -> float:
    try:
        v = float(tok)
    except ValueError:
        raise _err(path, line, f"expected a number for {what}, found {tok!r}") from None
    if not math.isfinite(v):  # NaN or inf: no weighted sum of it ranks anything
        raise _err(path, line, f"expected a finite number for {what}, found {tok!r}")
    return v


def _json_number(v, path, line: int, what: str) -> float:
    """A JSON value that must be a finite number (JSON's NaN and Infinity extensions refused)."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        raise _err(path, line, f"expected a number for {what}, found {v!r}")
    try:
        f = float(v)
    except OverflowError:  # an integer beyond float range
        f = math.inf
    if not math.isfinite(f):
        raise _err(path, line, f"expected a finite number for {what}, found {v!r}")
    return f


def parse_features(text: str, path: str | os.PathLike = "<string>", line: int = 0) -> dict[str, float]:
    """``name= v [v ...] name= v`` -> {name: v} (several values -> name_0, name_1, ...)."""
    out: dict[str, float] = {}
    name, values = None, []

    def flush() -> None:
        if name is None:
            return
        if not values:
            raise _err(path, line, f"expected a value after feature '{name}=', found none")
        keys = [name] if len(values) == 1 else [f"{name}_{i}" for i in range(len(values))]
        for k, v in zip(keys, values):
            if k in out:
                raise _err(path, line, f"feature '{k}' appears twice")
            out[k] = v

    for tok in text.split():
        if tok.endswith("="):
            flush()
            name, values = tok[:-1], []
            if not name:
                raise _err(path, line, "expected a feature name before '=', found '='")
        elif name is None:
            raise _err(path, line, f"expected 'name=' before the first feature value, found {tok!r}")
        else:
            values.append(_number(tok, path, line, f"feature '{name}'"))
    flush()
    return out


def _parse_moses_line(raw: str, path, line: int) -> NBestEntry:
    fields = raw.split("|||")
    if len(fields) not in (3, 4):
        raise _err(path, line, f"expected 'id ||| hypothesis ||| features [||| total]' (3 or 4 fields), "
                               f"found {len(fields)} fields")
    id_text = fields[0].strip()
    if not (id_text.isascii() and id_text.isdigit()):  # "²".isdigit() too, but int() refuses it
        raise _err(path, line, f"expected a sentence id (a non-negative integer), found {id_text!r}")
    text = " ".join(fields[1].split())
    if not text:
        raise _err(path, line, "expected a non-empty hypothesis, found an empty one")
    scores = parse_features(fields[2], path, line)
    total = _number(fields[3].strip(), path, line, "the total score") if len(fields) == 4 else None
    return NBestEntry(int(id_text), text, scores, total)


def _parse_json_line(raw: str, path, line: int) -> NBestEntry:
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as e:
        raise _err(path, line, f"expected a JSON object, found invalid JSON ({e.msg})") from None
    if not isinstance(obj, dict):
        raise _err(path, line, f"expected a JSON object, found {type(obj).__name__}")
    missing = [k for k in ("id", "text") if k not in obj]
    if missing:
        raise _err(path, line, f"expected keys 'id' and 'text', missing {missing}")
    if not isinstance(obj["id"], int) or isinstance(obj["id"], bool) or obj["id"] < 0:
        raise _err(path, line, f"expected 'id' to be a non-negative integer, found {obj['id']!r}")
    if not isinstance(obj["text"], str) or not obj["text"].strip():
        raise _err(path, line, f"expected a non-empty hypothesis in 'text', found {obj['text']!r}")
    scores = obj.get("scores", {})
    if not isinstance(scores, dict):
        raise _err(path, line, f"expected 'scores' to be an object, found {type(scores).__name__}")
    clean = {str(k): _json_number(v, path, line, f"feature '{k}'") for k, v in scores.items()}
    total = obj.get("total")
    if total is not None:
        total = _json_number(total, path, line, "'total'")
    unknown = set(obj) - {"id", "text", "scores", "total"}
    if unknown:
        raise _err(path, line, f"unexpected keys {sorted(unknown)}; expected id, text, scores, total")
    return NBestEntry(obj["id"], " ".join(obj["text"].split()), clean, total)


def nbest_format(path: str | os.PathLike, fmt: str = "auto") -> str:
    """``moses`` or ``jsonl``; ``auto`` decides by the file name (``.jsonl``/``.json`` -> jsonl)."""
    if fmt == "auto":
        return "jsonl" if str(path).endswith((".jsonl", ".json")) else "moses"
    if fmt not in ("moses", "jsonl"):
        raise LmplugError(f"unknown n-best format '{fmt}', expected 'moses', 'jsonl' or 'auto'")
    return fmt


def read_nbest(path: str | os.PathLike, fmt: str = "auto", n_sources: int | None = None) -> NBest:
    """Read an n-best file into one list of hypotheses per source sentence.

    Args:
        fmt: ``moses``, ``jsonl`` or ``auto`` (by extension).
        n_sources: when given, the number of source sentences the list must cover exactly.

    Raises:
        LmplugError: on any malformed line, an id out of order or skipped, an empty hypothesis,
            an empty file, or a sentence count other than ``n_sources``.
    """
    p = Path(path)
    if not p.is_file():
        raise LmplugError(f"n-best file not found: {p}")
    parse = _parse_json_line if nbest_format(p, fmt) == "jsonl" else _parse_moses_line
    out: NBest = []
    with open(p, encoding="utf-8") as f:
        for line_no, raw in enumerate(f, 1):
            raw = raw.rstrip("\n")
            if not raw.strip():
                raise _err(p, line_no, "expected an n-best entry, found an empty line")
            e = parse(raw, p, line_no)
            cur = len(out) - 1  # id of the sentence being read (-1 before the first)
            if e.id == cur:
                out[-1].append(e)
            elif e.id == cur + 1:
                out.append([e])
            elif e.id < cur:
                raise _err(p, line_no, f"expected id {cur} or {cur + 1}, found {e.id} (ids out of order)")
            else:
                raise _err(p, line_no, f"expected id {cur + 1}, found {e.id} (no hypotheses for id {cur + 1})")
    if not out:
        raise LmplugError(f"{p}: expected at least one n-best entry, found an empty file")
    if n_sources is not None and len(out) != n_sources:
        raise LmplugError(f"{p}: expected hypotheses for {n_sources} source sentences (ids 0..{n_sources - 1}), "
                          f"found ids 0..{len(out) - 1}")
    return out


def _fmt(v: float) -> str:
    """Shortest text that reads back as the same float ("3" for 3.0)."""
    v = float(v)
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


def format_moses(e: NBestEntry) -> str:
    if "|||" in e.text or "\n" in e.text:
        raise LmplugError(f"hypothesis of id {e.id} contains '|||' or a newline; write JSON lines instead")
    feats = " ".join(f"{k}= {_fmt(v)}" for k, v in e.scores.items())
    line = f"{e.id}{SEP}{e.text}{SEP}{feats}"
    return line if e.total is None else line + SEP + _fmt(e.total)


def write_nbest(path: str | os.PathLike, nbest: Sequence[Sequence[NBestEntry]], fmt: str = "auto") -> None:
    """Write hypotheses (ids must be 0..len-1 in order) as Moses text or JSON lines, atomically."""
    p = Path(path)
    fmt = nbest_format(p, fmt)
    lines = []
    for i, hyps in enumerate(nbest):
        if not hyps:
            raise LmplugError(f"sentence {i} has no hypotheses; expected at least one per sentence")
        for e in hyps:
            if e.id != i:
                raise LmplugError(f"sentence {i} holds an entry with id {e.id}; expected id {i}")
            if not e.text.strip():
                raise LmplugError(f"sentence {i}: expected a non-empty hypothesis, found an empty one")
            if fmt == "jsonl":
                obj = {"id": e.id, "text": e.text, "scores": e.scores}
                if e.total is not None:
                    obj["total"] = e.total
                lines.append(json.dumps(obj, ensure_ascii=False))
            else:
                lines.append(format_moses(e))
    write_lines(p, lines)


def feature_names(nbest: NBest) -> list[str]:
    """Features every hypothesis carries, in first-seen order (raises if some entries lack one)."""
    names: dict[str, int] = {}
    total = 0
    for hyps in nbest:
        for e in hyps:
            total += 1
            for k in e.scores:
                names[k] = names.get(k, 0) + 1
    partial = {k: n for k, n in names.items() if n != total}
    if partial:
        k, n = next(iter(partial.items()))
        raise LmplugError(f"feature '{k}' is on {n} of {total} hypotheses; expected every hypothesis to carry it")
    return list(names)
