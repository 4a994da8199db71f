import pytest
import torch

from lmplug.model import LMConfig


def test_kv_cache_step_by_step_equals_full_forward(tiny_model):
    torch.manual_seed(1)
    idx = torch.randint(0, tiny_model.config.vocab_size, (3, 12))
    full, _ = tiny_model(idx)
    cache = tiny_model.empty_cache(3)
    steps = []
    for t in range(12):
        logits, cache = tiny_model(idx[:, t : t + 1], cache)
        steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)
    assert cache.length == 12 and cache.positions.tolist() == [12, 12, 12]


def test_kv_cache_chunks_and_padding_equal_full_forward(tiny_model):
    """Rows of different lengths in one cache (right padding + gather) give each row's own logits."""
    torch.manual_seed(2)
    a = torch.randint(0, tiny_model.config.vocab_size, (1, 9))
    b = torch.randint(0, tiny_model.config.vocab_size, (1, 5))
    full_a, _ = tiny_model(a)
    full_b, _ = tiny_model(b)
    idx = torch.zeros(2, 6, dtype=torch.long)
    idx[0], idx[1, :5] = a[0, :6], b[0]
    mask = torch.tensor([[True] * 6, [True] * 5 + [False]])
    logits, cache = tiny_model(idx, tiny_model.empty_cache(2), token_mask=mask)
    torch.testing.assert_close(logits[0], full_a[0, :6], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits[1, :5], full_b[0], atol=1e-5, rtol=1e-5)
    # continue row 0 only, gathered from the shared cache, then both rows one token each
    cache0 = cache.select(torch.tensor([0]))
    l0, cache0 = tiny_model(a[:, 6:9], cache0)
    torch.testing.assert_close(l0[0], full_a[0, 6:9], atol=1e-5, rtol=1e-5)
    nxt = torch.tensor([[a[0, 6]], [3]])
    l2, _ = tiny_model(nxt, cache)
    torch.testing.assert_close(l2[0, 0], full_a[0, 6], atol=1e-5, rtol=1e-5)
    ref_b, _ = tiny_model(torch.cat([b, torch.tensor([[3]])], 1))
    torch.testing.assert_close(l2[1, 0], ref_b[0, 5], atol=1e-5, rtol=1e-5)


def test_packed_forward_equals_padded_forward(tiny_model):
    """packed=True: the valid tokens' logits, row after row, and the same cache as padded."""
    torch.manual_seed(3)
    V = tiny_model.config.vocab_size
    _, cache = tiny_model(torch.randint(0, V, (3, 4)), tiny_model.empty_cache(3),
                          token_mask=torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]]).bool())
    idx = torch.randint(0, V, (3, 5))
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]).bool()
    padded, pc = tiny_model(idx, cache, token_mask=mask)
    packed, kc = tiny_model(idx, cache, token_mask=mask, packed=True)
    assert packed.shape == (int(mask.sum()), V)
    torch.testing.assert_close(packed, padded[mask], atol=1e-5, rtol=1e-5)
    assert torch.equal(kc.valid, pc.valid) and torch.equal(kc.positions, pc.positions)
    nxt = torch.randint(0, V, (3, 1))  # the caches continue alike (padded columns are never attended)
    torch.testing.assert_close(tiny_model(nxt, kc)[0], tiny_model(nxt, pc)[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("packed", [False, True])
def test_forward_slot_into_preallocated_columns_equals_growing_cache(tiny_model, packed):
    """Rows that skip steps (token_mask False), with and without a sliding window: each row's logits
    as a growing cache gives them (slid as TransformerScorer does: cached keys are kept, not
    re-encoded; the oldest dropped). Columns by step (slot t), or packed per row (slot = positions) in a cache that
    starts with 2 columns and is grown by KVCache.reserve."""
    torch.manual_seed(3)
    V, L = tiny_model.config.vocab_size, 10
    idx = torch.randint(0, V, (2, L))
    take = torch.tensor([[True] * L, [True, False, True, True, False, True, False, True, True, True]])
    for window in (None, 4):
        cc = tiny_model.empty_cache(2).reserve(2 if packed else L)  # written in place
        assert cc.length == (2 if packed else L) and not cc.valid.any()
        got = [[], []]
        for t in range(L):
            if packed:
                cc = cc.reserve(int(cc.positions.max()) + 1)
            slot = cc.positions if packed else torch.tensor([t])
            logits, cc = tiny_model.forward_slot(idx[:, t : t + 1], cc, slot, take[:, t : t + 1], window)
            got[0] += [logits[0, 0]] if take[0, t] else []
            got[1] += [logits[1, 0]] if take[1, t] else []
        assert cc.positions.tolist() == take.sum(1).tolist()
        if packed:
            assert cc.length == L and cc.valid.tolist() == [[True] * L, [True] * 7 + [False] * 3]
        else:
            assert cc.valid.tolist() == take.tolist()
        for r in range(2):
            ref = tiny_model.empty_cache(1)
            for j, tok in enumerate(idx[r][take[r]].tolist()):
                if window is not None:
                    ref = ref.trim(window - 1)  # one row, every column valid
                logits, ref = tiny_model(torch.tensor([[tok]]), ref)
                torch.testing.assert_close(got[r][j], logits[0, 0], atol=1e-5, rtol=1e-5)


def test_compact_and_select_keep_results(tiny_model):
    idx = torch.randint(0, tiny_model.config.vocab_size, (2, 4))
    _, cache = tiny_model(idx, tiny_model.empty_cache(2), token_mask=torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]]).bool())
    with torch.no_grad():  # a spare cache of the same shape takes the rows (decoders: no autograd)
        into = cache.select(torch.tensor([0, 0]))
        got = cache.select(torch.tensor([1, 0]), out=into).keys
    assert all(torch.equal(x, y) for x, y in zip(got, cache.select(torch.tensor([1, 0])).keys))
    c = cache.select(torch.tensor([1, 1])).compact()
    assert c.length == 2
    nxt = torch.tensor([[5], [5]])
    a, _ = tiny_model(nxt, c)
    b, _ = tiny_model(nxt, cache.select(torch.tensor([1, 1])))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(n_embd=30, n_head=4), "divisible"), (dict(n_embd=12, n_head=4), "even")],
)
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LMConfig(**kwargs)


