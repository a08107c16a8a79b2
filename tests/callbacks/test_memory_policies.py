"""Memory write policies: ground truth first, own predictions every k-th frame, a capacity."""
from __future__ import annotations

import pytest
import torch

from vidpose.callbacks.memory_policies import GROUND_TRUTH, PREDICTION, MemoryBank, WritePolicy


def test_ground_truth_for_the_first_frames_then_own_predictions():
    policy = WritePolicy(ground_truth_frames=2)
    assert [policy.source(t) for t in range(5)] == [GROUND_TRUTH] * 2 + [PREDICTION] * 3


def test_every_kth_frame_after_the_ground_truth():
    policy = WritePolicy(ground_truth_frames=1, every=3)
    assert [policy.source(t) for t in range(8)] == [
        GROUND_TRUTH, PREDICTION, None, None, PREDICTION, None, None, PREDICTION]


def test_without_own_predictions_only_ground_truth_is_written():
    policy = WritePolicy(ground_truth_frames=3, own_predictions=False)
    assert [policy.source(t) for t in range(5)] == [GROUND_TRUTH] * 3 + [None, None]


def test_capacity_keeps_the_first_frame_and_the_newest():
    bank = MemoryBank(WritePolicy(capacity=3))
    for t in range(6):
        bank.write(t, torch.full((1,), t), torch.full((1,), 10 * t), GROUND_TRUTH if t == 0 else PREDICTION)
    assert bank.frames == [0, 4, 5] and len(bank) == 3
    assert [int(k) for k in bank.keys] == [0, 4, 5] and [int(v) for v in bank.values] == [0, 40, 50]
    assert bank.sources == [GROUND_TRUTH, PREDICTION, PREDICTION]


def test_capacity_one_keeps_the_newest_frame():
    bank = MemoryBank(WritePolicy(capacity=1))
    for t in range(3):
        bank.write(t, torch.zeros(1), torch.zeros(1), PREDICTION)
    assert bank.frames == [2]


@pytest.mark.parametrize("kwargs", [{"ground_truth_frames": 0}, {"every": 0}, {"capacity": 0}])
def test_bad_policies_are_refused(kwargs):
    with pytest.raises(ValueError):
        WritePolicy(**kwargs)
