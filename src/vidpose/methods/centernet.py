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

import contextlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from pycocotools.cocoeval import COCOeval
from torch import Tensor, nn

from vidpose.data_modules.boxes import frame_boxes, transform_boxes
from vidpose.data_modules.datasets import as_data_config
from vidpose.data_modules.transforms import invert_affine, letterbox, normalize
from vidpose.decode import heatmap_local_peaks
from vidpose.errors import ConfigError, InputError
from vidpose.formats.cocostyle import PERSON_CATEGORY, coco_index
from vidpose.formats.detections import write_detections
from vidpose.keypoints import get_schema
from vidpose.losses import centernet_loss, gather_at
from vidpose.methods import check_choices, check_positive, model_config
from vidpose.methods.common import (BACKBONE_STRIDE, EvaluationHooks, adam_with_steps,
                                    deconv_resnet, log_losses)
from vidpose.nn.heads import DeconvHead
from vidpose.nn.resnet import ARCHITECTURES
from vidpose.pose import Pose, PoseDataset

# pycocotools' box statistics logged at validation: index into COCOeval.stats.
BOX_STATS = {"AP": 0, "AP50": 1, "AP75": 2, "AR": 8}  # AR: at 100 detections per image


@dataclass
class CenterNetConfig:
    """The ``model:`` section of a CenterNet experiment."""

    backbone: str = "resnet18"  # resnet18 | resnet34 | resnet50 | resnet101 | resnet152
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


def _model_config(model: dict[str, Any]) -> CenterNetConfig:
    cfg = model_config(CenterNetConfig, model, "centernet")
    check_choices(cfg, {"backbone": ARCHITECTURES})
    check_positive(cfg, ("max_detections", "head_conv"))
    return cfg


# ----------------------------------------------------------------------------- decoding

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


# ----------------------------------------------------------------------------- box AP

def ground_truth_boxes(data: PoseDataset, frames: Sequence[int]) -> dict[str, Any]:
    """The COCO box ground truth of ``frames``: person boxes, with crowd persons and
    PoseTrack18 ignore regions (their bounding boxes) as ``iscrowd`` ignore regions."""
    images, annotations = [], []
    for index in frames:
        frame = data.frames[index]
        images.append({"id": frame.image_id, "width": frame.width, "height": frame.height,
                       "file_name": frame.file_name})
        boxes, crowd = frame_boxes(data, index)
        regions = [np.concatenate([r.min(0), r.max(0) - r.min(0)]) for r in frame.ignore_regions
                   if len(r)]
        boxes = np.concatenate([boxes, np.array(regions).reshape(-1, 4)])
        crowd = np.concatenate([crowd, np.ones(len(regions), dtype=bool)])
        for box, is_crowd in zip(boxes.tolist(), crowd.tolist()):
            annotations.append({"id": len(annotations) + 1, "image_id": frame.image_id,
                                "category_id": PERSON_CATEGORY, "bbox": box,
                                "area": box[2] * box[3], "iscrowd": int(is_crowd)})
    return {"images": images, "annotations": annotations,
            "categories": [{"id": PERSON_CATEGORY, "name": "person"}]}


