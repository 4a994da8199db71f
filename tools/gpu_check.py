#!/usr/bin/env python
"""The one device check (issue 6): environment, correctness on the device, benchmarks, recipes.

Run it through ``tools/gpu_check.sh`` (picks the Python, tees the log into ``$OUT``):

    bash tools/gpu_check.sh                                  # on a lent GPU, ~8-10 minutes (estimated); OUT=exp/gpu_check
    bash tools/gpu_check.sh --tiny                           # CPU, ~1 minute: what tests/test_gpu_check.py runs
    bash tools/gpu_check.sh --only matmul,train --train-configs wide    # rerun a subset
    bash tools/gpu_check.sh --emissions exp/asr/gpu/bible/emissions_test --lm exp/lm/gpu/bible/lm
    bash tools/gpu_check.sh --recipes --recipes-seconds 600  # then the gpu-scale recipes, as time allows

Steps; each is guarded (an error is logged with its traceback and the next step runs) and prints
one table line. Status: ok, mismatch (a correctness check disagreed), failed (an error), skipped.

- ``env``: torch/numpy versions, device name, bf16 support, optional packages. The GPU image has
  no kenlm, pyctcdecode or jiwer: ``kenlm_equal`` and WERs are then skipped, and say so.
- ``setup``: a synthetic corpus (pseudo-words with a learnable bigram structure; no data needed),
  a sentencepiece tokenizer and the fusion LM (``lmplug.train_lm`` for a few steps on the device),
  or ``--lm DIR``.
- ``decode_equal``: CTC beam search with Transformer-LM fusion gives the same hypotheses on the
  device as on CPU for the same emissions. ``kenlm_equal``: the same with KenLM + Transformer.
  ``torch_equal``: the search as tensor operations on the device (``search="torch"``, token mode
  over the LM's pieces, simulated emissions of held-out sentences) == the numpy search on CPU.
- ``kv_cache``: KV-cached step-by-step and chunked logits == one full forward, on the device, fp32.
- ``matmul``: measured bf16 matrix rate (fp32 on CPU): MFU's denominator.
- ``train``: LM training tokens/s in bf16 autocast (fused AdamW, grad clipping, torch.compile on
  CUDA) per ``--train-configs``; MFU = 6 x parameters x tokens/s / matmul FLOP/s (and with the
  attention term 12 x layers x width x context per token, as in PaLM's appendix B).
- ``score``: ``lmplug.score_sentences`` tokens/s (fp32).
- ``decode_rtf``: CTC decoding with Transformer-LM fusion at batch 1 and 32; RTF = decoding seconds /
  audio seconds, audio = frames x ``--frame-ms`` (default 40 ms for ``--emissions``: the speech
  recipe's 10 ms fbank hop subsampled 4x; 20 ms for simulated emissions, as tools/bench_decode.py).
  Each row decodes until its time budget (15 s at gpu size) is passed; a row compared with another
  decodes the same utterances as far as its budget goes. Rows: word fusion with the numpy search
  (``1``, ``32``) and the numpy search alone (``search_only``); token fusion on the token emissions
  of ``torch_equal`` (20 ms frames) with the device search (``token_torch_1``, ``token_torch_32``),
  that search alone (``token_torch_search_only``), the numpy search (``token_numpy_32``), and with
  ``--compiled-search`` (default: on CUDA) the device search with its frame step and LM forward
  compiled (``token_torch_compiled_32``) and replayed as CUDA graphs (``token_torch_cudagraphs_32``,
  compile mode reduce-overhead; ``..._bf16_32``: the LM in bf16, half the KV-cache bytes a frame
  moves, its WER may differ a little), each timed over the batches of an untimed pass before it
  that compiles (its seconds: ``warmup_compile_s``). The longest step: ``--compiled-search no``
  leaves out the compiled rows. ``train`` and ``decode_rtf`` print each row as it ends and write it
  to gpu_check.json (step status "running"), so a call that runs out of time keeps them.
- ``decode_profile``: one batch (32) of ``token_torch_32`` under torch.profiler: per LM step the
  wall milliseconds, host operations, device kernels and the device's busy milliseconds (busy /
  wall: how far the device search is launch-bound), and the top kernels by device time.
- ``recipes`` (``--recipes``): ``recipes/*/run.sh --scale gpu`` within ``--recipes-seconds``; or the
  command lines of ``--recipe`` (e.g. the speech recipe's cpu-scale models, trained there).
- ``bring`` (``--bring``): files the recipes made (LM checkpoints, emissions), packed into
  ``$OUT/bring.tar.gz.partNN`` to be unpacked here; optimizer states and feature caches left out.

``recipes`` and ``bring`` run when asked for, also with ``--only``. Writes ``$OUT/gpu_check.json``
after every step (a killed run keeps what it measured), the recipes' results.json inside it; the
recipes' logs go to ``$OUT/recipes.log`` (the device tool brings back at most 8 files, 16 MiB each,
2 folders down). Exit 1 if a step failed or mismatched.
"""

from __future__ import annotations

import argparse
import copy
import fnmatch
import importlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import lmplug
from lmplug.checkpoint import LanguageModel
from lmplug.constants import LM_PRESETS, TOKENIZER_VOCAB, TRAIN_PRESETS
from lmplug.ctc.decoder import build_ctc_decoder, search_variant
from lmplug.model import LMConfig, TransformerLM
from lmplug.scorers.transformer import TransformerScorer
from lmplug.ctc.simulate import char_labels, pad_batch, simulate_emissions, text_to_char_ids
from lmplug.train import TrainConfig, autocast_for, lm_loss, make_optimizer

