"""The ``data:`` section of an experiment config, as OmegaConf structured dataclasses.

Only simple types, ``Optional``, lists and nested dataclasses, so that OmegaConf can validate
every key and type of a YAML file against it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

DATASETS = ("posetrack18", "coco", "ochuman")
BOX_SOURCES = ("gt", "detections")


@dataclass
class AugmentConfig:
    """Training augmentation strengths (validation never augments)."""

    flip: float = 0.5  # probability of a horizontal flip (left/right slots swap)
    rotation: float = 30.0  # degrees, uniform in [-rotation, rotation]
    scale: float = 0.25  # scale factor uniform in [1 - scale, 1 + scale]
    color: bool = True  # colour jitter
    blur: float = 0.1  # probability of a Gaussian blur
    noise: float = 0.1  # probability of Gaussian pixel noise
    rotation_prob: float = 0.6  # rotation is applied this often (SimpleBaseline uses 0.6)
    translate: float = 0.0  # bottom-up only: shift as a fraction of the input size


@dataclass
class DataConfig:
    """Where the data is, how samples are cut from it and how they are augmented."""

    dataset: str = "posetrack18"  # posetrack18 | coco | ochuman (the on-disk layout)
    root: str = "data/synth/default/posetrack18"
    synth_preset: Optional[str] = "default"  # the runner generates synthetic data when missing
    train_split: str = "train"
    val_split: str = "val"
    detections: Optional[str] = None  # detections file; None: ROOT/detections/<split>.json
    box_source: str = "gt"  # gt | detections (validation crops of top-down methods)
    input_size: list[int] = field(default_factory=lambda: [256, 192])  # (h, w)
    heatmap_stride: int = 4
    sigma: float = 2.0  # keypoint Gaussian, heatmap pixels
    limb_sigma: float = 1.5  # limb map spread, heatmap pixels
    clip_length: int = 4
    clip_stride: int = 1
    # Validation clips' stride; None: clip_stride. Sparsely labelled val splits (PoseTrack18
    # labels every 4th frame) need the labelling step here.
    val_clip_stride: Optional[int] = None
    batch_size: int = 32
    num_workers: int = 2
    max_train_samples: Optional[int] = None
    max_val_samples: Optional[int] = None
    box_padding: float = 1.25
    min_keypoints: int = 1
    max_persons: int = 20  # bottom-up: keypoints padded to this many persons per frame
    mask_width: float = 2.0  # person mask from the skeleton: half-width in heatmap pixels
    check_images: bool = True  # readers verify that every image file exists
    # How far (px) a labelled keypoint may lie outside its image before the reader refuses
    # it; real PoseTrack18 has head tops some 25 px above the frame.
    outside_tolerance: float = 1.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
