"""Choose a reranking feature set without the test set: 2-fold cross-validation on the dev n-best.

Tunes each feature set (``lmplug.mt.mert.tune_weights``, as ``lmplug tune-rerank`` does) on one half
of the dev sentences and measures the BLEU gain over the beam 1-best on the other half, then the
other way round; prints the mean held-out gain per set and writes JSON.

Usage (from the repository root; the dev n-best of recipes/mt_nbest_rerank stage 7):

    .venv/bin/python tools/mt_dev_cv.py --nbest exp/mt/cpu/multi30k/dev.feat.nbest \\
        --ref data/multi30k/task1/val.de --out exp/mt/cpu/multi30k/dev_cv.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lmplug.mt.mert import bleu_from_stats, bleu_stats, tune_weights
from lmplug.mt.nbest import read_nbest
from lmplug.mt.rerank import rerank_translations

BASE = "nmt,nmt_norm,words,len_ratio"
SETS = {
    "len": BASE, "lm": BASE + ",lm,kenlm", "channel": BASE + ",channel", "lm_channel": BASE + ",lm,kenlm,channel",
    "few_lm_channel": "nmt,channel,lm,words", "few_channel": "nmt,channel,words",
    "norm_lm_channel": "nmt_norm,channel_norm,lm_norm,words",
    "norm": "nmt_norm,words,len_ratio,lm_norm,kenlm_norm,channel_norm",
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nbest", required=True, help="dev n-best with features (nbest-features output)")
    ap.add_argument("--ref", required=True, help="dev references, one per line")
    ap.add_argument("--sets", default=",".join(SETS), help=f"feature sets to compare (of {sorted(SETS)})")
    ap.add_argument("--restarts", type=int, default=20)
    ap.add_argument("--window", type=int, default=0, help="smoothed line search (lmplug tune-rerank --window)")
    ap.add_argument("--folds", type=int, default=2, help="contiguous folds of the dev sentences")
    ap.add_argument("--out", default=None, help="write the gains as JSON here")
    args = ap.parse_args()
    nb = read_nbest(args.nbest)
    refs = Path(args.ref).read_text(encoding="utf-8").splitlines()
    if len(refs) != len(nb):
        sys.exit(f"mt_dev_cv: expected one reference per n-best sentence ({len(nb)}), found {len(refs)}")
    cut = [len(nb) * k // args.folds for k in range(args.folds + 1)]
    folds = [([i for i in range(len(nb)) if not cut[k] <= i < cut[k + 1]], range(cut[k], cut[k + 1]))
             for k in range(args.folds)]

    def bleu(texts: list[str], idx) -> float:
        return float(bleu_from_stats(bleu_stats(texts, [refs[i] for i in idx]).sum(0)))

    out = {}
    for name in args.sets.split(","):
        feats = SETS[name].split(",")
        gains = []
        for tr, te in folds:
            r = tune_weights([nb[i] for i in tr], [refs[i] for i in tr], feats, restarts=args.restarts,
                             progress=False, window=args.window)  # starts at nmt_norm=1 (run.sh's --init) if present
            held = [nb[i] for i in te]
            gains.append(bleu([e.text for e in rerank_translations(held, r.weights)], te) - bleu([h[0].text for h in held], te))
        out[name] = dict(features=SETS[name], gains=gains, mean_gain=float(np.mean(gains)))
        print(f"{name:16s} held-out BLEU gain {np.mean(gains):+.2f} ({', '.join(f'{g:+.2f}' for g in gains)})", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"nbest": args.nbest, "restarts": args.restarts, "window": args.window,
                                              "folds": args.folds, "sets": out}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
