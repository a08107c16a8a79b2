"""Resolve a dataset root's on-disk layout to the formats readers.

Layouts (the same for real and synthetic data):

* posetrack18: ``ROOT/annotations/<split>/<video>.json``, image paths relative to ROOT;
* coco, ochuman: ``ROOT/annotations/person_keypoints_<split>.json``, images under ``ROOT/<split>/``;
* detections, any layout: ``ROOT/detections/<split>.json`` (COCO results format).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from omegaconf import DictConfig

from vidpose.data_modules.config import DATASETS, DataConfig
from vidpose.errors import ConfigError, InputError
from vidpose.formats.coco import read_coco
from vidpose.formats.detections import read_detections
from vidpose.formats.ochuman import read_ochuman
from vidpose.formats.posetrack import read_posetrack
from vidpose.keypoints import SCHEMAS
from vidpose.pose import Pose, PoseDataset

# The keypoint order each dataset layout is annotated in.
DATASET_SCHEMA = {"posetrack18": "posetrack18", "coco": "coco17", "ochuman": "coco17"}

_HOW_TO_GET = ("generate the synthetic data with `vidpose data synth` (or `make data`), or set "
               "data.root to a dataset folder in the {dataset} layout")


def annotation_path(cfg: DataConfig, split: str) -> Path:
    """Where the annotations of ``split`` live in ``cfg.dataset``'s layout."""
    root = Path(cfg.root)
    if cfg.dataset == "posetrack18":
        return root / "annotations" / split
    if cfg.dataset in ("coco", "ochuman"):
        return root / "annotations" / f"person_keypoints_{split}.json"
    raise ConfigError(f"data.dataset: {cfg.dataset!r} is not one of {list(DATASETS)}")


def sample_schema(cfg: DataConfig | DictConfig) -> str:
    """The keypoint layout samples come in and the model predicts: ``data.keypoint_schema``,
    else the training dataset's own. Validation data in another layout is converted to it."""
    name = cfg.keypoint_schema or DATASET_SCHEMA[cfg.dataset]
    if name not in SCHEMAS:
        raise ConfigError(f"data.keypoint_schema: {name!r} is not one of {sorted(SCHEMAS)}")
    return name


def validation_source(cfg: DataConfig) -> DataConfig:
    """``cfg`` pointed at the validation data: ``val_root`` and ``val_dataset`` in place of
    ``root`` and ``dataset`` where they are set."""
    return dataclasses.replace(cfg, root=cfg.val_root or cfg.root,
                               dataset=cfg.val_dataset or cfg.dataset)


def load_split(cfg: DataConfig, split: str, root_field: str = "data.root") -> PoseDataset:
    """Read one split of the dataset at ``cfg.root`` through the formats readers
    (``root_field``: the config key that named the root, for errors)."""
    root = Path(cfg.root)
    ann = annotation_path(cfg, split)
    how = _HOW_TO_GET.format(dataset=cfg.dataset)
    if not root.is_dir():
        raise InputError(f"dataset root not found; {how}", file=str(root), field=root_field)
    if not ann.exists():
        raise InputError(f"no annotations for split {split!r}: expected {ann} in the "
                         f"{cfg.dataset} layout; {how}", file=str(ann), field="annotations")
    options = {"check_images": cfg.check_images, "outside_tolerance": cfg.outside_tolerance}
    if cfg.dataset == "posetrack18":
        return read_posetrack(ann, root, **options)
    reader = read_coco if cfg.dataset == "coco" else read_ochuman
    return reader(ann, root / split, **options)


def detections_path(cfg: DataConfig, split: str) -> Path:
    if cfg.detections:
        return Path(cfg.detections)
    root = cfg.val_root if cfg.val_root and split == cfg.val_split else cfg.root
    return Path(root) / "detections" / f"{split}.json"


def load_detections(cfg: DataConfig, split: str, data: PoseDataset) -> dict[int, list[Pose]]:
    """Person detections for the frames of ``data`` (``box_source: detections``)."""
    path = detections_path(cfg, split)
    if not path.is_file():
        raise InputError(f"detections file not found for split {split!r}: expected COCO "
                         f"results boxes there (set data.detections to your detector's file, "
                         f"or use data.box_source=gt)", file=str(path), field="data.detections")
    return read_detections(path, image_ids={frame.image_id for frame in data.frames})
