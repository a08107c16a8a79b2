"""One `last.ckpt`, written every N optimizer steps and at the end of every epoch.

Lightning's ModelCheckpoint takes either a step or an epoch interval; a crash must lose at
most N steps and a finished epoch must always be resumable, so this one does both. The
best-on-metric checkpoint is a separate, plain ModelCheckpoint that does not write `last`.
"""
from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


class LastCheckpoint(ModelCheckpoint):
    def __init__(self, dirpath: str, every_n_train_steps: int) -> None:
        super().__init__(dirpath=dirpath, every_n_train_steps=every_n_train_steps,
                         save_top_k=0, save_last=True)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
