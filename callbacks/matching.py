"""The suite's matchers: Hungarian (minimum-cost, through lap) and greedy (most similar first).

``linear_assignment`` pairs rows with columns for evaluation (CLEAR-MOT), AE grouping and the
RNN pose decoder's Hungarian-matched loss; ``greedy_pairs`` is the online trackers'
association (LightTrack's greedy matching).

In ``linear_assignment`` a NaN or infinite cost forbids a pair. Among all matchings the
solver first maximises the number of allowed pairs, then minimises their summed cost:
forbidden pairs get a cost so large that using one is worse than any choice among allowed
ones (the rule motmetrics applies for CLEAR-MOT, so MOTA computed with it agrees with the
reference).
"""
from __future__ import annotations

import lap
import numpy as np


def linear_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Matched (rows, cols) of an (N, M) cost matrix, sorted by row; forbidden pairs never."""
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2:
        raise ValueError(f"expected a 2-D cost matrix, got shape {cost.shape}")
    empty = np.zeros(0, dtype=np.int64)
    if cost.size == 0:
        return empty, empty
    allowed = np.isfinite(cost)
    if not allowed.any():
        return empty, empty
    if not allowed.all():
        # Using one forbidden pair must cost more than any difference between allowed
        # choices: with r = min(N, M) pairs of |cost| <= c, that difference is < 2 r c.
        c = np.abs(cost[allowed]).max() + 1.0
        cost = np.where(allowed, cost, 2.0 * min(cost.shape) * c + 1.0)
    _, x, _ = lap.lapjv(cost, extend_cost=cost.shape[0] != cost.shape[1])
    rows = np.flatnonzero(x >= 0)
    cols = x[rows]
    keep = allowed[rows, cols]
    return rows[keep].astype(np.int64), cols[keep].astype(np.int64)


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
