"""The RNN pose decoder under two-process CPU DDP: ranks that need different numbers of
within-image backward passes still step together and keep identical decoder weights."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent / "rnn_ddp_run.py"


@pytest.mark.slow
def test_ddp_ranks_with_different_chunk_counts_stay_in_sync(tmp_path):
    out = tmp_path / "ddp.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), str(out)], capture_output=True,
                          text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    # 4 images per rank, T = 1: 2 steps per one-person image, 3 for the two-person one.
    assert sorted(result["backward_counts"]) == [8, 9]
    first, second = result["parameters"]
    assert first == second
    assert first != result["initial"]
