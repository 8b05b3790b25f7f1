"""Batched membership by a one-product outside prefilter plus column generation with an NNLS master."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy.optimize import nnls

from .base import INSIDE, OUTSIDE, Candidates, Solver

# Elements of one (queries x rows) score block in the pricing products:
# 2**21 doubles = 16 MiB, so B x N never materialises however large N is.
_BLOCK_ELEMS = 1 << 21


def price(points: np.ndarray, directions: np.ndarray, k: int):
    """Best scores ``X[i] @ w`` overall and in each of ``k`` contiguous chunks of rows.

    Parameters
    ----------
    points : ndarray, shape (N, d)
    directions : ndarray, shape (B, d)
    k : int
        Number of row chunks (capped at N); each gives its best row, so the
        candidates are spread over the data rather than clustered at one extreme.

    Returns
    -------
    best : ndarray, shape (B,)
        Largest score per direction.
    top_idx, top_val : ndarray, shape (B, min(k, N))
        Row index of the best score in each chunk, and that score.

    Notes
    -----
    Products run on blocks of at most ``_BLOCK_ELEMS`` scores (16 MiB), so
    the peak extra memory is 16 MiB plus O(B k), whatever N is.
    """
    N = points.shape[0]
    B = directions.shape[0]
    k = max(1, min(k, N))
    edges = np.linspace(0, N, k + 1).astype(np.intp)
    top_idx = np.zeros((B, k), dtype=np.intp)
    top_val = np.full((B, k), -np.inf)
    qb = max(1, min(B, _BLOCK_ELEMS // 1024))
    for q0 in range(0, B, qb):
        W = directions[q0:q0 + qb]
        rows = max(1024, _BLOCK_ELEMS // W.shape[0])
        ar = np.arange(W.shape[0])
        val, idx = top_val[q0:q0 + qb], top_idx[q0:q0 + qb]
        for c in range(k):
            for start in range(edges[c], edges[c + 1], rows):
                S = W @ points[start:min(edges[c + 1], start + rows)].T   # (qb, rows)
                j = S.argmax(axis=1)
                v = S[ar, j]
                better = v > val[:, c]
                val[better, c] = v[better]
                idx[better, c] = j[better] + start
    return top_val.max(axis=1), top_idx, top_val


def master(points: np.ndarray, x: np.ndarray, support: np.ndarray):
    """Project ``x`` onto ``conv(points[support])`` exactly with one NNLS.

    Solves ``min ||[Y.T; M 1^T] mu - [0; M]||``, ``mu >= 0`` with ``Y = X_S - x``;
    ``lam = mu / sum(mu)`` are then the projection's convex weights for any
    ``M > 0`` (the sum row only fixes a scale).

    Parameters
    ----------
    points : ndarray, shape (N, d)
    x : ndarray, shape (d,)
    support : ndarray of int, shape (k,)

    Returns
    -------
    lam : ndarray, shape (k,)
        Convex weights of the nearest point ``p = points[support].T @ lam``.
    r : ndarray, shape (d,)
        The residual ``x - p``; ``r @ X[i] <= r @ p`` for all i in the support.
    """
    Y = points[support] - x                                # (k, d)
    M = max(float(np.max(np.abs(Y))), 1e-300)
    A = np.vstack([Y.T, np.full(support.size, M)])
    b = np.zeros(x.size + 1)
    b[-1] = M
    mu, _ = nnls(A, b, maxiter=20 * (support.size + x.size + 1))
    lam = mu / mu.sum()
    return lam, -(Y.T @ lam)


class ColGenSolver(Solver):
    """Prefilter with ``w = x - mean(X)``, then column generation on the rest.

    Round 0 prices every query along ``w = x - mean(X)`` in one blocked product:
    a margin above ``atol`` settles it outside (``"prefilter"``), and the
    ``k0`` best rows seed its working set S.  Each later round projects x onto
    conv(X_S) with :func:`master`; a residual within ``atol`` proposes inside
    (``"inside"``), otherwise all active residuals are priced in one product:
    a margin above ``atol`` proposes outside (``"outside"``), violators
    (scores above the master's own bound) join S, and a query with none left
    (a tie within tolerance) or past ``max_rounds`` stays undecided for the
    ``lp`` fallback.

    Parameters
    ----------
    max_rounds : int
        Master/pricing rounds after the prefilter.
    k0, k : int or None
        Rows seeding S and rows added per round; default ``2 d + 2`` and ``d + 1``.
    """

    name: ClassVar[str] = "colgen"
    default_fallbacks: ClassVar[tuple[str, ...]] = ("lp",)

    def __init__(self, *, max_rounds: int = 12, k0: int | None = None, k: int | None = None,
                 fallbacks: tuple[str, ...] | None = None):
        super().__init__(fallbacks=fallbacks)
        self.max_rounds, self.k0, self.k = max_rounds, k0, k

    def _propose(self, points, queries, atol):
        N, d = points.shape
        B = queries.shape[0]
        cand = Candidates.empty(B, d, "colgen")
        centre = points.mean(axis=0)
        X = points - centre
        Q = queries - centre
        s = max(float(np.max(np.abs(X))), float(np.max(np.abs(Q))) if B else 0.0, 1e-300)
        k0 = self.k0 or 2 * d + 2
        k = self.k or d + 1

        # Round 0: w = x - centre for every query.
        best, top_idx, _ = price(X, Q, k0)
        l1 = np.abs(Q).sum(axis=1)
        out = (np.einsum("bj,bj->b", Q, Q) - best > atol * l1) & (l1 > 0)
        cand.kind[out] = OUTSIDE
        cand.directions[out] = Q[out]
        cand.method[out] = "prefilter"
        active = np.flatnonzero(~out)
        work = {b: np.unique(top_idx[b]) for b in active}

        for rnd in range(1, self.max_rounds + 1):
            if active.size == 0:
                break
            W = np.empty((active.size, d))
            thr = np.empty(active.size)
            pending = np.ones(active.size, dtype=bool)
            for j, b in enumerate(active):
                S = work[b]
                lam, r = master(X, Q[b], S)
                cand.rounds[b] = rnd
                if np.max(np.abs(r)) <= atol:
                    pos = lam > 0
                    cand.kind[b] = INSIDE
                    cand.support[b], cand.weights[b] = S[pos], lam[pos]
                    cand.method[b] = "inside"
                    pending[j] = False
                else:
                    W[j] = r
                    thr[j] = r @ Q[b] - r @ r      # = r @ p >= max over S
            active, W, thr = active[pending], W[pending], thr[pending]
            if active.size == 0:
                break
            best, top_idx, top_val = price(X, W, k)
            l1 = np.abs(W).sum(axis=1)
            out = np.einsum("bj,bj->b", W, Q[active]) - best > atol * l1
            cand.kind[active[out]] = OUTSIDE
            cand.directions[active[out]] = W[out]
            cand.method[active[out]] = "outside"
            # Scores above the master's bound (beyond rounding) are violators.
            viol = top_val > (thr + 1e-13 * d * s * l1)[:, None]
            grow = ~out & viol.any(axis=1)   # no violator and no margin: a tie, left to the LP
            for j in np.flatnonzero(grow):
                b = active[j]
                work[b] = np.union1d(work[b], top_idx[j][viol[j]])
            active = active[grow]
        return cand
