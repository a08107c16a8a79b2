"""Shared fixtures: a tiny synthetic data set (made once per session) and quick-run overrides."""
from __future__ import annotations

import functools
import os
from pathlib import Path

import lightning as L
import pytest
import torch

from vidpose.config import compose
from vidpose.errors import InputError
from vidpose.run import train
from vidpose.synth import synthesize

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHRINK = ["trainer.max_steps=2", "trainer.limit_val_batches=1", "trainer.max_epochs=1"]

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


def pytest_addoption(parser) -> None:
    parser.addoption("--bf16", action="store_true",
                     help="run every test under CPU bf16 autocast, as trainer.precision="
                          "bf16-mixed trains and validates: `pytest -m slow tests/methods --bf16` "
                          "checks that each method still learns (FP32_REASON otherwise)")


@pytest.fixture(autouse=True)
def _bf16_autocast(request, monkeypatch):
    """With --bf16, every Trainer is a bf16-mixed one (autocast in its steps only: data and
    epoch-end metrics stay fp32, as in a run), and a test that drives a model by hand does so
    inside torch.autocast(cpu, bfloat16)."""
    if not request.config.getoption("--bf16"):
        yield
        return
    init, run = L.Trainer.__init__, L.Trainer._run

    @functools.wraps(init)  # keeps Trainer's signature: config checks trainer.* names against it
    def bf16_init(self, *args, **kwargs):
        init(self, *args, **{**kwargs, "precision": "bf16-mixed"})

    def fp32_outside_steps(self, *args, **kwargs):
        with torch.autocast("cpu", enabled=False):
            return run(self, *args, **kwargs)

    monkeypatch.setattr(L.Trainer, "__init__", bf16_init)
    monkeypatch.setattr(L.Trainer, "_run", fp32_outside_steps)
    # No cast cache: one context around many optimiser steps would keep the first step's bf16
    # copies of the weights (Lightning's own autocast disables it too).
    with torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False):
        yield


@pytest.fixture()
def fixtures() -> Path:
    """The real-data fixtures folder beside the repo (../shared/fixtures); skips without it."""
    if not (SHARED / "fixtures").is_dir():
        pytest.skip("../shared/fixtures not found")
    return (SHARED / "fixtures").resolve()


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory) -> Path:
    """The `tiny` synthetic preset, written once: returns its output folder."""
    out = tmp_path_factory.mktemp("synth") / "tiny"
    synthesize(out, preset="tiny", seed=0, progress=False)
    return out


@pytest.fixture(scope="session")
def quick_runs(tiny_synth):
    """``quick_runs(runs)``: overrides that shrink any experiment to seconds on the tiny set,
    its runs under ``runs``."""
    return lambda runs: [
        "data=synth_tiny", f"data.root={tiny_synth / 'posetrack18'}", "data.num_workers=0",
        "data.batch_size=4", f"runs_dir={runs}", "logger.wandb=false",
        "trainer.progress_bar=false", "trainer.accelerator=cpu", "trainer.devices=1"]


@pytest.fixture()
def quick_overrides(quick_runs, tmp_path) -> list[str]:
    return quick_runs(tmp_path / "runs")


@pytest.fixture()
def expect_input_error():
    """``expect_input_error(call, file=, record=, field=)``: the error names all three."""
    def check(call, *, file, record, field) -> InputError:
        with pytest.raises(InputError) as info:
            call()
        err = info.value
        assert (str(err.file), err.record, err.field) == (str(file), record, field), str(err)
        named = [str(file), *([f"record {record}"] if record is not None else []),
                 *([f"field '{field}'"] if field is not None else [])]
        assert str(err).startswith(": ".join(named) + ": "), str(err)
        return err
    return check


@pytest.fixture(scope="session")
def tracking_models(tiny_synth, quick_runs, tmp_path_factory) -> list[str]:
    """Overrides under which the tracking experiments (which train nothing themselves) find a
    two-step estimator and correspondence network, trained once on the tiny set."""
    runs = tmp_path_factory.mktemp("tracking_models")
    common = quick_runs(runs) + SHRINK
    pose = train(compose("correspondence_pose", common + ["data.input_size=[64,48]"]))
    pairs = [f"data.root={tiny_synth / 'coco'}", "data.dataset=coco", "data.input_size=[64,64]"]
    # A whole (two-batch) epoch, so that its validation records the affinity calibration the
    # Table 7 "w/o refinement" row reads.
    net = train(compose("correspondence_refinement",
                        common + pairs + ["init_from=null", "trainer.limit_train_batches=2"]))
    assert pose.run_dir.parent.parent == net.run_dir.parent.parent == runs
    # The tracking experiments name run:correspondence_pose and run:correspondence_refinement:
    # pointing runs_dir here resolves them to these runs.
    return [f"runs_dir={runs}"]


@pytest.fixture(scope="session")
def image_overrides(tiny_synth) -> list[str]:
    """Overrides that point a bottom-up (images) experiment at the tiny COCO and crowded sets."""
    return [f"data.root={tiny_synth / 'coco'}", "data.dataset=coco",
            f"data.crowded_root={tiny_synth / 'ochuman'}", "data.input_size=[64,64]"]


@pytest.fixture(scope="session")
def ae_features(quick_runs, image_overrides, tmp_path_factory) -> list[str]:
    """Overrides under which the rnn experiments find a two-step AE (run:assoc_embedding),
    trained once on the tiny set."""
    runs = tmp_path_factory.mktemp("ae_features")
    train(compose("assoc_embedding", quick_runs(runs) + SHRINK + image_overrides))
    return [f"runs_dir={runs}"]
