"""Independent checks of membership certificates: convex weights and separating directions.

Tolerance rule (used everywhere in mc_hull)
-------------------------------------------
Let ``s`` be the data scale: the largest absolute coordinate of the training
points and the queries (``1.0`` if all are zero) and ``atol = tol * s``.

* **inside** when weights ``lam >= 0`` with ``sum(lam) == 1`` satisfy
  ``max_j |(X.T @ lam - x)_j| <= atol`` (the ℓ∞ distance to the hull is at most
  ``atol``: points on the boundary, vertices and duplicates count as inside);
* **outside** when a direction ``w`` with ``||w||_1 = 1`` satisfies
  ``w @ x - max_i w @ X[i] > atol``.

By LP duality the ℓ∞ distance ``delta`` from ``x`` to ``conv(X)`` equals
``max_{||w||_1 <= 1} (w @ x - max_i w @ X[i])``, so exactly one of the two
certificates exists for every query; they can never both verify.  A query for
which neither verifies numerically is *undecided*, never counted either way.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls

# Rows of X processed per block when projecting onto many directions at once,
# so that the (block, B) product stays small (8192 x 256 doubles = 16 MiB).
_BLOCK_ROWS = 8192


def data_scale(points: np.ndarray, queries: np.ndarray | None = None) -> float:
    """Largest absolute coordinate of ``points`` (N, d) and ``queries`` (B, d).

    Returns 1.0 when every coordinate is zero, so that ``tol * scale`` stays positive.
    """
    s = float(np.max(np.abs(points))) if points.size else 0.0
    if queries is not None and np.size(queries):
        s = max(s, float(np.max(np.abs(queries))))
    return s if s > 0.0 else 1.0


def inside_residual(points: np.ndarray, x: np.ndarray, support: np.ndarray,
                    weights: np.ndarray) -> float:
    """ℓ∞ residual ``max_j |X[support].T @ lam - x|`` after making ``lam`` convex.

    Parameters
    ----------
    points : ndarray, shape (N, d)
    x : ndarray, shape (d,)
    support : ndarray of int, shape (k,)
        Row indices of ``points`` carrying weight.
    weights : ndarray, shape (k,)
        Candidate weights; negatives are clipped to zero and the rest are
        renormalised to sum to one before the residual is measured.

    Returns
    -------
    float
        The residual, or ``inf`` when the weights cannot be made convex.
    """
    lam = np.clip(np.asarray(weights, dtype=np.float64), 0.0, None)
    total = lam.sum()
    if not np.isfinite(total) or total <= 0.0 or lam.shape != np.shape(support):
        return float("inf")
    lam = lam / total
    r = points[support].T @ lam - x
    return float(np.max(np.abs(r)))


def inside_residuals(points: np.ndarray, queries: np.ndarray, supports: list,
                     weights: list) -> np.ndarray:
    """:func:`inside_residual` for many queries at once, in a few array operations.

    Parameters
    ----------
    points : ndarray, shape (N, d)
    queries : ndarray, shape (B, d)
    supports, weights : lists of B int and float ndarrays
        Each query's support rows and candidate weights (as in :func:`inside_residual`).

    Returns
    -------
    ndarray, shape (B,)
        The residuals; ``inf`` where the weights cannot be made convex.
    """
    B = queries.shape[0]
    out = np.full(B, np.inf)
    sizes = np.array([np.size(s) for s in supports], dtype=np.intp)
    shaped = np.array([np.shape(w) == np.shape(s) for s, w in zip(supports, weights)], dtype=bool)
    use = np.flatnonzero(shaped & (sizes > 0))
    if use.size == 0:
        return out
    idx = np.concatenate([np.asarray(supports[b], dtype=np.intp) for b in use])
    lam = np.clip(np.concatenate([np.asarray(weights[b], dtype=np.float64) for b in use]), 0.0, None)
    offs = np.concatenate([[0], np.cumsum(sizes[use])[:-1]])
    total = np.add.reduceat(lam, offs)
    good = np.isfinite(total) & (total > 0.0)
    lam = lam / np.repeat(np.where(good, total, 1.0), sizes[use])
    r = np.add.reduceat(points[idx] * lam[:, None], offs, axis=0) - queries[use]
    out[use[good]] = np.max(np.abs(r[good]), axis=1)
    return out


def polish_inside(points: np.ndarray, x: np.ndarray, support: np.ndarray):
    """Re-solve the weights on a small support with NNLS: ``[X_S.T; 1] lam ≈ [x; 1]``.

    Solvers stop at their own tolerances (1e-7 to 1e-9); this step recovers
    weights accurate to machine precision when the support is right.

    Returns
    -------
    support, weights : ndarray, ndarray
    """
    support = np.asarray(support, dtype=np.intp)
    A = np.vstack([points[support].T, np.ones(support.size)])
    b = np.append(x, 1.0)
    # Scale the sum-to-one row like the coordinates so both count equally.
    s = max(float(np.max(np.abs(A[:-1]))) if A.shape[1] else 1.0, 1.0)
    A[-1] *= s
    b[-1] *= s
    lam, _ = nnls(A, b, maxiter=50 * max(support.size, 1))
    return support, lam


def outside_margins(points: np.ndarray, queries: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Margins ``w @ x - max_i w @ X[i]`` for ℓ1-normalised directions, one per query.

    Parameters
    ----------
    points : ndarray, shape (N, d)
    queries : ndarray, shape (B, d)
    directions : ndarray, shape (B, d)
        Candidate separating directions (any scale; normalised here).

    Returns
    -------
    ndarray, shape (B,)
        The margins; ``-inf`` where a direction is zero or not finite.
    """
    W = np.asarray(directions, dtype=np.float64)
    norms = np.abs(W).sum(axis=1)
    good = np.isfinite(norms) & (norms > 0)
    W = np.where(good[:, None], W / np.where(good, norms, 1.0)[:, None], 0.0)
    best = np.full(W.shape[0], -np.inf)
    for start in range(0, points.shape[0], _BLOCK_ROWS):
        block = points[start:start + _BLOCK_ROWS] @ W.T  # (rows, B)
        np.maximum(best, block.max(axis=0), out=best)
    margins = np.einsum("bj,bj->b", W, queries) - best
    margins[~good] = -np.inf
    return margins
