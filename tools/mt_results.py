#!/usr/bin/env python
"""Collect the MT reranking recipe's outputs into one results.json and print Markdown tables.

    python tools/mt_results.py exp/mt/cpu --out exp/mt/cpu/results.json

Reads, per corpus directory: eval.test.json (lmplug eval-mt), weights.<set>.json (tune-rerank),
{dev,test}.translate.json (translate), {nmt,channel,lm}/train_summary.json, {dev,test}.features.json.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

from lm_results import git_rev  # tools/ is on sys.path when this script runs

ROWS = {"1best": "beam 1-best", "len": "rerank: lengths only", "lm": "+LM (Transformer + KenLM)",
        "channel": "+channel", "lm_channel": "+LM +channel",
        "norm": "+LM +channel, per-word scores", "norm_lm_channel": "+LM +channel, per-word, 4 features",
        "oracle": "n-best oracle"}


def _read(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def corpus_results(d: Path) -> dict:
    ev = _read(d / "eval.test.json")
    out = {"eval_test": ev, "weights": {}, "translate": {}, "features": {}, "training": {}}
    for w in sorted(d.glob("weights.*.json")):
        out["weights"][w.stem.split(".", 1)[1]] = _read(w)
    for s in ("dev", "test"):
        out["translate"][s] = _read(d / f"{s}.translate.json")
        out["features"][s] = _read(d / f"{s}.features.json")
    for m in ("nmt", "channel", "lm"):
        t = _read(d / m / "train_summary.json")
        if t:
            out["training"][m] = {k: t.get(k) for k in ("steps", "units_seen", "parameters", "elapsed_s", "dev_loss",
                                                        "model", "train")}
    return out


def table(name: str, res: dict) -> str:
    ev = res["eval_test"]
    lines = [f"### {name} (test, {ev['n_sentences']} sentences)", "",
             "| system | BLEU | chrF | p (BLEU, vs 1-best) | dev BLEU (tuned) |", "|---|---|---|---|---|"]
    for row in ev["systems"]:
        w = res["weights"].get(row["name"])
        p = "" if row.get("p_bleu") is None else f"{row['p_bleu']:.4f}"
        dev = f"{w['dev_bleu']:.2f}" if w else ""
        lines.append(f"| {ROWS.get(row['name'], row['name'])} | {row['bleu']:.2f} | {row['chrf']:.2f} | {p} | {dev} |")
    lines += ["", f"BLEU: `{ev['signatures'].get('BLEU')}`  ", f"chrF: `{ev['signatures'].get('chrF2')}`", ""]
    for k, w in res["weights"].items():
        lines.append(f"- weights `{k}`: " + ", ".join(f"{n}={v:+.4f}" for n, v in w["weights"].items()))
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("scale_dir", help="exp/mt/<scale>")
    ap.add_argument("--out", required=True, help="results.json path")
    args = ap.parse_args()
    root = Path(args.scale_dir)
    import torch

    from lmplug import __version__

    results = {"scale": root.name, "lmplug": __version__, "git": git_rev(), "torch": torch.__version__,
               "machine": f"{platform.machine()}, {torch.get_num_threads()} threads", "corpora": {}}
    for d in sorted(p for p in root.iterdir() if (p / "eval.test.json").is_file()):
        results["corpora"][d.name] = corpus_results(d)
        print(table(d.name, results["corpora"][d.name]))
    Path(args.out).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
