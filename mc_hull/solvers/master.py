"""The column-generation master: each query projected onto the hull of its working set, one NNLS each.

Used by colgen and the streamed solver, the distance engine, the edge stage and the nested search;
it needs no solver template (:mod:`.base`), so everything above can import it.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls

try:  # the public wrapper's input checks cost as much as the solve on these tiny problems
    from scipy.optimize._slsqplib import nnls as _nnls
except ImportError:  # pragma: no cover - other SciPy versions
    def _nnls(A, b, maxiter):
        try:
            return (*nnls(A, b, maxiter=maxiter), 1)
        except RuntimeError:
            return np.zeros(A.shape[1]), np.inf, 3


def master(points: np.ndarray, queries: np.ndarray, idx: np.ndarray, sizes: np.ndarray, scale: float):
    """Project each query onto ``conv(points[S])`` of its working set S, one NNLS each.

    Solves ``min ||[Y.T; M 1^T] mu - [0; M]||``, ``mu >= 0`` with ``Y = X_S - x``
    and ``M = scale``; ``lam = mu / sum(mu)`` are then exactly the convex weights
    of the nearest point of ``conv(X_S)`` for any ``M > 0`` (the sum row only
    fixes a scale), so no penalty weight needs tuning.

    Parameters
    ----------
    points : ndarray, shape (N, d)
    queries : ndarray, shape (B, d)
    idx : int ndarray, shape (sizes.sum(),)
        The working sets, concatenated: query b's rows are the next ``sizes[b]``
        entries (no repeats within a set).
    sizes : int ndarray, shape (B,)
        Set sizes, each >= 1.
    scale : float
        Data scale used for the sum row.

    Returns
    -------
    lam : ndarray, shape (sizes.sum(),)
        The sets' convex weights, laid out like ``idx``; zero for a set whose NNLS failed.
    offs : ndarray, shape (B + 1,)
        Set b's weights are ``lam[offs[b]:offs[b + 1]]``.
    R : ndarray, shape (B, d)
        Residuals ``x - p``; ``R[b] @ X[i] <= R[b] @ p`` for all i in S.
        NaN rows where the NNLS failed.
    """
    B, d = queries.shape
    offs = np.concatenate([[0], np.cumsum(sizes)])
    Yt = np.empty((offs[-1], d + 1))                   # rows: (X_i - x, M)
    Yt[:, :d] = points[idx] - np.repeat(queries, sizes, axis=0)
    Yt[:, d] = scale
    rhs = np.zeros(d + 1)
    rhs[d] = scale
    bounds = offs.tolist()
    solved = [_nnls(Yt[a:e].T, rhs, 20 * (e - a + d + 1)) for a, e in zip(bounds[:-1], bounds[1:])]
    mu = np.concatenate([r[0] for r in solved]) if B else np.zeros(0)
    failed = np.fromiter((r[2] != 1 for r in solved), dtype=bool, count=B)
    total = np.add.reduceat(mu, offs[:-1]) if B else np.zeros(0)
    failed |= ~(total > 0)
    lam = mu / np.repeat(np.where(failed, 1.0, total), sizes)
    R = -np.add.reduceat(Yt[:, :d] * lam[:, None], offs[:-1], axis=0) if B else np.zeros((0, d))
    R[failed] = np.nan
    return lam, offs, R
