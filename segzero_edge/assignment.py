"""Minimum-cost assignment (`scipy.optimize.linear_sum_assignment`) with a numpy fallback.

The multi-object accuracy reward matches predictions to ground truth with scipy's solver.
scipy comes with the `train` extra, not with the lean runtime, so `linear_sum_assignment`
here uses scipy when it is installed and otherwise an exact numpy solver (shortest
augmenting paths with potentials, O(n²m)). The reward only reads the optimal total cost,
which is the same for every optimal assignment, so both give identical rewards (a test
compares them on thousands of matrices). Inputs are checked as scipy checks them, so a
malformed matrix raises either way (scipy 1.17 raises TypeError for a non-numeric one, as here).
"""

from __future__ import annotations

import numpy as np


def _check(cost: np.ndarray) -> np.ndarray:
    # scipy's checks, in its order: 2-D, numeric, no NaN / -inf.
    if cost.ndim != 2:
        raise ValueError(f"expected a matrix (2-D array), got a {cost.shape!r} array")
    if not (np.issubdtype(cost.dtype, np.number) or cost.dtype == np.dtype(np.bool_)):
        raise TypeError(f"expected a matrix containing numerical entries, got {cost.dtype}")
    cost = cost.astype(np.float64)
    if np.any(np.isneginf(cost) | np.isnan(cost)):
        raise ValueError("matrix contains invalid numeric entries")
    return cost


def numpy_linear_sum_assignment(cost_matrix: object) -> tuple[np.ndarray, np.ndarray]:
    """Exact min-cost assignment of a rectangular matrix: (row indices ascending, columns).

    min(n, m) pairs are assigned, as scipy does. Raises ValueError on what scipy refuses,
    including a matrix with no finite full assignment.
    """
    cost = _check(np.asarray(cost_matrix))
    transposed = cost.shape[0] > cost.shape[1]
    if transposed:  # the algorithm assigns every row: rows must be the shorter side
        cost = cost.T
    n, m = cost.shape
    if n == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    owner = np.zeros(m + 1, dtype=np.intp)  # owner[j]: row (1-based) assigned to column j; 0 = free
    way = np.zeros(m + 1, dtype=np.intp)
    for i in range(1, n + 1):
        owner[0], j0 = i, 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = owner[j0]
            free = ~used[1:]
            reduced = cost[i0 - 1] - u[i0] - v[1:]
            better = free & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = j0
            candidates = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(candidates)) + 1
            delta = candidates[j1 - 1]
            if not np.isfinite(delta):
                raise ValueError("cost matrix is infeasible")
            u[owner[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if owner[j0] == 0:
                break
        while j0:  # flip the augmenting path
            j1 = way[j0]
            owner[j0] = owner[j1]
            j0 = j1
    cols = np.flatnonzero(owner[1:])
    rows = owner[1:][cols] - 1
    if transposed:
        rows, cols = cols, rows
    order = np.argsort(rows, kind="stable")
    return rows[order].astype(np.intp), cols[order].astype(np.intp)


def linear_sum_assignment(cost_matrix: object) -> tuple[np.ndarray, np.ndarray]:
    """`scipy.optimize.linear_sum_assignment` when scipy is installed, else the numpy solver."""
    try:
        from scipy.optimize import linear_sum_assignment as scipy_lsa
    except ImportError:
        return numpy_linear_sum_assignment(cost_matrix)
    return scipy_lsa(cost_matrix)
