"""The generalised greedy tracker: each new pose joins the most similar live track under a cue.

Ning and Huang, "LightTrack: A Generic Framework for Online Top-Down Human Pose Tracking"
(CVPR 2020), the baseline of the pose-temporal-memory paper, and the tracking scheme of the
keypoint-correspondence paper (Sec. 5.2, with the baselines of its Table 2): per frame, the
poses are matched to the tracks seen in the last ``max_age`` frames greedily (the most
similar pair first, each pose and track used once); a pose whose best similarity is below
``threshold`` starts a new track. Track ids are the suite's ``Pose.track_id``.

What "similar" means is a *cue* (``Cue``): box IoU, OKS (Xiao et al.), OKS after warping the
tracks by optical flow (``flow.FlowCue``), appearance (``reid.ReIDCue``) or keypoint
correspondences (Eq. 6, the correspondence method). A cue sees every frame's image before
the association (``begin``) and the tracked poses after it (``end``), so it can keep state.

Duplicate removal (the correspondence paper's Table 7 names it without details; this is our
reading of it): detectors give a person two boxes (upper body and full body, App. B), the
second pose then matches no track and would start a spurious one. With
``remove_duplicates``, a pose left unmatched by the greedy pass whose similarity to a track
that *was* matched in this frame reaches ``threshold`` is taken for a duplicate detection of
that person and dropped from the frame's output instead of starting a new track.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from vidpose.callbacks.matching import greedy_pairs
from vidpose.decode import oks, pose_area
from vidpose.pose import Frame, Pose

SIMILARITIES = ("iou", "oks")  # the cues a GreedyTracker builds from a bare name
# The rows of the correspondence paper's Table 2 (tracking baselines) plus box IoU.
TRACKER_CUES = ("oks", "flow", "reid", "correspondence", "iou")


@runtime_checkable
class Cue(Protocol):
    """How a greedy tracker scores new poses against live tracks, frame by frame."""

    def begin(self, image: np.ndarray | None) -> None:
        """A new frame arrives (RGB uint8, image coordinates; None when there is no image)."""

    def similarity(self, poses: list[Pose], tracks: dict[int, Pose]) -> np.ndarray:
        """(N, M) similarity of the frame's poses to the tracks' last poses, tracks in dict
        order; higher = more alike. Called with at least one pose and one track."""

    def end(self, tracked: list[Pose]) -> None:
        """The frame's poses with their final track ids (duplicates removed)."""


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


class IoUCue:
    """Box IoU of the new poses with the tracks' last boxes (keypoint boxes when no box)."""

    def begin(self, image: np.ndarray | None) -> None:
        """Stateless: the image is not needed."""

    def similarity(self, poses: list[Pose], tracks: dict[int, Pose]) -> np.ndarray:
        return box_iou(np.stack([tracking_box(p) for p in poses]),
                       np.stack([tracking_box(t) for t in tracks.values()]))

    def end(self, tracked: list[Pose]) -> None:
        """Stateless: the tracker keeps the last poses."""


class OKSCue:
    """OKS of the new poses with the tracks' last poses, motion not taken into account
    (Xiao et al.; the correspondence paper's Table 2 row "OKS")."""

    def __init__(self, sigmas: np.ndarray | None) -> None:
        if sigmas is None:
            raise ValueError("OKS tracking needs the keypoint sigmas of the poses' schema")
        self.sigmas = np.asarray(sigmas, dtype=np.float64)

    def begin(self, image: np.ndarray | None) -> None:
        """Stateless: the image is not needed."""

    def similarity(self, poses: list[Pose], tracks: dict[int, Pose]) -> np.ndarray:
        return track_oks(poses, list(tracks.values()), self.sigmas)

    def end(self, tracked: list[Pose]) -> None:
        """Stateless: the tracker keeps the last poses."""


