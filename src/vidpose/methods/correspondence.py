"""Self-supervised keypoint correspondences: training the correspondence network.

Rafi et al., "Self-supervised Keypoint Correspondences for Multi-Person Pose Estimation and
Tracking in Videos" (ECCV 2020), Sec. 4.3 and 6.1. The network
(:class:`vidpose.nn.correspondence.CorrespondenceNet`) learns on single labelled images
turned into pairs by a random affine warp (``data_modules/pairs.py``). Training is
module-wise (``model.stage``): first the Siamese matching module alone (Eq. 4), then the
refinement module (Eq. 5) with the Siamese module frozen (no gradients, batch norm in eval
mode), started from the Siamese run with ``init_from: run:correspondence_siamese``.

Validation logs ``val/loss`` (the stage's loss), ``val/accuracy`` (the fraction of
keypoints present in both images whose affinity argmax lies within one feature cell,
Chebyshev distance, of the cell holding their warped position; refined maps in the
refinement stage), ``val/accuracy_siamese`` (the same for the Siamese maps, in both stages)
and ``val/truncated_peak`` (the mean maximum affinity of truncated keypoints, whose maps
should be empty: it should fall for the refined maps; a softmax map cannot be empty, so
the Siamese value rises as its maps sharpen). The tracker uses ``model.net.propagate``.

The refinement stage's validation also measures how the Siamese maps' values at correct
matches are distributed against the refined maps' (``nn.correspondence.AffinityCalibration``,
kept on ``net.calibration`` and in the checkpoint), so that the tracker can read the Siamese
maps (Table 7, "w/o refinement") with thresholds that pass as many correct matches.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics import CatMetric, MeanMetric

from vidpose.data_modules.datasets import as_data_config
from vidpose.data_modules.pairs import PairSample
from vidpose.errors import ConfigError
from vidpose.keypoints import get_schema
from vidpose.losses import refinement_loss, siamese_loss
from vidpose.methods import model_config
from vidpose.methods.common import adam_with_steps, log_losses
from vidpose.nn.correspondence import (
    AffinityCalibration,
    CorrespondenceNet,
    affinity_targets,
    nearest_cell,
    values_at,
)
from vidpose.nn.inception_bn import GoogLeNetBN, load_imagenet

STAGES = ("siamese", "refinement")
METRICS = ("accuracy", "accuracy_siamese", "truncated_peak")
# Correct-match values the refinement stage's validation gathers for the calibration.
MATCH_VALUES = ("joint_siamese", "joint_refined", "person_siamese", "person_refined")
# Where a checkpoint keeps the calibration.
CALIBRATION_KEY = "affinity_calibration"


@dataclass
class CorrespondenceConfig:
    """The ``model:`` section of a correspondence experiment."""

    stage: str = "siamese"  # siamese | refinement (trains the refinement, Siamese frozen)
    width: float = 1.0  # GoogLeNet channel multiplier (1: the paper's, and the ImageNet file's)
    patch: int = 3  # side of the descriptor square, feature cells (odd)
    sigma: float = 1.0  # Eq. 3's Gaussian, feature cells (the paper's value was lost)
    pretrained: Optional[str] = None  # local torchvision GoogLeNet ImageNet state dict
    lr: float = 1e-3
    lr_steps: list[int] = field(default_factory=lambda: [20])  # epochs
    lr_factor: float = 0.1
    weight_decay: float = 0.0
    # Persons per pair the refinement trains on (a random choice when a pair has more):
    # every person costs one pass of GoogLeNet layers 3-17. Validation refines all.
    max_refine_persons: int = 4


@dataclass
class PairMaps:
    """One batch of pairs through the network, with its Eq. 3 targets."""

    siamese: Tensor  # (B, P, K, h, w) softmax maps
    targets: Tensor  # (B, P, K, h, w)
    counted: Tensor  # (B, P, K) keypoints present in image 1
    persons: tuple[Tensor, Tensor]  # (pair, row) indices of the refined persons
    refined: Optional[Tensor]  # (N, K, h, w) logits of those persons, or None


def argmax_cells(maps: Tensor) -> Tensor:
    """(..., h, w) maps -> (..., 2) long (u, v) of each map's maximum."""
    index = maps.flatten(-2).argmax(-1)
    width = maps.shape[-1]
    return torch.stack([index % width, index // width], -1)


class KeypointCorrespondence(L.LightningModule):
    """Trains one stage of the keypoint correspondence network on self-supervised pairs."""

    def __init__(self, model: dict, data: dict, schema: str = "coco17") -> None:
        super().__init__()
        self.save_hyperparameters()
        self.cfg = model_config(CorrespondenceConfig, model, "correspondence", {"stage": STAGES},
                                ("width", "sigma", "lr", "max_refine_persons"))
        if self.cfg.patch < 1 or self.cfg.patch % 2 == 0:
            raise ConfigError(f"model.patch: expected an odd number of cells >= 1; got {self.cfg.patch}")
        self.schema = get_schema(schema)
        data_cfg = as_data_config(data)
        net = CorrespondenceNet(self.schema.num_keypoints, self.cfg.width, self.cfg.patch,
                                refinement=self.cfg.stage == "refinement")
        if any(side % net.stride for side in data_cfg.input_size):
            raise ConfigError(f"data.input_size: both sides must be multiples of the network's "
                              f"stride {net.stride}; got {list(data_cfg.input_size)}")
        self.net = net
        if self.cfg.pretrained:
            for module in net.modules():
                if isinstance(module, GoogLeNetBN):
                    load_imagenet(module, self.cfg.pretrained)
            # The ImageNet weights now live in the state dict: a checkpoint must rebuild this
            # module without the ImageNet file.
            self.hparams["model"] = {**model, "pretrained": None}
        if net.refinement is not None:
            net.freeze_siamese()
        self.metrics = nn.ModuleDict({name: MeanMetric() for name in METRICS})
        self.match_values = nn.ModuleDict({name: CatMetric() for name in MATCH_VALUES})

    def pair_maps(self, batch: PairSample, max_persons: int | None) -> PairMaps:
        """Siamese maps of every person, refined logits of at most ``max_persons`` persons per
        pair (all when None) in the refinement stage, and the targets."""
        image1, image2, keypoints1 = batch["image1"], batch["image2"], batch["keypoints1"]
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.net.siamese_frozen):
            siamese = self.net(image1, image2, keypoints1)
        targets = affinity_targets(batch["correspondences"], siamese.shape[-2:], self.net.stride,
                                   self.cfg.sigma)
        counted = keypoints1[..., 2] > 0
        if self.net.refinement is None:
            empty = counted.new_zeros(0, dtype=torch.long)
            return PairMaps(siamese, targets, counted, (empty, empty), None)
        pair, row = self._refined_persons(counted, max_persons)
        refined = self.net.refinement(image1, image2, siamese[pair, row], pair)
        return PairMaps(siamese, targets, counted, (pair, row), refined)

    @staticmethod
    def _refined_persons(counted: Tensor, limit: int | None) -> tuple[Tensor, Tensor]:
        """(pair, row) of the persons with a keypoint, at most ``limit`` random ones a pair."""
        occupied = counted.any(-1)
        if limit is not None and limit < occupied.shape[1]:
            scores = torch.rand(occupied.shape, device=occupied.device).masked_fill(~occupied, -1.0)
            chosen = torch.zeros_like(occupied).scatter_(1, scores.topk(limit, dim=1).indices, True)
            occupied &= chosen
        return occupied.nonzero(as_tuple=True)

    def loss(self, maps: PairMaps) -> Tensor:
        """The stage's loss: Eq. 4 (Siamese) or Eq. 5 (refinement)."""
        if maps.refined is None:
            return siamese_loss(maps.siamese, maps.targets, maps.counted)
        pair, row = maps.persons
        return refinement_loss(maps.refined, maps.targets[pair, row], maps.counted[pair, row])

    def training_step(self, batch: PairSample, batch_idx: int) -> Tensor:
        loss = self.loss(self.pair_maps(batch, self.cfg.max_refine_persons))
        return log_losses(self, {"loss": loss}, batch["image1"].shape[0])

    def configure_optimizers(self) -> dict[str, Any]:
        trained = self.net.refinement if self.net.refinement is not None else self.net.siamese
        return adam_with_steps(trained, self.cfg)  # this stage's module

    def validation_step(self, batch: PairSample, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: PairSample, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def _reset_metrics(self) -> None:
        # At the start, not the end, of an epoch: the metric states are then made under the
        # running loop's grad mode (a trainer.validate() before fit() runs in inference mode,
        # whose tensors fit's validation could not update in place).
        for metric in [*self.metrics.values(), *self.match_values.values()]:
            metric.reset()

    def on_validation_epoch_start(self) -> None:
        self._reset_metrics()

    def on_test_epoch_start(self) -> None:
        self._reset_metrics()

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")
        if self.net.refinement is not None and not self.trainer.sanity_checking:
            self._calibrate()

    def _calibrate(self) -> None:
        """``net.calibration`` from this validation's correct-match values (of all
        processes); left as it was when no keypoint was present in both images."""
        values = [self.match_values[name].compute() if self.match_values[name].update_count
                  else torch.zeros(0) for name in MATCH_VALUES]
        values = [torch.atleast_1d(torch.as_tensor(v)) for v in values]
        if all(v.numel() for v in values):
            self.net.calibration = AffinityCalibration.measure(*values)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.net.calibration is not None:
            checkpoint[CALIBRATION_KEY] = self.net.calibration.to_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if CALIBRATION_KEY in checkpoint:
            self.net.calibration = AffinityCalibration.from_dict(checkpoint[CALIBRATION_KEY])

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def _log_metrics(self, stage: str) -> None:
        """The epoch's metrics, synced over processes by torchmetrics (nan where nothing was
        counted, e.g. no truncated keypoint in the split)."""
        for name, metric in self.metrics.items():
            self.log(f"{stage}/{name}", metric.compute())

    def _gather_match_values(self, siamese: Tensor, refined: Tensor, correspondences: Tensor,
                             both: Tensor) -> None:
        """Both map types' values at the warped keypoints' cells, per keypoint present in both
        images and as each person's mean over them (for ``AffinityCalibration``)."""
        cells = nearest_cell(correspondences[..., :2], self.net.stride, siamese.shape[-2:])
        weight = both.float()
        persons = both.any(-1)
        for kind, maps in (("siamese", siamese), ("refined", refined)):
            values = values_at(maps, cells).float()
            mean = (values * weight).sum(-1) / weight.sum(-1).clamp_min(1.0)
            # Updated even when empty, so that every process has updated every metric.
            self.match_values[f"joint_{kind}"].update(values[both])
            self.match_values[f"person_{kind}"].update(mean[persons])

    def _hits(self, maps: Tensor, correspondences: Tensor) -> Tensor:
        """(..., K) bool: each map's argmax within one cell (Chebyshev) of the warped
        keypoint's cell."""
        target = nearest_cell(correspondences[..., :2], self.net.stride, maps.shape[-2:])
        return (argmax_cells(maps) - target).abs().amax(-1) <= 1

    def _evaluate(self, batch: PairSample, stage: str) -> None:
        maps = self.pair_maps(batch, None)
        batch_size = batch["image1"].shape[0]
        self.log(f"{stage}/loss", self.loss(maps), on_epoch=True, sync_dist=True,
                 batch_size=batch_size)
        correspondences = batch["correspondences"]
        both = maps.counted & (correspondences[..., 2] > 0)
        metrics = self.metrics  # one set for validation and test, reset at each epoch start
        metrics["accuracy_siamese"].update(self._hits(maps.siamese, correspondences)[both].float())
        final = maps.siamese
        if maps.refined is not None:
            # Validation refines every person with a keypoint, so every counted map is here.
            final = torch.zeros_like(maps.siamese)
            final[maps.persons] = torch.sigmoid(maps.refined).to(final.dtype)
        metrics["accuracy"].update(self._hits(final, correspondences)[both].float())
        if maps.refined is not None:
            self._gather_match_values(maps.siamese, final, correspondences, both)
        # Updated even when empty, so that every process has updated every metric.
        metrics["truncated_peak"].update(final.flatten(-2).amax(-1)[batch["truncated"]].float())