def box_ap(data: PoseDataset, frames: Sequence[int],
           detections: dict[int, tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """pycocotools box AP/AR (``COCOeval(iouType="bbox")``) in percent of ``detections``
    (image id -> boxes (M, 4) x, y, w, h, scores (M,)) on ``frames`` of ``data``."""
    truth = ground_truth_boxes(data, frames)
    if not any(not ann["iscrowd"] for ann in truth["annotations"]):
        raise InputError("no person box in the evaluated frames: box AP is undefined",
                         file=data.source, field="annotations")
    results = [{"image_id": int(image_id), "category_id": PERSON_CATEGORY, "bbox": box,
                "score": score}
               for image_id, (boxes, scores) in detections.items()
               for box, score in zip(np.asarray(boxes).tolist(), np.asarray(scores).tolist())]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = coco_index(truth)
        if results:
            dt = gt.loadRes(results)
        else:  # loadRes cannot take an empty list; an empty index scores AP = AR = 0
            dt = coco_index({**truth, "annotations": []})
        evaluator = COCOeval(gt, dt, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: 100.0 * float(evaluator.stats[i]) for name, i in BOX_STATS.items()
            if evaluator.stats[i] >= 0}


# ----------------------------------------------------------------------------- the module

def _output_head(in_channels: int, out_channels: int, head_conv: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, head_conv, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(head_conv, out_channels, 1))


def _concatenate(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Batches of prediction arrays joined key by key ({} for none)."""
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]} if parts else {}


class CenterNet(EvaluationHooks, L.LightningModule):
    """ResNet + deconvolutions + centre/size/offset heads; box AP and a detections file at
    validation; :meth:`detect` for the tracking pipeline."""

    def __init__(self, model: dict, data: dict, schema: str = "posetrack18") -> None:
        super().__init__()
        self.save_hyperparameters()
        self.cfg = _model_config(model)
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
        self.heads = nn.ModuleDict({
            "heatmap": _output_head(channels, 1, self.cfg.head_conv),
            "size": _output_head(channels, 2, self.cfg.head_conv),
            "offset": _output_head(channels, 2, self.cfg.head_conv),
        })
        nn.init.constant_(self.heads["heatmap"][-1].bias, self.cfg.heatmap_bias)
        for name in ("size", "offset"):  # CenterNet's regression heads start near zero
            for layer in self.heads[name]:
                if isinstance(layer, nn.Conv2d):
                    nn.init.normal_(layer.weight, std=0.001)
                    nn.init.constant_(layer.bias, 0.0)
        self._predictions: list[dict[str, np.ndarray]] = []

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        """(B, 3, H, W) normalised images -> ``heatmap`` logits (B, 1, h, w), ``size`` and
        ``offset`` (B, 2, h, w), h, w = H, W / stride.

        Inputs whose sides are not multiples of 32 are zero-padded at the right and bottom
        and the maps cropped back, which keeps heatmap pixel u at input pixel stride * u.
        """
        height, width = image.shape[-2:]
        pad_h, pad_w = -height % BACKBONE_STRIDE, -width % BACKBONE_STRIDE
        if pad_h or pad_w:
            image = F.pad(image, (0, pad_w, 0, pad_h))
        features = self.upsample(self.backbone(image))
        return {name: head(features)[..., : height // self.stride, : width // self.stride]
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
        boxed, affines = [], []
        for i, image in enumerate(images):
            image = np.asarray(image)
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"image {i}: expected RGB uint8 (H, W, 3); got {image.dtype} "
                                 f"{image.shape}")
            frame, affine = letterbox(image[None], self.input_size)
            boxed.append(frame)
            affines.append(affine)
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

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        losses = centernet_loss(self(batch["image"]), batch, self.cfg)
        return log_losses(self, losses, batch["image"].shape[0])

    def configure_optimizers(self) -> dict[str, Any]:
        return adam_with_steps(self, self.cfg)

    def _evaluation_step(self, batch: dict[str, Tensor], stage: str) -> None:
        outputs = self(batch["image"])
        loss = centernet_loss(outputs, batch, self.cfg)["loss"]
        self.log(f"{stage}/loss", loss, on_epoch=True, sync_dist=True,
                 batch_size=batch["image"].shape[0])
        boxes, scores, valid = decode_boxes(outputs, self.cfg.max_detections)
        self._predictions.append({
            "frame": batch["frame"].cpu().numpy(), "boxes": boxes.cpu().numpy(),
            "scores": scores.cpu().numpy(), "valid": valid.cpu().numpy(),
            "image_to_input": batch["image_to_input"].cpu().numpy(),
        })

    def _evaluation_epoch_end(self, stage: str) -> None:
        predictions = self._gather_predictions()
        self._predictions = []
        if not predictions:
            return
        dataset = self._split_data(stage)
        # DistributedSampler repeats frames to even out the ranks: keep one of each, in
        # frame order, so that scores and files do not depend on how the ranks split them.
        frames, first = np.unique(predictions["frame"], return_index=True)
        detections: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for frame, row in zip(frames.tolist(), first.tolist()):
            keep = predictions["valid"][row]
            detections[dataset.frames[frame].image_id] = (
                boxes_to_image(predictions["boxes"][row][keep], self.stride,
                               predictions["image_to_input"][row]),
                predictions["scores"][row][keep].astype(np.float64))
        # Every rank holds all predictions and computes the same values.
        for name, value in box_ap(dataset, frames.tolist(), detections).items():
            self.log(f"{stage}/{name}", value, sync_dist=True)
        # The sanity check runs on a few batches only: its file would be misleading.
        if self.trainer.is_global_zero and not self.trainer.sanity_checking:
            path = Path(self.trainer.default_root_dir) / "predictions" / stage / "detections.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            empty = np.zeros((self.num_keypoints, 3))
            write_detections(path, {image_id: [Pose(empty, box=box, score=float(score))
                                               for box, score in zip(boxes, scores)]
                                    for image_id, (boxes, scores) in detections.items()})

    def _gather_predictions(self) -> dict[str, np.ndarray]:
        """This epoch's predictions of all processes, concatenated (on every rank)."""
        parts = [_concatenate(self._predictions)]
        if dist.is_available() and dist.is_initialized():
            parts = [None] * dist.get_world_size()
            dist.all_gather_object(parts, _concatenate(self._predictions))
        return _concatenate([p for p in parts if p])

    def _split_data(self, stage: str) -> PoseDataset:
        """The PoseDataset whose frames the batches' ``frame`` indices point into (``test``
        falls back to ``val_data``, which the box data module tests on)."""
        datamodule = self.trainer.datamodule
        dataset = getattr(datamodule, f"{stage}_data", None)
        if dataset is None and stage == "test":
            dataset = getattr(datamodule, "val_data", None)
        if dataset is None:
            raise ConfigError(f"CenterNet scores {stage} boxes against the frames of the data "
                              f"module's {stage}_data, which {type(datamodule).__name__} "
                              "does not provide")
        return dataset
