"""SimpleBaseline learns: on the tiny synthetic set its loss falls and its mAP rises."""
from __future__ import annotations

import pytest
from learning import fit_on_tiny_crops

from vidpose.methods.simple_baseline import SimpleBaseline


@pytest.mark.slow
def test_loss_falls_and_map_rises_on_tiny_synthetic_videos(tiny_synth, tmp_path):
    losses, before, after = fit_on_tiny_crops(
        lambda data: SimpleBaseline({"resnet": "resnet18", "deconv_filters": 64, "lr": 2e-3,
                                     "lr_steps": [100]}, data), tiny_synth, tmp_path, epochs=10)

    assert losses[-1]["loss_epoch"] < 0.6 * losses[0]["loss_epoch"]
    assert after["val/loss"] < 0.7 * before["val/loss"]
    # Validation is on other videos than training.
    assert after["val/mAP"] > max(15.0, before["val/mAP"] + 10.0)
    assert list((tmp_path / "predictions" / "val").glob("*.json"))
