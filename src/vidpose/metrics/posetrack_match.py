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

from vidpose.metrics.posetrack_inputs import EvalVideo, ragged_arange

PCKH_THRESHOLD = 0.5


@dataclass
class VideoMatch:
    """The outcome for every frame of a video."""

    true_positive: np.ndarray  # (P, 15) bool per predicted person, for AP
    # Candidate pairs for MOT (within the threshold), frame by frame: the labelled frame,
    # the predicted and GT person (indices into the video's arrays), the joint, and the
    # normalised distance.
    frame: np.ndarray
    pred: np.ndarray
    gt: np.ndarray
    joint: np.ndarray
    distance: np.ndarray
    empty: np.ndarray          # (T,) bool: no GT or no predicted person (poseval's MOT case)


def _first_max(values: np.ndarray, group: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per group (rows taken in ``order``, groups contiguous there): the first row holding
    the group's maximum, and that maximum. Returns (rows, maxima), one per group."""
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, group[order][1:] != group[order][:-1]])
    maxima = np.maximum.reduceat(ordered, starts)
    size = np.diff(np.r_[starts, len(order)])
    at_max = np.flatnonzero(ordered == np.repeat(maxima, size))
    owner = np.searchsorted(starts, at_max, side="right") - 1
    first = at_max[np.r_[True, owner[1:] != owner[:-1]]]
    return order[first], maxima


def match_video(video: EvalVideo, threshold: float = PCKH_THRESHOLD) -> VideoMatch:
    """The outcome of every frame of a video, computed for all frames at once over every
    (predicted person, GT person) pair of the same frame."""
    gt_start, pr_start = video.bounds()
    gt_count, pr_count = np.diff(gt_start), np.diff(pr_start)
    empty = (pr_count == 0) | (gt_count == 0)
    # Every pair of a frame, ordered by predicted person, then GT person (frame order).
    per_pred = gt_count[video.pr_frame]
    pair_pred = np.repeat(np.arange(len(video.pr_frame)), per_pred)
    pair_gt = np.repeat(gt_start[video.pr_frame], per_pred) + ragged_arange(per_pred)
    both = video.pr_has[pair_pred] & video.gt_has[pair_gt]  # (pairs, 15)
    delta = video.pr_xy[pair_pred] - video.gt_xy[pair_gt]
    with np.errstate(divide="ignore", invalid="ignore"):
        distance = np.sqrt((delta ** 2).sum(-1)) / video.head_size[pair_gt, None]
    close = both & (distance <= threshold)
    true_positive = np.zeros(video.pr_has.shape, bool)
    if len(pair_pred):
        annotated = video.gt_has.sum(1)[pair_gt]
        hits = close.sum(1).astype(np.float64)
        pck = np.where(annotated > 0, hits / np.maximum(annotated, 1), hits)
        # Each prediction keeps its best GT person only (the first on ties) ...
        best, _ = _first_max(pck, pair_pred, np.arange(len(pair_pred)))
        kept = np.zeros_like(pck)
        kept[best] = pck[best]
        # ... and each GT person takes the prediction with the highest kept score (the
        # first on ties), if above zero.
        by_gt = np.lexsort((pair_pred, pair_gt))
        chosen, score = _first_max(kept, pair_gt, by_gt)
        chosen = chosen[score > 0]
        true_positive[pair_pred[chosen]] = close[chosen]
    # Candidate pairs for MOT, frame by frame (pairs are already in frame order).
    pair, joint = np.nonzero(close)
    return VideoMatch(true_positive, video.pr_frame[pair_pred[pair]], pair_pred[pair],
                      pair_gt[pair], joint, distance[pair, joint], empty)
