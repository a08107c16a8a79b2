"""The suite's two matchers: Hungarian through scipy or lap (forbidden pairs, rectangular costs)
and greedy."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from vidpose.callbacks import matching
from vidpose.callbacks.matching import LAP_FROM, greedy_pairs, linear_assignment


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


def _brute_force(cost: np.ndarray) -> tuple[int, float]:
    """(pairs, total cost) of the best matching: most allowed pairs, then least cost."""
    n, m = cost.shape
    best = None
    for cols in itertools.permutations(range(max(n, m)), n) if n <= m else ():
        pairs = [(r, c) for r, c in enumerate(cols) if np.isfinite(cost[r, c])]
        key = (-len(pairs), sum(cost[r, c] for r, c in pairs))
        best = key if best is None or key < best else best
    if n > m:
        count, total = _brute_force(cost.T)
        return count, total
    return -best[0], best[1]


def _check(cost: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> tuple[int, float]:
    assert rows.dtype == np.int64 and cols.dtype == np.int64
    assert rows.tolist() == sorted(set(rows.tolist())) and len(set(cols.tolist())) == len(cols)
    assert np.isfinite(cost[rows, cols]).all()
    return len(rows), float(cost[rows, cols].sum())


@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (6, 1), (2, 2), (3, 4), (4, 3), (4, 5), (5, 4)])
def test_every_solver_path_finds_the_brute_force_optimum(shape):
    # Integer costs make ties; forbidden cells (inf, -inf, NaN) sometimes leave no complete
    # matching (scipy refuses those: the general path) and sometimes do (scipy takes them).
    rng = np.random.default_rng(shape[0] * 10 + shape[1])
    for trial in range(25):
        cost = rng.integers(0, 4, shape).astype(float)
        forbidden = rng.random(shape) < (0.1 * (trial % 5))
        cost[forbidden] = rng.choice([np.inf, -np.inf, np.nan], forbidden.sum())
        best = _brute_force(cost)
        for solver in ("auto", "scipy", "lap"):
            found = _check(cost, *linear_assignment(cost, solver=solver))
            assert found == pytest.approx(best), (solver, cost)


@pytest.mark.parametrize("shape", [(8, 9), (9, 8), (30, 31), (31, 30), (40, 40), (16, 64),
                                   (64, 16)])
def test_scipy_and_lap_agree_on_larger_costs(shape):
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    for trial in range(4):
        cost = rng.integers(0, 20, shape).astype(float) if trial % 2 else rng.random(shape)
        if trial >= 2:
            cost[rng.random(shape) < 0.8] = np.inf  # sparse: many rows can't all be matched
        found = {s: _check(cost, *linear_assignment(cost, solver=s))
                 for s in ("auto", "scipy", "lap")}
        assert found["auto"] == pytest.approx(found["scipy"])
        assert found["lap"] == pytest.approx(found["scipy"])


def test_small_costs_skip_lap_and_large_ones_use_it(monkeypatch):
    # On few-person matrices lap's call costs 10x scipy's solve; from LAP_FROM on it wins.
    def refuse(*args, **kwargs):
        raise AssertionError("lap called")

    cost = np.random.default_rng(0).random((8, 9))
    cost[0, 0] = np.inf
    monkeypatch.setattr(matching.lap, "lapjv", refuse)
    assert _check(cost, *linear_assignment(cost)) == _check(cost, *linear_assignment(cost, "scipy"))
    monkeypatch.undo()
    calls = []
    monkeypatch.setattr(matching, "linear_sum_assignment", lambda c: calls.append(c))
    large = np.random.default_rng(1).random((LAP_FROM, LAP_FROM + 1))
    assert len(linear_assignment(large)[0]) == LAP_FROM and not calls
    with pytest.raises(ValueError, match="solver"):
        linear_assignment(large, solver="munkres")
