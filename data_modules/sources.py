"""Resolve a dataset root's on-disk layout to the formats readers.

Layouts (the same for real and synthetic data):

* posetrack18: ``ROOT/annotations/<split>/<video>.json``, image paths relative to ROOT;
* coco, ochuman: ``ROOT/annotations/person_keypoints_<split>.json``, images under ``ROOT/<split>/``;
* detections, any layout: ``ROOT/detections/<split>.json`` (COCO results format).
"""
from __future__ import annotations

from pathlib import Path

from vidpose.data_modules.config import DATASETS, DataConfig
from vidpose.errors import ConfigError, InputError
from vidpose.formats.coco import read_coco
from vidpose.formats.detections import read_detections
from vidpose.formats.ochuman import read_ochuman
from vidpose.formats.posetrack import read_posetrack
from vidpose.pose import Pose, PoseDataset

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


def load_split(cfg: DataConfig, split: str) -> PoseDataset:
    """Read one split of the dataset at ``cfg.root`` through the formats readers."""
    root = Path(cfg.root)
    ann = annotation_path(cfg, split)
    how = _HOW_TO_GET.format(dataset=cfg.dataset)
    if not root.is_dir():
        raise InputError(f"dataset root not found; {how}", file=str(root), field="data.root")
    if not ann.exists():
        raise InputError(f"no annotations for split {split!r}: expected {ann} in the "
                         f"{cfg.dataset} layout; {how}", file=str(ann), field="annotations")
    options = {"check_images": cfg.check_images, "outside_tolerance": cfg.outside_tolerance}
    if cfg.dataset == "posetrack18":
        return read_posetrack(ann, root, **options)
    reader = read_coco if cfg.dataset == "coco" else read_ochuman
    return reader(ann, root / split, **options)


def detections_path(cfg: DataConfig, split: str) -> Path:
    return Path(cfg.detections) if cfg.detections else Path(cfg.root) / "detections" / f"{split}.json"


def load_detections(cfg: DataConfig, split: str, data: PoseDataset) -> dict[int, list[Pose]]:
    """Person detections for the frames of ``data`` (``box_source: detections``)."""
    path = detections_path(cfg, split)
    if not path.is_file():
        raise InputError(f"detections file not found for split {split!r}: expected COCO "
                         f"results boxes there (set data.detections to your detector's file, "
                         f"or use data.box_source=gt)", file=str(path), field="data.detections")
    return read_detections(path, image_ids={frame.image_id for frame in data.frames})
