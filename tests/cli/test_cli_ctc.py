"""lmplug decode / tune-ctc end to end on simulated emissions; n-best rescoring and reranking."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from ctc_helpers import ambiguous_emission, SENTENCES, one_thread, tiny_arpa, tiny_lm, write_emissions_dir

from lmplug.cli.main import main
from lmplug.ctc.decoder import build_ctc_decoder
from lmplug.errors import LmplugError
from lmplug.ctc.rescore import rerank, rescore_nbest
from lmplug.scorers.transformer import TransformerScorer
from lmplug.ctc.simulate import char_labels, pad_batch

single_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("ctc_cli")
    write_emissions_dir(d, SENTENCES, seed=11)
    return d


def test_decode_writes_jsonl_and_text(workdir, tmp_path):
    arpa = tiny_arpa(tmp_path)
    if arpa is None:
        pytest.skip("lmplz not found")
    out = tmp_path / "hyps.jsonl"
    rc = main(["decode", "--emissions", str(workdir / "dev.jsonl"), "--labels", str(workdir / "labels.json"),
               "--kenlm", str(arpa), "--weights", "kenlm=0.8,words=0.5", "--beam-size", "8", "--nbest", "2",
               "--out", str(out), "--quiet"])
    assert rc == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"u{i}" for i in range(len(SENTENCES))]
    assert {"text", "score", "scores", "word_frames", "nbest"} <= set(rows[0])
    assert sum(r["text"] == t for r, t in zip(rows, SENTENCES)) >= 3
    txt = tmp_path / "hyps.txt"
    assert main(["decode", "--emissions", str(workdir / "u0.npy"), "--labels", str(workdir / "labels.json"),
                 "--out", str(txt), "--quiet"]) == 0
    assert len(txt.read_text().splitlines()) == 1


def test_decode_search_torch_writes_what_numpy_writes(workdir, tmp_path, capsys):
    args = ["decode", "--emissions", str(workdir / "dev.jsonl"), "--labels", str(workdir / "labels.json"),
            "--weights", "words=0.5", "--beam-size", "8", "--nbest", "3", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "numpy.jsonl")]) == 0
    assert main([*args, "--out", str(tmp_path / "torch.jsonl"), "--search", "torch"]) == 0
    a, b = ([json.loads(line) for line in (tmp_path / f).read_text().splitlines()] for f in ("numpy.jsonl", "torch.jsonl"))
    assert [(r["id"], [h["text"] for h in r["nbest"]]) for r in a] == [(r["id"], [h["text"] for h in r["nbest"]]) for r in b]
    np.testing.assert_allclose([r["score"] for r in a], [r["score"] for r in b], rtol=1e-9)
    arpa = tiny_arpa(tmp_path)
    if arpa is not None:  # KenLM scores words: the host search only
        assert main([*args, "--kenlm", str(arpa), "--weights", "kenlm=1", "--search", "torch"]) == 2
        assert "use search='numpy'" in capsys.readouterr().err


def test_decode_user_errors_exit_2(workdir, tmp_path, capsys):
    rc = main(["decode", "--emissions", str(workdir / "missing.npy"), "--labels", str(workdir / "labels.json"), "--quiet"])
    assert rc == 2
    assert "expected a .npy, .npz or .jsonl file" in capsys.readouterr().err
    rc = main(["decode", "--emissions", str(workdir / "u0.npy"), "--labels", str(workdir / "labels.json"),
               "--weights", "lm0.5", "--quiet"])
    assert rc == 2
    assert "expected weights as name=value" in capsys.readouterr().err
    base = ["decode", "--emissions", str(workdir / "u0.npy"), "--labels", str(workdir / "labels.json"), "--quiet"]
    for extra, message in [(["--vocabulary", "v.txt"], "--vocabulary configures the scorer of --lm: expected --lm"),
                           (["--no-word-end"], "--no-word-end configures the scorer of --lm"),
                           (["--lm-unk-offset=-5"], "--lm-unk-offset configures the scorer of --lm"),
                           (["--unigrams", "v.txt"], "--unigrams configures the scorer of --kenlm: expected --kenlm")]:
        assert main(base + extra) == 2 and message in _one_line_error(capsys, "decode")
    from lmplug.cli.ctc import parse_weights, read_weights

    with pytest.raises(LmplugError, match="with finite values, found 'lm=nan'"):
        parse_weights("words=1,lm=nan")
    for bad in ('{"words": true}', '{"lm": NaN}', '{"weights": {"lm": Infinity}}'):
        (tmp_path / "w.json").write_text(bad)
        with pytest.raises(LmplugError, match=r"w.json\.(words|lm): expected a number, found"):
            read_weights(None, str(tmp_path / "w.json"), {})


def test_decode_bad_files_exit_2_before_the_work_and_keep_outputs(workdir, tmp_path, capsys):
    """Output paths are checked before decoding; unreadable inputs are one-line errors; a failed
    run leaves an earlier output file as it was."""
    base = ["decode", "--labels", str(workdir / "labels.json"), "--beam-size", "2", "--quiet"]
    em = ["--emissions", str(workdir / "dev.jsonl")]
    keep = tmp_path / "keep.jsonl"
    keep.write_text("earlier results\n")
    cases = [
        (em + ["--out", str(tmp_path / "nodir" / "x.jsonl")], "cannot write .*nodir/x.jsonl"),
        (em + ["--out", str(keep), "--stats", str(tmp_path / "nodir" / "s.json")], "cannot write .*nodir/s.json"),
        (em + ["--out", str(tmp_path)], "expected an output file, found a directory"),
    ]
    (tmp_path / "empty.jsonl").write_text("\n")
    cases.append((["--emissions", str(tmp_path / "empty.jsonl"), "--out", str(keep)], "found an empty manifest"))
    (tmp_path / "trunc.npy").write_bytes((workdir / "u0.npy").read_bytes()[:100])
    cases.append((["--emissions", str(tmp_path / "trunc.npy"), "--out", str(keep)], "trunc.npy: expected a numpy"))
    (tmp_path / "w.json").write_text('{"weights": {"kenlm": 0.5,')
    cases.append((em + ["--weights-file", str(tmp_path / "w.json"), "--out", str(keep)], "w.json: corrupt JSON"))
    (tmp_path / "labels.txt").write_bytes(b"a\n\xff\n")
    cases.append((em + ["--out", str(keep), "--labels", str(tmp_path / "labels.txt")], "expected UTF-8 labels"))
    e = np.load(workdir / "u0.npy")
    np.savez(tmp_path / "none.npz")
    np.save(tmp_path / "none.npy", e[None][:0])  # (0, T, V)
    np.savez(tmp_path / "ids.npz", emissions=np.stack([e, e]), ids=np.array(["a"]))
    np.savez(tmp_path / "lens.npz", emissions=np.stack([e, e]), lengths=np.array([len(e), -3]))
    (tmp_path / "self.jsonl").write_text(json.dumps({"id": "a", "emissions": "self.jsonl"}) + "\n")
    (tmp_path / "text.jsonl").write_text(json.dumps({"id": "a", "emissions": str(workdir / "u0.npy"), "text": 1}) + "\n")
    for name, message in [("none.npz", "expected at least one utterance, found none"),
                          ("none.npy", "expected at least one utterance, found none"),
                          ("ids.npz", "expected 2 'ids' and 'lengths'.*found 1 ids"),
                          ("lens.npz", r"expected integer 'lengths' in \[1, \d+\], found \[\d+, -3\]"),
                          ("self.jsonl", "self.jsonl:1: expected 'emissions' naming a .npy or .npz file"),
                          ("text.jsonl", "text.jsonl:1: expected 'text' as a string, found 1")]:
        cases.append((["--emissions", str(tmp_path / name), "--out", str(keep)], message))
    for args, message in cases:
        capsys.readouterr()
        assert main(base + args) == 2, args
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and re.search(message, err), (args, err)
        assert keep.read_text() == "earlier results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.jsonl", "ids.npz", "keep.jsonl", "labels.txt",
                                                          "lens.npz", "none.npy", "none.npz", "self.jsonl",
                                                          "text.jsonl", "trunc.npy", "w.json"]


@pytest.fixture
def tune_arpa(tmp_path):
    """The tiny ARPA model for tune-ctc tests (which also need jiwer and matplotlib)."""
    pytest.importorskip("jiwer")
    pytest.importorskip("matplotlib")
    arpa = tiny_arpa(tmp_path)
    if arpa is None:
        pytest.skip("lmplz not found")
    return arpa


def test_tune_ctc_writes_weights_and_heatmap(workdir, tmp_path, tune_arpa):
    arpa = tune_arpa
    out = tmp_path / "tune"
    rc = main(["tune-ctc", "--emissions", str(workdir / "dev.jsonl"), "--labels", str(workdir / "labels.json"),
               "--kenlm", str(arpa), "--lm-weights", "0,1", "--bonuses", "0,1", "--beam-size", "8",
               "--out-dir", str(out), "--quiet"])
    assert rc == 0
    res = json.loads((out / "weights.json").read_text())
    assert set(res["weights"]) == {"kenlm", "words"} and np.array(res["grid"]).shape == (2, 2)
    assert res["wer"] == min(min(r) for r in res["grid"])
    assert res["weights"]["kenlm"] == 1.0  # the LM helps on these emissions
    assert res["signature"].startswith("beam:8|token_min_logp:-5|mode:word|history_words:None|oov_penalty:-10|lookahead:|")
    assert (out / "wer_heatmap.png").read_bytes()[:4] == b"\x89PNG"


def test_tune_ctc_and_decode_take_logits(workdir, tmp_path, tune_arpa, capsys):
    """--logits: the same weights, grid and hypotheses as the log-probs they normalize to."""
    rows = _rows(workdir)
    for r in rows:  # logits: log-probs shifted per frame (log-softmax undoes it)
        e = np.load(r["emissions"])
        r["emissions"] = str(tmp_path / f"logits_{r['id']}.npy")
        np.save(r["emissions"], (e + np.arange(len(e))[:, None] % 3).astype(np.float32))
    (tmp_path / "logits.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = ["--labels", str(workdir / "labels.json"), "--kenlm", str(tune_arpa), "--beam-size", "4", "--quiet"]
    tune = ["tune-ctc", *common, "--lm-weights", "0,1", "--bonuses", "0,1"]
    assert main(tune + ["--emissions", str(workdir / "dev.jsonl"), "--out-dir", str(tmp_path / "p")]) == 0
    logits = ["--emissions", str(tmp_path / "logits.jsonl")]
    assert main(tune + logits + ["--out-dir", str(tmp_path / "l")]) == 2  # without --logits: named by id
    assert re.search(r"logits.jsonl: utterance 'u\d': expected log-probabilities", _one_line_error(capsys, "tune-ctc"))
    assert main(tune + logits + ["--logits", "--out-dir", str(tmp_path / "l")]) == 0
    ref, got = (json.loads((tmp_path / d / "weights.json").read_text()) for d in ("p", "l"))
    assert got["weights"] == ref["weights"] and got["grid"] == ref["grid"]
    decode = ["decode", *common, "--weights", "kenlm=1,words=0.5"]
    assert main(decode + ["--emissions", str(workdir / "dev.jsonl"), "--out", str(tmp_path / "p.txt"), "--format", "text"]) == 0
    assert main(decode + logits + ["--logits", "--out", str(tmp_path / "l.txt"), "--format", "text"]) == 0
    assert (tmp_path / "l.txt").read_text() == (tmp_path / "p.txt").read_text()


def test_backend_pyctcdecode_decodes_and_tunes(workdir, tmp_path, tune_arpa, capsys):
    """The baseline backend: the decoder's input checks, --logits, tune-ctc; what it lacks, refused."""
    pytest.importorskip("pyctcdecode")
    common = ["--emissions", str(workdir / "dev.jsonl"), "--labels", str(workdir / "labels.json"), "--quiet",
              "--backend", "pyctcdecode", "--kenlm", str(tune_arpa), "--beam-size", "8"]
    decode = ["decode", *common, "--weights", "kenlm=1,words=0.5", "--format", "text"]
    assert main(decode + ["--out", str(tmp_path / "h.txt")]) == 0
    hyps = (tmp_path / "h.txt").read_text().splitlines()
    assert len(hyps) == len(SENTENCES) and sum(h == t for h, t in zip(hyps, SENTENCES)) >= 3
    assert main(["tune-ctc", *common, "--lm-weights", "0,1", "--bonuses", "0.5", "--out-dir", str(tmp_path / "t")]) == 0
    res = json.loads((tmp_path / "t" / "weights.json").read_text())
    assert res["weights"]["kenlm"] == 1.0 and res["signature"].startswith("beam:8|")
    part = ["--shard-rank", "0", "--num-shards", "1", "--out", str(tmp_path / "s.txt")]  # sharded: the same
    assert main(decode + part) == 0 and main(["merge-decode", "--out", str(tmp_path / "s.txt"), "--num-shards", "1", "--quiet"]) == 0
    assert (tmp_path / "s.txt").read_text().splitlines() == hyps
    for extra, message in [(["--lexicon"], "found --mode word --lexicon"), (["--mode", "token"], "found --mode token")]:
        assert main(decode + extra + ["--out", str(tmp_path / "x.txt")]) == 2
        assert _one_line_error(capsys, "decode").endswith(message)


