"""Registry of methods: name -> LightningModule, its model config dataclass, its data module.

Modules are imported lazily so that `vidpose list` and config validation stay fast.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

from vidpose.errors import ConfigError


@dataclass(frozen=True)
class MethodSpec:
    module: str  # python module of the LightningModule and its config
    model_class: str
    config_class: str
    datamodule: str  # "package.module:Class"

    @property
    def config_cls(self) -> type:
        return getattr(importlib.import_module(self.module), self.config_class)

    @property
    def model_cls(self) -> type:
        return getattr(importlib.import_module(self.module), self.model_class)

    @property
    def datamodule_cls(self) -> type:
        mod, cls = self.datamodule.split(":")
        return getattr(importlib.import_module(mod), cls)


METHODS: dict[str, MethodSpec] = {
    "simple_baseline": MethodSpec(
        "vidpose.methods.simple_baseline", "SimpleBaseline", "SimpleBaselineConfig",
        "vidpose.data_modules.crops:CropDataModule",
    ),
}


def get_method(name: str) -> MethodSpec:
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(f"unknown method {name!r} in experiment.method; known: "
                          f"{', '.join(sorted(METHODS))}") from None
