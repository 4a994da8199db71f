"""Multi30k (Elliott et al., 2016), the translation recipe's corpus: fetched, never committed.

Its terms allow research use only, so the repository does not carry it: :func:`prepare_multi30k`
copies the files from a local folder, or downloads them from the dataset's own repository
(github.com/multi30k/dataset, ``data/task{1,2}/raw/*.gz``), checks every file's line count and
writes the layout ``recipes/mt_nbest_rerank/run.sh`` reads::

    OUT/task1/{train,val,test_2016_flickr}.{en,de,fr}   29000 / 1014 / 1000 lines, sentence-aligned
    OUT/task2/{train,val}.{1..5}.{en,de}                 29000 / 1014 lines, five captions per image
    OUT/manifest.json                                    source, files and line counts (written last)
"""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request
from pathlib import Path

from lmplug.errors import LmplugError
from lmplug.files import read_json, write_lines

# the raw files of github.com/multi30k/dataset (data/task1/raw/train.en.gz, ...)
MULTI30K_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data"
TASK1_LINES = {"train": 29000, "val": 1014, "test_2016_flickr": 1000}  # split -> sentences
TASK1_LANGS = ("en", "de", "fr")
TASK2_LINES = {"train": 29000, "val": 1014}
TASK2_LANGS = ("en", "de")
TASK2_CAPTIONS = 5  # independent captions per image


def multi30k_files() -> dict[str, int]:
    """Each file the recipe may read, as ``task/name`` (e.g. ``task1/train.en``) -> its line count."""
    files = {f"task1/{split}.{lang}": n for split, n in TASK1_LINES.items() for lang in TASK1_LANGS}
    for split, n in TASK2_LINES.items():
        for i in range(1, TASK2_CAPTIONS + 1):
            files.update({f"task2/{split}.{i}.{lang}": n for lang in TASK2_LANGS})
    return files


def multi30k_url(rel: str, base_url: str = MULTI30K_URL) -> str:
    """Where ``task/name`` lives under ``base_url``: ``BASE/task/raw/name.gz``."""
    task, name = rel.split("/")
    return f"{base_url.rstrip('/')}/{task}/raw/{name}.gz"


def _count_lines(text: str) -> int:
    """Lines as ``wc -l`` counts them, plus an unterminated last line (only ``\\n`` ends a line:
    a caption may hold other Unicode line separators)."""
    return text.count("\n") + (1 if text and not text.endswith("\n") else 0)


def _decode(data: bytes, where: str, gzipped: bool) -> str:
    try:
        if gzipped:
            data = gzip.decompress(data)
        return data.decode("utf-8")
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
        raise LmplugError(f"{where}: expected gzip data, found something else ({e})") from None
    except UnicodeDecodeError as e:
        raise LmplugError(f"{where}: expected UTF-8 text, found byte {data[e.start]:#04x} at offset {e.start}") from None


def _read_local(source: Path, rel: str) -> tuple[str, str]:
    """``(text, path)`` of ``rel`` under ``source``: ``task1/train.en``, ``task1/train.en.gz`` or the
    dataset repository's own ``task1/raw/train.en.gz`` (``source`` = a clone's ``data/``)."""
    task, name = rel.split("/")
    for p, gz in ((source / task / name, False), (source / task / f"{name}.gz", True),
                  (source / task / "raw" / f"{name}.gz", True)):
        if p.is_file():
            return _decode(p.read_bytes(), str(p), gz), str(p)
    raise LmplugError(f"{source}: expected {task}/{name} (or {task}/{name}.gz, {task}/raw/{name}.gz), found none")


def _download(url: str, timeout: float) -> str:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            data = r.read()
    except urllib.error.HTTPError as e:
        raise LmplugError(f"cannot download {url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:  # no network, refused, timed out
        reason = getattr(e, "reason", None) or e
        raise LmplugError(f"cannot download {url}: {reason} (offline? copy the files from a folder with --from DIR)") \
            from None
    return _decode(data, url, gzipped=True)


def _lines_of(text: str) -> list[str]:
    """The lines of ``text`` split at ``\n`` only (as :func:`_count_lines` counts them)."""
    return text[:-1].split("\n") if text.endswith("\n") else text.split("\n") if text else []


def prepare_multi30k(out: str | Path, source: str | Path | None = None, *, base_url: str = MULTI30K_URL,
                     timeout: float = 60.0, force: bool = False, progress: bool = True) -> dict:
    """Copy (``source`` a folder) or download (``source`` None: from ``base_url``) Multi30k into ``out``.

    Args:
        out: output folder; gets ``task1/``, ``task2/`` and ``manifest.json``.
        source: a local folder holding ``task1/train.en`` etc. (plain or ``.gz``), or None to download.
        base_url: where ``task1/raw/train.en.gz`` etc. live (default: the dataset's GitHub repository).
        timeout: seconds to wait for each download to answer.
        force: fetch again even when ``out/manifest.json`` says the folder is complete.
        progress: show a progress bar (stderr) over the files.

    Returns:
        The manifest: ``source``, ``files`` (``task/name`` -> line count).

    Raises:
        LmplugError: a file missing or unreachable (the message names it), not gzip or UTF-8, or
            with a line count other than the dataset's.
    """
    out = Path(out)
    expected = multi30k_files()
    manifest_path = out / "manifest.json"
    if not force and manifest_path.is_file():
        try:
            manifest = read_json(manifest_path)
        except LmplugError:  # a corrupt manifest: fetch again
            manifest = {}
        if isinstance(manifest, dict) and manifest.get("files") == expected \
                and all((out / rel).is_file() for rel in expected):
            return manifest
    src = None if source is None else Path(source)
    if src is not None and not src.is_dir():
        raise LmplugError(f"--from: expected a folder holding task1/ and task2/, found no folder {src}")
    for task in ("task1", "task2"):
        try:
            (out / task).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise LmplugError(f"cannot make the output directory {out / task}: {e.strerror or e}") from None
    from tqdm import tqdm

    bar = tqdm(total=len(expected), unit="file", desc="multi30k " + ("copy" if src else "download"),
               disable=not progress)
    try:
        for rel, n in expected.items():
            bar.set_postfix_str(rel)
            if src is None:
                where = multi30k_url(rel, base_url)
                text = _download(where, timeout)
            else:
                text, where = _read_local(src, rel)
            found = _count_lines(text)
            if found != n:
                raise LmplugError(f"{where}: expected {n} lines (Multi30k {rel}), found {found}")
            write_lines(out / rel, _lines_of(text))
            bar.update(1)
    finally:
        bar.close()
    manifest = {"source": str(src) if src is not None else base_url,
                "licence": "research use only (Flickr30k terms); not to be committed",
                "home": "https://github.com/multi30k/dataset", "files": expected}
    write_lines(manifest_path, [json.dumps(manifest, indent=2)])
    return manifest
