"""CenterNet person detector: objects as points.

Zhou, Wang, Krähenbühl, "Objects as Points" (arXiv 2019). A ResNet trunk and the
SimpleBaseline deconvolutions (stride 4) feed three heads of a 3x3 convolution, ReLU and a
1x1 convolution: the centre heatmap (one class, person; sigmoid), the box size (w, h) and
the sub-pixel centre offset, all in heatmap pixels. Training minimises CornerNet's
penalty-reduced focal loss on the heatmap (alpha 2, beta 4) plus L1 losses on size (weight
0.1) and offset (weight 1) at the ground-truth centres only (:func:`vidpose.losses.centernet_loss`).

Decoding keeps the heatmap's local maxima (3x3 max-pool), the ``max_detections`` strongest,
and turns each into a box ``centre + offset`` of the predicted size, mapped back to image
pixels through the inverse letterbox. Validation scores the boxes of the split with
pycocotools' box AP (``val/AP``, ``val/AP50``, ``val/AR``) against the ground-truth person
boxes (crowd persons and PoseTrack18 ignore regions are pycocotools' ignore regions) and
writes them as a COCO results file, ``<run>/predictions/val/detections.json``, which a
top-down method reads with ``data.box_source=detections data.detections=<that file>``.
:meth:`CenterNet.detect` is the tracking pipeline's box source.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn

from vidpose.data_modules.boxes import BoxSample, transform_boxes
from vidpose.data_modules.datasets import as_data_config
from vidpose.data_modules.transforms import invert_affine, letterbox, normalize
from vidpose.decode import heatmap_local_peaks
from vidpose.evaluation.boxes import BoxEvaluator
from vidpose.keypoints import get_schema
from vidpose.losses import centernet_loss, gather_at
from vidpose.methods import model_config
from vidpose.methods.common import EvaluationHooks, adam_with_steps, deconv_resnet, log_losses
from vidpose.nn.heads import DeconvHead
from vidpose.nn.resnet import ARCHITECTURES
from vidpose.nn.top_down import crop_to_input, pad_to_stride


@dataclass
class CenterNetConfig:
    """The ``model:`` section of a CenterNet experiment."""

    resnet: str = "resnet18"  # resnet18 | resnet34 | resnet50 | resnet101 | resnet152
    pretrained: Optional[str] = None  # local torchvision ImageNet state dict
    deconv_layers: int = 3
    deconv_filters: int = 256
    deconv_kernel: int = 4
    head_conv: int = 64  # channels of each head's 3x3 convolution (CenterNet: 64 for ResNets)
    # Initial bias of the centre logits: sigmoid(-2.19) = 0.1, the focal-loss prior that
    # keeps the many background pixels from swamping the first steps.
    heatmap_bias: float = -2.19
    focal_alpha: float = 2.0
    focal_beta: float = 4.0
    size_weight: float = 0.1
    offset_weight: float = 1.0
    lr: float = 5.0e-4
    weight_decay: float = 0.0
    lr_steps: list[int] = field(default_factory=lambda: [90, 120])  # epochs
    lr_factor: float = 0.1
    max_detections: int = 100  # top-k centre peaks per image
    # detect()'s default: boxes scoring below are dropped. Validation keeps all top-k boxes
    # (CenterNet's COCO protocol); readers of its detections file choose their own cut.
    score_threshold: float = 0.3


def decode_boxes(outputs: dict[str, Tensor], max_detections: int,
                 threshold: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
    """Boxes from the heads: (B, M, 4) x, y, w, h in heatmap pixels, scores (B, M) and
    valid (B, M).

    A box is a local maximum of the centre heatmap (3x3 max-pool, CenterNet's NMS) among
    the ``max_detections`` strongest, scoring above ``threshold``; its centre is the cell
    plus the predicted offset and its size the predicted size (negative sizes read as 0).
    """
    heat = torch.sigmoid(outputs["heatmap"].float())
    coords, scores, valid = heatmap_local_peaks(heat, threshold, max_detections)
    coords, scores, valid = coords[:, 0], scores[:, 0], valid[:, 0]
    index = (coords[..., 1] * heat.shape[-1] + coords[..., 0]).long()
    centre = coords + gather_at(outputs["offset"].float(), index)
    size = gather_at(outputs["size"].float(), index).clamp_min(0.0)
    return torch.cat([centre - 0.5 * size, size], -1), scores, valid


def boxes_to_image(boxes: np.ndarray, stride: int, image_to_input: np.ndarray) -> np.ndarray:
    """(M, 4) heatmap-pixel boxes of one image to image pixels (heatmap pixel ``u`` is input
    pixel ``stride * u``; the input goes back through the inverse letterbox)."""
    scaled = np.asarray(boxes, dtype=np.float64) * stride
    return transform_boxes(scaled, invert_affine(image_to_input))


def _output_head(in_channels: int, out_channels: int, head_conv: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, head_conv, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(head_conv, out_channels, 1))


class CenterNet(EvaluationHooks, L.LightningModule):
    """ResNet + deconvolutions + centre/size/offset heads; box AP and a detections file at
    validation; :meth:`detect` for the tracking pipeline."""

    def __init__(self, model: dict, data: dict, schema: str = "posetrack18") -> None:
        super().__init__()
        self.save_hyperparameters()
        self.cfg = model_config(CenterNetConfig, model, "centernet", {"resnet": ARCHITECTURES},
                                ("max_detections", "head_conv"))
        data_cfg = as_data_config(data)
        self.stride = int(data_cfg.heatmap_stride)
        self.input_size = (int(data_cfg.input_size[0]), int(data_cfg.input_size[1]))
        # Detections are written as Poses with empty keypoints in the data's schema.
        self.num_keypoints = get_schema(schema).num_keypoints
        self.backbone = deconv_resnet(self, model, self.stride)
        # SimpleBaseline's deconvolution stack (CenterNet's ResNet up-convolutions); its
        # per-joint output layer is not used.
        self.upsample = DeconvHead(self.backbone.out_channels, 1, self.cfg.deconv_layers,
                                   self.cfg.deconv_filters, self.cfg.deconv_kernel).deconv_layers
        channels = self.cfg.deconv_filters if self.cfg.deconv_layers else self.backbone.out_channels
        self.heads = nn.ModuleDict({name: _output_head(channels, out, self.cfg.head_conv)
                                    for name, out in (("heatmap", 1), ("size", 2), ("offset", 2))})
        nn.init.constant_(self.heads["heatmap"][-1].bias, self.cfg.heatmap_bias)
        for name in ("size", "offset"):  # CenterNet's regression heads start near zero
            for layer in self.heads[name]:
                if isinstance(layer, nn.Conv2d):
                    nn.init.normal_(layer.weight, std=0.001)
                    nn.init.constant_(layer.bias, 0.0)

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        """(B, 3, H, W) normalised images -> ``heatmap`` logits (B, 1, h, w), ``size`` and
        ``offset`` (B, 2, h, w), h, w = H, W / stride (padded to the ResNet's stride)."""
        features = self.upsample(self.backbone(pad_to_stride(image)))
        return {name: crop_to_input(head(features), image.shape[-2:], self.stride)
                for name, head in self.heads.items()}

    @torch.no_grad()
    def detect(self, images: list[np.ndarray],
               score_threshold: float | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Person boxes of RGB uint8 (H, W, 3) images, one batch on the module's device.

        Returns per image the boxes (M, 4) x, y, w, h in its pixels and their scores (M,),
        strongest first; ``score_threshold`` defaults to ``model.score_threshold``. Runs in
        eval mode and restores the module's mode afterwards.
        """
        if not images:
            return []
        threshold = self.cfg.score_threshold if score_threshold is None else float(score_threshold)
        images = [np.asarray(image) for image in images]
        for i, image in enumerate(images):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"image {i}: expected RGB uint8 (H, W, 3); got {image.dtype} "
                                 f"{image.shape}")
        boxed, affines = zip(*(letterbox(image[None], self.input_size) for image in images))
        was_training = self.training
        self.eval()
        try:
            outputs = self(normalize(np.concatenate(boxed)).to(self.device))
        finally:
            self.train(was_training)
        boxes, scores, valid = (t.cpu().numpy() for t in
                                decode_boxes(outputs, self.cfg.max_detections, threshold))
        return [(boxes_to_image(boxes[i][valid[i]], self.stride, affines[i]),
                 scores[i][valid[i]].astype(np.float64)) for i in range(len(images))]

    def training_step(self, batch: BoxSample, batch_idx: int) -> Tensor:
        losses = centernet_loss(self(batch["image"]), batch, self.cfg)
        return log_losses(self, losses, batch["image"].shape[0])

    def configure_optimizers(self) -> dict[str, Any]:
        return adam_with_steps(self, self.cfg)

    def make_evaluator(self) -> BoxEvaluator:
        return BoxEvaluator(self.num_keypoints)

    def _evaluation_step(self, batch: BoxSample, stage: str) -> None:
        outputs = self(batch["image"])
        loss = centernet_loss(outputs, batch, self.cfg)["loss"]
        self.log(f"{stage}/loss", loss, on_epoch=True, sync_dist=True,
                 batch_size=batch["image"].shape[0])
        boxes, scores, valid = (t.cpu().numpy() for t in
                                decode_boxes(outputs, self.cfg.max_detections))
        affines = batch["image_to_input"].cpu().numpy()
        self.evaluator.add(batch["frame"], np.stack([boxes_to_image(b, self.stride, a)
                                                     for b, a in zip(boxes, affines)]),
                           scores, valid)
