"""Video clips: ``clip_length`` frames of one video, ``clip_stride`` apart, all labelled.

Every frame of a clip gets the same random transform, and each track owns one person row
for the whole clip (``track_ids``), so row ``j`` is the same person in every frame; a track
that is missing from a frame leaves its row empty (all keypoints absent) there.
``num_persons`` counts the clip's tracks and is repeated per frame.

Sparsely labelled videos (PoseTrack18: a middle stretch in train, every k-th frame in val)
only yield windows whose frames are all labelled, so ``clip_stride`` has to fit the
labelling step of the split.
"""
from __future__ import annotations

import numpy as np

from vidpose.data_modules.datasets import PoseDataModule, annotation_file
from vidpose.data_modules.frames import FrameDataset, Window
from vidpose.errors import ConfigError, InputError
from vidpose.pose import Frame, PoseDataset


def _track_rows(frames: list[Frame], indices: tuple[int, ...], data: PoseDataset) -> Window:
    """One row per track seen in the window (labelled poses only), in track id order."""
    tracks: list[dict[int, int]] = []
    for frame in frames:
        ids = {}
        for i, pose in enumerate(frame.poses):
            if pose.num_visible == 0:
                continue
            if pose.track_id < 0 or pose.track_id in ids:
                problem = "missing" if pose.track_id < 0 else f"repeated ({pose.track_id})"
                raise InputError(f"clips need a unique track id per person and frame; "
                                 f"{problem}", file=annotation_file(data, frame),
                                 record=f"annotation {pose.ann_id} (image {frame.image_id})",
                                 field="track_id")
            ids[pose.track_id] = i
        tracks.append(ids)
    track_ids = np.array(sorted(set().union(*tracks)), dtype=np.int64)
    rows = np.array([[ids.get(int(tid), -1) for tid in track_ids] for ids in tracks],
                    dtype=np.int64).reshape(len(frames), len(track_ids))
    return Window(indices, rows, track_ids)


def clip_windows(data: PoseDataset, length: int, stride: int) -> list[Window]:
    """Every window of ``length`` frames ``stride`` apart inside one video, all labelled."""
    if length < 1 or stride < 1:
        raise ConfigError(f"data.clip_length ({length}) and data.clip_stride ({stride}) must be >= 1")
    position = {id(frame): i for i, frame in enumerate(data.frames)}
    windows = []
    for frames in data.videos().values():
        span = (length - 1) * stride
        for start in range(len(frames) - span):
            clip = frames[start:start + span + 1:stride]
            if all(frame.is_labeled for frame in clip):
                indices = tuple(position[id(frame)] for frame in clip)
                windows.append(_track_rows(clip, indices, data))
    return windows


class ClipDataModule(PoseDataModule):
    """Bottom-up clips with one shared augmentation per clip and per-track person rows."""

    def make_dataset(self, data: PoseDataset, split: str, train: bool) -> FrameDataset:
        cfg = self.cfg
        stride = cfg.clip_stride if train or cfg.val_clip_stride is None else cfg.val_clip_stride
        windows = clip_windows(data, cfg.clip_length, stride)
        if not windows:
            key = "clip_stride" if train else "val_clip_stride"
            raise ConfigError(f"no clip of {cfg.clip_length} labelled frames {stride} apart in "
                              f"split {split!r} of {data.source}; lower data.clip_length or set "
                              f"data.{key} to the split's labelling step")
        return FrameDataset(data, self.spread(windows, train), cfg, train, clip=True)
