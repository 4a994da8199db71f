"""Transformer encoder-decoder for translation: model, batched beam search, forced decoding.

The pieces come from ``lmplug.model``: encoder layers are the LM's pre-norm ``Block`` with a
padding mask instead of the causal one; decoder layers add cross-attention to it
(``DecoderBlock``). Self-attention is rotary, as in the LM; learned absolute position
embeddings are added to the inputs too, so cross-attention can align by position. One sentencepiece vocabulary is shared by source and target, and one
embedding matrix by the encoder input, the decoder input and the output layer.

Shapes: B sentences, K beams, S source tokens, T target tokens, C = n_embd, V vocabulary,
nh heads, hs head size.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from lmplug.errors import config_from_dict, expect_number
from lmplug.model import Block, LMConfig, _rope_tables


@dataclass
class Seq2SeqConfig:
    vocab_size: int = 8000  # shared sentencepiece vocabulary (source and target)
    n_enc_layer: int = 3  # encoder blocks
    n_dec_layer: int = 3  # decoder blocks
    n_head: int = 4  # attention heads; n_embd % n_head == 0
    n_embd: int = 256  # model width C
    max_len: int = 256  # longest source or target accepted (tokens, incl. </s>)
    dropout: float = 0.1  # attention/MLP outputs and embeddings (training only)
    mlp_ratio: int = 4  # MLP hidden width = mlp_ratio * n_embd
    rope_base: float = 10000.0  # rotary embedding base (self-attention only)
    bos_id: int = 1  # first decoder input of every target
    eos_id: int = 2  # ends sources and targets

    def __post_init__(self) -> None:
        for name in ("n_enc_layer", "n_dec_layer"):  # no decoder block: no cross-attention, no translation
            expect_number("Seq2SeqConfig", name, getattr(self, name), integer=True, at_least=1)
        self.layer_config()  # validates the head split and the other fields

    def layer_config(self) -> LMConfig:
        """The ``LMConfig`` the shared ``Block`` layers are built from."""
        return LMConfig(vocab_size=self.vocab_size, n_layer=max(self.n_enc_layer, self.n_dec_layer),
                        n_head=self.n_head, n_embd=self.n_embd, block_size=self.max_len, dropout=self.dropout,
                        mlp_ratio=self.mlp_ratio, rope_base=self.rope_base, bos_id=self.bos_id, eos_id=self.eos_id)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Seq2SeqConfig":
        return config_from_dict(cls, d)


class CrossAttention(nn.Module):
    """Decoder queries attend to encoder memory; memory keys/values are computed once per sentence."""

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.head_size = config.n_embd // config.n_head
        self.q = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.kv = nn.Linear(config.n_embd, 2 * config.n_embd, bias=False)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def memory_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """memory (B, S, C) -> keys, values (B, nh, S, hs)."""
        B, S, C = memory.shape
        k, v = self.kv(memory).split(C, dim=2)
        return (k.view(B, S, self.n_head, self.head_size).transpose(1, 2),
                v.view(B, S, self.n_head, self.head_size).transpose(1, 2))

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """x (B, T, C), kv from ``memory_kv``, mask (B, 1, 1, S) bool (True = real source token)."""
        B, T, C = x.shape
        q = self.q(x).view(B, T, self.n_head, self.head_size).transpose(1, 2)  # (B, nh, T, hs)
        drop = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, kv[0], kv[1], attn_mask=mask, dropout_p=drop)
        return self.resid_dropout(self.proj(y.transpose(1, 2).contiguous().view(B, T, C)))


class DecoderBlock(Block):
    """``Block`` (causal self-attention + MLP) with cross-attention between the two."""

    def __init__(self, config: LMConfig) -> None:
        super().__init__(config)
        self.ln_x = nn.LayerNorm(config.n_embd)
        self.cross = CrossAttention(config)

    def forward(self, x, cos, sin, past, mask, memory_kv, memory_mask):  # type: ignore[override]
        a, kv = self.attn(self.ln1(x), cos, sin, past, mask)
        x = x + a
        x = x + self.cross(self.ln_x(x), memory_kv, memory_mask)
        x = x + self.mlp(self.ln2(x))
        return x, kv


@dataclass
class Memory:
    """Encoder output for a batch, ready for decoding: per decoder layer keys/values and the mask."""

    kv: list[tuple[torch.Tensor, torch.Tensor]]  # per layer (B, nh, S, hs) each
    mask: torch.Tensor  # (B, 1, 1, S) bool

    def select(self, index: torch.Tensor) -> "Memory":
        return Memory([(k.index_select(0, index), v.index_select(0, index)) for k, v in self.kv],
                      self.mask.index_select(0, index))


class Seq2SeqTransformer(nn.Module):
    """Encoder-decoder with tied embeddings. ``forward(src, src_mask, tgt_in)`` for training."""

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        self.config = config
        lc = config.layer_config()
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        # absolute positions on top of the rotary ones: cross-attention has no rotary term, and a
        # bidirectional encoder with relative positions only can barely tell where a token is
        self.wpe = nn.Embedding(config.max_len + 1, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.enc_blocks = nn.ModuleList(Block(lc) for _ in range(config.n_enc_layer))
        self.enc_ln = nn.LayerNorm(config.n_embd)
        self.dec_blocks = nn.ModuleList(DecoderBlock(lc) for _ in range(config.n_dec_layer))
        self.dec_ln = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied
        self.apply(self._init_weights)
        n_layer = config.n_enc_layer + config.n_dec_layer
        for name, p in self.named_parameters():
            if name.endswith(("attn.proj.weight", "cross.proj.weight", "mlp.2.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _rope(self, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        return _rope_tables(pos, c.n_embd // c.n_head, c.rope_base)

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor) -> Memory:
        """src (B, S) ids, src_mask (B, S) bool (False = padding) -> ``Memory`` for the decoder."""
        B, S = src.shape
        if S > self.config.max_len:
            raise ValueError(f"expected sources of at most max_len={self.config.max_len} tokens, found {S}")
        cos, sin = self._rope(torch.arange(S, device=src.device).expand(B, S))
        mask = src_mask[:, None, None, :]  # (B, 1, 1, S): every query sees the real tokens only
        x = self.drop(self.wte(src) + self.wpe(torch.arange(S, device=src.device)))
        for block in self.enc_blocks:
            x, _ = block(x, cos, sin, None, mask)
        memory = self.enc_ln(x)
        return Memory([blk.cross.memory_kv(memory) for blk in self.dec_blocks], mask)

    def decode(self, tgt_in: torch.Tensor, memory: Memory,
               past: list[tuple[torch.Tensor, torch.Tensor]] | None = None
               ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Decoder logits for new target tokens.

        Args:
            tgt_in: (B, T) decoder inputs (<s> then target tokens); with ``past``, the next T tokens
                of rows that all hold the same number of previous tokens (beam search: T = 1).
            memory: from ``encode`` (rows aligned with ``tgt_in``).
            past: per decoder layer (keys, values) (B, nh, L, hs) of the previous tokens.

        Returns:
            logits (B, T, V) float32 and the extended ``past``.
        """
        B, T = tgt_in.shape
        L = 0 if past is None else past[0][0].shape[2]
        if L + T > self.config.max_len + 1:
            raise ValueError(f"expected targets of at most max_len={self.config.max_len} tokens, found {L + T}")
        cos, sin = self._rope(torch.arange(L, L + T, device=tgt_in.device).expand(B, T))
        mask = None  # plain causal when there is no past
        if past is not None:
            mask = torch.ones(T, L + T, dtype=torch.bool, device=tgt_in.device).tril(L)[None, None]
        x = self.drop(self.wte(tgt_in) + self.wpe(torch.arange(L, L + T, device=tgt_in.device)))
        new_past = []
        for i, block in enumerate(self.dec_blocks):
            x, kv = block(x, cos, sin, None if past is None else past[i], mask, memory.kv[i], memory.mask)
            new_past.append(kv)
        return self.lm_head(self.dec_ln(x)).float(), new_past

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, T, V) for decoder inputs ``tgt_in`` (B, T)."""
        logits, _ = self.decode(tgt_in, self.encode(src, src_mask))
        return logits


# ------------------------------------------------------------------------------------ batching
IGNORE_INDEX = -100


def pad_sources(sources: Sequence[Sequence[int]], eos_id: int, device: torch.device | str = "cpu"
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded source ids with </s> appended: (B, S) long and its (B, S) bool mask."""
    S = max(len(s) for s in sources) + 1
    src = torch.full((len(sources), S), eos_id, dtype=torch.long)
    mask = torch.zeros(len(sources), S, dtype=torch.bool)
    for i, s in enumerate(sources):
        src[i, : len(s)] = torch.tensor(list(s), dtype=torch.long)
        mask[i, : len(s) + 1] = True
    return src.to(device), mask.to(device)


