"""Benchmark CTC decoders with LM fusion on the same emissions: speed (utt/s, RTF) and WER.

Usage (from the repository root):

    # the numbers of issue 3 (CPU, beams 8/16/32)
    .venv/bin/python tools/bench_decode.py --scale cpu --text data/bible/en.test.txt \\
        --kenlm exp/lm/cpu/bible/ngram5.bin --lm exp/lm/cpu/bible/lm --out exp/bench/decode_cpu.json
    # seconds, tiny models of your own
    .venv/bin/python tools/bench_decode.py --scale tiny --text data/bible/en.dev.txt --kenlm my.arpa --lm my_lm_dir

Systems (one run, same emissions, same weights where they share a meaning):

- ``pyctcdecode+kenlm``: ``pyctcdecode.build_ctcdecoder(labels, kenlm, unigrams, alpha, beta).decode``
  one utterance at a time (its own ``decode``, history pruning on);
- ``torchaudio+kenlm``: ``torchaudio.models.decoder.ctc_decoder`` (flashlight) with a lexicon of
  the KenLM unigrams, ``lm_weight = alpha * ln 10`` (flashlight's KenLM gives log10), batch input;
- ``lmplug`` (no LM: the search alone), ``lmplug+kenlm``, ``lmplug+transformer:word``:
  ``lmplug.ctc.decoder.build_ctc_decoder``, batched (``--batch-size``, ``--lm-batch-size``);
- ``lmplug+transformer:token``: token mode, on a second set of emissions over the LM's own
  sentencepiece pieces drawn from the same sentences (its WER is over the same references but
  its emissions differ, so compare its speed, not its WER, with the character systems).
- ``lmplug:torch``, ``lmplug+transformer:token:torch``: the same with ``search="torch"`` (the
  search as tensor operations; same hypotheses), batched by ``--lm-batch-size``; ``...:torch+compile``
  with ``compile=True``, timed after one untimed pass that compiles (its seconds: ``compile_s``).
- ``pyctcdecode+transformer``, ``torchaudio+transformer``: the peers running the SAME Transformer LM
  (same scorer settings as ``lmplug+transformer:word``, same beam): pyctcdecode's
  ``BeamSearchDecoderCTC`` with ``lmplug.scorers.PyctcdecodeLM`` (``alpha = --lm-weight``,
  ``beta = --lm-bonus``, one utterance at a time, as ``pyctcdecode+kenlm``), and torchaudio's
  ``ctc_decoder`` with ``lmplug.scorers.TorchaudioLM`` over the lexicon of ``torchaudio+kenlm``
  (``lm_weight = --lm-weight``: the adapter gives natural logs; ``word_score = --lm-bonus``; its
  decoder is built untimed: flashlight scores every lexicon word once for its trie, ``build_s``).
  Both call the LM one hypothesis at a time (~1 utt/s), so ``all`` leaves them out: name them
  (``--systems all,pyctcdecode+transformer,torchaudio+transformer``). The checks give
  ``lmplug+transformer:word``'s utt/s over each peer's, and the WER difference.

Every Transformer row has ``lm_work``: the LM's forwards as ``TransformerScorer.work`` counts them
during the timed decoding (forward calls, rows, new tokens, padded tokens), with ``tokens_per_utt`` and
``tokens_per_word`` (per reference word).

Emissions: a real acoustic model's (``--emissions DIR`` as written by ``lmplug emissions``:
manifest.jsonl with references, labels.json, npy/), or else ``lmplug.ctc.simulate`` (peaky, confusable,
noisy CTC posteriors; see that module). RTF assumes ``--frame-ms`` per frame (the speech recipe's
Conformer-CTC: 10 ms fbank hop, subsampled 4x = 40 ms).

    # real emissions of the speech recipe (bible dev set), tuned weights from its tune_* dirs
    .venv/bin/python tools/bench_decode.py --emissions exp/asr/cpu/bible/emissions_dev --frame-ms 40 \
        --kenlm exp/lm/cpu/bible/ngram5.bin --lm exp/lm/cpu/bible/lm --beams 16 --out exp/bench/decode_real.json
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lmplug.ctc.decoder import build_ctc_decoder, greedy_decode, search_variant
from lmplug.ctc.types import CTCDecoderConfig
from lmplug.files import write_benchmark
from lmplug.ctc.tune import word_error_rate
from lmplug.ngram import arpa_unigrams
from lmplug.scorers.kenlm import KenLMScorer
from lmplug.scorers.transformer import TransformerScorer
from lmplug.ctc.simulate import char_labels, pad_batch, simulate_emissions, text_to_char_ids

SEARCH_VARIANTS = ("numpy", "torch", "torch+compile")  # lmplug systems' searches (lmplug.ctc.decoder.search_variant)
SCALES = {"tiny": dict(n=24, max_words=20), "cpu": dict(n=200, max_words=30)}
WORD_END = True  # TransformerScorer scores complete words in word fusion (its default)
CFG = CTCDecoderConfig()  # the decoder defaults every lmplug system runs with (and pyctcdecode's pruning)
PEERS = ("pyctcdecode+transformer", "torchaudio+transformer")  # the same Transformer in the peers' decoders
SYSTEMS = (("greedy", "pyctcdecode+kenlm", "torchaudio+kenlm", "lmplug+kenlm", "lmplug+transformer:word")
           + tuple(f"{base}{'' if v == 'numpy' else ':' + v}" for base in ("lmplug", "lmplug+transformer:token")
                   for v in SEARCH_VARIANTS))  # what --systems all runs: every system but PEERS (slow)


def read_texts(path: str, n: int, max_words: int) -> list[str]:
    out = []
    for line in open(path, encoding="utf-8"):
        t = " ".join(line.split())
        if t and len(t.split()) <= max_words:
            out.append(t)
        if len(out) == n:
            break
    return out


def timed(fn):
    t0 = time.perf_counter()
    res = fn()
    return res, time.perf_counter() - t0


def warm_up(dec, x, lens, batch_size: int) -> dict:
    """One untimed pass over the batches (compiles what ``compile=True`` compiles): its seconds."""
    t0 = time.perf_counter()
    lmplug_system(dec, x, lens, batch_size)
    return {"compile_s": time.perf_counter() - t0}


def unigrams_for(kenlm_path: str, given: str | None) -> list[str]:
    if given:
        return Path(given).read_text(encoding="utf-8").split()
    p = Path(kenlm_path)
    arpa = p if p.suffix == ".arpa" else p.with_suffix(".arpa")
    if not arpa.is_file():
        sys.exit(f"bench_decode: expected --unigrams or an .arpa next to {p}, found neither")
    return sorted(arpa_unigrams(arpa) or [])


def torchaudio_lexicon(labels: list[str], unis: list[str], tmp: str) -> tuple[list[str], Path, list[str]]:
    """flashlight's tokens for ``labels`` ("-" the blank, "|" the word delimiter) and a lexicon file
    of the unigrams they can spell: (tokens, lexicon path, its words in file order)."""
    tokens = ["-"] + ["|" if l in (" ", "|") else l for l in labels[1:]]  # flashlight: "|" = silence
    chars = set(tokens[1:]) - {"|"}
    words = [w for w in unis if set(w) <= chars]
    lex = Path(tmp) / "lexicon.txt"
    lex.write_text("".join(f"{w} {' '.join(w)} |\n" for w in words))
    return tokens, lex, words


def lm_work(scorer: TransformerScorer, before: dict, n_utts: int, n_words: int) -> dict:
    """The scorer's forwards since ``before`` (a copy of its ``work``), per utterance and reference word."""
    w = {k: v - before[k] for k, v in scorer.work.items()}
    return {**w, "tokens_per_utt": w["tokens"] / n_utts, "tokens_per_word": w["tokens"] / n_words}


