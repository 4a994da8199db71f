"""Defaults in one place: scale presets for the tokenizer, the LM and its training.

Scales (docs/ARCHITECTURE.md): ``tiny`` runs in seconds (the test suite), ``demo`` is what ``make demo`` runs
on a fresh 2-core machine (minutes), ``cpu`` gives a real result on a 2-core machine within an
hour, ``gpu`` is sized for ~10 minutes on one large GPU.
"""

from __future__ import annotations

DEFAULT_DATA_DIR = "data"
SHARED_DATA_DIR = "../shared/data"
SCALES = ("tiny", "demo", "cpu", "gpu")

TOKENIZER_VOCAB = {"tiny": 200, "demo": 4000, "cpu": 4000, "gpu": 8000}

# LMConfig fields per scale
LM_PRESETS: dict[str, dict] = {
    "tiny": dict(n_layer=2, n_head=2, n_embd=64, block_size=64, dropout=0.0),
    "demo": dict(n_layer=4, n_head=4, n_embd=256, block_size=128, dropout=0.1),
    "cpu": dict(n_layer=4, n_head=4, n_embd=256, block_size=128, dropout=0.1),
    "gpu": dict(n_layer=12, n_head=12, n_embd=768, block_size=512, dropout=0.1),
}

# TrainConfig fields per scale
TRAIN_PRESETS: dict[str, dict] = {
    "tiny": dict(batch_size=8, max_steps=60, lr=3e-3, warmup_steps=10, eval_every=30, eval_tokens=4096, log_every=10),
    "demo": dict(batch_size=16, max_steps=700, lr=2e-3, warmup_steps=50, eval_every=350, eval_tokens=50_000,
                 log_every=20),
    "cpu": dict(batch_size=24, max_steps=4800, lr=2e-3, warmup_steps=150, eval_every=400, eval_tokens=100_000,
                log_every=20),
    "gpu": dict(batch_size=64, max_steps=3000, lr=1e-3, warmup_steps=200, eval_every=500, eval_tokens=500_000,
                log_every=50, compile=True),
}

NGRAM_ORDER = 5

# CTC word fusion: new words word-scored per frame and utterance, as a multiple of the beam size
LM_PREFILTER = 2.0
# CTC beam search implementations (CTCDecoder(search=...)): on the host (numpy), or as tensor
# operations on the LM's / emissions' device (torch, lmplug.ctc.torch_search)
SEARCHES = ("numpy", "torch")
# torch.compile modes CTCDecoder(search="torch", compile=MODE) passes on ("reduce-overhead": CUDA graphs)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