def test_tune_ctc_resumes_from_its_journal_and_runs_parallel(workdir, tmp_path, tune_arpa, monkeypatch, capsys):
    arpa = tune_arpa
    import lmplug.ctc.tune as ct

    out = tmp_path / "tune"
    args = ["tune-ctc", "--emissions", str(workdir / "dev.jsonl"), "--labels", str(workdir / "labels.json"),
            "--kenlm", str(arpa), "--lm-weights", "0,0.5,1", "--bonuses", "0,1", "--beam-size", "8",
            "--out-dir", str(out), "--quiet"]
    assert main(args) == 0
    full = json.loads((out / "weights.json").read_text())
    lines = (out / "grid.jsonl").read_text().splitlines()
    assert len(lines) == 6 and {json.loads(x)["wer"] for x in lines} == {w for r in full["grid"] for w in r}
    # interrupted after 4 points, the 5th line half written: the rerun decodes the 2 missing points only
    (out / "grid.jsonl").write_text("\n".join(lines[:4]) + "\n" + lines[4][:20])
    decoded = []
    real = ct.decode_texts
    monkeypatch.setattr(ct, "decode_texts", lambda dec, b: decoded.append(dict(dec.weights)) or real(dec, b))
    assert main(args) == 0
    assert len(decoded) == 2 and json.loads((out / "weights.json").read_text()) == full
    assert len((out / "grid.jsonl").read_text().splitlines()) == 6
    # another beam is another tuning: nothing reused; --restart decodes everything again
    decoded.clear()
    assert main(args[:-5] + ["--beam-size", "4", "--out-dir", str(out), "--quiet"]) == 0 and len(decoded) == 6
    decoded.clear()
    assert main(args + ["--restart"]) == 0 and len(decoded) == 6
    assert len((out / "grid.jsonl").read_text().splitlines()) == 6
    # a whole last line that lost its newline is kept (and the next line starts on a line of its own)
    (out / "grid.jsonl").write_text((out / "grid.jsonl").read_text().rstrip("\n"))
    decoded.clear()
    assert main(args) == 0 and decoded == []
    assert main(args[:-5] + ["--beam-size", "2", "--out-dir", str(out), "--quiet"]) == 0
    assert all(json.loads(x) for x in (out / "grid.jsonl").read_text().splitlines())
    # so is another word list or the lexicon (they change what the scorers and the search do)
    (tmp_path / "words.txt").write_text("the\ncat\nsat\n")
    for extra in (["--unigrams", str(tmp_path / "words.txt")], ["--lexicon"]):
        decoded.clear()
        assert main(args + extra) == 0 and main(args + extra) == 0 and len(decoded) == 6
    # two worker processes give the grid of one
    monkeypatch.undo()
    par = tmp_path / "par"
    assert main(args[:-3] + ["--out-dir", str(par), "--jobs", "2", "--threads", "1", "--quiet"]) == 0
    assert json.loads((par / "weights.json").read_text()) == full
    # a malformed line that is not the last one: a clear error naming it
    bad = (par / "grid.jsonl").read_text().splitlines()
    (par / "grid.jsonl").write_text("\n".join([bad[0], "{not json", *bad[1:]]) + "\n")
    assert main(args[:-3] + ["--out-dir", str(par), "--quiet"]) == 2
    assert "grid.jsonl:2: expected a JSON line with key, weights and wer" in capsys.readouterr().err
    assert main(args[:-3] + ["--out-dir", str(par), "--jobs", "0", "--quiet"]) == 2


