"""Every experiment file builds and trains for two steps on the tiny synthetic set.

The experiment's own compact config is kept; only data, run folder and step counts shrink
(the lightning-hydra-template way: tests shrink the config, no special code paths).
"""
from __future__ import annotations

import pytest

from vidpose.config import compose, list_experiments
from vidpose.run import train


@pytest.mark.parametrize("name", sorted(list_experiments()))
def test_experiment_runs_two_steps(name, quick_overrides):
    cfg = compose(name, quick_overrides + ["trainer.max_steps=2", "trainer.limit_val_batches=1",
                                           "trainer.max_epochs=1", "data.input_size=[64,48]"])
    result = train(cfg)
    assert (result.run_dir / "checkpoints" / "last.ckpt").is_file()
    assert any(k.startswith("train/loss") for k in result.metrics)
