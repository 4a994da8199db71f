#!/usr/bin/env python
"""Collect the LM recipe's outputs into one results.json and print a Markdown table.

    python tools/lm_results.py exp/lm/cpu --out exp/lm/cpu/results.json

Reads, per corpus directory: ppl.json (lmplug ppl), lm/train_summary.json, ngram5.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
from pathlib import Path


def git_rev() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("scale_dir", help="exp/lm/<scale>")
    ap.add_argument("--out", required=True, help="results.json path")
    args = ap.parse_args()
    root = Path(args.scale_dir)
    import torch

    from lmplug import __version__

    results = {"scale": root.name, "lmplug": __version__, "git": git_rev(), "torch": torch.__version__,
               "machine": f"{platform.machine()}, {torch.get_num_threads()} threads", "corpora": {}}
    rows = []
    for d in sorted(p for p in root.iterdir() if (p / "ppl.json").is_file()):
        ppl = json.loads((d / "ppl.json").read_text())
        train = json.loads((d / "lm" / "train_summary.json").read_text())
        tr, ng = ppl[0], ppl[1]
        entry = {
            "transformer": {**tr, "parameters": train["parameters"], "tokens_seen": train["tokens_seen"],
                            "train_seconds": train["elapsed_s"], "steps": train["steps"]},
            "kenlm": ng,
            "ratio_ppl_word": tr["ppl_word"] / ng["ppl_word"],
        }
        results["corpora"][d.name] = entry
        rows.append(f"| {d.name} | {tr['sentences']} | {tr['words']} | {ng['oov']} | {ng['ppl_word']:.2f} | "
                    f"{tr['ppl_word']:.2f} | **{entry['ratio_ppl_word']:.3f}** | {train['parameters'] / 1e6:.2f}M | "
                    f"{train['tokens_seen'] / 1e6:.2f}M | {train['elapsed_s'] / 60:.1f} |")
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print("| corpus | test sentences | test words | KenLM OOV | KenLM 5-gram ppl/word | Transformer ppl/word | "
          "ratio | params | tokens seen | train min |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
