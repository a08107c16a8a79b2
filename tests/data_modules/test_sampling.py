"""The resumable training order: a function of (seed, epoch), continued exactly from a
checkpoint's position, on one process and behind Lightning's distributed wrapper."""
from __future__ import annotations

import random

import numpy as np
import torch
from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
from torch.utils.data import Dataset

from vidpose.data_modules.sampling import (
    ResumableDataLoader,
    ResumableSampler,
    SeededSamples,
    training_loader,
)


def _indices(pairs) -> list[int]:
    return [index for index, _ in pairs]


def test_order_depends_on_seed_and_epoch_only():
    a, b = ResumableSampler(50, seed=3), ResumableSampler(50, seed=3)
    torch.rand(7)  # the process's stream does not matter
    assert list(a) == list(b) and sorted(_indices(a)) == list(range(50))
    first = list(a)
    a.set_epoch(1)
    assert _indices(a) != _indices(first) and list(ResumableSampler(50, seed=4)) != first


def test_a_restored_position_continues_the_epoch():
    sampler = ResumableSampler(10, seed=1)
    sampler.set_epoch(2)
    whole = list(sampler)
    sampler.mark_consumed(2, 4)
    state = sampler.state_dict()
    resumed = ResumableSampler(10, seed=99)  # the checkpoint's seed wins
    resumed.load_state_dict(state)
    assert list(resumed) == whole[4:]
    assert list(resumed) == whole  # only the first pass skips
    sampler.mark_consumed(2, 10)  # the epoch was finished: the next one starts afresh
    resumed.load_state_dict(sampler.state_dict())
    nxt = ResumableSampler(10, seed=1)
    nxt.set_epoch(3)
    assert list(resumed) == list(nxt)


def test_each_rank_continues_its_shard_behind_the_distributed_wrapper():
    state = None
    shards = []
    for rank in (0, 1):
        sampler = ResumableSampler(11, seed=5)
        wrapper = DistributedSamplerWrapper(sampler, num_replicas=2, rank=rank, shuffle=False)
        shards.append(_indices(wrapper))
        sampler.mark_consumed(0, 2 * 2)  # two batches of 1 on each of 2 ranks
        state = sampler.state_dict()
    for rank in (0, 1):
        sampler = ResumableSampler(11, seed=5)
        wrapper = DistributedSamplerWrapper(sampler, num_replicas=2, rank=rank, shuffle=False)
        ResumableDataLoader(list(range(11)), sampler=wrapper).load_state_dict(state)
        assert _indices(wrapper)[:4] == shards[rank][2:]


class _Draws(Dataset):
    def __len__(self) -> int:
        return 6

    def __getitem__(self, index: int) -> tuple[int, float, float, float]:
        return index, float(torch.rand(())), float(np.random.rand()), random.random()


def test_a_samples_draws_depend_on_its_seed_not_on_the_order_or_the_process_stream():
    samples = SeededSamples(_Draws())
    torch.manual_seed(0)
    before = torch.get_rng_state()
    one = samples[(2, 1234)]
    assert torch.equal(torch.get_rng_state(), before)  # the model's stream is untouched
    samples[(3, 99)]
    assert samples[(2, 1234)] == one and samples[(2, 1235)] != one


def test_training_loader_batches_are_the_same_with_workers():
    torch.manual_seed(7)
    plain = [batch for batch in training_loader(_Draws(), batch_size=2)]
    torch.manual_seed(7)
    workers = [batch for batch in training_loader(_Draws(), batch_size=2, num_workers=2)]
    for a, b in zip(plain, workers):
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y)
