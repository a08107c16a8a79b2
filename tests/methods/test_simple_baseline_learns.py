"""SimpleBaseline learns: on the tiny synthetic set its loss falls and its mAP rises."""
from __future__ import annotations

import lightning as L
import pytest

from vidpose.data_modules.crops import CropDataModule
from vidpose.methods.simple_baseline import SimpleBaseline


class EpochLosses(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_epoch_end(self, trainer, module) -> None:
        self.losses.append(float(trainer.callback_metrics["train/loss_epoch"]))


@pytest.mark.slow
def test_loss_falls_and_map_rises_on_tiny_synthetic_videos(tiny_synth, tmp_path):
    data = {"dataset": "posetrack18", "root": str(tiny_synth / "posetrack18"),
            "synth_preset": None, "input_size": [64, 48], "sigma": 1.5, "batch_size": 16,
            "num_workers": 0}
    L.seed_everything(0, verbose=False)
    datamodule = CropDataModule(data, "posetrack18")
    model = SimpleBaseline({"backbone": "resnet18", "deconv_filters": 64, "lr": 2e-3,
                            "lr_steps": [100]}, data)
    losses = EpochLosses()
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=str(tmp_path), max_epochs=10, num_sanity_val_steps=0,
                        check_val_every_n_epoch=10, callbacks=[losses])
    trainer.validate(model, datamodule=datamodule, verbose=False)
    before = {k: float(trainer.callback_metrics[k]) for k in ("val/mAP", "val/loss")}
    trainer.fit(model, datamodule=datamodule)
    after = {k: float(trainer.callback_metrics[k]) for k in ("val/mAP", "val/loss")}

    assert losses.losses[-1] < 0.6 * losses.losses[0]
    assert after["val/loss"] < 0.7 * before["val/loss"]
    # Validation is on other videos than training.
    assert after["val/mAP"] > max(15.0, before["val/mAP"] + 10.0)
    assert list((tmp_path / "predictions" / "val").glob("*.json"))
