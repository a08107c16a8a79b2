"""Memory write policies: which frames a space-time memory stores, and from what.

STM (Oh et al. 2019) memorises the first frame with its given maps and then, while it runs
through a video, writes frames back into memory with the model's own predicted maps (every
5th frame in STM). STM-skeletons (Dufour et al.) trains the same way ("cyclic" training):
ground truth for the first frames, then the model's own predictions. A policy answers, for
the frame at position ``t`` of a clip or video, whether it is written and whether its maps
are the ground truth or the prediction; ``MemoryBank`` applies the policy and a capacity
bound (the first frame, the anchor of the given annotation, is kept; the oldest of the
others go first). Training and long-video inference use the same classes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from torch import Tensor

GROUND_TRUTH, PREDICTION = "ground_truth", "prediction"


@dataclass(frozen=True)
class WritePolicy:
    """``ground_truth_frames``: frames 0..k-1 are written with their ground-truth maps; later
    frames with the model's predictions, every ``every``-th one (counted from frame k), when
    ``own_predictions`` is on. ``capacity``: memory frames kept at most (None: unbounded)."""

    ground_truth_frames: int = 1
    own_predictions: bool = True
    every: int = 1
    capacity: Optional[int] = None

    def __post_init__(self) -> None:
        if self.ground_truth_frames < 1:
            raise ValueError("ground_truth_frames must be >= 1: the memory needs a first frame")
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")
        if self.capacity is not None and self.capacity < 1:
            raise ValueError(f"capacity must be >= 1 or None, got {self.capacity}")

    def source(self, t: int) -> Optional[str]:
        """What frame ``t`` is memorised from: GROUND_TRUTH, PREDICTION or None (not written)."""
        if t < self.ground_truth_frames:
            return GROUND_TRUTH
        if self.own_predictions and (t - self.ground_truth_frames) % self.every == 0:
            return PREDICTION
        return None


class MemoryBank:
    """Keys and values of the memorised frames, in time order, within the policy's capacity."""

    def __init__(self, policy: WritePolicy) -> None:
        self.policy = policy
        self.frames: list[int] = []
        self.keys: list[Tensor] = []
        self.values: list[Tensor] = []
        self.sources: list[str] = []

    def write(self, t: int, key: Tensor, value: Tensor, source: str) -> None:
        """Store frame ``t``; past the capacity the oldest frame after the first leaves."""
        self.frames.append(t)
        self.keys.append(key)
        self.values.append(value)
        self.sources.append(source)
        capacity = self.policy.capacity
        if capacity is not None and len(self.frames) > capacity:
            drop = 1 if capacity > 1 else 0
            for store in (self.frames, self.keys, self.values, self.sources):
                del store[drop]

    def __len__(self) -> int:
        return len(self.frames)
