"""Top-down tracking with keypoint correspondences (paper Fig. 2), frame by frame.

Per frame:

1. person boxes from a box source (ground truth, a detection file, our detector);
2. a pose per box from the two-stage top-down estimator (Eq. 7 keypoints);
3. recovery of missed detections (``tracking/recovery.py``): the previous frame's detected
   poses are propagated by the correspondence network, boxed and re-estimated;
4. OKS-NMS over detected and recovered poses (the detection wins where both found one
   person, being scored higher);
5. the joint threshold: joints scored below it are written with score 0 (MOTA counts every
   written joint; paper Table 3);
6. greedy association (``tracking/greedy.py``) with a cue: keypoint correspondences (Eq. 6),
   OKS, optical flow + OKS or appearance re-id (Table 2), with or without duplicate
   removal (Table 7).

The affinity and track thresholds are stated for the refined (sigmoid) maps. Read on the
Siamese (softmax) maps (``refinement: false``, Table 7), they are mapped onto those maps'
scale by the network's ``AffinityCalibration`` (matched quantiles of correct-match values),
so that the row measures the refinement and not a threshold that suits one map type only;
``calibrated_thresholds: false`` applies them as set.

After the last frame, ``finish`` merges broken tracks (Eq. 8) when asked to.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Protocol

import numpy as np
import torch
from torch import Tensor

from vidpose.data_modules.transforms import CropTransform
from vidpose.decode import oks_nms
from vidpose.errors import ConfigError
from vidpose.keypoints import Schema
from vidpose.pose import Frame, Pose
from vidpose.tracking.affinity import PreparedFrame, Propagator
from vidpose.tracking.boxes import BoxSource
from vidpose.tracking.correspondence import CorrespondenceMemory
from vidpose.tracking.cues import CUES, make_cue
from vidpose.tracking.greedy import GreedyTracker
from vidpose.tracking.merging import MergeConfig, merge_tracks
from vidpose.tracking.online import box_poses, crop_boxes
from vidpose.tracking.recovery import RecoveryConfig, keep_recovered, propagated_boxes


class PoseEstimator(Protocol):
    """A top-down estimator that locates joints in crops (``methods.two_stage_pose``)."""

    schema: Schema
    input_size: tuple[int, int]

    def locate(self, crops: Tensor) -> tuple[Tensor, Tensor]:
        """(N, 3, H, W) normalised crops -> joints (N, K, 2) in crop pixels, scores (N, K)."""


@dataclass(frozen=True)
class PipelineConfig:
    """How poses are recovered, thresholded and associated (defaults: ours unless said)."""

    tracker: str = "correspondence"  # the association cue, a name in tracking.cues.CUES
    track_threshold: float = 0.2  # least similarity to continue a track
    affinity_threshold: float = 0.3  # Eq. 6's tau (paper Table 6: 0.1-0.5)
    joint_threshold: float = 0.3  # the paper's trade-off (Table 3)
    recovery: bool = False  # Sec. 5.1 (Table 3 turns it on)
    refinement: bool = True  # read refined maps (False: the Siamese maps, Table 7)
    # On Siamese maps, map affinity_threshold and track_threshold (stated for refined maps)
    # through the network's calibration; False applies them as set.
    calibrated_thresholds: bool = True
    remove_duplicates: bool = True  # Table 7
    merge: bool = False  # Eq. 8 post-processing ("Ours + Merge")
    merge_threshold: float = 0.5
    merge_max_gap: int = 30
    max_age: int = 1  # frames a track may be missed and still be continued
    box_padding: float = 1.25
    oks_nms_thr: float = 0.9
    recovery_min_joints: int = 4
    recovery_min_score: float = 0.2
    flow_scale: float = 0.5  # optical flow on frames downscaled by this

    def __post_init__(self) -> None:
        if self.tracker not in CUES:
            raise ConfigError(f"model.tracker: {self.tracker!r} is not one of {list(CUES)}")
        if self.max_age < 1:
            raise ConfigError(f"model.max_age: expected >= 1, got {self.max_age}")

    @property
    def needs_correspondences(self) -> bool:
        return self.tracker == "correspondence" or self.recovery or self.merge


@dataclass(frozen=True)
class AppliedThresholds:
    """The thresholds the pipeline applies to the maps it reads."""

    affinity: float  # Eq. 6's tau and recovery's propagated-joint threshold
    track: float  # least similarity to continue a track (and to call a pose a duplicate)


def applied_thresholds(cfg: PipelineConfig, correspondence: Any | None) -> AppliedThresholds:
    """``cfg``'s thresholds, mapped onto the Siamese maps' scale when the pipeline reads them
    (refinement off) and ``cfg.calibrated_thresholds`` asks for it. The track threshold is a
    similarity of the correspondence cue only; the other cues' similarities keep it as set."""
    as_set = AppliedThresholds(cfg.affinity_threshold, cfg.track_threshold)
    if not cfg.needs_correspondences:
        return as_set
    if cfg.refinement and getattr(correspondence, "refinement", True) is None:
        raise ConfigError("model.correspondence: model.refinement is on but the network has no "
                          "refinement module (a correspondence_siamese run?); name a "
                          "correspondence_refinement run or set model.refinement=false")
    if cfg.refinement or not cfg.calibrated_thresholds:
        return as_set
    calibration = getattr(correspondence, "calibration", None)
    if calibration is None:
        raise ConfigError("model.correspondence: reading the Siamese maps (model.refinement="
                          "false) maps the thresholds onto their scale with the calibration a "
                          "correspondence_refinement run records at validation, and this network "
                          "has none (trained before it was recorded?); train that run again, or "
                          "set model.calibrated_thresholds=false to apply the thresholds as set")
    track = (calibration.siamese_threshold(cfg.track_threshold, "person")
             if cfg.tracker == "correspondence" else cfg.track_threshold)
    return AppliedThresholds(calibration.siamese_threshold(cfg.affinity_threshold, "joint"), track)


