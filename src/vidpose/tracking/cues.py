"""Association cues: how a tracker scores a frame's new poses against its live tracks.

A cue (``Cue``) sees every frame's image before the association (``begin``), scores poses
against tracks (``similarity``) and sees the tracked poses after it (``end``), so it may keep
state. ``CUES`` is the one registry of cue names: the rows of the correspondence paper's
Table 2 (tracking baselines: OKS, optical flow, re-id, correspondences) plus box IoU.
``make_cue`` builds one by name; the trackers (``greedy.GreedyTracker``, the correspondence
pipeline) take cues and are never imported by them.

Layers (no import circle; ``tests/tracking/test_cue_imports.py`` checks them):
``similarity`` (IoU, OKS measures) <- ``flow``, ``reid``, ``correspondence`` (cues) <-
``cues`` (protocol, IoU/OKS cues, registry) <- ``greedy`` (the tracker) <- pipelines.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from vidpose.pose import Pose
from vidpose.tracking.correspondence import CorrespondenceCue
from vidpose.tracking.flow import FlowCue
from vidpose.tracking.reid import ReIDCue
from vidpose.tracking.similarity import box_iou, track_oks, tracking_box


@runtime_checkable
class Cue(Protocol):
    """How a tracker scores new poses against live tracks, frame by frame."""

    def begin(self, image: np.ndarray | None) -> None:
        """A new frame arrives (RGB uint8, image coordinates; None when there is no image)."""

    def similarity(self, poses: list[Pose], tracks: dict[int, Pose]) -> np.ndarray:
        """(N, M) similarity of the frame's poses to the tracks' last poses, tracks in dict
        order; higher = more alike. Called with at least one pose and one track."""

    def end(self, tracked: list[Pose]) -> None:
        """The frame's poses with their final track ids (duplicates removed)."""


class IoUCue(Cue):
    """Box IoU of the new poses with the tracks' last boxes (keypoint boxes when no box);
    stateless (``begin`` and ``end`` are the protocol's no-ops)."""

    def similarity(self, poses: list[Pose], tracks: dict[int, Pose]) -> np.ndarray:
        return box_iou(np.stack([tracking_box(p) for p in poses]),
                       np.stack([tracking_box(t) for t in tracks.values()]))


class OKSCue(Cue):
    """OKS of the new poses with the tracks' last poses, motion not taken into account
    (Xiao et al.; the correspondence paper's Table 2 row "OKS"); stateless."""

    def __init__(self, sigmas: np.ndarray | None) -> None:
        if sigmas is None:
            raise ValueError("OKS tracking needs the keypoint sigmas of the poses' schema")
        self.sigmas = np.asarray(sigmas, dtype=np.float64)

    def similarity(self, poses: list[Pose], tracks: dict[int, Pose]) -> np.ndarray:
        return track_oks(poses, list(tracks.values()), self.sigmas)


# name -> builder(sigmas, **options). Order: the correspondence paper's Table 2 rows, then IoU.
CUES: dict[str, Callable[..., Cue]] = {
    "oks": lambda sigmas, **options: OKSCue(sigmas, **options),
    "flow": lambda sigmas, **options: FlowCue(sigmas, **options),
    "reid": lambda sigmas, **options: ReIDCue(**options),
    "correspondence": lambda sigmas, **options: CorrespondenceCue(**options),
    "iou": lambda sigmas, **options: IoUCue(**options),
}


def make_cue(name: str, sigmas: np.ndarray | None = None, **options: Any) -> Cue:
    """The cue called ``name`` (a key of ``CUES``); ``options`` go to its constructor
    (``FlowCue``'s ``scale``, ``ReIDCue``'s ``bins`` and ``momentum``,
    ``CorrespondenceCue``'s ``memory`` and ``affinity_threshold``, ...)."""
    if name not in CUES:
        raise ValueError(f"tracking cue {name!r} is not one of {list(CUES)}")
    return CUES[name](sigmas, **options)
