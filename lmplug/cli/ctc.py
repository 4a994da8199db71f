"""``lmplug decode`` and ``lmplug tune-ctc``: CTC beam search with LM fusion from the shell.

    lmplug decode --emissions dev.jsonl --labels labels.json --lm exp/lm/cpu/bible/lm \\
        --weights lm=0.5,words=1.0 --beam-size 16 --out hyps.jsonl
    lmplug decode --emissions utt.npy --labels labels.json --kenlm ngram5.bin --weights kenlm=0.5 --out -
    torchrun --standalone --nproc_per_node 8 -m lmplug decode --emissions test.jsonl ... --device cuda --out hyps.jsonl
    lmplug decode ... --shard-rank 1 --num-shards 2 --out hyps.jsonl; lmplug merge-decode --out hyps.jsonl --num-shards 2
    lmplug tune-ctc --emissions dev.jsonl --labels labels.json --kenlm ngram5.bin --out-dir exp/tune

Registered into the ``lmplug`` command by ``lmplug.cli.main`` (``register(subparsers)``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lmplug.cli.args import FMT, parse_grid
from lmplug.constants import COMPILE_MODES, MEMO_MAX_ENTRIES, SEARCHES
from lmplug.ctc.backends import BACKENDS, DecodeSpec, ScorerSpec, build_decoder, load_scorers
from lmplug.ctc.io import read_ctc_nbest, read_references
from lmplug.ctc.types import CTCDecoderConfig as DEFAULTS
from lmplug.errors import EmissionsError, LmplugError, expect_number
from lmplug.features import parse_weights, read_weights_file
from lmplug.files import make_out_dir


def _add_emission_args(p: argparse.ArgumentParser) -> None:
    """The emissions a decode or tuning reads (``transcribe`` computes its own)."""
    p.add_argument("--emissions", required=True, help=".npy (T,V)/(B,T,V), .npz, or a .jsonl manifest")
    p.add_argument("--labels", required=True, help="labels: JSON list, or one label per line")
    p.add_argument("--logits", action="store_true", help="emissions are logits (apply log-softmax)")


def add_search_args(p: argparse.ArgumentParser, defaults: dict | None = None) -> None:
    """The scorers and search settings of ``decode``, ``tune-ctc`` and ``transcribe``; ``defaults``
    replaces the decoder's default of ``oov_penalty``, ``history_words``, ``lookahead`` or
    ``token_min_logp`` (a command with settings of its own)."""
    own = {"oov_penalty": DEFAULTS.partial_oov_logp, "history_words": DEFAULTS.history_words,
           "lookahead": list(DEFAULTS.lookahead), "token_min_logp": DEFAULTS.token_min_logp, **(defaults or {})}
    p.add_argument("--lm", default=None, help="Transformer LM checkpoint dir (scorer name 'lm')")
    p.add_argument("--kenlm", default=None, help="KenLM .arpa/.bin (scorer name 'kenlm')")
    p.add_argument("--unigrams", default=None, help="word list for a binary KenLM without an .arpa beside it")
    p.add_argument("--vocabulary", default=None,
                   help="known words (one per line, or an .arpa/.bin KenLM's 1-grams) for the Transformer's "
                        "partial-word penalty in word mode "
                        "(default: the KenLM unigrams when --kenlm is given)")
    p.add_argument("--no-word-end", action="store_true",
                   help="word mode: score a word as its pieces only, without the probability that it ends there")
    p.add_argument("--oov-penalty", type=float, default=own["oov_penalty"],
                   help="word mode: log-score added per (partial) word outside the scorers' vocabularies, "
                        "scaled up for words over 6 characters (pyctcdecode's unk_score_offset)")
    p.add_argument("--lm-unk-offset", type=float, default=0.0,
                   help="word mode: log-score added to the Transformer's score of a word outside the vocabulary "
                        "(--vocabulary, or the KenLM unigrams), as KenLM adds its unk offset")
    p.add_argument("--mode", choices=("word", "token"), default=DEFAULTS.mode, help="fusion mode: word (LMs score completed words) or token (the LM scores every sentencepiece label)")
    p.add_argument("--lexicon", nargs="?", const=True, default=DEFAULTS.lexicon, metavar="FILE",
                   help="spell only words of a lexicon: alone, the LM vocabulary (KenLM unigrams / --vocabulary) in "
                        "character labels; FILE: a pronunciation lexicon (word<TAB>tok tok ..., e.g. from "
                        "`lmplug make-lexicon`) over any labels, e.g. phones with a '<wb>' word boundary")
    p.add_argument("--implicit-boundaries", action="store_true",
                   help="--lexicon FILE: a word may also end where its pronunciation is complete and the next "
                        "word's first token follows, with no word delimiter (for models that do not always emit "
                        "one; with an LM: the LM and the word bonus must keep words from splitting)")
    p.add_argument("--history-words", type=int, default=own["history_words"],
                   help="word mode: recombine beams also with the Transformer LM, by its last N words "
                        "(approximate; frees beam slots; default: no recombination with it)")
    p.add_argument("--lookahead", type=lambda v: [x for x in v.split(",") if x], default=own["lookahead"],
                   help="word mode: comma-separated scorer names (lm, kenlm) whose look-ahead guides the search "
                        "while a word is spelled: the Transformer's probability that the next word begins with "
                        "those letters, KenLM's unigram mass of such words (pruning only; final scores unchanged)")
    p.add_argument("--beam-size", type=int, default=DEFAULTS.beam_size, help="beams per utterance (>= 1)")
    p.add_argument("--lm-prefilter", type=float, default=DEFAULTS.lm_prefilter,
                   help="word mode: per frame, only the best LM-prefilter x beam-size new words of an utterance "
                        "(ranked before their word scores) are scored by the word scorers: the Transformer's work")
    p.add_argument("--token-min-logp", type=float, default=own["token_min_logp"], help="labels below this log-prob are not expanded")
    p.add_argument("--batch-size", type=int, default=64,
                   help="utterances decoded together (the Transformer runs one forward for all their new words)")
    p.add_argument("--device", default="cpu", help="device of the Transformer LM and emissions: cpu, cuda, cuda:N or auto")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default, or 0: torch's)")
    p.add_argument("--backend", choices=BACKENDS, default="lmplug",
                   help="decoder: lmplug's batched search, or pyctcdecode with its own KenLM (--kenlm only)")
    p.add_argument("--search", choices=SEARCHES, default=DEFAULTS.search,
                   help="lmplug backend: the search on the host (numpy: every mode and scorer), or as tensor "
                        "operations on --device (torch: no scorer, or --lm with --mode token; the same results)")
    p.add_argument("--compile", nargs="?", const=True, default=DEFAULTS.compile, choices=(True, *COMPILE_MODES), metavar="MODE",
                   help="--search torch: torch.compile its frame step and the LM's forward (the first batches "
                        f"compile); MODE, one of {', '.join(COMPILE_MODES)}: torch.compile's mode "
                        "(reduce-overhead: CUDA graphs on a GPU)")


def scorer_spec(args: argparse.Namespace) -> ScorerSpec:
    """The scorers the command line asks for."""
    return ScorerSpec(lm=args.lm, kenlm=args.kenlm, unigrams=args.unigrams, vocabulary=args.vocabulary,
                      word_end=not args.no_word_end, lm_unk_offset=args.lm_unk_offset, device=args.device)


def decode_spec(args: argparse.Namespace, labels: "list[str] | tuple[str, ...] | None" = None) -> DecodeSpec:
    """The search the command line asks for, over ``labels`` (default: the --labels file)."""
    return DecodeSpec(labels=args.labels if labels is None else labels, backend=args.backend, beam_size=args.beam_size, mode=args.mode,
                      token_min_logp=args.token_min_logp, lexicon=args.lexicon, history_words=args.history_words,
                      lookahead=tuple(args.lookahead), oov_penalty=args.oov_penalty, lm_prefilter=args.lm_prefilter,
                      search=args.search, compile=args.compile,
                      implicit_boundaries=args.implicit_boundaries)


def read_weights(weights: str | None, weights_file: str | None, default: dict[str, float]) -> dict[str, float]:
    """Weights from ``weights_file`` (--weights-file: a tune result's ``weights``, or a flat JSON dict),
    else ``weights`` (--weights, e.g. ``"lm=0.5,words=1"``), else ``default``."""
    if weights_file:
        return read_weights_file(weights_file)
    return parse_weights(weights) if weights else default


def _weights_of(args: argparse.Namespace, default: dict[str, float]) -> dict[str, float]:
    return read_weights(args.weights, args.weights_file, default)


def setup_decoding(args: argparse.Namespace) -> None:
    """Check --threads, --device (``auto`` becomes the device it picks) and --beam-size before any work;
    set torch's threads."""
    from lmplug.train import pick_device

    if hasattr(args, "beam_size"):  # decode, tune-ctc: every backend
        expect_number("", "--beam-size", args.beam_size, integer=True, at_least=1)
    if args.threads is not None:
        expect_number("", "--threads", args.threads, integer=True, at_least=0)
    args.device = str(pick_device(args.device))
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def emission_batches(utts, batch_size: int, device: str):
    """Length-sorted batches of ``utts`` (``UtteranceEmissions``): (indices, (B, T, V) emissions on
    ``device``, lengths (B,))."""
    import torch

    from lmplug.ctc.io import batches

    for idx, x, lens in batches(utts, batch_size):
        yield idx, (torch.from_numpy(x).to(device) if device != "cpu" else x), lens


@contextlib.contextmanager
def _named_by_id(emissions: str, utts, idx):
    """Emissions the decoder refuses (NaN, not log-probabilities) named by the manifest's utterance
    id, not by their place in the batch ``idx``."""
    try:
        yield
    except EmissionsError as e:
        raise LmplugError(f"{emissions}: utterance {utts[idx[e.utterance]].id!r}: {e}") from e


def cmd_decode(args: argparse.Namespace) -> int:
    """Decode emissions to JSONL (id, text, scores, word frames[, nbest]) or plain text."""
    from tqdm import tqdm

    from lmplug import shard
    from lmplug.ctc.io import hypothesis_json, load_emissions
    from lmplug.files import check_writable

    expect_number("", "--nbest", args.nbest, integer=True, at_least=1)
    part, torchrun = _shard_of(args)
    check_writable(args.stats, *([] if part else [args.out]))  # before the decoding, not after it
    if part and torchrun:
        args.device = shard.rank_device(args.device, shard.local_rank())
    setup_decoding(args)
    models = scorer_spec(args)
    scorers = load_scorers(models, args.backend)
    weights = _weights_of(args, {n: 0.5 for n in scorers})
    dec = build_decoder(decode_spec(args), models, scorers, weights, nbest=args.nbest)
    everything = load_emissions(args.emissions)
    index = shard.shard_indices(len(everything), *part) if part else range(len(everything))
    utts = [everything[i] for i in index]
    results: list = [None] * len(utts)
    seconds = 0.0
    with tqdm(total=len(utts), unit="utt", desc="decode", disable=args.quiet) as bar:
        for idx, x, lens in emission_batches(utts, args.batch_size, args.device):
            t0 = time.perf_counter()
            with _named_by_id(args.emissions, utts, idx):
                decoded = dec.decode(x, lens, logits=args.logits)
            seconds += time.perf_counter() - t0
            for i, hyps in zip(idx, decoded):
                results[i] = hyps
            bar.update(len(idx))
    rows = [hypothesis_json(u.id, hyps) for u, hyps in zip(utts, results)]
    extra = {"backend": args.backend, "beam_size": args.beam_size, "token_min_logp": args.token_min_logp,
             "history_words": args.history_words, "oov_penalty": args.oov_penalty, "lm_unk_offset": args.lm_unk_offset,
             "lookahead": args.lookahead, "lm_prefilter": args.lm_prefilter, "search": args.search,
             "compile": args.compile, "weights": dec.weights}
    work = {f"{name}_work": sc.work for name, sc in scorers.items() if hasattr(sc, "work")}  # the LM's forwards
    if not part:
        _write_rows(args.out, args.format, rows)
        write_stats(args.stats, len(utts), seconds, {**extra, **work})
        if args.out != "-" and not args.quiet:
            print(f"[decode] {len(utts)} utterances -> {args.out} (weights {dec.weights})", file=sys.stderr)
        return 0
    rank, world = part
    settings = {**extra, "mode": args.mode, "lexicon": args.lexicon, "nbest": args.nbest, "logits": args.logits,
                "token_min_logp": args.token_min_logp,
                "scorers": {name: sc.signature() for name, sc in sorted(dec.scorers.items())}}  # models, word lists
    header = {"total": len(everything), "seconds": seconds, "stats": extra, "work": work,
              "fingerprint": shard.fingerprint([u.id for u in everything], settings)}
    path = shard.write_part(args.out, rank, world, [{"index": i, **r} for i, r in zip(index, rows)], header)
    if not torchrun:
        write_stats(args.stats, len(utts), seconds, {**extra, **work, "rank": rank, "num_shards": world})
        if not args.quiet:
            print(f"[decode] shard {rank} of {world}: {len(utts)} utterances -> {path}; then "
                  f"`lmplug merge-decode --out {args.out} --num-shards {world}`", file=sys.stderr)
        return 0
    shard.barrier()  # every rank has written its part
    if rank == 0:
        merge_decoded(args.out, world, args.format, args.stats, args.quiet)
    return 0


def _shard_of(args: argparse.Namespace) -> tuple[tuple[int, int] | None, bool]:
    """((rank, number of shards) or None for all, whether from torchrun's env) of a decode."""
    from lmplug.shard import shard_indices, torchrun_shard

    torchrun = False
    if args.shard_rank is None and args.num_shards is None:
        part = torchrun_shard()
        torchrun = part is not None
    elif args.shard_rank is None or args.num_shards is None:
        raise LmplugError(f"expected --shard-rank and --num-shards together, found only "
                          f"{'--shard-rank' if args.num_shards is None else '--num-shards'}")
    else:
        part = (args.shard_rank, args.num_shards)
        shard_indices(0, *part)  # validates
    if part and args.out == "-":
        raise LmplugError("a sharded decode writes parts next to --out: expected an output file, found '-'")
    return part, torchrun


def _write_rows(path: str, fmt: str, rows: list[dict]) -> None:
    from lmplug.files import write_lines

    as_text = fmt == "text" or (fmt == "auto" and path.endswith(".txt"))
    write_lines(path, (row["text"] if as_text else json.dumps(row) for row in rows))


def merge_decoded(out: str, world: int, fmt: str = "auto", stats: str | None = None, quiet: bool = False) -> None:
    """Merge the parts of a sharded decode into ``out`` (manifest order), then delete the parts."""
    from lmplug.shard import merge_parts, remove_parts

    rows, headers = merge_parts(out, world)
    _write_rows(out, fmt, rows)
    secs = [h["seconds"] for h in headers]
    work: dict[str, dict] = {}  # the LM's forwards, summed over the parts
    for h in headers:
        for name, counts in h.get("work", {}).items():
            work[name] = {k: work.get(name, {}).get(k, 0) + v for k, v in counts.items()}
    write_stats(stats, len(rows), sum(secs), {"num_shards": world, "shard_seconds": secs, **headers[0]["stats"], **work})
    remove_parts(out, world)
    if not quiet:
        print(f"[decode] merged {world} parts: {len(rows)} utterances -> {out}", file=sys.stderr)


def cmd_merge_decode(args: argparse.Namespace) -> int:
    """Merge the parts of `lmplug decode --shard-rank R --num-shards N` into one output, in manifest order."""
    merge_decoded(args.out, args.num_shards, args.format, args.stats, args.quiet)
    return 0


@dataclass(frozen=True)
class _TuneJob:
    """What a tune-ctc run decodes: the values of its flags, built once in :func:`cmd_tune_ctc`
    and shipped to every grid worker (a process of its own)."""

    models: ScorerSpec
    search: DecodeSpec
    emissions: str  # the dev manifest, with references
    batch_size: int
    logits: bool
    tune: str | None  # the scorer whose weight is tuned (None: the only one)
    outer: str | None  # NAME=W1,W2,...: another scorer searched in an outer loop
    weights: dict  # fixed weights (--weights/--weights-file)
    memo: bool = True  # costly word scorers behind a MemoScorer shared by the process's grid points
    memo_entries: int = MEMO_MAX_ENTRIES  # its bound


def _tune_setup(job: _TuneJob):
    """The decoder (the tuned scorer at weight 0), dev batches, references, the tuned scorer's
    name and the outer search of a tune-ctc run."""
    from lmplug.ctc.io import load_emissions
    from lmplug.ctc.tune import memoize_word_scorers

    scorers = load_scorers(job.models, job.search.backend)
    if job.memo:
        scorers = memoize_word_scorers(scorers, job.search.mode, job.memo_entries)
    if job.tune:
        if job.tune not in scorers:
            raise LmplugError(f"--tune {job.tune}: expected one of the scorers {sorted(scorers)}, found none by that name")
        name = job.tune
    elif len(scorers) == 1:
        name = next(iter(scorers))
    else:
        raise LmplugError(f"expected --tune NAME with several scorers {sorted(scorers)}, found none")
    base = dict(job.weights)
    outer = None
    if job.outer:
        oname, _, ovals = job.outer.partition("=")
        if oname not in scorers or oname == name or not ovals:
            raise LmplugError(f"--outer: expected NAME=W1,W2,... naming another scorer of {sorted(set(scorers) - {name})}, "
                              f"found {job.outer!r}")
        outer = (oname, parse_grid(ovals, "--outer"))
        base = {**base, oname: outer[1][0]}
    fixed = set(scorers) - {name}
    if fixed - set(base):
        raise LmplugError(f"expected the weights of the scorers not tuned ({sorted(fixed - set(base))}) in "
                          f"--weights/--weights-file, found {base}")
    utts = load_emissions(job.emissions)
    missing = [u.id for u in utts if u.text is None]
    if missing:
        raise LmplugError(f"expected a reference 'text' for every utterance of the manifest, found none for {missing[:3]}")
    dec = build_decoder(job.search, job.models, scorers, {**{k: base[k] for k in fixed}, name: 0.0})
    batches = []
    refs: list[str] = []
    for idx, x, lens in emission_batches(utts, job.batch_size, job.models.device):
        with _named_by_id(job.emissions, utts, idx):  # the grid decodes log-probs (--logits: normalized once, here)
            batches.append(dec.prepare(x, lens, logits=job.logits))
        refs.extend(utts[i].text for i in idx)
    return dec, batches, refs, name, outer


def _tune_worker(job: _TuneJob):
    """(decoder, batches, references) for a ParallelGrid worker (module level: it is pickled)."""
    return _tune_setup(job)[:3]


def cmd_tune_ctc(args: argparse.Namespace) -> int:
    """Grid-search LM weight x insertion bonus on dev WER; write weights.json and a heatmap.

    Every finished grid point is appended to OUT_DIR/grid.jsonl: run the same command again after
    an interruption and it decodes only the points still missing (--restart: all of them). The
    Transformer's word scores (word mode) are kept in memory and shared by the grid points a
    process decodes (--no-memo: recomputed at each point; the same results)."""
    import functools
    import os
    from contextlib import nullcontext

    from lmplug.ctc.tune import ParallelGrid, tune_ctc_weights

    setup_decoding(args)
    if args.jobs < 1:
        raise LmplugError(f"--jobs: expected at least 1, found {args.jobs}")
    expect_number("", "--memo-entries", args.memo_entries, integer=True, at_least=1)
    lm_w, bon = parse_grid(args.lm_weights, "--lm-weights"), parse_grid(args.bonuses, "--bonuses")
    make_out_dir(args.out_dir, "weights.json")
    job = _TuneJob(scorer_spec(args), decode_spec(args), args.emissions, args.batch_size, args.logits, args.tune,
                   args.outer, _weights_of(args, {}), args.memo, args.memo_entries)
    dec, batches, refs, name, outer = _tune_setup(job)
    journal = Path(args.out_dir) / "grid.jsonl"
    if args.restart and journal.exists():
        journal.unlink()

    from tqdm import tqdm

    bar = tqdm(total=len(lm_w) * len(bon) * (len(outer[1]) if outer else 1), unit="point", desc="tune-ctc",
               disable=args.quiet)
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    with (ParallelGrid(functools.partial(_tune_worker, job), args.jobs, threads) if args.jobs > 1 else nullcontext()) as pool:
        result = tune_ctc_weights(dec, batches, refs, lm_w, bon, lm_name=name, outer=outer, journal=journal, grid_runner=pool,
                                  progress=lambda w, b, e: (bar.update(1), bar.set_postfix(w=w, b=b, wer=f"{e:.4f}")))
    bar.close()
    return write_tune_result(result, args.out_dir)


def write_tune_result(result, out_dir: str) -> int:
    """weights.json and wer_heatmap.png of a tuning run into ``out_dir``; prints the choice."""
    from lmplug.ctc.tune import plot_wer_heatmap

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result.save(out / "weights.json")
    plot_wer_heatmap(result, out / "wer_heatmap.png")
    print(json.dumps({"weights": result.weights, "wer": result.wer, "out": str(out)}))
    return 0


def write_stats(path: str | None, n: int, seconds: float, extra: dict) -> None:
    """--stats: decoding time (search and models, not file I/O) as JSON for result tables; no path, no file."""
    from lmplug.files import write_lines

    if path:
        write_lines(path, [json.dumps({"utterances": n, "seconds": seconds, **extra})])


def _rescore_scorers(lm: str, device: str) -> dict:
    from lmplug.checkpoint import load_lm
    from lmplug.scorers.transformer import TransformerScorer

    return {"lm": TransformerScorer(load_lm(lm, device=device))}


def cmd_rescore(args: argparse.Namespace) -> int:
    """Rescore n-best lists (``lmplug decode --nbest N`` output) with the Transformer LM and rerank."""
    from lmplug.ctc.io import hypothesis_json
    from lmplug.files import check_writable, write_lines
    from lmplug.ctc.rescore import rescore_nbest

    setup_decoding(args)
    check_writable(args.out, args.stats)
    ids, lists = read_ctc_nbest(args.nbest)
    scorers = _rescore_scorers(args.lm, args.device)
    weights = _weights_of(args, {"lm": 0.5})
    t0 = time.perf_counter()
    ranked = rescore_nbest(lists, scorers, weights)
    seconds = time.perf_counter() - t0
    write_lines(args.out, (json.dumps(hypothesis_json(uid, hyps)) for uid, hyps in zip(ids, ranked)))
    write_stats(args.stats, len(ids), seconds, {"weights": weights})
    return 0


def cmd_tune_rescore(args: argparse.Namespace) -> int:
    """Grid-search the rescoring LM weight x word bonus on dev WER (LM features computed once)."""
    from lmplug.ctc.rescore import tune_rescore_weights

    setup_decoding(args)
    lm_w, bon = parse_grid(args.lm_weights, "--lm-weights"), parse_grid(args.bonuses, "--bonuses")
    ids, lists = read_ctc_nbest(args.nbest)
    make_out_dir(args.out_dir, "weights.json")
    refs = read_references(args.refs, ids)
    fixed = _weights_of(args, {})
    result = tune_rescore_weights(lists, refs, _rescore_scorers(args.lm, args.device), lm_w, bon, fixed=fixed,
                                  signature=f"rescore|nbest:{args.nbest}|lm:{args.lm}|n:{len(ids)}")
    return write_tune_result(result, args.out_dir)


def register(subparsers) -> None:
    """Add ``decode``, ``merge-decode``, ``tune-ctc``, ``rescore`` and ``tune-rescore`` to ``lmplug``."""
    p = subparsers.add_parser("decode", help="CTC beam search with LM fusion", description=cmd_decode.__doc__,
                              formatter_class=FMT)
    _add_emission_args(p)
    add_search_args(p)
    p.add_argument("--weights", default=None, help="fusion weights, e.g. lm=0.5,words=1.0 (default: 0.5 per LM)")
    p.add_argument("--weights-file", default=None, help="weights JSON (a tune-ctc weights.json); overrides --weights")
    p.add_argument("--stats", default=None,
                   help="write decoding time and settings here (JSON; a shard's own with --shard-rank)")
    p.add_argument("--nbest", type=int, default=DEFAULTS.nbest, help="hypotheses per utterance in the output")
    p.add_argument("--out", default="-", help="output file (.jsonl or .txt), '-' for stdout")
    p.add_argument("--format", choices=("auto", "jsonl", "text"), default="auto", help="output format")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--shard-rank", type=int, default=None,
                   help="decode only utterances i with i %% N == R into OUT.part-R-of-N.jsonl, merged by "
                        "`lmplug merge-decode`; under torchrun, unset: RANK, and rank 0 merges")
    p.add_argument("--num-shards", type=int, default=None, help="N, with --shard-rank; under torchrun, unset: WORLD_SIZE")
    p.set_defaults(handler=cmd_decode)

    p = subparsers.add_parser("merge-decode", help="merge the parts of a sharded decode",
                              description=cmd_merge_decode.__doc__, formatter_class=FMT)
    p.add_argument("--out", required=True, help="the --out given to the shards; the parts are deleted once merged")
    p.add_argument("--num-shards", type=int, required=True, help="number of shards")
    p.add_argument("--format", choices=("auto", "jsonl", "text"), default="auto", help="output format")
    p.add_argument("--stats", default=None, help="write the summed decoding time here (JSON)")
    p.add_argument("--quiet", action="store_true", help="no summary line")
    p.set_defaults(handler=cmd_merge_decode)

    p = subparsers.add_parser("tune-ctc", help="tune LM weight and word bonus on dev WER",
                              description=cmd_tune_ctc.__doc__, formatter_class=FMT)
    _add_emission_args(p)
    add_search_args(p)
    p.add_argument("--lm-weights", default="0,0.25,0.5,0.75,1.0,1.5", help="LM weights to try")
    p.add_argument("--bonuses", default="-1,0,0.5,1,2,3", help="word insertion bonuses to try")
    p.add_argument("--tune", default=None, help="the scorer whose weight is tuned ('lm' or 'kenlm'; default: the only one)")
    p.add_argument("--weights", default=None, help="fixed weights of the other scorers, e.g. kenlm=0.5")
    p.add_argument("--weights-file", default=None, help="fixed weights from a JSON (e.g. another tuning's weights.json)")
    p.add_argument("--outer", default=None,
                   help="another scorer's weights searched in an outer loop, e.g. kenlm=0.25,0.5,0.75 (the whole grid at each)")
    p.add_argument("--out-dir", required=True,
                   help="writes weights.json, wer_heatmap.png and grid.jsonl (the finished points; a rerun resumes) here")
    p.add_argument("--jobs", type=int, default=1,
                   help="grid points decoded at once, each in its own process (with --threads, else cores/jobs, torch threads)")
    p.add_argument("--restart", action="store_true", help="decode every grid point again (ignore OUT_DIR/grid.jsonl)")
    p.add_argument("--memo", action=argparse.BooleanOptionalAction, default=True,
                   help="word mode: the Transformer's word scores kept in memory and shared by the grid points a "
                        "process decodes (each (history, word) forwarded once; the same results)")
    p.add_argument("--memo-entries", type=int, default=MEMO_MAX_ENTRIES,
                   help="--memo: entries held (about 200 bytes each) before the memo drops some "
                        "(its look-ahead scores first)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_tune_ctc)

    for name, handler in (("rescore", cmd_rescore), ("tune-rescore", cmd_tune_rescore)):
        p = subparsers.add_parser(name, help=handler.__doc__.split(" (")[0], description=handler.__doc__,
                                  formatter_class=FMT)
        p.add_argument("--nbest", required=True, help="n-best JSONL from `lmplug decode --nbest N`")
        p.add_argument("--lm", required=True, help="Transformer LM checkpoint dir (feature 'lm')")
        p.add_argument("--weights", default=None, help="weights of stored features, e.g. kenlm=0.5,lm=0.5,words=1")
        p.add_argument("--weights-file", default=None, help="weights JSON (e.g. the first pass's weights.json)")
        p.add_argument("--device", default="cpu", help="device of the Transformer LM")
        p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default, or 0: torch's)")
        p.set_defaults(handler=handler)
        if name == "rescore":
            p.add_argument("--out", required=True, help="reranked hypotheses (JSONL)")
            p.add_argument("--stats", default=None, help="write rescoring time here (JSON)")
        else:
            p.add_argument("--refs", required=True, help="JSONL with id and reference text (the emissions manifest)")
            p.add_argument("--lm-weights", default="0,0.1,0.2,0.3,0.5,0.75,1.0", help="rescoring LM weights to try")
            p.add_argument("--bonuses", default="-1,0,0.5,1,2,3,4,5",
                           help="word insertion bonuses to try (the first pass's bonus is always tried too)")
            p.add_argument("--out-dir", required=True, help="writes weights.json and wer_heatmap.png here")
