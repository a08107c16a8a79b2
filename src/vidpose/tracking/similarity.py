"""The measures association cues are built on: box IoU and OKS of new poses against tracks
(below every cue module: the layers in ``cues.py``'s docstring)."""
from __future__ import annotations

import numpy as np

from vidpose.decode import oks, pose_area
from vidpose.pose import Pose


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) intersection over union of x, y, w, h boxes (N, 4) and (M, 4)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, :2] + a[:, None, 2:], b[None, :, :2] + b[None, :, 2:])
    inter = np.clip(hi - lo, 0, None).prod(-1)
    union = a[:, None, 2:].prod(-1) + b[None, :, 2:].prod(-1) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def tracking_box(pose: Pose) -> np.ndarray:
    """The pose's x, y, w, h box, else the box of its present keypoints (zeros when none)."""
    return pose.box if pose.box is not None else pose.keypoint_box()


def track_oks(poses: list[Pose], tracks: list[Pose], sigmas: np.ndarray) -> np.ndarray:
    """(N, M) OKS of each new pose against each track pose, at the track pose's scale and
    over the track pose's labelled joints (the track plays the ground truth's part)."""
    area = np.array([pose_area(t) for t in tracks])
    return oks(np.stack([t.keypoints for t in tracks]), np.stack([p.keypoints for p in poses]),
               area, sigmas).T
