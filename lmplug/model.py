"""Decoder-only Transformer language model with a KV cache for incremental scoring.

One file, one config. Pre-norm blocks, rotary position embeddings (so a cache can slide past the
trained context without re-encoding: relative distances stay exact), PyTorch SDPA attention
(FlashAttention on CUDA when the shapes allow), tied input/output embeddings.

Shapes: B batch, T new tokens, L cached keys, V vocabulary, nh heads, hs head size, C = n_embd.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from lmplug.errors import LmplugError, config_from_dict, expect_number


@dataclass
class LMConfig:
    vocab_size: int = 4000  # sentencepiece vocabulary size, incl. <unk>, <s>, </s>
    n_layer: int = 4  # Transformer blocks
    n_head: int = 4  # attention heads; n_embd % n_head == 0
    n_embd: int = 256  # model width C
    block_size: int = 256  # longest context seen in training (tokens)
    dropout: float = 0.1  # on attention output, MLP output and embeddings (training only)
    mlp_ratio: int = 4  # MLP hidden width = mlp_ratio * n_embd
    rope_base: float = 10000.0  # rotary embedding base
    bos_id: int = 1  # token fed as the first context of every sentence
    eos_id: int = 2  # token scored at the end of every sentence

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_layer", "n_head", "n_embd", "block_size", "mlp_ratio", "bos_id", "eos_id"):
            expect_number("LMConfig", name, getattr(self, name), integer=True, at_least=0 if name.endswith("_id") else 1)
        expect_number("LMConfig", "dropout", self.dropout, at_least=0, below=1)
        expect_number("LMConfig", "rope_base", self.rope_base, above=0)
        if max(self.bos_id, self.eos_id) >= self.vocab_size:
            raise LmplugError(f"LMConfig: expected bos_id and eos_id below vocab_size {self.vocab_size}, found "
                              f"{self.bos_id} and {self.eos_id}")
        if self.n_embd % self.n_head != 0:
            raise LmplugError(f"n_embd must be divisible by n_head, found {self.n_embd} and {self.n_head}")
        if (self.n_embd // self.n_head) % 2 != 0:
            raise LmplugError(f"head size must be even for rotary embeddings, found {self.n_embd // self.n_head}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LMConfig":
        return config_from_dict(cls, d)


@dataclass
class KVCache:
    """Keys and values of every layer for a batch of token sequences.

    New tokens are always appended at the end; ``valid`` marks which cached columns a row may
    attend to, so rows of different lengths share one tensor (a row gathered from a shorter
    parent simply has more invalid columns). ``positions`` is the next rotary position per row.
    """

    keys: list[torch.Tensor]  # per layer (B, nh, L, hs)
    values: list[torch.Tensor]  # per layer (B, nh, L, hs)
    valid: torch.Tensor  # (B, L) bool
    positions: torch.Tensor  # (B,) long: tokens seen so far per row

    @property
    def batch_size(self) -> int:
        return self.valid.shape[0]

    @property
    def length(self) -> int:
        return self.valid.shape[1]

    def select(self, index: torch.Tensor, out: "KVCache | None" = None) -> "KVCache":
        """Rows ``index`` (a (B',) long tensor) as a new cache, e.g. the parents of new beams; the
        keys and values written into ``out``'s if given (a cache of the result's shape that is no
        longer needed: on a CPU, fresh large tensors every step cost more than the copy)."""
        if out is None:
            keys = [k.index_select(0, index) for k in self.keys]
            values = [v.index_select(0, index) for v in self.values]
        else:
            keys = [torch.index_select(k, 0, index, out=o) for k, o in zip(self.keys, out.keys)]
            values = [torch.index_select(v, 0, index, out=o) for v, o in zip(self.values, out.values)]
        return KVCache(
            keys=keys,
            values=values,
            valid=self.valid.index_select(0, index),
            positions=self.positions.index_select(0, index),
        )

    def trim(self, max_len: int) -> "KVCache":
        """Drop leading columns so that at most ``max_len`` remain (oldest context first)."""
        if self.length <= max_len:
            return self
        cut = self.length - max_len
        return KVCache(
            keys=[k[:, :, cut:] for k in self.keys],
            values=[v[:, :, cut:] for v in self.values],
            valid=self.valid[:, cut:],
            positions=self.positions,
        )

    def reserve(self, length: int) -> "KVCache":
        """The same cache with at least ``length`` columns: new ones appended, invalid and zero (for
        :meth:`TransformerLM.forward_slot`, which writes into free columns in place)."""
        extra = length - self.length
        if extra <= 0:
            return self

        def pad(t: torch.Tensor) -> torch.Tensor:
            return torch.cat([t, t.new_zeros(*t.shape[:2], extra, *t.shape[3:])], dim=2)

        return KVCache(
            keys=[pad(k) for k in self.keys],
            values=[pad(v) for v in self.values],
            valid=torch.cat([self.valid, self.valid.new_zeros(self.batch_size, extra)], dim=1),
            positions=self.positions,
        )

    def compact(self) -> "KVCache":
        """Drop columns that no row attends to (they accumulate as beams are re-gathered)."""
        keep = self.valid.any(0)
        if bool(keep.all()):
            return self
        idx = keep.nonzero().squeeze(1)
        return KVCache(
            keys=[k.index_select(2, idx) for k in self.keys],
            values=[v.index_select(2, idx) for v in self.values],
            valid=self.valid.index_select(1, idx),
            positions=self.positions,
        )


class KVPool:
    """Keys and values of many token sequences, one slot per token, shared between them.

    A sequence is a list of slots (its context); sequences that share a prefix share its slots,
    so extending one by a token stores that token's keys and values once and copies no history.
    Slots are handed out in order (:meth:`alloc`) and never reused: a pool is filled, then
    replaced by a new one (its users copy the slots they still need, see
    ``lmplug.scorers.transformer``). Slot 0 is padding: zeros, never written.
    """

    def __init__(self, config: "LMConfig", capacity: int, device: torch.device | str, dtype: torch.dtype) -> None:
        hs = config.n_embd // config.n_head
        self.keys = [torch.zeros(capacity, config.n_head, hs, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.values = [torch.zeros(capacity, config.n_head, hs, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.size = 1  # slots in use, padding included

    @property
    def capacity(self) -> int:
        return self.keys[0].shape[0]

    @property
    def free(self) -> int:
        return self.capacity - self.size

    def alloc(self, n: int) -> int:
        """The first of ``n`` new consecutive slots."""
        if n > self.free:
            raise ValueError(f"KVPool: expected at most {self.free} new slots, found a request for {n}")
        start, self.size = self.size, self.size + n
        return start

    def copy_from(self, other: "KVPool", slots: torch.Tensor) -> int:
        """Copy ``other``'s ``slots`` (a (n,) long tensor) into new slots here: the first of them."""
        start = self.alloc(len(slots))
        for dst, src in zip(self.keys + self.values, other.keys + other.values):
            torch.index_select(src, 0, slots, out=dst[start : start + len(slots)])
        return start


def _rope_tables(positions: torch.Tensor, head_size: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables (B, 1, T, hs/2) for integer positions (B, T)."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_size, 2, device=positions.device, dtype=torch.float32) / head_size))
    angles = positions.float().unsqueeze(-1) * inv_freq  # (B, T, hs/2)
    return angles.cos().unsqueeze(1), angles.sin().unsqueeze(1)


def _apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x1, x2) of the last dim; x (B, nh, T, hs)."""
    x1, x2 = x.float().chunk(2, dim=-1)
    out = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return out.type_as(x)


@dataclass(frozen=True)
class Pack:
    """The valid tokens of a right-padded (B, T) batch as one (n, ...) tensor: every layer but
    attention works on the n real tokens only, so padding costs no matrix products."""

    index: torch.Tensor  # (n,) long: flat positions b * T + t of the valid tokens, ascending
    B: int
    T: int

    @staticmethod
    def of(token_mask: torch.Tensor) -> "Pack":
        """The pack of a (B, T) bool mask."""
        return Pack(token_mask.reshape(-1).nonzero().squeeze(1), *token_mask.shape)

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, ...) -> (n, ...)."""
        return x.reshape(self.B * self.T, *x.shape[2:]).index_select(0, self.index)

    def unpack(self, x: torch.Tensor) -> torch.Tensor:
        """(n, ...) -> (B, T, ...), zeros at the padded positions."""
        return x.new_zeros(self.B * self.T, *x.shape[1:]).index_copy_(0, self.index, x).view(self.B, self.T, *x.shape[1:])


class CausalSelfAttention(nn.Module):
    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.head_size = config.n_embd // config.n_head
        self.rope_base = config.rope_base
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        x: torch.Tensor,  # (B, T, C)
        cos: torch.Tensor,  # (B, 1, T, hs/2)
        sin: torch.Tensor,
        past: tuple[torch.Tensor, torch.Tensor] | None,  # (B, nh, L, hs) each
        mask: torch.Tensor | None,  # (B, 1, T, L+T) bool, True = attend; None = plain causal
        slot: torch.Tensor | None = None,  # (B,): write row b's new key/value (T = 1) into column slot[b] of past, in place
        pack: Pack | None = None,  # x is (n, C): the valid tokens of a (B, T) batch, see Pack
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        qkv = self.qkv(x)
        if pack is not None:  # only attention needs the (B, T) layout: padded positions get zeros
            qkv = pack.unpack(qkv)
        B, T, C = qkv.shape[0], qkv.shape[1], qkv.shape[2] // 3
        q, k, v = qkv.split(C, dim=2)
        q = q.view(B, T, self.n_head, self.head_size).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, self.head_size).transpose(1, 2)
        v = v.view(B, T, self.n_head, self.head_size).transpose(1, 2)
        q, k = _apply_rope(q, cos, sin), _apply_rope(k, cos, sin)
        if slot is not None:  # preallocated columns (mask (B, 1, 1, L)): fixed shapes, no copy of the past
            at = slot.view(B, 1, 1, 1).expand(B, self.n_head, 1, self.head_size)
            k = past[0].scatter_(2, at, k)
            v = past[1].scatter_(2, at, v)
        elif past is not None:
            k = torch.cat([past[0], k], dim=2)  # (B, nh, L+T, hs)
            v = torch.cat([past[1], v], dim=2)
        drop = self.dropout if self.training else 0.0
        if mask is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        if pack is not None:
            y = pack.pack(y)
        return self.resid_dropout(self.proj(y)), (k, v)

    def forward_pooled(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, keys: torch.Tensor,
                       values: torch.Tensor, start: int, index: torch.Tensor, mask: torch.Tensor, pack: Pack) -> torch.Tensor:
        """Attention of new tokens ``x`` (n, C), packed from a (B, T) batch by ``pack``, over keys
        and values in a :class:`KVPool`'s layer tensors ``keys``/``values`` (slots, nh, hs): the new
        tokens' own are written into slots ``start .. start + n`` first, then each row reads the
        slots of ``index`` (B, L) under ``mask`` (B, 1, T, L). ``cos``/``sin``: (n, 1, hs/2)."""
        n, C = x.shape
        B, T = pack.B, pack.T
        q, k, v = self.qkv(x).split(C, dim=1)
        q = _apply_rope(q.view(n, self.n_head, self.head_size), cos, sin)
        keys[start : start + n] = _apply_rope(k.view(n, self.n_head, self.head_size), cos, sin)
        values[start : start + n] = v.view(n, self.n_head, self.head_size)
        L = index.shape[1]
        flat = index.reshape(-1)
        k = keys.index_select(0, flat).view(B, L, self.n_head, self.head_size).transpose(1, 2)  # (B, nh, L, hs)
        v = values.index_select(0, flat).view(B, L, self.n_head, self.head_size).transpose(1, 2)
        q = pack.unpack(q.reshape(n, C)).view(B, T, self.n_head, self.head_size).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, nh, T, hs)
        return self.proj(pack.pack(y.transpose(1, 2).reshape(B, T, C)))


