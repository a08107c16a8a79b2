"""The online top-down pipeline: a video, frame by frame, to tracked poses.

Per frame (pose temporal memory, Fig. 1; LightTrack's online top-down scheme):

1. person boxes from a box source (``tracking/boxes.py``);
2. memory association: each box takes the identity of the previous frame's person with the
   highest box IoU (greedy, one-to-one); below ``association_iou`` it is a new person with
   a new, empty memory (the paper's rule);
3. each box is cropped and the estimator predicts its heatmaps, reading that person's
   memory (``estimate``) with CoDA when the video is crowded, vanilla attention otherwise;
   poses are decoded into image pixels and OKS-NMS'd (detectors give duplicate boxes);
4. the kept persons' enhanced features are written to their memories (the write policy in
   ``callbacks/pose_memory_write.py``); memories of persons gone for more than ``max_age``
   frames are dropped;
5. track ids: the memory identities (``tracker: memory``), or the LightTrack-style greedy
   IoU/OKS tracker run on the poses (``greedy_iou`` / ``greedy_oks``, the baseline).

An estimator without memory (``policy`` None) makes this the plain top-down pipeline.

Crowdedness (the CoDA switch) comes from the boxes the pipeline is given, never from ground
truth counts, so that validation measures what a user's run does: ``running_mean`` (the
paper's measure, the video's average persons per frame, estimated online from the boxes of
the frames so far, this one included) or ``frame`` (this frame's boxes alone).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterable, Iterator, Protocol

import numpy as np
import torch
from torch import Tensor

from vidpose.callbacks.pose_memory_write import MemoryWritePolicy, PersonMemory, keypoint_quality
from vidpose.codec import HeatmapCodec
from vidpose.data_modules.transforms import CropTransform, normalize
from vidpose.decode import crop_to_image, oks_nms, person_score
from vidpose.errors import ConfigError
from vidpose.keypoints import Schema
from vidpose.pose import Frame, Pose
from vidpose.tracking.boxes import BoxSource
from vidpose.tracking.greedy import GreedyTracker

TRACKERS = ("memory", "greedy_iou", "greedy_oks")
CROWDEDNESS = ("running_mean", "frame")


class Estimator(Protocol):
    """What the pipeline needs of a top-down pose model (``methods.pose_memory.PoseMemory``)."""

    schema: Schema
    codec: HeatmapCodec  # its crop size, and how its heatmaps decode
    policy: MemoryWritePolicy | None  # None: the model has no memory

    def estimate(self, crops: Tensor, memories: list[Tensor | None],
                 crowded: bool) -> tuple[Tensor, Tensor | None]:
        """(N, 3, H, W) crops and each person's stored memory (``PersonMemory.stacked()``,
        T_i maps) or None -> heatmaps (N, K, H/s, W/s) and what to write per person (N, ...:
        one ``PersonMemory.write`` map each) or None."""


@dataclass(frozen=True)
class TrackingConfig:
    """How the pipeline associates, suppresses and tracks (values ours unless said)."""

    association_iou: float = 0.3  # below this box IoU a person gets a new memory
    max_age: int = 1  # frames a person may be missed and keep its memory and identity
    tracker: str = "memory"  # memory | greedy_iou | greedy_oks (LightTrack-style baseline)
    track_threshold: float = 0.3  # greedy trackers: least IoU/OKS to continue a track
    box_padding: float = 1.25
    oks_nms_thr: float = 0.9  # the SimpleBaseline code's value
    joint_threshold: float = 0.0  # joints below this are written with score 0 (MOTA ignores them)
    crowd_threshold: float = 8.0  # persons per frame above which a video counts as crowded
    crowdedness: str = "running_mean"  # running_mean | frame: boxes per frame (see above)

    def __post_init__(self) -> None:
        if self.tracker not in TRACKERS:
            raise ConfigError(f"tracker: {self.tracker!r} is not one of {list(TRACKERS)}")
        if self.crowdedness not in CROWDEDNESS:
            raise ConfigError(f"crowdedness: {self.crowdedness!r} is not one of {list(CROWDEDNESS)}")
        if self.max_age < 1:
            raise ConfigError(f"max_age: expected >= 1, got {self.max_age}")


def crop_boxes(crop: CropTransform, image: np.ndarray, boxes: np.ndarray) -> tuple[Tensor, Tensor]:
    """Normalised crops (N, 3, H, W) of each box and their crop -> image affines (N, 2, 3)."""
    samples = [crop(image, box, np.zeros((crop.schema.num_keypoints, 3))) for box in boxes]
    crops = normalize(np.stack([s.image for s in samples]))
    return crops, torch.from_numpy(np.stack([s.crop_to_image for s in samples]))


def box_poses(coords: Tensor, scores: Tensor, affines: Tensor, boxes: np.ndarray,
              box_scores: np.ndarray) -> list[Pose]:
    """A pose per box from its crop's joints (N, K, 2) and scores (N, K), in image pixels,
    scored as SimpleBaseline rescores."""
    xy = crop_to_image(coords.cpu(), affines).numpy()
    scores = scores.double().cpu().numpy()
    rescored = person_score(np.asarray(box_scores, dtype=np.float64), scores)
    return [Pose(np.concatenate([xy[i], scores[i, :, None]], -1), box=boxes[i],
                 score=float(rescored[i])) for i in range(len(boxes))]


class OnlineTopDown:
    """Pipeline state for one video at a time: call ``reset`` between videos."""

    def __init__(self, estimator: Estimator, boxes: BoxSource, cfg: TrackingConfig) -> None:
        self.estimator = estimator
        self.boxes = boxes
        self.cfg = cfg
        self.crop = CropTransform(estimator.codec.input_size, estimator.schema, cfg.box_padding)
        self.reset()

    def reset(self) -> None:
        """Forget every person and the video's box counts."""
        self.association = GreedyTracker("iou", self.cfg.association_iou, self.cfg.max_age)
        similarity = "oks" if self.cfg.tracker == "greedy_oks" else "iou"
        self.tracker = GreedyTracker(similarity, self.cfg.track_threshold, self.cfg.max_age,
                                     self.estimator.schema.sigmas)
        self.memories: dict[int, PersonMemory] = {}
        self.last_seen: dict[int, int] = {}
        self.frames = 0
        self.boxes_seen = 0

    def crowded(self, boxes_now: int) -> bool:
        """The CoDA switch for the current frame (``boxes_now`` boxes), after ``crowdedness``."""
        if self.cfg.crowdedness == "frame":
            return boxes_now > self.cfg.crowd_threshold
        return self.boxes_seen / max(self.frames, 1) > self.cfg.crowd_threshold

    @torch.no_grad()
    def __call__(self, frame: Frame, image: np.ndarray) -> list[Pose]:
        """The frame's tracked poses (x, y, score per joint, box, person score, track id).

        A frame the box source knows nothing about (ground truth of an unlabelled frame) is
        passed over: no poses, and it does not count as a frame persons were missed in.
        """
        found = self.boxes(frame, image)
        if found is None:
            return []
        boxes, box_scores = found
        self.frames += 1
        self.boxes_seen += len(boxes)
        num_k = self.estimator.schema.num_keypoints
        identities = [p.track_id for p in self.association.update(
            [Pose(np.zeros((num_k, 3)), box=b, score=s) for b, s in zip(boxes, box_scores)])]
        poses: list[Pose] = []
        if len(boxes):
            heatmaps, enhanced, affines = self._estimate(image, boxes, identities)
            poses = box_poses(*self.estimator.codec.decode(heatmaps), affines, boxes, box_scores)
            for pose, identity in zip(poses, identities):
                pose.track_id = identity
                pose.keypoints[pose.keypoints[:, 2] < self.cfg.joint_threshold, 2] = 0.0
            keep = oks_nms(poses, self.cfg.oks_nms_thr, self.estimator.schema.sigmas)
            poses = [poses[k] for k in sorted(keep)]
            self._write(heatmaps, enhanced, sorted(keep), identities)
        for identity in [i for i, seen in self.last_seen.items() if self.frames - seen > self.cfg.max_age]:
            self.last_seen.pop(identity)  # gone for more than max_age frames
            self.memories.pop(identity, None)
        if self.cfg.tracker != "memory":
            poses = self.tracker.update(poses)
        return poses

    def _estimate(self, image: np.ndarray, boxes: np.ndarray,
                  identities: list[int]) -> tuple[Tensor, Tensor | None, Tensor]:
        crops, affines = crop_boxes(self.crop, image, boxes)
        memories = [self.memories[i].stacked() if i in self.memories else None for i in identities]
        heatmaps, enhanced = self.estimator.estimate(crops, memories, self.crowded(len(boxes)))
        return heatmaps.float().cpu(), enhanced, affines

    def _write(self, heatmaps: Tensor, enhanced: Tensor | None, kept: list[int],
               identities: list[int]) -> None:
        """Write the kept persons' enhanced features into their memories (memory models)."""
        for i in kept:
            self.last_seen[identities[i]] = self.frames
        policy = self.estimator.policy
        if enhanced is None or policy is None or not kept:
            return
        scores, xy = keypoint_quality(heatmaps[kept], policy.blur_sigma)
        for j, i in enumerate(kept):
            memory = self.memories.setdefault(identities[i], PersonMemory(policy))
            memory.write(enhanced[i], heatmaps[i], (scores[j].to(enhanced.device), xy[j].to(enhanced.device)))


def track_video(pipeline: OnlineTopDown, frames: Iterable[tuple[Frame, np.ndarray]]
                ) -> Iterator[Frame]:
    """Each frame of one video (in order) with its tracked poses; the pipeline is reset first."""
    pipeline.reset()
    for frame, image in frames:
        yield dataclasses.replace(frame, poses=pipeline(frame, image))
