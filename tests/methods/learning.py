"""What the top-down learning tests share: train a crop model on the tiny synthetic videos
and read its losses per epoch and its validation figures before and after."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import lightning as L

from vidpose.data_modules.crops import CropDataModule

VALIDATION_KEYS = ("val/mAP", "val/loss")


def tiny_crops(tiny_synth: Path) -> dict:
    """The data section: person crops of the tiny set's PoseTrack18 videos."""
    return {"dataset": "posetrack18", "root": str(tiny_synth / "posetrack18"),
            "synth_preset": None, "input_size": [64, 48], "sigma": 1.5, "batch_size": 16,
            "num_workers": 0}


class EpochLosses(L.Callback):
    """The ``train/<key>`` figures at the end of every epoch."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = keys
        self.losses: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer, module) -> None:
        self.losses.append({k: float(trainer.callback_metrics[f"train/{k}"]) for k in self.keys})


def fit_on_tiny_crops(build: Callable[[dict], L.LightningModule], tiny_synth: Path,
                      tmp_path: Path, epochs: int, loss_keys: tuple[str, ...] = ("loss_epoch",)
                      ) -> tuple[list[dict[str, float]], dict[str, float], dict[str, float]]:
    """Seed, build the model from the data section, validate, train ``epochs`` epochs (one
    validation at the end), validate: (per-epoch losses, figures before, figures after)."""
    data = tiny_crops(tiny_synth)
    L.seed_everything(0, verbose=False)
    datamodule = CropDataModule(data, "posetrack18")
    model = build(data)
    losses = EpochLosses(loss_keys)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=str(tmp_path), max_epochs=epochs, num_sanity_val_steps=0,
                        check_val_every_n_epoch=epochs, callbacks=[losses])
    trainer.validate(model, datamodule=datamodule, verbose=False)
    before = {k: float(trainer.callback_metrics[k]) for k in VALIDATION_KEYS}
    trainer.fit(model, datamodule=datamodule)
    after = {k: float(trainer.callback_metrics[k]) for k in VALIDATION_KEYS}
    return losses.losses, before, after
