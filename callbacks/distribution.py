"""Precision and distribution from config: what the Trainer is told about devices.

`precision: auto` picks bf16-mixed on GPUs that support it and 16-mixed on older GPUs. On a
CPU it picks bf16-mixed with the convolution weights in channels_last (NHWC) where the CPU
multiplies bf16 natively (AVX512-BF16 or AMX-BF16), and 32-true elsewhere (bf16 is emulated
there, slower than fp32). oneDNN's bf16 convolutions are fastest in NHWC: on an AMD EPYC with
AVX512-BF16 (no AMX) every compact experiment's step ran 1.5-2.1x fp32's rate in bf16 + NHWC
and 0.9-1.9x in bf16 NCHW (benchmarks/bench_training.py, `make bench`); the issue measured the
same order on an Intel Xeon with AMX. A method whose bf16 run does not learn as its fp32 run
does says why in ``FP32_REASON`` (a class attribute) and `auto` keeps it in 32-true. The
choice and its reason are printed as one line. The decision reads the CPU's flags, never a
timing, so the same machine always trains the same way.

Several devices or nodes mean DDP (gloo on CPU, NCCL on GPU); SLURM and torchrun jobs are
detected by Lightning's cluster environments, so the same config runs under `srun` or
`torchrun` unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info

from vidpose.errors import ConfigError

_PRECISIONS = {"auto", "32-true", "32", "bf16-mixed", "16-mixed", "bf16-true", "64-true"}


def _uses_gpu(accelerator: str) -> bool:
    return accelerator in {"gpu", "cuda"} or (accelerator == "auto" and torch.cuda.is_available())


@dataclass(frozen=True)
class CpuBf16:
    """What this CPU does with bf16: native dot products (AVX512-BF16), AMX tiles."""

    avx512_bf16: bool
    amx_bf16: bool

    @property
    def fast(self) -> bool:
        return self.avx512_bf16 or self.amx_bf16


def cpu_bf16() -> CpuBf16:
    """The CPU's bf16 features, from torch's own CPU probe (the flags oneDNN dispatches on),
    else from /proc/cpuinfo."""
    probe = getattr(torch, "cpu", None)
    try:
        return CpuBf16(bool(probe._is_avx512_bf16_supported()),
                       bool(probe._is_amx_tile_supported()))
    except AttributeError:
        try:
            lines = Path("/proc/cpuinfo").read_text().splitlines()
        except OSError:
            lines = []
        flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
        return CpuBf16("avx512_bf16" in flags, "amx_bf16" in flags)


@dataclass(frozen=True)
class PrecisionChoice:
    """What `trainer.precision` resolved to: Lightning's precision, whether convolution
    weights go channels_last, and why (printed when the config said `auto`)."""

    precision: str
    channels_last: bool = False
    reason: str = field(default="", compare=False)


def choose_precision(precision: str, accelerator: str, module_cls: type | None = None,
                     cpu: CpuBf16 | None = None) -> PrecisionChoice:
    """`trainer.precision` for this machine and method (``module_cls``: its LightningModule,
    whose ``FP32_REASON`` keeps `auto` in fp32)."""
    if precision not in _PRECISIONS:
        raise ConfigError(f"trainer.precision: {precision!r} is not one of {sorted(_PRECISIONS)}")
    gpu = _uses_gpu(accelerator)
    if precision == "16-mixed" and not gpu:
        raise ConfigError("trainer.precision: 16-mixed needs a CUDA GPU; on CPU use "
                          "bf16-mixed or 32-true")
    if precision != "auto":
        return PrecisionChoice(precision, reason="as configured")
    keep_fp32 = getattr(module_cls, "FP32_REASON", None)
    if keep_fp32:
        return PrecisionChoice("32-true", reason=f"{module_cls.__name__} stays fp32: {keep_fp32}")
    if gpu:
        if torch.cuda.is_bf16_supported():
            return PrecisionChoice("bf16-mixed", reason="the GPU supports bf16")
        return PrecisionChoice("16-mixed", reason="the GPU has no bf16; fp16 with loss scaling")
    cpu = cpu or cpu_bf16()
    if cpu.fast:
        found = "AMX-BF16" if cpu.amx_bf16 else "AVX512-BF16"
        return PrecisionChoice("bf16-mixed", channels_last=True,
                               reason=f"the CPU has {found}: native bf16 convolutions, fastest "
                               "with channels_last weights")
    return PrecisionChoice("32-true", reason="the CPU has neither AVX512-BF16 nor AMX-BF16 "
                           "(bf16 would be emulated, slower than fp32)")


def to_channels_last(module: torch.nn.Module) -> torch.nn.Module:
    """The 2-D (de)convolutions' weights in channels_last, in place: oneDNN then runs them, and
    the activations they produce, in NHWC. Other 4-D tensors (buffers, learned maps a method
    may ``view``) keep their layout."""
    for layer in module.modules():
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            layer.weight.data = layer.weight.data.contiguous(memory_format=torch.channels_last)
    return module


class ChannelsLast(L.Callback):
    """Puts the module's convolution weights in channels_last before the optimizers are made."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        to_channels_last(pl_module)


def device_count(devices: Any, accelerator: str) -> int:
    if isinstance(devices, int):
        return devices
    if isinstance(devices, (list, tuple)):
        return len(devices)
    if devices in (None, "auto"):
        return torch.cuda.device_count() if _uses_gpu(accelerator) else 1
    if isinstance(devices, str) and devices.lstrip("-").isdigit():
        n = int(devices)
        return torch.cuda.device_count() if n == -1 else n
    raise ConfigError(f"trainer.devices: {devices!r} is not a count, a list or 'auto'")


def trainer_kwargs(trainer_cfg: Any, module_cls: type | None = None) -> dict[str, Any]:
    """accelerator, devices, num_nodes, strategy and precision for `lightning.Trainer`, and
    the callbacks the precision needs (channels_last), for the method ``module_cls``."""
    accelerator = trainer_cfg.accelerator
    devices = trainer_cfg.devices
    n = device_count(devices, accelerator) * trainer_cfg.num_nodes
    strategy: Any = trainer_cfg.strategy
    if strategy == "auto" and n > 1:
        from lightning.pytorch.strategies import DDPStrategy

        backend = "nccl" if _uses_gpu(accelerator) else "gloo"
        strategy = DDPStrategy(process_group_backend=backend, find_unused_parameters=False)
    if isinstance(devices, str) and devices.isdigit():
        devices = int(devices)
    choice = choose_precision(trainer_cfg.precision, accelerator, module_cls)
    if trainer_cfg.precision == "auto":
        layout = ", channels_last" if choice.channels_last else ""
        rank_zero_info(f"trainer.precision=auto: {choice.precision}{layout} ({choice.reason})")
    return {"accelerator": accelerator, "devices": devices, "num_nodes": trainer_cfg.num_nodes,
            "strategy": strategy, "precision": choice.precision,
            "callbacks": [ChannelsLast()] if choice.channels_last else []}