def test_tune_ctc_one_weight_of_two_lms(workdir, tmp_path, tune_arpa, capsys):
    arpa = tune_arpa
    from lmplug.checkpoint import save_lm

    lm = tiny_lm(tmp_path, steps=20)
    save_lm(tmp_path / "lm", lm.model, lm.tokenizer)
    args = ["tune-ctc", "--emissions", str(workdir / "dev.jsonl"), "--labels", str(workdir / "labels.json"),
            "--kenlm", str(arpa), "--lm", str(tmp_path / "lm"), "--lm-weights", "0,0.5", "--bonuses", "1",
            "--beam-size", "4", "--out-dir", str(tmp_path / "tune"), "--quiet"]
    assert main(args) == 2 and "expected --tune NAME" in capsys.readouterr().err
    assert main(args + ["--tune", "lm"]) == 2 and "['kenlm']" in capsys.readouterr().err  # kenlm's weight missing
    assert main(args + ["--tune", "lm", "--weights", "kenlm=0.7"]) == 0
    res = json.loads((tmp_path / "tune" / "weights.json").read_text())
    assert res["weights"]["kenlm"] == 0.7 and res["lm_name"] == "lm" and set(res["weights"]) == {"kenlm", "lm", "words"}
    # --outer: KenLM's weight searched around the Transformer's grid; the best point over all of it
    outer = args + ["--tune", "lm", "--outer", "kenlm=0,1"]
    assert main(outer[:-1] + ["lm=0,1"]) == 2 and "--outer: expected NAME=W1,W2" in capsys.readouterr().err
    assert main(outer) == 0
    res = json.loads((tmp_path / "tune" / "weights.json").read_text())
    assert res["outer_name"] == "kenlm" and res["outer_weights"] == [0.0, 1.0] and len(res["outer_wer"]) == 2
    assert res["wer"] == min(res["outer_wer"]) == min(min(r) for r in res["grid"])
    assert res["weights"]["kenlm"] == res["outer_weights"][int(np.argmin(res["outer_wer"]))]
    assert res["outer_wer"][1] <= res["outer_wer"][0]  # KenLM helps on these emissions
    # look-ahead: named scorers only, recorded in the signature; pyctcdecode has none
    assert main(args + ["--tune", "lm", "--weights", "kenlm=0.7", "--lookahead", "lm"]) == 0
    res = json.loads((tmp_path / "tune" / "weights.json").read_text())
    assert "|history_words:None|oov_penalty:-10|lookahead:lm|" in res["signature"]
    assert main(args + ["--tune", "lm", "--weights", "kenlm=0.7", "--lookahead", "lm,words"]) == 2
    assert "lookahead: expected the name of a word-mode scorer" in capsys.readouterr().err
    py = ["decode", "--emissions", str(workdir / "dev.jsonl"), "--labels", str(workdir / "labels.json"),
          "--kenlm", str(arpa), "--backend", "pyctcdecode", "--lookahead", "kenlm", "--quiet"]
    assert main(py) == 2 and "pyctcdecode has no look-ahead" in capsys.readouterr().err
    # the partial-word penalty: recorded; pyctcdecode keeps its own
    assert main(args + ["--tune", "lm", "--weights", "kenlm=0.7", "--oov-penalty=-20"]) == 0
    assert "|oov_penalty:-20|" in json.loads((tmp_path / "tune" / "weights.json").read_text())["signature"]
    assert main(py[:-3] + ["--oov-penalty=-20", "--quiet"]) == 2
    assert "expected --oov-penalty -10 (the default), found -20" in capsys.readouterr().err
    assert main(py[:-3] + ["--history-words", "2", "--quiet"]) == 2
    assert "expected no --history-words, found 2" in capsys.readouterr().err
    # decode --stats reports the Transformer's forwards (padded tokens: rows x the longest row of a call)
    dec = ["decode", "--emissions", str(workdir / "dev.jsonl"), "--labels", str(workdir / "labels.json"),
           "--lm", str(tmp_path / "lm"), "--weights", "lm=0.5,words=1", "--beam-size", "4", "--out",
           str(tmp_path / "h.jsonl"), "--stats", str(tmp_path / "st.json"), "--quiet"]
    assert main(dec) == 0
    work = json.loads((tmp_path / "st.json").read_text())["lm_work"]
    assert 0 < work["forwards"] <= work["rows"] <= work["tokens"] <= work["padded_tokens"]
    # --lm-prefilter: fewer words scored per frame, less work; recorded; pyctcdecode has none
    assert main(dec + ["--lm-prefilter", "0.5"]) == 0
    st = json.loads((tmp_path / "st.json").read_text())
    assert st["lm_prefilter"] == 0.5 and st["lm_work"]["rows"] < work["rows"]
    assert main(dec + ["--lm-prefilter", "0"]) == 2 and "expected lm_prefilter > 0" in capsys.readouterr().err
    assert main(py[:-3] + ["--lm-prefilter", "1", "--quiet"]) == 2
    assert "expected no --lm-prefilter, found 1" in capsys.readouterr().err
    assert main(args + ["--tune", "lm", "--weights", "kenlm=0.7", "--lm-prefilter", "1"]) == 0
    assert "|lookahead:|lm_prefilter:1|n:" in json.loads((tmp_path / "tune" / "weights.json").read_text())["signature"]


