"""What the learning tests share: validate, train, validate again, and read the losses per
epoch and the validation figures before and after."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import lightning as L

from vidpose.data_modules.crops import CropDataModule

VALIDATION_KEYS = ("val/mAP", "val/loss")


class EpochLosses(L.Callback):
    """The ``train/<key>`` figures at the end of every epoch."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = keys
        self.losses: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer, module) -> None:
        self.losses.append({k: float(trainer.callback_metrics[f"train/{k}"]) for k in self.keys})


def fit_and_validate(model: L.LightningModule, datamodule: L.LightningDataModule,
                     tmp_path: Path, epochs: int, keys: Sequence[str],
                     callbacks: Sequence[L.Callback] = ()) -> tuple[dict, dict]:
    """Validate, train ``epochs`` epochs (one validation at the end), validate: the ``keys``
    of the validation figures before and after."""
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=str(tmp_path), max_epochs=epochs, num_sanity_val_steps=0,
                        check_val_every_n_epoch=epochs, callbacks=list(callbacks))
    trainer.validate(model, datamodule=datamodule, verbose=False)
    before = {k: float(trainer.callback_metrics[k]) for k in keys}
    trainer.fit(model, datamodule=datamodule)
    after = {k: float(trainer.callback_metrics[k]) for k in keys}
    return before, after


def fit_on_tiny_crops(build: Callable[[dict], L.LightningModule], tiny_synth: Path,
                      tmp_path: Path, epochs: int, loss_keys: tuple[str, ...] = ("loss_epoch",)
                      ) -> tuple[list[dict[str, float]], dict[str, float], dict[str, float]]:
    """Seed, build a model of person crops of the tiny set's PoseTrack18 videos and
    :func:`fit_and_validate` it on val mAP and loss: (per-epoch losses, figures before, after)."""
    data = {"dataset": "posetrack18", "root": str(tiny_synth / "posetrack18"), "synth_preset": None,
            "input_size": [64, 48], "sigma": 1.5, "batch_size": 16, "num_workers": 0}
    L.seed_everything(0, verbose=False)
    datamodule = CropDataModule(data, "posetrack18")
    losses = EpochLosses(loss_keys)
    before, after = fit_and_validate(build(data), datamodule, tmp_path, epochs, VALIDATION_KEYS,
                                     [losses])
    return losses.losses, before, after
