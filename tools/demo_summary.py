#!/usr/bin/env python
"""The summary of `make demo` (recipes/demo/run.sh): one table, each row saying what it measures,
with the number the recipe's committed results give for the same checkpoints beside the demo's.

    .venv/bin/python tools/demo_summary.py exp/demo --out exp/demo/summary.json --markdown exp/demo/SUMMARY.md

Reads (under the demo's exp dir): lm/demo/bible/{ppl.json,lm/train_summary.json} (the LM trained in
the demo), lm/reference_bible.json (`lmplug ppl` of models/lm-bible and the KenLM), real/cpu/results.json
and asr/cpu/results.json (tools/asr_results.py), mt/cpu/results.json (tools/mt_results.py) or
mt/skipped.txt (why the demo left translation out). The committed numbers: models/lm-bible/card.json,
recipes/lm/results/results.json, recipes/asr_real/results/results_cpu.json,
recipes/asr_ctc_fusion/results/results_references.json, recipes/mt_nbest_rerank/results/results.json (the run
whose tuned weights are those the demo reranked with). A part whose outputs are missing is a row saying so.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = {
    "lm_card": ROOT / "models" / "lm-bible" / "card.json",
    "lm_results": ROOT / "recipes" / "lm" / "results" / "results.json",
    "asr_real": ROOT / "recipes" / "asr_real" / "results" / "results_cpu.json",
    "asr_synthetic": ROOT / "recipes" / "asr_ctc_fusion" / "results" / "results_references.json",
    "mt": ROOT / "recipes" / "mt_nbest_rerank" / "results" / "results.json",
}
MT_CORPORA = {"multi30k": "Multi30k En->De", "bible": "Bible Es->En"}
MT_SYSTEMS = [("lm", "the LMs (Transformer + KenLM)"), ("lm_channel", "the LMs and the channel model")]  # eval-mt names


def _read(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def _same(*pairs: tuple[float, float | None], tol: float = 0.01) -> str:
    """Whether each demo number equals its committed one within ``tol`` ("" when one is unknown)."""
    if any(want is None for _, want in pairs):
        return ""
    off = [f"{got - want:+.2f}" for got, want in pairs if abs(got - want) > tol]
    return "yes" if not off else f"no ({', '.join(off)})"


def lm_rows(exp: Path) -> list[dict]:
    rows = []
    ref = _read(exp / "lm" / "reference_bible.json")
    card, results = _read(COMMITTED["lm_card"]), _read(COMMITTED["lm_results"])
    if ref is None:
        return [{"what": "per-word perplexity, bible test", "note": "stage 1 not run"}]
    tr, ng = ref[0]["ppl_word"], ref[1]["ppl_word"]
    want_tr = card["metrics"]["ppl_word"] if card else None
    want_ng = results["corpora"]["bible"]["kenlm"]["ppl_word"] if results else None
    rows.append({"what": "per-word perplexity (lower is better), bible test (84,000 words)",
                 "baseline": f"KenLM 5-gram {ng:.2f}", "with_lm": f"Transformer, models/lm-bible {tr:.2f}",
                 "change": f"{tr / ng:.3f}x", "committed": f"{want_ng:.2f} / {want_tr:.2f}" if want_tr and want_ng else "",
                 "match": _same((ng, want_ng), (tr, want_tr))})
    small = _read(exp / "lm" / "demo" / "bible" / "ppl.json")
    summary = _read(exp / "lm" / "demo" / "bible" / "lm" / "train_summary.json")
    if small and summary:
        minutes = summary["elapsed_s"] / 60
        rows.append({"what": f"the same, an LM trained in this demo ({summary['steps']} steps, "
                             f"{summary['parameters'] / 1e6:.2f}M parameters, {minutes:.1f} min)",
                     "baseline": f"KenLM 5-gram {small[1]['ppl_word']:.2f}", "with_lm": f"Transformer {small[0]['ppl_word']:.2f}",
                     "change": f"{small[0]['ppl_word'] / small[1]['ppl_word']:.3f}x", "committed": "", "match": "",
                     "note": "training works; the reference LM above trained 4,800 steps"})
    return rows


def speech_rows(exp: Path) -> list[dict]:
    """The real-speech rows (recipes/asr_real), then the synthetic ones (recipes/asr_ctc_fusion)."""
    real = [  # (test set, what, baseline system, LM system)
        ("cathy", "WER %, real recordings (Cathy test), Whisper-base CTC head, KenLM vs Transformer fusion",
         "lmplug_kenlm", "lmplug_transformer"),
        ("cathy", "the same, both LMs fused", "lmplug_kenlm", "lmplug_both"),
        ("cathy", "the same, the head without an LM (greedy)", "greedy", "lmplug_transformer"),
        ("cathy", "WER %, real recordings (Cathy test), hama phones + lexicon, KenLM vs Transformer fusion",
         "hama_kenlm", "hama_lm"),
        ("unseen", "WER %, other speakers (10 utterances; half their text is in the LM data), hama + lexicon",
         "hama_kenlm", "hama_lm"),
    ]
    synthetic = [(dom, f"WER %, synthetic speech ({dom} test, held-out voices), {what}", base, sys)
                 for dom in ("bible", "gutenberg")
                 for what, base, sys in (("KenLM vs Transformer fusion", "lmplug_kenlm", "lmplug_transformer"),
                                         ("KenLM vs both LMs fused", "lmplug_kenlm", "lmplug_both"))]
    return (compare(_read(exp / "real" / "cpu" / "results.json"), _read(COMMITTED["asr_real"]), real,
                    "WER %, real speech (recipes/asr_real)", "stage 2")
            + compare(_read(exp / "asr" / "cpu" / "results.json"), _read(COMMITTED["asr_synthetic"]), synthetic,
                      "WER %, synthetic speech (recipes/asr_ctc_fusion)", "stage 3"))


def compare(got: dict | None, want: dict | None, pairs: list, what_all: str, stage: str) -> list[dict]:
    """A row per (test set, what, baseline system, LM system) of ``pairs`` that ``got`` (a speech
    recipe's results.json) decoded, beside ``want`` (the committed one)."""
    if got is None:
        return [{"what": what_all, "note": f"{stage} not run"}]
    rows = []
    for dom, what, base, sys in pairs:
        if dom not in got["domains"] and dom in ("bible", "gutenberg"):
            continue  # a synthetic domain the demo did not decode (no committed weights)
        g = got["domains"].get(dom, {}).get("systems", {})
        w = (want or {}).get("domains", {}).get(dom, {}).get("systems", {})
        if base not in g or sys not in g:
            rows.append({"what": what, "note": f"{base} or {sys} not decoded"})
            continue
        b, s = 100 * g[base]["wer"], 100 * g[sys]["wer"]
        wb, ws = (100 * w[base]["wer"], 100 * w[sys]["wer"]) if base in w and sys in w else (None, None)
        rows.append({"what": what, "baseline": f"{g[base]['label']} {b:.2f}", "with_lm": f"{g[sys]['label']} {s:.2f}",
                     "change": f"{(s - b) / b:+.1%}", "committed": f"{wb:.2f} / {ws:.2f}" if wb is not None else "",
                     "match": _same((b, wb), (s, ws))})
    return rows


def mt_rows(exp: Path) -> list[dict]:
    """The translation rows (recipes/mt_nbest_rerank): test BLEU of the beam 1-best and of the n-best
    reranked with the LMs, then also with the channel model, each with its p against the 1-best."""
    got, skipped = _read(exp / "mt" / "cpu" / "results.json"), exp / "mt" / "skipped.txt"
    if skipped.is_file() or got is None:
        why = f": {skipped.read_text().strip()}" if skipped.is_file() else ""
        return [{"what": "BLEU, translation n-best reranking (recipes/mt_nbest_rerank)", "note": f"stage 4 not run{why}"}]
    rows, committed = [], _read(COMMITTED["mt"])
    for corpus, res in got["corpora"].items():
        key, want = committed_run(res, committed)
        g = {r["name"]: r for r in res["eval_test"]["systems"]}
        w = {r["name"]: r for r in want["eval_test"]["systems"]} if want else {}
        beam = (res["translate"].get("test") or {}).get("beam", "?")
        source = (f"committed: the run `{key}` of recipes/mt_nbest_rerank/results/results.json" if key else
                  "no run of the committed results.json has these weights")
        for i, (sys, with_what) in enumerate(MT_SYSTEMS):
            what = (f"BLEU (higher is better), {MT_CORPORA.get(corpus, corpus)} test ({res['eval_test']['n_sentences']} "
                    f"sentences), beam {beam} 1-best vs reranked with {with_what}" if i == 0 else
                    f"the same, reranked with {with_what}")
            if "1best" not in g or sys not in g:
                rows.append({"what": what, "note": f"1best or {sys} not evaluated"})
                continue
            b, s, p = g["1best"]["bleu"], g[sys]["bleu"], g[sys].get("p_bleu")
            wb, ws = (w["1best"]["bleu"], w[sys]["bleu"]) if "1best" in w and sys in w else (None, None)
            rows.append({"what": what, "baseline": f"beam 1-best {b:.2f}",
                         "with_lm": f"reranked {s:.2f}" + (f" (p = {p:.3f})" if p is not None else ""),
                         "change": f"{s - b:+.2f} BLEU", "committed": f"{wb:.2f} / {ws:.2f}" if wb is not None else "",
                         "match": _same((b, wb), (s, ws)), **({"note": source} if i == 0 else {})})
    return rows


def committed_run(got: dict, committed: dict | None) -> tuple[str, dict | None]:
    """The run of the committed results.json (its key and results) whose tuned weights are those ``got``
    (one corpus of tools/mt_results.py's output) reranked with: ("", None) when none is."""
    mine = {name: w["weights"] for name, w in got["weights"].items()}
    for key, run in (committed or {}).get("corpora", {}).items():
        if mine and {name: w["weights"] for name, w in run.get("weights", {}).items()} == mine:
            return key, run
    return "", None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("exp", help="the demo's exp dir (exp/demo)")
    ap.add_argument("--out", required=True, help="summary JSON")
    ap.add_argument("--markdown", required=True, help="summary Markdown (SUMMARY.md)")
    args = ap.parse_args()
    exp = Path(args.exp)
    rows = lm_rows(exp) + speech_rows(exp) + mt_rows(exp)
    head = ("| what is measured | baseline | with the Transformer LM | change | committed RESULTS (baseline / LM) "
            "| same? |\n|---|---|---|---|---|---|")
    lines = [head] + [
        f"| {r['what']} | {r.get('baseline', '')} | {r.get('with_lm', '')} | {r.get('change', '')} | "
        f"{r.get('committed', '')} | {r.get('match', '')} |" if "baseline" in r else
        f"| {r['what']} | {r['note']} | | | | |" for r in rows]
    notes = [f"- {r['what']}: {r['note']}" for r in rows if "baseline" in r and r.get("note")]
    text = ("# lmplug demo: the reference checkpoints on the test sets\n\n"
            "Each row: a test set decoded or scored once with the checkpoints in models/ and the weights tuned on "
            "dev by the recipe (committed), beside the number the recipe's results give. Lower is better for "
            "perplexity and WER, higher for BLEU; change = LM row vs baseline row.\n\n" + "\n".join(lines) + "\n"
            + ("\n" + "\n".join(notes) + "\n" if notes else ""))
    Path(args.out).write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    Path(args.markdown).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
