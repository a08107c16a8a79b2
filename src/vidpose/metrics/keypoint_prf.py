"""Keypoint precision, recall and F1 with the STM-skeletons 10-pixel rule (the paper's Table 3).

The paper: "We match every key-point with its closest corresponding prediction, and
consider it as a True Positive if the prediction is within a radius of 10 pixels from the
ground truth." Per image and joint type, every labelled ground-truth keypoint (v > 0) is
matched to its closest predicted peak of the same joint type:

* recall = ground-truth keypoints whose closest peak lies within ``threshold_px`` / all
  labelled ground-truth keypoints;
* precision = predicted peaks that are the closest match of at least one ground-truth
  keypoint within ``threshold_px`` / all predicted peaks. The paper does not say how peaks
  are counted; this reading makes a peak true at most once (two ground-truth keypoints
  sharing one peak give one true peak) and every peak nobody matched a false positive;
* F1 = 2PR / (P + R).

``per_joint_*`` values use the counts of one joint type, the totals pool the counts of
all (NaN where a count is empty). Peaks come as a padded (B, J, M, 3) tensor of x, y and a
third value that is positive for a real peak (a score) and 0 for padding;
:func:`peaks_from_maps` makes it from confidence maps with :mod:`vidpose.decode`.

Samples (images) are keyed by an int64 id and counted once (``metrics/samples.py``).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from vidpose.decode import heatmap_local_peaks, heatmap_to_crop
from vidpose.metrics.samples import SampleMetric, check_ids

# Rows of the per-sample count tensor (B, 4, J) made by keypoint_match_counts.
GT_MATCHED, GT_TOTAL, PEAKS_MATCHED, PEAKS_TOTAL = range(4)


def peaks_from_maps(maps: Tensor, threshold: float, max_peaks: int = 64,
                    stride: float = 1.0) -> Tensor:
    """(B, J, h, w) confidence maps -> (B, J, M, 3) peaks as x, y, score in image pixels.

    Peaks are the local maxima above ``threshold`` (``decode.heatmap_local_peaks``), the
    strongest ``max_peaks`` per map; padding slots are (0, 0, 0). ``stride`` maps
    heatmap pixels to image pixels (1 for the full-resolution STM-skeletons maps). The
    threshold must be >= 0 so that every real peak has a positive score.
    """
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0 so that peak scores are positive, "
                         f"got {threshold}")
    coords, scores, _ = heatmap_local_peaks(maps, threshold, max_peaks)
    return torch.cat([heatmap_to_crop(coords, stride), scores.unsqueeze(-1)], -1)


def check_keypoint_inputs(peaks: Tensor, gt: Tensor, num_joints: int | None = None) -> None:
    """peaks (B, J, M, 3) and gt (B, P, J, 3) with one B and J (``num_joints`` when given), and
    finite x, y wherever the third column counts the point."""
    if peaks.ndim != 4 or gt.ndim != 4 or peaks.shape[3] != 3 or gt.shape[3] != 3 \
            or peaks.shape[0] != gt.shape[0] or peaks.shape[1] != gt.shape[2] \
            or (num_joints is not None and peaks.shape[1] != num_joints):
        joints = "J" if num_joints is None else num_joints
        raise ValueError(f"expected peaks (B, {joints}, M, 3) and gt (B, P, {joints}, 3), "
                         f"got {tuple(peaks.shape)} and {tuple(gt.shape)}")
    for name, points in (("peaks", peaks), ("gt", gt)):
        if not torch.isfinite(points[..., :2][points[..., 2] > 0]).all():
            raise ValueError(f"{name} has non-finite x, y where its third column is > 0")


def keypoint_match_counts(peaks: Tensor, gt: Tensor, threshold_px: float = 10.0) -> Tensor:
    """Per image and joint type, the counts of the closest-peak rule: an int64 (B, 4, J) tensor.

    peaks (B, J, M, 3): x, y, score (> 0 for a peak, 0 for padding); gt (B, P, J, 3): x, y,
    visibility (> 0 labelled), padded persons all 0. Rows are GT_MATCHED, GT_TOTAL,
    PEAKS_MATCHED and PEAKS_TOTAL (see the module docstring for the rule). Inputs as
    :func:`check_keypoint_inputs` accepts them.
    """
    if peaks.shape[2] == 0:  # no peak slots at all: one padding slot keeps min() defined
        peaks = torch.nn.functional.pad(peaks, (0, 0, 0, 1))
    peak_valid = peaks[..., 2] > 0                                   # (B, J, M)
    gt_valid = (gt[..., 2] > 0).transpose(1, 2)                      # (B, J, P)
    gt_xy = gt[..., :2].transpose(1, 2).to(torch.float64)            # (B, J, P, 2)
    peak_xy = peaks[..., :2].to(torch.float64)                       # (B, J, M, 2)
    # The matrix-product shortcut of cdist loses digits; the 10 px boundary needs them.
    distance = torch.cdist(gt_xy.flatten(0, 1), peak_xy.flatten(0, 1),
                           compute_mode="donot_use_mm_for_euclid_dist").view(
        *gt_xy.shape[:3], peak_xy.shape[2])                          # (B, J, P, M)
    distance = distance.masked_fill(~peak_valid.unsqueeze(2), float("inf"))
    closest_distance, closest = distance.min(-1)                     # (B, J, P)
    gt_hit = gt_valid & (closest_distance <= threshold_px)
    # A peak is true when it is the closest match of at least one ground-truth keypoint.
    hits_per_peak = torch.zeros(peak_valid.shape, dtype=torch.int64, device=peaks.device)
    hits_per_peak.scatter_add_(-1, closest, gt_hit.to(torch.int64))
    return torch.stack([gt_hit.sum(-1), gt_valid.sum(-1), (hits_per_peak > 0).sum(-1),
                        peak_valid.sum(-1)], 1)


def ratio_percent(hits: Tensor, total: Tensor) -> Tensor:
    """100 * hits / total in float64, NaN where total is 0."""
    hits, total = hits.double(), total.double()
    return torch.where(total > 0, 100.0 * hits / total.clamp_min(1), float("nan"))


def f1_score(precision: Tensor, recall: Tensor) -> Tensor:
    """2PR / (P + R); 0 where P or R is 0 (whatever the other), NaN where one is undefined
    (NaN) and the other positive."""
    return torch.where((precision == 0) | (recall == 0), torch.zeros_like(precision),
                       2 * precision * recall / (precision + recall))


def prf_from_counts(true_pred: Tensor, pred: Tensor, true_gt: Tensor, gt: Tensor,
                    per: str) -> dict[str, Any]:
    """Pooled (floats) and ``per``-channel ((C,) tensors) precision, recall and F1 in percent
    from (C,) counts of true and all predictions and of found and all ground truth."""
    precision, recall = ratio_percent(true_pred, pred), ratio_percent(true_gt, gt)
    total_p, total_r = ratio_percent(true_pred.sum(), pred.sum()), ratio_percent(true_gt.sum(), gt.sum())
    return {"precision": float(total_p), "recall": float(total_r),
            "f1": float(f1_score(total_p, total_r)),
            f"{per}_precision": precision.float(), f"{per}_recall": recall.float(),
            f"{per}_f1": f1_score(precision, recall).float()}


class KeypointPRF(SampleMetric):
    """Keypoint precision/recall/F1 of predicted peaks within ``threshold_px`` of the ground truth.

    ``annotated_mask`` (J,) leaves out joint types a dataset never annotates (PoseTrack18
    ears, ``Schema.annotated_mask``): their peaks would otherwise all count as false.
    ``compute`` gives percentages: ``precision``, ``recall``, ``f1`` (pooled, floats) and
    ``per_joint_precision``, ``per_joint_recall``, ``per_joint_f1`` ((J,) tensors).
    """

    def __init__(self, num_joints: int, threshold_px: float = 10.0,
                 annotated_mask: Sequence[bool] | np.ndarray | Tensor | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_joints = int(num_joints)
        self.threshold_px = float(threshold_px)
        mask = (torch.ones(num_joints, dtype=torch.bool) if annotated_mask is None
                else torch.as_tensor(np.asarray(annotated_mask), dtype=torch.bool))
        if mask.shape != (num_joints,):
            raise ValueError(f"annotated_mask must have shape ({num_joints},), "
                             f"got {tuple(mask.shape)}")
        self.register_buffer("annotated_mask", mask, persistent=False)
        self.add_state("counts", default=[], dist_reduce_fx="cat")

    def update(self, peaks: Tensor, gt: Tensor, ids: Tensor) -> None:
        """peaks (B, J, M, 3) x, y, score (0 = padding); gt (B, P, J, 3) x, y, visibility;
        ids (B,) int64, one per image."""
        check_keypoint_inputs(peaks, gt, self.num_joints)
        check_ids(ids, gt.shape[0])
        counts = keypoint_match_counts(peaks, gt, self.threshold_px)
        self.ids.append(ids)
        self.counts.append(counts * self.annotated_mask.to(counts.device))

    def compute(self) -> dict[str, Any]:
        """Pooled and per-joint precision, recall and F1 in percent; NaN where nothing counted."""
        rows = self.first_rows("counts")
        counts = rows[0].sum(0) if rows else torch.zeros(4, self.num_joints, dtype=torch.int64)
        return prf_from_counts(counts[PEAKS_MATCHED], counts[PEAKS_TOTAL],
                               counts[GT_MATCHED], counts[GT_TOTAL], per="per_joint")