def test_forward_rejects_bad_shapes(tiny_model):
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        tiny_model(torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="block_size"):
        tiny_model(torch.zeros(1, tiny_model.config.block_size + 1, dtype=torch.long))


@torch.inference_mode()
def test_pooled_forward_equals_full_forward(tiny_model):
    """Rows whose contexts share pool slots (a common prefix), with different context lengths and
    different numbers of new tokens in one call: each new token's logits as a plain forward of
    its row's whole sequence gives them."""
    from lmplug.model import KVPool, Pack

    torch.manual_seed(4)
    V = tiny_model.config.vocab_size
    seq = torch.randint(0, V, (9,))
    pool = KVPool(tiny_model.config, 64, "cpu", torch.float32)
    first = pool.alloc(5)  # a 5-token prefix, run once

    def run(ids, pos, index, mask, lens, start):
        pack = Pack.of(torch.arange(max(lens))[None, :] < torch.tensor(lens)[:, None])
        return tiny_model.forward_pooled(ids, pos, pool, start, index, mask, pack)

    run(seq[:5], torch.arange(5), torch.arange(first, first + 5)[None], torch.ones(5, 5).tril().bool()[None, None], [5], first)
    # row 0: the prefix's first 3 tokens + 2 new; row 1: all 5 + 1 new (other tokens)
    new = [seq[3:5] + 1, seq[5:6]]
    start = pool.alloc(3)
    index = torch.tensor([[first, first + 1, first + 2, 0, 0, start, start + 1],
                          [first, first + 1, first + 2, first + 3, first + 4, start + 2, 0]])
    hist, T = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]).bool(), 2
    own = torch.tensor([[[1, 0], [1, 1]], [[1, 0], [1, 0]]]).bool()  # row 1's padded query sees its one token
    mask = torch.cat([hist[:, None, :].expand(2, T, 5), own], dim=2)[:, None]
    got = run(torch.cat(new), torch.tensor([3, 4, 5]), index, mask, [2, 1], start)
    full0, _ = tiny_model(torch.cat([seq[:3], new[0]])[None])
    full1, _ = tiny_model(torch.cat([seq[:5], new[1]])[None])
    torch.testing.assert_close(got, torch.cat([full0[0, 3:], full1[0, 5:]]), atol=1e-5, rtol=1e-5)
