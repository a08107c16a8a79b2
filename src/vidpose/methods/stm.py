"""STM-skeletons: space-time memory networks for multi-person keypoint and limb maps.

Dufour, Meurie, Lézoray, Mahtani, "Space-Time Memory networks for multi-person skeleton
body part detection". An STM (Oh et al. 2019, ``nn/stm.py``) memorises frames together with
their maps, all persons at once: a person segmentation map, one confidence map per keypoint
type and one per limb ("edge") type, max over persons. For a new frame it reads the memory
and predicts the same maps. Variants (``model.variant``):

* ``skeleton_map``: plain STM, one map, the skeleton of every person (Table 1);
* ``edges``: segmentation + N_E limb maps (Table 2);
* ``skeletons``: segmentation + N_K keypoint + N_E limb maps (Table 3).

Training on a clip of T frames: the first ``ground_truth_frames`` frames are memorised with
their ground-truth maps (with the map augmentations of the data module, when on),
and every later frame is predicted from the memory of the frames before it; the loss is the
sum over predicted frames. Without cyclic training the later frames are memorised from
their ground truth too; with it (``model.cyclic``) they are memorised from the model's own
predictions, as at test time. Validation runs each clip online the way inference does
(ground truth for the first frame, own predictions after that, per the write policy) and
logs pixel precision/recall/F1 of the maps binarised at 0.5 (Tables 1-2: the skeleton map, or
the keypoint and limb maps pooled, the person segmentation left out), keypoint
precision/recall/F1 with the 10-pixel rule (Table 3) and recall per frame index (Fig. 7, as
a plot).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional

import lightning as L
import torch
from torch import Tensor

from vidpose.callbacks.memory_policies import GROUND_TRUTH, MemoryBank, WritePolicy
from vidpose.data_modules.frames import ClipSample, MemoryMapsClipSample
from vidpose.decode import crop_to_image
from vidpose.errors import ConfigError
from vidpose.keypoints import get_schema
from vidpose.losses import STM_MAP_LOSSES, map_loss
from vidpose.methods import check_stride, model_config
from vidpose.methods.common import log_losses
from vidpose.metrics.keypoint_prf import KeypointPRF, peaks_from_maps
from vidpose.metrics.pixel_prf import PixelPRF
from vidpose.metrics.recall_over_time import RecallOverTime
from vidpose.nn.stm import STM, load_imagenet_encoders, load_official_stm, num_maps_for

VARIANTS = ("skeleton_map", "edges", "skeletons")


@dataclass
class STMConfig:
    """The ``model:`` section of an STM experiment."""

    variant: str = "skeletons"  # skeleton_map | edges | skeletons
    resnet: str = "resnet50"
    key_dim: int = 128
    value_dim: int = 512
    decoder_dim: int = 256
    official_weights: Optional[str] = None  # local file in the official STM layout
    pretrained: Optional[str] = None  # or: a torchvision ImageNet state dict for both encoders
    loss: str = "focal"  # focal | mse | cc
    focal_gamma: float = 2.0
    lr: float = 1e-6
    weight_decay: float = 0.0
    cyclic: bool = False
    # Memory: frames written from ground truth, then own predictions every `every` frames.
    ground_truth_frames: int = 1
    every: int = 1
    capacity: Optional[int] = None
    # Keypoint detections: local maxima above this. The paper binarises maps at 0.5 for the
    # pixel scores but gives no peak threshold; focal-loss maps peak below 0.5 (compact c5
    # after pre-training: 0.5 -> P 100 / R 1.0, 0.3 -> P 43.9 / R 61.8 on the val clips).
    peak_threshold: float = 0.3
    max_peaks: int = 32  # per keypoint map
    match_px: float = 10.0  # keypoint true positive radius, image pixels


def _inverse_affines(affines: Tensor) -> Tensor:
    """(B, 2, 3) affines -> their (B, 2, 3) inverses."""
    full = torch.cat([affines, affines.new_tensor([0.0, 0.0, 1.0]).expand(len(affines), 1, 3)], 1)
    return torch.linalg.inv(full)[:, :2]


def _apply(points: Tensor, affines: Tensor) -> Tensor:
    """(B, ..., >=2) points' (x, y) through (B, 2, 3) affines, the other values kept."""
    xy = crop_to_image(points[..., :2].reshape(len(points), -1, 2), affines)
    return torch.cat([xy.reshape(*points.shape[:-1], 2), points[..., 2:]], -1)


