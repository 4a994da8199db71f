#!/usr/bin/env python
"""Benchmark the LM: training throughput and sentence-scoring throughput, side by side in one run.

    .venv/bin/python tools/bench_lm.py --json exp/bench/bench_lm.json            # CPU, ~3 minutes
    .venv/bin/python tools/bench_lm.py --device cuda --scale gpu --json $OUT/bench_lm.json

(a) Training tokens/s of lmplug's TransformerLM against a textbook model of the same size
    (``torch.nn.TransformerEncoder`` with a causal mask, learned positions, the way textbooks
    write it), same batch, same optimizer; repeats alternate between the two and the table
    reports medians.
(b) Sentence scoring: ``lmplug.score_sentences`` (length-sorted batches) against scoring one
    sentence at a time with the same model (sentences that fit the context, so both paths are
    one forward per sentence); sentences/s and tokens/s, and the largest absolute
    difference in log-probability (they must agree).
Prints a table and writes JSON (with the machine, versions and settings).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from lmplug import __version__
from lmplug.checkpoint import LanguageModel
from lmplug.constants import LM_PRESETS
from lmplug.model import LMConfig, TransformerLM
from lmplug.scoring import score_sentences
from lmplug.tokenizer import train_tokenizer
from lmplug.train import autocast_for, pick_device


class TextbookLM(nn.Module):
    """The textbook causal LM: embeddings + learned positions + nn.TransformerEncoder + causal mask."""

    def __init__(self, c: LMConfig) -> None:
        super().__init__()
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.wpe = nn.Embedding(c.block_size, c.n_embd)
        layer = nn.TransformerEncoderLayer(c.n_embd, c.n_head, c.mlp_ratio * c.n_embd, c.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, c.n_layer, enable_nested_tensor=False)
        self.ln = nn.LayerNorm(c.n_embd)
        self.head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.head.weight = self.wte.weight

    def forward(self, idx: torch.Tensor):
        T = idx.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(T, device=idx.device)
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        return self.head(self.ln(self.encoder(x, mask=mask, is_causal=True))).float(), None


def train_step_time(model, opt, x, y, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    with autocast_for(device):
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def bench_training(cfg: LMConfig, batch: int, steps: int, repeats: int, device) -> dict:
    torch.manual_seed(0)
    models = {"lmplug": TransformerLM(cfg).to(device), "textbook": TextbookLM(cfg).to(device)}
    opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-4) for k, m in models.items()}
    x = torch.randint(0, cfg.vocab_size, (batch, cfg.block_size), device=device)
    y = torch.roll(x, -1, dims=1)
    for k, m in models.items():  # warm-up
        m.train()
        for _ in range(2):
            train_step_time(m, opts[k], x, y, device)
    rates: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(repeats):  # alternate, so drift on a shared machine hits both alike
        for k, m in models.items():
            t = sum(train_step_time(m, opts[k], x, y, device) for _ in range(steps))
            rates[k].append(steps * batch * cfg.block_size / t)
    out = {k: {"params": sum(p.numel() for p in m.parameters()), "tok_per_s": rates[k],
               "median_tok_per_s": statistics.median(rates[k])} for k, m in models.items()}
    out["ratio_lmplug_over_textbook"] = out["lmplug"]["median_tok_per_s"] / out["textbook"]["median_tok_per_s"]
    return out


@torch.inference_mode()
def one_at_a_time(lm: LanguageModel, sentences: list[str]) -> list[float]:
    tok = lm.tokenizer
    out = []
    for s in sentences:
        seq = [tok.bos_id, *tok.encode(s), tok.eos_id]
        x = torch.tensor([seq[:-1]], device=lm.device)
        logits, _ = lm.model(x)
        lp = torch.log_softmax(logits[0], -1).gather(-1, torch.tensor(seq[1:], device=lm.device)[:, None])
        out.append(float(lp.sum()))
    return out


def bench_scoring(cfg: LMConfig, sentences: list[str], tokenizer, repeats: int, device) -> dict:
    torch.manual_seed(0)
    lm = LanguageModel(TransformerLM(cfg).to(device).eval(), tokenizer, cfg)
    n_tok = sum(len(t) + 1 for t in tokenizer.encode_batch(sentences))
    times: dict[str, list[float]] = {"batched": [], "one_at_a_time": []}
    results = {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        results["batched"] = [s.logprob for s in score_sentences(lm, sentences)]
        times["batched"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        results["one_at_a_time"] = one_at_a_time(lm, sentences)
        times["one_at_a_time"].append(time.perf_counter() - t0)
    out = {k: {"seconds": v, "median_sent_per_s": len(sentences) / statistics.median(v),
               "median_tok_per_s": n_tok / statistics.median(v)} for k, v in times.items()}
    out["ratio_batched_over_one"] = out["batched"]["median_sent_per_s"] / out["one_at_a_time"]["median_sent_per_s"]
    out["max_abs_logprob_diff"] = max(abs(a - b) for a, b in zip(results["batched"], results["one_at_a_time"]))
    out["sentences"], out["tokens"] = len(sentences), n_tok
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--scale", default="cpu", choices=["tiny", "cpu", "gpu"], help="model size preset")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--text", default="data/bible/en.dev.txt", help="sentences to score (and tokenizer text)")
    ap.add_argument("--sentences", type=int, default=1000, help="sentences scored per repeat")
    ap.add_argument("--batch", type=int, default=24, help="training batch (sequences)")
    ap.add_argument("--steps", type=int, default=5, help="training steps per timed repeat")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats (medians reported)")
    ap.add_argument("--vocab-size", type=int, default=4000, help="tokenizer vocabulary")
    ap.add_argument("--json", default="exp/bench/bench_lm.json", help="output JSON")
    args = ap.parse_args()
    device = pick_device(args.device)
    lines = [l.strip() for l in Path(args.text).read_text(encoding="utf-8").splitlines() if l.strip()]
    tok_path = Path(args.json).with_name("bench_tok.model")
    tok_path.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(lines, tok_path, vocab_size=args.vocab_size)
    cfg = LMConfig(vocab_size=tokenizer.vocab_size, **{**LM_PRESETS[args.scale], "dropout": 0.0})
    train = bench_training(cfg, args.batch, args.steps, args.repeats, device)
    fits = [l for l, ids in zip(lines, tokenizer.encode_batch(lines)) if len(ids) + 1 <= cfg.block_size]
    score = bench_scoring(cfg, fits[: args.sentences], tokenizer, max(1, args.repeats // 2), device)
    result = {"lmplug": __version__, "torch": torch.__version__, "device": str(device),
              "machine": f"{platform.machine()} {platform.processor()}", "threads": torch.get_num_threads(),
              "config": cfg.to_dict(), "args": vars(args), "training": train, "scoring": score}
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, model "
          f"L{cfg.n_layer} C{cfg.n_embd} T{cfg.block_size} V{cfg.vocab_size}")
    print(f"{'training (batch %d x %d)' % (args.batch, cfg.block_size):<34} {'params':>10} {'median tok/s':>13}")
    for k in ("lmplug", "textbook"):
        print(f"{k:<34} {train[k]['params']:>10,} {train[k]['median_tok_per_s']:>13,.0f}")
    print(f"{'ratio lmplug / textbook':<34} {'':>10} {train['ratio_lmplug_over_textbook']:>13.2f}")
    print(f"{'scoring (%d sentences)' % score['sentences']:<34} {'sent/s':>10} {'tok/s':>13}")
    for k in ("batched", "one_at_a_time"):
        print(f"{k:<34} {score[k]['median_sent_per_s']:>10,.1f} {score[k]['median_tok_per_s']:>13,.0f}")
    print(f"{'ratio batched / one at a time':<34} {score['ratio_batched_over_one']:>10.2f}"
          f"   (max |logprob diff| {score['max_abs_logprob_diff']:.2e})")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