class CorrespondencePipeline:
    """Pipeline state for one video at a time (``reset`` between videos)."""

    def __init__(self, estimator: PoseEstimator, boxes: BoxSource, cfg: PipelineConfig,
                 correspondence: Any | None = None,
                 correspondence_input: tuple[int, int] | None = None) -> None:
        if cfg.needs_correspondences and correspondence is None:
            raise ConfigError("model.correspondence: correspondence tracking, recovery and "
                              "merging need a trained correspondence network")
        self.estimator = estimator
        self.boxes = boxes
        self.cfg = cfg
        self.thresholds = applied_thresholds(cfg, correspondence)
        self.schema = estimator.schema
        self.crop = CropTransform(estimator.input_size, estimator.schema, cfg.box_padding)
        # Frames reach the network only when a setting reads correspondences.
        self.propagator = (Propagator(correspondence, correspondence_input, cfg.refinement)
                           if cfg.needs_correspondences else None)
        self.reset()

    def reset(self) -> None:
        self.memory = (CorrespondenceMemory(self.propagator, self.cfg.max_age)
                       if self.propagator is not None else None)
        cfg = self.cfg
        options: dict[str, Any] = {
            "correspondence": {"memory": self.memory, "affinity_threshold": self.thresholds.affinity},
            "flow": {"scale": cfg.flow_scale}}.get(cfg.tracker, {})
        cue = make_cue(cfg.tracker, self.schema.sigmas, **options)
        self.tracker = GreedyTracker(cue, self.thresholds.track, cfg.max_age, self.schema.sigmas,
                                     remove_duplicates=cfg.remove_duplicates)
        self.previous: list[Pose] = []
        self.calls = 0
        self.prepared: dict[int, PreparedFrame] = {}  # call position -> frame, for merging

    def poses_in_boxes(self, image: np.ndarray, boxes: np.ndarray,
                       box_scores: np.ndarray) -> list[Pose]:
        """A top-down pose per box (``online.box_poses``)."""
        if not len(boxes):
            return []
        crops, affines = crop_boxes(self.crop, image, boxes)
        return box_poses(*self.estimator.locate(crops), affines, boxes, box_scores)

    def _recover(self, image: np.ndarray) -> list[Pose]:
        cfg = RecoveryConfig(self.thresholds.affinity, self.cfg.recovery_min_joints,
                             self.cfg.recovery_min_score)
        boxes, scores = propagated_boxes(self.memory, self.previous, cfg)
        return keep_recovered(self.poses_in_boxes(image, boxes, scores), cfg)

    @torch.no_grad()
    def __call__(self, frame: Frame, image: np.ndarray) -> list[Pose]:
        """The frame's tracked poses; a frame the box source knows nothing about (ground
        truth of an unlabelled frame) is passed over."""
        position, self.calls = self.calls, self.calls + 1
        found = self.boxes(frame, image)
        if found is None:
            return []
        if self.memory is not None:
            prepared = self.memory.begin(image)
            if self.cfg.merge:
                self.prepared[position] = prepared
        boxes, box_scores = found
        poses = self.poses_in_boxes(image, boxes, box_scores)
        if self.cfg.recovery and self.previous:
            poses += self._recover(image)
        keep = oks_nms(poses, self.cfg.oks_nms_thr, self.schema.sigmas)
        poses = [poses[k] for k in sorted(keep)]
        for pose in poses:
            pose.keypoints[pose.keypoints[:, 2] < self.cfg.joint_threshold, 2] = 0.0
        tracked = self.tracker.update(poses, image)
        if self.memory is not None and self.cfg.tracker != "correspondence":
            self.memory.end(tracked)  # the correspondence cue records them itself
        self.previous = tracked
        return tracked

    def finish(self, frames: list[Frame]) -> list[Frame]:
        """The video's tracked frames after track merging (as they are without it).

        ``frames``: this pipeline's outputs since ``reset``, in call order (passed-over
        frames included)."""
        if not self.cfg.merge:
            return frames
        return merge_tracks(frames, self.propagator, self.prepared.__getitem__, self.schema.sigmas,
                            MergeConfig(self.cfg.merge_threshold, self.cfg.merge_max_gap))


def track_video(pipeline: CorrespondencePipeline, frames: Iterable[tuple[Frame, np.ndarray]]
                ) -> Iterator[Frame]:
    """Each frame of one video with its tracked poses (merged at the end when configured)."""
    pipeline.reset()
    out = [dataclasses.replace(frame, poses=pipeline(frame, image)) for frame, image in frames]
    yield from pipeline.finish(out)
