"""Speech subcommands: ``prepare-speech``, ``prepare-real-speech``, ``train-am``, ``emissions``,
``transcribe``, ``make-lexicon``.

    lmplug transcribe talk.wav interview.mp3 --am models/am-synthetic            # beam search, no LM
    lmplug transcribe --manifest calls.jsonl --am exp/real/cpu/am --kenlm exp/lm/cpu/gutenberg/ngram5.bin \
        --weights kenlm=0.75,words=0 --format jsonl --out calls.hyps.jsonl      # words with start/end seconds
    lmplug make-lexicon --words exp/lm/cpu/gutenberg/ngram5.arpa --frontend hama --out lexicon.txt
"""

from __future__ import annotations

import argparse
import os
import json
import sys
import tempfile
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
    from lmplug.errors import expect_unique_ids
    from lmplug.speech.synthesis import read_manifest

    parts = [(p, read_manifest(p)) for p in paths]
    utts = [u for _, part in parts for u in part]
    expect_unique_ids(", ".join(paths), [u.id for u in utts],
                      [f"{p} #{i}" for p, part in parts for i in range(1, len(part) + 1)], unit="entries")
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


def am_frontend(am, cache_dir: str):
    """(front-end, feature cache) of acoustic model ``am`` ((None, None): fbank), loaded; a front-end
    other than the one the model was trained on is an error."""
    frontend, cache = _frontend_of(am.config.frontend, cache_dir)
    if frontend is not None and frontend.key != am.frontend_key:
        raise LmplugError(f"expected the {am.config.frontend} model the acoustic model was trained on "
                          f"({am.frontend_key}), found another installed ({frontend.key})")
    return frontend, cache


def am_features(am, utts, out: Path, cache_dir: str, progress: bool = True):
    """``utts``' features as ``am`` reads them (its front-end, normalized with its training statistics),
    into ``out``."""
    from lmplug.speech.acoustic import extract_features

    frontend, cache = am_frontend(am, cache_dir)
    return extract_features(utts, out, stats=am.cmvn, frontend=frontend, cache=cache, progress=progress)


class CTCSource:
    """Where CTC log-probs come from: an acoustic model (``--am``: its front-end's features, normalized
    with its training statistics, through the model) or a front-end that is itself a CTC model
    (``--frontend hama``: its phone posteriors as they are). ``labels``, ``frame_seconds``, and
    ``emissions(utts, work)``: one (T, V) float32 array per utterance (``work``: a folder for the
    acoustic model's feature files)."""

    def __init__(self, am: str | None, frontend: str | None, cache_dir: str, device: str = "cpu") -> None:
        from lmplug.speech.acoustic import load_am

        if (am is None) == (frontend is None):
            raise LmplugError("expected one of --am (an acoustic model) or --frontend hama, found "
                              f"{'both' if am else 'neither'}")
        self.name = am or frontend
        self.device = device
        if am is not None:
            self.am = load_am(am, device=device)
            self.frontend, self.cache = am_frontend(self.am, cache_dir)
            self.labels = list(self.am.config.labels)
            self.frame_seconds = self.am.frame_seconds
        else:
            self.am = None
            self.frontend, self.cache = _frontend_of(frontend, cache_dir)
            if not hasattr(self.frontend, "tokens"):
                raise LmplugError(f"--frontend: expected a front-end with CTC outputs (hama), found {frontend}, "
                                  "whose states need a trained head (--am)")
            self.labels = list(self.frontend.tokens)
            self.frame_seconds = 1.0 / self.frontend.frame_rate

    def emissions(self, utts, work: Path, progress: bool = True) -> list:
        import numpy as np

        if self.am is None:
            from lmplug.speech.cache import compute_features

            return [e.astype(np.float32) for e in compute_features(self.frontend, [u.audio for u in utts], self.cache,
                                                                   progress=progress)]
        from lmplug.speech.acoustic import emissions, extract_features

        fs = extract_features(utts, work, stats=self.am.cmvn, frontend=self.frontend, cache=self.cache, progress=progress)
        if short := [u.audio for u, n in zip(utts, fs.lengths) if n < 1]:
            raise LmplugError(f"{short[0]}: expected audio long enough for one feature frame (25 ms), found less")
        return emissions(self.am, fs)


def cmd_emissions(args: argparse.Namespace) -> int:
    """Write emissions for ``lmplug decode``: OUT/npy/<id>.npy (T, V) log-probs, OUT/manifest.jsonl
    (id, emissions, text, duration[, greedy transcript]) and OUT/labels.json; of an acoustic model
    (--am), or of a front-end that is itself a CTC model (--frontend hama: phone log-probs, decoded
    into words with ``--lexicon``)."""
    import numpy as np

    from lmplug.speech.acoustic import greedy_transcript
    from lmplug.speech.synthesis import read_manifest

    source = CTCSource(args.am, args.frontend, args.feature_cache)
    utts = read_manifest(args.manifest)
    bad = [u.id for u in utts if "/" in u.id or u.id in (".", "..")]
    if bad:
        raise LmplugError(f"{args.manifest}: expected utterance ids usable as file names, found {bad[:3]}")
    out = Path(args.out)
    if source.am is not None and source.am.cmvn is None:
        print(f"[emissions] {args.am} carries no feature statistics (trained before they were saved): features "
              "normalized with this manifest's own", file=sys.stderr)
    t0 = time.time()
    em = source.emissions(utts, out / "feats")  # reads every audio file before it creates OUT
    labels = source.labels
    greedy = None if source.am is None else [greedy_transcript(e, labels) for e in em]
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


