"""lmplug.files: the JSON and JSONL readers name the file and line of what is wrong."""

from __future__ import annotations

import re

import pytest

from lmplug.errors import LmplugError
from lmplug.files import read_json, read_jsonl


def test_read_jsonl_gives_objects_with_their_line_numbers(tmp_path):
    p = tmp_path / "rows.jsonl"
    p.write_text('{"id": "a"}\n\n  \n{"id": "b", "x": 1.5}\n')
    assert read_jsonl(p) == [(1, {"id": "a"}), (4, {"id": "b", "x": 1.5})]
    p.write_text("")
    assert read_jsonl(p) == []


@pytest.mark.parametrize("text, message", [
    ('{"id": "a"}\n{"id": \n', ":2: expected a JSON object, found invalid JSON (Expecting value)"),
    ('{"id": "a"}\n\n[1, 2]\n', ":3: expected a JSON object, found list '[1, 2]'"),
    ('"just a string"\n', ":1: expected a JSON object, found str"),
])
def test_read_jsonl_errors_name_file_and_line(tmp_path, text, message):
    p = tmp_path / "rows.jsonl"
    p.write_text(text)
    with pytest.raises(LmplugError, match=re.escape(f"{p}{message}")):
        read_jsonl(p)


def test_read_jsonl_missing_file_and_bad_bytes(tmp_path):
    with pytest.raises(LmplugError, match=re.escape(f"manifest not found: {tmp_path / 'none.jsonl'}")):
        read_jsonl(tmp_path / "none.jsonl", "manifest")
    p = tmp_path / "latin1.jsonl"
    p.write_bytes(b'{"text": "caf\xe9"}\n')
    with pytest.raises(LmplugError, match=re.escape(f"{p}: expected UTF-8 JSON lines, found invalid bytes at byte 13")):
        read_jsonl(p)


def test_read_json_names_the_file_and_where(tmp_path):
    p = tmp_path / "w.json"
    p.write_text('{"lm": 0.5}')
    assert read_json(p) == {"lm": 0.5}
    p.write_text('{"lm": 0.5,\n "words": }')
    with pytest.raises(LmplugError, match=re.escape(f"{p}: corrupt JSON (Expecting value: line 2 column 11")):
        read_json(p)


def test_atomic_output_replaces_whole_or_not_at_all(tmp_path):
    from lmplug.files import atomic_output

    target = tmp_path / "sub" / "feats.npy"
    with atomic_output(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_bytes(b"first")
    assert target.read_bytes() == b"first"
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"first" and sorted(p.name for p in target.parent.iterdir()) == ["feats.npy"]


def _probe_many(path: str, n: int) -> int:
    from lmplug.files import check_writable

    for _ in range(n):
        check_writable(path)
    return n


def test_check_writable_from_two_processes_at_once(tmp_path):
    """The ranks of a torchrun decode check the same --stats path at the same moment: each probes
    its own file, so neither removes the other's (this raced, and failed a rank, under load)."""
    from concurrent.futures import ProcessPoolExecutor

    target = str(tmp_path / "stats.json")
    with ProcessPoolExecutor(2) as pool:
        assert list(pool.map(_probe_many, [target, target], [300, 300])) == [300, 300]
    assert list(tmp_path.iterdir()) == []
