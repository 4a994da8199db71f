"""Sharded decoding: shards decoded one after another and merged equal the unsharded decode."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ctc_helpers import SENTENCES, one_thread, tiny_lm, write_emissions_dir

from lmplug.checkpoint import save_lm
from lmplug.cli.main import main
from lmplug.errors import LmplugError
from lmplug.shard import merge_parts, part_path, shard_indices

single_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("shard")
    texts = SENTENCES + [s.replace("the ", "a ") for s in SENTENCES]  # 10 utterances, odd lengths
    write_emissions_dir(d, texts, seed=3)
    lm = tiny_lm(d, steps=30)  # block_size 32: long hypotheses slide past the window
    save_lm(d / "lm", lm.model, lm.tokenizer)
    return d


def decode_args(d, out, *extra):
    return ["decode", "--emissions", str(d / "dev.jsonl"), "--labels", str(d / "labels.json"), "--lm", str(d / "lm"),
            "--weights", "lm=0.5,words=1.0", "--beam-size", "8", "--batch-size", "3", "--nbest", "2",
            "--out", str(out), "--quiet", *extra]


def read_jsonl(p):
    return [json.loads(line) for line in p.read_text().splitlines()]


def test_shard_indices_partition():
    parts = [shard_indices(10, r, 3) for r in range(3)]
    assert parts == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert shard_indices(1, 1, 2) == []
    with pytest.raises(LmplugError, match="rank 2 of 2"):
        shard_indices(5, 2, 2)


@pytest.mark.parametrize("world", [2, 3])
def test_sharded_decode_equals_unsharded(workdir, tmp_path, world):
    whole = tmp_path / "whole.jsonl"
    assert main(decode_args(workdir, whole, "--stats", str(tmp_path / "whole.stats.json"))) == 0
    out = tmp_path / "sharded.jsonl"
    for r in reversed(range(world)):  # any order
        assert main(decode_args(workdir, out, "--shard-rank", str(r), "--num-shards", str(world),
                                "--stats", str(tmp_path / f"s{r}.json"))) == 0
        assert part_path(out, r, world).is_file() and not out.exists()
    assert json.loads((tmp_path / "s0.json").read_text())["utterances"] == len(shard_indices(10, 0, world))
    assert main(["merge-decode", "--out", str(out), "--num-shards", str(world), "--stats",
                 str(tmp_path / "merged.stats.json"), "--quiet"]) == 0
    a, b = read_jsonl(whole), read_jsonl(out)
    assert [r["id"] for r in b] == [f"u{i}" for i in range(10)]
    assert [r["text"] for r in b] == [r["text"] for r in a]
    assert [[h["text"] for h in r["nbest"]] for r in b] == [[h["text"] for h in r["nbest"]] for r in a]
    assert [r["score"] for r in b] == pytest.approx([r["score"] for r in a], abs=1e-4)
    stats = json.loads((tmp_path / "merged.stats.json").read_text())
    assert stats["utterances"] == 10 and stats["num_shards"] == world and len(stats["shard_seconds"]) == world
    assert stats["seconds"] == pytest.approx(sum(stats["shard_seconds"])) and stats["beam_size"] == 8
    assert stats["token_min_logp"] == -5.0  # the pruning setting is recorded with the timing
    assert stats["history_words"] is None
    parts = [json.loads((tmp_path / f"s{r}.json").read_text())["lm_work"] for r in range(world)]
    assert stats["lm_work"] == {k: sum(w[k] for w in parts) for k in parts[0]} and stats["lm_work"]["tokens"] > 0
    assert not any(part_path(out, r, world).exists() for r in range(world))  # parts removed once merged
    txt = tmp_path / "sharded.txt"
    for r in range(world):
        assert main(decode_args(workdir, txt, "--shard-rank", str(r), "--num-shards", str(world))) == 0
    assert main(["merge-decode", "--out", str(txt), "--num-shards", str(world), "--quiet"]) == 0
    assert txt.read_text().splitlines() == [r["text"] for r in a]


def test_missing_or_stale_parts_are_clear_errors(workdir, tmp_path, capsys):
    out = tmp_path / "h.jsonl"
    assert main(decode_args(workdir, out, "--shard-rank", "1", "--num-shards", "2")) == 0
    assert main(["merge-decode", "--out", str(out), "--num-shards", "2"]) == 2
    err = capsys.readouterr().err
    assert "expected 2 decoded parts" in err and "found 1" in err and str(part_path(out, 0, 2)) in err
    assert part_path(out, 1, 2).is_file()  # nothing deleted on error
    # a part decoded with other settings is refused, not silently merged
    assert main(decode_args(workdir, out, "--shard-rank", "0", "--num-shards", "2", "--beam-size", "4")) == 0
    with pytest.raises(LmplugError, match="different runs"):
        merge_parts(out, 2)
    (tmp_path / "words.txt").write_text("the\ncat\n")  # another model or word list: the same
    assert main(decode_args(workdir, out, "--shard-rank", "0", "--num-shards", "2", "--vocabulary",
                            str(tmp_path / "words.txt"))) == 0
    with pytest.raises(LmplugError, match="different runs"):
        merge_parts(out, 2)
    # a part that is not one: a clear error naming it
    good = part_path(out, 0, 2).read_text().splitlines()
    for lines in (["[1]"], ['{"part": {"utterances": 0}}'], [good[0], "{not json"], [good[0], *good[1:-1], "[]"]):
        part_path(out, 0, 2).write_text("\n".join(lines) + "\n")
        with pytest.raises(LmplugError, match="part-0-of-2.jsonl: expected a part header and its rows"):
            merge_parts(out, 2)
    # user errors exit 2 with one line
    assert main(decode_args(workdir, out, "--shard-rank", "2", "--num-shards", "2")) == 2
    assert main(decode_args(workdir, out, "--shard-rank", "0")) == 2
    assert main(decode_args(workdir, "-", "--shard-rank", "0", "--num-shards", "2")) == 2
    err = capsys.readouterr().err
    assert "rank 2 of 2" in err and "together" in err and "found '-'" in err


TORCHRUN = Path(sys.executable).parent / "torchrun"


@pytest.mark.skipif(not TORCHRUN.is_file() and shutil.which("torchrun") is None, reason="torchrun not installed")
def test_torchrun_ranks_decode_their_shards_and_rank0_merges(workdir, tmp_path):
    args = ["decode", "--emissions", str(workdir / "dev.jsonl"), "--labels", str(workdir / "labels.json"),
            "--beam-size", "8", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "whole.jsonl")]) == 0
    env = {"OMP_NUM_THREADS": "1", "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"}
    torchrun = str(TORCHRUN) if TORCHRUN.is_file() else shutil.which("torchrun")
    out = tmp_path / "tr.jsonl"
    run = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", "-m", "lmplug", *args, "--out", str(out),
                          "--stats", str(tmp_path / "st.json")], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert out.read_text() == (tmp_path / "whole.jsonl").read_text()
    assert json.loads((tmp_path / "st.json").read_text())["num_shards"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["st.json", "tr.jsonl", "whole.jsonl"]
