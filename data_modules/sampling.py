"""Training order and augmentation draws that a resumed run repeats exactly.

A stream of random numbers cannot be rewound to "just before the batch the checkpoint
followed": Lightning fetches the next batch (drawing its augmentations) before the step the
checkpoint is taken after, and DataLoader workers keep streams of their own. So instead:

* :class:`ResumableSampler` shuffles each epoch with a permutation drawn from (seed, epoch)
  alone, and yields every index together with its own sample seed, a function of (seed,
  epoch, index);
* :class:`SeededSamples` draws that sample's augmentations from its sample seed (torch,
  numpy, ``random`` and, through ``WorkerSeeded``, albumentations and the datasets' own
  generators), leaving the process's streams as they were: the model's draws (dropout) are
  not disturbed, and a sample looks the same whichever worker makes it;
* :class:`ResumableDataLoader` is a loader Lightning saves and restores (its
  ``state_dict``/``load_state_dict`` protocol for dataloaders): the seed, the epoch and how
  many samples training has consumed, which ``RNGStateCallback`` tells the sampler after
  every batch. A run resumed mid-epoch skips those and goes on with the same batches.
"""
from __future__ import annotations

import random
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from vidpose.errors import ConfigError


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of sample ``index``'s augmentations in ``epoch`` (independent of the order)."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class ResumableSampler(Sampler):
    """A shuffled pass over ``size`` samples per epoch, as ``(index, sample seed)`` pairs."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed = int(size), int(seed) % 2**63
        self.epoch = 0
        self.skip = 0  # samples the next pass leaves out (a mid-epoch resume)
        self.rotate = False  # ... by moving them to its end instead (see load_state_dict)
        self.consumed = (0, 0)  # (epoch, samples) training has finished, for the checkpoint

    def __len__(self) -> int:
        return self.size

    def set_epoch(self, epoch: int) -> None:
        """Lightning calls this at each epoch start (after a resume, after the first pass
        has begun: the restored epoch is already the right one)."""
        if epoch != self.epoch:
            self.epoch, self.skip = int(epoch), 0

    def order(self, epoch: int) -> list[int]:
        seed = int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0])
        generator = torch.Generator().manual_seed(seed)
        return torch.randperm(self.size, generator=generator).tolist()

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, skip, self.skip = self.epoch, self.skip, 0
        order = self.order(epoch)
        order = order[skip:] + order[:skip] if self.rotate else order[skip:]
        for index in order:
            yield index, sample_seed(self.seed, epoch, index)

    def mark_consumed(self, epoch: int, samples: int) -> None:
        """Training has finished ``samples`` samples of ``epoch`` (``samples >= size``: the
        epoch is done and the next one starts from its beginning)."""
        self.consumed = (epoch + 1, 0) if samples >= self.size else (int(epoch), int(samples))

    def state_dict(self) -> dict[str, int]:
        epoch, samples = self.consumed
        return {"seed": self.seed, "epoch": epoch, "consumed": samples, "size": self.size}

    def load_state_dict(self, state: dict[str, int], wrapped: bool = False) -> None:
        """Continue where ``state`` left off. ``wrapped``: Lightning's distributed wrapper
        shards this sampler's pass and needs all ``size`` indices; the consumed ones go to the
        end, which the epoch (``num_training_batches`` long) never reaches, and each rank's
        shard continues as before (the skip is a multiple of the number of ranks)."""
        if int(state["size"]) != self.size:
            raise ConfigError(f"the checkpoint's training set had {state['size']} samples, "
                              f"this run's has {self.size}: resume with the run's own data")
        self.seed = int(state["seed"])
        self.epoch, self.skip = int(state["epoch"]), int(state["consumed"])
        self.consumed, self.rotate = (self.epoch, self.skip), wrapped


class SeededSamples(Dataset):
    """``dataset[index]`` with every random draw made from the pair's sample seed."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item: tuple[int, int]) -> Any:
        index, seed = item
        python_state, numpy_state = random.getstate(), np.random.get_state()
        # CPU only: seeding the CUDA generators here would reset the model's dropout draws.
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)  # WorkerSeeded reseeds from this
            random.seed(seed)
            np.random.seed(seed % 2**32)
            try:
                return self.dataset[index]
            finally:
                random.setstate(python_state)
                np.random.set_state(numpy_state)


def resumable_sampler(loader: Any) -> ResumableSampler | None:
    """The loader's :class:`ResumableSampler`, also behind Lightning's distributed wrapper."""
    sampler = getattr(loader, "sampler", None)
    for _ in range(3):  # DistributedSamplerWrapper -> _DatasetSamplerWrapper -> ours
        if isinstance(sampler, ResumableSampler) or sampler is None:
            return sampler
        sampler = getattr(sampler, "_sampler", None) or getattr(sampler, "dataset", None)
    return None


class ResumableDataLoader(DataLoader):
    """A training DataLoader whose position Lightning keeps in the checkpoint."""

    def state_dict(self) -> dict[str, int]:
        sampler = resumable_sampler(self)
        return sampler.state_dict() if sampler is not None else {}

    def load_state_dict(self, state: dict[str, int]) -> None:
        sampler = resumable_sampler(self)
        if sampler is not None and state:
            sampler.load_state_dict(state, wrapped=sampler is not self.sampler)


def training_loader(dataset: Dataset, **kwargs: Any) -> ResumableDataLoader:
    """The shuffled, resumable training loader of ``dataset`` (seeded from torch's seed,
    which ``seed_everything`` sets to the config's)."""
    sampler = ResumableSampler(len(dataset), torch.initial_seed())  # type: ignore[arg-type]
    return ResumableDataLoader(SeededSamples(dataset), sampler=sampler, **kwargs)
