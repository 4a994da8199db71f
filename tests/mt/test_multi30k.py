"""lmplug.mt.multi30k: copy from a folder (plain, .gz, a clone's raw/), download (a file:// mirror,
an unreachable host), line-count checks, and the layout the translation recipe reads."""

from __future__ import annotations

import gzip
import json
import re
import shutil

import pytest

from lmplug.errors import LmplugError
from lmplug.mt.multi30k import MULTI30K_URL, multi30k_files, multi30k_url, prepare_multi30k


def test_the_files_and_their_urls():
    files = multi30k_files()
    assert len(files) == 9 + 20
    assert files["task1/train.de"] == 29000 and files["task1/val.en"] == 1014
    assert files["task1/test_2016_flickr.fr"] == 1000 and files["task2/train.5.de"] == 29000
    assert files["task2/val.3.en"] == 1014 and "task2/test_2016_flickr.1.en" not in files
    assert multi30k_url("task1/train.en") == f"{MULTI30K_URL}/task1/raw/train.en.gz"
    assert multi30k_url("task1/train.en") == \
        "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/train.en.gz"
    assert multi30k_url("task2/val.2.de", "file:///m/") == "file:///m/task2/raw/val.2.de.gz"


def test_copy_from_a_folder_writes_the_layout_and_a_manifest(fake_multi30k, tmp_path):
    m = prepare_multi30k(tmp_path / "m", fake_multi30k, progress=False)
    for rel in multi30k_files():
        assert (tmp_path / "m" / rel).read_bytes() == (fake_multi30k / rel).read_bytes(), rel
    on_disk = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert on_disk == m and m["files"] == multi30k_files() and m["source"] == str(fake_multi30k)


def test_gz_files_and_a_clone_layout_are_read_too(fake_multi30k, tmp_path):
    src = tmp_path / "src"
    for i, rel in enumerate(multi30k_files()):
        task, name = rel.split("/")
        data = (fake_multi30k / rel).read_bytes()
        # a third each: plain, task/name.gz, task/raw/name.gz (a clone of the dataset's data/)
        dest = [src / rel, src / task / f"{name}.gz", src / task / "raw" / f"{name}.gz"][i % 3]
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data if i % 3 == 0 else gzip.compress(data))
    prepare_multi30k(tmp_path / "m", src, progress=False)
    for rel in multi30k_files():
        assert (tmp_path / "m" / rel).read_bytes() == (fake_multi30k / rel).read_bytes(), rel


def test_download_from_a_mirror(fake_multi30k, tmp_path):
    mirror = tmp_path / "mirror"
    for rel in multi30k_files():
        task, name = rel.split("/")
        (mirror / task / "raw").mkdir(parents=True, exist_ok=True)
        (mirror / task / "raw" / f"{name}.gz").write_bytes(gzip.compress((fake_multi30k / rel).read_bytes()))
    m = prepare_multi30k(tmp_path / "m", base_url=mirror.as_uri(), progress=False)
    assert m["source"] == mirror.as_uri()
    assert (tmp_path / "m" / "task1/val.de").read_bytes() == (fake_multi30k / "task1/val.de").read_bytes()


def test_an_unreachable_host_names_the_url(tmp_path):
    with pytest.raises(LmplugError) as e:
        prepare_multi30k(tmp_path / "m", base_url="http://127.0.0.1:9/data", timeout=5, progress=False)
    msg = str(e.value)
    assert msg.startswith("cannot download http://127.0.0.1:9/data/task1/raw/train.en.gz: ") and "\n" not in msg
    assert not (tmp_path / "m" / "manifest.json").exists()


def test_a_wrong_line_count_or_a_missing_file_is_an_error(fake_multi30k, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(fake_multi30k, src)
    val = src / "task1" / "val.de"
    val.write_text("".join(val.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(LmplugError, match=rf"^{re.escape(str(val))}: expected 1014 lines \(Multi30k task1/val.de\), found 1013$"):
        prepare_multi30k(tmp_path / "m", src, progress=False)
    assert not (tmp_path / "m" / "manifest.json").exists()
    val.unlink()
    with pytest.raises(LmplugError, match=r"expected task1/val.de \(or task1/val.de.gz, task1/raw/val.de.gz\), found none"):
        prepare_multi30k(tmp_path / "m", src, progress=False)
    with pytest.raises(LmplugError, match="found no folder"):
        prepare_multi30k(tmp_path / "m", tmp_path / "nowhere", progress=False)
    (src / "task1" / "val.de.gz").write_bytes(b"not gzip")
    with pytest.raises(LmplugError, match=r"val.de.gz: expected gzip data"):
        prepare_multi30k(tmp_path / "m", src, progress=False)


def test_a_complete_folder_is_kept_unless_forced(fake_multi30k, tmp_path):
    prepare_multi30k(tmp_path / "m", fake_multi30k, progress=False)
    again = prepare_multi30k(tmp_path / "m", tmp_path / "nowhere", progress=False)  # the source is not read
    assert again["source"] == str(fake_multi30k)
    with pytest.raises(LmplugError, match="found no folder"):
        prepare_multi30k(tmp_path / "m", tmp_path / "nowhere", force=True, progress=False)
