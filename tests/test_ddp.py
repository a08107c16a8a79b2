"""Two CPU processes (DDP, gloo) must give the same validation metric as one."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from vidpose.cli import main

SMALL = ["model.resnet=resnet18", "model.deconv_filters=32", "data.input_size=[64,48]",
         "experiment.scale=compact"]


def _eval(args: list[str], ckpt, devices: int, env: dict) -> float:
    cmd = [sys.executable, "-m", "vidpose.cli", "eval", "simple_baseline", *args,
           "trainer.accelerator=cpu", f"trainer.devices={devices}", f"--ckpt={ckpt}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    match = re.search(r"val/mAP\s+([0-9.]+)", proc.stdout)
    assert match, proc.stdout[-2000:]
    return float(match.group(1))


@pytest.mark.slow
def test_two_process_ddp_validation_equals_one_process(quick_overrides, tmp_path, capsys):
    # A briefly trained checkpoint, so that mAP is neither 0 nor 100.
    args = [a for a in quick_overrides if not a.startswith("trainer.devices")] + SMALL
    assert main(["train", "simple_baseline", *args, "trainer.max_epochs=2"]) == 0
    ckpt = next((tmp_path / "runs" / "simple_baseline").glob("*/checkpoints/last.ckpt"))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    # An odd number of validation crops makes DistributedSampler pad with a repeated sample.
    eval_args = args + ["data.max_val_samples=13", "data.batch_size=3"]
    one = _eval(eval_args, ckpt, 1, env)
    two = _eval(eval_args, ckpt, 2, env)
    assert 0.0 < one < 100.0
    assert two == pytest.approx(one, abs=1e-6)
