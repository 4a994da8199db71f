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
    assert "synthetic speech" in text and "translation" in text
    assert capsys.readouterr().out.strip() == text.strip()
