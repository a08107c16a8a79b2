"""The suite's two matchers: Hungarian through lap (forbidden pairs, rectangular costs) and greedy."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from vidpose.callbacks.matching import greedy_pairs, linear_assignment


def test_greedy_pairs_take_the_most_similar_first():
    similarity = np.array([[0.9, 0.8], [0.85, 0.1]])
    assert greedy_pairs(similarity, 0.3) == [(0, 0)]  # row 1's only free column is below 0.3
    assert greedy_pairs(similarity, 0.05) == [(0, 0), (1, 1)]


def test_hungarian_beats_greedy_on_the_textbook_case():
    # Greedy takes (0, 0) = 1 and is left with (1, 1) = 10; the optimum is 2 + 3.
    cost = np.array([[1.0, 2.0], [3.0, 10.0]])
    rows, cols = linear_assignment(cost)
    assert rows.tolist() == [0, 1] and cols.tolist() == [1, 0]


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (4, 4), (1, 6)])
def test_rectangular_costs_match_scipy(shape):
    rng = np.random.default_rng(sum(shape))
    cost = rng.random(shape)
    rows, cols = linear_assignment(cost)
    ref_rows, ref_cols = linear_sum_assignment(cost)
    assert len(rows) == min(shape)
    assert cost[rows, cols].sum() == pytest.approx(cost[ref_rows, ref_cols].sum())
    assert sorted(rows.tolist()) == rows.tolist() and len(set(cols.tolist())) == len(cols)


def test_forbidden_pairs_are_never_used_and_allowed_pairs_are_maximised():
    inf = np.inf
    # The cheapest single pair (0, 0) would leave row 1 unmatched: two allowed pairs win.
    cost = np.array([[0.0, 5.0], [1.0, inf]])
    rows, cols = linear_assignment(cost)
    assert list(zip(rows.tolist(), cols.tolist())) == [(0, 1), (1, 0)]
    rows, cols = linear_assignment(np.array([[np.nan, 1.0], [np.nan, np.nan]]))
    assert list(zip(rows.tolist(), cols.tolist())) == [(0, 1)]
    rows, cols = linear_assignment(np.full((2, 3), np.inf))
    assert rows.size == 0 and cols.size == 0


def test_brute_force_agrees_on_small_costs_with_forbidden_cells():
    rng = np.random.default_rng(3)
    for _ in range(20):
        cost = rng.random((3, 3))
        cost[rng.random((3, 3)) < 0.3] = np.inf
        rows, cols = linear_assignment(cost)
        best = None
        for perm in itertools.permutations(range(3)):
            pairs = [(r, c) for r, c in enumerate(perm) if np.isfinite(cost[r, c])]
            key = (-len(pairs), sum(cost[r, c] for r, c in pairs))
            best = key if best is None or key < best else best
        assert (-len(rows), cost[rows, cols].sum()) == pytest.approx(best)


def test_empty_and_bad_shapes():
    rows, cols = linear_assignment(np.zeros((0, 4)))
    assert rows.size == 0 and cols.size == 0
    with pytest.raises(ValueError, match="2-D"):
        linear_assignment(np.zeros(3))
