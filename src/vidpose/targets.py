"""Training targets rendered on the fly: keypoint heatmaps, limb maps and person masks.

The one renderer of the suite. Every function is vectorised over persons, keypoints/limbs
and pixels (no Python loop over any of them) and accepts extra leading batch dimensions:
``keypoints`` is ``(..., P, K, 3)`` with columns x, y, v in heatmap pixels, pixel centres at
integer coordinates. Keypoints with ``v == 0`` are absent and render nothing; a limb renders
only when both of its keypoints are present.

Persons are merged with a pixel-wise maximum (the convention of the bottom-up papers), or
kept apart with ``per_person=True`` for methods that track each person's maps.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor


def _grid(size: Sequence[int], like: Tensor) -> tuple[Tensor, Tensor]:
    """Pixel-centre coordinates ``xs`` (w,) and ``ys`` (h,) on ``like``'s device and dtype."""
    dtype = like.dtype if like.is_floating_point() else torch.float32
    return tuple(torch.arange(int(n), dtype=dtype, device=like.device) for n in (size[1], size[0]))


def _merge_persons(maps: Tensor, per_person: bool) -> Tensor:
    """Max over the person axis (-4) of ``(..., P, C, h, w)``; zeros when there is no person."""
    if per_person:
        return maps
    if maps.shape[-4] == 0:
        return maps.new_zeros(maps.shape[:-4] + maps.shape[-3:])
    return maps.amax(dim=-4)


def _as_float(keypoints: Tensor | np.ndarray) -> Tensor:
    keypoints = torch.as_tensor(keypoints)
    return keypoints if keypoints.is_floating_point() else keypoints.float()


def render_heatmaps(keypoints: Tensor | np.ndarray, size: Sequence[int], sigma: float, *,
                    per_person: bool = False) -> Tensor:
    """Keypoint Gaussians ``S(p) = exp(-||p - x||^2 / (2 sigma^2))``.

    keypoints: ``(..., P, K, 3)``. Returns ``(..., K, h, w)`` (max over persons) or
    ``(..., P, K, h, w)`` with ``per_person``. The Gaussian is separable, so it is built as
    the outer product of a row and a column profile: O(P K (h + w)) exponentials.
    """
    keypoints = _as_float(keypoints)
    xs, ys = _grid(size, keypoints)
    present = (keypoints[..., 2] > 0).to(xs.dtype)
    denom = 2.0 * float(sigma) ** 2
    gx = torch.exp(-(xs - keypoints[..., 0, None]) ** 2 / denom) * present[..., None]
    gy = torch.exp(-(ys - keypoints[..., 1, None]) ** 2 / denom)
    return _merge_persons(gy[..., :, None] * gx[..., None, :], per_person)


def _segment_sq_distance(a: Tensor, b: Tensor, xs: Tensor, ys: Tensor) -> Tensor:
    """Squared distance of every pixel to segments ``a``-``b`` (both ``(N, 2)``): ``(N, h, w)``.

    The projection parameter is clamped to [0, 1], so the ends are round caps and a
    degenerate segment (a == b) is the distance to that point. Operations are fused and
    in place where possible: each one is a pass over an ``(N, h, w)`` tensor.
    """
    d = b - a
    inv_length_sq = 1.0 / (d ** 2).sum(-1).clamp_min(1e-12)
    px = xs - a[:, 0, None]  # (N, w)
    py = ys - a[:, 1, None]  # (N, h)
    dx, dy = d[:, 0, None, None], d[:, 1, None, None]
    # Projection of each pixel onto the segment, as a fraction of its length.
    t = ((py * (d[:, 1] * inv_length_sq)[:, None])[:, :, None]
         + (px * (d[:, 0] * inv_length_sq)[:, None])[:, None, :]).clamp_(0.0, 1.0)
    ex = torch.addcmul(px[:, None, :], t, dx, value=-1.0)
    ey = torch.addcmul(py[:, :, None], t, dy, value=-1.0)
    return ex.square_().add_(ey.square_())


