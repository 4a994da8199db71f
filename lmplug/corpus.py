"""Text corpora: normalization, the embedded Bible corpus (Debian's SWORD modules), plain-text splits.

The embedded default needs nothing but Debian packages (diatheke, sword-text-kjv/web/sparv).
Verses are split **by book** so that no test verse, in any translation, reaches any training
text. KJV and RV1909 share one versification and stay aligned key for key (MT recipe).

Written files (``build_bible_corpus(out_dir)``)::

    kjv.{train,dev,test}.txt   cased verse text, one verse a line   (+ .keys: "Book C:V")
    web.{train,dev,test}.txt   World English Bible (train also holds its deuterocanon)
    rv.{train,dev,test}.txt    Reina-Valera 1909, aligned line for line with kjv.*
    en.{train,dev,test}.txt    normalized English LM text: kjv + web, lowercase, letters/'/space
    manifest.json              sources, splits, counts
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from lmplug.errors import LmplugError

BIBLE_MODULES = {"kjv": "engKJV2006eb", "web": "engWEB2015eb", "rv": "spaRV1909eb"}
BIBLE_SPLITS = {  # held-out books; every other book is train
    "dev": ("Judges", "Romans"),
    "test": ("Joshua", "Acts"),
}
_KEY = re.compile(r"^\s*(?:.*>)?\s*(?P<book>(?:I{1,3} |[1-3] )?[A-Z][A-Za-z() ]*?) (?P<ch>\d+):(?P<v>\d+):\s?(?P<text>.*)$")
_TAG = re.compile(r"<[^>]*>")
_WEB_GLOSSARY = "The following words used in the World English Bible"
_MARKUP_GLITCHES = {"Godcreated": "God created"}  # engWEB2015eb, Genesis 1:1
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "\u02bc": "'"})


@dataclass(frozen=True)
class Verse:
    book: str
    chapter: int
    verse: int
    text: str

    @property
    def key(self) -> str:
        return f"{self.book} {self.chapter}:{self.verse}"


def normalize(text: str, mode: str = "lower") -> str:
    """Normalize one line.

    Modes:
        ``lower``: NFKC, lowercase, curly apostrophes to ``'``, everything but letters (any
            script, accents kept), ``'`` and spaces removed, spaces collapsed: the text an ASR
            system writes, and the text both LMs of the LM recipe are trained and scored on.
        ``clean``: whitespace collapsed only (cased, punctuated: MT text).
    """
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)
    if mode == "clean":
        return " ".join(text.split())
    if mode != "lower":
        raise LmplugError(f"unknown normalization '{mode}', expected 'lower' or 'clean'")
    text = text.lower()
    text = "".join(ch if (ch.isalpha() or ch == "'") else " " for ch in text)
    words = (w.strip("'") for w in text.split())
    return " ".join(w for w in words if w)


LEAKED_LINE_MIN_COUNT = 3


def parse_diatheke(lines: Iterable[str]) -> list[Verse]:
    """Parse ``diatheke -f plain`` output: ``Book C:V: text`` lines plus continuation lines.

    A continuation line that occurs ``LEAKED_LINE_MIN_COUNT`` times or more in the dump is
    dropped: the KJV and WEB modules leak Psalm superscriptions after every following verse
    ("David's Psalm of praise." follows 14,781 KJV verses, Acts included; every superscription
    follows each verse of its psalm). Verse text that WEB splits over lines repeats rarely; the
    few refrains that do (Psalm 136's, "Selah.") are lost with the leaks, in training books only.
    """
    lines = [l.rstrip("\n") for l in lines]
    counts = Counter(_TAG.sub(" ", l).strip() for l in lines if not _KEY.match(l))
    leaked = {t for t, c in counts.items() if c >= LEAKED_LINE_MIN_COUNT and t}
    verses: list[Verse] = []
    cur: dict | None = None
    parts: list[str] = []

    def flush() -> None:
        if cur is not None:
            text = " ".join(" ".join(parts).split())
            if _WEB_GLOSSARY in text:  # engWEB2015eb appends its glossary to Revelation 22:21
                text = text[: text.index(_WEB_GLOSSARY)].strip()
            for glitch, fixed in _MARKUP_GLITCHES.items():
                text = text.replace(glitch, fixed)
            verses.append(Verse(cur["book"], int(cur["ch"]), int(cur["v"]), text))

    for line in lines:
        m = _KEY.match(line)
        if m:
            flush()
            cur = m.groupdict()
            parts = [_TAG.sub(" ", cur["text"])]
        elif cur is not None and line.strip() and not re.fullmatch(r"\s*\(\w+\)\s*", line):
            if _TAG.sub(" ", line).strip() not in leaked:
                parts.append(_TAG.sub(" ", line))
    flush()
    return [v for v in verses if v.text]


def read_bible(name: str) -> list[Verse]:
    """All verses of one installed SWORD module (``kjv``, ``web`` or ``rv``) through diatheke."""
    if name not in BIBLE_MODULES:
        raise LmplugError(f"unknown bible '{name}', expected one of {sorted(BIBLE_MODULES)}")
    if shutil.which("diatheke") is None:
        raise LmplugError(
            "diatheke not found: apt-get install -y diatheke sword-text-kjv sword-text-web sword-text-sparv "
            "(or run tools/setup.sh)"
        )
    module = BIBLE_MODULES[name]
    proc = subprocess.run(["diatheke", "-b", module, "-f", "plain", "-k", "Gen-Rev"], capture_output=True, text=True)
    verses = parse_diatheke(proc.stdout.splitlines())
    if proc.returncode != 0 or len(verses) < 1000:
        raise LmplugError(
            f"diatheke -b {module} gave {len(verses)} verses (exit {proc.returncode}); expected ~31,000. "
            f"Is sword-text-{ {'kjv': 'kjv', 'web': 'web', 'rv': 'sparv'}[name]} installed?"
        )
    return verses


def split_of_book(book: str) -> str:
    for split, books in BIBLE_SPLITS.items():
        if book in books:
            return split
    return "train"


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    path.write_text("".join(l + "\n" for l in lines), encoding="utf-8")


def build_bible_corpus(out_dir: str | Path, force: bool = False) -> dict:
    """Write the embedded default corpus (see module docstring); returns the manifest."""
    out = Path(out_dir)
    manifest_path = out / "manifest.json"
    if manifest_path.is_file() and not force:
        return json.loads(manifest_path.read_text())
    out.mkdir(parents=True, exist_ok=True)
    bibles = {name: read_bible(name) for name in BIBLE_MODULES}
    # KJV and RV1909 aligned key for key: keep the keys both have, in KJV order
    rv_by_key = {v.key: v for v in bibles["rv"]}
    kjv = [v for v in bibles["kjv"] if v.key in rv_by_key]
    aligned = {"kjv": kjv, "rv": [rv_by_key[v.key] for v in kjv], "web": bibles["web"]}
    counts: dict[str, dict[str, int]] = {}
    for name, verses in aligned.items():
        for split in ("train", "dev", "test"):
            sel = [v for v in verses if split_of_book(v.book) == split]
            _write_lines(out / f"{name}.{split}.txt", [normalize(v.text, "clean") for v in sel])
            _write_lines(out / f"{name}.{split}.keys", [v.key for v in sel])
            counts.setdefault(name, {})[split] = len(sel)
    for split in ("train", "dev", "test"):
        lines = []
        for name in ("kjv", "web"):
            lines += [normalize(l, "lower") for l in (out / f"{name}.{split}.txt").read_text(encoding="utf-8").splitlines()]
        _write_lines(out / f"en.{split}.txt", [l for l in lines if l])
        counts.setdefault("en", {})[split] = sum(1 for l in lines if l)
    manifest = {
        "source": {n: f"diatheke -b {m} -f plain -k Gen-Rev" for n, m in BIBLE_MODULES.items()},
        "splits": {k: list(v) for k, v in BIBLE_SPLITS.items()} | {"train": "all other books"},
        "aligned": "kjv.* and rv.* line for line (shared verse keys)",
        "normalization": {"en.*": "lower(kjv + web)", "kjv/web/rv.*": "clean"},
        "counts": counts,
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def split_text_file(
    input_path: str | Path, out_dir: str | Path, normalization: str = "lower", every: int = 50, prefix: str = ""
) -> dict:
    """Split a one-sentence-or-paragraph-a-line corpus deterministically by line number.

    Line ``i`` (0-based, counted over non-empty normalized lines) goes to dev when
    ``i % every == every // 2``, to test when ``i % every == every // 2 + 1``, else to train: a
    2% dev and 2% test sample spread evenly over the whole text. ``every`` >= 3 leaves no split empty.
    """
    if every < 3:
        raise LmplugError(f"expected every >= 3 (of every EVERY lines, one goes to dev, one to test, the rest to train), "
                          f"found {every}")
    src = Path(input_path)
    if not src.is_file():
        raise LmplugError(f"corpus not found: expected a text file at {src}")
    lines = [normalize(l, normalization) for l in src.read_text(encoding="utf-8", errors="strict").splitlines()]
    lines = [l for l in lines if l]
    if len(lines) < every:
        raise LmplugError(f"{src}: {len(lines)} non-empty lines, expected at least {every} to split")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts: dict[str, list[str]] = {"train": [], "dev": [], "test": []}
    for i, l in enumerate(lines):
        r = i % every
        parts["dev" if r == every // 2 else "test" if r == every // 2 + 1 else "train"].append(l)
    for split, ls in parts.items():
        _write_lines(out / f"{prefix}{split}.txt", ls)
    return {k: len(v) for k, v in parts.items()}


def read_lines(path: str | Path) -> list[str]:
    """Non-empty stripped lines of a UTF-8 text file, with clear errors for missing/empty files."""
    p = Path(path)
    if not p.is_file():
        raise LmplugError(f"text file not found: {p}")
    try:
        lines = [l.strip() for l in p.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError as e:
        raise LmplugError(f"{p}: expected UTF-8 text, found undecodable bytes at offset {e.start}") from None
    lines = [l for l in lines if l]
    if not lines:
        raise LmplugError(f"{p}: empty corpus, expected at least one non-empty line")
    return lines
