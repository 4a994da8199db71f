"""Translation subcommands of ``lmplug``: prepare-multi30k, train-nmt, translate, nbest-features, tune-rerank,
rerank, eval-mt.

``register(subparsers)`` adds them to the ``lmplug`` command; ``python -m lmplug.cli.mt`` runs
them on their own. A user error (``LmplugError``) prints one line and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from lmplug.cli.args import add_command
from lmplug.errors import LmplugError, expect_number



def _lines(path: str) -> list[str]:
    from lmplug.corpus import read_lines

    p = Path(path)
    if not p.is_file():
        raise LmplugError(f"text file not found: {p}")
    return read_lines(p)


def _raw_lines(path: str) -> list[str]:
    """Every line of a file, blank ones included (line counts must match n-best ids)."""
    p = Path(path)
    if not p.is_file():
        raise LmplugError(f"text file not found: {p}")
    return p.read_text(encoding="utf-8").splitlines()


# ----------------------------------------------------------------------------------------- data
def cmd_prepare_multi30k(args: argparse.Namespace) -> int:
    from lmplug.mt.multi30k import prepare_multi30k

    expect_number("", "--timeout", args.timeout, above=0)
    manifest = prepare_multi30k(args.out, args.source, base_url=args.url, timeout=args.timeout, force=args.force,
                                progress=not args.quiet)
    print(json.dumps({"out": args.out, "source": manifest["source"], "files": len(manifest["files"])}))
    return 0


# ------------------------------------------------------------------------------------- training
MODEL_FIELDS = (("n_enc_layer", int), ("n_dec_layer", int), ("n_head", int), ("n_embd", int), ("dropout", float))
TRAIN_FIELDS = (("batch_size", int), ("max_steps", int), ("lr", float), ("warmup_steps", int), ("eval_every", int),
                ("seed", int), ("device", str))


def cmd_train_nmt(args: argparse.Namespace) -> int:
    from lmplug.mt.nmt import nmt_configs, train_translation
    from lmplug.tokenizer import Tokenizer

    model_cfg, train_cfg, _ = nmt_configs(
        args.scale,
        {f: getattr(args, f) for f, _ in MODEL_FIELDS if getattr(args, f) is not None},
        {f: getattr(args, f) for f, _ in TRAIN_FIELDS if getattr(args, f) is not None},
    )
    tok = Tokenizer.load(args.tokenizer)
    summary = train_translation(_raw_lines(args.train_src), _raw_lines(args.train_tgt), _raw_lines(args.dev_src),
                                _raw_lines(args.dev_tgt), tok, args.out, model_cfg, train_cfg,
                                direction=args.direction, resume=not args.no_resume)
    print(json.dumps({k: summary[k] for k in ("steps", "units_seen", "parameters", "elapsed_s", "dev_loss")}))
    return 0


def cmd_translate(args: argparse.Namespace) -> int:
    from lmplug.mt.nbest import NBestEntry, write_nbest
    from lmplug.mt.nmt import check_search_args, load_translator
    from lmplug.train import pick_device

    check_search_args(args.beam, args.nbest, args.batch_sentences, owner="")  # before the model is loaded
    sources = _raw_lines(args.src)
    if not sources:
        raise LmplugError(f"{args.src}: expected at least one sentence, found an empty file")
    tr = load_translator(args.model, device=pick_device(args.device))
    t0 = time.time()
    results = tr.translate(sources, beam=args.beam, nbest=args.nbest, len_penalty=args.len_penalty,
                           batch_sentences=args.batch_sentences, progress=True)
    nbest = [[NBestEntry(i, text, {"nmt": h.logprob, "nmt_norm": h.score}, h.score) for text, h in hyps]
             for i, hyps in enumerate(results)]
    empty = [i for i, hyps in enumerate(nbest) if not hyps]
    if empty:
        raise LmplugError(f"{args.src}: line {empty[0] + 1} (and {len(empty) - 1} more) got no non-empty translation")
    write_nbest(args.out, nbest)
    if args.onebest:
        Path(args.onebest).write_text("".join(h[0].text + "\n" for h in nbest), encoding="utf-8")
    secs = time.time() - t0
    print(json.dumps({"sentences": len(sources), "hypotheses": sum(map(len, nbest)), "beam": args.beam,
                      "seconds": round(secs, 1), "signature": tr.signature()}))
    return 0


# ------------------------------------------------------------------------------------ reranking
def cmd_nbest_features(args: argparse.Namespace) -> int:
    from lmplug.mt.nbest import read_nbest, write_nbest
    from lmplug.mt.rerank import add_features, build_features

    nbest = read_nbest(args.nbest, n_sources=len(_raw_lines(args.src)))
    feats = build_features(lm=args.lm, kenlm=args.kenlm, channel=args.channel, lengths=not args.no_lengths,
                           lm_normalization=args.lm_normalize, device=args.device)
    sigs = add_features(nbest, _raw_lines(args.src), feats, cache_dir=args.cache, progress=True)
    write_nbest(args.out, nbest)
    print(json.dumps({"hypotheses": sum(map(len, nbest)), "features": sigs}, indent=1))
    return 0


def _weights_arg(text: str) -> dict[str, float]:
    """--weights / --init: a JSON file (a tuner's result or {name: weight}), or name=value,name=value."""
    from lmplug.features import parse_weights, read_weights_file

    return read_weights_file(text) if Path(text).is_file() else parse_weights(text)


def cmd_tune_rerank(args: argparse.Namespace) -> int:
    from lmplug.errors import expect_each_once
    from lmplug.mt.mert import tune_weights
    from lmplug.mt.nbest import read_nbest

    names = args.features.split(",") if args.features else None
    expect_each_once(names or [])
    refs = _raw_lines(args.ref)
    nbest = read_nbest(args.nbest, n_sources=len(refs))
    init = _weights_arg(args.init) if args.init else None
    res = tune_weights(nbest, refs, features=names, init=init, restarts=args.restarts, seed=args.seed,
                       progress=True, window=args.window)
    obj = {"weights": res.weights, "dev_bleu": res.bleu, "signature": res.signature, "nbest": str(args.nbest),
           "ref": str(args.ref), "restarts": args.restarts, "seed": args.seed, "window": args.window}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(obj, indent=2) + "\n")
    print(json.dumps(obj))
    return 0


