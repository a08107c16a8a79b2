"""The LightTrack-style greedy tracker: each new pose joins the most similar recent track.

Ning and Huang, "LightTrack: A Generic Framework for Online Top-Down Human Pose Tracking"
(CVPR 2020), the baseline of the pose-temporal-memory paper: per frame, the poses are
matched to the tracks seen in the last ``max_age`` frames by box IoU or by OKS, greedily
(the most similar pair first, each pose and track used once); a pose whose best similarity
is below ``threshold`` starts a new track. Track ids are the suite's ``Pose.track_id``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from vidpose.decode import oks, pose_area
from vidpose.pose import Frame, Pose

SIMILARITIES = ("iou", "oks")


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) intersection over union of x, y, w, h boxes (N, 4) and (M, 4)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, :2] + a[:, None, 2:], b[None, :, :2] + b[None, :, 2:])
    inter = np.clip(hi - lo, 0, None).prod(-1)
    union = a[:, None, 2:].prod(-1) + b[None, :, 2:].prod(-1) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def greedy_pairs(similarity: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """(row, col) pairs, most similar first, each row and column once, similarity >= threshold."""
    order = np.argsort(-similarity, axis=None, kind="stable")
    rows, cols = np.unravel_index(order, similarity.shape)
    used_rows, used_cols, pairs = set(), set(), []
    for r, c in zip(rows.tolist(), cols.tolist()):
        if similarity[r, c] < threshold:
            break
        if r not in used_rows and c not in used_cols:
            used_rows.add(r)
            used_cols.add(c)
            pairs.append((r, c))
    return pairs


def _box(pose: Pose) -> np.ndarray:
    return pose.box if pose.box is not None else pose.keypoint_box()


@dataclass
class GreedyTracker:
    """Online tracker state: call ``update`` with each frame's poses in order."""

    similarity: str = "iou"
    threshold: float = 0.3
    max_age: int = 1  # a track can be continued this many frames after it was last seen
    sigmas: np.ndarray | None = None  # OKS sigmas (the poses' schema); needed for "oks"
    _tracks: dict[int, tuple[int, Pose]] = field(default_factory=dict, repr=False)  # id -> (frame, pose)
    _frame: int = field(default=0, repr=False)
    _next_id: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if self.similarity not in SIMILARITIES:
            raise ValueError(f"similarity {self.similarity!r} is not one of {SIMILARITIES}")
        if self.similarity == "oks" and self.sigmas is None:
            raise ValueError("OKS tracking needs the keypoint sigmas of the poses' schema")
        if self.max_age < 1:
            raise ValueError(f"max_age must be >= 1, got {self.max_age}")

    def _scores(self, poses: list[Pose], tracks: list[Pose]) -> np.ndarray:
        if self.similarity == "iou":
            return box_iou(np.stack([_box(p) for p in poses]), np.stack([_box(t) for t in tracks]))
        # OKS of each new pose against each track's last pose, at the track pose's scale.
        area = np.array([pose_area(t) for t in tracks])
        return oks(np.stack([t.keypoints for t in tracks]), np.stack([p.keypoints for p in poses]),
                   area, self.sigmas).T

    def update(self, poses: list[Pose]) -> list[Pose]:
        """The frame's poses with track ids (copies; the inputs are left as they are)."""
        alive = {tid: pose for tid, (seen, pose) in self._tracks.items()
                 if self._frame - seen <= self.max_age}
        ids = list(alive)
        assigned = [-1] * len(poses)
        if poses and ids:
            for p, t in greedy_pairs(self._scores(poses, [alive[i] for i in ids]), self.threshold):
                assigned[p] = ids[t]
        out = []
        for pose, tid in zip(poses, assigned):
            if tid < 0:
                tid, self._next_id = self._next_id, self._next_id + 1
            tracked = dataclasses.replace(pose, track_id=tid, extra=dict(pose.extra))
            self._tracks[tid] = (self._frame, tracked)
            out.append(tracked)
        self._frame += 1
        return out


def track_frames(frames: list[Frame], tracker: GreedyTracker) -> list[Frame]:
    """A video's frames (in order) with every pose given a track id by ``tracker``."""
    return [dataclasses.replace(frame, poses=tracker.update(frame.poses)) for frame in frames]
