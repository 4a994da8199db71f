#!/usr/bin/env python
"""Score the speech recipe's test hypotheses and write results.json plus a Markdown table.

    python tools/asr_results.py exp/asr/cpu --out exp/asr/cpu/results.json

Per domain directory (exp/asr/<scale>/<domain>/): references and durations from
emissions_test/manifest.jsonl, hypotheses hyps_<system>.jsonl, timings stats_<system>.json
(``seconds`` of decoding; the rescoring system adds stats_rescore_pass.json), weights from
tune_<name>/weights.json. WER and CER with jiwer.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

SYSTEMS = [  # (system, label, weights file or None, front end)
    ("greedy", "greedy (no LM)", None, "head"),
    ("beam", "beam, no LM", None, "head"),
    ("pyctcdecode_kenlm", "pyctcdecode + KenLM 5-gram", "tune_pyctcdecode", "head"),
    ("lmplug_kenlm", "lmplug + KenLM 5-gram", "tune_kenlm", "head"),
    ("kenlm_rescore", "lmplug + KenLM, then Transformer n-best rescoring", "tune_rescore", "head"),
    ("lmplug_transformer", "lmplug + Transformer LM (word fusion)", "tune_lm", "head"),
    ("lmplug_both", "lmplug + KenLM + Transformer LM (both fused)", "tune_both", "head"),
    ("hama_greedy", "hama phones + lexicon, greedy (beam 1, no LM)", None, "hama"),
    ("hama_nolm", "hama phones + lexicon, no LM", None, "hama"),
    ("hama_kenlm", "hama phones + lexicon + KenLM", "tune_hama", "hama"),
    ("hama_lm", "hama phones + lexicon + Transformer LM", "tune_hama_lm", "hama"),
    ("hama_both", "hama phones + lexicon + KenLM + Transformer LM", "tune_hama_both", "hama"),
    ("whisper", "anchor: Whisper base's own decoder (beam 5)", None, "head"),
]
# Each system is compared with the greedy output and the KenLM fusion of its own acoustic front end
# (the anchor with the head's): a gain is the LM's, not the front end's.
BASELINES = {"head": ("greedy", "lmplug_kenlm"), "hama": ("hama_greedy", "hama_kenlm")}


CAPTIONS = {  # what each test set is (the synthetic domains: held-out voices)
    "cathy": "real recordings of held-out prompts by the training speaker",
    "unseen": "real recordings of other speakers (weights from Cathy dev; half of the text is in the LMs' data)",
}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]


def acoustic_model(path: Path) -> dict:
    """What the results say about the acoustic model: a trained one's train_summary.json, or a reference
    checkpoint's card (name, parameters, commit, the weights' sha256)."""
    if (path / "train_summary.json").is_file():
        am = json.loads((path / "train_summary.json").read_text())
        return {k: am[k] for k in ("parameters", "steps", "units_seen", "elapsed_s", "dev_loss", "model")}
    if (path / "card.json").is_file():
        card = json.loads((path / "card.json").read_text())
        return {"model": str(path), "reference": card["name"], "parameters": card["parameters"],
                "lmplug_commit": card["lmplug_commit"], "sha256": card["files"]["model.safetensors"]["sha256"]}
    raise SystemExit(f"{path}: expected an acoustic model dir with train_summary.json or card.json, found neither")


def main() -> None:
    import jiwer

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("scale_dir", help="exp/asr/<scale>")
    ap.add_argument("--out", required=True, help="results.json")
    ap.add_argument("--weights-from", default=None,
                    help="a domain whose tune_* weights the others were decoded with (asr_real: cathy)")
    ap.add_argument("--am", default=None,
                    help="the acoustic model decoded (default: SCALE_DIR/am, trained by the recipe; a reference "
                         "checkpoint is described by its card.json)")
    args = ap.parse_args()
    root = Path(args.scale_dir)
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    results = {"scale": root.name, "git": git, "acoustic_model": acoustic_model(Path(args.am) if args.am else root / "am"),
               "domains": {}}
    for dom_dir in sorted(p for p in root.iterdir() if (p / "emissions_test" / "manifest.jsonl").is_file()):
        refs = read_jsonl(dom_dir / "emissions_test" / "manifest.jsonl")
        ref_text = {r["id"]: r["text"] for r in refs}
        audio_s = sum(r["duration"] for r in refs)
        rows = {}
        for name, label, tune, frontend in SYSTEMS:
            hyp_path = dom_dir / f"hyps_{name}.jsonl"
            if not hyp_path.is_file():
                continue
            hyps = {h["id"]: h["text"] for h in read_jsonl(hyp_path)}
            ids = [r["id"] for r in refs]
            R, H = [ref_text[i] for i in ids], [hyps.get(i, "") for i in ids]
            seconds = 0.0
            for stats in (f"stats_{name}.json", "stats_rescore_pass.json" if name == "kenlm_rescore" else None):
                if stats and (dom_dir / stats).is_file():
                    seconds += json.loads((dom_dir / stats).read_text())["seconds"]
            row = {"label": label, "frontend": frontend, "wer": jiwer.wer(R, H), "cer": jiwer.cer(R, H), "seconds": seconds,
                   "utt_per_s": len(ids) / seconds if seconds else None,
                   "rtf": seconds / audio_s if seconds else None}
            tuned = root / args.weights_from if args.weights_from else dom_dir
            if tune and (tuned / tune / "weights.json").is_file():
                t = json.loads((tuned / tune / "weights.json").read_text())
                row["weights"], row["dev_wer"] = t["weights"], t.get("wer")
                row["signature"] = t.get("signature", "")
            rows[name] = row
        for row in rows.values():
            g, k = (rows.get(b, {}).get("wer") for b in BASELINES[row["frontend"]])
            row["rel_vs_greedy"] = 1 - row["wer"] / g if g else None
            row["rel_vs_lmplug_kenlm"] = 1 - row["wer"] / k if k else None
        results["domains"][dom_dir.name] = {"utterances": len(refs), "audio_hours": audio_s / 3600, "systems": rows}
        print(f"\n**{dom_dir.name}** test: {len(refs)} utterances, {audio_s / 3600:.2f} h, "
              f"{CAPTIONS.get(dom_dir.name, 'held-out voices')}\n")
        print("| system | WER % | CER % | rel. WER vs its greedy | rel. vs its KenLM fusion | utt/s | RTF | weights (dev) |")
        print("|---|---|---|---|---|---|---|---|")
        for row in rows.values():
            f = lambda v, s="{:.1%}": s.format(v) if v is not None else "-"  # noqa: E731
            print(f"| {row['label']} | {100 * row['wer']:.2f} | {100 * row['cer']:.2f} | {f(row['rel_vs_greedy'])} | "
                  f"{f(row['rel_vs_lmplug_kenlm'])} | {f(row['utt_per_s'], '{:.1f}')} | {f(row['rtf'], '{:.4f}')} | "
                  f"{json.dumps(row.get('weights', ''))} |")
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
