"""Speech subcommands: ``prepare-speech``, ``prepare-real-speech``, ``train-am``, ``emissions``,
``transcribe``, ``make-lexicon``.

    lmplug make-lexicon --words exp/lm/cpu/gutenberg/ngram5.arpa --frontend hama --out lexicon.txt
"""

from __future__ import annotations

import argparse
import os
import json
import sys
import time
from pathlib import Path

from lmplug.cli.args import FMT, parse_grid
from lmplug.constants import AM_PRESETS
from lmplug.errors import LmplugError, expect_number

def cmd_prepare_speech(args: argparse.Namespace) -> int:
    from lmplug.corpus import normalize, read_lines
    from lmplug.speech.synthesis import VOICES, build_speech_corpus

    snr = tuple(parse_grid(args.snr, "--snr"))
    if len(snr) != 2 or snr[0] > snr[1]:
        raise LmplugError(f"--snr: expected 'low,high' with low <= high, found {args.snr!r}")
    read = [normalize(l, "lower") for l in read_lines(args.text)]
    allowed = set("abcdefghijklmnopqrstuvwxyz' ")  # the acoustic model's character labels
    lines = [l for l in read if l and len(l.split()) <= args.max_words and set(l) <= allowed]
    if not lines:
        raise LmplugError(f"{args.text}: expected sentences of at most {args.max_words} words of letters, apostrophes "
                          f"and spaces (after normalizing), found none among {len(read)} lines")
    if args.max_sentences and len(lines) > args.max_sentences:
        import numpy as np

        keep = np.sort(np.random.default_rng(args.seed).choice(len(lines), args.max_sentences, replace=False))
        lines = [lines[i] for i in keep]
    voices = args.voices.split(",") if args.voices else VOICES[args.split]
    t0 = time.time()
    manifest = build_speech_corpus(lines, args.out, args.split, voices=voices, snrs=snr, seed=args.seed,
                                   workers=args.workers, reverb_prob=args.reverb)
    print(json.dumps({"manifest": str(manifest), "utterances": len(lines), "voices": list(voices),
                      "seconds": round(time.time() - t0, 1)}))
    return 0


def cmd_prepare_real_speech(args: argparse.Namespace) -> int:
    """Manifests of real recordings: Cathy split by prompt into train/dev/test (plus augmented copies of
    the training recordings, train_aug.jsonl) and pocketsphinx-testdata's other speakers (unseen.jsonl)."""
    from lmplug.speech.corpora import augment_recordings, read_cathy, read_sphinx_testdata, split_by_prompt, write_rows

    expect_number("", "--augment", args.augment, integer=True, at_least=0)
    rows, skipped = read_cathy(args.cathy)
    sphinx = read_sphinx_testdata(args.sphinx) if args.sphinx else []  # both read before anything is written
    splits = split_by_prompt(rows, args.dev_prompts, args.test_prompts, args.seed)
    out = Path(args.out)
    counts = {name: len(part) for name, part in splits.items()}
    for name, part in splits.items():
        write_rows(part, out / f"{name}.jsonl")
    if args.augment:
        aug = augment_recordings(splits["train"], out, args.augment, seed=args.seed, workers=args.workers)
        write_rows(aug, out / "train_aug.jsonl")
        counts["train_aug"] = len(aug)
    if sphinx:
        write_rows(sphinx, out / "unseen.jsonl")
        counts["unseen"] = len(sphinx)
    print(json.dumps({"out": str(out), "utterances": counts, "skipped": skipped,
                      "prompts": {k: len({r["prompt"] for r in v}) for k, v in splits.items()}}))
    return 0


def _frontend_of(name: str, cache_dir: str):
    """(front-end, feature cache) of a model's ``frontend`` name; (None, None) for fbank."""
    from lmplug.speech.acoustic import FBANK

    if name == FBANK:
        return None, None
    from lmplug.speech.cache import FeatureCache
    from lmplug.speech.frontends import load_frontend

    return load_frontend(name), FeatureCache(cache_dir)


