"""``vidpose data check``: does a dataset folder hold the layout the suite reads, and what is in it.

Each split the experiment would read (training, validation, the crowded set) goes through the
same readers as training (``data_modules.sources.load_split``), image files included, so the
first missing or malformed item stops the check with the readers' one-line error (file,
record, field). What the readers accept is counted per split.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from vidpose.data_modules.config import DataConfig
from vidpose.data_modules.datasets import as_data_config
from vidpose.data_modules.sources import annotation_path, load_split, validation_source
from vidpose.errors import ConfigError


@dataclass(frozen=True)
class SplitCounts:
    """What one split of a dataset holds, as the readers see it."""

    role: str  # train | val | crowded
    dataset: str
    root: str
    split: str
    annotations: str  # the file or folder read
    videos: int  # PoseTrack18 video files; 0 for the image sets
    images: int
    labelled: int  # images marked is_labeled (PoseTrack18 labels some frames of a video)
    persons: int  # annotated persons, crowd regions left out
    crowd_regions: int

    def line(self) -> str:
        videos = f"{self.videos} videos, " if self.dataset == "posetrack18" else ""
        crowd = f", {self.crowd_regions} crowd regions" if self.crowd_regions else ""
        return (f"{self.role:8s} {self.dataset} {self.split}: {videos}{self.images} images "
                f"({self.labelled} labelled), {self.persons} persons{crowd}  [{self.annotations}]")


def data_config(section: DictConfig) -> DataConfig:
    """The composed config's data section as a DataConfig; a root still '???' is named."""
    for key in ("root", "val_root"):
        if OmegaConf.is_missing(section, key):
            raise ConfigError(f"data.{key}: not set; point it at the dataset folder "
                              f"(data.{key}=/path/to/dataset, see docs/DATA.md)")
    return as_data_config(section)


def planned_splits(cfg: DataConfig, only: list[str] | None = None
                   ) -> list[tuple[str, DataConfig, str, str]]:
    """(role, source config, split, config key of its root) for each split to check.

    ``only``: split names to keep (``--split val``); an unknown one is a ConfigError."""
    plans = [("train", cfg, cfg.train_split, "data.root"),
             ("val", validation_source(cfg), cfg.val_split,
              "data.val_root" if cfg.val_root else "data.root")]
    if cfg.crowded_root:
        plans.append(("crowded", dataclasses.replace(cfg, root=cfg.crowded_root, dataset="ochuman"),
                      cfg.crowded_split, "data.crowded_root"))
    if only:
        known = {split for _, _, split, _ in plans}
        unknown = [s for s in only if s not in known]
        if unknown:
            raise ConfigError(f"--split {unknown[0]}: the config reads splits "
                              f"{sorted(known)} (data.train_split, data.val_split, "
                              "data.crowded_split)")
        plans = [p for p in plans if p[2] in only]
    return plans


def check_data(cfg: DataConfig, only: list[str] | None = None) -> list[SplitCounts]:
    """Read every planned split through the training readers and count what they hold."""
    counts = []
    for role, source, split, root_field in planned_splits(cfg, only):
        data = load_split(source, split, root_field=root_field)
        poses = [pose for frame in data.frames for pose in frame.poses]
        crowd = sum(pose.iscrowd for pose in poses)
        counts.append(SplitCounts(
            role=role, dataset=source.dataset, root=str(Path(source.root)), split=split,
            annotations=str(annotation_path(source, split)),
            videos=len(data.videos()) if source.dataset == "posetrack18" else 0,
            images=len(data.frames),
            labelled=sum(1 for frame in data.frames if frame.is_labeled),
            persons=len(poses) - crowd, crowd_regions=crowd))
    return counts
