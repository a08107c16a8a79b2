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
from typing import Any, Optional

import lightning as L
import torch
from torch import Tensor

from vidpose.codec import HeatmapCodec
from vidpose.data_modules.crops import CropSample
from vidpose.data_modules.datasets import as_data_config
from vidpose.decode import flip_back
from vidpose.evaluation.crop_poses import CropPoseEvaluator
from vidpose.keypoints import get_schema
from vidpose.losses import joints_mse_loss
from vidpose.methods import model_config
from vidpose.methods.common import EvaluationHooks, adam_with_steps, deconv_resnet, log_losses
from vidpose.nn.heads import DeconvHead
from vidpose.nn.resnet import ARCHITECTURES
from vidpose.nn.top_down import SimpleBaselineNet, crop_to_input, pad_to_stride


@dataclass
class SimpleBaselineConfig:
    """The ``model:`` section of a SimpleBaseline experiment."""

    resnet: str = "resnet50"  # resnet18 | resnet34 | resnet50 | resnet101 | resnet152
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
    oks_nms_thr: float = 0.9  # OKS-NMS of poses from detection boxes (official value)
    # Joints scored below this are left out of the predictions (written 0, 0, 0). MOTA counts
    # every predicted joint whatever its score, so PoseTrack entries drop unsure joints: a
    # higher threshold trades AP for MOTA. 0 keeps every joint (what AP alone wants).
    joint_threshold: float = 0.0


class SimpleBaseline(EvaluationHooks, L.LightningModule):
    """ResNet + deconvolution head on person crops; mAP/MOTA (or COCO AP) and prediction
    files at validation."""

    policy = None  # no pose memory: OnlineTopDown runs it as a plain top-down estimator

    def __init__(self, model: dict, data: dict, schema: str = "posetrack18") -> None:
        super().__init__()
        self.save_hyperparameters()
        self.cfg = model_config(SimpleBaselineConfig, model, "simple_baseline",
                                {"resnet": ARCHITECTURES})
        self.schema = get_schema(schema)
        # Decoded as the data module encodes its targets: from the same data section.
        self.codec = HeatmapCodec.from_data(as_data_config(data))
        self.stride = self.codec.stride
        trunk = deconv_resnet(self, model, self.stride)
        self.net = SimpleBaselineNet(trunk, DeconvHead(
            trunk.out_channels, self.schema.num_keypoints, self.cfg.deconv_layers,
            self.cfg.deconv_filters, self.cfg.deconv_kernel, self.cfg.final_kernel))

    def forward(self, image: Tensor) -> Tensor:
        """(B, 3, H, W) normalised crops, padded to the ResNet's stride -> (B, K, H / stride,
        W / stride) heatmaps."""
        return crop_to_input(self.net(pad_to_stride(image)), image.shape[-2:], self.stride)

    def predict_heatmaps(self, image: Tensor) -> Tensor:
        """Test-time heatmaps: with flip test, the mean of the crop's and its mirror's maps."""
        heatmaps = self(image)
        if self.cfg.flip_test:
            mirrored = self(image.flip(-1))
            heatmaps = 0.5 * (heatmaps + flip_back(mirrored, self.schema.flip_index,
                                                   self.cfg.flip_shift))
        return heatmaps

    @torch.no_grad()
    def estimate(self, crops: Tensor, memories: list, crowded: bool) -> tuple[Tensor, None]:
        """The pipeline's call (``tracking.online.Estimator``; ``vidpose.load``): heatmaps
        with flip test per config; no memory, so no features to write."""
        self.eval()
        return self.predict_heatmaps(crops.to(self.device, self.dtype)), None

    def training_step(self, batch: CropSample, batch_idx: int) -> Tensor:
        loss = joints_mse_loss(self(batch["image"]), batch["heatmaps"], batch["target_weight"])
        return log_losses(self, {"loss": loss}, batch["image"].shape[0])

    def configure_optimizers(self) -> dict[str, Any]:
        return adam_with_steps(self, self.cfg)

    def make_evaluator(self) -> CropPoseEvaluator:
        return CropPoseEvaluator(self.schema, self.cfg.joint_threshold, self.cfg.oks_nms_thr,
                                 self.device)

    def _evaluation_step(self, batch: CropSample, stage: str) -> None:
        batch_size = batch["image"].shape[0]
        heatmaps = self.predict_heatmaps(batch["image"])
        loss = joints_mse_loss(heatmaps, batch["heatmaps"], batch["target_weight"])
        self.log(f"{stage}/loss", loss, on_epoch=True, sync_dist=True, batch_size=batch_size)
        self.evaluator.add(batch, *self.codec.decode(heatmaps))
