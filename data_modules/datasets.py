"""What the crop, frame and clip data modules share: config coercion, image reading,
per-worker seeding, sub-sampling and the LightningDataModule skeleton."""
from __future__ import annotations

import abc
import dataclasses
from pathlib import Path
from typing import Any

import cv2
import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch.utils.data import DataLoader, Dataset

from vidpose.codec import SUBPIXEL
from vidpose.data_modules.config import BOX_SOURCES, DATASETS, DataConfig
from vidpose.data_modules.sampling import training_loader
from vidpose.data_modules.sources import load_split, sample_schema, validation_source
from vidpose.errors import MOVED_KEYS, ConfigError, InputError
from vidpose.keypoints import SCHEMAS, convert, get_schema
from vidpose.pose import Frame, PoseDataset


def as_data_config(cfg: DataConfig | dict | DictConfig) -> DataConfig:
    """A validated ``DataConfig`` from a dataclass, a plain dict or an OmegaConf section."""
    if not isinstance(cfg, DataConfig):
        for key in sorted(f"data.{k}" for k in cfg if f"data.{k}" in MOVED_KEYS):
            raise ConfigError(f"{key} is now {MOVED_KEYS[key]}")  # e.g. an older checkpoint's
        try:
            cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(DataConfig), cfg))
        except OmegaConfBaseException as err:
            raise ConfigError(f"data section: {err}") from None
    check_values(cfg)
    return cfg


def check_values(cfg: DataConfig) -> None:
    """What the types cannot say: choices and the input/heatmap geometry."""
    choices = {"dataset": DATASETS, "val_dataset": DATASETS, "keypoint_schema": sorted(SCHEMAS),
               "subpixel": SUBPIXEL, "box_source": BOX_SOURCES}
    for key, allowed in choices.items():
        value = getattr(cfg, key)  # val_dataset and keypoint_schema may be unset (None)
        if value not in allowed and (value is not None or key not in ("val_dataset", "keypoint_schema")):
            raise ConfigError(f"data.{key}: {value!r} is not one of {list(allowed)}")
    stride = cfg.heatmap_stride
    if len(cfg.input_size) != 2 or stride < 1 or any(v <= 0 or v % stride for v in cfg.input_size):
        raise ConfigError(f"data.input_size: expected [h, w], both multiples of "
                          f"data.heatmap_stride={stride}; got {list(cfg.input_size)}")
    if cfg.sigma <= 0 or cfg.limb_sigma <= 0 or cfg.batch_size < 1:
        raise ConfigError("data.sigma, data.limb_sigma and data.batch_size must be positive")


def in_schema(data: PoseDataset, schema_name: str | None) -> PoseDataset:
    """``data`` with every pose re-ordered into ``schema_name`` (unchanged when None or equal)."""
    if schema_name is None or schema_name == data.schema.name:
        return data
    schema = get_schema(schema_name)
    frames = [dataclasses.replace(frame, poses=[
        dataclasses.replace(pose, keypoints=convert(pose.keypoints, data.schema, schema))
        for pose in frame.poses]) for frame in data.frames]
    return PoseDataset(frames, schema, data.image_root, data.source)


def read_image(data: PoseDataset, frame: Frame) -> np.ndarray:
    """The frame's image as RGB uint8 (H, W, 3), decoded once with cv2."""
    path = Path(data.image_root) / frame.file_name
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError("image missing or not decodable", file=str(path),
                         record=f"image {frame.image_id}", field="file_name")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def annotation_file(data: PoseDataset, frame: Frame) -> str:
    """The file a frame's annotations came from: ``<video>.json`` of a PoseTrack18 folder,
    else the data set's source."""
    source = Path(data.source)
    return str(source / f"{frame.video}.json") if frame.video and source.is_dir() else data.source


def evenly_spaced(count: int, limit: int | None) -> np.ndarray:
    """Indices of at most ``limit`` of ``count`` items, spread over all of them (so a cap
    keeps samples from every video rather than the first few)."""
    if limit is None or limit >= count:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, max(int(limit), 0)).round().astype(np.int64))


class WorkerSeeded:
    """Re-seeds albumentations inside each DataLoader worker.

    Albumentations keeps its own generator, which is pickled into every worker unchanged,
    so all workers would draw the same augmentations. Torch seeds each worker differently
    (and reproducibly under ``seed_everything``); we derive albumentations' seed from it.
    """

    _seeded_with: int | None = None

    def reseed(self, *pipelines: Any) -> None:
        seed = torch.initial_seed() % 2**32
        if seed != self._seeded_with:
            for pipeline in pipelines:
                pipeline.set_random_seed(seed)
            self._seeded_with = seed


def labelled_frame_indices(data: PoseDataset) -> list[int]:
    return [i for i, frame in enumerate(data.frames) if frame.is_labeled]


class PoseDataModule(L.LightningDataModule, abc.ABC):
    """Loads the train/val splits as ``PoseDataset``s and wraps them in torch Datasets.

    Subclasses say how a split becomes samples (:meth:`make_dataset`). Both splits come in
    one keypoint layout (``schema_name``, else :func:`sample_schema`); the validation split
    is read from ``data.val_root`` in the ``data.val_dataset`` layout when those are set.
    """

    def __init__(self, cfg: DataConfig | dict | DictConfig, schema_name: str | None = None) -> None:
        super().__init__()
        self.cfg = as_data_config(cfg)
        self.schema_name = schema_name or sample_schema(self.cfg)
        self.train_data: PoseDataset | None = None
        self.val_data: PoseDataset | None = None
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    @abc.abstractmethod
    def make_dataset(self, data: PoseDataset, split: str, train: bool) -> Dataset:
        """The torch Dataset of one split (``train`` turns augmentation on)."""

    def spread(self, items: list, train: bool) -> list:
        """At most ``data.max_train_samples`` (``max_val_samples``) of ``items``, spread evenly."""
        limit = self.cfg.max_train_samples if train else self.cfg.max_val_samples
        return [items[i] for i in evenly_spaced(len(items), limit)]

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and self.train_set is None:
            self.train_data = in_schema(load_split(self.cfg, self.cfg.train_split), self.schema_name)
            self.train_set = self.make_dataset(self.train_data, self.cfg.train_split, train=True)
        if stage in (None, "fit", "validate", "test", "predict") and self.val_set is None:
            field = "data.val_root" if self.cfg.val_root else "data.root"
            self.val_data = in_schema(load_split(validation_source(self.cfg), self.cfg.val_split,
                                                 field), self.schema_name)
            self.val_set = self.make_dataset(self.val_data, self.cfg.val_split, train=False)

    def _loader(self, dataset: Dataset | None, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError("call setup() before asking for a dataloader")
        workers = int(self.cfg.num_workers)
        options = dict(batch_size=int(self.cfg.batch_size), drop_last=False, num_workers=workers,
                       persistent_workers=workers > 0, pin_memory=torch.cuda.is_available())
        if shuffle:
            # Order and augmentations a mid-epoch resume repeats exactly (sampling.py).
            return training_loader(dataset, **options)
        return DataLoader(dataset, shuffle=False, **options)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()  # the validation split, as a subclass loads it
