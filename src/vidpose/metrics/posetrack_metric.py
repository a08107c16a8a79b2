"""PoseTrack mAP and MOTA as torchmetrics Metrics, for validation loops.

The metric knows the split's ground-truth frames; ``update`` takes predicted poses (the
frame each belongs to, PoseTrack18 keypoints with per-joint scores, a track id) and
``compute`` evaluates them exactly as ``vidpose eval posetrack`` evaluates prediction files
(same clean-up, matching and counts; videos in name order, its default). A joint is predicted when its
score is above zero, as in the prediction files the suite writes.

Every pose carries an int64 id and counts once (``metrics/samples.py``), also when several
DDP ranks all hold it.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from vidpose.keypoints import POSETRACK18
from vidpose.metrics.posetrack import PoseTrackResult, evaluate_videos
from vidpose.metrics.posetrack_inputs import eval_video, video_order_key
from vidpose.metrics.samples import SampleMetric, check_ids
from vidpose.pose import Frame, Pose, PoseDataset


class _PoseTrackPredictions(SampleMetric):
    def __init__(self, frames: list[Frame], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.frames = frames
        for name in ("frame", "keypoints", "track"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, frame: Tensor, keypoints: Tensor, track_ids: Tensor, ids: Tensor) -> None:
        """frame (B,) index into the metric's frames, keypoints (B, 17, 3) x, y, score in
        POSETRACK18 order, track_ids (B,) and ids (B,) int64 (one per distinct pose)."""
        batch = frame.shape[0]
        if keypoints.shape != (batch, POSETRACK18.num_keypoints, 3):
            raise ValueError(f"expected keypoints ({batch}, {POSETRACK18.num_keypoints}, 3), got "
                             f"{tuple(keypoints.shape)}")
        if track_ids.shape != (batch,):
            raise ValueError(f"expected track_ids of shape ({batch},), got {tuple(track_ids.shape)}")
        check_ids(ids, batch)
        self.frame.append(frame.long())
        self.keypoints.append(keypoints.double())
        self.track.append(track_ids.long())
        self.ids.append(ids)

    def result(self) -> PoseTrackResult:
        """poseval's figures for everything accumulated (synced across ranks)."""
        predicted: list[list[Pose]] = [[] for _ in self.frames]
        rows = self.first_rows("frame", "keypoints", "track")
        if rows:
            frame, keypoints, track = (row.cpu().numpy() for row in rows)
            present = keypoints[..., 2] > 0
            keypoints[~present] = 0.0
            for f, kps, t, flags in zip(frame, keypoints, track, present):
                predicted[int(f)].append(Pose(kps, track_id=int(t),
                                              extra={"visibility": flags.astype(np.float64)}))
        position = {id(f): i for i, f in enumerate(self.frames)}
        videos = PoseDataset(self.frames, POSETRACK18, "").videos()  # each in frame order
        return evaluate_videos([
            eval_video(name, frames, [predicted[position[id(f)]] for f in frames])
            for name, frames in sorted(videos.items(), key=lambda item: video_order_key(item[0]))])


def _ap(result: PoseTrackResult) -> dict[str, Any]:
    return {"mAP": result.map, "per_joint": torch.tensor(result.ap[:-1])}


def _mot(result: PoseTrackResult) -> dict[str, Any]:
    return {"MOTA": result.mota[-1], "MOTP": result.motp[-1],
            "precision": result.mot_precision[-1], "recall": result.mot_recall[-1],
            "id_switches": result.id_switches, "per_joint": torch.tensor(result.mota[:-1])}


class PoseTrackAP(_PoseTrackPredictions):
    """PoseTrack mAP (poseval): ``{"mAP": total, "per_joint": (15,) tensor}`` in percent."""

    def compute(self) -> dict[str, Any]:
        return _ap(self.result())


class PoseTrackMOTA(_PoseTrackPredictions):
    """PoseTrack MOTA (poseval) with MOTP, precision, recall and ID switches, in percent."""

    def compute(self) -> dict[str, Any]:
        return _mot(self.result())


class PoseTrackMetrics(_PoseTrackPredictions):
    """Both at once from one evaluation: ``{"ap": PoseTrackAP's dict, "mot": PoseTrackMOTA's}``."""

    def compute(self) -> dict[str, Any]:
        result = self.result()
        return {"ap": _ap(result), "mot": _mot(result)}
