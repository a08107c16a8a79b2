"""Validation by tracking whole videos, shared by the tracking methods (pose memory,
correspondence tracking).

The validation set is one item per video (``data_modules.track_clips.VideoDataset``); each
step runs the method's online pipeline over every frame of its video, and the epoch end
scores the split's poses with PoseTrack mAP and MOTA (``evaluation/scoring.py``), logs them as
``val/<name>`` and writes the predictions as PoseTrack18 files. Under DDP every rank tracks
its share of the videos and gathers all poses before scoring, so every rank logs the same
values.
"""
from __future__ import annotations

from typing import Any

from vidpose.data_modules.datasets import read_image
from vidpose.data_modules.track_clips import VideoSample
from vidpose.evaluation.scoring import score_poses, write_predictions
from vidpose.evaluation.split import gather_all, result_folder
from vidpose.methods import configured_boxes
from vidpose.pose import Pose, PoseDataset


class VideoValidation:
    """Mixin for a LightningModule (a ``methods.Tracking``) that has ``data_cfg`` and
    ``track(pipeline, frames, video) -> frames`` (one video's (frame, image) pairs in order ->
    its frames with tracked poses)."""

    _poses: dict[int, list[Pose]]
    _pipeline: Any

    def extra_scores(self, data: PoseDataset, poses: dict[int, list[Pose]]) -> dict[str, float]:
        """Further ``val/<name>`` values (e.g. on a subset of the videos)."""
        return {}

    def make_pipeline(self, data: PoseDataset) -> Any:
        """The pipeline of one epoch's validation, with the data config's boxes for ``data``."""
        return self.pipeline(configured_boxes(self.data_cfg, {f.image_id for f in data.frames},
                                              self.data_cfg.val_split, self.device))

    def on_validation_epoch_start(self) -> None:
        self._poses = {}
        self._pipeline = None

    def validation_step(self, batch: VideoSample, batch_idx: int) -> None:
        datamodule = self.trainer.datamodule
        data, videos = datamodule.val_data, datamodule.val_set
        if self._pipeline is None:
            self._pipeline = self.make_pipeline(data)
        for index in batch["video"].reshape(-1).tolist():
            frames = [data.frames[i] for i in videos.videos[index]]
            tracked = self.track(self._pipeline, ((f, read_image(data, f)) for f in frames),
                                 videos.names[index])
            for i, frame in zip(videos.videos[index], tracked):
                self._poses[i] = frame.poses

    def on_validation_epoch_end(self) -> None:
        poses = {k: v for part in gather_all(self._poses) for k, v in part.items()}
        self._poses = {}
        data = self.trainer.datamodule.val_data
        # Every rank holds all poses and computes the same values; sync_dist's mean keeps them.
        for name, value in score_poses(data, poses, self.device).items():
            self.log(f"val/{name}", value, sync_dist=True)
        for name, value in self.extra_scores(data, poses).items():
            self.log(f"val/{name}", value, sync_dist=True)
        folder = result_folder(self.trainer, "val")
        if folder is not None:
            write_predictions(folder, data, poses)
