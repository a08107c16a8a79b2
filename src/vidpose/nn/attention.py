"""The pose temporal memory's read: attention from the current feature map to memorised ones.

Pose temporal memory (Eq. 1-3). The memory m holds l = (stored features x n positions)
rows of c channels, the current feature map x has n positions. With 1x1 convolutions W_K,
W_Q (c -> c_bar) and W_V (c -> c):

* s_ij = (W_K m_i)^T (W_Q x_j) and d_ij = -||W_K m_i - W_Q x_j||_1;
* Eq. 1, the correlation weights: w_ij = softmax_i(s_ij) (vanilla attention, uncrowded) or
  w_ij = tanh(s_ij) * 2 sigmoid(d_ij) (compositional de-attention, CoDA, crowded), where
  CoDA's weights may be negative and need not sum to one, so that dissimilar (occluded)
  positions can subtract;
* Eq. 2, the aligned memory: m~_j = sum_i w_ij W_V m_i;
* Eq. 3, the read: y = alpha x + (1 - alpha) m~, alpha a learned scalar.

Multi-head: the embedding channels (and W_V's output) split into ``heads`` groups, each with
its own weights; the heads' m~ are concatenated. The paper does not scale s by
1/sqrt(c_bar); neither does this module. Which samples use CoDA is the caller's crowdedness
switch (``crowded``, one flag per sample).

A map is projected once, when it is written (``MemoryRead.project``: its W_K and W_V rows),
and the memory stores those rows: a read is one attention over stored tensors, its cost
the attention's alone (the paper's module costs 0.7 -> 0.6 fps on a GPU).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def correlation_weights(keys: Tensor, queries: Tensor, crowded: Tensor,
                        valid: Tensor | None = None) -> Tensor:
    """Eq. 1 per head: keys (B, N, d, l), queries (B, N, d, n) -> weights (B, N, n, l), the
    memory rows last (so that the softmax runs over contiguous memory).

    ``crowded`` (B,) bool picks CoDA for those samples, vanilla attention for the others;
    ``valid`` (B, l) bool marks real memory rows (padding gets weight 0; default all). Only
    the form a sample uses is computed.
    """
    queries_t = queries.transpose(-1, -2)  # (B, N, n, d)
    s = queries_t @ keys  # (B, N, n, l): s_ij for memory row i, position j
    mask = None if valid is None or bool(valid.all()) else valid[:, None, None, :]
    if not bool(crowded.any()):
        return _vanilla(s, mask)
    if bool(crowded.all()):
        return _coda(s, keys, queries_t, mask)
    return torch.where(crowded[:, None, None, None], _coda(s, keys, queries_t, mask),
                       _vanilla(s, mask))


def _vanilla(s: Tensor, mask: Tensor | None) -> Tensor:
    if mask is None:
        return torch.softmax(s, dim=-1)
    weights = torch.softmax(s.masked_fill(~mask, float("-inf")), dim=-1)
    return torch.nan_to_num(weights, nan=0.0)  # a sample with no memory row at all


def _coda(s: Tensor, keys: Tensor, queries_t: Tensor, mask: Tensor | None) -> Tensor:
    # d_ij = -||k_i - q_j||_1 by cdist: the broadcast difference (B, N, d, l, n) it replaces
    # held 1.5 GB for 8 persons at capacity 16 and took 40x longer.
    d = torch.cdist(queries_t.contiguous(), keys.transpose(-1, -2).contiguous(), p=1)
    if torch.is_grad_enabled():
        weights = torch.tanh(s) * (2 * torch.sigmoid(-d))
    else:  # inference: in place, no graph to keep (each pass over n x l weights costs)
        weights = torch.tanh(s).mul_(torch.sigmoid_(d.neg_())).mul_(2)
    return weights if mask is None else weights * mask


class MemoryRead(nn.Module):
    """Eq. 1-3: ``project`` a map once when it is written (W_K and W_V: its memory rows),
    ``forward`` reads the stored rows of up to T maps into a (B, C, h, w) feature map."""

    def __init__(self, channels: int, embed_channels: int, heads: int = 1,
                 alpha: float = 0.5) -> None:
        super().__init__()
        if embed_channels % heads or channels % heads:
            raise ValueError(f"channels ({channels}) and embed_channels ({embed_channels}) must "
                             f"divide into {heads} heads")
        self.heads = heads
        self.embed_channels = embed_channels
        self.key = nn.Conv2d(channels, embed_channels, 1, bias=False)    # W_K
        self.query = nn.Conv2d(channels, embed_channels, 1, bias=False)  # W_Q
        self.value = nn.Conv2d(channels, channels, 1, bias=False)        # W_V
        self.alpha = nn.Parameter(torch.tensor(float(alpha)))

    def project(self, maps: Tensor) -> Tensor:
        """(..., C, h, w) feature maps -> (..., c_bar + C, h, w): W_K m then W_V m, the form
        the memory stores, so that a read never projects a stored map again. Both 1x1
        convolutions are linear per position, so keypoint feature replacement may act on
        these rows as on the map itself."""
        lead, (c, h, w) = maps.shape[:-3], maps.shape[-3:]
        weight = torch.cat([self.key.weight, self.value.weight])  # one pass for both
        rows = F.conv2d(maps.reshape(-1, c, h, w), weight)
        return rows.reshape(*lead, -1, h, w)

    def _rows(self, t: Tensor) -> Tensor:
        """(B, T, C, h, w) -> (B, heads, C / heads, T h w): memory rows by frame, then position
        (a view where t is laid out (B, C, T, h, w), as ``pad_memories`` lays it out)."""
        batch, frames, channels = t.shape[:3]
        t = t.reshape(batch, frames, self.heads, channels // self.heads, -1)
        return t.permute(0, 2, 3, 1, 4).flatten(3)

    def _split(self, x: Tensor) -> Tensor:
        """(B, C, ...) -> (B, heads, C / heads, positions)."""
        return x.reshape(x.shape[0], self.heads, x.shape[1] // self.heads, -1)

    def forward(self, x: Tensor, memory: Tensor, crowded: Tensor | bool = False,
                valid: Tensor | None = None) -> Tensor:
        """x (B, C, h, w); memory (B, T, c_bar + C, h, w): stored ``project`` rows; crowded
        (B,) bool or one bool for all; valid (B, T) bool marks filled memory slots (default
        all). Samples without any memory keep their x."""
        batch, frames = memory.shape[:2]
        if isinstance(crowded, bool):
            crowded = torch.full((batch,), crowded, dtype=torch.bool, device=x.device)
        keys = self._rows(memory[:, :, :self.embed_channels])
        values = self._rows(memory[:, :, self.embed_channels:])
        queries = self._split(self.query(x))
        row_valid = None
        if valid is not None:
            positions = memory.shape[-2] * memory.shape[-1]
            row_valid = valid[:, :, None].expand(batch, frames, positions).flatten(1)
        weights = correlation_weights(keys, queries, crowded, row_valid)  # (B, N, n, l)
        aligned = (values @ weights.transpose(-1, -2)).reshape(x.shape)  # Eq. 2, heads concatenated
        y = self.alpha * x + (1 - self.alpha) * aligned  # Eq. 3
        if valid is not None:
            y = torch.where(valid.any(1)[:, None, None, None], y, x)
        return y