def pad_targets(targets: Sequence[Sequence[int]], bos_id: int, eos_id: int, device: torch.device | str = "cpu"
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder inputs ``<s> y`` and outputs ``y </s>`` (padding = ``IGNORE_INDEX``), both (B, T)."""
    T = max(len(t) for t in targets) + 1
    x = torch.full((len(targets), T), eos_id, dtype=torch.long)
    y = torch.full((len(targets), T), IGNORE_INDEX, dtype=torch.long)
    for i, t in enumerate(targets):
        x[i, : len(t) + 1] = torch.tensor([bos_id, *t], dtype=torch.long)
        y[i, : len(t) + 1] = torch.tensor([*t, eos_id], dtype=torch.long)
    return x.to(device), y.to(device)


def seq2seq_loss(model: nn.Module, batch: tuple[torch.Tensor, ...], label_smoothing: float = 0.0,
                 reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of ``batch = (src, src_mask, tgt_in, tgt_out)`` over real target tokens."""
    src, src_mask, tgt_in, tgt_out = batch
    logits = model(src, src_mask, tgt_in)
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), tgt_out.reshape(-1), ignore_index=IGNORE_INDEX,
                           label_smoothing=label_smoothing, reduction=reduction)


def _length_batches(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Indices grouped by length (longest first) so that each group pads to <= ``max_tokens``."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups, cur = [], []
    for i in order:
        width = lengths[cur[0]] if cur else lengths[i]
        if cur and (len(cur) + 1) * width > max_tokens:
            groups.append(cur)
            cur = []
        cur.append(i)
    if cur:
        groups.append(cur)
    return groups


@torch.inference_mode()
def score_pairs(model: Seq2SeqTransformer, sources: Sequence[Sequence[int]], targets: Sequence[Sequence[int]],
                batch_tokens: int = 8192) -> list[float]:
    """Forced decoding: natural-log ``log P(target </s> | source)`` per pair, batched by length."""
    if len(sources) != len(targets):
        raise ValueError(f"expected as many sources as targets, found {len(sources)} and {len(targets)}")
    device = next(model.parameters()).device
    c = model.config
    out = [0.0] * len(sources)
    lengths = [len(s) + len(t) + 2 for s, t in zip(sources, targets)]
    for group in _length_batches(lengths, batch_tokens):
        src, src_mask = pad_sources([sources[i] for i in group], c.eos_id, device)
        tgt_in, tgt_out = pad_targets([targets[i] for i in group], c.bos_id, c.eos_id, device)
        logits = model(src, src_mask, tgt_in)
        lp = torch.log_softmax(logits, -1).gather(-1, tgt_out.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        lp = (lp * (tgt_out != IGNORE_INDEX)).sum(1).cpu()
        for i, v in zip(group, lp.tolist()):
            out[i] = v
    return out


# --------------------------------------------------------------------------------- beam search
@dataclass(frozen=True)
class BeamHypothesis:
    tokens: tuple[int, ...]  # target ids without <s> and </s>
    logprob: float  # natural-log log P(tokens </s> | source)
    score: float  # ranking score: logprob / (len(tokens) + 1) ** len_penalty


@dataclass
class _Sentence:
    finished: list[BeamHypothesis] = field(default_factory=list)


@torch.inference_mode()
def beam_search(
    model: Seq2SeqTransformer,
    sources: Sequence[Sequence[int]],
    beam: int = 12,
    nbest: int | None = None,
    max_len_a: float = 1.5,
    max_len_b: int = 10,
    len_penalty: float = 1.0,
    batch_sentences: int = 64,
    progress: bool = False,
) -> list[list[BeamHypothesis]]:
    """Batched beam search over sentences and beams with cached decoder keys/values.

    Every step extends the ``beam`` live prefixes of every unfinished sentence in one decoder
    call. Among the top ``2 * beam`` expansions, those ending in </s> within the first ``beam``
    are finished hypotheses, and the best ``beam`` others live on. A sentence stops when it has
    ``beam`` finished hypotheses or its prefixes reach ``max_len_a * |source| + max_len_b``
    tokens (then </s> is forced). With ``beam=1`` this is greedy decoding.

    Returns:
        per source, up to ``nbest`` (default ``beam``) hypotheses sorted by ``score``, best first.
    """
    from tqdm import tqdm

    if beam < 1:
        raise ValueError(f"expected beam >= 1, found {beam}")
    nbest = beam if nbest is None else nbest
    if not 1 <= nbest <= beam:
        raise ValueError(f"expected 1 <= nbest <= beam ({beam}), found {nbest}")
    model.eval()
    device = next(model.parameters()).device
    c = model.config
    results: list[list[BeamHypothesis]] = [[] for _ in sources]
    order = sorted(range(len(sources)), key=lambda i: -len(sources[i]))
    bar = tqdm(total=len(sources), disable=not progress, desc="beam", unit="sent")
    for start in range(0, len(order), batch_sentences):
        chunk = order[start : start + batch_sentences]
        caps = [min(c.max_len, int(max_len_a * len(sources[i]) + max_len_b)) for i in chunk]
        for i, hyps in zip(chunk, _beam_chunk(model, [sources[i] for i in chunk], caps, beam, len_penalty, device)):
            results[i] = sorted(hyps, key=lambda h: -h.score)[:nbest]
        bar.update(len(chunk))
    bar.close()
    return results


def _beam_chunk(model: Seq2SeqTransformer, sources: list[Sequence[int]], caps: list[int], K: int,
                len_penalty: float, device: torch.device) -> list[list[BeamHypothesis]]:
    c = model.config
    B = len(sources)
    src, src_mask = pad_sources(sources, c.eos_id, device)
    memory = model.encode(src, src_mask).select(torch.arange(B, device=device).repeat_interleave(K))
    sents = [_Sentence() for _ in range(B)]
    active = torch.arange(B, device=device)  # chunk index of each live sentence
    cap = torch.tensor(caps, device=device)
    scores = torch.full((B, K), float("-inf"), device=device)
    scores[:, 0] = 0.0  # one live prefix (<s>) per sentence at the start
    prefixes = torch.full((B * K, 1), c.bos_id, dtype=torch.long, device=device)
    past = None
    t = 0
    while active.numel():
        n = active.numel()
        logits, past = model.decode(prefixes[:, -1:], memory, past)
        lp = torch.log_softmax(logits[:, -1], dim=-1)  # (n*K, V)
        V = lp.shape[-1]
        force = (cap <= t).repeat_interleave(K)  # prefixes at their length cap: only </s> allowed
        if bool(force.any()):
            eos_col = lp[:, c.eos_id].clone()
            lp[force] = float("-inf")
            lp[force, c.eos_id] = eos_col[force]
        cand = (scores.unsqueeze(2) + lp.view(n, K, V)).view(n, K * V)
        top_s, top_i = cand.topk(min(2 * K, K * V), dim=1)  # (n, 2K)
        top_beam, top_tok = top_i // V, top_i % V
        is_eos = top_tok == c.eos_id
        fin = is_eos[:, :K] & torch.isfinite(top_s[:, :K])
        length = t + 1  # tokens incl. </s>
        for r, k in fin.nonzero().tolist():
            row = r * K + int(top_beam[r, k])
            lp_sum = float(top_s[r, k])
            sents[int(active[r])].finished.append(
                BeamHypothesis(tuple(prefixes[row, 1:].tolist()), lp_sum, lp_sum / length**len_penalty))
        live_s, live_pos = top_s.masked_fill(is_eos, float("-inf")).topk(K, dim=1)  # (n, K)
        rows = (torch.arange(n, device=device).unsqueeze(1) * K + top_beam.gather(1, live_pos)).view(-1)
        prefixes = torch.cat([prefixes.index_select(0, rows), top_tok.gather(1, live_pos).view(-1, 1)], dim=1)
        past = [(k.index_select(0, rows), v.index_select(0, rows)) for k, v in past]
        scores = live_s
        t += 1
        done = torch.tensor([len(sents[int(a)].finished) >= K for a in active.tolist()], device=device)
        done |= ~torch.isfinite(live_s[:, 0]) | (cap < t)
        if bool(done.any()):
            keep = (~done).nonzero().squeeze(1)
            keep_rows = (keep.unsqueeze(1) * K + torch.arange(K, device=device)).view(-1)
            active, cap, scores = active[keep], cap[keep], scores[keep]
            prefixes = prefixes.index_select(0, keep_rows)
            past = [(k.index_select(0, keep_rows), v.index_select(0, keep_rows)) for k, v in past]
            memory = memory.select(keep_rows)
    return [s.finished for s in sents]
