"""The suite's one assignment solver: minimum-cost matching with forbidden pairs, through lap.

Evaluation (CLEAR-MOT), trackers and Hungarian-matched losses all pair rows with columns
this way. A NaN or infinite cost forbids a pair. Among all matchings the solver first
maximises the number of allowed pairs, then minimises their summed cost: forbidden pairs
get a cost so large that using one is worse than any choice among allowed ones (the rule
motmetrics applies for CLEAR-MOT, so MOTA computed with it agrees with the reference).
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
