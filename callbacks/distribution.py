"""Precision and distribution from config: what the Trainer is told about devices.

`precision: auto` picks bf16-mixed on GPUs that support it, 16-mixed on older GPUs and
32-true on CPU. Several devices or nodes mean DDP (gloo on CPU, NCCL on GPU); SLURM and
torchrun jobs are detected by Lightning's cluster environments, so the same config runs
under `srun` or `torchrun` unchanged.
"""
from __future__ import annotations

from typing import Any

import torch

from vidpose.errors import ConfigError

_PRECISIONS = {"auto", "32-true", "32", "bf16-mixed", "16-mixed", "bf16-true", "64-true"}


def _uses_gpu(accelerator: str) -> bool:
    return accelerator in {"gpu", "cuda"} or (accelerator == "auto" and torch.cuda.is_available())


def resolve_precision(precision: str, accelerator: str) -> str:
    if precision not in _PRECISIONS:
        raise ConfigError(f"trainer.precision: {precision!r} is not one of {sorted(_PRECISIONS)}")
    gpu = _uses_gpu(accelerator)
    if precision == "auto":
        if not gpu:
            return "32-true"
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    if precision == "16-mixed" and not gpu:
        raise ConfigError("trainer.precision: 16-mixed needs a CUDA GPU; on CPU use "
                          "bf16-mixed or 32-true")
    return precision


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


def trainer_kwargs(trainer_cfg: Any) -> dict[str, Any]:
    """accelerator, devices, num_nodes, strategy and precision for `lightning.Trainer`."""
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
    return {
        "accelerator": accelerator,
        "devices": devices,
        "num_nodes": trainer_cfg.num_nodes,
        "strategy": strategy,
        "precision": resolve_precision(trainer_cfg.precision, accelerator),
    }
