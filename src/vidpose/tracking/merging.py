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


def _carried(propagator: Propagator, prepared: Callable[[int], PreparedFrame],
             wanted: dict[tuple[int, int], dict[int, Pose]]) -> dict[tuple[int, int, int], np.ndarray]:
    """Anchor poses carried into later frames: {(anchor frame, target frame): {track: pose}}
    -> {(track, anchor frame, target frame): (K, 3)} with each joint at its map's peak (the
    source's joints only). One network pass per pair of frames, all its poses at once."""
    out = {}
    for (anchor, target), poses in wanted.items():
        tracks = list(poses)
        points, _ = propagator.propagate(prepared(anchor), prepared(target),
                                         [poses[t] for t in tracks]).peaks()
        for row, track in enumerate(tracks):
            present = (poses[track].keypoints[:, 2] > 0).astype(np.float64)
            out[(track, anchor, target)] = np.concatenate([points[row], present[:, None]], -1)
    return out


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
    # Pairs (A, B) with B starting after A ends, within the gap; A's anchors are carried
    # into B's first frame once, whatever number of tracks start there.
    pairs = [(a, b, min(tracks[b])) for a in tracks for b in tracks
             if a != b and max(tracks[a]) < min(tracks[b]) <= max(tracks[a]) + cfg.max_gap]
    wanted: dict[tuple[int, int], dict[int, Pose]] = {}
    for a, _, start in pairs:
        for anchor in _anchors(sorted(tracks[a])):
            wanted.setdefault((anchor, start), {})[a] = tracks[a][anchor]
    carried = _carried(propagator, prepared, wanted)
    candidates = []
    for a, b, start in pairs:
        first = tracks[b][start]
        # Eq. 8: OKS against B's first pose (its detected joints, at its scale), averaged.
        score = float(np.mean([oks(first.keypoints[None], carried[(a, anchor, start)][None],
                                   pose_area(first), sigmas)[0, 0]
                               for anchor in _anchors(sorted(tracks[a]))]))
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
