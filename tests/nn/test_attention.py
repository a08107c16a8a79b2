"""Pose temporal memory read (Eq. 1-3) against hand-computed small tensors."""
from __future__ import annotations

import math

import pytest
import torch

from vidpose.nn.attention import MemoryRead, correlation_weights


def _identity_read(heads: int = 1) -> MemoryRead:
    read = MemoryRead(2, 2, heads=heads, alpha=0.5)
    with torch.no_grad():
        for conv in (read.key, read.query, read.value):
            conv.weight.copy_(torch.eye(2)[:, :, None, None])
    return read


def _read_maps(read: MemoryRead, x, maps, **kw):
    """Read feature maps (B, T, C, h, w) as the memory stores them: projected once."""
    return read(x, read.project(maps), **kw)


# Memory: one frame, two positions m1 = (1, 0), m2 = (0, 1); input: one position x = (2, 1).
MEMORY = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).T.reshape(1, 1, 2, 1, 2)
X = torch.tensor([2.0, 1.0]).reshape(1, 2, 1, 1)


def test_vanilla_attention_by_hand():
    # s = (2, 1): softmax over the memory rows; Eq. 3 with alpha 0.5.
    w1, w2 = math.exp(2) / (math.exp(2) + math.exp(1)), math.exp(1) / (math.exp(2) + math.exp(1))
    y = _read_maps(_identity_read(), X, MEMORY, crowded=False).flatten()
    assert torch.allclose(y, torch.tensor([0.5 * 2 + 0.5 * w1, 0.5 * 1 + 0.5 * w2]), atol=1e-6)


def test_coda_by_hand():
    # d = -||m_i - x||_1 = (-2, -2); w_i = tanh(s_i) * 2 sigmoid(d_i).
    sig = 2 / (1 + math.exp(2))
    w1, w2 = math.tanh(2) * sig, math.tanh(1) * sig
    y = _read_maps(_identity_read(), X, MEMORY, crowded=True).flatten()
    assert torch.allclose(y, torch.tensor([1 + 0.5 * w1, 0.5 + 0.5 * w2]), atol=1e-6)


def test_coda_weights_may_be_negative_and_need_not_sum_to_one():
    keys = torch.tensor([[1.0, -1.0], [0.0, 0.0]])[None, None]  # (1, 1, d=2, l=2)
    queries = torch.tensor([[1.0], [0.0]])[None, None]           # (1, 1, 2, n=1)
    coda = correlation_weights(keys, queries, torch.tensor([True]))[0, 0, 0]
    vanilla = correlation_weights(keys, queries, torch.tensor([False]))[0, 0, 0]
    assert coda[1] < 0 and not torch.isclose(coda.sum(), torch.tensor(1.0))
    assert torch.isclose(vanilla.sum(), torch.tensor(1.0)) and (vanilla > 0).all()


def test_the_crowdedness_switch_is_per_sample():
    read = _identity_read()
    memory, x = MEMORY.repeat(2, 1, 1, 1, 1), X.repeat(2, 1, 1, 1)
    y = _read_maps(read, x, memory, crowded=torch.tensor([False, True]))
    assert torch.allclose(y[0], _read_maps(read, X, MEMORY, crowded=False)[0])
    assert torch.allclose(y[1], _read_maps(read, X, MEMORY, crowded=True)[0])


def test_heads_attend_separately():
    # With identity weights and 2 heads, channel k only ever meets channel k.
    read = _identity_read(heads=2)
    y = _read_maps(read, X, MEMORY).flatten()
    for k in range(2):
        s = MEMORY[0, 0, k, 0] * X[0, k, 0, 0]            # per position, this channel only
        w = torch.softmax(s, 0)
        expected = 0.5 * X[0, k, 0, 0] + 0.5 * (w * MEMORY[0, 0, k, 0]).sum()
        assert torch.isclose(y[k], expected, atol=1e-6)


def test_empty_memory_slots_are_ignored():
    read = _identity_read()
    noise = torch.randn(1, 1, 2, 1, 2) * 5
    padded = torch.cat([MEMORY, noise], 1)
    for crowded in (False, True):
        y = _read_maps(read, X, padded, crowded=crowded, valid=torch.tensor([[True, False]]))
        assert torch.allclose(y, _read_maps(read, X, MEMORY, crowded=crowded), atol=1e-6)
    # No memory at all: the feature map passes unchanged.
    assert torch.equal(_read_maps(read, X, padded, valid=torch.tensor([[False, False]])), X)


def test_alpha_is_learned():
    read = _identity_read()
    _read_maps(read, X, MEMORY, crowded=True).sum().backward()
    assert read.alpha.grad is not None and read.alpha.grad != 0
    assert all(p.grad is not None for p in (read.key.weight, read.query.weight, read.value.weight))


def test_heads_must_divide_the_channels():
    with pytest.raises(ValueError, match="heads"):
        MemoryRead(6, 4, heads=3)


def _reprojecting_read(read: MemoryRead, x, maps, crowded, valid):
    """The read as it was before the memory stored projections: every stored map through
    W_K / W_V at every read, CoDA's L1 distance by broadcasting (a reference, kept here)."""
    batch, frames = maps.shape[:2]
    flat = maps.flatten(0, 1)

    def rows(t):
        t = t.reshape(batch, -1, read.heads, t.shape[1] // read.heads, t.shape[-2] * t.shape[-1])
        return t.permute(0, 2, 3, 1, 4).flatten(3)

    keys, values = rows(read.key(flat)), rows(read.value(flat))
    queries = read.query(x).reshape(batch, read.heads, -1, x.shape[-2] * x.shape[-1])
    mask = valid[:, :, None].expand(batch, frames, maps.shape[-2] * maps.shape[-1]).flatten(1)
    mask = mask[:, None, :, None]
    s = keys.transpose(-1, -2) @ queries
    vanilla = torch.nan_to_num(torch.softmax(s.masked_fill(~mask, float("-inf")), dim=-2), nan=0.0)
    d = -(keys.unsqueeze(-1) - queries.unsqueeze(-2)).abs().sum(-3)
    coda = torch.tanh(s) * (2 * torch.sigmoid(d)) * mask
    weights = torch.where(crowded[:, None, None, None], coda, vanilla)
    y = read.alpha * x + (1 - read.alpha) * (values @ weights).reshape(x.shape)
    return torch.where(valid.any(1)[:, None, None, None], y, x)


@pytest.mark.parametrize("crowded", [[False, False, False], [True, True, True], [True, False, True]])
def test_reading_stored_projections_equals_reprojecting_every_stored_map(crowded):
    torch.manual_seed(0)
    read = MemoryRead(16, 8, heads=4, alpha=0.3)
    x, maps = torch.randn(3, 16, 3, 2), torch.randn(3, 5, 16, 3, 2)
    valid = torch.tensor([[True] * 5, [True, True, False, False, False], [False] * 5])
    flags = torch.tensor(crowded)
    stored = torch.stack([read.project(m) for m in maps])  # written one person at a time
    assert stored.shape == (3, 5, 8 + 16, 3, 2)
    new = read(x, stored, flags, valid)
    old = _reprojecting_read(read, x, maps, flags, valid)
    torch.testing.assert_close(new, old, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # inference computes CoDA's weights in place
        torch.testing.assert_close(read(x, stored, flags, valid), old, rtol=1e-5, atol=1e-5)
