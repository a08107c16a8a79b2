"""Per-sample ids shared by the metrics: one row per id, whatever DDP did to the batches.

DistributedSampler pads the last batch of a rank with repeated samples, and a metric
updated on every rank with the same gathered poses sees them once per rank. Each metric
takes an int64 id per sample and keeps the first row of each id, in increasing id order, so
that 2 processes give exactly what 1 gives.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


def first_of_each_id(ids: Tensor) -> Tensor:
    """Positions of the first occurrence of each distinct id in ``ids`` (N,), in id order."""
    unique, inverse = torch.unique(ids, return_inverse=True)
    position = torch.arange(len(ids), device=ids.device)
    first = torch.full((len(unique),), len(ids), dtype=torch.long, device=ids.device)
    return first.scatter_reduce(0, inverse, position, reduce="amin")


class SampleMetric(Metric):
    """A metric whose list states (``ids`` and the subclass's own) are concatenated across
    ranks and read back one row per id."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("ids", default=[], dist_reduce_fx="cat")

    def first_rows(self, *states: str) -> list[Tensor] | None:
        """The named states' rows of each id's first sample, in id order; None before any
        update."""
        if isinstance(self.ids, list) and not self.ids:
            return None
        first = first_of_each_id(dim_zero_cat(self.ids))
        return [dim_zero_cat(getattr(self, state))[first] for state in states]


def check_ids(ids: Tensor, batch: int) -> None:
    """``ids`` must be an int64 (B,) tensor: one id per sample."""
    if ids.shape != (batch,) or ids.dtype != torch.int64:
        raise ValueError(f"ids must be an int64 tensor of shape ({batch},), "
                         f"got {ids.dtype} {tuple(ids.shape)}")
