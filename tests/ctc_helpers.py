"""Tiny language models built in seconds for the scorer and CTC tests (not a test module)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from lmplug.checkpoint import LanguageModel
from lmplug.ctc.simulate import text_to_char_ids
from lmplug.model import LMConfig, TransformerLM
from lmplug.tokenizer import train_tokenizer

SENTENCES = [
    "the cat sat on the mat",
    "the dog ate the bone",
    "a man and a dog sat on the mat",
    "the cat ate the fish",
    "we sat on the mat and ate the fish",
]


def tiny_lm(tmp: Path, steps: int = 0, seed: int = 0, vocab_size: int = 40) -> LanguageModel:
    """A 2-layer LM over a small sentencepiece vocabulary; ``steps`` of training on SENTENCES."""
    torch.manual_seed(seed)
    lines = SENTENCES * 20
    tok = train_tokenizer(lines, tmp / "tok.model", vocab_size=vocab_size, model_type="unigram")
    cfg = LMConfig(vocab_size=tok.vocab_size, n_layer=2, n_head=2, n_embd=32, block_size=32, dropout=0.0)
    model = TransformerLM(cfg)
    if steps:
        seqs = [[cfg.bos_id] + tok.encode(s) + [cfg.eos_id] for s in SENTENCES]
        T = max(len(s) for s in seqs)
        x = torch.zeros(len(seqs), T, dtype=torch.long)
        y = torch.full((len(seqs), T), -100, dtype=torch.long)
        for i, s in enumerate(seqs):
            x[i, : len(s) - 1] = torch.tensor(s[:-1])
            y[i, : len(s) - 1] = torch.tensor(s[1:])
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        for _ in range(steps):
            logits, _ = model(x)
            loss = torch.nn.functional.cross_entropy(logits.view(-1, cfg.vocab_size), y.view(-1), ignore_index=-100)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return LanguageModel(model=model, tokenizer=tok, config=cfg, path=str(tmp))


def find_lmplz() -> str | None:
    """``lmplz`` next to the running Python or on PATH."""
    cand = Path(sys.executable).parent / "lmplz"
    return str(cand) if cand.is_file() else shutil.which("lmplz")


def tiny_arpa(tmp: Path, lines: list[str] | None = None, order: int = 3) -> Path | None:
    """An ARPA model of ``lines`` (default SENTENCES) built with lmplz, or None without lmplz."""
    import subprocess

    lmplz = find_lmplz()
    if lmplz is None:
        return None
    text = "\n".join((lines or SENTENCES) * 5) + "\n"
    out = tmp / "tiny.arpa"
    with open(out, "w") as f:
        subprocess.run([lmplz, "-o", str(order), "--discount_fallback", "-S", "100M"], input=text.encode(),
                       stdout=f, stderr=subprocess.DEVNULL, check=True)
    return out


def one_thread():
    """Generator for an autouse fixture: tiny models run fastest on one thread (no pool waits)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def write_emissions_dir(d: Path, texts: list[str], seed: int, confusion: float = 0.4) -> None:
    """Simulated emissions of ``texts`` as ``lmplug decode`` reads them: d/labels.json, d/u<i>.npy,
    d/dev.jsonl (id, emissions, text)."""
    import json

    import numpy as np

    from lmplug.ctc.simulate import char_labels, simulate_emissions, text_to_char_ids

    labels = char_labels(texts)
    (d / "labels.json").write_text(json.dumps(labels))
    em = simulate_emissions([text_to_char_ids(t, labels) for t in texts], labels, seed=seed, confusion=confusion)
    rows = []
    for i, (e, t) in enumerate(zip(em, texts)):
        np.save(d / f"u{i}.npy", e)
        rows.append(json.dumps({"id": f"u{i}", "emissions": f"u{i}.npy", "text": t}))
    (d / "dev.jsonl").write_text("\n".join(rows) + "\n")


def ambiguous_emission(text: str, labels: list[str], frame_of: int, wrong: str, margin: float = 0.5):
    """Clean peaky emissions of ``text`` where the ``frame_of``-th label is slightly beaten by ``wrong``."""
    ids = text_to_char_ids(text, labels)
    V = len(labels)
    rows = []
    for j, i in enumerate(ids):
        for k in (i, 0):  # label frame then blank frame (blank = index 0)
            r = np.full(V, -3.0)
            r[k] = 3.0
            if k == i and j == frame_of:
                r[labels.index(wrong)] = 3.0 + margin
            rows.append(r)
    x = np.array(rows)
    return x - np.log(np.exp(x).sum(1, keepdims=True))
