"""Benchmark CTC weight tuning with and without the Transformer's word-score memo (issue 25).

Tunes the same grid (LM weight x word bonus) on the same dev emissions twice, in one process:
once with a plain ``TransformerScorer``, once with it behind a ``MemoScorer`` shared by the grid
points (what ``lmplug tune-ctc --memo`` does in each process). Reports per run the wall seconds,
the LM's work (``TransformerScorer.work``: forwards, rows, tokens), the memo's counts, and
whether the two runs agree: the WER grid, the chosen weights, and the decoded texts of every
grid point.

Usage (from the repository root):

    # real emissions of the speech recipe, its search settings for the Transformer system
    .venv/bin/python tools/bench_tune.py --emissions exp/asr/cpu/bible/emissions_dev --n 20 \\
        --lm models/lm-bible --vocabulary exp/lm/cpu/bible/ngram5.arpa --lm-weights 0.5,1.0 --bonuses 0,2,4 \\
        --out exp/bench/tune_memo.json
    # seconds: simulated emissions of a text file, any LM checkpoint
    .venv/bin/python tools/bench_tune.py --text data/bible/en.dev.txt --n 10 --lm models/lm-bible
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lmplug.checkpoint import load_lm
from lmplug.cli.args import parse_grid
from lmplug.ctc.backends import read_words
from lmplug.ctc.decoder import build_ctc_decoder
from lmplug.ctc.simulate import char_labels, simulate_emissions, text_to_char_ids
from lmplug.files import write_benchmark
from lmplug.ctc.tune import SerialGrid, decode_texts, memoize_word_scorers, tune_ctc_weights, word_error_rate
from lmplug.scorers.transformer import TransformerScorer


class RecordingGrid(SerialGrid):
    """:class:`SerialGrid` that keeps the decoded texts of every grid point (``texts``)."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.texts: list[list[str]] = []

    def run(self, points):
        for i, weights in enumerate(points):
            self.decoder.set_weights(weights)
            self.texts.append(decode_texts(self.decoder, self.batches))
            yield i, word_error_rate(self.references, self.texts[-1])