class Block(nn.Module):
    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.n_embd)
        hidden = config.mlp_ratio * config.n_embd
        self.mlp = nn.Sequential(
            nn.Linear(config.n_embd, hidden, bias=False),
            nn.GELU(),
            nn.Linear(hidden, config.n_embd, bias=False),
            nn.Dropout(config.dropout),
        )

    def forward(self, x, cos, sin, past, mask, slot=None, pack=None):
        a, kv = self.attn(self.ln1(x), cos, sin, past, mask, slot, pack)
        x = x + a
        x = x + self.mlp(self.ln2(x))
        return x, kv


class TransformerLM(nn.Module):
    """Causal LM. ``forward(idx)`` for training; ``forward(idx, cache)`` for incremental scoring."""

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2 scaled init of residual projections
            if name.endswith("attn.proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def empty_cache(self, batch_size: int, device: torch.device | str | None = None) -> KVCache:
        """A cache with no tokens for ``batch_size`` rows."""
        device = device or self.wte.weight.device
        c = self.config
        hs = c.n_embd // c.n_head
        dtype = self.wte.weight.dtype
        empty = torch.zeros(batch_size, c.n_head, 0, hs, device=device, dtype=dtype)
        return KVCache(
            keys=[empty] * c.n_layer,
            values=[empty] * c.n_layer,
            valid=torch.zeros(batch_size, 0, dtype=torch.bool, device=device),
            positions=torch.zeros(batch_size, dtype=torch.long, device=device),
        )

    def forward(
        self,
        idx: torch.Tensor,
        cache: KVCache | None = None,
        token_mask: torch.Tensor | None = None,
        packed: bool = False,
    ) -> tuple[torch.Tensor, KVCache | None]:
        """Logits for every position.

        Args:
            idx: (B, T) token ids.
            cache: previous context per row; ``None`` means no context and no cache is returned
                (the training path: plain causal attention).
            token_mask: (B, T) bool, with a cache only: False marks padding among the new tokens
                (right-padded rows of different lengths); padded columns are never attended to.
            packed: with a cache only: run every layer but attention on the valid tokens alone
                (:class:`Pack`) and return their logits only, ``(n, V)`` in row-major order
                (row b's tokens start at the sum of the earlier rows' valid counts).

        Returns:
            logits (B, T, V) (``packed``: (n, V)) in float32, and the extended cache (or None
            without one).
        """
        if idx.dim() != 2:
            raise ValueError(f"expected token ids of shape (B, T), found {tuple(idx.shape)}")
        B, T = idx.shape
        if cache is None:
            x = self.drop(self.wte(idx))
            if T > self.config.block_size:
                raise ValueError(f"sequence of {T} tokens exceeds block_size {self.config.block_size}")
            pos = torch.arange(T, device=idx.device).expand(B, T)
            cos, sin = _rope_tables(pos, self.config.n_embd // self.config.n_head, self.config.rope_base)
            for block in self.blocks:
                x, _ = block(x, cos, sin, None, None)
            return self.lm_head(self.ln_f(x)).float(), None

        if cache.batch_size != B:
            raise ValueError(f"cache holds {cache.batch_size} rows, tokens have {B}")
        if token_mask is None:
            token_mask = torch.ones(B, T, dtype=torch.bool, device=idx.device)
        # positions of new tokens: next position + number of real tokens before them in the row
        pos = cache.positions.unsqueeze(1) + token_mask.long().cumsum(1) - token_mask.long()  # (B, T)
        cos, sin = _rope_tables(pos, self.config.n_embd // self.config.n_head, self.config.rope_base)
        causal = torch.ones(T, T, dtype=torch.bool, device=idx.device).tril()
        new_valid = token_mask.unsqueeze(1) & causal.unsqueeze(0)  # (B, T, T)
        old_valid = cache.valid.unsqueeze(1).expand(B, T, cache.length)  # (B, T, L)
        mask = torch.cat([old_valid, new_valid], dim=2)
        # a padded query row may see nothing: let it see itself to keep softmax finite
        eye = torch.eye(T, dtype=torch.bool, device=idx.device).unsqueeze(0)
        mask[:, :, cache.length:] |= eye & ~token_mask.unsqueeze(2)
        mask = mask.unsqueeze(1)  # (B, 1, T, L+T)
        pack = Pack.of(token_mask) if packed else None
        x = self.drop(self.wte(idx if pack is None else pack.pack(idx)))
        logits, keys, values = self._cached_blocks(x, cos, sin, cache, mask, pack=pack)
        new_cache = KVCache(
            keys=keys,
            values=values,
            valid=torch.cat([cache.valid, token_mask], dim=1),
            positions=cache.positions + token_mask.long().sum(1),
        )
        return logits, new_cache

    def _cached_blocks(self, x, cos, sin, cache: KVCache, mask, slot=None, pack=None):
        """The blocks over new tokens ``x`` (packed by ``pack`` if given) with ``cache``'s keys and
        values: (float32 logits, keys, values)."""
        keys, values = [], []
        for i, block in enumerate(self.blocks):
            x, (k, v) = block(x, cos, sin, (cache.keys[i], cache.values[i]), mask, slot, pack)
            keys.append(k)
            values.append(v)
        return self.lm_head(self.ln_f(x)).float(), keys, values

    def forward_pooled(self, idx: torch.Tensor, positions: torch.Tensor, pool: KVPool, start: int,
                       index: torch.Tensor, mask: torch.Tensor, pack: Pack) -> torch.Tensor:
        """Logits (n, V) float32 of new tokens over contexts kept in ``pool`` (inference only).

        Args:
            idx: (n,) the new tokens of a (B, T) batch, packed row after row (``pack``).
            positions: (n,) their rotary positions.
            pool: where every row's context is, and where the new tokens' keys and values go:
                slots ``start .. start + n`` (allocated by the caller), in the order of ``idx``.
            index: (B, L) long, the slots each row attends to (its context, then its new tokens;
                slot 0: padding).
            mask: (B, 1, T, L) bool, True = attend (each new token: its row's context and the
                row's new tokens up to itself).
        """
        hs = self.config.n_embd // self.config.n_head
        cos, sin = _rope_tables(positions.view(1, -1), hs, self.config.rope_base)  # (1, 1, n, hs/2)
        cos, sin = cos.view(-1, 1, hs // 2), sin.view(-1, 1, hs // 2)
        x = self.wte(idx)
        for i, block in enumerate(self.blocks):
            x = x + block.attn.forward_pooled(block.ln1(x), cos, sin, pool.keys[i], pool.values[i], start, index, mask, pack)
            x = x + block.mlp(block.ln2(x))
        return self.lm_head(self.ln_f(x)).float()

    def forward_slot(
        self,
        idx: torch.Tensor,
        cache: KVCache,
        slot: torch.Tensor,
        token_mask: torch.Tensor,
        window: int | None = None,
    ) -> tuple[torch.Tensor, KVCache]:
        """One new token per row, written into column ``slot`` of a cache with its columns allocated
        ahead (:meth:`KVCache.reserve`; every shape fixed, as compiled or CUDA-graph decoders need;
        :meth:`forward` grows the cache instead). Same logits as :meth:`forward` with the same
        history. The keys and values are written IN PLACE (the returned cache shares them): pass a
        cache of your own, e.g. the rows :meth:`KVCache.select` just gathered.

        Args:
            idx: (B, 1) token ids.
            cache: preallocated; each row's column ``slot`` is free.
            slot: (B,) long, the column each row writes (``cache.positions``: every row's tokens
                packed from column 0), or (1,), one column for all rows.
            token_mask: (B, 1) bool; False: the row adds nothing (its column stays invalid, its
                logits are to be ignored).
            window: attend to at most the last ``window`` tokens of each row, the new one
                included (the sliding context of :class:`~lmplug.scorers.transformer.TransformerScorer`).

        Returns:
            logits (B, 1, V) float32, and the cache with the new column.
        """
        if idx.dim() != 2 or idx.shape[1] != 1:
            raise ValueError(f"expected token ids of shape (B, 1), found {tuple(idx.shape)}")
        slot = slot.expand(idx.shape[0])
        valid = cache.valid.scatter(1, slot[:, None], token_mask)  # (B, L)
        att = valid  # a row with no valid column at all would get NaN logits (a decoder's rows hold <s>)
        if window is not None and cache.length > window:
            from_right = valid.flip(1).long().cumsum(1).flip(1)  # valid tokens at or after each column
            att = valid & (from_right <= window)
        cos, sin = _rope_tables(cache.positions[:, None], self.config.n_embd // self.config.n_head, self.config.rope_base)
        x = self.wte(idx)
        mask = att[:, None, None, :]  # (B, 1, 1, L)
        logits, keys, values = self._cached_blocks(x, cos, sin, cache, mask, slot)
        return logits, KVCache(keys=keys, values=values, valid=valid,
                               positions=cache.positions + token_mask[:, 0].long())
