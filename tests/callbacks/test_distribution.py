"""Precision and strategy resolution from config."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from vidpose.callbacks.distribution import device_count, resolve_precision, trainer_kwargs
from vidpose.errors import ConfigError


def _cfg(**kw):
    base = dict(accelerator="cpu", devices=1, num_nodes=1, strategy="auto", precision="auto")
    return SimpleNamespace(**{**base, **kw})


def test_auto_precision_on_cpu_is_full():
    assert resolve_precision("auto", "cpu") == "32-true"
    assert resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"


def test_half_precision_on_cpu_is_refused_with_advice():
    with pytest.raises(ConfigError, match="bf16-mixed"):
        resolve_precision("16-mixed", "cpu")
    with pytest.raises(ConfigError, match="trainer.precision"):
        resolve_precision("fp8", "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_auto_precision_on_gpu_is_mixed():
    assert resolve_precision("auto", "gpu") in {"bf16-mixed", "16-mixed"}


def test_several_devices_mean_ddp_with_gloo_on_cpu():
    from lightning.pytorch.strategies import DDPStrategy

    kw = trainer_kwargs(_cfg(devices=2))
    assert isinstance(kw["strategy"], DDPStrategy)
    assert kw["strategy"]._process_group_backend == "gloo"
    assert trainer_kwargs(_cfg())["strategy"] == "auto"
    assert device_count("3", "cpu") == 3
    with pytest.raises(ConfigError, match="trainer.devices"):
        device_count("many", "cpu")