# sizes per mode: "gpu" is sized for ~8-10 minutes on one H200 (estimated), "tiny" for ~1 minute on 2 CPU cores. Seen on
# the H200 (2026-12-04): setup (the L12-C768 LM, 300 steps) 37 s; decode_equal with 8 utterances had not finished after
# 140 s, its CPU side (the 86M LM in word mode, beside espeak-ng on the same cores) being the cost: 2 utterances now
SIZES = {
    "tiny": dict(corpus=600, lexicon=300, max_words=8, vocab=TOKENIZER_VOCAB["tiny"], lm_preset="tiny", lm_steps=20,
                 lm_batch=8, equal_utts=4, kv_tokens=24, matmul_n=512, matmul_iters=5, train_configs="tiny",
                 train_steps=3, score_sents=200, rtf_utts={1: 3, 32: 32}, rtf_budget_s=20.0, beam=8),
    "gpu": dict(corpus=50_000, lexicon=3000, max_words=20, vocab=2000, lm_preset="gpu", lm_steps=300, lm_batch=32,
                equal_utts=2, kv_tokens=96, matmul_n=8192, matmul_iters=10, train_configs="gpu,wide",
                train_steps=20, score_sents=20_000, rtf_utts={1: 32, 32: 512}, rtf_budget_s=15.0, beam=16),
}
# LM training benchmarks: LMConfig fields and batch (sequences)
TRAIN_CONFIGS = {
    "tiny": dict(model=dict(LM_PRESETS["tiny"], vocab_size=TOKENIZER_VOCAB["tiny"]), batch=8),
    "gpu": dict(model=dict(LM_PRESETS["gpu"], vocab_size=TOKENIZER_VOCAB["gpu"]), batch=32),
    "wide": dict(model=dict(n_layer=24, n_head=12, n_embd=1536, block_size=1024, vocab_size=8192), batch=16),
}
USES_SETUP = {"decode_equal", "kenlm_equal", "torch_equal", "kv_cache", "score", "decode_rtf", "decode_profile"}  # steps that need the LM, emissions
OPTIONAL = ("kenlm", "pyctcdecode", "jiwer", "sacrebleu", "torchaudio", "soundfile", "matplotlib")
PROGRAMS = ("lmplz", "build_binary", "espeak-ng")  # the recipes' outside programs
# the recipes run by --recipes without --recipe, and where each writes its results.json
RECIPES = ("recipes/lm/run.sh --scale gpu --corpus bible", "recipes/asr_ctc_fusion/run.sh --scale gpu --domains bible",
           "recipes/mt_nbest_rerank/run.sh --scale gpu --corpus bible")
RECIPE_EXP = {"lm": "lm", "asr_ctc_fusion": "asr", "mt_nbest_rerank": "mt"}
BRING_PART = 15 * 2**20  # bytes per part of bring.tar.gz: the device tool returns files of at most 16 MiB
BRING_TOTAL = 56 * 2**20  # and 64 MiB in all, the JSON and logs beside them
# never brought (fnmatch on the path in the archive): optimizer states, feature and token caches
BRING_EXCLUDE = ("*/trainer", "*/feats.bin", "*/am/feats", "*/lm/data")
FUSION_WEIGHTS = {"lm": 0.5, "words": 1.0}
STEPS = ("env", "setup", "decode_equal", "kenlm_equal", "torch_equal", "kv_cache", "matmul", "train", "score",
         "decode_rtf", "decode_profile")
KV_ATOL = 1e-3  # fp32 logits: CUDA's attention kernels and reductions differ from CPU's in the last bits


class Skip(Exception):
    """A step that cannot run here (a missing package or an earlier step's failure)."""


def synthetic_corpus(n: int, lexicon: int, max_words: int, seed: int, part: int = 0) -> list[str]:
    """Sentences over CV-syllable pseudo-words; each word has 4 likely successors (an LM can learn it).

    The lexicon and successors depend on ``seed`` alone; ``part`` draws other sentences over them.
    """
    rng = np.random.default_rng(seed)
    cons, vows = list("bcdfghklmnprstvz"), list("aeiou")
    words: set[str] = set()
    while len(words) < lexicon:
        words.add("".join(rng.choice(cons) + rng.choice(vows) for _ in range(int(rng.integers(1, 4)))))
    vocab = sorted(words)
    follow = rng.integers(0, lexicon, size=(lexicon, 4))
    rng = np.random.default_rng([seed, part])
    out = []
    for _ in range(n):
        w = int(rng.integers(lexicon))
        sent = [vocab[w]]
        for _ in range(int(rng.integers(2, max_words))):
            w = int(follow[w, rng.integers(4)]) if rng.random() < 0.8 else int(rng.integers(lexicon))
            sent.append(vocab[w])
        out.append(" ".join(sent))
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def stop_group(proc: subprocess.Popen, grace_s: float = 60.0) -> None:
    """SIGTERM a recipe's whole process group (training saves a resumable checkpoint at the step
    boundary), SIGKILL what is left after ``grace_s``."""
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def have(module: str) -> bool:
    try:
        importlib.import_module(module)
        return True
    except Exception:  # ImportError, or a broken binary extension
        return False