def cmd_rerank(args: argparse.Namespace) -> int:
    from lmplug.mt.nbest import read_nbest
    from lmplug.mt.rerank import rerank_translations

    nbest = read_nbest(args.nbest, n_sources=len(_raw_lines(args.src)) if args.src else None)
    if args.oracle_ref:
        from lmplug.mt.mert import oracle_selection

        if args.weights:
            raise LmplugError("give --weights or --oracle-ref, not both")
        refs = _raw_lines(args.oracle_ref)
        if len(refs) != len(nbest):
            raise LmplugError(f"{args.oracle_ref}: expected {len(nbest)} reference lines (one per sentence of "
                              f"{args.nbest}), found {len(refs)}")
        best = [hyps[j] for hyps, j in zip(nbest, oracle_selection(nbest, refs))]
    elif args.weights:
        best = rerank_translations(nbest, _weights_arg(args.weights))
    else:
        raise LmplugError("expected --weights (or --oracle-ref), found neither")
    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout
    try:
        for e in best:
            out.write(e.text + "\n")
    finally:
        if args.out:
            out.close()
    return 0


def cmd_eval_mt(args: argparse.Namespace) -> int:
    from lmplug.mt.metrics import evaluate_systems

    expect_number("", "--bootstrap", args.bootstrap, integer=True, at_least=0)
    systems, paths = {}, {}
    for spec in args.system:
        name, _, path = spec.partition("=")
        if not path:
            raise LmplugError(f"--system: expected NAME=PATH, found {spec!r}")
        if name in paths:
            raise LmplugError(f"--system: expected distinct names, found {name!r} twice ({name}={paths[name]}, {spec})")
        systems[name], paths[name] = _raw_lines(path), path
    refs = _raw_lines(args.ref)
    if not refs:
        raise LmplugError(f"{args.ref}: expected at least one reference line, found an empty file")
    for name, hyps in systems.items():
        if len(hyps) != len(refs):
            raise LmplugError(f"system {name!r}: expected {len(refs)} lines (one per line of {args.ref}), "
                              f"found {len(hyps)} in {paths[name]}")
    report = evaluate_systems(systems, refs, baseline=args.baseline, n_bootstrap=args.bootstrap)
    if args.baseline is not None and len(systems) > 1 and args.bootstrap == 0:
        print(f"[eval-mt] --bootstrap 0: no significance test against '{args.baseline}' (no p-values)", file=sys.stderr)
    for row in report["systems"]:
        p = "" if row.get("p_bleu") is None else f"  p={row['p_bleu']:.4f}"
        print(f"{row['name']:<16} BLEU {row['bleu']:6.2f}  chrF {row['chrf']:6.2f}{p}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return 0


# --------------------------------------------------------------------------------------- parser
def register(sub) -> None:
    """Add the translation subcommands to the ``lmplug`` subparsers."""
    from lmplug.constants import NMT_PRESETS
    from lmplug.mt.multi30k import MULTI30K_URL

    p = add_command(sub, "prepare-multi30k", cmd_prepare_multi30k,
                    "copy or download Multi30k (task 1 and 2; research use only: never committed), check its line counts")
    p.add_argument("--out", default="data/multi30k", help="output folder (task1/, task2/, manifest.json)")
    p.add_argument("--from", dest="source", metavar="DIR", default=None,
                   help="local folder holding task1/train.en etc. (plain or .gz); without it: download from --url")
    p.add_argument("--url", default=MULTI30K_URL, help="base URL of the raw files (BASE/task1/raw/train.en.gz)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each download")
    p.add_argument("--force", action="store_true", help="fetch again even if OUT/manifest.json says it is complete")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = add_command(sub, "train-nmt", cmd_train_nmt, "train (or resume) a Transformer translation model")
    for name in ("train-src", "train-tgt", "dev-src", "dev-tgt"):
        p.add_argument("--" + name, required=True, help=f"{name.replace('-', ' ')} text, one sentence a line")
    p.add_argument("--tokenizer", required=True, help="shared sentencepiece .model (source and target)")
    p.add_argument("--out", required=True, help="output directory (resumed if it holds a checkpoint)")
    p.add_argument("--direction", default="", help="label kept in the checkpoint, e.g. en-de")
    p.add_argument("--scale", default="cpu", choices=sorted(NMT_PRESETS), help="preset for every unset flag")
    for f, t in MODEL_FIELDS + TRAIN_FIELDS:
        p.add_argument("--" + f.replace("_", "-"), type=t, default=None, help=f"override the preset's {f}")
    p.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")

    p = add_command(sub, "translate", cmd_translate, "beam search: write an n-best list (Moses format, or .jsonl)")
    p.add_argument("--model", required=True, help="translation checkpoint (dir)")
    p.add_argument("--src", required=True, help="source text, one sentence a line")
    p.add_argument("--out", required=True, help="n-best output (.jsonl for JSON lines, else Moses format)")
    p.add_argument("--onebest", default=None, help="also write the 1-best translations here")
    p.add_argument("--beam", type=int, default=12, help="beam size")
    p.add_argument("--nbest", type=int, default=None,
                   help="hypotheses kept per sentence, 1 <= nbest <= beam (None: all the beam keeps)")
    p.add_argument("--len-penalty", type=float, default=1.0, help="rank by logprob / length**len_penalty")
    p.add_argument("--batch-sentences", type=int, default=64, help="sentences decoded together")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")

    p = add_command(sub, "nbest-features", cmd_nbest_features, "add LM, channel and length features to an n-best list")
    p.add_argument("--nbest", required=True, help="input n-best list")
    p.add_argument("--src", required=True, help="source text of the n-best list (line i = id i)")
    p.add_argument("--out", required=True, help="output n-best list with the new features")
    p.add_argument("--lm", default=None, help="Transformer LM checkpoint of the target language (feature 'lm')")
    p.add_argument("--kenlm", default=None, help="KenLM .arpa/.bin of the target language (feature 'kenlm')")
    p.add_argument("--channel", default=None, help="reverse translation checkpoint (feature 'channel')")
    p.add_argument("--lm-normalize", default="none", choices=["none", "lower"],
                   help="normalize hypotheses before LM scoring (lower: for LMs trained on lowercased text)")
    p.add_argument("--no-lengths", action="store_true", help="leave out the length features")
    p.add_argument("--cache", default=None, help="feature cache directory (reused across runs)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")

    p = add_command(sub, "tune-rerank", cmd_tune_rerank, "tune reranking weights for corpus BLEU on a dev n-best list")
    p.add_argument("--nbest", required=True, help="dev n-best list with features")
    p.add_argument("--ref", required=True, help="dev references, one a line")
    p.add_argument("--out", required=True, help="weights JSON")
    p.add_argument("--features", default=None, help="comma-separated features to tune (default: all)")
    p.add_argument("--init", default=None, help="starting weights: JSON file or name=value,...")
    p.add_argument("--restarts", type=int, default=20, help="random restarts besides the starting point (>= 0)")
    p.add_argument("--seed", type=int, default=1, help="random seed of the restarts")
    p.add_argument("--window", type=int, default=0,
                   help="choose each line-search interval by its BLEU averaged with this many neighbours on each "
                        "side (smoothed MERT, Cer et al. 2008); 0: plain MERT")

    p = add_command(sub, "rerank", cmd_rerank, "pick the best hypothesis per sentence with given weights")
    p.add_argument("--nbest", required=True, help="n-best list with features")
    p.add_argument("--weights", default=None, help="weights JSON (from tune-rerank) or name=value,...")
    p.add_argument("--oracle-ref", default=None, help="instead of weights: pick the n-best oracle for these references")
    p.add_argument("--src", default=None, help="source text, to check the number of sentences")
    p.add_argument("--out", default=None, help="output text (default stdout)")

    p = add_command(sub, "eval-mt", cmd_eval_mt, "BLEU and chrF (sacrebleu) with paired bootstrap against a baseline")
    p.add_argument("--ref", required=True, help="references, one a line")
    p.add_argument("--system", required=True, action="append", help="NAME=PATH of a system output (repeatable)")
    p.add_argument("--baseline", default=None, help="NAME of the system the others are tested against")
    p.add_argument("--bootstrap", type=int, default=1000,
                   help="paired bootstrap resamples against --baseline (0: no significance test, no p-values)")
    p.add_argument("--json", default=None, help="also write the report here")
