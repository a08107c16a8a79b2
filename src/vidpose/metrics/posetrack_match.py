"""poseval's per-frame assignment of predicted to ground-truth persons, vectorised.

For every predicted and GT person the PCKh score is the share of the GT person's annotated
joints that the prediction places within 0.5 head sizes. Each prediction keeps only its best
GT person (first on ties); each GT person then takes the prediction with the highest kept
score, if above zero. A predicted joint is a true positive for AP when its person is so
assigned and the joint is within the threshold of the same GT joint; all other predicted
joints are false positives. For MOTA, every GT joint / predicted joint pair within the
threshold is a candidate match at its normalised distance, whatever the person assignment.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidpose.metrics.posetrack_inputs import NUM_JOINTS, EvalFrame

PCKH_THRESHOLD = 0.5


@dataclass
class FrameMatch:
    """The outcome for one frame."""

    true_positive: np.ndarray  # (P, 15) bool, for AP
    distance: np.ndarray       # (P, G, 15) normalised distance of candidate pairs, NaN otherwise
    empty: bool                # no GT or no predicted person (poseval's special MOT case)


def normalised_distances(frame: EvalFrame) -> np.ndarray:
    """(P, G, 15) joint distances over the GT head size; inf where either joint is missing."""
    delta = frame.pr_xy[:, None] - frame.gt_xy[None]
    with np.errstate(divide="ignore", invalid="ignore"):
        distance = np.sqrt((delta ** 2).sum(-1)) / frame.head_size[None, :, None]
    present = frame.pr_has[:, None, :] & frame.gt_has[None, :, :]
    return np.where(present, distance, np.inf)


def match_frame(frame: EvalFrame, threshold: float = PCKH_THRESHOLD) -> FrameMatch:
    num_pred, num_gt = len(frame.pr_track), len(frame.gt_track)
    if num_pred == 0 or num_gt == 0:
        return FrameMatch(np.zeros((num_pred, NUM_JOINTS), bool),
                          np.full((num_pred, num_gt, NUM_JOINTS), np.nan), True)
    distance = normalised_distances(frame)
    with np.errstate(invalid="ignore"):
        close = distance <= threshold  # NaN (zero head size) is never close
    annotated = frame.gt_has.sum(1)
    pck = close.sum(2).astype(np.float64)
    pck = np.where(annotated[None] > 0, pck / np.maximum(annotated, 1)[None], pck)
    rows = np.arange(num_pred)
    best_gt = pck.argmax(1)
    kept = np.zeros_like(pck)
    kept[rows, best_gt] = pck[rows, best_gt]
    pred_of_gt = kept.argmax(0)
    assigned = kept.max(0) > 0
    gt_of_pred = np.full(num_pred, -1)
    gt_of_pred[pred_of_gt[assigned]] = np.flatnonzero(assigned)
    true_positive = (gt_of_pred[:, None] >= 0) & close[rows, np.maximum(gt_of_pred, 0)] & frame.pr_has
    return FrameMatch(true_positive, np.where(close, distance, np.nan), False)
