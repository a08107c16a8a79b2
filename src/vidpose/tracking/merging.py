"""Track merging (paper appendix 0.A.4, Eq. 8): join broken tracks of one person.

After a video is tracked, for two tracks A and B where B starts after A ends (within
``max_gap`` frames), A's poses at its start, centre and end frames are propagated into B's
first frame with the correspondence network (joint = argmax of its affinity map, as in
recovery), and

    S(A, B) = 1/3 * sum over the three poses of OKS(propagated pose, B's first pose).

Pairs are merged greedily, most similar first, while S >= ``threshold`` and the joined
tracks do not share a frame; B (and whatever was merged into it) takes A's track id.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np

from vidpose.decode import oks, pose_area
from vidpose.pose import Frame, Pose
from vidpose.tracking.affinity import PreparedFrame, Propagator


@dataclass(frozen=True)
class MergeConfig:
    threshold: float = 0.5  # least mean OKS (Eq. 8) to merge
    max_gap: int = 30  # frames between A's end and B's start


def _anchors(positions: list[int]) -> list[int]:
    """A track's start, centre and end positions (fewer when it is shorter)."""
    return sorted({positions[0], positions[len(positions) // 2], positions[-1]})


def _propagated(propagator: Propagator, source: PreparedFrame, target: PreparedFrame,
                pose: Pose) -> np.ndarray:
    """The pose carried into ``target`` (K, 3): peak positions, the source's joints only."""
    points, _ = propagator.propagate(source, target, [pose]).peaks()
    present = (pose.keypoints[:, 2] > 0).astype(np.float64)
    return np.concatenate([points[0], present[:, None]], -1)


def merge_similarity(propagator: Propagator, prepared: Callable[[int], PreparedFrame],
                     track_a: dict[int, Pose], start_b: int, first_b: Pose,
                     sigmas: np.ndarray) -> float:
    """Eq. 8 for track A (position -> pose) and track B's first pose at ``start_b``."""
    target = prepared(start_b)
    scores = []
    for position in _anchors(sorted(track_a)):
        moved = _propagated(propagator, prepared(position), target, track_a[position])
        # OKS against B's pose: B's detected joints are the reference, at B's scale.
        scores.append(oks(first_b.keypoints[None], moved[None], pose_area(first_b), sigmas)[0, 0])
    return float(np.mean(scores))


def merge_tracks(frames: list[Frame], propagator: Propagator,
                 prepared: Callable[[int], PreparedFrame], sigmas: np.ndarray,
                 cfg: MergeConfig) -> list[Frame]:
    """The video's frames with broken tracks joined (copies; ``prepared(i)`` is frame i as
    the correspondence network sees it)."""
    tracks: dict[int, dict[int, Pose]] = {}
    for position, frame in enumerate(frames):
        for pose in frame.poses:
            if pose.track_id >= 0:
                tracks.setdefault(pose.track_id, {})[position] = pose
    candidates = []
    for a, poses_a in tracks.items():
        end_a = max(poses_a)
        for b, poses_b in tracks.items():
            start_b = min(poses_b)
            if a != b and end_a < start_b <= end_a + cfg.max_gap:
                score = merge_similarity(propagator, prepared, poses_a, start_b,
                                         poses_b[start_b], sigmas)
                if score >= cfg.threshold:
                    candidates.append((score, a, b))
    root = {t: t for t in tracks}
    spans = {t: set(poses) for t, poses in tracks.items()}  # frames of each merged chain

    def find(t: int) -> int:
        while root[t] != t:
            t = root[t]
        return t

    for _, a, b in sorted(candidates, key=lambda c: -c[0]):
        ra, rb = find(a), find(b)
        if ra == rb or spans[ra] & spans[rb]:
            continue
        root[rb] = ra
        spans[ra] |= spans.pop(rb)
    return [dataclasses.replace(frame, poses=[
        dataclasses.replace(p, track_id=find(p.track_id) if p.track_id >= 0 else p.track_id)
        for p in frame.poses]) for frame in frames]
