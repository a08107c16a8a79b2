"""The suite's matchers: Hungarian (minimum cost; scipy or lap by size) and greedy (most similar
first).

``linear_assignment`` pairs rows with columns for evaluation (CLEAR-MOT), AE grouping and the
RNN pose decoder's Hungarian-matched loss; ``greedy_pairs`` is the online trackers'
association (LightTrack's greedy matching).

In ``linear_assignment`` a NaN or infinite cost forbids a pair. Among all matchings the
solver first maximises the number of allowed pairs, then minimises their summed cost:
forbidden pairs get a cost so large that using one is worse than any choice among allowed
ones (the rule motmetrics applies for CLEAR-MOT, so MOTA computed with it agrees with the
reference).

Two solvers give the same matchings (same number of pairs, same total cost; tests/callbacks/
test_matching.py): scipy's ``linear_sum_assignment`` costs well under a microsecond on the
few-person matrices the loss and the trackers see, where a call into lap costs 10 us; lap's
JV on a square matrix wins from about 24 rows and columns (benchmarks/bench_rnn.py). lap's own
``extend_cost`` pads an (N, M) matrix to (N + M) squared, so a rectangular matrix is
transposed to wide and padded to M x M once here instead.
"""
from __future__ import annotations

import lap
import numpy as np


def linear_sum_assignment(cost):  # noqa: F811 - replaced by scipy's own on the first call
    """scipy's ``linear_sum_assignment``, imported when first needed: importing
    scipy.optimize costs about a quarter second, more than the whole PoseTrack evaluation
    (which solves with lap) takes, so processes that never call it skip it."""
    global linear_sum_assignment
    from scipy.optimize import linear_sum_assignment
    return linear_sum_assignment(cost)


# The smaller side from which lap's JV beats scipy (bench_rnn's matching table, random costs).
LAP_FROM = 24
SOLVERS = ("auto", "scipy", "lap")


def linear_assignment(cost: np.ndarray, solver: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Matched (rows, cols) of an (N, M) cost matrix, sorted by row; forbidden pairs never.

    ``solver`` is ``auto`` (scipy below ``LAP_FROM`` on the smaller side, lap from there), or
    ``scipy`` / ``lap`` to force one (the tests and the benchmark compare them)."""
    if solver == "auto":
        # Small matrices go straight to scipy, which treats +inf as forbidden itself: any
        # checking here would cost more than its solve (under a microsecond at 2x2). It
        # refuses NaN, -inf and forbidden pairs that leave no complete matching, and anything
        # not 2-D (no .shape, or not two sides): those take the general path below.
        try:
            n, m = cost.shape
            if n < LAP_FROM or m < LAP_FROM:
                return linear_sum_assignment(cost)
        except (AttributeError, ValueError):
            pass
    if solver not in SOLVERS:
        raise ValueError(f"solver {solver!r} is not one of {SOLVERS}")
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2:
        raise ValueError(f"expected a 2-D cost matrix, got shape {cost.shape}")
    empty = np.zeros(0, dtype=np.int64)
    if cost.size == 0:
        return empty, empty
    allowed = np.isfinite(cost)
    complete = bool(allowed.all())
    if not complete:
        if not allowed.any():
            return empty, empty
        # Using one forbidden pair must cost more than any difference between allowed
        # choices: with r = min(N, M) pairs of |cost| <= c, that difference is < 2 r c.
        c = np.abs(cost[allowed]).max() + 1.0
        cost = np.where(allowed, cost, 2.0 * min(cost.shape) * c + 1.0)
    if solver == "auto":
        solver = "lap" if min(cost.shape) >= LAP_FROM else "scipy"
    rows, cols = _lapjv(cost) if solver == "lap" else linear_sum_assignment(cost)
    if not complete:
        keep = allowed[rows, cols]
        rows, cols = rows[keep], cols[keep]
    return rows.astype(np.int64, copy=False), cols.astype(np.int64, copy=False)


def _lapjv(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """lap's JV on a finite (N, M) matrix: wide as is, tall transposed, padded to square."""
    tall = cost.shape[0] > cost.shape[1]
    wide = cost.T if tall else cost
    n, m = wide.shape
    if n < m:
        # Rows of zeros: whichever columns they take, the real rows' choice is unchanged.
        square = np.zeros((m, m))
        square[:n] = wide
    else:
        square = np.ascontiguousarray(wide)
    x, _ = lap.lapjv(square, return_cost=False)
    x = x[:n].astype(np.int64)
    if not tall:
        return np.arange(n, dtype=np.int64), x
    order = np.argsort(x)
    return x[order], order.astype(np.int64)


def greedy_pairs(similarity: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """(row, col) pairs, most similar first, each row and column once, similarity >= threshold."""
    order = np.argsort(-similarity, axis=None, kind="stable")
    rows, cols = np.unravel_index(order, similarity.shape)
    used_rows, used_cols, pairs = set(), set(), []
    for r, c in zip(rows.tolist(), cols.tolist()):
        if similarity[r, c] < threshold:
            break
        if r not in used_rows and c not in used_cols:
            used_rows.add(r)
            used_cols.add(c)
            pairs.append((r, c))
    return pairs
