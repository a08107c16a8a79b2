"""Precision and strategy resolution from config: `auto` by the CPU's bf16 flags and the
method's FP32_REASON, channels_last, DDP."""
from __future__ import annotations

import copy
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.strategies import DDPStrategy

from vidpose.callbacks import distribution
from vidpose.callbacks.distribution import (
    ChannelsLast,
    CpuBf16,
    choose_precision,
    cpu_bf16,
    device_count,
    to_channels_last,
    trainer_kwargs,
)
from vidpose.errors import ConfigError
from vidpose.methods import METHODS, get_method


def _cfg(**kw):
    base = dict(accelerator="cpu", devices=1, num_nodes=1, strategy="auto", precision="auto")
    return SimpleNamespace(**{**base, **kw})


PLAIN, AVX512_BF16, AMX = CpuBf16(False, False), CpuBf16(True, False), CpuBf16(True, True)


def test_auto_precision_on_cpu_follows_its_bf16_flags():
    # Emulated bf16 is slower than fp32: only CPUs that multiply bf16 natively get it.
    assert choose_precision("auto", "cpu", cpu=PLAIN).precision == "32-true"
    fast = choose_precision("auto", "cpu", cpu=AVX512_BF16)
    assert (fast.precision, fast.channels_last) == ("bf16-mixed", True)
    amx = choose_precision("auto", "cpu", cpu=AMX)
    assert (amx.precision, amx.channels_last) == ("bf16-mixed", True)
    assert "AMX-BF16" in amx.reason and "AVX512-BF16" in fast.reason
    # A configured precision is taken as it is, whatever the CPU.
    assert choose_precision("bf16-mixed", "cpu", cpu=PLAIN).precision == "bf16-mixed"
    assert choose_precision("32-true", "cpu", cpu=AMX) == choose_precision("32-true", "cpu")


class _Fp32Method:
    FP32_REASON = "its tag loss separates persons by differences bf16 rounds away"


def test_a_method_with_a_reason_stays_fp32_under_auto_only():
    kept = choose_precision("auto", "cpu", _Fp32Method, cpu=AMX)
    assert kept.precision == "32-true" and not kept.channels_last
    assert "_Fp32Method stays fp32: its tag loss" in kept.reason
    assert choose_precision("bf16-mixed", "cpu", _Fp32Method).precision == "bf16-mixed"


def test_every_method_may_say_why_it_stays_fp32():
    for name in METHODS:
        reason = getattr(get_method(name).model_cls, "FP32_REASON", None)
        assert reason is None or (isinstance(reason, str) and reason.strip()), name


def test_the_cpu_probe_agrees_with_proc_cpuinfo():
    info = Path("/proc/cpuinfo")
    if not info.is_file():
        pytest.skip("no /proc/cpuinfo")
    flags = next((line.split(":", 1)[1].split() for line in info.read_text().splitlines()
                  if line.startswith("flags")), [])
    found = cpu_bf16()
    assert found.avx512_bf16 == ("avx512_bf16" in flags)
    assert found.amx_bf16 == ("amx_bf16" in flags or "amx_tile" in flags)


def test_trainer_kwargs_print_the_choice_and_add_channels_last(monkeypatch, caplog):
    monkeypatch.setattr(distribution, "cpu_bf16", lambda: AMX)
    with caplog.at_level(logging.INFO):
        kw = trainer_kwargs(_cfg())
    assert kw["precision"] == "bf16-mixed"
    assert [type(c) for c in kw["callbacks"]] == [ChannelsLast]
    lines = [r.getMessage() for r in caplog.records if "trainer.precision" in r.getMessage()]
    assert lines == ["trainer.precision=auto: bf16-mixed, channels_last (the CPU has AMX-BF16: "
                     "native bf16 convolutions, fastest with channels_last weights)"]
    monkeypatch.setattr(distribution, "cpu_bf16", lambda: PLAIN)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        kw = trainer_kwargs(_cfg(), _Fp32Method)
    assert kw["precision"] == "32-true" and kw["callbacks"] == []
    assert "stays fp32" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert trainer_kwargs(_cfg(precision="32-true"))["precision"] == "32-true"
    assert "trainer.precision" not in caplog.text  # only `auto` is explained


def test_channels_last_converts_4d_weights_and_a_bf16_step_trains():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8),
                              torch.nn.ReLU(), torch.nn.Conv2d(8, 1, 1))
    volume, table = torch.nn.Conv3d(1, 1, 1), torch.nn.ParameterList([torch.rand(2, 3, 4, 5)])
    to_channels_last(torch.nn.ModuleList([net, volume, table]))
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not net[0].weight.is_contiguous()
    assert volume.weight.is_contiguous() and table[0].is_contiguous()  # not 2-D convolutions
    x = torch.rand(2, 3, 16, 16)
    reference = torch.nn.Sequential(*[copy.deepcopy(m) for m in net])
    with torch.no_grad():
        for a, b in zip(reference.parameters(), net.parameters()):
            a.copy_(b)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = net(x).float().pow(2).mean()
    loss.backward()
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(reference(x).pow(2).mean().item(), rel=0.05)


def test_half_precision_on_cpu_is_refused_with_advice():
    with pytest.raises(ConfigError, match="bf16-mixed"):
        choose_precision("16-mixed", "cpu")
    with pytest.raises(ConfigError, match="trainer.precision"):
        choose_precision("fp8", "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_auto_precision_on_gpu_is_mixed():
    assert choose_precision("auto", "gpu").precision in {"bf16-mixed", "16-mixed"}


def test_several_devices_mean_ddp_with_gloo_on_cpu():
    kw = trainer_kwargs(_cfg(devices=2))
    assert isinstance(kw["strategy"], DDPStrategy)
    assert kw["strategy"]._process_group_backend == "gloo"
    assert trainer_kwargs(_cfg())["strategy"] == "auto"
    assert device_count("3", "cpu") == 3
    with pytest.raises(ConfigError, match="trainer.devices"):
        device_count("many", "cpu")
