"""The evaluation of a top-down model on the crop data module's batches (SimpleBaseline,
the two-stage net): poses of the whole split mapped to the image, de-duplicated, OKS-NMS'd
(detection boxes), scored (PoseTrack mAP/MOTA or COCO AP) and written."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vidpose.decode import crop_to_image, oks_nms, person_score
from vidpose.evaluation.scoring import score_poses, write_predictions
from vidpose.evaluation.split import SplitEvaluator
from vidpose.keypoints import Schema
from vidpose.pose import Pose, PoseDataset


def crop_boxes(affine: Tensor, size: torch.Size) -> Tensor:
    """(B, 4) x, y, w, h of each input crop in image pixels (its corners' bounding box).

    Pixel centres are at integer coordinates, so the crop's outer edges are at -0.5 and
    size - 0.5.
    """
    height, width = size
    corners = torch.tensor([[0, 0], [width, 0], [0, height], [width, height]],
                           dtype=affine.dtype, device=affine.device) - 0.5
    mapped = crop_to_image(corners.expand(affine.shape[0], 4, 2), affine)
    low, high = mapped.min(1).values, mapped.max(1).values
    return torch.cat([low, high - low], -1)


class CropPoseEvaluator(SplitEvaluator):
    """Poses from crops: ``add(batch, crop_xy, scores)`` per batch, ``finish`` per split.

    ``joint_threshold``: joints scored below it are written (0, 0, 0); ``oks_nms_thr``: the
    OKS-NMS of poses from detection boxes; ``device``: where the metrics run.
    """

    def __init__(self, schema: Schema, joint_threshold: float, oks_nms_thr: float,
                 device: torch.device | str = "cpu") -> None:
        super().__init__()
        self.schema, self.device = schema, device
        self.joint_threshold, self.oks_nms_thr = joint_threshold, oks_nms_thr

    def add(self, batch: dict[str, Tensor], crop_xy: Tensor, scores: Tensor) -> None:
        """Keep a batch's poses: ``crop_xy`` (B, K, 2) in crop pixels, ``scores`` (B, K)."""
        image_xy = crop_to_image(crop_xy, batch["crop_to_image"])
        self.batches.append({
            "frame": batch["frame"].cpu().numpy(), "person": batch["person"].cpu().numpy(),
            "track_id": batch["track_id"].cpu().numpy(), "score": batch["score"].cpu().numpy(),
            "keypoints": torch.cat([image_xy, scores[..., None].to(image_xy.dtype)], -1).cpu().numpy(),
            "box": crop_boxes(batch["crop_to_image"], batch["image"].shape[-2:]).cpu().numpy(),
        })

    def finish(self, dataset: PoseDataset, folder: Path | None) -> dict[str, float]:
        """PoseTrack mAP/MOTA (or COCO AP) of the split; its prediction files in ``folder``."""
        # A crop is its frame, person and box: crops of detection boxes share person -1.
        poses = self.poses_per_frame(self.unique_rows(lambda rows: np.column_stack(
            [rows["frame"], rows["person"], np.round(rows["box"], 2)])))
        if folder is not None:
            write_predictions(folder, dataset, poses)
        return score_poses(dataset, poses, self.device)

    def poses_per_frame(self, rows: dict[str, np.ndarray]) -> dict[int, list[Pose]]:
        """Predicted Poses by frame index, OKS-NMS'd (detection boxes only)."""
        if not rows:
            return {}
        frame, person, track_id, box_score, keypoints, box = (
            rows[k] for k in ("frame", "person", "track_id", "score", "keypoints", "box"))
        scores = person_score(box_score, keypoints[..., 2])
        keypoints[..., 2] = np.where(keypoints[..., 2] >= self.joint_threshold, keypoints[..., 2], 0.0)
        by_frame: dict[int, list[Pose]] = {}
        from_detection: dict[int, list[Pose]] = {}
        for i in range(len(frame)):
            pose = Pose(keypoints[i], box=box[i], track_id=int(track_id[i]), score=float(scores[i]))
            target = from_detection if person[i] < 0 else by_frame
            target.setdefault(int(frame[i]), []).append(pose)
        # A pose from a detection box belongs to no track (the estimator does not track): it
        # gets a track id of its own, after every ground-truth one, so that the PoseTrack
        # files stay valid (one person per track id and frame) and MOTA counts no tracking.
        untracked = int(track_id.max(initial=-1)) + 1
        for index in sorted(from_detection):
            candidates = from_detection[index]
            keep = oks_nms(candidates, self.oks_nms_thr, self.schema.sigmas)
            for k in keep:
                if candidates[k].track_id < 0:
                    candidates[k].track_id, untracked = untracked, untracked + 1
            by_frame.setdefault(index, []).extend(candidates[k] for k in keep)
        return by_frame