def test_tune_ctc_memo_gives_the_grid_and_weights_of_none(workdir, tmp_path, monkeypatch):
    """--memo (the default): the Transformer's word scores shared by the grid points give the
    grid, the weights and the signature of --no-memo; a journal of one serves the other."""
    pytest.importorskip("jiwer")
    pytest.importorskip("matplotlib")
    import lmplug.ctc.tune as ct
    from lmplug.checkpoint import save_lm

    lm = tiny_lm(tmp_path, steps=20)
    save_lm(tmp_path / "lm", lm.model, lm.tokenizer)
    (tmp_path / "words.txt").write_text("\n".join(sorted({w for s in SENTENCES for w in s.split()})) + "\n")
    args = ["tune-ctc", "--emissions", str(workdir / "dev.jsonl"), "--labels", str(workdir / "labels.json"),
            "--lm", str(tmp_path / "lm"), "--vocabulary", str(tmp_path / "words.txt"), "--lm-weights", "0,0.5,1",
            "--bonuses", "0,1", "--beam-size", "4", "--lookahead", "lm", "--history-words", "1", "--quiet"]
    res = {}
    for flag, out in (("--memo", "memo"), ("--no-memo", "plain")):
        assert main(args + [flag, "--out-dir", str(tmp_path / out)]) == 0
        res[out] = json.loads((tmp_path / out / "weights.json").read_text())
    assert res["memo"] == res["plain"]
    decoded = []
    real = ct.decode_texts
    monkeypatch.setattr(ct, "decode_texts", lambda dec, b: decoded.append(dict(dec.weights)) or real(dec, b))
    assert main(args + ["--no-memo", "--out-dir", str(tmp_path / "memo")]) == 0 and decoded == []
    assert main(args + ["--memo-entries", "0", "--out-dir", str(tmp_path / "x")]) == 2


