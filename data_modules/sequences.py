"""Synthetic video clips from single labelled images: STM-skeletons' pre-training data.

Dufour et al. (Sec. 2.3, Fig. 3) turn every MS-COCO image into a sequence of ``N`` frames by
translating, rotating, scaling and shearing it at random ``N`` times, cumulatively. Here
frame ``t = 0 .. N-1`` of a sample is the labelled frame after the usual letterbox to
``input_size`` (and, in training, the usual augmentation, shared by all frames) warped by
``M_t = A_t o ... o A_0``, the composition of ``t + 1`` random steps drawn from
``data.sequence``'s ranges about the input's centre.

Samples have exactly the keys and shapes of a :class:`ClipDataModule` sample. Each person
of the frame owns one row in every frame (its track id is its row number); a keypoint the
warp carries out of the input is absent in that frame. Validation samples draw their steps
from a fixed seed per labelled frame, so every epoch sees the same sequences; with
``data.sequence.val_videos`` validation (``train_videos``: training) uses the split's real
video clips instead.
"""
from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np
import torch

from vidpose.data_modules.clips import ClipDataModule
from vidpose.data_modules.config import DataConfig, SequenceConfig
from vidpose.data_modules.datasets import PoseDataModule, labelled_frame_indices, read_image
from vidpose.data_modules.frames import FrameDataset, Views, Window, drop_outside, frame_window
from vidpose.data_modules.transforms import compose_affine, transform_keypoints
from vidpose.errors import ConfigError
from vidpose.pose import PoseDataset


def step_affine(center: np.ndarray, shift: np.ndarray, rotation: float, scale: float,
                shear: float) -> np.ndarray:
    """One step's (2, 3) affine: shear, zoom and rotate about ``center``, then shift.

    rotation and shear in degrees; the rotation is counter-clockwise on screen (y points
    down), the shear moves rows sideways in proportion to their height.
    """
    theta, phi = math.radians(rotation), math.radians(shear)
    cos, sin = math.cos(theta), math.sin(theta)
    linear = (np.array([[cos, sin], [-sin, cos]]) @ np.array([[1.0, math.tan(phi)], [0.0, 1.0]])
              * scale)
    return np.hstack([linear, (center + shift - linear @ center)[:, None]])


def sequence_affines(length: int, cfg: SequenceConfig, input_size: Sequence[int],
                     generator: torch.Generator) -> np.ndarray:
    """``(length, 2, 3)`` cumulative warps: entry ``t`` composes steps ``0 .. t``."""
    h, w = int(input_size[0]), int(input_size[1])
    center = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    # Five uniforms in [-1, 1] per step: shift x, shift y, rotation, log zoom, shear.
    draws = (torch.rand((length, 5), generator=generator, dtype=torch.float64) * 2 - 1).numpy()
    warps, total = [], np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    for u in draws:
        step = step_affine(center, cfg.translate * u[:2] * np.array([w, h]), cfg.rotation * u[2],
                           math.exp(math.log1p(cfg.scale) * u[3]), cfg.shear * u[4])
        total = compose_affine(step, total)
        warps.append(total)
    return np.stack(warps)


def check_sequence(cfg: DataConfig) -> None:
    """Refuse lengths and ranges no sequence can be drawn from, naming the key."""
    seq = cfg.sequence
    if cfg.clip_length < 1:
        raise ConfigError(f"data.clip_length must be >= 1; got {cfg.clip_length}")
    for name in ("translate", "rotation", "scale", "shear"):
        if getattr(seq, name) < 0:
            raise ConfigError(f"data.sequence.{name} must be >= 0; got {getattr(seq, name)}")
    if seq.shear >= 90:
        raise ConfigError(f"data.sequence.shear must be below 90 degrees; got {seq.shear}")


def sequence_window(data: PoseDataset, index: int, length: int) -> Window:
    """Frame ``index`` repeated ``length`` times; its persons keep their rows throughout."""
    rows = frame_window(data, index).rows
    return Window((index,) * length, np.repeat(rows, length, axis=0),
                  np.arange(rows.shape[1], dtype=np.int64))


class SequenceDataset(FrameDataset):
    """Clips warped out of one frame each (see the module docstring)."""

    def __init__(self, data: PoseDataset, windows: list[Window], cfg: DataConfig,
                 train: bool) -> None:
        super().__init__(data, windows, cfg, train, clip=True)
        self.sequence = cfg.sequence

    def views(self, window: Window) -> Views:
        frame = self.data.frames[window.frames[0]]
        keypoints = self._row_keypoints(frame, window.rows[0])
        sample = self.transform(read_image(self.data, frame)[None], keypoints[None])
        generator = (self.random.generator if self.train else
                     torch.Generator().manual_seed(self.sequence.val_seed + window.frames[0]))
        warps = sequence_affines(len(window.frames), self.sequence, self.input_size, generator)
        h, w = self.input_size
        images = np.stack([cv2.warpAffine(sample.images[0], warp, (w, h), flags=cv2.INTER_LINEAR,
                                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
                           for warp in warps])
        # A keypoint the augmentation pushed out of the input has no pixels to follow; the
        # others already carry the flip's left/right swap (the warps never mirror).
        start = drop_outside(sample.keypoints[0], self.input_size)
        moved = np.stack([transform_keypoints(start, warp) for warp in warps])
        image_to_input = np.stack([compose_affine(warp, sample.image_to_input) for warp in warps])
        return Views([frame] * len(warps), images, moved, image_to_input)


class SequenceDataModule(PoseDataModule):
    """Every labelled frame of a COCO-layout or PoseTrack18 split as a synthetic clip of
    ``clip_length`` cumulatively warped frames, shaped like :class:`ClipDataModule`'s."""

    def make_dataset(self, data: PoseDataset, split: str, train: bool) -> FrameDataset:
        cfg = self.cfg
        check_sequence(cfg)
        if cfg.sequence.train_videos if train else cfg.sequence.val_videos:
            # Real clips of the split's videos, cut exactly as ClipDataModule cuts them.
            return ClipDataModule(cfg, self.schema_name).make_dataset(data, split, train)
        windows = [sequence_window(data, i, cfg.clip_length) for i in labelled_frame_indices(data)]
        return SequenceDataset(data, self.spread(windows, train), cfg, train)
