"""bf16-mixed training reaches every method's layers and keeps its losses in fp32.

One experiment per method trains one step and validates one batch on the tiny set under
`trainer.precision=auto` with the CPU's flags set to AMX (bf16-mixed + channels_last; a method
with FP32_REASON stays fp32).
The convolutions must run in bf16 (autocast reaches them, the RNN decoder's manual optimisation
included) and every loss handed to backward must be fp32. Whether bf16 still *learns* is
checked by the learning tests under ``--bf16`` (tests/conftest.py).
"""
from __future__ import annotations

import pytest
import torch
from lightning import LightningModule

from vidpose.callbacks import distribution
from vidpose.callbacks.distribution import CpuBf16
from vidpose.config import compose
from vidpose.methods import get_method
from vidpose.run import train

# One compact experiment per trained method.
EXPERIMENTS = ("simple_baseline", "memory_t3_cpn_memory", "centernet", "stm_t1_cc",
               "correspondence_pose", "correspondence_siamese", "assoc_embedding",
               "rnn_association")
SHRINK = ["trainer.max_steps=1", "trainer.limit_val_batches=1", "trainer.max_epochs=1",
          "logger.csv=false", "trainer.precision=auto"]


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_auto_trains_in_bf16_with_fp32_losses(name, quick_overrides, request, monkeypatch):
    overrides = quick_overrides + SHRINK + ["data.input_size=[64,48]"]
    cfg = compose(name, overrides)
    if cfg.experiment.datamodule == "images":
        overrides += request.getfixturevalue("image_overrides")
        if cfg.experiment.method == "rnn_decoder":
            overrides += request.getfixturevalue("ae_features")
    monkeypatch.setattr(distribution, "cpu_bf16", lambda: CpuBf16(True, True))
    losses: list[torch.dtype] = []
    convs: list[torch.dtype] = []
    layouts: list[bool] = []
    backward = LightningModule.backward

    def record_backward(self, loss, *args, **kwargs):
        losses.append(loss.dtype)
        return backward(self, loss, *args, **kwargs)

    def record_conv(module, inputs, output):
        if module.training:
            convs.append(output.dtype)
            layouts.append(module.weight.is_contiguous(memory_format=torch.channels_last))

    monkeypatch.setattr(LightningModule, "backward", record_backward)
    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda m, i, o: record_conv(m, i, o) if isinstance(m, torch.nn.Conv2d) else None)
    try:
        train(compose(name, overrides))
    finally:
        hook.remove()
    assert losses and set(losses) == {torch.float32}
    if getattr(get_method(cfg.experiment.method).model_cls, "FP32_REASON", None):
        assert set(convs) == {torch.float32}
    else:
        assert convs and set(convs) == {torch.bfloat16}
        assert all(layouts)