def _read_manifests(paths: list[str]):
    """The utterances of one or more manifests, ids unique across them."""
    from lmplug.speech.synthesis import read_manifest

    utts = [u for p in paths for u in read_manifest(p)]
    seen: dict[str, int] = {}
    for u in utts:
        seen[u.id] = seen.get(u.id, 0) + 1
    if dup := [i for i, n in seen.items() if n > 1]:
        raise LmplugError(f"{', '.join(paths)}: expected utterance ids unique across the manifests, found "
                          f"{len(dup)} repeated, e.g. {dup[:3]}")
    return utts


def cmd_train_am(args: argparse.Namespace) -> int:
    """Train (or resume) a CTC acoustic model: on fbank (the synthetic-speech recipe), or as a head on
    a pretrained front-end's states (--frontend whisper-base; its features cached in --feature-cache)."""
    from lmplug.constants import HEAD_PRESETS
    from lmplug.speech.acoustic import FBANK, AMConfig, extract_features, train_am
    from lmplug.train import TrainConfig

    am_kw, tr_kw = (AM_PRESETS if args.frontend == FBANK else HEAD_PRESETS)[args.scale]
    tr_kw = dict(tr_kw, device=args.device)
    if args.max_steps is not None:
        expect_number("", "--max-steps", args.max_steps, integer=True, at_least=1)
        tr_kw["max_steps"] = args.max_steps
    out = Path(args.out)
    frontend, cache = _frontend_of(args.frontend, args.feature_cache)
    train_utts, dev_utts = _read_manifests(args.train), _read_manifests([args.dev])
    train = extract_features(train_utts, out / "feats" / "train", frontend=frontend, cache=cache)
    dev = extract_features(dev_utts, out / "feats" / "dev", stats=train.stats, frontend=frontend, cache=cache)
    config = AMConfig(**am_kw, frontend=args.frontend, **({} if frontend is None else {"n_mels": frontend.dim}))
    summary = train_am(train, dev, out, config, TrainConfig(batch_size=1, **tr_kw),
                       max_frames=args.max_frames, resume=not args.no_resume)
    print(json.dumps({k: summary[k] for k in ("steps", "units_seen", "parameters", "elapsed_s", "dev_loss")}))
    return 0


def am_features(am, utts, out: Path, cache_dir: str, progress: bool = True):
    """``utts``' features as ``am`` reads them (its front-end, normalized with its training statistics),
    into ``out``; a front-end other than the one the model was trained on is an error."""
    from lmplug.speech.acoustic import extract_features

    frontend, cache = _frontend_of(am.config.frontend, cache_dir)
    if frontend is not None and frontend.key != am.frontend_key:
        raise LmplugError(f"expected the {am.config.frontend} model the acoustic model was trained on "
                          f"({am.frontend_key}), found another installed ({frontend.key})")
    return extract_features(utts, out, stats=am.cmvn, frontend=frontend, cache=cache, progress=progress)