class STMSkeletons(L.LightningModule):
    """STM / STM-skeletons on clips; see the module docstring."""

    def __init__(self, model: dict, data: dict, schema: str = "posetrack18") -> None:
        super().__init__()
        self.save_hyperparameters()
        self.cfg = model_config(STMConfig, model, "stm",
                                {"variant": VARIANTS, "loss": STM_MAP_LOSSES})
        self.schema = get_schema(schema)
        self.stride = int(data.get("heatmap_stride", 4))
        check_stride(self.stride, 4, "STM's decoder")
        self.num_maps = num_maps_for(self.cfg.variant, self.schema.num_keypoints,
                                     len(self.schema.limbs))
        self.net = STM(self.num_maps, self.cfg.resnet, self.cfg.key_dim, self.cfg.value_dim,
                       self.cfg.decoder_dim)
        if self.cfg.official_weights:
            load_official_stm(self.net, self.cfg.official_weights)
        elif self.cfg.pretrained:
            load_imagenet_encoders(self.net, self.cfg.pretrained)
        # The loaded weights now live in the state dict: a checkpoint must rebuild this
        # module without the weight files.
        self.hparams["model"] = {**model, "official_weights": None, "pretrained": None}
        self.has_keypoints = self.cfg.variant == "skeletons"
        clip_length = int(data.get("clip_length", 4))
        self.pixel_prf = PixelPRF(0.5)
        self.keypoint_prf = KeypointPRF(self.schema.num_keypoints, self.cfg.match_px,
                                        self.schema.annotated_mask)
        self.recall_over_time = RecallOverTime(clip_length, self.cfg.match_px)

    def compose_maps(self, heatmaps: Tensor, limb_maps: Tensor, person_mask: Tensor) -> Tensor:
        """The variant's map stack (..., C, h, w) from the data module's maps."""
        if self.cfg.variant == "skeleton_map":
            return torch.maximum(heatmaps.amax(-3, keepdim=True), limb_maps.amax(-3, keepdim=True))
        if self.cfg.variant == "edges":
            return torch.cat([person_mask, limb_maps], -3)
        return torch.cat([person_mask, heatmaps, limb_maps], -3)

    def pixel_maps(self, maps: Tensor) -> Tensor:
        """The channels the pixel scores pool, (..., C, h, w) -> (..., C', h, w): every map but
        the person segmentation (Table 2 scores the edges' maps; Table 1's single skeleton map
        has no segmentation)."""
        return maps if self.cfg.variant == "skeleton_map" else maps[..., 1:, :, :]

    def _targets(self, batch: ClipSample | MemoryMapsClipSample) -> tuple[Tensor, Tensor]:
        """(B, T, C, h, w) clean targets and the maps memorised for ground-truth frames."""
        target = self.compose_maps(batch["heatmaps"], batch["limb_maps"], batch["person_mask"])
        if "memory_heatmaps" not in batch:
            return target, target
        return target, self.compose_maps(batch["memory_heatmaps"], batch["memory_limb_maps"],
                                         batch["person_mask"])

    def write_policy(self, clip_length: int, training: bool) -> WritePolicy:
        """Training without cyclic: every earlier frame from ground truth. Otherwise (cyclic
        training, validation, inference): ground truth first, then own predictions."""
        cfg = self.cfg
        if training and not cfg.cyclic:
            return WritePolicy(ground_truth_frames=max(clip_length, cfg.ground_truth_frames),
                               own_predictions=False, capacity=cfg.capacity)
        return WritePolicy(cfg.ground_truth_frames, True, cfg.every, cfg.capacity)

    def run_clip(self, images: Tensor, memory_maps: Tensor, policy: WritePolicy
                 ) -> list[tuple[int, Tensor]]:
        """Online pass over a clip: (t, logits) for every frame from ``ground_truth_frames`` on.

        images (B, T, 3, H, W), memory_maps (B, T, C, h, w) for the frames written from
        ground truth. Own predictions are memorised as probabilities, detached: the memory
        holds what the model produced, as at test time.
        """
        bank = MemoryBank(policy)
        outputs = []
        num_frames = images.shape[1]
        for t in range(num_frames):
            logits = None
            if t >= self.cfg.ground_truth_frames:
                logits = self.net.segment(images[:, t], torch.stack(bank.keys, 2),
                                          torch.stack(bank.values, 2))
                outputs.append((t, logits))
            source = policy.source(t)
            if source is None or t == num_frames - 1:
                continue
            maps = memory_maps[:, t] if source == GROUND_TRUTH else torch.sigmoid(logits).detach()
            key, value = self.net.memorize(images[:, t], maps)
            bank.write(t, key, value, source)
        return outputs

    def training_step(self, batch: ClipSample | MemoryMapsClipSample, batch_idx: int) -> Tensor:
        target, memory = self._targets(batch)
        policy = self.write_policy(target.shape[1], training=True)
        outputs = self.run_clip(batch["image"], memory, policy)
        if not outputs:
            raise ConfigError(f"data.clip_length {target.shape[1]} leaves no frame to predict "
                              f"after model.ground_truth_frames={self.cfg.ground_truth_frames}")
        loss = sum(map_loss(self.cfg.loss, logits, target[:, t], self.cfg.focal_gamma)
                   for t, logits in outputs)
        return log_losses(self, {"loss": loss}, target.shape[0])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)

    def validation_step(self, batch: ClipSample, batch_idx: int) -> None:
        # Validation memorises what inference would: clean first-frame maps, then predictions.
        target = self.compose_maps(batch["heatmaps"], batch["limb_maps"], batch["person_mask"])
        num_frames = target.shape[1]
        outputs = self.run_clip(batch["image"], target, self.write_policy(num_frames, False))
        loss = sum(map_loss(self.cfg.loss, logits, target[:, t], self.cfg.focal_gamma)
                   for t, logits in outputs)
        self.log("val/loss", loss, on_epoch=True, sync_dist=True, batch_size=target.shape[0])
        for t, logits in outputs:
            # One id per (clip, frame): clips are identified by their first dataset frame.
            ids = batch["frame"][:, 0] * 4096 + t
            maps = torch.sigmoid(logits)
            self.pixel_prf.update(self.pixel_maps(maps), self.pixel_maps(target[:, t]), ids)
            if self.has_keypoints:
                # The 10-pixel rule is in image pixels, as in the paper (and vidpose infer).
                to_image = _inverse_affines(batch["image_to_input"][:, t].double())
                peaks = _apply(self.keypoint_detections(maps).double(), to_image)
                gt = _apply(batch["keypoints"][:, t].double(), to_image)
                self.keypoint_prf.update(peaks, gt, ids)
                self.recall_over_time.update(peaks, gt, torch.full_like(ids, t), ids)

    def on_validation_epoch_end(self) -> None:
        pixel = self.pixel_prf.compute()
        self.pixel_prf.reset()
        for name in ("precision", "recall", "f1"):
            self.log(f"val/pixel_{name}", float(pixel[name]), sync_dist=True)
        if not self.has_keypoints:
            return
        keypoint = self.keypoint_prf.compute()
        self.keypoint_prf.reset()
        for name in ("precision", "recall", "f1"):
            self.log(f"val/{name}", float(keypoint[name]), sync_dist=True)
        recall = self.recall_over_time.compute()["recall"].reshape(-1)
        for t, value in enumerate(recall.tolist()):
            if value == value:  # not NaN
                self.log(f"val/recall_t{t}", value, sync_dist=True)
        if self.trainer.is_global_zero and not self.trainer.sanity_checking:
            self._plot_recall()
        self.recall_over_time.reset()

    def _plot_recall(self) -> None:
        """Fig. 7 for this validation: a PNG in the run folder, and an image in W&B."""
        folder = Path(self.trainer.default_root_dir) / "plots"
        folder.mkdir(parents=True, exist_ok=True)
        path = self.recall_over_time.plot(folder / f"recall_over_time_epoch{self.current_epoch:03d}.png",
                                          label=self.cfg.variant)
        for logger in self.trainer.loggers:
            if type(logger).__name__ == "WandbLogger":
                logger.log_image("val/recall_over_time", [str(path)], step=self.global_step)

    @torch.no_grad()
    def stream(self, frames: Iterable[Tensor], first_maps: Tensor) -> Iterator[Tensor]:
        """Online maps for a whole video, one frame at a time: (3, H, W) frames in, (C, h, w)
        probabilities out; the first frame is memorised with ``first_maps`` (and yielded
        as they are).

        The memory grows only as the write policy says, so ``model.capacity`` bounds it
        whatever the video's length.
        """
        policy = WritePolicy(1, True, self.cfg.every, self.cfg.capacity)
        bank = MemoryBank(policy)
        for t, image in enumerate(frames):
            image = image[None].to(self.device)
            if t == 0:
                maps = first_maps.to(self.device)
            else:
                maps = torch.sigmoid(self.net.segment(image, torch.stack(bank.keys, 2),
                                                      torch.stack(bank.values, 2)))[0]
            source = policy.source(t)
            if source is not None:
                key, value = self.net.memorize(image, maps[None])
                bank.write(t, key, value, source)
            yield maps

    def keypoint_detections(self, maps: Tensor) -> Tensor:
        """(B, C, h, w) maps -> (B, K, M, 3) keypoint peaks (x, y, score) in input pixels."""
        if not self.has_keypoints:
            raise ConfigError(f"model.variant {self.cfg.variant!r} predicts no keypoint maps")
        keypoint_maps = maps[:, 1:1 + self.schema.num_keypoints].float()
        return peaks_from_maps(keypoint_maps, self.cfg.peak_threshold, self.cfg.max_peaks, self.stride)
