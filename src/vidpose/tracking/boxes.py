"""Person boxes for the online top-down pipeline, from a pluggable source.

A box source answers, for one frame and its image, the person boxes (M, 4) x, y, w, h in
image pixels and their scores (M,): ground truth (an upper bound), a COCO-results detection
file (how PoseTrack users bring a detector's output; the synthetic world writes one per
split at ``ROOT/detections/<split>.json``) or our own detector (``methods/centernet.py``).
"""
from __future__ import annotations

import os
from typing import Any, Protocol

import numpy as np

from vidpose.data_modules.crops import person_box
from vidpose.errors import InputError
from vidpose.formats.detections import read_detections
from vidpose.pose import Frame

Boxes = tuple[np.ndarray, np.ndarray]


class BoxSource(Protocol):
    def __call__(self, frame: Frame, image: np.ndarray) -> Boxes | None:
        """Boxes (M, 4) x, y, w, h and scores (M,) of one frame; None when the source knows
        nothing about the frame (ground truth of an unlabelled frame)."""


def _stack(boxes: list[np.ndarray], scores: list[float]) -> Boxes:
    return (np.stack(boxes).astype(np.float64) if boxes else np.zeros((0, 4)),
            np.asarray(scores, dtype=np.float64))


class GroundTruthBoxes:
    """The frame's non-crowd annotated persons that have a box or a labelled keypoint; None
    for an unlabelled frame (PoseTrack18 labels a stretch or every k-th frame)."""

    def __call__(self, frame: Frame, image: np.ndarray) -> Boxes | None:
        if not frame.is_labeled:
            return None
        boxes = [box for pose in frame.poses if not pose.iscrowd
                 for box in [person_box(pose)] if box is not None]
        return _stack(boxes, [1.0] * len(boxes))


class DetectionFileBoxes:
    """Boxes of a COCO-results file, looked up by the frame's image id.

    COCO results leave out images where the detector found nobody, so a frame missing from
    the file has no boxes; but a file that names none of ``frame_ids`` (the frames to be
    tracked) is for other images, and refused. Boxes below ``min_score`` or without
    positive size are left out.
    """

    def __init__(self, path: str | os.PathLike, min_score: float = 0.0,
                 frame_ids: set[int] | None = None) -> None:
        self.path = str(path)
        self.min_score = float(min_score)
        self.detections = read_detections(path)
        if frame_ids and not frame_ids & set(self.detections):
            raise InputError(f"the file has boxes for none of the {len(frame_ids)} frames to "
                             f"track (image ids {min(frame_ids)}..{max(frame_ids)}); is it for "
                             "these images?", file=self.path, field="image_id")

    def __call__(self, frame: Frame, image: np.ndarray) -> Boxes:
        kept = [d for d in self.detections.get(frame.image_id, [])
                if d.score >= self.min_score and d.box[2] > 0 and d.box[3] > 0]
        return _stack([d.box for d in kept], [d.score for d in kept])


class DetectorBoxes:
    """Boxes from a person detector with ``detect(images, score_threshold) -> [(boxes,
    scores)]`` (``methods.centernet.CenterNet``), cut at ``min_score``, or at the detector's
    own default threshold when ``min_score`` is 0."""

    def __init__(self, detector: Any, min_score: float = 0.0) -> None:
        self.detector = detector
        self.min_score = float(min_score)

    def __call__(self, frame: Frame, image: np.ndarray) -> Boxes:
        threshold = self.min_score if self.min_score > 0 else None
        boxes, scores = self.detector.detect([image], score_threshold=threshold)[0]
        return _stack(list(np.asarray(boxes, dtype=np.float64)), list(np.asarray(scores)))

