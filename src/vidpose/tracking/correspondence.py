"""Correspondence tracking (paper Sec. 5.2, Eq. 6): poses join the track whose joints the
keypoint correspondence network finds at their joints.

``CorrespondenceMemory`` keeps, for every live track, the frame it was last seen in (as the
network prepared it) and its pose there, and propagates those poses into the current frame
once per frame; recovery of missed detections (``tracking/recovery.py``) and the similarity
below read the same maps.

Eq. 6: the similarity of a pose P of frame t to a track T is

    S(P, T) = 1 / |J_P| * sum over P's detected joints j of  A^T_j(x^P_j) [A^T_j(x^P_j) > tau]

where A^T_j is the (refined) affinity map of T's joint j propagated from T's last frame to
frame t, x^P_j the location of P's joint j, J_P the detected joints of P (score > 0 after the
joint threshold) and tau the affinity threshold (paper Table 6 sweeps 0.1-0.5).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidpose.pose import Pose
from vidpose.tracking.affinity import Affinities, PreparedFrame, Propagator


@dataclass
class _Seen:
    frame: PreparedFrame
    pose: Pose
    step: int  # the frame counter when the track was last seen


class CorrespondenceMemory:
    """Last sighting of every live track, and its affinity maps in the current frame."""

    def __init__(self, propagator: Propagator, max_age: int = 1) -> None:
        self.propagator = propagator
        self.max_age = max_age
        self.reset()

    def reset(self) -> None:
        self.seen: dict[int, _Seen] = {}
        self.current: PreparedFrame | None = None
        self._image: np.ndarray | None = None
        self._step = 0
        self._maps: dict[int, tuple[Affinities, int]] = {}

    def begin(self, image: np.ndarray) -> PreparedFrame:
        """Prepare a new frame (the same image object again is the same frame)."""
        if image is not self._image:
            self._image = image
            self._step += 1
            self.current = self.propagator.prepare(image)
            self._maps = {}
            self.seen = {t: s for t, s in self.seen.items() if self._step - s.step <= self.max_age}
        return self.current

    def affinities(self, track_ids: list[int]) -> dict[int, tuple[Affinities, int]]:
        """Each track's maps in the current frame: (maps of its group, its row), computed once
        per frame, one network pass per source frame."""
        wanted = [t for t in track_ids if t in self.seen and t not in self._maps]
        groups: dict[int, list[int]] = {}
        for t in wanted:
            groups.setdefault(id(self.seen[t].frame), []).append(t)
        for tracks in groups.values():
            source = self.seen[tracks[0]].frame
            maps = self.propagator.propagate(source, self.current, [self.seen[t].pose for t in tracks])
            for row, t in enumerate(tracks):
                self._maps[t] = (maps, row)
        return {t: self._maps[t] for t in track_ids if t in self._maps}

    def end(self, tracked: list[Pose]) -> None:
        """Remember the frame's tracked poses as their tracks' last sighting."""
        for pose in tracked:
            if pose.track_id >= 0 and pose.num_visible:
                self.seen[pose.track_id] = _Seen(self.current, pose, self._step)


def correspondence_similarity(values: np.ndarray, detected: np.ndarray,
                              threshold: float) -> np.ndarray:
    """Eq. 6 from affinities ``values`` (M tracks, N poses, K) at the poses' joints and the
    poses' detected joints (N, K): an (N, M) similarity."""
    counted = (values > threshold) & detected[None]
    total = (values * counted).sum(-1)  # (M, N)
    return (total / np.maximum(detected.sum(-1), 1)[None]).T


class CorrespondenceCue:
    """The Eq. 6 cue for ``tracking.greedy.GreedyTracker``."""

    def __init__(self, memory: CorrespondenceMemory | None = None,
                 affinity_threshold: float = 0.3) -> None:
        if memory is None:
            raise ValueError("correspondence tracking reads a CorrespondenceMemory: "
                             "make_cue('correspondence', memory=...)")
        self.memory, self.affinity_threshold = memory, affinity_threshold

    def begin(self, image: np.ndarray | None) -> None:
        if image is None:
            raise ValueError("correspondence tracking needs each frame's image")
        self.memory.begin(image)

    def similarity(self, poses: list[Pose], tracks: dict[int, Pose]) -> np.ndarray:
        ids = list(tracks)
        out = np.zeros((len(poses), len(ids)))
        if not poses or not ids:
            return out
        points = np.stack([p.keypoints[:, :2] for p in poses])
        detected = np.stack([p.keypoints[:, 2] > 0 for p in poses])
        maps = self.memory.affinities(ids)
        read: dict[int, np.ndarray] = {}  # one read per group of maps: (P, N, K)
        for column, track in enumerate(ids):
            if track not in maps:
                continue  # no sighting with joints to propagate
            affinities, row = maps[track]
            if id(affinities) not in read:
                read[id(affinities)] = affinities.at(points)
            values = read[id(affinities)][row:row + 1]  # (1, N, K)
            out[:, column] = correspondence_similarity(values, detected, self.affinity_threshold)[:, 0]
        return out

    def end(self, tracked: list[Pose]) -> None:
        self.memory.end(tracked)
