"""Two-stage top-down pose estimator of the keypoint-correspondence paper (appendix 0.A.1).

Stage 1 is a batch-normalised GoogLeNet, layers 1 to 17 (stride 16), followed by a
deconvolution block of two stride-2 transposed convolutions (stride 4) that predicts K pose
heatmaps (logits) and 2K joint offsets. Stage 2 is GoogLeNet layers 3 to 17 on the stage-1
backbone's stride-4 ``conv2`` features concatenated with stage 1's heatmaps (as
probabilities) and offsets, with its own deconvolution block; its heatmaps and offsets are
the model's output. Both stages are supervised: binary cross-entropy on the heatmaps
against the crop data module's Gaussian targets, L1 on the offsets.

Offsets are in heatmap cells: at cell (u, v), whose up-sampled position is crop pixel
``stride * (u, v)``, the target is the vector to the joint's crop position divided by the
stride, trained within ``offset_radius`` cells of a labelled joint. Eq. 7 decodes a joint
as ``stride * (argmax cell + offset at that cell)`` in crop pixels, scored by the heatmap
probability at the argmax.

Validation and test are SimpleBaseline's (``evaluation.crop_poses.CropPoseEvaluator``):
PoseTrack mAP/MOTA or COCO AP of the split, prediction files written, with the keypoints of
Eq. 7.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn

from vidpose.codec import HeatmapCodec
from vidpose.data_modules.crops import CropSample
from vidpose.data_modules.datasets import as_data_config
from vidpose.decode import flip_back, heatmap_peaks, heatmap_to_crop
from vidpose.errors import ConfigError
from vidpose.evaluation.crop_poses import CropPoseEvaluator
from vidpose.keypoints import get_schema
from vidpose.losses import heatmap_bce_loss, offset_l1_loss
from vidpose.methods import check_stride, model_config
from vidpose.methods.common import EvaluationHooks, adam_with_steps, log_losses
from vidpose.nn.heads import DeconvHead
from vidpose.nn.inception_bn import GoogLeNetBN, load_imagenet
from vidpose.nn.top_down import crop_to_input, pad_to_stride

BACKBONE_STRIDE = 16  # GoogLeNet layer 17 (end of inception 4e)
HEATMAP_STRIDE = 4  # two stride-2 deconvolutions
# Initial heatmap probability: the bias of the heatmap logits starts at its logit, so that
# the first BCE is not dominated by pushing every background pixel down from 0.5.
HEATMAP_PRIOR = 0.01


@dataclass
class TwoStagePoseConfig:
    """The ``model:`` section of a two-stage pose experiment."""

    width: float = 1.0  # channel multiplier of both GoogLeNet stages (1: the paper's network)
    pretrained: Optional[str] = None  # local torchvision googlenet state dict (width 1 only)
    deconv_filters: int = 256
    offset_radius: float = 2.0  # heatmap cells around a labelled joint where offsets train
    offset_weight: float = 1.0  # L1 offset loss weight against the heatmap BCE
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_steps: list[int] = field(default_factory=lambda: [90, 120])  # epochs
    lr_factor: float = 0.1
    flip_test: bool = True
    oks_nms_thr: float = 0.9  # OKS-NMS of poses from detection boxes
    # Joints scored below this are written 0, 0, 0: Table 3's joint detection threshold
    # (0 keeps every joint: best mAP, lowest MOTA).
    joint_threshold: float = 0.0


class TwoStagePoseNet(nn.Module):
    """GoogLeNet layers 1-17 and 3-17, each with a deconvolution block: (B, 3, H, W) crops
    -> per stage, heatmap logits (B, K, H/4, W/4) and offsets (B, K, 2, H/4, W/4)."""

    def __init__(self, num_joints: int, width: float = 1.0, deconv_filters: int = 256) -> None:
        super().__init__()
        self.num_joints = num_joints
        self.stage1 = GoogLeNetBN(1, 17, width=width)
        features = self.stage1.conv2.conv.out_channels
        self.head1 = DeconvHead(self.stage1.out_channels, 3 * num_joints, num_layers=2,
                                filters=deconv_filters)
        self.stage2 = GoogLeNetBN(3, 17, in_channels=features + 3 * num_joints, width=width)
        self.head2 = DeconvHead(self.stage2.out_channels, 3 * num_joints, num_layers=2,
                                filters=deconv_filters)
        prior_logit = math.log(HEATMAP_PRIOR / (1.0 - HEATMAP_PRIOR))
        with torch.no_grad():
            for head in (self.head1, self.head2):
                head.final_layer.bias[:num_joints] = prior_logit

    def _split(self, maps: Tensor) -> tuple[Tensor, Tensor]:
        """A head's 3K channels as K heatmap logits and (K, 2) offsets (dx, dy per joint)."""
        k = self.num_joints
        return maps[:, :k], maps[:, k:].unflatten(1, (k, 2))

    def forward(self, image: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Both stages' (heatmap logits, offsets) of crops padded to GoogLeNet's stride; the
        last pair is the model's output."""
        features, taps = self.stage1(pad_to_stride(image, BACKBONE_STRIDE), taps=("conv2",))
        logits1, offsets1 = self._split(self.head1(features))
        refine_input = torch.cat([taps["conv2"], torch.sigmoid(logits1), offsets1.flatten(1, 2)], 1)
        logits2, offsets2 = self._split(self.head2(self.stage2(refine_input)))
        return [(crop_to_input(logits, image.shape[-2:], HEATMAP_STRIDE),
                 crop_to_input(offsets, image.shape[-2:], HEATMAP_STRIDE))
                for logits, offsets in ((logits1, offsets1), (logits2, offsets2))]


def offset_targets(keypoints: Tensor, target_weight: Tensor, size: Sequence[int], stride: int,
                   radius: float) -> tuple[Tensor, Tensor]:
    """Offset targets of (B, K, 3) crop-pixel keypoints on an (h, w) = ``size`` map.

    Returns the vectors (B, K, 2, h, w), in heatmap cells, from each cell's up-sampled
    position ``stride * (u, v)`` to the joint, and the mask (B, K, h, w) of the cells within
    ``radius`` cells of a joint with positive ``target_weight``.
    """
    height, width = int(size[0]), int(size[1])
    joint = keypoints[..., :2].float() / stride
    us = torch.arange(width, dtype=joint.dtype, device=joint.device)
    vs = torch.arange(height, dtype=joint.dtype, device=joint.device)
    dx, dy = torch.broadcast_tensors(joint[..., 0, None, None] - us,
                                     joint[..., 1, None, None] - vs[:, None])
    near = dx.square() + dy.square() <= radius ** 2
    mask = near & (target_weight[..., None, None] > 0)
    return torch.stack([dx, dy], 2), mask


def decode_offsets(heatmaps: Tensor, offsets: Tensor, stride: int) -> tuple[Tensor, Tensor]:
    """Eq. 7: each joint at ``stride * (argmax cell + offset there)``, in crop pixels.

    heatmaps (B, K, h, w), offsets (B, K, 2, h, w) in cells. Returns keypoints (B, K, 2) as
    x, y and scores (B, K), the heatmap value at the argmax.
    """
    coords, scores = heatmap_peaks(heatmaps)
    width = heatmaps.shape[-1]
    index = (coords[..., 1] * width + coords[..., 0]).long()
    delta = offsets.flatten(-2).gather(-1, index[:, :, None, None].expand(-1, -1, 2, 1))
    return heatmap_to_crop(coords.to(offsets.dtype) + delta.squeeze(-1), stride), scores


def flip_back_offsets(offsets: Tensor, flip_index: Sequence[int] | np.ndarray | Tensor,
                      stride: int, crop_width: int) -> Tensor:
    """Offsets (B, K, 2, h, w) predicted on a mirrored crop, in the crop's own frame.

    The map is mirrored and left/right joints swapped, as :func:`vidpose.decode.flip_back`
    does without its shift, and the x offsets negated. Mirrored cell u lies at crop pixel
    ``W - 1 - stride * u``, which is ``(W - 1) / stride - (w - 1)`` cells right of cell
    ``w - 1 - u`` it lands on: that is added to x, so the mirrored offsets are exact (for
    W = stride * w, ``1 - 1 / stride``).
    """
    index = torch.as_tensor(np.asarray(flip_index), dtype=torch.long, device=offsets.device)
    mirrored = offsets.flip(-1).index_select(1, index)
    shift = (crop_width - 1) / stride - (offsets.shape[-1] - 1)
    return torch.stack([shift - mirrored[:, :, 0], mirrored[:, :, 1]], 2)


class TwoStagePose(EvaluationHooks, L.LightningModule):
    """The two-stage GoogLeNet pose estimator on person crops: heatmaps + offsets (Eq. 7).

    The tracking pipeline calls ``locate`` (keypoints by Eq. 7) and ``estimate`` (heatmaps,
    the ``tracking.online.Estimator`` protocol).
    """

    # Measured: under `pytest -m slow tests/methods/test_two_stage_pose.py --bf16` its learning
    # test's val loss rose (2.30 -> 2.78) where fp32 falls (2.30 -> 1.38): the sigmoid
    # heatmaps' BCE against soft targets does not train in bf16, so auto keeps fp32.
    FP32_REASON = "its heatmap BCE does not train in bf16 (learning test: val loss 2.30 -> 2.78)"

    policy = None  # no pose memory: OnlineTopDown runs it as a plain top-down estimator

    def __init__(self, model: dict, data: dict, schema: str = "posetrack18") -> None:
        super().__init__()
        self.save_hyperparameters()
        self.cfg = model_config(TwoStagePoseConfig, model, "two_stage_pose",
                                positive=("width", "deconv_filters", "offset_radius"))
        if self.cfg.offset_weight < 0:
            raise ConfigError(f"model.offset_weight: expected >= 0, got {self.cfg.offset_weight}")
        self.schema = get_schema(schema)
        self.codec = HeatmapCodec.from_data(as_data_config(data))  # the online pipeline's
        self.stride, self.input_size = self.codec.stride, self.codec.input_size
        check_stride(self.stride, HEATMAP_STRIDE, "the two-stage network")
        self.net = TwoStagePoseNet(self.schema.num_keypoints, self.cfg.width,
                                   self.cfg.deconv_filters)
        if self.cfg.pretrained:
            for stage in (self.net.stage1, self.net.stage2):
                load_imagenet(stage, self.cfg.pretrained)
            # The ImageNet weights now live in the state dict: a checkpoint must rebuild this
            # module without the ImageNet file.
            self.hparams["model"] = {**model, "pretrained": None}

    def forward(self, image: Tensor) -> list[tuple[Tensor, Tensor]]:
        """(B, 3, H, W) normalised crops -> both stages' (heatmap logits, offsets)."""
        return self.net(image)

    def predict(self, crops: Tensor) -> tuple[Tensor, Tensor]:
        """Test-time heatmap probabilities (B, K, h, w) and offsets (B, K, 2, h, w) of stage 2."""
        return self._test_time(self.net(crops)[-1], crops)

    def _test_time(self, output: tuple[Tensor, Tensor], crops: Tensor) -> tuple[Tensor, Tensor]:
        """Stage 2's ``output`` on ``crops`` as probabilities; with flip test, averaged with
        the mirrored crop's, flipped back (heatmaps shifted as SimpleBaseline's, offsets exact)."""
        heatmaps, offsets = torch.sigmoid(output[0]), output[1]
        if self.cfg.flip_test:
            logits, mirrored = self.net(crops.flip(-1))[-1]
            heatmaps = 0.5 * (heatmaps + flip_back(torch.sigmoid(logits), self.schema.flip_index))
            offsets = 0.5 * (offsets + flip_back_offsets(mirrored, self.schema.flip_index,
                                                         self.stride, crops.shape[-1]))
        return heatmaps, offsets

    @torch.no_grad()
    def locate(self, crops: Tensor) -> tuple[Tensor, Tensor]:
        """(N, 3, H, W) normalised crops -> keypoints (N, K, 2) in crop pixels by Eq. 7 and
        scores (N, K) in [0, 1]; eval mode, flip test per config, on the model's device."""
        self.eval()
        heatmaps, offsets = self.predict(crops.to(self.device, self.dtype))
        return decode_offsets(heatmaps.float(), offsets.float(), self.stride)

    @torch.no_grad()
    def estimate(self, crops: Tensor, memories: list[Tensor | None],
                 crowded: bool) -> tuple[Tensor, None]:
        """The pipeline's call (``tracking.online.Estimator``): heatmap probabilities
        (N, K, h, w) with flip test per config; no memory, so no features to write."""
        self.eval()
        return self.predict(crops.to(self.device, self.dtype))[0], None

    def _loss(self, stages: list[tuple[Tensor, Tensor]],
              batch: CropSample) -> dict[str, Tensor]:
        """Both stages' heatmap BCE and offset L1, summed over the stages."""
        target, mask = offset_targets(batch["keypoints"], batch["target_weight"],
                                      batch["heatmaps"].shape[-2:], self.stride,
                                      self.cfg.offset_radius)
        heatmap = sum(heatmap_bce_loss(logits, batch["heatmaps"], batch["target_weight"])
                      for logits, _ in stages)
        offset = sum(offset_l1_loss(offsets, target, mask) for _, offsets in stages)
        return {"loss": heatmap + self.cfg.offset_weight * offset, "heatmap_loss": heatmap,
                "offset_loss": offset}

    def training_step(self, batch: CropSample, batch_idx: int) -> Tensor:
        losses = self._loss(self.net(batch["image"]), batch)
        return log_losses(self, losses, batch["image"].shape[0])

    def configure_optimizers(self) -> dict[str, Any]:
        return adam_with_steps(self, self.cfg)

    def make_evaluator(self) -> CropPoseEvaluator:
        return CropPoseEvaluator(self.schema, self.cfg.joint_threshold, self.cfg.oks_nms_thr,
                                 self.device)

    def _evaluation_step(self, batch: CropSample, stage: str) -> None:
        """The training loss of the plain crops, and the poses of the flip-tested crops."""
        stages = self.net(batch["image"])
        self.log(f"{stage}/loss", self._loss(stages, batch)["loss"], on_epoch=True,
                 sync_dist=True, batch_size=batch["image"].shape[0])
        heatmaps, offsets = self._test_time(stages[-1], batch["image"])
        keypoints, scores = decode_offsets(heatmaps.float(), offsets.float(), self.stride)
        self.evaluator.add(batch, keypoints, scores)