def cmd_emissions(args: argparse.Namespace) -> int:
    """Write emissions for ``lmplug decode``: OUT/npy/<id>.npy (T, V) log-probs, OUT/manifest.jsonl
    (id, emissions, text, duration[, greedy transcript]) and OUT/labels.json; of an acoustic model
    (--am), or of a front-end that is itself a CTC model (--frontend hama: phone log-probs, decoded
    into words with ``--lexicon``)."""
    import numpy as np

    from lmplug.speech.acoustic import emissions, greedy_transcript, load_am
    from lmplug.speech.synthesis import read_manifest

    if (args.am is None) == (args.frontend is None):
        raise LmplugError("expected one of --am (an acoustic model) or --frontend hama, found "
                          f"{'both' if args.am else 'neither'}")
    am = load_am(args.am) if args.am else None
    utts = read_manifest(args.manifest)
    bad = [u.id for u in utts if "/" in u.id or u.id in (".", "..")]
    if bad:
        raise LmplugError(f"{args.manifest}: expected utterance ids usable as file names, found {bad[:3]}")
    out = Path(args.out)
    t0 = time.time()
    if am is None:  # the front-end's own CTC log-probs
        from lmplug.speech.cache import compute_features

        frontend, cache = _frontend_of(args.frontend, args.feature_cache)
        if not hasattr(frontend, "tokens"):
            raise LmplugError(f"--frontend: expected a front-end with CTC outputs (hama), found {args.frontend}, "
                              "whose states need a trained head (--am)")
        em = [e.astype(np.float32) for e in compute_features(frontend, [u.audio for u in utts], cache, progress=True)]
        labels, greedy = list(frontend.tokens), None
    else:
        if am.cmvn is None:
            print(f"[emissions] {args.am} carries no feature statistics (trained before they were saved): features "
                  "normalized with this manifest's own", file=sys.stderr)
        fs = am_features(am, utts, out / "feats", args.feature_cache)  # reads every audio file before it creates OUT
        t0 = time.time()
        em = emissions(am, fs)
        labels = list(am.config.labels)
        greedy = [greedy_transcript(e, labels) for e in em]
    seconds = time.time() - t0
    (out / "npy").mkdir(parents=True, exist_ok=True)
    (out / "labels.json").write_text(json.dumps(labels, ensure_ascii=False) + "\n")
    with open(out / "manifest.jsonl", "w", encoding="utf-8") as f:
        for i, (u, e) in enumerate(zip(utts, em)):
            np.save(out / "npy" / f"{u.id}.npy", e.astype(np.float32))
            row = {"id": u.id, "emissions": f"npy/{u.id}.npy", "text": u.text, "duration": u.duration, "frames": len(e)}
            f.write(json.dumps(row if greedy is None else {**row, "greedy": greedy[i]}) + "\n")
    summary = {"manifest": str(out / "manifest.jsonl"), "labels": str(out / "labels.json"),
               "utterances": len(utts), "seconds": round(seconds, 1)}
    if greedy is not None and utts and all(u.text for u in utts):  # the model's own accuracy: greedy WER and CER
        import jiwer

        refs = [u.text for u in utts]
        summary.update(greedy_wer=round(100 * jiwer.wer(refs, greedy), 2), greedy_cer=round(100 * jiwer.cer(refs, greedy), 2))
    print(json.dumps(summary))
    return 0


def cmd_make_lexicon(args: argparse.Namespace) -> int:
    """Write a pronunciation lexicon (word<TAB>phone phone ...) of a word list or a KenLM model's
    unigrams, with the phones of a phone front-end's G2P, for `lmplug decode --lexicon FILE`."""
    from tqdm import tqdm

    from lmplug.ctc.backends import read_words
    from lmplug.ctc.lexicon import write_lexicon
    from lmplug.files import check_writable
    from lmplug.speech.frontends import load_frontend
    from lmplug.speech.lexicon import load_g2p, phone_lexicon

    if args.frontend != "hama":
        raise LmplugError(f"--frontend: expected a phone front-end with a G2P (hama), found {args.frontend!r}")
    check_writable(args.out)
    words = list(dict.fromkeys(read_words(args.words)))
    if not words:
        raise LmplugError(f"{args.words}: expected words, found none")
    tokens = load_frontend(args.frontend).tokens
    g2p = load_g2p()
    with tqdm(total=len(words), unit="word", desc="make-lexicon", disable=args.quiet) as bar:
        lex = phone_lexicon(words, tokens, g2p=g2p, progress=bar.update)
    lines = write_lexicon(args.out, lex.pronunciations)
    print(json.dumps({"out": args.out, "lines": lines, **lex.summary(), "seconds": round(lex.seconds, 1),
                      "skipped_examples": {k: v[:5] for k, v in lex.skipped.items() if v}}, ensure_ascii=False))
    return 0


