"""What every split evaluator shares: gathering the processes' predictions, keeping each
sample once, finding the split they belong to."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch.distributed as dist

from vidpose.errors import ConfigError
from vidpose.pose import PoseDataset


def gather_all(obj: Any) -> list[Any]:
    """``obj`` of every process in rank order, on every rank (``[obj]`` without DDP).

    Each rank evaluates its share of a split; once every rank holds all predictions, every
    rank computes the same scores, which the mean of ``self.log(..., sync_dist=True)``
    leaves as they are.
    """
    if dist.is_available() and dist.is_initialized():
        parts: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(parts, obj)
        return parts
    return [obj]


def result_folder(trainer: Any, stage: str) -> Path | None:
    """Where a split's result files go, ``<run>/predictions/<stage>``; None on ranks other
    than 0 and in the sanity check, whose few batches would give misleading files."""
    if trainer.is_global_zero and not trainer.sanity_checking:
        return Path(trainer.default_root_dir) / "predictions" / stage
    return None


def split_data(datamodule: Any, stage: str, evaluated_by: str) -> PoseDataset:
    """The PoseDataset whose frames the batches' ``frame`` indices point into.

    The crop and box data modules test on their validation split, so ``test`` falls back
    to ``val_data`` when the data module has no ``test_data``.
    """
    dataset = getattr(datamodule, f"{stage}_data", None)
    if dataset is None and stage == "test":
        dataset = getattr(datamodule, "val_data", None)
    if dataset is None:
        raise ConfigError(f"{evaluated_by} evaluates {stage} predictions against the frames of "
                          f"the data module's {stage}_data, which {type(datamodule).__name__} "
                          "does not provide")
    return dataset


class SplitEvaluator:
    """The predictions of one split, held per batch. A subclass has ``add(...)`` per batch and
    ``finish(dataset, folder)`` once per split -> the scores by name, after writing the result
    files into ``folder`` (None: no files, e.g. on ranks other than 0)."""

    def __init__(self) -> None:
        self.batches: list[Any] = []

    def gathered(self) -> list[Any]:
        """The batches of every process (on every rank); this evaluator is emptied."""
        batches, self.batches = self.batches, []
        return [batch for part in gather_all(batches) for batch in part]

    def unique_rows(self, sample_key: Callable[[dict[str, np.ndarray]], np.ndarray]
                    ) -> dict[str, np.ndarray]:
        """The gathered batches' arrays joined key by key ({} for none), one row per sample.

        DistributedSampler repeats samples to even out the ranks: rows with the same
        ``sample_key(rows)`` (N, C) are one sample, of which the first is kept, in key order,
        so that scores and files do not depend on how the ranks split the data.
        """
        batches = self.gathered()
        if not batches:
            return {}
        rows = {name: np.concatenate([b[name] for b in batches]) for name in batches[0]}
        _, first = np.unique(sample_key(rows), axis=0, return_index=True)
        return {name: values[first] for name, values in rows.items()}