def load_dev(args) -> tuple[list[str], list, list[str]]:
    """(labels, per-utterance (T, V) log-probs, references) of --emissions or simulated from --text."""
    if args.emissions:
        from lmplug.ctc.io import load_emissions, load_labels

        utts = load_emissions(Path(args.emissions) / "manifest.jsonl")[: args.n]
        if any(u.text is None for u in utts):
            sys.exit(f"bench_tune: expected a reference text for every utterance of {args.emissions}, found none for some")
        return load_labels(Path(args.emissions) / "labels.json"), [u.emissions for u in utts], [u.text for u in utts]
    if args.text:
        texts = [" ".join(t.split()) for t in open(args.text, encoding="utf-8") if t.strip()][: args.n]
        labels = char_labels(texts)
        return labels, simulate_emissions([text_to_char_ids(t, labels) for t in texts], labels, seed=args.seed), texts
    sys.exit("bench_tune: expected --emissions DIR or --text FILE, found neither")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--emissions", default=None, help="a real emissions dir (manifest.jsonl with references + labels.json)")
    ap.add_argument("--text", default=None, help="reference sentences, one per line (simulated emissions) instead")
    ap.add_argument("--lm", required=True, help="lmplug LM checkpoint dir")
    ap.add_argument("--vocabulary", default=None, help="the LM's known words (one per line, or an .arpa's 1-grams)")
    ap.add_argument("--n", type=int, default=20, help="dev utterances")
    ap.add_argument("--lm-weights", default="0.5,1.0", help="LM weights to try")
    ap.add_argument("--bonuses", default="0,2,4", help="word insertion bonuses to try")
    ap.add_argument("--beam-size", type=int, default=16)
    ap.add_argument("--token-min-logp", type=float, default=-8.0)
    ap.add_argument("--history-words", type=int, default=1, help="0: none (the recipes' Transformer systems: 1)")
    ap.add_argument("--lookahead", default="lm", help="scorers with look-ahead ('' for none; the recipes': lm)")
    ap.add_argument("--oov-penalty", type=float, default=-20.0)
    ap.add_argument("--batch-size", type=int, default=16, help="utterances decoded together")
    ap.add_argument("--max-entries", type=int, default=None, help="the memo's bound (default: MemoScorer's)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--seed", type=int, default=0, help="--text: the simulation's seed")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    labels, em, refs = load_dev(args)
    lm = load_lm(args.lm)
    vocab = read_words(args.vocabulary) if args.vocabulary else None
    lm_w, bon = parse_grid(args.lm_weights, "--lm-weights"), parse_grid(args.bonuses, "--bonuses")
    settings = dict(beam_size=args.beam_size, token_min_logp=args.token_min_logp,
                    history_words=args.history_words or None, lookahead=[x for x in args.lookahead.split(",") if x],
                    partial_oov_logp=args.oov_penalty)
    order = sorted(range(len(em)), key=lambda i: len(em[i]))  # length-sorted batches, as tune-ctc makes them
    runs, texts = {}, {}
    for name in ("plain", "memo"):
        scorer = TransformerScorer(lm, vocabulary=vocab)
        scorers = {"lm": scorer}
        if name == "memo":
            scorers = memoize_word_scorers(scorers, "word", **({"max_entries": args.max_entries} if args.max_entries else {}))
        dec = build_ctc_decoder(labels, scorers, {"lm": 0.0}, **settings)
        batches, ref = [], []
        for a in range(0, len(order), args.batch_size):
            idx = order[a : a + args.batch_size]
            T = max(len(em[i]) for i in idx)
            x = torch.zeros(len(idx), T, len(labels))
            for k, i in enumerate(idx):
                x[k, : len(em[i])] = torch.as_tensor(em[i])
            batches.append(dec.prepare(x, torch.tensor([len(em[i]) for i in idx])))
            ref += [refs[i] for i in idx]
        grid = RecordingGrid(dec, batches, ref)
        t0 = time.perf_counter()
        res = tune_ctc_weights(dec, batches, ref, lm_w, bon, grid_runner=grid)
        secs = time.perf_counter() - t0
        runs[name] = {"seconds": secs, "lm_work": dict(scorer.work), "weights": res.weights, "wer": res.wer,
                      "grid": res.grid, "signature": res.signature}
        if name == "memo":
            runs[name]["memo"] = dec.scorers["lm"].stats()
        texts[name] = grid.texts
        print(f"{name:5s} {secs:8.1f} s  LM tokens {scorer.work['tokens']:9d}  forwards {scorer.work['forwards']:6d}  "
              f"best {res.weights} WER {res.wer:.4f}", flush=True)
    plain, memo = runs["plain"], runs["memo"]
    same_points = sum(a == b for a, b in zip(texts["plain"], texts["memo"]))
    checks = {"grid identical": plain["grid"] == memo["grid"], "weights identical": plain["weights"] == memo["weights"],
              "signature identical": plain["signature"] == memo["signature"],
              "grid points with identical texts": f"{same_points}/{len(texts['plain'])}",
              "LM tokens memo / plain": memo["lm_work"]["tokens"] / max(1, plain["lm_work"]["tokens"]),
              "seconds memo / plain": memo["seconds"] / plain["seconds"]}
    m = memo["memo"]
    print("\n| run | seconds | LM forwards | LM rows | LM tokens | memo word hits / misses | replayed words | best weights | WER % |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in runs.items():
        w = r["lm_work"]
        hm = f"{m['word_hits']} / {m['word_misses']} | {m['replayed_words']}" if name == "memo" else "- | -"
        print(f"| {name} | {r['seconds']:.1f} | {w['forwards']} | {w['rows']} | {w['tokens']} | {hm} | "
              f"{json.dumps(r['weights'])} | {100 * r['wer']:.2f} |")
    for k, v in checks.items():
        print(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")
    import lmplug

    source = f"real:{args.emissions}" if args.emissions else f"simulate(seed={args.seed})|text:{args.text}"
    signature = (f"emissions:{source}|n:{len(refs)}|lm:{lm.signature()}|vocabulary:{args.vocabulary}|"
                 f"lm_weights:{args.lm_weights}|bonuses:{args.bonuses}|beam:{args.beam_size}|token_min_logp:{args.token_min_logp:g}|"
                 f"history_words:{args.history_words}|lookahead:{args.lookahead}|oov_penalty:{args.oov_penalty:g}|"
                 f"batch:{args.batch_size}|threads:{args.threads}|lmplug:{lmplug.__version__}")
    result = {"signature": signature, "runs": runs, "checks": checks}
    write_benchmark(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