def _scatter_max(values: Tensor, index: Tensor, count: int) -> Tensor:
    """``out[i] = max(0, max of values[n] with index[n] == i)``: ``(count, h, w)``."""
    height, width = values.shape[-2:]
    out = values.new_zeros((count, height * width))
    flat = values.reshape(len(values), height * width)
    out.scatter_reduce_(0, index[:, None].expand_as(flat), flat, reduce="amax")
    return out.reshape(count, height, width)


def _limb_ends(keypoints: Tensor, limbs: Tensor | np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
    """Endpoints ``(..., P, L, 2)`` of every limb and whether both ends are present."""
    limbs = torch.as_tensor(np.asarray(limbs), dtype=torch.long, device=keypoints.device)
    start = keypoints[..., limbs[:, 0], :]
    end = keypoints[..., limbs[:, 1], :]
    present = (start[..., 2] > 0) & (end[..., 2] > 0)
    return start[..., :2], end[..., :2], present


def _render_segments(start: Tensor, end: Tensor, present: Tensor, group: Tensor, count: int,
                     size: Sequence[int], to_value: Callable[[Tensor], Tensor]) -> Tensor:
    """Render segments ``(..., 2)`` and max-merge them into ``count`` maps by ``group``.

    ``present``, ``group``: the segments' shape without the last axis. Only present
    segments are computed. Returns ``(count, h, w)``.
    """
    xs, ys = _grid(size, start)
    keep = present.reshape(-1).nonzero().squeeze(1)
    values = to_value(_segment_sq_distance(start.reshape(-1, 2)[keep], end.reshape(-1, 2)[keep],
                                           xs, ys))
    return _scatter_max(values, group.reshape(-1)[keep], count)


def _groups(shape: torch.Size, keep: str, device: torch.device) -> tuple[Tensor, int]:
    """Group index of each element of ``(..., P, S)`` and the number of groups.

    One group per leading index, times the persons if ``keep`` has 'p', times the segments
    if it has 's': elements of a group are merged by maximum.
    """
    num_p, num_s = shape[-2], shape[-1]
    count = int(np.prod(shape[:-2], dtype=np.int64))
    index = torch.arange(count, device=device).reshape(*shape[:-2], 1, 1)
    if "p" in keep:
        index, count = index * num_p + torch.arange(num_p, device=device)[:, None], count * num_p
    if "s" in keep:
        index, count = index * num_s + torch.arange(num_s, device=device), count * num_s
    return index.expand(shape), count


def render_limb_maps(keypoints: Tensor | np.ndarray, limbs: Tensor | np.ndarray,
                     size: Sequence[int], sigma: float, *, per_person: bool = False) -> Tensor:
    """A Gaussian of the distance to each limb segment, ends included: 1 on the segment.

    keypoints ``(..., P, K, 3)``, limbs ``(L, 2)`` keypoint index pairs. Returns
    ``(..., L, h, w)`` (max over persons) or ``(..., P, L, h, w)``.
    """
    keypoints = _as_float(keypoints)
    start, end, present = _limb_ends(keypoints, limbs)
    group, count = _groups(present.shape, "ps" if per_person else "s", keypoints.device)
    scale = -1.0 / (2.0 * float(sigma) ** 2)
    maps = _render_segments(start, end, present, group, count, size,
                            lambda d2: d2.mul_(scale).exp_())
    kept = present.shape if per_person else present.shape[:-2] + present.shape[-1:]
    return maps.reshape(*kept, *maps.shape[-2:])


def render_person_mask(keypoints: Tensor | np.ndarray, limbs: Tensor | np.ndarray,
                       size: Sequence[int], width: float, *, per_person: bool = False) -> Tensor:
    """Binary person mask from the skeleton, for data without segmentation.

    A pixel belongs to a person when it lies within ``width`` pixels of one of its present
    limb segments or keypoints. Returns ``(..., 1, h, w)`` (union over persons) or
    ``(..., P, 1, h, w)``.
    """
    keypoints = _as_float(keypoints)
    start, end, limb_present = _limb_ends(keypoints, limbs)
    # Keypoints enter as zero-length segments so that a person with one labelled joint
    # (or joints without limbs between them) still covers something.
    start = torch.cat([start, keypoints[..., :2]], -2)
    end = torch.cat([end, keypoints[..., :2]], -2)
    present = torch.cat([limb_present, keypoints[..., 2] > 0], -1)
    group, count = _groups(present.shape, "p" if per_person else "", keypoints.device)
    radius_sq = float(width) ** 2
    mask = _render_segments(start, end, present, group, count, size,
                            lambda d2: (d2 <= radius_sq).to(d2.dtype))
    kept = present.shape[:-1] if per_person else present.shape[:-2]
    return mask.reshape(*kept, 1, *mask.shape[-2:])


def render_gaussian_peaks(centers: Tensor, group: Tensor, count: int, size: Sequence[int],
                          sigmas: Tensor, angles: Tensor, intensity: Tensor) -> Tensor:
    """Anisotropic Gaussian peaks, each with its own shape and height, max-merged by ``group``.

    centers ``(N, 2)`` x, y; group ``(N,)`` the map of each peak, in ``[0, count)``; sigmas
    ``(N, 2)`` the spread along the peak's own two axes; angles ``(N,)`` radians from the
    x axis to the first of them; intensity ``(N,)`` the value at the centre. A peak is
    ``intensity * exp(-(u^2 / sigma_u^2 + v^2 / sigma_v^2) / 2)`` with ``(u, v)`` the pixel's
    offset in the peak's axes (equal sigmas and intensity 1: :func:`render_heatmaps`' peak).
    Returns ``(count, h, w)``, zero where no peak reaches.
    """
    xs, ys = _grid(size, centers)
    dx = xs - centers[:, 0, None]  # (N, w)
    dy = ys - centers[:, 1, None]  # (N, h)
    cos, sin = torch.cos(angles), torch.sin(angles)
    inv_u, inv_v = sigmas[:, 0] ** -2, sigmas[:, 1] ** -2
    # The rotated quadratic form u^2/su^2 + v^2/sv^2 = a dx^2 + 2 b dx dy + c dy^2.
    a = cos ** 2 * inv_u + sin ** 2 * inv_v
    b = cos * sin * (inv_u - inv_v)
    c = sin ** 2 * inv_u + cos ** 2 * inv_v
    form = ((a[:, None] * dx ** 2)[:, None, :] + (c[:, None] * dy ** 2)[:, :, None]
            + (2.0 * b)[:, None, None] * dy[:, :, None] * dx[:, None, :])
    values = form.mul_(-0.5).exp_().mul_(intensity[:, None, None])
    return _scatter_max(values, group, count)


def render_segment_peaks(start: Tensor, end: Tensor, group: Tensor, count: int,
                         size: Sequence[int], sigma: Tensor, intensity: Tensor) -> Tensor:
    """Limb-map segments, each with its own width and height, max-merged by ``group``.

    start, end ``(N, 2)``; group ``(N,)`` in ``[0, count)``; sigma ``(N,)`` the spread across
    the segment; intensity ``(N,)`` the value on it. Each segment is
    ``intensity * exp(-d^2 / (2 sigma^2))`` of the distance ``d`` to it, ends included
    (:func:`render_limb_maps`' profile). Returns ``(count, h, w)``.
    """
    xs, ys = _grid(size, start)
    scale = (-0.5 * sigma ** -2)[:, None, None]
    values = _segment_sq_distance(start, end, xs, ys).mul_(scale).exp_()
    return _scatter_max(values.mul_(intensity[:, None, None]), group, count)
