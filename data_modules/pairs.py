"""Self-supervised image pairs: the keypoint correspondence network's training data.

Rafi et al., "Self-supervised Keypoint Correspondences for Multi-Person Pose Estimation and
Tracking in Videos" (ECCV 2020), Sec. 4.3: a second image is made from a single labelled
image by a random affine warp, so every keypoint's correspondence is known without video
or identity labels, and keypoints the warp carries out of the frame simulate
disappearing (truncated) keypoints.

Every labelled image of a split (COCO layout, OCHuman, or the labelled frames of
PoseTrack18 videos, read by the same loaders) is one sample. Image 1 is the image
letterboxed to ``data.input_size`` (in training, with the photometric augmentation of
``data.augment``, which image 2 inherits); image 2 is image 1 warped by ``W``: a shift, a
rotation, a small zoom about the input's centre and, with probability ``data.pair.flip``,
a horizontal mirror (ranges in ``data.pair``). Validation draws ``W`` from a fixed seed per
image, so every epoch sees the same pairs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, TypedDict

import cv2
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from vidpose.data_modules.config import DataConfig, PairConfig
from vidpose.data_modules.datasets import PoseDataModule, WorkerSeeded, labelled_frame_indices, read_image
from vidpose.data_modules.frames import TorchRandom, Window, check_max_persons, drop_outside, frame_window
from vidpose.data_modules.sequences import step_affine
from vidpose.data_modules.transforms import (
    compose_affine,
    letterbox,
    normalize,
    photometric_pipeline,
    transform_keypoints,
)
from vidpose.errors import ConfigError
from vidpose.keypoints import Schema
from vidpose.pose import PoseDataset


def check_pair(cfg: DataConfig) -> None:
    """Refuse ranges no warp can be drawn from, naming the key."""
    pair = cfg.pair
    for name in ("translate", "rotation", "scale"):
        if getattr(pair, name) < 0:
            raise ConfigError(f"data.pair.{name} must be >= 0; got {getattr(pair, name)}")
    if not 0.0 <= pair.flip <= 1.0:
        raise ConfigError(f"data.pair.flip is a probability in [0, 1]; got {pair.flip}")


def pair_affine(cfg: PairConfig, input_size: Sequence[int],
                generator: torch.Generator) -> np.ndarray:
    """A random (2, 3) warp input 1 -> input 2 from ``cfg``'s ranges.

    Mirror (with probability ``cfg.flip``) about the input's vertical centre line, then
    rotate and zoom about the input's centre and shift: one step of
    :func:`~vidpose.data_modules.sequences.step_affine` without shear.
    """
    h, w = int(input_size[0]), int(input_size[1])
    center = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    # Four uniforms in [-1, 1] (shift x, shift y, rotation, log zoom) and one in [0, 1] (flip).
    u = torch.rand(5, generator=generator, dtype=torch.float64).numpy()
    signed = 2.0 * u[:4] - 1.0
    step = step_affine(center, cfg.translate * signed[:2] * np.array([w, h]),
                       cfg.rotation * signed[2], math.exp(math.log1p(cfg.scale) * signed[3]), 0.0)
    if u[4] < cfg.flip:
        mirror = np.array([[-1.0, 0.0, w - 1.0], [0.0, 1.0, 0.0]])  # x -> w - 1 - x
        step = compose_affine(step, mirror)
    return step


@dataclass
class Pair:
    """Image 2 and where image 1's keypoints went (see the module docstring)."""

    image2: np.ndarray  # (H, W, 3) uint8
    correspondences: np.ndarray  # (P, K, 3), image 1's slot order
    keypoints2: np.ndarray  # (P, K, 3), image 2's slot order
    truncated: np.ndarray  # (P, K) bool
    flipped: bool


