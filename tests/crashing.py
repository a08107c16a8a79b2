"""A crash in the middle of training, for the resume tests (test_cli, test_faults)."""
from __future__ import annotations

import lightning as L


class Crash(L.Callback):
    """Stands in for a crash (power cut, OOM kill) after `at` optimizer steps, before that
    step's checkpoint."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step >= self.at:
            raise RuntimeError("simulated crash")