def test_rescore_with_transformer_lm_flips_the_first_pass(tmp_path):
    lm = tiny_lm(tmp_path, steps=80, seed=0)
    labels = char_labels(SENTENCES, delimiter=" ")
    cases = [("the dog ate the bone", 6, "t"), ("the cat ate the fish", 5, "o"), ("the cat sat on the mat", 20, "e")]
    em = [ambiguous_emission(t, labels, frame_of=f, wrong=w) for t, f, w in cases]
    x, lens = pad_batch([e.astype(np.float32) for e in em])
    nbest = build_ctc_decoder(labels, beam_size=8, nbest=8).decode(x, lens)
    assert all(n[0].text != t and t in [h.text for h in n] for n, (t, _, _) in zip(nbest, cases))
    sc = TransformerScorer(lm)
    re = rescore_nbest(nbest, {"lm": sc}, {"lm": 1.0})
    assert [n[0].text for n in re] == [t for t, _, _ in cases]
    h = re[0][0]
    assert h.score == pytest.approx(h.scores["ctc"] + h.scores["lm"])
    assert h.scores["lm"] == pytest.approx(sc.score_sentences([h.text])[0], abs=1e-4)
    # reranking from stored features alone, and pyctcdecode-style beams are accepted
    assert [h.text for h in rerank(re, {"lm": 1.0})[0]] == [h.text for h in re[0]]
    beams = [("the cat", None, [("the", (0, 2)), ("cat", (3, 5))], -3.0, -4.0)]
    assert rescore_nbest([beams], {"lm": sc}, {"lm": 1.0})[0][0].scores["ctc"] == -3.0
    with pytest.raises(LmplugError, match="missing"):
        rerank(re, {"other": 1.0})


