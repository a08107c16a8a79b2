"""Recovery of missed detections (paper Sec. 5.1, Fig. 4).

Each pose of the previous frame that came from a detection is propagated into the current
frame: joint j goes to the argmax of its refined affinity map. A box around the propagated
joints (at least as large as the person's previous box) is handed to the top-down
estimator, which estimates a fresh pose there (the maps are coarse, and a joint occluded
before may be visible now). The caller merges these with
the frame's detections by OKS-NMS, so a person the detector did find keeps its detection.

A propagated pose is only re-estimated when at least ``min_joints`` of its joints were
found with an affinity above ``affinity_threshold``; a recovered pose is kept when its
person score (mean affinity of the propagation times the estimator's joint confidence,
``decode.person_score``) reaches ``min_score``. Recovered poses are marked
``extra["recovered"] = True`` and are not propagated again, so a person who leaves is not
carried on by the pipeline's own guesses.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidpose.pose import Pose
from vidpose.tracking.correspondence import CorrespondenceMemory


@dataclass(frozen=True)
class RecoveryConfig:
    affinity_threshold: float = 0.3  # a propagated joint counts above this affinity
    min_joints: int = 4  # propagated joints needed to look for the person
    min_score: float = 0.2  # person score a recovered pose needs


def propagated_boxes(memory: CorrespondenceMemory, previous: list[Pose],
                     cfg: RecoveryConfig) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (R, 4) x, y, w, h around the propagated joints of the previous frame's detected
    poses, and each propagation's mean affinity (R,)."""
    sources = [p for p in previous if p.track_id >= 0 and not p.extra.get("recovered")]
    maps = memory.affinities([p.track_id for p in sources])
    boxes, scores = [], []
    peaks: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # one argmax per group of maps
    for pose in sources:
        if pose.track_id not in maps:
            continue
        affinities, row = maps[pose.track_id]
        if id(affinities) not in peaks:
            peaks[id(affinities)] = affinities.peaks()
        points, values = peaks[id(affinities)]
        found = (pose.keypoints[:, 2] > 0) & (values[row] > cfg.affinity_threshold)
        if found.sum() < cfg.min_joints:
            continue
        xy = points[row][found]
        lo, hi = xy.min(0), xy.max(0)
        # The maps are coarse (a cell is stride input pixels): several joints can share one
        # cell, so the box is at least the size the person had in the previous frame.
        before = pose.box if pose.box is not None else pose.keypoint_box()
        size = np.maximum(hi - lo, before[2:])
        centre = (lo + hi) / 2
        boxes.append(np.concatenate([centre - size / 2, size]))
        scores.append(float(values[row][found].mean()))
    if not boxes:
        return np.zeros((0, 4)), np.zeros(0)
    return np.stack(boxes), np.asarray(scores)


def keep_recovered(poses: list[Pose], cfg: RecoveryConfig) -> list[Pose]:
    """The re-estimated poses good enough to keep, marked as recovered."""
    kept = [p for p in poses if p.score >= cfg.min_score]
    for pose in kept:
        pose.extra["recovered"] = True
    return kept
