"""Whole frames with person boxes for CenterNet ("Objects as Points", Zhou et al. 2019).

A sample is one labelled frame, letterboxed to ``data.input_size`` (in training through the
same albumentations flip / scale / shift as the bottom-up frames, with the exact
``image_to_input`` affine recovered), and CenterNet's targets at ``data.heatmap_stride``
(:class:`BoxSample`).

Coordinates follow the suite's convention: pixel centres at integers, heatmap pixel ``u``
at input pixel ``stride * u``. A box is moved by mapping its corners as points, and a centre
belongs to its nearest heatmap cell, so the offset lies in [-0.5, 0.5) away from the border.

Which persons are boxes: each pose's annotated box, else the box of its labelled keypoints
(``crops.person_box``); a pose with neither has no extent and is not a target. ``iscrowd``
poses are not targets (and count as ignore regions in box AP). An annotated box of zero
width or height is refused with an ``InputError`` naming its file, record and field: such
a box has no centre-to-size relation to learn, and falling back to another box would
silently change the annotation.
"""
from __future__ import annotations

from typing import TypedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from vidpose.data_modules.config import DataConfig
from vidpose.data_modules.crops import person_box
from vidpose.data_modules.datasets import (
    PoseDataModule,
    WorkerSeeded,
    annotation_file,
    labelled_frame_indices,
    read_image,
)
from vidpose.data_modules.transforms import FrameTransform, apply_affine, normalize
from vidpose.errors import ConfigError, InputError
from vidpose.pose import PoseDataset
from vidpose.targets import render_gaussian_peaks

# CenterNet's minimum IoU between the ground-truth box and a box from a centre moved by the
# radius (CornerNet's rule, applied to centres).
MIN_OVERLAP = 0.7


