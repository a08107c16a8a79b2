"""Multi-person pose tracking with self-supervised keypoint correspondences (paper Fig. 2).

This method trains nothing: it runs two trained models over whole videos and scores the
result. The two-stage top-down estimator (``correspondence_pose``, method two_stage_pose)
estimates a pose in every person box; the keypoint correspondence network
(``correspondence_refinement``, method correspondence) recovers missed poses and
associates poses over time (``tracking/pipeline.py``). The table experiments change one
knob of the pipeline: the association cue (Table 2), the joint threshold with and without
recovery (Table 3), the affinity threshold (Table 6), refinement and duplicate removal
(Table 7), track merging ("Ours + Merge").

``make train EXP=<tracking experiment>`` validates once on the split's videos (no
checkpoint is written; ``experiment.monitor`` is logged as ever) and ``vidpose track --exp
<tracking experiment>`` tracks a video of the user's with the same settings.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional

import lightning as L
import numpy as np

from vidpose.data_modules.datasets import as_data_config
from vidpose.errors import ConfigError
from vidpose.keypoints import get_schema
from vidpose.methods import load_trained, model_config
from vidpose.methods.video_validation import VideoValidation
from vidpose.pose import Frame, Pose, PoseDataset
from vidpose.tracking.boxes import BoxSource
from vidpose.tracking.pipeline import CorrespondencePipeline, PipelineConfig, applied_thresholds, track_video


@dataclass(frozen=True)
class CorrespondenceTrackingConfig(PipelineConfig):
    """The ``model:`` section: the two trained models and the pipeline's settings."""

    # A checkpoint file or run:<experiment> (that experiment's newest last.ckpt).
    pose_estimator: Optional[str] = "run:correspondence_pose"
    # Needed by correspondence tracking, recovery and merging; the OKS, flow and re-id
    # trackers without recovery run without it.
    correspondence: Optional[str] = "run:correspondence_refinement"

    def pipeline(self) -> PipelineConfig:
        return PipelineConfig(**{f.name: getattr(self, f.name)
                                 for f in dataclasses.fields(PipelineConfig)})


def _load(method: str, checkpoint: str, key: str) -> L.LightningModule:
    if checkpoint.startswith("run:"):
        raise ConfigError(f"model.{key}: {checkpoint!r} was not resolved to a checkpoint "
                          "(build the experiment through vidpose.run)")
    return load_trained(method, checkpoint, f"model.{key}")


class CorrespondenceTracking(VideoValidation, L.LightningModule):
    """The tracking pipeline around a trained estimator and correspondence network."""

    TRAINABLE = False  # methods.trainable: run.train validates it instead of fitting it

    def __init__(self, model: dict, data: dict, schema: str = "posetrack18") -> None:
        super().__init__()
        self.save_hyperparameters()
        self.cfg = model_config(CorrespondenceTrackingConfig, model, "correspondence_tracking")
        self.schema = get_schema(schema)
        self.data_cfg = as_data_config(data)
        if not self.cfg.pose_estimator:
            raise ConfigError("model.pose_estimator: a two_stage_pose checkpoint or "
                              "run:correspondence_pose is needed")
        self.estimator = _load("two_stage_pose", self.cfg.pose_estimator, "pose_estimator")
        if self.estimator.schema.name != self.schema.name:
            raise ConfigError(f"model.pose_estimator: the estimator predicts {self.estimator.schema.name} "
                              f"keypoints but the data is {self.schema.name}")
        self.correspondence = None
        if self.cfg.pipeline().needs_correspondences:
            if not self.cfg.correspondence:
                raise ConfigError("model.correspondence: correspondence tracking, recovery and "
                                  "merging need a trained correspondence network "
                                  "(run:correspondence_refinement)")
            self.correspondence = _load("correspondence", self.cfg.correspondence, "correspondence")

    def pipeline(self, boxes: BoxSource) -> CorrespondencePipeline:
        net = self.correspondence.net if self.correspondence is not None else None
        # Frames are letterboxed to the size the correspondence network was trained at.
        size = (tuple(int(v) for v in self.correspondence.hparams["data"]["input_size"])
                if self.correspondence is not None else None)
        return CorrespondencePipeline(self.estimator, boxes, self.cfg.pipeline(), net, size)

    def extra_scores(self, data: PoseDataset, poses: dict[int, list[Pose]]) -> dict[str, float]:
        """The thresholds applied where they were mapped onto the Siamese maps' scale
        (Table 7 w/o refinement), logged beside the scores they produced."""
        net = self.correspondence.net if self.correspondence is not None else None
        applied = applied_thresholds(self.cfg.pipeline(), net)
        if (applied.affinity, applied.track) == (self.cfg.affinity_threshold, self.cfg.track_threshold):
            return {}
        return {"applied_affinity_threshold": applied.affinity,
                "applied_track_threshold": applied.track}

    def track(self, pipeline: CorrespondencePipeline, frames: Iterable[tuple[Frame, np.ndarray]],
              video: str) -> Iterator[Frame]:
        return track_video(pipeline, frames)