def test_word_list_from_arpa_or_text(tmp_path):
    from lmplug.ctc.backends import read_words

    arpa = tiny_arpa(tmp_path)
    if arpa is None:
        pytest.skip("lmplz not found")
    words = read_words(str(arpa))
    assert set(" ".join(SENTENCES).split()) <= set(words) and "<s>" not in words
    (tmp_path / "w.txt").write_text("a\nb\n")
    assert read_words(str(tmp_path / "w.txt")) == ["a", "b"]
    with pytest.raises(LmplugError, match="expected an ARPA file"):
        read_words(str(tmp_path / "none.bin"))


def test_nbest_first_equals_one_best_with_kenlm(workdir, tmp_path):
    arpa = tiny_arpa(tmp_path)
    if arpa is None:
        pytest.skip("lmplz not found")
    common = ["decode", "--emissions", str(workdir / "dev.jsonl"), "--labels", str(workdir / "labels.json"),
              "--kenlm", str(arpa), "--weights", "kenlm=0.8,words=0.5", "--beam-size", "4", "--quiet"]
    assert main(common + ["--out", str(tmp_path / "one.jsonl")]) == 0
    assert main(common + ["--nbest", "4", "--out", str(tmp_path / "four.jsonl")]) == 0
    one = [json.loads(line) for line in (tmp_path / "one.jsonl").read_text().splitlines()]
    four = [json.loads(line) for line in (tmp_path / "four.jsonl").read_text().splitlines()]
    assert [r["text"] for r in one] == [r["text"] for r in four]
    assert [r["score"] for r in one] == pytest.approx([r["score"] for r in four])


