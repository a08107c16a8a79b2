"""What several methods' LightningModules share: the optimiser and the evaluation hooks."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from vidpose.evaluation.split import SplitEvaluator, result_folder, split_data
from vidpose.methods import check_stride
from vidpose.nn.resnet import BACKBONE_STRIDE, ResNet, load_imagenet, resnet


def adam_with_steps(module: nn.Module, cfg: Any) -> dict[str, Any]:
    """Adam (``cfg.lr``, ``cfg.weight_decay``) with the lr times ``cfg.lr_factor`` at each
    epoch in ``cfg.lr_steps``: the schedule of SimpleBaseline, CenterNet and their kin."""
    optimizer = torch.optim.Adam(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(cfg.lr_steps),
                                                     gamma=cfg.lr_factor)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}


def deconv_resnet(module: Any, model: dict, stride: int) -> ResNet:
    """The ResNet trunk of a SimpleBaseline-style network (``module.cfg``: resnet,
    pretrained, deconv_layers) whose deconvolution head reaches the data's heatmap stride.

    ImageNet weights come from ``cfg.pretrained``; they then live in the state dict, so the
    module's saved ``model`` hyperparameters drop the file: a checkpoint rebuilds without it.
    """
    cfg = module.cfg
    check_stride(stride, BACKBONE_STRIDE // 2 ** cfg.deconv_layers,
                 f"a head of {cfg.deconv_layers} deconvolutions")
    trunk = resnet(cfg.resnet)
    if cfg.pretrained:
        load_imagenet(trunk, cfg.pretrained)
        module.hparams["model"] = {**model, "pretrained": None}
    return trunk


def log_losses(module: Any, losses: dict[str, Tensor], batch_size: int) -> Tensor:
    """Log ``losses["loss"]`` as train/loss (per step and epoch, on the progress bar) and each
    other term as train/<name> per epoch; returns the loss to optimise."""
    module.log("train/loss", losses["loss"], on_step=True, on_epoch=True, prog_bar=True,
               batch_size=batch_size)
    for name, value in losses.items():
        if name != "loss":
            module.log(f"train/{name}", value, on_step=False, on_epoch=True, batch_size=batch_size)
    return losses["loss"]


class EvaluationHooks:
    """Routes Lightning's validation and test hooks to one ``_evaluation_step(batch, stage)``
    and one ``_evaluation_epoch_end(stage)``. Each start begins a new ``evaluator`` (the
    method's ``make_evaluator()``, a ``SplitEvaluator``) to which the steps add predictions."""

    evaluator: SplitEvaluator

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluation_step(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluation_step(batch, "test")

    def on_validation_epoch_start(self) -> None:
        self.evaluator = self.make_evaluator()

    def on_test_epoch_start(self) -> None:
        self.evaluator = self.make_evaluator()

    def on_validation_epoch_end(self) -> None:
        self._evaluation_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._evaluation_epoch_end("test")

    def _evaluation_epoch_end(self, stage: str) -> None:
        """The evaluator's scores of the split logged as ``<stage>/<name>``; its result files
        in ``<run>/predictions/<stage>``."""
        dataset = split_data(self.trainer.datamodule, stage, type(self).__name__)
        # Every rank holds all predictions and computes the same values, which the mean that
        # sync_dist takes leaves exactly as they are.
        folder = result_folder(self.trainer, stage)
        for name, value in self.evaluator.finish(dataset, folder).items():
            self.log(f"{stage}/{name}", value, sync_dist=True)
