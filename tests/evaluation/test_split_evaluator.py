"""The split evaluator's bookkeeping: each sample once, in key order, whatever the ranks
repeated (2-process runs: tests/test_ddp.py, tests/methods/test_simple_baseline.py)."""
from __future__ import annotations

import numpy as np

from vidpose.evaluation.split import SplitEvaluator, gather_all


def by_frame(rows):
    return rows["frame"][:, None]


def test_repeated_samples_are_kept_once_in_key_order_and_the_evaluator_is_emptied():
    evaluator = SplitEvaluator()
    # DistributedSampler's padding repeats frame 3; the batches arrive out of frame order.
    evaluator.batches += [{"frame": np.array([3, 1]), "value": np.array([30.0, 10.0])},
                          {"frame": np.array([2, 3]), "value": np.array([20.0, 31.0])}]
    rows = evaluator.unique_rows(by_frame)
    assert rows["frame"].tolist() == [1, 2, 3]
    assert rows["value"].tolist() == [10.0, 20.0, 30.0]  # the first of the repeats
    assert evaluator.batches == [] and evaluator.unique_rows(by_frame) == {}


def test_one_process_gathers_its_own_object():
    assert gather_all({"frame": 1}) == [{"frame": 1}]