def make_pair(image1: np.ndarray, keypoints1: np.ndarray, warp: np.ndarray,
              schema: Schema) -> Pair:
    """Warp ``image1`` (H, W, 3) and its (P, K, 3) keypoints by ``warp`` into image 2.

    Uncovered pixels are black. A keypoint whose warp leaves image 2 is truncated: absent
    from the correspondences and from ``keypoints2``.
    """
    h, w = image1.shape[:2]
    image2 = cv2.warpAffine(image1, warp, (w, h), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    present = keypoints1[..., 2] > 0
    moved = transform_keypoints(keypoints1, warp)
    inside = drop_outside(moved.copy(), (h, w))[..., 2] > 0
    truncated = present & ~inside
    moved[truncated] = 0.0
    # A mirror is the only way the warp's determinant turns negative.
    flipped = bool(np.linalg.det(np.asarray(warp)[:, :2]) < 0)
    keypoints2 = moved[..., schema.flip_index, :] if flipped else moved.copy()
    return Pair(image2, moved, keypoints2, truncated, flipped)


class PairSample(TypedDict):
    """One pair; P = ``data.max_persons`` rows (the image's persons, then rows of zeros); points
    in input pixels, pixel centres at integers; a collated batch adds a leading B dim."""

    image1: Tensor  # float32 (3, H, W), normalised
    image2: Tensor  # float32 (3, H, W): image 1 warped by W
    keypoints1: Tensor  # float32 (P, K, 3): image 1's keypoints and visibility flags
    # float32 (P, K, 3): W applied to image 1's keypoint j, in image 1's slot order: where
    # descriptor j must find its match (Eq. 3's x'_j); zero where absent or truncated.
    correspondences: Tensor
    # float32 (P, K, 3): image 2's annotations, the correspondences with left/right slots
    # swapped when W mirrors, so slot j holds the joint an annotator would call j there.
    keypoints2: Tensor
    truncated: Tensor  # bool (P, K): present in image 1, carried out of image 2 (its slots)
    warp: Tensor  # float64 (2, 3): W, input 1 -> input 2
    flipped: Tensor  # bool (): whether W mirrors
    image_to_input: Tensor  # float64 (2, 3): image -> input 1
    num_persons: Tensor  # int64 ()
    frame: Tensor  # int64 ()


class PairDataset(Dataset, WorkerSeeded):
    """One self-supervised pair per labelled image (see the module docstring)."""

    def __init__(self, data: PoseDataset, windows: list[Window], cfg: DataConfig,
                 train: bool) -> None:
        self.data = data
        self.windows = windows
        self.schema = data.schema
        self.input_size = (int(cfg.input_size[0]), int(cfg.input_size[1]))
        self.max_persons = int(cfg.max_persons)
        check_max_persons(windows, data, self.max_persons)
        self.pair = cfg.pair
        self.train = train
        self.photometric = photometric_pipeline(cfg.augment) if train else None
        self.random = TorchRandom()

    def __len__(self) -> int:
        return len(self.windows)

    def _padded(self, rows: np.ndarray, dtype: torch.dtype = torch.float32) -> Tensor:
        out = torch.zeros((self.max_persons, *rows.shape[1:]), dtype=dtype)
        out[:len(rows)] = torch.from_numpy(rows)
        return out

    def __getitem__(self, index: int) -> PairSample:
        if self.train:
            self.reseed(self.photometric, self.random)
        window = self.windows[index]
        frame_index = window.frames[0]
        frame = self.data.frames[frame_index]
        rows = window.rows[0]
        keypoints = (np.stack([frame.poses[i].keypoints for i in rows]) if len(rows)
                     else np.zeros((0, self.schema.num_keypoints, 3)))
        boxed, image_to_input = letterbox(read_image(self.data, frame)[None], self.input_size)
        image1 = boxed[0]
        if self.photometric is not None:
            image1 = self.photometric(image=image1)["image"]
        # Labelled points a little outside the image (real PoseTrack18 head tops) have no
        # pixels to describe: absent in image 1.
        keypoints1 = drop_outside(transform_keypoints(keypoints, image_to_input), self.input_size)
        generator = (self.random.generator if self.train else
                     torch.Generator().manual_seed(self.pair.val_seed + frame_index))
        warp = pair_affine(self.pair, self.input_size, generator)
        pair = make_pair(image1, keypoints1, warp, self.schema)
        return {
            "image1": normalize(image1),
            "image2": normalize(pair.image2),
            "keypoints1": self._padded(keypoints1),
            "correspondences": self._padded(pair.correspondences),
            "keypoints2": self._padded(pair.keypoints2),
            "truncated": self._padded(pair.truncated, torch.bool),
            "warp": torch.from_numpy(warp),
            "flipped": torch.tensor(pair.flipped),
            "image_to_input": torch.from_numpy(image_to_input),
            "num_persons": torch.tensor(len(rows), dtype=torch.int64),
            "frame": torch.tensor(frame_index, dtype=torch.int64),
        }


class PairDataModule(PoseDataModule):
    """Every labelled image of a split as a self-supervised pair (image, its random warp)."""

    def make_dataset(self, data: PoseDataset, split: str, train: bool) -> PairDataset:
        check_pair(self.cfg)
        windows = self.spread([frame_window(data, i) for i in labelled_frame_indices(data)], train)
        return PairDataset(data, windows, self.cfg, train)