def lmplug_system(decoder, x, lens, batch_size: int):
    texts = []
    for a in range(0, len(x), batch_size):
        texts += [h[0].text for h in decoder.decode(x[a : a + batch_size], lens[a : a + batch_size])]
    return texts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--text", default=None, help="reference sentences, one per line (simulated emissions)")
    ap.add_argument("--emissions", default=None, help="a real emissions dir (manifest.jsonl + labels.json) instead")
    ap.add_argument("--kenlm", required=True, help="KenLM .arpa/.bin (word level)")
    ap.add_argument("--unigrams", default=None, help="word list for a binary KenLM (default: the .arpa beside it)")
    ap.add_argument("--lm", default=None, help="lmplug LM checkpoint dir (Transformer systems skipped without it)")
    ap.add_argument("--scale", choices=sorted(SCALES), default="tiny")
    ap.add_argument("--n", type=int, default=None, help="utterances (default: by scale)")
    ap.add_argument("--beams", default="8,16,32")
    ap.add_argument("--alpha", type=float, default=0.5, help="KenLM weight (natural-log scores)")
    ap.add_argument("--beta", type=float, default=1.0, help="word insertion bonus with KenLM")
    ap.add_argument("--lm-weight", type=float, default=0.5, help="Transformer LM weight")
    ap.add_argument("--lm-bonus", type=float, default=1.0, help="word insertion bonus with the Transformer")
    ap.add_argument("--lm-vocabulary", choices=("unigrams", "none"), default="unigrams",
                    help="known words of the Transformer for the partial-word OOV penalty (word mode): the KenLM "
                         "unigrams (both LMs are trained on the same text), or none")
    ap.add_argument("--batch-size", type=int, default=256, help="lmplug and lmplug+kenlm utterances per batch")
    ap.add_argument("--lm-batch-size", type=int, default=64,
                    help="lmplug+transformer utterances per batch (KV caches: memory grows with batch x beam)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: what pyctcdecode gets)")
    ap.add_argument("--device", default="cpu",
                    help="device of the Transformer LM in every Transformer system, lmplug's and the peers' (cpu, cuda, auto)")
    ap.add_argument("--frame-ms", type=float, default=20.0, help="emission frame shift, for RTF")
    ap.add_argument("--lexicon", action="store_true", help="lmplug word-mode systems spell only known words")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--systems", default="all",
                    help="comma list of system names to run; all: every system but the slow peers "
                         f"{', '.join(PEERS)} (~1 utt/s), which run only when named (all,{PEERS[0]})")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("pyctcdecode").setLevel(logging.ERROR)
    sc = SCALES[args.scale]
    if args.emissions:
        from lmplug.ctc.io import load_emissions, load_labels

        utts = load_emissions(Path(args.emissions) / "manifest.jsonl")[: args.n]
        if any(u.text is None for u in utts):
            sys.exit(f"bench_decode: expected a reference text for every utterance of {args.emissions}, found none for some")
        texts, em = [u.text for u in utts], [u.emissions for u in utts]
        labels = load_labels(Path(args.emissions) / "labels.json")
    elif args.text:
        texts = read_texts(args.text, args.n or sc["n"], sc["max_words"])
        labels = char_labels(texts)
        em = simulate_emissions([text_to_char_ids(t, labels) for t in texts], labels, seed=args.seed)
    else:
        sys.exit("bench_decode: expected --emissions DIR or --text FILE, found neither")
    x, lens = pad_batch(em)
    audio_s = float(lens.sum()) * args.frame_ms / 1000
    unis = unigrams_for(args.kenlm, args.unigrams)
    beams = [int(b) for b in args.beams.split(",")]
    want = set(args.systems.split(","))
    if "all" in want:
        want |= set(SYSTEMS)
    if want - set(SYSTEMS) - set(PEERS) - {"all"}:
        sys.exit(f"bench_decode: expected --systems from all, {', '.join(SYSTEMS + PEERS)}; "
                 f"found {', '.join(sorted(want - set(SYSTEMS) - set(PEERS) - {'all'}))}")
    n_words = sum(len(t.split()) for t in texts)
    rows: list[dict] = []

    def record(system: str, beam: int, hyps: list[str], secs: float, n_utts: int, audio: float, **extra) -> None:
        row = dict(system=system, beam=beam, utt_per_s=n_utts / secs, rtf=secs / audio, wer=word_error_rate(texts, hyps),
                   seconds=secs, **extra)
        rows.append(row)
        print(f"{system:28s} beam {beam:3d}  {row['utt_per_s']:8.1f} utt/s  RTF {row['rtf']:.4f}  WER {row['wer']:.4f}",
              flush=True)

    def on(name: str) -> bool:
        return name in want

    g, secs = timed(lambda: greedy_decode(x, labels, lens))
    record("greedy", 1, g, secs, len(texts), audio_s)

    ken = KenLMScorer(args.kenlm, unigrams=unis)
    tlm = None
    if args.lm:
        from lmplug.checkpoint import load_lm

        from lmplug.train import pick_device

        tlm = load_lm(args.lm, device=pick_device(args.device))
    vocab = unis if args.lm_vocabulary == "unigrams" else None
    for beam in beams:
        if on("pyctcdecode+kenlm"):
            import pyctcdecode

            dec = pyctcdecode.build_ctcdecoder(labels, args.kenlm, unigrams=unis, alpha=args.alpha, beta=args.beta)
            hyps, secs = timed(lambda: [dec.decode(e, beam_width=beam, token_min_logp=CFG.token_min_logp,
                                                   beam_prune_logp=CFG.beam_prune_logp) for e in em])
            record("pyctcdecode+kenlm", beam, hyps, secs, len(texts), audio_s)
        if on("torchaudio+kenlm"):
            try:
                from torchaudio.models.decoder import ctc_decoder

                with tempfile.TemporaryDirectory() as tmp:
                    tokens, lex, _ = torchaudio_lexicon(labels, unis, tmp)
                    dec = ctc_decoder(lexicon=str(lex), tokens=tokens, lm=args.kenlm, beam_size=beam,
                                      lm_weight=args.alpha * math.log(10), word_score=args.beta, blank_token="-",
                                      sil_token="|", beam_threshold=25)
                xt = torch.from_numpy(x)
                out, secs = timed(lambda: dec(xt, torch.from_numpy(lens).int()))
                record("torchaudio+kenlm", beam, [" ".join(o[0].words) for o in out], secs, len(texts), audio_s)
            except (ImportError, OSError, RuntimeError) as e:
                print(f"torchaudio+kenlm skipped: {e}")
        for search in SEARCH_VARIANTS:  # no LM: the beam search alone, the ceiling of the fused lmplug systems
            name = "lmplug" + ("" if search == "numpy" else f":{search}")
            if on(name):
                dec = build_ctc_decoder(labels, {}, {"words": 0.0}, beam_size=beam, **search_variant(search))
                bs = args.batch_size if search == "numpy" else args.lm_batch_size
                extra = warm_up(dec, x, lens, bs) if dec.compile else {}
                hyps, secs = timed(lambda: lmplug_system(dec, x, lens, bs))
                record(name, beam, hyps, secs, len(texts), audio_s, **extra)
        if on("lmplug+kenlm"):
            dec = build_ctc_decoder(labels, {"kenlm": ken}, {"kenlm": args.alpha, "words": args.beta}, beam_size=beam,
                                    lexicon=args.lexicon)
            hyps, secs = timed(lambda: lmplug_system(dec, x, lens, args.batch_size))
            record("lmplug+kenlm", beam, hyps, secs, len(texts), audio_s)
        if tlm is not None and on("lmplug+transformer:word"):
            dec = build_ctc_decoder(labels, {"lm": TransformerScorer(tlm, vocabulary=vocab, word_end=WORD_END)},
                                    {"lm": args.lm_weight, "words": args.lm_bonus}, beam_size=beam,
                                    lexicon=args.lexicon and vocab is not None)
            sc, before = dec.scorers["lm"], dict(dec.scorers["lm"].work)
            hyps, secs = timed(lambda: lmplug_system(dec, x, lens, args.lm_batch_size))
            record("lmplug+transformer:word", beam, hyps, secs, len(texts), audio_s,
                   lm_work=lm_work(sc, before, len(texts), n_words))
        if tlm is not None and on("pyctcdecode+transformer"):
            from lmplug.scorers.pyctcdecode_lm import build_pyctcdecode_decoder

            sc = TransformerScorer(tlm, vocabulary=vocab, word_end=WORD_END)
            dec = build_pyctcdecode_decoder(labels, sc, alpha=args.lm_weight, beta=args.lm_bonus)
            before = dict(sc.work)
            hyps, secs = timed(lambda: [dec.decode(e, beam_width=beam, token_min_logp=CFG.token_min_logp,
                                                   beam_prune_logp=CFG.beam_prune_logp) for e in em])
            record("pyctcdecode+transformer", beam, hyps, secs, len(texts), audio_s,
                   lm_work=lm_work(sc, before, len(texts), n_words))
        if tlm is not None and on("torchaudio+transformer"):
            try:
                from torchaudio.models.decoder import ctc_decoder

                from lmplug.scorers.torchaudio_lm import TorchaudioLM

                sc = TransformerScorer(tlm, vocabulary=vocab, word_end=WORD_END)
                with tempfile.TemporaryDirectory() as tmp:
                    tokens, lex, words = torchaudio_lexicon(labels, unis, tmp)
                    ta = TorchaudioLM(sc, words=words)
                    ta.write_lm_dict(Path(tmp) / "lm_dict.txt")
                    dec, build_s = timed(lambda: ctc_decoder(
                        lexicon=str(lex), tokens=tokens, lm=ta, lm_dict=str(Path(tmp) / "lm_dict.txt"), beam_size=beam,
                        lm_weight=args.lm_weight, word_score=args.lm_bonus, blank_token="-", sil_token="|",
                        beam_threshold=25))
                before = dict(sc.work)
                xt = torch.from_numpy(x)
                out, secs = timed(lambda: dec(xt, torch.from_numpy(lens).int()))
                record("torchaudio+transformer", beam, [" ".join(o[0].words) for o in out], secs, len(texts), audio_s,
                       lm_work=lm_work(sc, before, len(texts), n_words), build_s=build_s)
            except (ImportError, OSError, RuntimeError) as e:
                print(f"torchaudio+transformer skipped: {e}")
        for search in SEARCH_VARIANTS:
            name = "lmplug+transformer:token" + ("" if search == "numpy" else f":{search}")
            if tlm is None or not on(name):
                continue
            tok = tlm.tokenizer
            tlabels = ["<blank>"] + tok.pieces()
            tem = simulate_emissions([[i + 1 for i in tok.encode(t)] for t in texts], tlabels, seed=args.seed)
            tx, tlens = pad_batch(tem)
            dec = build_ctc_decoder(tlabels, {"lm": TransformerScorer(tlm)}, {"lm": args.lm_weight, "words": 0.0},
                                    beam_size=beam, mode="token", **search_variant(search))
            extra = warm_up(dec, tx, tlens, args.lm_batch_size) if dec.compile else {}
            sc, before = dec.scorers["lm"], dict(dec.scorers["lm"].work)
            hyps, secs = timed(lambda: lmplug_system(dec, tx, tlens, args.lm_batch_size))
            record(name, beam, hyps, secs, len(texts), float(tlens.sum()) * args.frame_ms / 1000, **extra,
                   lm_work=lm_work(sc, before, len(texts), n_words))

    by = {(r["system"], r["beam"]): r for r in rows}
    print("\n| system | beam | utt/s | RTF | WER % | LM tokens/utt | LM tokens/word |\n|---|---|---|---|---|---|---|")
    for r in rows:
        w = r.get("lm_work")
        work = f"{w['tokens_per_utt']:.1f} | {w['tokens_per_word']:.2f}" if w else " | "
        print(f"| {r['system']} | {r['beam']} | {r['utt_per_s']:.1f} | {r['rtf']:.4f} | {100 * r['wer']:.2f} | {work} |")
    checks = {}
    ref_beam = CFG.beam_size if CFG.beam_size in beams else beams[0]  # the checks compare at the default beam
    ref = by.get(("pyctcdecode+kenlm", ref_beam))
    if ref:
        for name in ("lmplug+kenlm", "lmplug+transformer:word", "lmplug+transformer:token"):
            if (name, ref_beam) in by:
                checks[f"{name} / pyctcdecode+kenlm utt/s at beam {ref_beam}"] = by[(name, ref_beam)]["utt_per_s"] / ref["utt_per_s"]
        if ("lmplug+kenlm", ref_beam) in by:
            checks[f"WER lmplug+kenlm - pyctcdecode+kenlm at beam {ref_beam}"] = by[("lmplug+kenlm", ref_beam)]["wer"] - ref["wer"]
    ours = by.get(("lmplug+transformer:word", ref_beam))
    for peer in PEERS:  # the same Transformer in the peers' decoders
        theirs = by.get((peer, ref_beam))
        if ours and theirs:
            checks[f"lmplug+transformer:word / {peer} utt/s at beam {ref_beam}"] = ours["utt_per_s"] / theirs["utt_per_s"]
            checks[f"WER lmplug+transformer:word - {peer} at beam {ref_beam}"] = ours["wer"] - theirs["wer"]
    for k, v in checks.items():
        print(f"{k}: {v:.3f}")
    import lmplug

    source = f"real:{args.emissions}" if args.emissions else f"simulate(seed={args.seed})|text:{args.text}"
    signature = (f"emissions:{source}|n:{len(texts)}|kenlm:{args.kenlm}|"
                 f"lm:{tlm.signature() if tlm else None}|alpha:{args.alpha}|beta:{args.beta}|lm_weight:{args.lm_weight}|"
                 f"lm_bonus:{args.lm_bonus}|lm_vocabulary:{args.lm_vocabulary}|word_end:{WORD_END}|lexicon:{args.lexicon}|token_min_logp:{CFG.token_min_logp}|token_top_k:{CFG.token_top_k}|beam_prune_logp:{CFG.beam_prune_logp}|lm_prefilter:{CFG.lm_prefilter}|threads:{args.threads}|device:{args.device}|batch:{args.batch_size}|lm_batch:{args.lm_batch_size}|lmplug:{lmplug.__version__}")
    result = {"signature": signature, "rows": rows, "checks": checks, "audio_s": audio_s}
    write_benchmark(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