def frame_boxes(data: PoseDataset, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Person boxes (N, 4) x, y, w, h of frame ``index`` in image pixels and their ``iscrowd``
    flags (N,). An annotated box without positive width and height is an ``InputError``."""
    frame = data.frames[index]
    boxes, crowd = [], []
    for i, pose in enumerate(frame.poses):
        if pose.box is not None and (pose.box[2] <= 0 or pose.box[3] <= 0):
            record = (f"annotation {pose.ann_id}" if pose.ann_id is not None
                      else f"image {frame.image_id} pose {i}")
            raise InputError(f"person box of non-positive size (w={pose.box[2]:g}, "
                             f"h={pose.box[3]:g}); a detector needs boxes with extent: fix or "
                             "remove this box", file=annotation_file(data, frame), record=record,
                             field="bbox")
        box = person_box(pose)
        if box is not None:
            boxes.append(box)
            crowd.append(pose.iscrowd)
    return (np.array(boxes, dtype=np.float64).reshape(-1, 4), np.array(crowd, dtype=bool))


def transform_boxes(boxes: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """(..., 4) x, y, w, h boxes through a (2, 3) affine: the box around the mapped corners.

    Exact for the letterbox, scaling, shifts and mirrors (axis-aligned maps); a rotation
    gives the enclosing box.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    x, y, w, h = np.moveaxis(boxes, -1, 0)
    corners = np.stack([np.stack(c, -1) for c in ((x, y), (x + w, y), (x, y + h), (x + w, y + h))],
                       axis=-2)
    mapped = apply_affine(corners, affine)
    low, high = mapped.min(-2), mapped.max(-2)
    return np.concatenate([low, high - low], -1)


def gaussian_radius(height: np.ndarray, width: np.ndarray,
                    min_overlap: float = MIN_OVERLAP) -> np.ndarray:
    """CenterNet's Gaussian radius of boxes of ``height`` x ``width`` (heatmap pixels).

    The smallest of the three corner displacements that keep IoU >= ``min_overlap`` (both
    corners moved inwards, both outwards, one each way; CornerNet's cases), each the root
    of a quadratic ``a r^2 - b r + c = 0``. The closed form is CenterNet's own,
    ``(b + sqrt(b^2 - 4ac)) / 2`` for every case, kept so that the targets match its code.
    """
    height, width = np.asarray(height, dtype=np.float64), np.asarray(width, dtype=np.float64)
    area, perimeter = height * width, height + width
    cases = (
        (1.0, perimeter, area * (1 - min_overlap) / (1 + min_overlap)),
        (4.0, 2 * perimeter, (1 - min_overlap) * area),
        (4 * min_overlap, -2 * min_overlap * perimeter, (min_overlap - 1) * area),
    )
    roots = [(b + np.sqrt(b ** 2 - 4 * a * c)) / 2 for a, b, c in cases]
    return np.minimum.reduce(roots)


def centernet_targets(boxes: np.ndarray, input_size: tuple[int, int], stride: int,
                      max_objects: int) -> dict[str, Tensor]:
    """CenterNet's targets (:class:`BoxSample`) of (N, 4) x, y, w, h boxes in input pixels.

    Boxes are clipped to the input first (CenterNet clips to its output); a box left
    without area (moved out of view by augmentation) is no target.
    """
    height, width = input_size
    map_h, map_w = height // stride, width // stride
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x1 = np.clip(boxes[:, 0], 0, width - 1)
    y1 = np.clip(boxes[:, 1], 0, height - 1)
    x2 = np.clip(boxes[:, 0] + boxes[:, 2], 0, width - 1)
    y2 = np.clip(boxes[:, 1] + boxes[:, 3], 0, height - 1)
    keep = (x2 > x1) & (y2 > y1)
    if keep.sum() > max_objects:
        raise ValueError(f"{int(keep.sum())} boxes but room for max_objects={max_objects}")
    size = np.stack([x2 - x1, y2 - y1], -1)[keep] / stride
    centre = np.stack([x1 + x2, y1 + y2], -1)[keep] / (2.0 * stride)
    cell = np.clip(np.floor(centre + 0.5), 0, [map_w - 1, map_h - 1])
    # CenterNet: integer radius from the rounded-up size, diameter = 6 sigma.
    radius = gaussian_radius(np.ceil(size[:, 1]), np.ceil(size[:, 0])).astype(np.int64)
    radius = np.maximum(radius, 0)
    sigma = torch.from_numpy((2 * radius + 1) / 6.0).float()
    count = len(cell)
    heatmap = render_gaussian_peaks(
        torch.from_numpy(cell).float(), torch.zeros(count, dtype=torch.int64), 1, (map_h, map_w),
        sigma[:, None].expand(count, 2), torch.zeros(count), torch.ones(count))
    rows = (0, 0, 0, max_objects - count)  # zero rows after the persons
    index = torch.from_numpy(cell[:, 1] * map_w + cell[:, 0]).long()
    return {"heatmap": heatmap, "index": F.pad(index, rows[2:]),
            "size": F.pad(torch.from_numpy(size).float(), rows),
            "offset": F.pad(torch.from_numpy(centre - cell).float(), rows),
            "mask": (torch.arange(max_objects) < count).float()}


class BoxSample(TypedDict):
    """One frame; P is ``data.max_persons``; a collated batch adds a leading B dim."""

    image: Tensor  # float32 (3, H, W), normalised
    heatmap: Tensor  # float32 (1, h, w): a Gaussian per person centre, peak 1 at its cell
    index: Tensor  # int64 (P,): the flat centre cell y * w + x
    size: Tensor  # float32 (P, 2): box width and height in heatmap pixels
    offset: Tensor  # float32 (P, 2): the centre minus its cell
    mask: Tensor  # float32 (P,): 1 for the rows that hold a person
    frame: Tensor  # int64 (): index into the split's frames
    image_to_input: Tensor  # float64 (2, 3)


class BoxDataset(Dataset, WorkerSeeded):
    """Letterboxed frames with CenterNet's targets."""

    def __init__(self, data: PoseDataset, frames: list[int], boxes: list[np.ndarray],
                 cfg: DataConfig, train: bool) -> None:
        self.data = data
        self.frames = frames
        self.boxes = boxes  # non-crowd person boxes of each frame, image pixels
        self.input_size = (int(cfg.input_size[0]), int(cfg.input_size[1]))
        self.stride = int(cfg.heatmap_stride)
        self.max_persons = int(cfg.max_persons)
        self.transform = FrameTransform(self.input_size, data.schema,
                                        cfg.augment if train else None)
        # The frame transform moves keypoints; boxes travel through its affine instead.
        self.no_keypoints = np.zeros((1, 0, data.schema.num_keypoints, 3))

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> BoxSample:
        if self.transform.pipeline is not None:
            self.reseed(self.transform.pipeline)
        frame = self.data.frames[self.frames[index]]
        sample = self.transform(read_image(self.data, frame)[None], self.no_keypoints)
        boxes = transform_boxes(self.boxes[index], sample.image_to_input)
        return {
            "image": normalize(sample.images[0]),
            **centernet_targets(boxes, self.input_size, self.stride, self.max_persons),
            "frame": torch.tensor(self.frames[index], dtype=torch.int64),
            "image_to_input": torch.from_numpy(np.ascontiguousarray(sample.image_to_input)),
        }


class BoxDataModule(PoseDataModule):
    """CenterNet frames: every labelled frame of a split (at most ``max_*_samples``), with its
    non-crowd person boxes; bad boxes and frames with too many persons are refused up front."""

    def make_dataset(self, data: PoseDataset, split: str, train: bool) -> BoxDataset:
        frames = self.spread(labelled_frame_indices(data), train)
        boxes = []
        for index in frames:
            frame_box, crowd = frame_boxes(data, index)
            if (~crowd).sum() > self.cfg.max_persons:
                frame = data.frames[index]
                raise ConfigError(f"data.max_persons={self.cfg.max_persons} is too small: image "
                                  f"{frame.image_id} ({frame.file_name}) of {data.source} has "
                                  f"{int((~crowd).sum())} person boxes; raise data.max_persons")
            boxes.append(frame_box[~crowd])
        return BoxDataset(data, frames, boxes, self.cfg, train)
