"""Registry of methods: name -> LightningModule, its model config dataclass, its data module.

Modules are imported lazily so that `vidpose list` and config validation stay fast.

Adding a method:
1. ``methods/<method>.py``: a frozen config dataclass of its ``model:`` keys (read with
   ``model_config``) and a LightningModule whose ``__init__(model, data, schema)`` calls
   ``save_hyperparameters()``, so that a checkpoint rebuilds it; its loss goes to
   ``losses.py``, its split scores to ``evaluation/``.
2. Its entry in ``METHODS`` (the data module one of ``DATA_MODULES``, whose sample TypedDict,
   e.g. ``CropSample``, types the steps' ``batch``).
3. Experiment files naming it (shared defaults in ``experiments/_base/<method>.yaml``).
4. Its tests, ``tests/methods/test_<method>*.py``; ``tests/smoke`` trains every experiment file.
5. The optional hooks it needs: ``TRAINABLE`` (``trainable``), ``InferenceSettings``,
   ``Tracking``, ``SummaryTable`` below; ``FP32_REASON`` (``callbacks/distribution.py``).
"""
from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from vidpose.errors import MOVED_KEYS, ConfigError, InputError

if TYPE_CHECKING:
    from vidpose.tracking.boxes import BoxSource


def trainable(method: Any) -> bool:
    """False for a pipeline of trained models (``TRAINABLE = False``): ``train`` validates it
    once, ``eval``/``track`` build it without ``--ckpt``."""
    return bool(getattr(method, "TRAINABLE", True))


@runtime_checkable
class InferenceSettings(Protocol):
    """A loaded checkpoint runs with the experiment's inference settings (memory, tracker)."""

    def use_settings(self, model: dict[str, Any], data: dict[str, Any]) -> None: ...


@runtime_checkable
class Tracking(Protocol):
    """Tracks persons online (``vidpose track``, ``Predictor.track``), found in ``boxes``."""

    def pipeline(self, boxes: BoxSource) -> Any: ...


@runtime_checkable
class SummaryTable(Protocol):
    """A method class with its own table of a run's figures, printed after train/eval."""

    @classmethod
    def summary_table(cls, metrics: dict[str, float], stage: str = "val") -> str: ...

    @classmethod
    def summary_legend(cls, stage: str = "val") -> str: ...


def _import(path: str) -> type:
    """``"package.module:Class"`` -> the class, imported now."""
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class MethodSpec:
    module: str  # vidpose.methods.<module>: the LightningModule and its config
    model_class: str
    config_class: str
    datamodule: str  # its data module, a DATA_MODULES name

    @property
    def config_cls(self) -> type:
        return _import(f"vidpose.methods.{self.module}:{self.config_class}")

    @property
    def model_cls(self) -> type:
        return _import(f"vidpose.methods.{self.module}:{self.model_class}")


METHODS: dict[str, MethodSpec] = {
    "simple_baseline": MethodSpec("simple_baseline", "SimpleBaseline", "SimpleBaselineConfig",
                                  "crops"),
    "stm": MethodSpec("stm", "STMSkeletons", "STMConfig", "clips"),
    "pose_memory": MethodSpec("pose_memory", "PoseMemory", "PoseMemoryConfig", "track_clips"),
    "centernet": MethodSpec("centernet", "CenterNet", "CenterNetConfig", "boxes"),
    "correspondence": MethodSpec("correspondence", "KeypointCorrespondence",
                                 "CorrespondenceConfig", "pairs"),
    "correspondence_tracking": MethodSpec("correspondence_tracking", "CorrespondenceTracking",
                                          "CorrespondenceTrackingConfig", "track_clips"),
    "two_stage_pose": MethodSpec("two_stage_pose", "TwoStagePose", "TwoStagePoseConfig", "crops"),
    "assoc_embedding": MethodSpec("assoc_embedding", "AssociativeEmbedding",
                                  "AssocEmbeddingConfig", "images"),
    "rnn_decoder": MethodSpec("rnn_decoder", "RNNPoseDecoder", "RNNDecoderConfig", "images"),
}

# The data modules by name: each method's default, or the experiment's experiment.datamodule.
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
    if name and name not in DATA_MODULES:
        raise ConfigError(f"experiment.datamodule: {name!r} is not one of {sorted(DATA_MODULES)}")
    return _import(DATA_MODULES[name or spec.datamodule])


def model_config(config_cls: type, model: dict[str, Any], method: str,
                 choices: dict[str, Any] | None = None, positive: tuple[str, ...] = ()) -> Any:
    """A method's ``model:`` section as its config dataclass; unknown keys are refused, and
    so are values not among their ``choices`` or, for the keys in ``positive``, not above 0."""
    for key in sorted(f"model.{k}" for k in model if f"model.{k}" in MOVED_KEYS):
        raise ConfigError(f"{key} is now {MOVED_KEYS[key]}")
    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(model) - names)
    if unknown:
        raise ConfigError(f"model: unknown key(s) {unknown} for {method}; known: {sorted(names)}")
    cfg = config_cls(**model)
    check_choices(cfg, choices or {})
    check_positive(cfg, positive)
    return cfg


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
    try:
        model = get_method(method).model_cls.load_from_checkpoint(str(checkpoint), map_location=device)
    except ConfigError as err:  # its saved config, e.g. a key an older vidpose wrote
        raise InputError(f"its saved config: {err}", file=str(checkpoint), field=field) from None
    return model.eval()


def configured_boxes(cfg: Any, frame_ids: set[int], split: str, device: Any = "cpu") -> BoxSource:
    """The box source a data config names (``data.box_source``: gt | detections | detector)
    for the frames ``frame_ids`` of ``split``."""
    from vidpose.data_modules.sources import detections_path
    from vidpose.tracking.boxes import DetectionFileBoxes, DetectorBoxes, GroundTruthBoxes

    if cfg.box_source == "gt":
        return GroundTruthBoxes()
    if cfg.box_source == "detections":
        return DetectionFileBoxes(detections_path(cfg, split), cfg.min_box_score, frame_ids)
    if not cfg.detector:
        raise ConfigError("data.box_source=detector needs data.detector: a detector checkpoint "
                          "or run:<experiment> (train one with make train EXP=centernet)")
    detector = load_trained("centernet", cfg.detector, "data.detector", device)  # our detector
    return DetectorBoxes(detector, cfg.min_box_score)


def get_method(name: str) -> MethodSpec:
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(f"unknown method {name!r} in experiment.method; known: "
                          f"{', '.join(sorted(METHODS))}") from None
