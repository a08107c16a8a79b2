"""From network output to poses: heatmap peaks with sub-pixel refinement, flip merging,
crop-to-image mapping, OKS and OKS-NMS. The one decoder module of the suite.

Heatmap coordinates are in heatmap pixels with pixel centres at integer coordinates; a
heatmap of stride ``s`` places input-crop pixel ``x`` at ``x / s`` (as the SimpleBaseline
code renders its targets), so :func:`heatmap_to_crop` multiplies by the stride.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from vidpose.keypoints import COCO17
from vidpose.pose import Pose

REFINEMENTS = ("quarter", "taylor")


def heatmap_peaks(heatmaps: Tensor) -> tuple[Tensor, Tensor]:
    """Integer argmax of each (B, K, h, w) map: coords (B, K, 2) as x, y, and scores (B, K)."""
    width = heatmaps.shape[-1]
    scores, index = heatmaps.flatten(-2).max(-1)
    coords = torch.stack([index % width, torch.div(index, width, rounding_mode="floor")], -1)
    return coords.to(heatmaps.dtype), scores


def decode_heatmaps(heatmaps: Tensor, refine: str = "quarter") -> tuple[Tensor, Tensor]:
    """Sub-pixel peak of each (B, K, h, w) map: coords (B, K, 2) in heatmap pixels, scores (B, K).

    ``refine="quarter"``: the SimpleBaseline code's rule, argmax shifted a quarter pixel
    towards the higher neighbour on each axis (error at most 0.25 px on a clean peak).
    ``refine="taylor"``: one Newton step on the log heatmap at the argmax (the second-order
    Taylor expansion of DARK, Zhang et al. CVPR 2020, without its blur modulation): exact
    for a Gaussian peak. The score is the heatmap maximum in both cases.
    """
    if refine not in REFINEMENTS:
        raise ValueError(f"unknown refinement {refine!r}; choose from {REFINEMENTS}")
    coords, scores = heatmap_peaks(heatmaps)
    shift = quarter_shift if refine == "quarter" else taylor_shift
    return coords + shift(heatmaps, coords.unsqueeze(-2)).squeeze(-2), scores


def taylor_shift(heatmaps: Tensor, coords: Tensor) -> Tensor:
    """DARK's sub-pixel step at given integer peaks: (..., K, M, 2) shifts.

    One Newton step on the log heatmap at each of the M integer peaks per map (``coords``
    (..., K, M, 2), x, y), exact for a Gaussian peak. 0 at the border or where the peak is
    not a true local maximum (Hessian not negative definite); at most one pixel.
    """
    height, width = heatmaps.shape[-2:]
    log = heatmaps.flatten(-2).clamp_min(1e-10).log()
    x, y = coords[..., 0].long(), coords[..., 1].long()
    index = y * width + x

    def at(offset: int) -> Tensor:  # clamped at the ends; border peaks are masked below
        return log.gather(-1, (index + offset).clamp(0, height * width - 1))

    centre, right, left, down, up = at(0), at(1), at(-1), at(width), at(-width)
    gx, gy = 0.5 * (right - left), 0.5 * (down - up)
    dxx, dyy = right - 2 * centre + left, down - 2 * centre + up
    dxy = 0.25 * (at(width + 1) - at(width - 1) - at(-width + 1) + at(-width - 1))
    det = dxx * dyy - dxy * dxy
    # Refinement needs both neighbours on an axis, and a Newton step is only meaningful at
    # a true local maximum (negative definite Hessian).
    valid = (x > 0) & (x < width - 1) & (y > 0) & (y < height - 1) & (det > 0) & (dxx < 0)
    safe_det = torch.where(valid, det, torch.ones_like(det))
    ox = -(dyy * gx - dxy * gy) / safe_det
    oy = -(dxx * gy - dxy * gx) / safe_det
    # One step from the argmax cannot move past the neighbouring pixels on a real peak.
    return (torch.stack([ox, oy], -1) * valid.unsqueeze(-1)).clamp(-1.0, 1.0).to(heatmaps.dtype)


def quarter_shift(heatmaps: Tensor, coords: Tensor) -> Tensor:
    """The SimpleBaseline code's sub-pixel step at given integer peaks: (..., K, M, 2) shifts.

    ``heatmaps`` (..., K, h, w) and ``coords`` (..., K, M, 2), x, y of M integer peaks per
    map (several persons' joints in bottom-up maps, the argmax in top-down ones). Each
    shift is a quarter pixel towards the higher neighbour on each axis, 0 where the two
    neighbours are equal or the peak lies on that axis's border.
    """
    height, width = heatmaps.shape[-2:]
    flat = heatmaps.flatten(-2)
    x, y = coords[..., 0].long(), coords[..., 1].long()
    index = y * width + x

    def at(offset: int) -> Tensor:  # clamped at the ends; border peaks are masked below
        return flat.gather(-1, (index + offset).clamp(0, height * width - 1))

    inner_x = (x > 0) & (x < width - 1)
    inner_y = (y > 0) & (y < height - 1)
    dx = torch.sign(at(1) - at(-1)) * inner_x
    dy = torch.sign(at(width) - at(-width)) * inner_y
    return torch.stack([dx, dy], -1).to(heatmaps.dtype) * 0.25


def heatmap_to_crop(coords: Tensor, stride: int | float) -> Tensor:
    """Heatmap pixel coords -> input-crop pixel coords (targets put crop ``x`` at ``x / stride``)."""
    return coords * stride


def flip_back(heatmaps: Tensor, flip_index: Sequence[int] | np.ndarray | Tensor,
              shift: bool = True) -> Tensor:
    """Heatmaps of a mirrored image, mirrored back: flip the width and swap left/right maps.

    ``shift`` moves the result one pixel right, as the SimpleBaseline code does: the input's
    mirror axis ``(W - 1) / 2`` lies at ``(w - 1/s) / 2`` in a stride-``s`` map, not at the
    map's centre ``(w - 1) / 2``, so mirroring the map misplaces peaks by ``1 - 1/s`` pixels
    to the left; the one-pixel shift leaves ``1/s`` to the right.
    """
    index = torch.as_tensor(np.asarray(flip_index), dtype=torch.long, device=heatmaps.device)
    out = heatmaps.flip(-1).index_select(-3, index)
    return torch.cat([out[..., :1], out[..., :-1]], -1) if shift else out


def crop_to_image(coords: Tensor, affine: Tensor) -> Tensor:
    """(B, K, 2) input-crop pixel coords -> image coords through each sample's (B, 2, 3) affine.

    The result has the affine's dtype (float64 from the crop datasets) to keep precision.
    """
    affine = affine.to(coords.device)
    return coords.to(affine.dtype) @ affine[:, :, :2].transpose(1, 2) + affine[:, None, :, 2]


# A joint whose heatmap maximum is below this does not count towards the person score
# (the SimpleBaseline code's in_vis_thre).
KEYPOINT_SCORE_THR = 0.2


def person_score(box_score: np.ndarray, keypoint_scores: np.ndarray,
                 threshold: float = KEYPOINT_SCORE_THR) -> np.ndarray:
    """The SimpleBaseline code's rescoring of top-down poses: box score x the mean score of
    the joints found confidently (above ``threshold``); (N,) box scores, (N, K) joint scores."""
    confident = keypoint_scores > threshold
    joint_score = (keypoint_scores * confident).sum(-1) / np.maximum(confident.sum(-1), 1)
    return box_score * joint_score


def oks(kps_a: np.ndarray, kps_b: np.ndarray, area: np.ndarray | float, sigmas: np.ndarray,
        labelled: np.ndarray | None = None) -> np.ndarray:
    """Object keypoint similarity of every pose in ``kps_a`` (N, K, 3) with every pose in ``kps_b``
    (M, K, 3): an (N, M) matrix.

    OKS = mean over the labelled joints of ``a`` of ``exp(-d^2 / (2 * area * (2 sigma)^2))``
    (the COCO definition, ``area`` being the object scale s^2). ``area`` is (N,) for the
    areas of ``a`` (COCO: the GT area) or (N, M) for per-pair areas. ``labelled`` (N, K)
    defaults to ``kps_a[..., 2] > 0``; a pose of ``a`` with no labelled joint scores 0.
    """
    kps_a = np.asarray(kps_a, dtype=np.float64).reshape(-1, len(sigmas), 3)
    kps_b = np.asarray(kps_b, dtype=np.float64).reshape(-1, len(sigmas), 3)
    area = np.asarray(area, dtype=np.float64)
    if area.ndim < 2:
        area = area.reshape(-1, 1)  # one area per pose of a (or one for all)
    mask = kps_a[..., 2] > 0 if labelled is None else np.asarray(labelled, dtype=bool)
    d2 = ((kps_a[:, None, :, :2] - kps_b[None, :, :, :2]) ** 2).sum(-1)  # (N, M, K)
    variance = (2 * np.asarray(sigmas, dtype=np.float64)) ** 2
    e = d2 / (2 * variance * (area[..., None] + np.spacing(1)))
    count = mask.sum(-1)[:, None]
    total = (np.exp(-e) * mask[:, None, :]).sum(-1)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def pose_area(pose: Pose) -> float:
    """The scale used by OKS: ``pose.area``, else its box area, else its keypoint box area."""
    if pose.area is not None:
        return float(pose.area)
    box = pose.box if pose.box is not None else pose.keypoint_box()
    return float(box[2] * box[3])


def oks_nms(poses: Sequence[Pose], thr: float = 0.9, sigmas: np.ndarray | None = None) -> list[int]:
    """Greedy non-maximum suppression of poses by OKS: indices of the kept poses, best first.

    As in the SimpleBaseline code: poses are visited by descending ``score``; each kept pose
    suppresses the remaining ones whose OKS with it exceeds ``thr``, computed over all joints
    with the mean area of the pair. ``sigmas`` default to the COCO keypoint sigmas.
    """
    if not poses:
        return []
    sigmas = COCO17.sigmas if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    keypoints = np.stack([p.keypoints for p in poses])
    if keypoints.shape[1] != len(sigmas):
        raise ValueError(f"poses have {keypoints.shape[1]} keypoints but {len(sigmas)} sigmas")
    areas = np.array([pose_area(p) for p in poses])
    similarity = oks(keypoints, keypoints, 0.5 * (areas[:, None] + areas[None, :]), sigmas,
                     labelled=np.ones(keypoints.shape[:2], dtype=bool))
    order = np.argsort(-np.array([p.score for p in poses]), kind="stable")
    keep: list[int] = []
    suppressed = np.zeros(len(poses), dtype=bool)
    for i in order:
        if suppressed[i]:
            continue
        keep.append(int(i))
        suppressed |= similarity[i] > thr
    return keep


def heatmap_local_peaks(heatmaps: Tensor, threshold: float, max_peaks: int,
                        window: int = 3) -> tuple[Tensor, Tensor, Tensor]:
    """Every local maximum above ``threshold`` of each (B, K, h, w) map, strongest first.

    For bottom-up maps that hold the joints of several persons (OpenPose, STM-skeletons),
    where one argmax per map is not enough. A pixel is a peak when it equals the maximum of
    its ``window`` x ``window`` neighbourhood (so every pixel of a flat top is one) and
    exceeds ``threshold``. Returns coords (B, K, M, 2) as x, y in heatmap pixels, scores
    (B, K, M) and valid (B, K, M) with M = min(max_peaks, h * w); past the last peak of a
    map the slots are invalid with coords and score 0. Peaks beyond ``max_peaks`` are the
    weakest ones and are left out.
    """
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be an odd positive size, got {window}")
    if max_peaks < 1:
        raise ValueError(f"max_peaks must be positive, got {max_peaks}")
    height, width = heatmaps.shape[-2:]
    neighbourhood_max = torch.nn.functional.max_pool2d(heatmaps, window, stride=1,
                                                       padding=window // 2)
    is_peak = (heatmaps == neighbourhood_max) & (heatmaps > threshold)
    candidates = torch.where(is_peak, heatmaps, torch.full_like(heatmaps, float("-inf")))
    scores, index = candidates.flatten(-2).topk(min(max_peaks, height * width), dim=-1)
    valid = is_peak.flatten(-2).gather(-1, index)
    coords = torch.stack([index % width, torch.div(index, width, rounding_mode="floor")], -1)
    coords = coords.to(heatmaps.dtype) * valid.unsqueeze(-1)
    return coords, torch.where(valid, scores, torch.zeros_like(scores)), valid
