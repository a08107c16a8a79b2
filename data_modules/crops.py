"""Top-down person crops (SimpleBaseline): one sample per person box of a labelled frame.

Boxes come from the ground truth (``Pose.box``, else the keypoints' box) or, for validation
with ``box_source: detections``, from a detector's file. A :class:`CropSample` carries what
maps predictions back to the image and scores them there.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from vidpose.codec import HeatmapCodec
from vidpose.data_modules.config import DataConfig
from vidpose.data_modules.datasets import PoseDataModule, WorkerSeeded, labelled_frame_indices, read_image
from vidpose.data_modules.sources import load_detections
from vidpose.data_modules.transforms import CropTransform, normalize
from vidpose.errors import ConfigError
from vidpose.pose import Pose, PoseDataset

# poseval's PCKh normaliser: 0.6 times the head box diagonal.
HEAD_SIZE_FACTOR = 0.6


@dataclass(frozen=True)
class CropRecord:
    """One person box to crop: where it is and which ground truth (if any) it belongs to."""

    frame: int  # index into the PoseDataset's frames
    person: int  # index of the GT pose in the frame, -1 for a detection box
    box: tuple[float, float, float, float]  # x, y, w, h in image pixels
    score: float


def person_box(pose: Pose) -> np.ndarray | None:
    """The pose's annotated box, else the box of its labelled keypoints; None if empty."""
    if pose.box is not None and pose.box[2] > 0 and pose.box[3] > 0:
        return pose.box
    if pose.num_visible == 0:
        return None
    box = pose.keypoint_box()
    # A single keypoint or a line of them still gets a crop around it.
    return np.array([box[0], box[1], max(box[2], 1.0), max(box[3], 1.0)])


def head_size(pose: Pose | None) -> float:
    if pose is None or pose.head_box is None:
        return 0.0
    return HEAD_SIZE_FACTOR * float(np.hypot(pose.head_box[2], pose.head_box[3]))


def gt_records(data: PoseDataset, min_keypoints: int) -> list[CropRecord]:
    """Every non-crowd GT person of the labelled frames with a box and enough keypoints."""
    return [CropRecord(fi, pi, tuple(map(float, box)), 1.0)
            for fi in labelled_frame_indices(data) for pi, pose in enumerate(data.frames[fi].poses)
            if (box := person_box(pose)) is not None and not pose.iscrowd
            and pose.num_visible >= min_keypoints]


def detection_records(data: PoseDataset, detections: dict[int, list[Pose]]) -> list[CropRecord]:
    """Every detection box with positive size on the labelled frames."""
    return [CropRecord(fi, -1, tuple(map(float, det.box)), float(det.score))
            for fi in labelled_frame_indices(data)
            for det in detections.get(data.frames[fi].image_id, [])
            if det.box is not None and det.box[2] > 0 and det.box[3] > 0]


class CropSample(TypedDict):
    """One person crop; a collated batch has the same keys with a leading B dim."""

    image: Tensor  # float32 (3, H, W), normalised
    heatmaps: Tensor  # float32 (K, H/s, W/s)
    target_weight: Tensor  # float32 (K,): 1 for labelled, annotated joints inside the crop
    keypoints: Tensor  # float32 (K, 3) in crop pixels
    crop_to_image: Tensor  # float64 (2, 3)
    frame: Tensor  # int64 (): index into the PoseDataset's frames
    person: Tensor  # int64 (): the GT pose's index in the frame, -1 for detections
    score: Tensor  # float32 ()
    track_id: Tensor  # int64 ()
    gt_keypoints: Tensor  # float32 (K, 3) in image pixels, zeros for detections
    head_size: Tensor  # float32 (), 0 without a head box


class CropDataset(Dataset, WorkerSeeded):
    """Person crops with SimpleBaseline's targets."""

    def __init__(self, data: PoseDataset, records: list[CropRecord], cfg: DataConfig,
                 train: bool) -> None:
        self.data = data
        self.records = records
        self.schema = data.schema
        self.codec = HeatmapCodec.from_data(cfg)
        self.transform = CropTransform(self.codec.input_size, self.schema, cfg.box_padding,
                                       cfg.augment if train else None)
        self.annotated = torch.from_numpy(self.schema.annotated_mask)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> CropSample:
        if self.transform.photometric is not None:
            self.reseed(self.transform.photometric)
        record = self.records[index]
        frame = self.data.frames[record.frame]
        num_k = self.schema.num_keypoints
        pose = frame.poses[record.person] if record.person >= 0 else None
        gt = pose.keypoints if pose is not None else np.zeros((num_k, 3))
        crop = self.transform(read_image(self.data, frame), np.asarray(record.box), gt)
        keypoints = torch.from_numpy(crop.keypoints).float()
        heatmaps, target_weight = self.codec.encode(keypoints, self.annotated)
        return {
            "image": normalize(crop.image),
            "heatmaps": heatmaps,
            "target_weight": target_weight,
            "keypoints": keypoints,
            "crop_to_image": torch.from_numpy(crop.crop_to_image),
            "frame": torch.tensor(record.frame, dtype=torch.int64),
            "person": torch.tensor(record.person, dtype=torch.int64),
            "score": torch.tensor(record.score, dtype=torch.float32),
            "track_id": torch.tensor(pose.track_id if pose is not None else -1, dtype=torch.int64),
            "gt_keypoints": torch.from_numpy(gt).float(),
            "head_size": torch.tensor(head_size(pose), dtype=torch.float32),
        }


class CropDataModule(PoseDataModule):
    """Top-down crops: GT boxes for training, GT or detection boxes for validation."""

    def make_dataset(self, data: PoseDataset, split: str, train: bool) -> CropDataset:
        cfg = self.cfg
        if cfg.box_source == "detector":
            raise ConfigError("data.box_source=detector runs a detector inside the tracking "
                              "pipeline (memory experiments); for crops use the detector's file: "
                              "data.box_source=detections data.detections=<run>/predictions/val/"
                              "detections.json")
        if train or cfg.box_source == "gt":
            # Validation keeps every GT person with a box; min_keypoints filters training only.
            records = gt_records(data, cfg.min_keypoints if train else 0)
        else:
            records = detection_records(data, load_detections(cfg, split, data))
        return CropDataset(data, self.spread(records, train), cfg, train)