class Check:
    """Runs the steps, keeps their results and writes the JSON after each."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.work = Path(args.work or tempfile.mkdtemp(prefix="gpu_check_"))
        self.device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
        self.fallback = None
        mode = "tiny" if args.tiny else "gpu"
        if not torch.cuda.is_available():
            self.device = torch.device("cpu")
        if self.device.type != "cuda":
            why = "CUDA not available" if not torch.cuda.is_available() else f"--device {args.device}"
            self.fallback = f"{why}: running on CPU at tiny sizes (the numbers are no GPU result)"
            mode = "tiny"
        self.mode = mode
        self.size = dict(SIZES[mode])
        self.beam = args.beam_size or self.size["beam"]
        self.compiled_search = args.compiled_search == "yes" or (args.compiled_search == "auto" and self.device.type == "cuda")
        self.ctx: dict = {}
        self.steps: dict[str, dict] = {}
        self.table: list[str] = []
        self.failed = False
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else platform.processor() or "cpu"
        self.signature = (f"gpu_check|mode:{mode}|device:{self.device}:{name}|torch:{torch.__version__}|"
                          f"lmplug:{lmplug.__version__}|seed:{args.seed}")

    # -- bookkeeping ---------------------------------------------------------------------------
    def run(self, name: str, fn) -> None:
        only = self.args.only.split(",") if self.args.only else None
        asked = name in ("recipes", "bring")  # by their own flags
        if only and not asked and name not in only and not (name == "setup" and set(only) & USES_SETUP):
            return
        t0 = time.perf_counter()
        try:
            res = fn()
            status = res.pop("status", "ok")
        except Skip as e:
            res, status = {"note": str(e)}, "skipped"
        except Exception as e:  # a step's failure must not stop the others
            traceback.print_exc()
            res, status = {"error": f"{type(e).__name__}: {e}"[:500], "traceback": traceback.format_exc()[-4000:]}, "failed"
        res = {"status": status, "seconds": round(time.perf_counter() - t0, 2), **res}
        self.failed |= status in ("failed", "mismatch")
        self.steps[name] = res
        summary = res.get("summary") or res.get("note") or res.get("error", "")
        line = f"{name:<14} {status:<9} {res['seconds']:>7.1f}s  {summary}"
        self.table.append(line)
        print(line, flush=True)
        self.write()

    def write(self) -> None:
        doc = {"signature": self.signature, "mode": self.mode, "device": str(self.device), "fallback": self.fallback,
               "args": vars(self.args), "steps": self.steps, "table": self.table}
        tmp = self.out / "gpu_check.json.tmp"
        tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        os.replace(tmp, self.out / "gpu_check.json")

    def progress(self, name: str, line: str, res: dict) -> None:
        """A long step's partial result, printed and in gpu_check.json at once (status "running"): a
        device call that runs out of time keeps what was measured (the finished step replaces it)."""
        print(f"  {name}: {line}", flush=True)
        self.steps[name] = {"status": "running", **res}
        self.write()

    def need(self, key: str):
        if key not in self.ctx:
            raise Skip(f"needs '{key}' from an earlier step, which did not produce it")
        return self.ctx[key]

    # -- steps ---------------------------------------------------------------------------------
    def env(self) -> dict:
        d = self.device
        res = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
               "cuda_available": torch.cuda.is_available(), "torch_cuda": torch.version.cuda,
               "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
               "optional": {m: have(m) for m in OPTIONAL},
               "programs": {b: shutil.which(b) or str(Path(sys.executable).parent / b)
                            if shutil.which(b) or (Path(sys.executable).parent / b).is_file() else None for b in PROGRAMS}}
        bundle = os.environ.get("LMPLUG_BUNDLE")
        if bundle and (Path(bundle) / "MANIFEST.json").is_file():
            res["bundle"] = json.loads((Path(bundle) / "MANIFEST.json").read_text())
        if d.type == "cuda":
            p = torch.cuda.get_device_properties(d)
            res.update(device_name=p.name, capability=f"{p.major}.{p.minor}", memory_gib=round(p.total_memory / 2**30, 1),
                       multiprocessors=p.multi_processor_count, bf16=torch.cuda.is_bf16_supported(),
                       float32_matmul_precision=torch.get_float32_matmul_precision())
        else:
            res.update(device_name=platform.processor() or platform.machine(), bf16=False)
        missing = [m for m, ok in res["optional"].items() if not ok] + [b for b, w in res["programs"].items() if not w]
        res["summary"] = (f"torch {torch.__version__}, {res['device_name']}, bf16 {'yes' if res['bf16'] else 'no'}, "
                          f"numpy {np.__version__}; missing: {', '.join(missing) or 'none'}"
                          + (f"; bundle {bundle}" if "bundle" in res else ""))
        return res

    def setup(self) -> dict:
        s, a = self.size, self.args
        if a.text:
            lines = [" ".join(l.split()) for l in Path(a.text).read_text(encoding="utf-8").splitlines() if l.strip()]
            corpus = [l for l in lines if len(l.split()) <= s["max_words"]][: s["corpus"]]
        else:
            corpus = synthetic_corpus(s["corpus"], s["lexicon"], s["max_words"], a.seed)
        n_held = max(s["score_sents"], max(s["rtf_utts"].values()))
        held = corpus[::-1] if a.text else synthetic_corpus(n_held, s["lexicon"], s["max_words"], a.seed, part=1)
        self.ctx["corpus"], self.ctx["held"] = corpus, held
        from lmplug.checkpoint import load_lm

        if a.lm:
            lm_path, trained = a.lm, None
        else:
            from lmplug.tokenizer import train_tokenizer
            from lmplug.train import train_lm

            tok = train_tokenizer(corpus, self.work / "tok.model", vocab_size=s["vocab"])
            cfg = LMConfig(vocab_size=tok.vocab_size, **{**LM_PRESETS[s["lm_preset"]], "dropout": 0.0})
            tc = TrainConfig(batch_size=s["lm_batch"], max_steps=s["lm_steps"], lr=TRAIN_PRESETS[s["lm_preset"]]["lr"],
                             warmup_steps=max(1, s["lm_steps"] // 10),
                             eval_every=s["lm_steps"], eval_tokens=4096, log_every=max(1, s["lm_steps"] // 4),
                             device=str(self.device), seed=a.seed)
            split = max(1, len(corpus) // 20)
            trained = train_lm(corpus[split:], corpus[:split], tok, self.work / "lm", cfg, tc, resume=False, progress=False)
            lm_path = self.work / "lm"
        self.ctx["lm_cpu"] = load_lm(lm_path, device="cpu")
        self.ctx["lm_dev"] = load_lm(lm_path, device=self.device)
        lm = self.ctx["lm_dev"]
        res = {"lm": lm.signature(), "corpus_sentences": len(corpus), "source": a.text or "synthetic"}
        if trained:
            res.update(lm_steps=trained["steps"], lm_dev_loss=trained["dev_loss"], lm_train_s=trained["elapsed_s"])
        # emissions: a real emissions dir (manifest.jsonl + labels.json), or simulated from held-out text
        if a.emissions:
            from lmplug.ctc.io import load_emissions, load_labels

            utts = load_emissions(Path(a.emissions) / "manifest.jsonl")
            self.ctx["labels"] = load_labels(Path(a.emissions) / "labels.json")
            self.ctx["em"], self.ctx["refs"] = [u.emissions for u in utts], [u.text for u in utts]
            self.ctx["frame_ms"], src = a.frame_ms or 40.0, f"real:{a.emissions}"
        else:
            texts = held[: max(s["rtf_utts"].values())]
            labels = char_labels(corpus + held)
            self.ctx["labels"], self.ctx["refs"] = labels, texts
            self.ctx["em"] = simulate_emissions([text_to_char_ids(t, labels) for t in texts], labels, seed=a.seed)
            self.ctx["frame_ms"], src = a.frame_ms or 20.0, f"simulate(seed={a.seed})"
        self.ctx["emissions_source"] = src
        # the same held-out sentences over the LM's own pieces: token fusion, the device search
        tok, ttexts = self.ctx["lm_cpu"].tokenizer, held[: max(s["rtf_utts"].values())]
        self.ctx["labels_tok"], self.ctx["refs_tok"] = ["<blank>"] + tok.pieces(), ttexts
        self.ctx["em_tok"] = simulate_emissions([[i + 1 for i in tok.encode(t)] for t in ttexts], self.ctx["labels_tok"],
                                                seed=a.seed)
        res["emissions"] = f"{src}, {len(self.ctx['em'])} utterances, {self.ctx['frame_ms']} ms/frame"
        res["summary"] = f"LM L{lm.config.n_layer} C{lm.config.n_embd} V{lm.config.vocab_size}; {res['emissions']}"
        return res

    def _compare(self, scorers_cpu: dict, scorers_dev: dict, weights: dict, token: bool = False,
                 variant: str = "torch") -> dict:
        """Best hypotheses of the numpy search on CPU vs on the device (``token``: token mode over
        the LM's pieces, the device search ``variant``, see lmplug.ctc.decoder.search_variant)."""
        em = self.need("em_tok" if token else "em")[: self.size["equal_utts"]]
        labels = self.ctx["labels_tok" if token else "labels"]
        x, lens = pad_batch(em)
        mode = "token" if token else "word"
        a = build_ctc_decoder(labels, scorers_cpu, weights, beam_size=self.beam, mode=mode).decode(x, lens)
        b = build_ctc_decoder(labels, scorers_dev, weights, beam_size=self.beam, mode=mode,
                              **search_variant(variant if token else "numpy")).decode(torch.from_numpy(x).to(self.device), lens)
        ta, tb = [h[0].text for h in a], [h[0].text for h in b]
        same = sum(p == q for p, q in zip(ta, tb))
        diff = max(abs(h[0].score - g[0].score) for h, g in zip(a, b))
        src = f"simulate(seed={self.args.seed}) over the LM's pieces" if token else self.ctx["emissions_source"]
        res = {"equal": ta == tb, "utterances": len(ta), "same": same, "max_abs_score_diff": diff,
               "differing": [(p, q) for p, q in zip(ta, tb) if p != q][:3],
               "signature": f"weights:{weights}|beam:{self.beam}|mode:{mode}|emissions:{src}"}
        note = " (device is CPU: CPU compared with itself)" if self.device.type == "cpu" else ""
        res["summary"] = f"{same}/{len(ta)} hypotheses equal, max |score diff| {diff:.2e}{note}"
        if ta != tb:
            res["status"] = "mismatch"
        return res

    def decode_equal(self) -> dict:
        cpu, dev = self.need("lm_cpu"), self.need("lm_dev")
        return self._compare({"lm": TransformerScorer(cpu)}, {"lm": TransformerScorer(dev)}, FUSION_WEIGHTS)

    def torch_equal(self) -> dict:
        cpu, dev = self.need("lm_cpu"), self.need("lm_dev")
        res = self._compare({"lm": TransformerScorer(cpu)}, {"lm": TransformerScorer(dev)}, FUSION_WEIGHTS, token=True)
        if self.compiled_search:  # compiled, and replayed as CUDA graphs: the same again
            for variant in ("torch+compile", "torch+reduce-overhead"):
                try:
                    r = self._compare({"lm": TransformerScorer(cpu)}, {"lm": TransformerScorer(dev)}, FUSION_WEIGHTS,
                                      token=True, variant=variant)
                except Exception as e:  # noqa: BLE001 - a compiler missing on the image is said, not fatal
                    res[variant] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
                    res["summary"] += f"; {variant}: failed ({type(e).__name__})"
                    continue
                res[variant] = {k: r[k] for k in ("equal", "same", "max_abs_score_diff", "differing")}
                res["summary"] += f"; {variant}: {r['same']}/{r['utterances']} equal"
                if not r["equal"]:
                    res["status"] = "mismatch"
        return res

    def kenlm_equal(self) -> dict:
        if not have("kenlm"):
            raise Skip("kenlm not installed (as on the GPU image): KenLM fusion not checked")
        from lmplug.ngram import train_ngram
        from lmplug.scorers.kenlm import KenLMScorer

        text = self.work / "corpus.txt"
        text.write_text("\n".join(self.need("corpus")) + "\n")
        try:
            arpa = train_ngram(text, self.work / "ngram3", order=3, binary=False)["arpa"]
        except lmplug.LmplugError as e:
            raise Skip(f"no KenLM model: {e}") from None
        ken = KenLMScorer(arpa)
        w = {"kenlm": 0.5, **FUSION_WEIGHTS}
        return self._compare({"kenlm": ken, "lm": TransformerScorer(self.need("lm_cpu"))},
                             {"kenlm": ken, "lm": TransformerScorer(self.need("lm_dev"))}, w)

    @torch.inference_mode()
    def kv_cache(self) -> dict:
        lm, cpu = self.need("lm_dev"), self.need("lm_cpu")
        m, c = lm.model, lm.config
        T = min(self.size["kv_tokens"], c.block_size)
        g = torch.Generator().manual_seed(self.args.seed)
        idx = torch.randint(3, c.vocab_size, (4, T), generator=g).to(self.device)
        full, _ = m(idx)  # (4, T, V)
        cache, steps = m.empty_cache(4), []
        for t in range(T):
            logits, cache = m(idx[:, t : t + 1], cache)
            steps.append(logits)
        step_diff = float((torch.cat(steps, 1) - full).abs().max())
        h = T // 2
        l1, c1 = m(idx[:, :h], m.empty_cache(4))
        l2, _ = m(idx[:, h:], c1)
        chunk_diff = float((torch.cat([l1, l2], 1) - full).abs().max())
        cpu_diff = float((cpu.model(idx.cpu())[0] - full.cpu()).abs().max())
        ok = step_diff < KV_ATOL and chunk_diff < KV_ATOL
        res = {"tokens": T, "rows": 4, "atol": KV_ATOL, "max_abs_step_diff": step_diff, "max_abs_chunk_diff": chunk_diff,
               "max_abs_device_vs_cpu": cpu_diff, "equal": ok,
               "summary": f"max |logit diff| step-by-step {step_diff:.1e}, chunked {chunk_diff:.1e} (atol {KV_ATOL}); "
                          f"device vs CPU {cpu_diff:.1e}"}
        if not ok:
            res["status"] = "mismatch"
        return res

    def matmul(self) -> dict:
        d, n, iters = self.device, self.size["matmul_n"], self.size["matmul_iters"]
        dtype = torch.bfloat16 if d.type == "cuda" else torch.float32
        a = torch.randn(n, n, device=d, dtype=dtype)
        b = torch.randn(n, n, device=d, dtype=dtype)
        c = torch.empty(n, n, device=d, dtype=dtype)
        for _ in range(3):
            torch.matmul(a, b, out=c)
        sync(d)
        t0 = time.perf_counter()
        for _ in range(iters):
            torch.matmul(a, b, out=c)
        sync(d)
        rate = 2 * n**3 * iters / (time.perf_counter() - t0)
        self.ctx["peak_flops"] = rate
        name = str(dtype).replace("torch.", "")
        return {"n": n, "dtype": name, "iters": iters, "flops_per_s": rate,
                "summary": f"{name} {n}x{n}x{n}: {rate / 1e12:.2f} TFLOP/s"}

    def train(self) -> dict:
        d = self.device
        peak = self.ctx.get("peak_flops")
        names = (self.args.train_configs or self.size["train_configs"]).split(",")
        rows, parts = {}, []
        for name in names:
            compile_ = d.type == "cuda" and not self.args.no_compile
            try:
                row = self._train_one(TRAIN_CONFIGS[name], compile_, peak)
            except Exception as e:  # torch.compile can fail where eager runs: measure eager, say why
                if not compile_:
                    raise
                traceback.print_exc()
                row = {**self._train_one(TRAIN_CONFIGS[name], False, peak), "compile_error": f"{type(e).__name__}: {e}"[:300]}
            if d.type == "cuda":
                torch.cuda.empty_cache()  # the last model's memory, before the next size
            rows[name] = row
            c = row["config"]
            mfu = f", MFU {100 * row['mfu']:.1f}%" if peak else ", MFU n/a (matmul step missing)"
            parts.append(f"{name} L{c['n_layer']} C{c['n_embd']} T{c['block_size']} B{c['batch']} "
                         f"{row['params'] / 1e6:.1f}M: {row['tokens_per_s']:,.0f} tok/s{mfu}")
            self.progress("train", parts[-1], {"configs": rows, "peak_flops_per_s": peak})
        return {"configs": rows, "peak_flops_per_s": peak, "summary": "; ".join(parts)}

    def _train_one(self, spec: dict, compiled: bool, peak: float | None) -> dict:
        """Tokens/s of training steps (bf16 autocast on CUDA) of one LM size on random tokens."""
        d = self.device
        cfg = LMConfig(**{**spec["model"], "dropout": 0.0})
        B, T = spec["batch"], cfg.block_size
        torch.manual_seed(self.args.seed)
        model = TransformerLM(cfg).to(d).train()
        opt = make_optimizer(model, TrainConfig(lr=1e-4), d)
        fwd = torch.compile(model) if compiled else model
        x = torch.randint(0, cfg.vocab_size, (B, T), device=d)
        y = torch.roll(x, -1, dims=1)

        def step() -> torch.Tensor:
            with autocast_for(d):
                loss = lm_loss(fwd, x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            return loss

        t0 = time.perf_counter()
        for _ in range(3):  # warm-up (and compilation)
            step()
        sync(d)
        warm = time.perf_counter() - t0
        if d.type == "cuda":
            torch.cuda.reset_peak_memory_stats(d)
        n = self.size["train_steps"]
        t0 = time.perf_counter()
        for _ in range(n):
            loss = step()
        sync(d)
        tok_s = n * B * T / (time.perf_counter() - t0)
        params = model.num_parameters()
        flops_tok = 6 * params
        flops_tok_attn = flops_tok + 12 * cfg.n_layer * cfg.n_embd * T
        row = {"config": {**cfg.to_dict(), "batch": B}, "params": params, "tokens_per_s": tok_s,
               "dtype": "bf16-autocast" if d.type == "cuda" else "fp32", "compiled": compiled, "warmup_s": warm,
               "steps": n, "final_loss": float(loss.detach()), "mfu": flops_tok * tok_s / peak if peak else None,
               "mfu_with_attention": flops_tok_attn * tok_s / peak if peak else None}
        if d.type == "cuda":
            row["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(d) / 2**30, 2)
        return row

    def score(self) -> dict:
        from lmplug.scoring import score_sentences

        lm, cpu = self.need("lm_dev"), self.need("lm_cpu")
        sents = self.need("held")[: self.size["score_sents"]]
        score_sentences(lm, sents[:64])  # warm-up
        sync(self.device)
        t0 = time.perf_counter()
        scores = score_sentences(lm, sents)
        sync(self.device)
        secs = time.perf_counter() - t0
        n_tok = sum(s.n_tokens for s in scores)
        ref = score_sentences(cpu, sents[:32])
        diff = max(abs(a.logprob - b.logprob) for a, b in zip(scores, ref))
        return {"sentences": len(sents), "tokens": n_tok, "score_seconds": secs, "tokens_per_s": n_tok / secs,
                "sentences_per_s": len(sents) / secs, "max_abs_logprob_diff_vs_cpu": diff, "dtype": "fp32",
                "lm": lm.signature(), "summary": f"{len(sents)} sentences, {n_tok / secs:,.0f} tok/s "
                                                 f"({len(sents) / secs:,.0f} sent/s); |diff vs CPU| {diff:.1e}"}

    def _time_decode(self, dec, em: list, B: int, n: int, budget_s: float | None) -> tuple[list[str], int, float]:
        """Decode ``em[:n]`` in batches of ``B`` on the device: (best texts, frames, seconds); stops
        after the batch that passes ``budget_s`` (enough for a rate)."""
        hyps, frames, secs = [], 0, 0.0
        for a in range(0, min(n, len(em)), B):
            x, lens = pad_batch(em[a : a + B])
            sync(self.device)
            t0 = time.perf_counter()
            out = dec.decode(torch.from_numpy(x).to(self.device), lens)
            sync(self.device)
            secs += time.perf_counter() - t0
            hyps += [h[0].text for h in out]
            frames += int(lens.sum())
            if budget_s is not None and secs > budget_s:
                break
        return hyps, frames, secs

    def decode_rtf(self) -> dict:
        lm, em = self.need("lm_dev"), self.need("em")
        frame_s = self.ctx["frame_ms"] / 1000
        wer_note = None if have("jiwer") else "WER skipped: jiwer not installed"
        word = {"em": em, "refs": self.ctx["refs"], "labels": self.ctx["labels"], "frame_s": frame_s}
        token = {"em": self.need("em_tok"), "refs": self.ctx["refs_tok"], "labels": self.ctx["labels_tok"],
                 "frame_s": 0.02, "mode": "token"}
        top = max(self.size["rtf_utts"])
        # (row, emissions, scorers, search, batch, utterances): the first of each kind is the warm-up
        fp32 = "fp32"
        plan = [(str(B), word, fp32, "numpy", B, n) for B, n in self.size["rtf_utts"].items()]
        plan.append(("search_only", word, None, "numpy", top, None))
        plan += [(f"token_torch_{B}", token, fp32, "torch", B, n) for B, n in self.size["rtf_utts"].items()]
        plan.append(("token_torch_search_only", token, None, "torch", top, None))
        plan.append((f"token_numpy_{top}", token, fp32, "numpy", top, None))
        lms = {fp32: lm}
        if self.compiled_search:
            plan.append((f"token_torch_compiled_{top}", token, fp32, "torch+compile", top, None))
            plan.append((f"token_torch_cudagraphs_{top}", token, fp32, "torch+reduce-overhead", top, None))
            # the LM's weights and KV cache in bf16: half the bytes the cache gathers move each frame
            lms["bf16"] = LanguageModel(model=copy.deepcopy(lm.model).to(torch.bfloat16), tokenizer=lm.tokenizer,
                                        config=lm.config, path=lm.path)
            plan.append((f"token_torch_cudagraphs_bf16_{top}", token, "bf16", "torch+reduce-overhead", top, None))
        rows, parts, warm = {}, [], set()
        for name, kind, fused, search, B, n in plan:
            scorers = {"lm": TransformerScorer(lms[fused])} if fused else {}
            dec = build_ctc_decoder(kind["labels"], scorers, FUSION_WEIGHTS if fused else {"words": 0.0},
                                    beam_size=self.beam, mode=kind.get("mode", "word"), **search_variant(search))
            if n is None:  # the same utterances as the row it is compared with (its rate; within the budget)
                n = rows[str(top) if kind is word else f"token_torch_{top}"]["utterances"]
            budget = self.size["rtf_budget_s"]
            compile_s = None
            if dec.compile:  # an untimed pass compiles (and records CUDA graphs); the timed one repeats its batches
                t0 = time.perf_counter()
                try:
                    n = len(self._time_decode(dec, kind["em"], B, n, budget)[0])
                except Exception as e:  # noqa: BLE001 - a compiler missing on the image is a row's result
                    rows[name] = {"error": f"{type(e).__name__}: {str(e)[:300]}", "search": search}
                    parts.append(f"{name}: failed ({type(e).__name__})")
                    self.progress("decode_rtf", parts[-1], {"batches": rows})
                    continue
                compile_s, budget = time.perf_counter() - t0, None
            elif (id(kind), search) not in warm:  # first call on a device: kernels, allocator
                warm.add((id(kind), search))
                self._time_decode(dec, kind["em"][:2], 2, 2, None)
            hyps, frames, secs = self._time_decode(dec, kind["em"], B, n, budget)
            audio = frames * kind["frame_s"]
            row = {"batch": B, "utterances": len(hyps), "frames": frames, "audio_s": audio, "seconds": secs,
                   "rtf": secs / audio, "rtfx": audio / secs, "utt_per_s": len(hyps) / secs,
                   "mode": kind.get("mode", "word"), "search": search, "lm": fused}
            if compile_s is not None:
                row["warmup_compile_s"] = compile_s
            refs = kind["refs"]
            if fused and refs and all(refs[: len(hyps)]) and wer_note is None:
                from lmplug.ctc.tune import word_error_rate

                row["wer"] = word_error_rate(refs[: len(hyps)], hyps)
            rows[name] = row
            wer = f", WER {100 * row['wer']:.1f}%" if "wer" in row else ""
            parts.append(f"{name}: RTFx {row['rtfx']:,.0f}{wer}")
            self.progress("decode_rtf", f"{parts[-1]} ({row['utterances']} utt. in {secs:.1f} s"
                          + (f", compiled in {compile_s:.0f} s)" if compile_s is not None else ")"), {"batches": rows})
        res = {"batches": rows, "beam": self.beam, "weights": FUSION_WEIGHTS, "frame_ms": self.ctx["frame_ms"],
               "audio_assumption": f"audio seconds = frames x {self.ctx['frame_ms']} ms (token rows: 20 ms)",
               "signature": f"{lm.signature()}|beam:{self.beam}|weights:{FUSION_WEIGHTS}|"
                            f"emissions:{self.ctx['emissions_source']}|frame_ms:{self.ctx['frame_ms']}|"
                            f"token_emissions:simulate(seed={self.args.seed})",
               "summary": "; ".join(parts) + (f"; {wer_note}" if wer_note else "")}
        if wer_note:
            res["note"] = wer_note
        return res

    def decode_profile(self) -> dict:
        """Where a frame of the device search goes: one batch of token fusion (``search="torch"``,
        eager) under torch.profiler. Wall time against the device's busy time per LM step tells
        launch-bound (the host queues ~300 small operations a step) from memory- or compute-bound.
        The wall time includes the profiler's own host cost (decode_rtf's token_torch_32 is the
        unprofiled rate), so the busy fraction is a lower bound."""
        from torch.autograd import DeviceType
        from torch.profiler import ProfilerActivity, profile

        lm, em, d = self.need("lm_dev"), self.need("em_tok"), self.device
        B = max(self.size["rtf_utts"])
        sc = TransformerScorer(lm)
        dec = build_ctc_decoder(self.ctx["labels_tok"], {"lm": sc}, FUSION_WEIGHTS, beam_size=self.beam,
                                mode="token", search="torch")
        x, lens = pad_batch(em[:B])
        xt = torch.from_numpy(x).to(d)
        dec.decode(xt[:2], lens[:2])  # kernels loaded, allocator warm
        before = sc.work["forwards"]
        on_cuda = d.type == "cuda"
        sync(d)
        t0 = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_cuda else [])) as prof:
            dec.decode(xt, lens)
            sync(d)
        wall = time.perf_counter() - t0
        steps = max(sc.work["forwards"] - before, 1)  # one a search step on a GPU (a CPU skips steps with no new token)
        host_ops = [e for e in prof.events() if e.name.startswith("aten::") and e.device_type == DeviceType.CPU
                    and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::"))]
        kernels = [e for e in prof.events() if e.device_type == DeviceType.CUDA]
        busy_us = sum(e.time_range.elapsed_us() for e in kernels)
        by_name: dict[str, list[float]] = {}
        for e in kernels or host_ops:
            acc = by_name.setdefault(e.name[:80], [0.0, 0])
            acc[0] += e.time_range.elapsed_us() / 1000
            acc[1] += 1
        top = sorted(by_name.items(), key=lambda kv: -kv[1][0])[:12]
        res = {"batch": B, "utterances": len(lens), "frames": int(lens.sum()), "lm_steps": steps, "wall_s": wall,
               "wall_ms_per_step": 1000 * wall / steps, "host_ops_per_step": len(host_ops) / steps,
               "device_kernels_per_step": len(kernels) / steps if on_cuda else None,
               "device_busy_ms_per_step": busy_us / 1000 / steps if on_cuda else None,
               "device_busy_fraction": busy_us / 1e6 / wall if on_cuda else None,
               "top": [{"name": n, "ms": ms, "count": c} for n, (ms, c) in top],
               "top_of": "device kernels" if on_cuda else "host operations (no device here)"}
        busy = (f", {res['device_kernels_per_step']:.0f} kernels, device busy {res['device_busy_ms_per_step']:.2f} ms "
                f"({100 * res['device_busy_fraction']:.0f}% of the wall)" if on_cuda else "")
        res["summary"] = (f"token fusion, search=torch eager, batch {B}: {steps} LM steps, {res['wall_ms_per_step']:.2f} ms "
                          f"a step, {res['host_ops_per_step']:.0f} host ops{busy}")
        return res

    def recipes(self) -> dict:
        budget = self.args.recipes_seconds
        env = {**os.environ, "PYTHON": sys.executable}
        rows, parts, t_start = {}, [], time.time()
        with open(self.out / "recipes.log", "a", encoding="utf-8") as log:
            for i, line in enumerate(self.args.recipe or RECIPES):
                cmd = line.split()
                name = f"{i}:{Path(cmd[0]).parent.name}"
                left = budget - (time.time() - t_start)
                if left < 30:
                    rows[name] = {"command": line, "rc": None, "note": "no time left"}
                    parts.append(f"{name}: no time left")
                    continue
                log.write(f"\n==== {line} (limit {left:.0f} s)\n")
                log.flush()
                t0 = time.time()
                proc = subprocess.Popen(["bash", *cmd], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
                try:
                    rc = proc.wait(timeout=left)
                except subprocess.TimeoutExpired:
                    rc = "timeout"
                    stop_group(proc)
                rows[name] = {"command": line, "rc": rc, "seconds": round(time.time() - t0, 1)}
                scale = cmd[cmd.index("--scale") + 1] if "--scale" in cmd else "cpu"
                result = ROOT / "exp" / RECIPE_EXP.get(Path(cmd[0]).parent.name, "?") / scale / "results.json"
                if result.is_file() and result.stat().st_mtime >= t0:
                    rows[name]["results"] = json.loads(result.read_text())
                parts.append(f"{name}: rc {rc} in {rows[name]['seconds']:.0f} s")
        res = {"recipes": rows, "log": "recipes.log", "summary": "; ".join(parts)}
        if any(r["rc"] not in (0, None) for r in rows.values()):
            res["status"] = "failed"
        return res

    def bring(self) -> dict:
        """Pack --bring's paths (globs under the working directory) into $OUT/bring.tar.gz.partNN."""
        import tarfile

        root = Path.cwd().resolve()  # gpu_check.sh runs in the repository root
        pats = [p.strip() for p in self.args.bring.split(",") if p.strip()]
        paths = sorted({p.resolve() for pat in pats for p in root.glob(pat)})
        outside = [str(p) for p in paths if not p.is_relative_to(root)]
        if outside:
            raise ValueError(f"expected --bring paths under {root}, found {', '.join(outside)}")
        if not paths:
            raise Skip(f"nothing matches --bring {self.args.bring} under {root}")
        skip = lambda ti: None if any(fnmatch.fnmatch(ti.name, x) for x in BRING_EXCLUDE) else ti  # noqa: E731
        packed = self.work / "bring.tar.gz"
        with tarfile.open(packed, "w:gz", compresslevel=1) as tar:
            for p in paths:
                tar.add(p, arcname=str(p.relative_to(root)), filter=skip)
        size = packed.stat().st_size
        if size > BRING_TOTAL:
            raise RuntimeError(f"expected at most {BRING_TOTAL / 2**20:.0f} MiB to bring back, found "
                               f"{size / 2**20:.1f} MiB (gzip) in {len(paths)} paths: bring fewer")
        for old in self.out.glob("bring.tar.gz.part*"):
            old.unlink()
        names = []
        with open(packed, "rb") as f:
            while chunk := f.read(BRING_PART):
                names.append(f"bring.tar.gz.part{len(names):02d}")
                (self.out / names[-1]).write_bytes(chunk)
        with tarfile.open(packed, "r:gz") as tar:
            members = [m.name for m in tar.getmembers() if m.isfile()]
        packed.unlink()
        return {"paths": [str(p.relative_to(root)) for p in paths], "files": len(members), "bytes": size, "parts": names,
                "unpack": "cat bring.tar.gz.part* | tar -xzf -   (in the repository root)",
                "summary": f"{len(members)} files from {len(paths)} paths, {size / 2**20:.1f} MiB in {len(names)} parts"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--out", default=os.environ.get("OUT") or "exp/gpu_check", help="JSON and logs go here")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes (CPU, ~1 minute); automatic without CUDA")
    ap.add_argument("--device", default="auto", help="auto | cuda | cuda:N | cpu")
    ap.add_argument("--only", default=None, help="comma list of steps to run (setup too when one needs it)")
    ap.add_argument("--lm", default=None, help="a trained LM checkpoint dir for the fusion/scoring steps")
    ap.add_argument("--text", default=None, help="real sentences (one a line) instead of the synthetic corpus")
    ap.add_argument("--emissions", default=None, help="a real emissions dir (manifest.jsonl + labels.json)")
    ap.add_argument("--frame-ms", type=float, default=None, help="frame shift for RTF (default 40 real, 20 simulated)")
    ap.add_argument("--beam-size", type=int, default=None, help="decoding beam (default: 16, tiny 8)")
    ap.add_argument("--train-configs", default=None, help=f"LM training benchmarks among {sorted(TRAIN_CONFIGS)}")
    ap.add_argument("--no-compile", action="store_true", help="no torch.compile in the training benchmark")
    ap.add_argument("--compiled-search", choices=("auto", "yes", "no"), default="auto",
                    help="torch_equal and decode_rtf also run the device search compiled and as CUDA graphs "
                         "(auto: on CUDA; compiling takes minutes on 2 CPU cores)")
    ap.add_argument("--recipes", action="store_true", help="also run the gpu-scale recipes")
    ap.add_argument("--recipes-seconds", type=float, default=600.0, help="time limit of all recipes together")
    ap.add_argument("--recipe", action="append", default=None,
                    help="a recipe command line to run instead of the gpu-scale ones (repeatable), e.g. "
                         "'recipes/asr_ctc_fusion/run.sh --scale cpu --stop-stage 3 --lm-steps 9600'")
    ap.add_argument("--bring", default=None,
                    help="comma list of globs (under the working directory: the repository root with "
                         "gpu_check.sh) to pack into $OUT/bring.tar.gz.partNN "
                         f"(after the recipes; never {', '.join(BRING_EXCLUDE)})")
    ap.add_argument("--work", default=None, help="scratch dir for the tokenizer and LM (default: a temp dir)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    chk = Check(args)
    print(f"gpu_check: {chk.signature} -> {chk.out / 'gpu_check.json'}", flush=True)
    if chk.fallback:
        print(f"gpu_check: {chk.fallback}", flush=True)
    print(f"{'step':<14} {'status':<9} {'time':>8}  result", flush=True)
    for name in STEPS:
        chk.run(name, getattr(chk, name))
    if args.recipes or args.recipe:
        chk.run("recipes", chk.recipes)
    if args.bring:
        chk.run("bring", chk.bring)
    return 1 if chk.failed else 0


if __name__ == "__main__":
    sys.exit(main())
