"""Fixtures of the method tests: hand-made crops, a small model, a quiet trainer."""
from __future__ import annotations

from typing import Any, Callable

import lightning as L
import pytest
import torch
from crop_batches import DATA, SMALL_MODEL, HandCropDataModule

from vidpose.methods.simple_baseline import SimpleBaseline


@pytest.fixture(params=[False, True], ids=["plain", "padded"])
def hand_crops(request) -> HandCropDataModule:
    """The hand-made crops, once as they are and once with a repeated (padding) crop."""
    return HandCropDataModule(repeat_first=request.param)


@pytest.fixture()
def plain_crops() -> HandCropDataModule:
    return HandCropDataModule()


@pytest.fixture()
def small_model() -> Callable[..., SimpleBaseline]:
    """Builds a resnet18 SimpleBaseline with 16 deconv filters; keyword args override the
    ``model`` section."""
    def build(cls: type[SimpleBaseline] = SimpleBaseline, **model: Any) -> SimpleBaseline:
        torch.manual_seed(0)
        return cls({**SMALL_MODEL, **model}, dict(DATA))
    return build


@pytest.fixture()
def quiet_trainer(tmp_path) -> Callable[..., L.Trainer]:
    """A CPU Trainer without logger, checkpoints or progress bar, rooted in tmp_path (keyword
    args add or override settings)."""
    def build(**kwargs: Any) -> L.Trainer:
        return L.Trainer(**{"accelerator": "cpu", "devices": 1, "logger": False,
                            "enable_checkpointing": False, "enable_progress_bar": False,
                            "enable_model_summary": False, "default_root_dir": str(tmp_path),
                            **kwargs})
    return build


@pytest.fixture()
def one_thread():
    """Learning tests' margins were measured on one thread: other thread counts sum in another
    order and drift onto another training trajectory."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