def register(sub) -> None:
    from lmplug.constants import FEATURE_CACHE, FRONTENDS, SCALES
    from lmplug.speech.corpora import SPHINX_TESTDATA

    p = sub.add_parser("prepare-speech", help="synthesize a speech corpus (espeak-ng) with noise",
                       description=cmd_prepare_speech.__doc__, formatter_class=FMT)
    p.set_defaults(handler=cmd_prepare_speech)
    p.add_argument("--text", required=True,
                   help="sentences, one a line (normalized to lowercase; lines with letters outside a-z are skipped)")
    p.add_argument("--out", required=True, help="corpus directory (audio/ and <split>.jsonl)")
    p.add_argument("--split", required=True, choices=["train", "dev", "test"], help="which voice set speaks")
    p.add_argument("--voices", default=None, help="comma-separated espeak-ng voice+variant list (default: by split)")
    p.add_argument("--max-sentences", type=int, default=0, help="random sample of this many sentences (0 = all)")
    p.add_argument("--max-words", type=int, default=30, help="skip longer sentences")
    p.add_argument("--snr", default="10,30", help="SNR range in dB, 'low,high'")
    p.add_argument("--reverb", type=float, default=0.0, help="probability of synthetic reverberation")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 2), help="synthesis processes")

    p = sub.add_parser("prepare-real-speech", help="manifests of real recordings: Cathy by prompt, pocketsphinx-testdata",
                       description=cmd_prepare_real_speech.__doc__, formatter_class=FMT)
    p.set_defaults(handler=cmd_prepare_real_speech)
    p.add_argument("--cathy", default="data/cathy", help="the Cathy corpus folder (manifest.jsonl, audio/)")
    p.add_argument("--sphinx", default=SPHINX_TESTDATA,
                   help="pocketsphinx-testdata's data folder (unseen speakers); '' to skip")
    p.add_argument("--out", required=True, help="output folder (train/dev/test[/train_aug/unseen].jsonl)")
    p.add_argument("--dev-prompts", type=int, default=100, help="held-out prompts for dev")
    p.add_argument("--test-prompts", type=int, default=150, help="held-out prompts for test")
    p.add_argument("--augment", type=int, default=2, help="perturbed copies of each training recording")
    p.add_argument("--seed", type=int, default=0, help="split and augmentation seed")
    p.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 2), help="augmentation processes")

    p = sub.add_parser("train-am", help="train (or resume) the CTC acoustic model", formatter_class=FMT)
    p.set_defaults(handler=cmd_train_am)
    p.add_argument("--train", required=True, nargs="+", help="training manifest(s) (JSONL)")
    p.add_argument("--dev", required=True, help="dev manifest (JSONL)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--scale", default="cpu", choices=SCALES, help="model/training preset")
    p.add_argument("--max-steps", type=int, default=None, help="override the preset's max_steps")
    p.add_argument("--max-frames", type=int, default=12000, help="padded fbank frames per batch")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    p.add_argument("--frontend", default="fbank", choices=("fbank", *FRONTENDS),
                   help="input features: fbank, or a pretrained front-end's states (a CTC head on it)")
    p.add_argument("--feature-cache", default=FEATURE_CACHE, help="where front-end features are cached")

    p = sub.add_parser("emissions", help="CTC log-probs of a manifest, with greedy transcripts, for `decode`",
                       description=cmd_emissions.__doc__, formatter_class=FMT)
    p.set_defaults(handler=cmd_emissions)
    p.add_argument("--am", default=None, help="acoustic model checkpoint")
    p.add_argument("--frontend", default=None, choices=("hama",), help="instead of --am: a front-end's own CTC outputs")
    p.add_argument("--manifest", required=True, help="JSONL manifest")
    p.add_argument("--out", required=True, help="output directory (manifest.jsonl, labels.json, npy/)")
    p.add_argument("--feature-cache", default=FEATURE_CACHE, help="where front-end features are cached")

    p = sub.add_parser("make-lexicon", help="a phone pronunciation lexicon of a word list (G2P) for decode --lexicon",
                       description=cmd_make_lexicon.__doc__, formatter_class=FMT)
    p.set_defaults(handler=cmd_make_lexicon)
    p.add_argument("--words", required=True,
                   help="words: one per line, or a KenLM .arpa (or .bin with its .arpa beside it): its unigrams")
    p.add_argument("--frontend", default="hama", help="the phone front-end whose labels and G2P spell the words")
    p.add_argument("--out", required=True, help="lexicon file to write (word<TAB>phones, one pronunciation a line)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


__all__ = ["register"]
