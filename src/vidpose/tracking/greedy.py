"""The generalised greedy tracker: each new pose joins the most similar live track under a cue.

Ning and Huang, "LightTrack: A Generic Framework for Online Top-Down Human Pose Tracking"
(CVPR 2020), the baseline of the pose-temporal-memory paper, and the tracking scheme of the
keypoint-correspondence paper (Sec. 5.2, with the baselines of its Table 2): per frame, the
poses are matched to the tracks seen in the last ``max_age`` frames greedily (the most
similar pair first, each pose and track used once); a pose whose best similarity is below
``threshold`` starts a new track. Track ids are the suite's ``Pose.track_id``.

What "similar" means is a *cue* (``cues.py``); this module is the tracker only.

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

import numpy as np

from vidpose.callbacks.matching import greedy_pairs
from vidpose.pose import Pose
from vidpose.tracking.cues import Cue, make_cue


@dataclass
class GreedyTracker:
    """Online tracker state: call ``update`` with each frame's poses (and image) in order.

    ``similarity`` is a cue or a name in ``cues.CUES`` built with ``sigmas`` and no options
    ("iou", "oks"; "oks" needs ``sigmas``); cues with options are built with ``make_cue``.
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
            try:
                self.cue = make_cue(self.similarity, self.sigmas)
            except ValueError as error:  # say which setting it was
                raise ValueError(f"similarity {self.similarity!r}: {error}") from None
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
