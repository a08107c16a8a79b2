"""The records that travel through the suite: one ``Pose`` per person, one ``Frame`` per image.

Decoders produce Poses, trackers give them track ids, writers turn them into COCO or
PoseTrack18 files, readers turn those files back into them, and metrics compare them.
Ground-truth annotations are Poses too (third keypoint column = visibility flag).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vidpose.keypoints import Schema


@dataclass
class Pose:
    """One person in one image.

    keypoints: (K, 3) float, x, y in image pixels and visibility (GT) or score (prediction).
    box: (4,) float x, y, w, h in pixels, or None.
    """

    keypoints: np.ndarray
    box: np.ndarray | None = None
    track_id: int = -1
    score: float = 1.0
    head_box: np.ndarray | None = None  # x, y, w, h (PoseTrack18 bbox_head)
    area: float | None = None
    segmentation: Any = None  # COCO polygons or RLE dict, as in the file
    iscrowd: bool = False
    ann_id: int | None = None
    # Per-keypoint visibility flags alongside scores (PoseTrack predictions carry both).
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.keypoints = np.asarray(self.keypoints, dtype=np.float64).reshape(-1, 3)
        if self.box is not None:
            self.box = np.asarray(self.box, dtype=np.float64).reshape(4)
        if self.head_box is not None:
            self.head_box = np.asarray(self.head_box, dtype=np.float64).reshape(4)

    @property
    def num_visible(self) -> int:
        return int((self.keypoints[:, 2] > 0).sum())

    def keypoint_box(self) -> np.ndarray:
        """Tight x, y, w, h box around the present keypoints (zeros when none)."""
        present = self.keypoints[:, 2] > 0
        if not present.any():
            return np.zeros(4)
        xy = self.keypoints[present, :2]
        return np.concatenate([xy.min(0), xy.max(0) - xy.min(0)])


@dataclass
class Frame:
    """One image with its persons; in a video it knows its sequence and position."""

    image_id: int
    file_name: str  # relative to the dataset's image root
    width: int
    height: int
    poses: list[Pose] = field(default_factory=list)
    video: str | None = None
    frame_index: int = 0
    is_labeled: bool = True
    # PoseTrack18 ignore regions: list of (N, 2) polygons in pixels.
    ignore_regions: list[np.ndarray] = field(default_factory=list)


@dataclass
class PoseDataset:
    """A set of frames in one keypoint schema, with the folder their file names are under."""

    frames: list[Frame]
    schema: Schema
    image_root: str
    source: str = ""  # the annotation file or folder this came from, for messages

    def videos(self) -> dict[str, list[Frame]]:
        """Frames grouped by video, each list in frame order."""
        out: dict[str, list[Frame]] = {}
        for frame in self.frames:
            out.setdefault(frame.video or str(frame.image_id), []).append(frame)
        for frames in out.values():
            frames.sort(key=lambda f: f.frame_index)
        return out

    def __len__(self) -> int:
        return len(self.frames)