def make_cue(name: str, sigmas: np.ndarray | None = None, **options: Any) -> Cue:
    """The cue called ``name`` (a row of ``TRACKER_CUES``); ``options`` go to its constructor
    (``FlowCue``'s ``scale``, ``ReIDCue``'s ``bins`` and ``momentum``, ...)."""
    # Imported here, not at the top: flow.py and reid.py import this module's helpers.
    from vidpose.tracking.flow import FlowCue
    from vidpose.tracking.reid import ReIDCue

    if name == "iou":
        return IoUCue(**options)
    if name == "oks":
        return OKSCue(sigmas, **options)
    if name == "flow":
        return FlowCue(sigmas, **options)
    if name == "reid":
        return ReIDCue(**options)
    raise ValueError(f"tracking cue {name!r} is not one of {['iou', 'oks', 'flow', 'reid']}")


@dataclass
class GreedyTracker:
    """Online tracker state: call ``update`` with each frame's poses (and image) in order.

    ``similarity`` is a cue or the name of a stateless one ("iou", "oks"; "oks" needs
    ``sigmas``); cues with options are built with ``make_cue``.
    """

    similarity: str | Cue = "iou"
    threshold: float = 0.3
    max_age: int = 1  # a track can be continued this many frames after it was last seen
    sigmas: np.ndarray | None = None  # OKS sigmas (the poses' schema); needed for "oks"
    remove_duplicates: bool = False  # drop unmatched poses that duplicate a matched track
    cue: Cue = field(init=False, repr=False)
    _tracks: dict[int, tuple[int, Pose]] = field(default_factory=dict, repr=False)  # id -> (frame, pose)
    _frame: int = field(default=0, repr=False)
    _next_id: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.similarity, str):
            if self.similarity not in SIMILARITIES:
                raise ValueError(f"similarity {self.similarity!r} is not one of {SIMILARITIES} "
                                 "(other cues: make_cue)")
            self.cue = make_cue(self.similarity, self.sigmas)
        elif isinstance(self.similarity, Cue):
            self.cue = self.similarity
        else:
            raise ValueError("similarity must be a name or a Cue, got "
                             f"{type(self.similarity).__name__}")
        if self.max_age < 1:
            raise ValueError(f"max_age must be >= 1, got {self.max_age}")

    def _scores(self, poses: list[Pose], alive: dict[int, Pose]) -> np.ndarray:
        if not poses or not alive:
            return np.zeros((len(poses), len(alive)))
        scores = np.asarray(self.cue.similarity(poses, alive), dtype=np.float64)
        if scores.shape != (len(poses), len(alive)):
            raise ValueError(f"{type(self.cue).__name__}.similarity gave shape {scores.shape} for "
                             f"{len(poses)} poses and {len(alive)} tracks")
        return scores

    def update(self, poses: list[Pose], image: np.ndarray | None = None) -> list[Pose]:
        """The frame's poses with track ids (copies; the inputs are left as they are), less
        the duplicates when ``remove_duplicates``. ``image`` is handed to the cue."""
        self.cue.begin(image)
        # Tracks older than max_age can never be continued again: forget them.
        self._tracks = {tid: seen_pose for tid, seen_pose in self._tracks.items()
                        if self._frame - seen_pose[0] <= self.max_age}
        alive = {tid: pose for tid, (_, pose) in self._tracks.items()}
        ids = list(alive)
        scores = self._scores(poses, alive)
        assigned = [-1] * len(poses)
        for p, t in greedy_pairs(scores, self.threshold):
            assigned[p] = ids[t]
        matched = np.array([tid in assigned for tid in ids], dtype=bool)
        out = []
        for p, (pose, tid) in enumerate(zip(poses, assigned)):
            if tid < 0 and self.remove_duplicates and (scores[p, matched] >= self.threshold).any():
                continue  # a second detection of a person matched in this frame
            if tid < 0:
                tid, self._next_id = self._next_id, self._next_id + 1
            tracked = dataclasses.replace(pose, track_id=tid, extra=dict(pose.extra))
            self._tracks[tid] = (self._frame, tracked)
            out.append(tracked)
        self.cue.end(out)
        self._frame += 1
        return out


def track_frames(frames: list[Frame], tracker: GreedyTracker) -> list[Frame]:
    """A video's frames (in order) with every pose given a track id by ``tracker``."""
    return [dataclasses.replace(frame, poses=tracker.update(frame.poses)) for frame in frames]
