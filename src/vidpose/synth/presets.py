"""Named sizes of the synthetic world: ``tiny`` (tests), ``default`` (compact experiments), ``crowded``.

A preset says how many videos and images each dataset layout gets, which frames of a
video are labelled (PoseTrack18 style), what the scenes look like and how good the
simulated detector is.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from vidpose.errors import ConfigError
from vidpose.synth.detector import DetectorConfig
from vidpose.synth.scene import SceneConfig


@dataclass(frozen=True)
class VideoSplit:
    """Videos of one PoseTrack18-layout split and which of their frames carry labels.

    A frame is labelled when it lies in the contiguous middle ``middle`` share of the video
    (PoseTrack18 train style) and is every ``every``-th frame from there (val style).
    """

    videos: int
    frames: int
    middle: float = 1.0
    every: int = 1

    def __post_init__(self) -> None:
        # Image ids hold the frame in 4 digits, as PoseTrack18's do.
        if (not 0 <= self.videos <= 50_000 or not 1 <= self.frames <= 9_999
                or not 0.0 < self.middle <= 1.0 or self.every < 1):
            raise ConfigError(f"video split: expected 0 <= videos <= 50000, 1 <= frames <= 9999, "
                              f"0 < middle <= 1, every >= 1; got {self}")

    def labeled(self) -> np.ndarray:
        """(frames,) bool: which frames are labelled."""
        count = max(1, int(round(self.middle * self.frames)))
        start = (self.frames - count) // 2
        index = np.arange(self.frames)
        return (index >= start) & (index < start + count) & ((index - start) % self.every == 0)


@dataclass(frozen=True)
class Preset:
    """Everything ``synthesize`` needs to know about one named data set."""

    name: str
    video_scene: SceneConfig  # PoseTrack18 layout
    image_scene: SceneConfig  # COCO layout
    crowded_scene: SceneConfig  # OCHuman layout
    posetrack18: dict[str, VideoSplit]
    coco: dict[str, int]  # split -> images
    ochuman: dict[str, int]
    detector: DetectorConfig = field(default_factory=DetectorConfig)


def _crowded(scene: SceneConfig, persons: tuple[int, int]) -> SceneConfig:
    """OCHuman-like: several persons heavily overlapping at about one distance."""
    return replace(scene, persons=persons, overlap=0.9, occluders=(0, 1), crowd=0.0,
                   person_height=(0.55, 0.8), activities=(0.3, 0.05, 0.4, 0.25))


_DEFAULT_VIDEO = SceneConfig(width=320, height=240)
_DEFAULT_IMAGE = replace(_DEFAULT_VIDEO, persons=(1, 5), person_height=(0.3, 0.85), crowd=0.15)
_TINY_VIDEO = SceneConfig(width=160, height=128, persons=(2, 4))
_TINY_IMAGE = replace(_TINY_VIDEO, persons=(1, 4), person_height=(0.35, 0.85))

PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        name="tiny",
        video_scene=_TINY_VIDEO, image_scene=_TINY_IMAGE,
        crowded_scene=_crowded(_TINY_IMAGE, (3, 4)),
        posetrack18={"train": VideoSplit(3, 8, middle=0.75), "val": VideoSplit(2, 8, every=2)},
        coco={"train": 12, "val": 6}, ochuman={"val": 4},
    ),
    "default": Preset(
        name="default",
        video_scene=_DEFAULT_VIDEO, image_scene=_DEFAULT_IMAGE,
        crowded_scene=_crowded(_DEFAULT_IMAGE, (3, 6)),
        posetrack18={"train": VideoSplit(24, 24, middle=0.75), "val": VideoSplit(8, 24, every=2)},
        coco={"train": 300, "val": 80}, ochuman={"val": 50},
    ),
    "crowded": Preset(
        name="crowded",
        video_scene=replace(_DEFAULT_VIDEO, persons=(5, 9), overlap=0.6, occluders=(1, 3), crowd=0.5),
        image_scene=replace(_DEFAULT_IMAGE, persons=(4, 8), overlap=0.6, occluders=(1, 3)),
        crowded_scene=_crowded(_DEFAULT_IMAGE, (4, 8)),
        posetrack18={"train": VideoSplit(24, 24, middle=0.75), "val": VideoSplit(8, 24, every=2)},
        coco={"train": 300, "val": 80}, ochuman={"val": 200},
        detector=DetectorConfig(miss_rate=0.08, occlusion_miss=0.45, false_positives=0.6),
    ),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown synthetic preset {name!r}; known: {sorted(PRESETS)}") from None
