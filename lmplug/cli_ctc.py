"""``lmplug decode`` and ``lmplug tune-ctc``: CTC beam search with LM fusion from the shell.

    lmplug decode --emissions dev.jsonl --labels labels.json --lm exp/lm/cpu/bible/lm \\
        --weights lm=0.5,words=1.0 --beam-size 16 --out hyps.jsonl
    lmplug decode --emissions utt.npy --labels labels.json --kenlm ngram5.bin --weights kenlm=0.5 --out -
    lmplug tune-ctc --emissions dev.jsonl --labels labels.json --kenlm ngram5.bin --out-dir exp/tune

Registered into the ``lmplug`` command by ``lmplug.cli`` (``register(subparsers)``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lmplug.errors import LmplugError

FMT = argparse.ArgumentDefaultsHelpFormatter


def parse_weights(spec: str) -> dict[str, float]:
    """``"lm=0.5,words=1"`` -> ``{"lm": 0.5, "words": 1.0}``."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, eq, val = part.partition("=")
        try:
            out[name.strip()] = float(val)
        except ValueError:
            eq = ""
        if not eq:
            raise LmplugError(f"expected weights as name=value[,name=value], found {part!r} in {spec!r}")
    return out


def parse_grid(spec: str) -> list[float]:
    try:
        return [float(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise LmplugError(f"expected a comma-separated list of numbers, found {spec!r}") from None


def read_words(path: str) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise LmplugError(f"word list not found: expected a text file (one word per line) at {p}")
    return p.read_text(encoding="utf-8").split()


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--emissions", required=True, help=".npy (T,V)/(B,T,V), .npz, or a .jsonl manifest")
    p.add_argument("--labels", required=True, help="labels: JSON list, or one label per line")
    p.add_argument("--lm", default=None, help="Transformer LM checkpoint dir (scorer name 'lm')")
    p.add_argument("--kenlm", default=None, help="KenLM .arpa/.bin (scorer name 'kenlm')")
    p.add_argument("--unigrams", default=None, help="word list for a binary KenLM without an .arpa beside it")
    p.add_argument("--vocabulary", default=None,
                   help="known words (one per line) for the Transformer's partial-word penalty in word mode "
                        "(default: the KenLM unigrams when --kenlm is given)")
    p.add_argument("--mode", choices=("word", "token"), default="word", help="fusion mode (DESIGN.md)")
    p.add_argument("--lexicon", action="store_true",
                   help="spell only words of the LM vocabulary (KenLM unigrams / --vocabulary); character labels")
    p.add_argument("--beam-size", type=int, default=16, help="beams per utterance")
    p.add_argument("--token-min-logp", type=float, default=-5.0, help="labels below this log-prob are not expanded")
    p.add_argument("--batch-size", type=int, default=16, help="utterances decoded together")
    p.add_argument("--logits", action="store_true", help="emissions are logits (apply log-softmax)")
    p.add_argument("--device", default="cpu", help="device of the Transformer LM and emissions")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")


def build_scorers(args: argparse.Namespace) -> dict:
    from lmplug.scorer import KenLMScorer, TransformerScorer

    scorers = {}
    if args.kenlm:
        unis = None
        if args.unigrams:
            unis = read_words(args.unigrams)
        scorers["kenlm"] = KenLMScorer(args.kenlm, unigrams=unis)
    if args.lm:
        from lmplug.checkpoint import load_lm

        vocab = None
        if args.vocabulary:
            vocab = read_words(args.vocabulary)
        elif "kenlm" in scorers:
            vocab = scorers["kenlm"].known_words()
        scorers["lm"] = TransformerScorer(load_lm(args.lm, device=args.device), vocabulary=vocab)
    return scorers


def _decoder(args, scorers, weights, nbest=1):
    from lmplug.ctc import build_ctc_decoder
    from lmplug.ctc_io import load_labels

    return build_ctc_decoder(load_labels(args.labels), scorers, weights, beam_size=args.beam_size, mode=args.mode,
                             nbest=nbest, token_min_logp=args.token_min_logp, lexicon=args.lexicon)


def _setup(args) -> None:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def _emission_batches(args, utts):
    import torch

    from lmplug.ctc_io import batches

    for idx, x, lens in batches(utts, args.batch_size):
        yield idx, (torch.from_numpy(x).to(args.device) if args.device != "cpu" else x), lens


def cmd_decode(args: argparse.Namespace) -> int:
    """Decode emissions to JSONL (id, text, scores, word frames[, nbest]) or plain text."""
    from tqdm import tqdm

    from lmplug.ctc_io import hypothesis_json, load_emissions

    _setup(args)
    scorers = build_scorers(args)
    weights = parse_weights(args.weights) if args.weights else {n: 0.5 for n in scorers}
    dec = _decoder(args, scorers, weights, nbest=args.nbest)
    utts = load_emissions(args.emissions)
    results: list = [None] * len(utts)
    with tqdm(total=len(utts), unit="utt", desc="decode", disable=args.quiet) as bar:
        for idx, x, lens in _emission_batches(args, utts):
            for i, hyps in zip(idx, dec.decode(x, lens, logits=args.logits)):
                results[i] = hyps
            bar.update(len(idx))
    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8")
    try:
        as_text = args.format == "text" or (args.format == "auto" and args.out.endswith(".txt"))
        for u, hyps in zip(utts, results):
            out.write((hyps[0].text if as_text else json.dumps(hypothesis_json(u.id, hyps))) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    if args.out != "-" and not args.quiet:
        print(f"[decode] {len(utts)} utterances -> {args.out} (weights {dec.weights})", file=sys.stderr)
    return 0


def cmd_tune_ctc(args: argparse.Namespace) -> int:
    """Grid-search LM weight x insertion bonus on dev WER; write weights.json and a heatmap."""
    from lmplug.ctc_io import load_emissions
    from lmplug.ctc_tune import plot_wer_heatmap, tune_ctc_weights

    _setup(args)
    scorers = build_scorers(args)
    if len(scorers) != 1:
        raise LmplugError(f"expected exactly one of --lm or --kenlm to tune, found {len(scorers)}")
    name = next(iter(scorers))
    utts = load_emissions(args.emissions)
    missing = [u.id for u in utts if u.text is None]
    if missing:
        raise LmplugError(f"expected a reference 'text' for every utterance of the manifest, found none for {missing[:3]}")
    dec = _decoder(args, scorers, {name: 0.0})
    batches = []
    refs: list[str] = []
    for idx, x, lens in _emission_batches(args, utts):
        batches.append((x, lens))
        refs.extend(utts[i].text for i in idx)
    lm_w, bon = parse_grid(args.lm_weights), parse_grid(args.bonuses)

    from tqdm import tqdm

    bar = tqdm(total=len(lm_w) * len(bon), unit="point", desc="tune-ctc", disable=args.quiet)
    result = tune_ctc_weights(dec, batches, refs, lm_w, bon, lm_name=name,
                              progress=lambda w, b, e: (bar.update(1), bar.set_postfix(w=w, b=b, wer=f"{e:.4f}")))
    bar.close()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result.save(out / "weights.json")
    plot_wer_heatmap(result, out / "wer_heatmap.png")
    print(json.dumps({"weights": result.weights, "wer": result.wer, "out": str(out)}))
    return 0


def register(subparsers) -> None:
    """Add ``decode`` and ``tune-ctc`` to the ``lmplug`` command."""
    p = subparsers.add_parser("decode", help="CTC beam search with LM fusion", description=cmd_decode.__doc__,
                              formatter_class=FMT)
    _add_model_args(p)
    p.add_argument("--weights", default=None, help="fusion weights, e.g. lm=0.5,words=1.0 (default: 0.5 per LM)")
    p.add_argument("--nbest", type=int, default=1, help="hypotheses per utterance in the output")
    p.add_argument("--out", default="-", help="output file (.jsonl or .txt), '-' for stdout")
    p.add_argument("--format", choices=("auto", "jsonl", "text"), default="auto", help="output format")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_decode)

    p = subparsers.add_parser("tune-ctc", help="tune LM weight and word bonus on dev WER",
                              description=cmd_tune_ctc.__doc__, formatter_class=FMT)
    _add_model_args(p)
    p.add_argument("--lm-weights", default="0,0.25,0.5,0.75,1.0,1.5", help="LM weights to try")
    p.add_argument("--bonuses", default="-1,0,0.5,1,2,3", help="word insertion bonuses to try")
    p.add_argument("--out-dir", required=True, help="writes weights.json and wer_heatmap.png here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_tune_ctc)
