"""``lmplug`` subcommands of the LM core: data, tokenizer, Transformer LM and KenLM training, scoring.

    lmplug prepare-bible | prepare-text | train-tokenizer | train-lm | train-ngram | ppl | score
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from lmplug.cli.args import add_command
from lmplug.errors import LmplugError, expect_number


# ---------------------------------------------------------------------------------------- data
def cmd_prepare_bible(args: argparse.Namespace) -> int:
    from lmplug.corpus import build_bible_corpus

    m = build_bible_corpus(args.out, force=args.force)
    print(json.dumps(m["counts"]))
    return 0


def cmd_prepare_text(args: argparse.Namespace) -> int:
    from lmplug.corpus import split_text_file

    counts = split_text_file(args.input, args.out, normalization=args.normalize, every=args.every)
    print(json.dumps(counts))
    return 0


# ------------------------------------------------------------------------------------ training
def cmd_train_tokenizer(args: argparse.Namespace) -> int:
    from lmplug.constants import TOKENIZER_VOCAB
    from lmplug.tokenizer import train_tokenizer

    if args.vocab_size is not None:
        expect_number("", "--vocab-size", args.vocab_size, integer=True, at_least=1)
    vocab = TOKENIZER_VOCAB[args.scale] if args.vocab_size is None else args.vocab_size
    tok = train_tokenizer(args.text, args.out, vocab_size=vocab, model_type=args.model_type)
    print(f"[train-tokenizer] {tok.vocab_size} pieces -> {args.out}")
    return 0


LM_FIELDS = ("n_layer", "n_head", "n_embd", "block_size", "dropout")
TRAIN_FIELDS = ("batch_size", "max_steps", "lr", "warmup_steps", "eval_every", "seed", "device")


def cmd_train_lm(args: argparse.Namespace) -> int:
    from lmplug.constants import LM_PRESETS, TRAIN_PRESETS
    from lmplug.corpus import read_lines
    from lmplug.model import LMConfig
    from lmplug.tokenizer import Tokenizer
    from lmplug.train import TrainConfig, train_lm

    if args.stop_after is not None:
        expect_number("", "--stop-after", args.stop_after, integer=True, at_least=1)
    lm_kw = dict(LM_PRESETS[args.scale])
    lm_kw.update({f: getattr(args, f) for f in LM_FIELDS if getattr(args, f) is not None})
    tr_kw = dict(TRAIN_PRESETS[args.scale])
    tr_kw.update({f: getattr(args, f) for f in TRAIN_FIELDS if getattr(args, f) is not None})
    if args.compile:
        tr_kw["compile"] = True
    tok = Tokenizer.load(args.tokenizer)
    summary = train_lm(read_lines(args.train), read_lines(args.dev), tok, args.out,
                       LMConfig(vocab_size=tok.vocab_size, **lm_kw), TrainConfig(**tr_kw), resume=not args.no_resume,
                       stop_after=args.stop_after)
    print(json.dumps({k: summary[k] for k in ("steps", "tokens_seen", "parameters", "elapsed_s", "dev_loss")}))
    return 0


def cmd_train_ngram(args: argparse.Namespace) -> int:
    from lmplug.ngram import train_ngram

    t0 = time.time()
    paths = train_ngram(args.text, args.out, order=args.order, prune=args.prune or ())
    print(json.dumps({**paths, "elapsed_s": round(time.time() - t0, 1)}))
    return 0


# ------------------------------------------------------------------------------------- scoring
def load_sentence_scorer(path: str, device: str | None = None):
    """(score_fn(sentences) -> list[SentenceScore], signature) for a checkpoint dir or KenLM file."""
    p = Path(path)
    if p.is_file() and (p.suffix in (".arpa", ".bin", ".binary", ".klm") or not p.suffix):
        from lmplug.ngram import load_kenlm, score_sentences_ngram

        model = load_kenlm(p)
        return (lambda s: score_sentences_ngram(model, s)), f"lm:kenlm|order:{model.order}|path:{p}"
    from lmplug.checkpoint import load_lm
    from lmplug.scoring import score_sentences
    from lmplug.train import pick_device

    lm = load_lm(p, device=pick_device(device or "auto"))
    return (lambda s: score_sentences(lm, s, progress=True)), lm.signature()


def cmd_ppl(args: argparse.Namespace) -> int:
    from lmplug.corpus import read_lines
    from lmplug.scoring import perplexity

    sentences = read_lines(args.text)
    rows = []
    for path in args.model:
        fn, sig = load_sentence_scorer(path, args.device)
        t0 = time.time()
        res = perplexity(fn(sentences))
        res.update(model=path, signature=sig, text=str(args.text), seconds=round(time.time() - t0, 2))
        rows.append(res)
    print(f"{'model':<48} {'sents':>6} {'words':>8} {'oov':>5} {'ppl/word':>9} {'ppl/token':>9}")
    for r in rows:
        print(f"{r['model'][-48:]:<48} {r['sentences']:>6} {r['words']:>8} {r['oov']:>5} {r['ppl_word']:>9.2f} "
              f"{r['ppl_token']:>9.2f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def cmd_export_model(args: argparse.Namespace) -> int:
    """A checkpoint as a reference: half-precision weights, card.json + README.md with digests."""
    from lmplug.checkpoint import resolve_checkpoint
    from lmplug.features import parse_weights
    from lmplug.references import export_reference, write_card

    metrics = parse_weights(",".join(args.metric)) if args.metric else {}
    eval_command = args.eval_command
    if args.eval_text:  # an LM: its per-word and per-token perplexity on the stored (half-precision) weights
        eval_command = f"lmplug ppl --model {args.out} --text {args.eval_text}"
    src = resolve_checkpoint(args.checkpoint)
    card = export_reference(src, args.out, name=args.name, kind=args.kind, description=args.description,
                            data=args.data, train_command=args.train_command, metrics=metrics,
                            eval_command=eval_command, dtype=args.dtype, notes=args.notes)
    if args.eval_text:
        from lmplug.corpus import read_lines
        from lmplug.scoring import perplexity

        fn, _ = load_sentence_scorer(args.out, None)
        res = perplexity(fn(read_lines(args.eval_text)))
        card["metrics"].update(ppl_word=round(res["ppl_word"], 2), ppl_token=round(res["ppl_token"], 2),
                               sentences=res["sentences"], words=res["words"])
        write_card(args.out, card)
    print(json.dumps({k: card[k] for k in ("name", "parameters", "dtype", "bytes", "metrics", "lmplug_commit")}))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from lmplug.corpus import read_lines

    sentences = [l.strip() for l in sys.stdin if l.strip()] if args.text == "-" else read_lines(args.text)
    if not sentences:
        raise LmplugError("no input sentences: expected at least one non-empty line")
    fn, _ = load_sentence_scorer(args.model, args.device)
    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout
    try:
        for s, sc in zip(sentences, fn(sentences)):
            out.write(json.dumps({"text": s, **asdict(sc)}, ensure_ascii=False) + "\n")
    finally:
        if args.out:
            out.close()
    return 0


def register(sub) -> None:
    from lmplug.constants import SCALES

    p = add_command(sub, "prepare-bible", cmd_prepare_bible, "build the embedded default corpus from Debian's bibles")
    p.add_argument("--out", default="data/bible", help="output directory")
    p.add_argument("--force", action="store_true", help="rebuild even if the manifest exists")

    p = add_command(sub, "prepare-text", cmd_prepare_text, "normalize and split a one-line-per-sentence corpus")
    p.add_argument("--input", required=True, help="UTF-8 text, one sentence or paragraph a line")
    p.add_argument("--out", required=True, help="output directory for train/dev/test.txt")
    p.add_argument("--normalize", default="lower", choices=["lower", "clean"], help="normalization")
    p.add_argument("--every", type=int, default=50, help="1 line in EVERY goes to dev, 1 to test, the rest to train (>= 3)")

    p = add_command(sub, "train-tokenizer", cmd_train_tokenizer, "train a sentencepiece tokenizer")
    p.add_argument("--text", required=True, help="training text")
    p.add_argument("--out", required=True, help="output .model path")
    p.add_argument("--scale", default="cpu", choices=SCALES, help="preset for --vocab-size")
    p.add_argument("--vocab-size", type=int, default=None, help="vocabulary size, >= 1 (default: by scale)")
    p.add_argument("--model-type", default="unigram", choices=["unigram", "bpe", "char", "word"], help="algorithm")

    p = add_command(sub, "train-lm", cmd_train_lm, "train (or resume) the Transformer LM")
    p.add_argument("--train", required=True, help="training text, one sentence a line")
    p.add_argument("--dev", required=True, help="dev text for perplexity during training")
    p.add_argument("--tokenizer", required=True, help="sentencepiece .model")
    p.add_argument("--out", required=True, help="output directory (resumed if it holds a checkpoint)")
    p.add_argument("--scale", default="cpu", choices=SCALES, help="preset for every unset model/training flag")
    for f, t in (("n_layer", int), ("n_head", int), ("n_embd", int), ("block_size", int), ("dropout", float),
                 ("batch_size", int), ("max_steps", int), ("lr", float), ("warmup_steps", int),
                 ("eval_every", int), ("seed", int), ("device", str)):
        p.add_argument("--" + f.replace("_", "-"), type=t, default=None, help=f"override the scale preset's {f}")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    p.add_argument("--stop-after", type=int, default=None,
                   help="stop with a checkpoint after this many steps of this run (the schedule still spans --max-steps; "
                        "run again to continue, on any number of processes)")

    p = add_command(sub, "train-ngram", cmd_train_ngram, "build a KenLM n-gram (ARPA + binary) with lmplz")
    p.add_argument("--text", required=True, help="training text, one sentence a line")
    p.add_argument("--out", required=True, help="output prefix: writes PREFIX.arpa and PREFIX.bin")
    p.add_argument("--order", type=int, default=5, help="n-gram order")
    p.add_argument("--prune", type=int, nargs="*", default=None, help="lmplz --prune thresholds per order")

    p = add_command(sub, "ppl", cmd_ppl, "per-word and per-token perplexity of one or more LMs on a text")
    p.add_argument("--model", required=True, action="append", help="checkpoint dir or KenLM .arpa/.bin (repeatable)")
    p.add_argument("--text", required=True, help="text, one sentence a line")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--device", default=None, help="auto | cpu | cuda")

    p = add_command(sub, "export-model", cmd_export_model,
                    "store a checkpoint as a reference: half-precision weights, a model card, digests")
    p.add_argument("--checkpoint", required=True, help="the checkpoint (any lmplug model: LM, acoustic, translation)")
    p.add_argument("--out", required=True, help="the reference directory, e.g. models/lm-bible")
    p.add_argument("--name", required=True, help="its name in the card")
    p.add_argument("--kind", required=True, help="lm | am | nmt | ...")
    p.add_argument("--description", default="", help="one paragraph for the card")
    p.add_argument("--data", default="", help="what it was trained on")
    p.add_argument("--train-command", default="", help="the exact command that trained it")
    p.add_argument("--metric", action="append", default=[], help="name=value for the card (repeatable)")
    p.add_argument("--eval-command", default="", help="the command that reproduces --metric")
    p.add_argument("--eval-text", default=None,
                   help="an LM: measure per-word/per-token perplexity of the stored weights on this text")
    p.add_argument("--dtype", default="float16", choices=("float16", "bfloat16", "float32"),
                   help="storage precision of the weights (loading restores float32)")
    p.add_argument("--notes", default="", help="anything else the card should say")

    p = add_command(sub, "score", cmd_score, "log-probability of each sentence (JSONL)")
    p.add_argument("--model", required=True, help="checkpoint dir or KenLM .arpa/.bin")
    p.add_argument("--text", default="-", help="text file, or - for stdin")
    p.add_argument("--out", default=None, help="output JSONL (default stdout)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda")
