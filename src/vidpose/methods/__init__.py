"""Registry of methods: name -> LightningModule, its model config dataclass, its data module.

Modules are imported lazily so that `vidpose list` and config validation stay fast.
"""
from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vidpose.errors import ConfigError

if TYPE_CHECKING:
    from vidpose.tracking.boxes import BoxSource


@dataclass(frozen=True)
class MethodSpec:
    module: str  # python module of the LightningModule and its config
    model_class: str
    config_class: str
    datamodule: str  # "package.module:Class"

    @property
    def config_cls(self) -> type:
        return getattr(importlib.import_module(self.module), self.config_class)

    @property
    def model_cls(self) -> type:
        return getattr(importlib.import_module(self.module), self.model_class)

    @property
    def datamodule_cls(self) -> type:
        mod, cls = self.datamodule.split(":")
        return getattr(importlib.import_module(mod), cls)


METHODS: dict[str, MethodSpec] = {
    "simple_baseline": MethodSpec(
        "vidpose.methods.simple_baseline", "SimpleBaseline", "SimpleBaselineConfig",
        "vidpose.data_modules.crops:CropDataModule",
    ),
    "stm": MethodSpec(
        "vidpose.methods.stm", "STMSkeletons", "STMConfig",
        "vidpose.data_modules.clips:ClipDataModule",
    ),
    "pose_memory": MethodSpec(
        "vidpose.methods.pose_memory", "PoseMemory", "PoseMemoryConfig",
        "vidpose.data_modules.track_clips:TrackClipDataModule",
    ),
    "centernet": MethodSpec(
        "vidpose.methods.centernet", "CenterNet", "CenterNetConfig",
        "vidpose.data_modules.boxes:BoxDataModule",
    ),
    "correspondence": MethodSpec(
        "vidpose.methods.correspondence", "KeypointCorrespondence", "CorrespondenceConfig",
        "vidpose.data_modules.pairs:PairDataModule",
    ),
    "correspondence_tracking": MethodSpec(
        "vidpose.methods.correspondence_tracking", "CorrespondenceTracking",
        "CorrespondenceTrackingConfig", "vidpose.data_modules.track_clips:TrackClipDataModule",
    ),
    "two_stage_pose": MethodSpec(
        "vidpose.methods.two_stage_pose", "TwoStagePose", "TwoStagePoseConfig",
        "vidpose.data_modules.crops:CropDataModule",
    ),
    "assoc_embedding": MethodSpec(
        "vidpose.methods.assoc_embedding", "AssociativeEmbedding", "AssocEmbeddingConfig",
        "vidpose.data_modules.images:ImageDataModule",
    ),
    "rnn_decoder": MethodSpec(
        "vidpose.methods.rnn_decoder", "RNNPoseDecoder", "RNNDecoderConfig",
        "vidpose.data_modules.images:ImageDataModule",
    ),
}

# Data modules an experiment may name in ``experiment.datamodule`` instead of its method's.
DATA_MODULES: dict[str, str] = {
    "crops": "vidpose.data_modules.crops:CropDataModule",
    "frames": "vidpose.data_modules.frames:FrameDataModule",
    "clips": "vidpose.data_modules.clips:ClipDataModule",
    "sequences": "vidpose.data_modules.sequences:SequenceDataModule",
    "track_clips": "vidpose.data_modules.track_clips:TrackClipDataModule",
    "boxes": "vidpose.data_modules.boxes:BoxDataModule",
    "pairs": "vidpose.data_modules.pairs:PairDataModule",
    "images": "vidpose.data_modules.images:ImageDataModule",
}


def get_datamodule_cls(spec: MethodSpec, name: str) -> type:
    """The data module class: the experiment's choice ``name`` or the method's default."""
    if not name:
        return spec.datamodule_cls
    if name not in DATA_MODULES:
        raise ConfigError(f"experiment.datamodule: {name!r} is not one of {sorted(DATA_MODULES)}")
    mod, cls = DATA_MODULES[name].split(":")
    return getattr(importlib.import_module(mod), cls)


def model_config(config_cls: type, model: dict[str, Any], method: str) -> Any:
    """A method's ``model:`` section as its config dataclass; unknown keys are refused."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(model) - names)
    if unknown:
        raise ConfigError(f"model: unknown key(s) {unknown} for {method}; known: {sorted(names)}")
    return config_cls(**model)


def check_choices(cfg: Any, choices: dict[str, Any]) -> None:
    """``ConfigError`` naming ``model.<key>`` when a config value is not among its choices."""
    for key, allowed in choices.items():
        value = getattr(cfg, key)
        if value not in allowed:
            raise ConfigError(f"model.{key}: {value!r} is not one of {list(allowed)}")


def check_positive(cfg: Any, keys: tuple[str, ...]) -> None:
    """``ConfigError`` naming ``model.<key>`` when a config value is not above zero."""
    for key in keys:
        value = getattr(cfg, key)
        if value <= 0:
            raise ConfigError(f"model.{key}: expected a positive value, got {value}")


def check_stride(stride: int, network_stride: int, network: str) -> None:
    """``ConfigError`` naming ``data.heatmap_stride`` when the data's heatmaps are not at the
    stride the network predicts its maps at."""
    if int(stride) != int(network_stride):
        raise ConfigError(f"data.heatmap_stride: {network} predicts maps at stride "
                          f"{network_stride}, got {stride}")


def load_trained(method: str, checkpoint: str, field: str, device: Any = "cpu") -> Any:
    """A trained ``method`` model from a checkpoint file, in eval mode; ``InputError`` naming
    the config ``field`` when the file is missing, truncated or not a checkpoint."""
    from vidpose.callbacks.checkpoint import read_checkpoint

    read_checkpoint(checkpoint, field=field)
    model = get_method(method).model_cls.load_from_checkpoint(str(checkpoint), map_location=device)
    return model.eval()


def load_detector(checkpoint: str | None, device: Any = "cpu") -> Any:
    """Our person detector (``methods/centernet.py``) from a checkpoint file."""
    if not checkpoint:
        raise ConfigError("data.box_source=detector needs data.detector: a detector checkpoint "
                          "or run:<experiment> (train one with make train EXP=centernet)")
    return load_trained("centernet", checkpoint, "data.detector", device)


def configured_boxes(cfg: Any, frame_ids: set[int], split: str, device: Any = "cpu") -> BoxSource:
    """The box source a data config names (``data.box_source``: gt | detections | detector)
    for the frames ``frame_ids`` of ``split``."""
    from vidpose.data_modules.sources import detections_path
    from vidpose.tracking.boxes import DetectionFileBoxes, DetectorBoxes, GroundTruthBoxes

    if cfg.box_source == "gt":
        return GroundTruthBoxes()
    if cfg.box_source == "detections":
        return DetectionFileBoxes(detections_path(cfg, split), cfg.min_box_score, frame_ids)
    return DetectorBoxes(load_detector(cfg.detector, device), cfg.min_box_score)


def get_method(name: str) -> MethodSpec:
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(f"unknown method {name!r} in experiment.method; known: "
                          f"{', '.join(sorted(METHODS))}") from None
