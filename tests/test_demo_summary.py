"""tools/demo_summary.py: the demo's table puts each number beside the committed one and says
whether they agree; a part that did not run is a row saying so, not a crash."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("demo_summary", ROOT / "tools" / "demo_summary.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def test_rows_compare_with_the_committed_results(tmp_path, monkeypatch):
    tool = _tool()
    committed = {"lm_card": tmp_path / "card.json", "lm_results": tmp_path / "lm.json", "asr_real": tmp_path / "asr.json",
                 "asr_synthetic": tmp_path / "none.json"}
    _write(committed["lm_card"], {"metrics": {"ppl_word": 80.48}})
    _write(committed["lm_results"], {"corpora": {"bible": {"kenlm": {"ppl_word": 105.0}}}})
    systems = {"lmplug_kenlm": ("lmplug + KenLM", 0.2342), "lmplug_transformer": ("lmplug + Transformer", 0.2282),
               "lmplug_both": ("both", 0.2255), "greedy": ("greedy", 0.4246), "hama_kenlm": ("hama + KenLM", 0.1336),
               "hama_lm": ("hama + Transformer", 0.1228)}
    asr = {"domains": {"cathy": {"systems": {k: {"label": lab, "wer": w} for k, (lab, w) in systems.items()}}}}
    _write(committed["asr_real"], asr)
    monkeypatch.setattr(tool, "COMMITTED", committed)
    exp = tmp_path / "demo"
    _write(exp / "lm" / "reference_bible.json", [{"ppl_word": 80.48}, {"ppl_word": 105.0}])
    got = json.loads(json.dumps(asr))
    got["domains"]["cathy"]["systems"]["hama_lm"]["wer"] = 0.1300  # one number off
    _write(exp / "real" / "cpu" / "results.json", got)

    lm = tool.lm_rows(exp)
    assert lm[0]["match"] == "yes" and lm[0]["change"] == "0.766x" and "80.48" in lm[0]["with_lm"]
    assert len(lm) == 1  # no LM trained in this exp dir: no row for it
    speech = {r["what"]: r for r in tool.speech_rows(exp)}
    head = speech["WER %, real recordings (Cathy test), Whisper-base CTC head, KenLM vs Transformer fusion"]
    assert head["match"] == "yes" and head["change"] == "-2.6%"
    hama = speech["WER %, real recordings (Cathy test), hama phones + lexicon, KenLM vs Transformer fusion"]
    assert hama["match"] == "no (+0.72)"
    assert "not decoded" in speech["WER %, other speakers (10 utterances; half their text is in the LM data), hama + lexicon"]["note"]
    assert speech["WER %, synthetic speech (recipes/asr_ctc_fusion)"]["note"] == "stage 3 not run"


def _mt_results(bleu: dict[str, float], weights: dict[str, float]) -> dict:
    """One corpus of tools/mt_results.py's output: eval-mt's rows (p against the 1-best), the weights files."""
    systems = [{"name": k, "bleu": b, "p_bleu": None if k == "1best" else 0.001} for k, b in bleu.items()]
    return {"eval_test": {"systems": systems, "n_sentences": 1000}, "translate": {"dev": None, "test": {"beam": 50}},
            "weights": {name: {"weights": weights, "dev_bleu": 38.3} for name in ("lm", "lm_channel")}}


def test_translation_rows_compare_with_the_run_of_the_same_weights(tmp_path, monkeypatch):
    tool = _tool()
    bleu = {"1best": 35.15, "lm": 35.31, "lm_channel": 37.51}
    w, other = {"nmt_norm": 0.83, "lm": 0.02, "channel": 0.08}, {"nmt_norm": 1.0, "lm": 0.0, "channel": 0.0}
    committed = {"corpora": {"multi30k_first": _mt_results({"1best": 8.95, "lm": 9.0, "lm_channel": 9.11}, other),
                             "multi30k_beam50": _mt_results(bleu, w)}}
    _write(tmp_path / "mt.json", committed)
    monkeypatch.setattr(tool, "COMMITTED", {"mt": tmp_path / "mt.json"})
    exp = tmp_path / "demo"
    _write(exp / "mt" / "cpu" / "results.json", {"corpora": {"multi30k": _mt_results({**bleu, "lm_channel": 37.20}, w)}})
    lm, channel = tool.mt_rows(exp)
    assert lm["what"].startswith("BLEU (higher is better), Multi30k En->De test (1000 sentences), beam 50 1-best")
    assert (lm["baseline"], lm["with_lm"], lm["change"], lm["committed"], lm["match"]) == (
        "beam 1-best 35.15", "reranked 35.31 (p = 0.001)", "+0.16 BLEU", "35.15 / 35.31", "yes")
    assert lm["note"] == "committed: the run `multi30k_beam50` of recipes/mt_nbest_rerank/results/results.json"
    assert channel["what"] == "the same, reranked with the LMs and the channel model"
    assert channel["change"] == "+2.05 BLEU" and channel["match"] == "no (-0.31)" and "note" not in channel
    # weights of no committed run: nothing to compare with, and the row says so
    _write(exp / "mt" / "cpu" / "results.json", {"corpora": {"multi30k": _mt_results(bleu, {"nmt_norm": 0.5})}})
    lm, _ = tool.mt_rows(exp)
    assert lm["committed"] == "" and lm["match"] == "" and lm["note"] == "no run of the committed results.json has these weights"
    # the demo left translation out this time: its reason, not the results of an earlier run
    (exp / "mt" / "skipped.txt").write_text("no models/nmt-multi30k-en-de/card.json\n")
    assert tool.mt_rows(exp) == [{"what": "BLEU, translation n-best reranking (recipes/mt_nbest_rerank)",
                                  "note": "stage 4 not run: no models/nmt-multi30k-en-de/card.json"}]


def test_missing_parts_are_rows(tmp_path, capsys):
    tool = _tool()
    import sys

    argv = sys.argv
    sys.argv = ["demo_summary.py", str(tmp_path), "--out", str(tmp_path / "s.json"), "--markdown", str(tmp_path / "S.md")]
    try:
        tool.main()
    finally:
        sys.argv = argv
    text = (tmp_path / "S.md").read_text()
    assert "| per-word perplexity, bible test | stage 1 not run |" in text
    assert "| WER %, real speech (recipes/asr_real) | stage 2 not run |" in text
    assert "synthetic speech" in text
    assert "| BLEU, translation n-best reranking (recipes/mt_nbest_rerank) | stage 4 not run | | | | |" in text
    assert capsys.readouterr().out.strip() == text.strip()