def _rows(workdir) -> list[dict]:
    """The rows of workdir's manifest, with absolute emissions paths (for manifests elsewhere)."""
    rows = [json.loads(line) for line in (workdir / "dev.jsonl").read_text().splitlines()]
    return [{**r, "emissions": str(workdir / r["emissions"])} for r in rows]


def _one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"lmplug {command}: error: "), err
    return err


def test_decode_bad_device_threads_and_beam_size_exit_2(workdir, tmp_path, capsys):
    """--device, --threads, --beam-size and --nbest are checked before any work, for both backends."""
    arpa = tiny_arpa(tmp_path)
    if arpa is None:
        pytest.skip("lmplz not found")
    base = ["decode", "--emissions", str(workdir / "dev.jsonl"), "--labels", str(workdir / "labels.json"), "--quiet",
            "--out", str(tmp_path / "h.jsonl")]
    py = ["--backend", "pyctcdecode", "--kenlm", str(arpa), "--weights", "kenlm=0.5,words=1"]
    cases = [
        (["--device", "foo"], "expected a device such as auto, cpu, cuda or cuda:0, found 'foo'"),
        (["--device", "cuda:7"], "device 'cuda:7' requested but "),  # no CUDA here, or fewer GPUs
        (["--threads", "-2"], "--threads: expected an integer >= 0, found -2"),
        (["--beam-size", "0"], "--beam-size: expected an integer >= 1, found 0"),
        (py + ["--beam-size", "0"], "--beam-size: expected an integer >= 1, found 0"),
        (py + ["--nbest", "0"], "--nbest: expected an integer >= 1, found 0"),
    ]
    for args, message in cases:
        assert main(base + args) == 2, args
        assert message in _one_line_error(capsys, "decode"), args
    assert not (tmp_path / "h.jsonl").exists()
    tune = ["tune-ctc", "--emissions", str(workdir / "dev.jsonl"), "--labels", str(workdir / "labels.json"), "--quiet",
            "--out-dir", str(tmp_path / "tune")]
    assert main(tune + py + ["--beam-size", "-1"]) == 2
    assert "--beam-size: expected an integer >= 1, found -1" in _one_line_error(capsys, "tune-ctc")
    assert main(base + ["--threads", "0", "--device", "cpu", "--beam-size", "1"]) == 0  # 0: torch's own threads


