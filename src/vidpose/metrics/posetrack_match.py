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

from vidpose.metrics.posetrack_inputs import NUM_JOINTS, EvalVideo

PCKH_THRESHOLD = 0.5


@dataclass
class FrameMatch:
    """The outcome for one frame."""

    true_positive: np.ndarray  # (P, 15) bool, for AP
    distance: np.ndarray       # (P, G, 15) normalised distance of candidate pairs, NaN otherwise
    empty: bool                # no GT or no predicted person (poseval's special MOT case)


def _padded(arrays: list[np.ndarray], size: int, fill: float | bool) -> np.ndarray:
    """(T, size, ...) stack of per-frame (n_t, ...) arrays padded with ``fill``."""
    out = np.full((len(arrays), size) + arrays[0].shape[1:], fill, dtype=arrays[0].dtype)
    for t, a in enumerate(arrays):
        out[t, :len(a)] = a
    return out


def match_video(video: EvalVideo, threshold: float = PCKH_THRESHOLD) -> list[FrameMatch]:
    """The outcome of every frame of a video, computed for all frames at once (frames padded
    to the most persons; padding has no joints, so it is never close and never chosen)."""
    frames = video.frames
    if not frames:
        return []
    num_pred = max(max(len(f.pr_track) for f in frames), 1)
    num_gt = max(max(len(f.gt_track) for f in frames), 1)
    pr_xy = _padded([f.pr_xy for f in frames], num_pred, 0.0)
    pr_has = _padded([f.pr_has for f in frames], num_pred, False)
    gt_xy = _padded([f.gt_xy for f in frames], num_gt, 0.0)
    gt_has = _padded([f.gt_has for f in frames], num_gt, False)
    head = _padded([f.head_size for f in frames], num_gt, 1.0)
    delta = pr_xy[:, :, None] - gt_xy[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        distance = np.sqrt((delta ** 2).sum(-1)) / head[:, None, :, None]
        distance = np.where(pr_has[:, :, None] & gt_has[:, None], distance, np.inf)
        close = distance <= threshold
    annotated = gt_has.sum(-1)  # (T, G)
    pck = close.sum(-1).astype(np.float64)  # (T, P, G); padding rows and columns stay 0
    pck = np.where(annotated[:, None] > 0, pck / np.maximum(annotated, 1)[:, None], pck)
    # Padding columns come after the real ones and hold 0, so argmax never prefers them.
    best_gt = pck.argmax(2)
    kept = np.zeros_like(pck)
    t, p = np.indices(best_gt.shape)
    kept[t, p, best_gt] = pck[t, p, best_gt]
    pred_of_gt = kept.argmax(1)  # (T, G)
    assigned = kept.max(1) > 0
    gt_of_pred = np.full(best_gt.shape, -1)
    t_a, g_a = np.nonzero(assigned)
    gt_of_pred[t_a, pred_of_gt[t_a, g_a]] = g_a
    true_positive = ((gt_of_pred[..., None] >= 0)
                     & close[t, p, np.maximum(gt_of_pred, 0)] & pr_has)
    candidate = np.where(close, distance, np.nan)
    matches = []
    for i, frame in enumerate(frames):
        n_p, n_g = len(frame.pr_track), len(frame.gt_track)
        if n_p == 0 or n_g == 0:
            matches.append(FrameMatch(np.zeros((n_p, NUM_JOINTS), bool),
                                      np.full((n_p, n_g, NUM_JOINTS), np.nan), True))
        else:
            matches.append(FrameMatch(true_positive[i, :n_p], candidate[i, :n_p, :n_g], False))
    return matches