class _Tuned:
    """The default of a search flag ``transcribe`` sets from the LMs given (shown as such in --help)."""

    def __str__(self) -> str:
        return "tuned: by the LMs given"


_TUNED = _Tuned()


def _transcribe_settings(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with the speech recipe's tuned search settings where the user gave none: the
    look-ahead of the LMs given (--lm, else --kenlm); with --lm, recombination by its last word and
    --oov-penalty -20. ``--history-words 0``: no recombination."""
    from lmplug.constants import TRANSCRIBE_SEARCH as TUNED
    from lmplug.ctc.types import CTCDecoderConfig as DEFAULTS

    own = args.backend != "pyctcdecode"  # pyctcdecode has neither look-ahead nor recombination settings
    lm = bool(args.lm) and own
    settings = {
        "lookahead": (["lm"] if lm else ["kenlm"] if args.kenlm and own else []) if args.lookahead is _TUNED else args.lookahead,
        "oov_penalty": (TUNED["oov_penalty_lm"] if lm else DEFAULTS.partial_oov_logp) if args.oov_penalty is _TUNED else args.oov_penalty,
        "history_words": (TUNED["history_words_lm"] if lm else None) if args.history_words is _TUNED else args.history_words or None,
    }
    return argparse.Namespace(**{**vars(args), **settings})


def _transcribe_inputs(audio: list[str], manifest: str | None):
    """The utterances to transcribe: audio files (each its own id), or a manifest's rows (id, audio[, text])."""
    from lmplug.speech.synthesis import Utterance, read_manifest

    if bool(audio) == bool(manifest):
        raise LmplugError(f"expected audio files or --manifest, found {'both' if audio else 'neither'}")
    if manifest:
        return read_manifest(manifest, require_text=False)
    for a in audio:
        if not Path(a).is_file():
            raise LmplugError(f"audio not found: expected a WAV, FLAC, OGG, Opus or MP3 file at {a}")
    return [Utterance(id=a, audio=a, text="") for a in audio]


def _transcribe_chunk(source: CTCSource, dec, utts, work: Path) -> list:
    """The best hypothesis (``CTCHypothesis``) of each of ``utts``: the source's (T, V) log-probs
    (features into ``work``), then the search."""
    from lmplug.cli.ctc import emission_batches
    from lmplug.ctc.io import UtteranceEmissions

    em = [UtteranceEmissions(u.id, e) for u, e in zip(utts, source.emissions(utts, work, progress=False))]
    best: list = [None] * len(em)
    for idx, x, lens in emission_batches(em, len(em), source.device):
        for i, hyps in zip(idx, dec.decode(x, lens)):
            best[i] = hyps[0]
    return best


def _transcript_row(utt, hyp, frame_seconds: float) -> dict:
    """One JSONL row: id, audio, text, score(s), words with start/end seconds, duration (seconds)."""
    from lmplug.speech.audio import audio_seconds

    duration = audio_seconds(utt.audio)

    def at(frame: int) -> float:
        return round(min(frame * frame_seconds, duration), 3)

    words = [{"word": w, "start": at(a), "end": at(b)} for w, (a, b) in zip(hyp.text.split(), hyp.word_frames)]
    return {"id": utt.id, "audio": str(utt.audio), "text": hyp.text, "score": hyp.score, "scores": hyp.scores,
            "words": words, "duration": round(duration, 3)}


def cmd_transcribe(args: argparse.Namespace) -> int:
    """Transcribe audio files (WAV, FLAC, OGG, MP3; any rate, resampled to 16 kHz) with an acoustic
    model and CTC beam search fused with --lm/--kenlm (no LM: plain beam search; --beam-size 1: greedy).

    Search defaults are the speech recipe's tuned ones: --token-min-logp -8; the look-ahead of the LMs
    given (--lookahead lm with --lm, else kenlm with --kenlm); with --lm, --history-words 1 and
    --oov-penalty -20. Output: one line per input, ``<audio path or id><TAB><text>`` (text), or
    id, audio, text, score, words [{word, start, end} in seconds], duration (jsonl). On stderr: the
    compute time (features, acoustic model, search; model loading apart) per audio second."""
    from tqdm import tqdm

    from lmplug.cli.ctc import decode_spec, read_weights, scorer_spec, setup_decoding
    from lmplug.ctc.backends import build_decoder, load_scorers
    from lmplug.files import check_writable, write_lines

    args = _transcribe_settings(args)
    check_writable(args.out)
    utts = _transcribe_inputs(args.audio, args.manifest)
    setup_decoding(args)
    source = CTCSource(args.am, args.frontend, args.feature_cache, args.device)
    if args.frontend and not isinstance(args.lexicon, str):
        raise LmplugError(f"--frontend {args.frontend}: expected --lexicon FILE (its words as phones, "
                          "`lmplug make-lexicon`) to spell words with, found none")
    models = scorer_spec(args)
    scorers = load_scorers(models, args.backend)
    weights = read_weights(args.weights, args.weights_file, {n: 0.5 for n in scorers})
    if unknown := sorted(set(weights) - {*scorers, "words"}):
        given = f"--weights-file {args.weights_file}" if args.weights_file else f"--weights {args.weights}"
        raise LmplugError(f"{given}: expected weights of the scorers loaded ({sorted(scorers) or 'none'}; --lm, "
                          f"--kenlm) and 'words', found {unknown} too")
    dec = build_decoder(decode_spec(args, labels=source.labels), models, scorers, weights)
    if source.am is not None and source.am.cmvn is None and not args.quiet:
        print(f"[transcribe] {args.am} carries no feature statistics: each batch normalized with its own", file=sys.stderr)
    rows, seconds = [], 0.0
    with tempfile.TemporaryDirectory(prefix="lmplug-transcribe-") as tmp, \
            tqdm(total=len(utts), unit="utt", desc="transcribe", disable=args.quiet) as bar:
        for a in range(0, len(utts), args.batch_size):
            chunk = utts[a : a + args.batch_size]
            t0 = time.perf_counter()
            best = _transcribe_chunk(source, dec, chunk, Path(tmp) / f"feats{a}")
            seconds += time.perf_counter() - t0
            rows += [_transcript_row(u, h, source.frame_seconds) for u, h in zip(chunk, best)]
            bar.update(len(chunk))
    as_text = args.format == "text" or (args.format == "auto" and not args.out.endswith(".jsonl"))
    write_lines(args.out, (f"{r['id']}\t{r['text']}" if as_text else json.dumps(r) for r in rows))
    if not args.quiet:
        audio = sum(r["duration"] for r in rows)
        am = f"am:{args.am}" if args.am else f"frontend:{args.frontend}|lexicon:{args.lexicon}"
        sig = "|".join([am, *(f"{k}:{v}" for k, v in (("kenlm", args.kenlm), ("lm", args.lm)) if v),
                        f"weights:{json.dumps(dec.weights)}", f"beam:{args.beam_size}", f"backend:{args.backend}"])
        print(f"[transcribe] {len(rows)} utterances, {audio:.1f} s of audio, {seconds:.1f} s of compute (features, "
              f"acoustic model, search): {seconds / max(audio, 1e-9):.3f} s per audio second | {sig}", file=sys.stderr)
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
    from lmplug.cli.ctc import add_search_args
    from lmplug.constants import FEATURE_CACHE, FRONTENDS, SCALES, TRANSCRIBE_SEARCH
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

    p = sub.add_parser("transcribe", help="audio files to text: the acoustic model, then CTC beam search with LM fusion",
                       description=cmd_transcribe.__doc__, formatter_class=FMT)
    p.set_defaults(handler=cmd_transcribe)
    p.add_argument("audio", nargs="*", help="audio files (WAV, FLAC, OGG, MP3; any rate >= 8 kHz; stereo averaged)")
    p.add_argument("--manifest", default=None, help="instead of files: JSONL with id, audio[, text] (paths relative to it)")
    p.add_argument("--am", default=None, help="acoustic model checkpoint (`lmplug train-am`, or models/am-real-whisper)")
    p.add_argument("--frontend", default=None, choices=("hama",),
                   help="instead of --am: a front-end's own CTC outputs (hama's phones; needs --lexicon FILE)")
    add_search_args(p, {"token_min_logp": TRANSCRIBE_SEARCH["token_min_logp"], "lookahead": _TUNED,
                        "oov_penalty": _TUNED, "history_words": _TUNED})
    p.add_argument("--weights", default=None, help="fusion weights, e.g. kenlm=0.75,words=0 (default: 0.5 per LM)")
    p.add_argument("--weights-file", default=None, help="weights JSON (a tune-ctc weights.json); overrides --weights")
    p.add_argument("--feature-cache", default=FEATURE_CACHE, help="where front-end features are cached")
    p.add_argument("--out", default="-", help="output file, '-' for stdout (written whole, once every input is done)")
    p.add_argument("--format", choices=("auto", "text", "jsonl"), default="auto",
                   help="text: <audio or id><TAB><text> a line; jsonl: also score, word times, duration; "
                        "auto: jsonl for an --out ending in .jsonl, else text")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no timing summary")

    p = sub.add_parser("make-lexicon", help="a phone pronunciation lexicon of a word list (G2P) for decode --lexicon",
                       description=cmd_make_lexicon.__doc__, formatter_class=FMT)
    p.set_defaults(handler=cmd_make_lexicon)
    p.add_argument("--words", required=True,
                   help="words: one per line, or a KenLM .arpa (or .bin with its .arpa beside it): its unigrams")
    p.add_argument("--frontend", default="hama", help="the phone front-end whose labels and G2P spell the words")
    p.add_argument("--out", required=True, help="lexicon file to write (word<TAB>phones, one pronunciation a line)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


__all__ = ["register"]
