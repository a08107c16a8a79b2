"""SimpleBaseline: top-down pose estimation from person crops.

Xiao, Wu, Wei, "Simple Baselines for Human Pose Estimation and Tracking" (ECCV 2018). A
ResNet (stride 32) with three deconvolution layers and a 1x1 convolution predicts one
heatmap per joint at stride 4, trained with a visibility-weighted MSE, Adam and a
step schedule. At test time the heatmaps of the crop and of its mirror image are averaged
(flip test), peaks are refined to sub-pixel precision and mapped back to the image.

Validation (and test) score the predicted poses of the whole split with the field's own
metrics: PoseTrack mAP and MOTA (poseval's rules) on PoseTrack18-format data, COCO keypoint
AP (pycocotools) on COCO and OCHuman. Crops come from ground-truth boxes with their track
ids (or from detection boxes, OKS-NMS'd, which keep the detections' track ids), so MOTA
here measures the poses under given tracks. The predictions are also written as
PoseTrack18 files, one per video (COCO results for datasets without videos), with every
frame of the split kept so that ``vidpose eval posetrack`` reads them against the ground
truth and gives the same numbers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from vidpose.data_modules.datasets import as_data_config
from vidpose.decode import (REFINEMENTS, crop_to_image, decode_heatmaps, flip_back,
                            heatmap_to_crop, oks_nms, person_score)
from vidpose.errors import ConfigError
from vidpose.keypoints import get_schema
from vidpose.losses import joints_mse_loss
from vidpose.methods import check_choices, model_config
from vidpose.methods.common import BACKBONE_STRIDE, EvaluationHooks, adam_with_steps, deconv_resnet
from vidpose.methods.scoring import score_poses, write_predictions
from vidpose.nn.heads import DeconvHead
from vidpose.nn.resnet import ARCHITECTURES
from vidpose.pose import Pose, PoseDataset



@dataclass
class SimpleBaselineConfig:
    """The ``model:`` section of a SimpleBaseline experiment."""

    backbone: str = "resnet50"  # resnet18 | resnet34 | resnet50 | resnet101 | resnet152
    pretrained: Optional[str] = None  # local torchvision ImageNet state dict
    deconv_layers: int = 3
    deconv_filters: int = 256
    deconv_kernel: int = 4
    final_kernel: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_steps: list[int] = field(default_factory=lambda: [90, 120])  # epochs
    lr_factor: float = 0.1
    flip_test: bool = True
    flip_shift: bool = True
    refine: str = "quarter"  # sub-pixel decoding: quarter (official) | taylor (DARK's step)
    oks_nms_thr: float = 0.9  # OKS-NMS of poses from detection boxes (official value)
    # Joints scored below this are left out of the predictions (written 0, 0, 0). MOTA counts
    # every predicted joint whatever its score, so PoseTrack entries drop unsure joints: a
    # higher threshold trades AP for MOTA. 0 keeps every joint (what AP alone wants).
    joint_threshold: float = 0.0


def _concatenate(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Batches of prediction arrays joined key by key ({} for none)."""
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]} if parts else {}


def _model_config(model: dict[str, Any]) -> SimpleBaselineConfig:
    cfg = model_config(SimpleBaselineConfig, model, "simple_baseline")
    check_choices(cfg, {"backbone": ARCHITECTURES, "refine": REFINEMENTS})
    return cfg