def test_duplicate_utterance_ids_are_refused(workdir, tmp_path, capsys):
    """decode (a manifest, an .npz 'ids'), rescore and tune-rescore (n-best, references) name the file,
    the id and its lines."""
    rows = _rows(workdir)
    man = tmp_path / "dup.jsonl"
    man.write_text("".join(json.dumps(r) + "\n" for r in (rows[0], rows[1], rows[0])))
    labels = ["--labels", str(workdir / "labels.json"), "--quiet"]
    assert main(["decode", "--emissions", str(man), *labels]) == 2
    assert _one_line_error(capsys, "decode").endswith(f"{man}: expected each utterance id once, found 'u0' at lines 1 and 3")
    e = np.load(workdir / "u0.npy")
    np.savez(tmp_path / "b.npz", emissions=np.stack([e, e]), ids=np.array(["a", "a"]))
    assert main(["decode", "--emissions", str(tmp_path / "b.npz"), *labels]) == 2
    assert "found 'a' at positions of 'ids' 0 and 1" in _one_line_error(capsys, "decode")
    nb = tmp_path / "nb.jsonl"
    nb.write_text('{"id": "a", "text": "x"}\n{"id": "b", "text": "y"}\n\n{"id": "a", "text": "z"}\n')
    assert main(["rescore", "--nbest", str(nb), "--lm", str(tmp_path / "no_lm"), "--out", str(tmp_path / "r.jsonl")]) == 2
    assert _one_line_error(capsys, "rescore").endswith(f"{nb}: expected each utterance id once, found 'a' at lines 1 and 4")
    nb.write_text('{"id": "a", "text": "x"}\n')
    refs = tmp_path / "refs.jsonl"
    refs.write_text('{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n')
    assert main(["tune-rescore", "--nbest", str(nb), "--refs", str(refs), "--lm", str(tmp_path / "no_lm"),
                 "--out-dir", str(tmp_path / "t")]) == 2
    assert "refs.jsonl: expected each utterance id once, found 'a' at lines 1 and 2" in _one_line_error(capsys, "tune-rescore")


def test_nan_emissions_are_named_by_utterance_id_and_file(workdir, tmp_path, capsys):
    """The decoder knows batch positions only; the CLI names the manifest's id and the .npy; the
    log-prob check names the --logits flag."""
    arpa = tiny_arpa(tmp_path)
    if arpa is None:
        pytest.skip("lmplz not found")
    e = np.load(workdir / "u1.npy")
    e[3, 2] = np.nan
    np.save(tmp_path / "bad.npy", e)
    man = tmp_path / "nan.jsonl"
    man.write_text(json.dumps(_rows(workdir)[0]) + "\n" + json.dumps({"id": "spk1-utt7", "emissions": "bad.npy"}) + "\n")
    message = f"{tmp_path / 'bad.npy'}: expected finite emissions, found NaN or inf in utterance 'spk1-utt7' at frame 3"
    common = ["--emissions", str(man), "--labels", str(workdir / "labels.json"), "--quiet"]
    assert main(["decode", *common]) == 2
    assert _one_line_error(capsys, "decode").endswith(message)
    assert main(["tune-ctc", *common, "--kenlm", str(arpa), "--out-dir", str(tmp_path / "t")]) == 2
    assert _one_line_error(capsys, "tune-ctc").endswith(message)
    np.save(tmp_path / "bad.npy", np.load(workdir / "u1.npy") * 3)  # logits, the second utterance of its batch
    assert main(["decode", *common]) == 2
    error = _one_line_error(capsys, "decode")
    assert f"{man}: utterance 'spk1-utt7': expected log-probabilities" in error and "--logits" in error


def test_tune_rescore_refuses_an_empty_weight_grid(tmp_path, capsys):
    (tmp_path / "nb.jsonl").write_text('{"id": "a", "text": "x"}\n')
    base = ["tune-rescore", "--nbest", str(tmp_path / "nb.jsonl"), "--refs", str(tmp_path / "nb.jsonl"),
            "--lm", str(tmp_path / "no_lm"), "--out-dir", str(tmp_path / "t")]
    for flag, value in (("--lm-weights", ""), ("--lm-weights", " , "), ("--bonuses", "1,x")):
        assert main(base + [flag, value]) == 2
        assert f"{flag}: expected a comma-separated list of numbers, found {value!r}" in _one_line_error(capsys, "tune-rescore")
    (tmp_path / "file").write_text("")
    assert main(base[:-1] + [str(tmp_path / "file")]) == 2  # an --out-dir that is a file: before the work
    assert f"cannot make the output directory {tmp_path / 'file'}: File exists" in _one_line_error(capsys, "tune-rescore")
    tune = ["tune-ctc", "--emissions", str(tmp_path / "nb.jsonl"), "--labels", "x", "--kenlm", "x", "--out-dir"]
    assert main(tune + [str(tmp_path / "file")]) == 2
    assert "cannot make the output directory" in _one_line_error(capsys, "tune-ctc")
    (tmp_path / "refs.jsonl").write_text('{"id": "a", "text": 123}\n')  # checked before the LM is loaded
    assert main(base[:4] + [str(tmp_path / "refs.jsonl")] + base[5:]) == 2
    assert "refs.jsonl: expected a reference 'text' string for every n-best id, found none for ['a']" in \
        _one_line_error(capsys, "tune-rescore")
