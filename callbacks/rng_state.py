"""Save and restore the random number generators with each checkpoint.

Lightning restores weights, optimizer, scheduler and loop counters; with the RNG states
too, `RESUME=last` continues a run with the same augmentation and dropout draws it would
have made without the interruption.
"""
from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch


def _numpy_state() -> tuple:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)


class RNGStateCallback(L.Callback):
    def state_dict(self) -> dict[str, Any]:
        state = {
            "python": random.getstate(),
            # numpy's state as plain values so checkpoints load with weights_only=True
            "numpy": _numpy_state(),
            "torch": torch.get_rng_state(),
        }
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