class CropPoseEvaluation(EvaluationHooks):
    """Validation and test of a top-down model on the crop data module's batches.

    Each evaluation step hands its crops' keypoints (crop pixels) and joint scores to
    ``_record_crop_poses``; at the epoch's end the poses of the whole split are mapped to
    the image, de-duplicated, OKS-NMS'd (detection boxes), scored (PoseTrack mAP/MOTA or
    COCO AP) and written. The host module provides ``schema`` and a ``cfg`` with
    ``joint_threshold`` and ``oks_nms_thr``.
    """

    def _record_crop_poses(self, batch: dict[str, Tensor], crop_xy: Tensor,
                           scores: Tensor) -> None:
        """Keep a batch's poses: ``crop_xy`` (B, K, 2) in crop pixels, ``scores`` (B, K)."""
        image_xy = crop_to_image(crop_xy, batch["crop_to_image"])
        self._predictions.append({
            "frame": batch["frame"].cpu().numpy(), "person": batch["person"].cpu().numpy(),
            "track_id": batch["track_id"].cpu().numpy(), "score": batch["score"].cpu().numpy(),
            "keypoints": torch.cat([image_xy, scores[..., None].to(image_xy.dtype)], -1).cpu().numpy(),
            "box": self._crop_boxes(batch["crop_to_image"], batch["image"].shape[-2:]).cpu().numpy(),
        })

    @staticmethod
    def _crop_boxes(affine: Tensor, size: torch.Size) -> Tensor:
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

    def _evaluation_epoch_end(self, stage: str) -> None:
        predictions = self._gather_predictions()
        self._predictions = []
        dataset = self._split_data(stage)
        poses = self._poses_per_frame(predictions)
        # Every rank holds all predictions now and gives the metric all of them; the pose
        # ids make the repeats count once, so every rank computes the same values and the
        # mean that sync_dist takes leaves them exactly as they are.
        for name, value in score_poses(dataset, poses, self.device).items():
            self.log(f"{stage}/{name}", value, sync_dist=True)
        # The sanity check runs on a few batches only: its files would be misleading.
        if self.trainer.is_global_zero and not self.trainer.sanity_checking:
            write_predictions(Path(self.trainer.default_root_dir) / "predictions" / stage,
                              dataset, poses)

    def _gather_predictions(self) -> dict[str, np.ndarray]:
        """This epoch's predictions of all processes, concatenated (on every rank)."""
        parts = [_concatenate(self._predictions)]
        if dist.is_available() and dist.is_initialized():
            parts = [None] * dist.get_world_size()
            dist.all_gather_object(parts, _concatenate(self._predictions))
        return _concatenate([p for p in parts if p])

    def _split_data(self, stage: str) -> PoseDataset:
        """The PoseDataset whose frames the batches' ``frame`` indices point into.

        The crop data module tests on its validation split, so ``test`` falls back to
        ``val_data`` when the data module has no ``test_data``.
        """
        datamodule = self.trainer.datamodule
        dataset = getattr(datamodule, f"{stage}_data", None)
        if dataset is None and stage == "test":
            dataset = getattr(datamodule, "val_data", None)
        if dataset is None:
            raise ConfigError(f"{type(self).__name__} writes {stage} predictions for the "
                              f"frames of the data module's {stage}_data, which "
                              f"{type(datamodule).__name__} does not provide")
        return dataset

    def _poses_per_frame(self, predictions: dict[str, np.ndarray]) -> dict[int, list[Pose]]:
        """Predicted Poses by frame index, de-duplicated and OKS-NMS'd (detection boxes only)."""
        if not predictions:
            return {}
        # DistributedSampler repeats samples to even out the ranks: keep one of each crop,
        # in key order, so that the files do not depend on how the ranks split the data.
        key = np.column_stack([predictions["frame"], predictions["person"],
                               np.round(predictions["box"], 2)])
        _, first = np.unique(key, axis=0, return_index=True)
        frame, person, track_id, box_score, keypoints, box = (
            predictions[k][first] for k in ("frame", "person", "track_id", "score", "keypoints", "box"))
        scores = person_score(box_score, keypoints[..., 2])
        keypoints[..., 2] = np.where(keypoints[..., 2] >= self.cfg.joint_threshold, keypoints[..., 2], 0.0)
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
            keep = oks_nms(candidates, self.cfg.oks_nms_thr, self.schema.sigmas)
            for k in keep:
                if candidates[k].track_id < 0:
                    candidates[k].track_id, untracked = untracked, untracked + 1
            by_frame.setdefault(index, []).extend(candidates[k] for k in keep)
        return by_frame


class SimpleBaseline(CropPoseEvaluation, L.LightningModule):
    """ResNet + deconvolution head on person crops; mAP/MOTA (or COCO AP) and prediction
    files at validation."""

    def __init__(self, model: dict, data: dict, schema: str = "posetrack18") -> None:
        super().__init__()
        self.save_hyperparameters()
        self.cfg = _model_config(model)
        self.schema = get_schema(schema)
        # The data section as the data module reads it: validated, defaults filled in.
        self.stride = int(as_data_config(data).heatmap_stride)
        self.backbone = deconv_resnet(self, model, self.stride)
        self.head = DeconvHead(self.backbone.out_channels, self.schema.num_keypoints,
                               self.cfg.deconv_layers, self.cfg.deconv_filters,
                               self.cfg.deconv_kernel, self.cfg.final_kernel)
        self._predictions: list[dict[str, np.ndarray]] = []

    def forward(self, image: Tensor) -> Tensor:
        """(B, 3, H, W) normalised crops -> (B, K, H / stride, W / stride) heatmaps.

        Inputs whose sides are not multiples of 32 are zero-padded at the right and bottom
        (zero is the mean colour after normalisation) and the heatmaps cropped back, which
        keeps heatmap pixel u at input pixel stride * u.
        """
        height, width = image.shape[-2:]
        pad_h, pad_w = -height % BACKBONE_STRIDE, -width % BACKBONE_STRIDE
        if pad_h or pad_w:
            image = F.pad(image, (0, pad_w, 0, pad_h))
        heatmaps = self.head(self.backbone(image))
        return heatmaps[..., : height // self.stride, : width // self.stride]

    def predict_heatmaps(self, image: Tensor) -> Tensor:
        """Test-time heatmaps: with flip test, the mean of the crop's and its mirror's maps."""
        heatmaps = self(image)
        if self.cfg.flip_test:
            mirrored = self(image.flip(-1))
            heatmaps = 0.5 * (heatmaps + flip_back(mirrored, self.schema.flip_index,
                                                   self.cfg.flip_shift))
        return heatmaps

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        heatmaps = self(batch["image"])
        loss = joints_mse_loss(heatmaps, batch["heatmaps"], batch["target_weight"])
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True,
                 batch_size=batch["image"].shape[0])
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        return adam_with_steps(self, self.cfg)

    def _evaluation_step(self, batch: dict[str, Tensor], stage: str) -> None:
        batch_size = batch["image"].shape[0]
        heatmaps = self.predict_heatmaps(batch["image"])
        loss = joints_mse_loss(heatmaps, batch["heatmaps"], batch["target_weight"])
        self.log(f"{stage}/loss", loss, on_epoch=True, sync_dist=True, batch_size=batch_size)
        coords, scores = decode_heatmaps(heatmaps.float(), self.cfg.refine)
        self._record_crop_poses(batch, heatmap_to_crop(coords, self.stride), scores)
