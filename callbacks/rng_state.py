"""Save and restore the random number generators and the training order with each checkpoint.

Lightning restores weights, optimizer, scheduler and loop counters; with the RNG states
(the model's draws: dropout) and the sampler's position (``data_modules/sampling.py``: which
samples come next and their augmentation seeds), `RESUME=last` continues a run, even from
the middle of an epoch, with the same batches and draws it would have made without the
interruption.
"""
from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch


def _mark_consumed(trainer: L.Trainer, epoch: int, batches: int | None) -> None:
    """Tell each resumable training sampler how far training got (``None``: epoch done)."""
    from vidpose.data_modules.sampling import resumable_sampler

    loaders = trainer.train_dataloader
    for loader in loaders if isinstance(loaders, (list, tuple)) else [loaders]:
        sampler = resumable_sampler(loader)
        if sampler is not None:
            samples = (sampler.size if batches is None
                       else batches * int(loader.batch_size or 1) * trainer.world_size)
            sampler.mark_consumed(epoch, samples)


class RNGStateCallback(L.Callback):
    # Lightning runs checkpoint callbacks after the others, so the position is marked before
    # last.ckpt (every N steps, at epoch end, on SIGTERM) is written.
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        _mark_consumed(trainer, trainer.current_epoch, batch_idx + 1)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        _mark_consumed(trainer, trainer.current_epoch, None)

    def state_dict(self) -> dict[str, Any]:
        # numpy's state as plain values so checkpoints load with weights_only=True
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        numpy = kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)
        state = {"python": random.getstate(), "numpy": numpy, "torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        random.setstate(state_dict["python"])
        kind, keys, pos, has_gauss, gauss = state_dict["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        torch.set_rng_state(state_dict["torch"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
