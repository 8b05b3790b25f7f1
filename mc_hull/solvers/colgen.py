"""Batched membership by a one-product outside prefilter plus column generation with an NNLS master."""

from __future__ import annotations

from typing import ClassVar

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

from .base import INSIDE, OUTSIDE, Candidates, Solver

# Elements of one (queries x rows) score block in the pricing products:
# 2**21 doubles = 16 MiB, so B x N never materialises however large N is.
_BLOCK_ELEMS = 1 << 21


def price(points: np.ndarray, directions: np.ndarray, k: int, lowest: bool = False):
    """Best scores ``X[i] @ w`` overall and in each of ``k`` contiguous chunks of rows.

    Parameters
    ----------
    points : ndarray, shape (N, d)
    directions : ndarray, shape (B, d)
    k : int
        Number of row chunks (capped at N); each gives its best row, so the
        candidates are spread over the data rather than clustered at one extreme.
    lowest : bool
        Also return the row of the lowest score in each chunk.

    Returns
    -------
    best : ndarray, shape (B,)
        Largest score per direction.
    top_idx, top_val : ndarray, shape (B, min(k, N))
        Row index of the best score in each chunk, and that score.
    low_idx : ndarray, shape (B, min(k, N))
        Only when ``lowest``: row index of the lowest score in each chunk.

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
    low_idx = np.zeros((B, k), dtype=np.intp)
    low_val = np.full((B, k), np.inf)
    qb = max(1, min(B, _BLOCK_ELEMS // 1024))
    for q0 in range(0, B, qb):
        W = directions[q0:q0 + qb]
        rows = max(1024, _BLOCK_ELEMS // W.shape[0])
        ar = np.arange(W.shape[0])
        val, idx = top_val[q0:q0 + qb], top_idx[q0:q0 + qb]
        lval, lidx = low_val[q0:q0 + qb], low_idx[q0:q0 + qb]
        for c in range(k):
            for start in range(edges[c], edges[c + 1], rows):
                S = W @ points[start:min(edges[c + 1], start + rows)].T   # (qb, rows)
                j = S.argmax(axis=1)
                v = S[ar, j]
                better = v > val[:, c]
                val[better, c] = v[better]
                idx[better, c] = j[better] + start
                if lowest:
                    j = S.argmin(axis=1)
                    v = S[ar, j]
                    better = v < lval[:, c]
                    lval[better, c] = v[better]
                    lidx[better, c] = j[better] + start
    best = top_val.max(axis=1)
    return (best, top_idx, top_val, low_idx) if lowest else (best, top_idx, top_val)


def master(points: np.ndarray, queries: np.ndarray, sets: list, scale: float):
    """Project each query onto ``conv(points[S])`` of its working set S, one NNLS each.

    Solves ``min ||[Y.T; M 1^T] mu - [0; M]||``, ``mu >= 0`` with ``Y = X_S - x``
    and ``M = scale``; ``lam = mu / sum(mu)`` are then exactly the convex weights
    of the nearest point of ``conv(X_S)`` for any ``M > 0`` (the sum row only
    fixes a scale), so no penalty weight needs tuning.

    Parameters
    ----------
    points : ndarray, shape (N, d)
    queries : ndarray, shape (B, d)
    sets : list of B int ndarrays
        Working sets (row indices, no repeats).
    scale : float
        Data scale used for the sum row.

    Returns
    -------
    lam : ndarray, shape (sum of set sizes,)
        The sets' convex weights, concatenated; zero for a set whose NNLS failed.
    offsets : ndarray, shape (B + 1,)
        Set b's weights are ``lam[offsets[b]:offsets[b + 1]]``.
    R : ndarray, shape (B, d)
        Residuals ``x - p``; ``R[b] @ X[i] <= R[b] @ p`` for all i in S.
        NaN rows where the NNLS failed.
    """
    B, d = queries.shape
    sizes = np.array([S.size for S in sets])
    offs = np.concatenate([[0], np.cumsum(sizes)])
    Yt = np.empty((offs[-1], d + 1))                   # rows: (X_i - x, M)
    Yt[:, :d] = points[np.concatenate(sets)] - np.repeat(queries, sizes, axis=0)
    Yt[:, d] = scale
    rhs = np.zeros(d + 1)
    rhs[d] = scale
    mu = np.zeros(offs[-1])
    failed = np.zeros(B, dtype=bool)
    for b in range(B):
        a, e = offs[b], offs[b + 1]
        mu[a:e], _, info = _nnls(Yt[a:e].T, rhs, 20 * (e - a + d + 1))
        failed[b] = info != 1
    total = np.add.reduceat(mu, offs[:-1])
    failed |= ~(total > 0)
    lam = mu / np.repeat(np.where(failed, 1.0, total), sizes)
    R = -np.add.reduceat(Yt[:, :d] * lam[:, None], offs[:-1], axis=0)
    R[failed] = np.nan
    return lam, offs, R


class ColGenSolver(Solver):
    """Prefilter with ``w = x - mean(X)``, then column generation on the rest.

    Round 0 prices every query along ``w = x - mean(X)`` in one blocked product:
    a margin above ``atol`` settles it outside (``"prefilter"``); otherwise the
    best row of each of ``k0`` chunks of X (in front of x) and the worst row of
    ``k0 / 2`` chunks (behind it) seed its working set S.  Each later round
    projects x onto conv(X_S) with :func:`master`; a residual within ``atol``
    proposes inside (``"inside"``), otherwise all active residuals are priced in
    one product: a margin above ``atol`` proposes outside (``"outside"``), the
    best row of each of ``k`` chunks joins S if it violates the master's bound,
    and a query with no violator (a tie within tolerance), a failed NNLS or
    past ``max_rounds`` stays undecided for the ``lp`` fallbacks (dual simplex,
    then interior point: the simplex's direction can miss a margin of ~1e-8 by
    its own feasibility tolerance, e.g. queries next to a densely sampled curve).

    Memory per batch of B queries: a centred copy of X (N d doubles), one
    16 MiB score block, and the masters' (B, |S|, d + 1) array, |S| about 3 d.

    Parameters
    ----------
    max_rounds : int
        Master/pricing rounds after the prefilter.
    k0, k : int or None
        Seeding chunks and chunks priced per round; default ``2 d + 2`` and ``d + 1``.
    fallbacks : tuple of str or None
        Solvers for undecided queries; default ``("lp",)``, which brings its own
        ``lp-ipm`` (see :meth:`Solver.fallback_chain`).
    """

    name: ClassVar[str] = "colgen"
    default_fallbacks: ClassVar[tuple[str, ...]] = ("lp",)  # and lp's own: lp-ipm

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
        s = max(float(np.max(np.abs(X))), float(np.max(np.abs(Q))) if B else 0.0) or 1.0
        k0 = self.k0 or 2 * d + 2
        k = self.k or d + 1

        # Round 0: w = x - centre for every query.
        best, top_idx, _, low_idx = price(X, Q, k0, lowest=True)
        l1 = np.abs(Q).sum(axis=1)
        out = (np.einsum("bj,bj->b", Q, Q) - best > atol * l1) & (l1 > 0)
        cand.kind[out] = OUTSIDE
        cand.directions[out] = Q[out]
        cand.method[out] = "prefilter"
        active = np.flatnonzero(~out)
        seeds = np.sort(np.hstack([top_idx, low_idx[:, :k0 // 2]]), axis=1)
        fresh = np.ones(seeds.shape, dtype=bool)
        fresh[:, 1:] = seeds[:, 1:] != seeds[:, :-1]       # a row can win two chunks only if tiny
        work = {b: seeds[b][fresh[b]] for b in active}

        for rnd in range(1, self.max_rounds + 1):
            if active.size == 0:
                break
            sets = [work[b] for b in active]
            lam, offs, W = master(X, Q[active], sets, s)
            cand.rounds[active] = rnd
            pending = ~(np.abs(W).max(axis=1) <= atol)     # NaN (NNLS failure) stays pending
            for j in np.flatnonzero(~pending):
                lj = lam[offs[j]:offs[j + 1]]
                b = active[j]
                cand.kind[b] = INSIDE
                cand.support[b], cand.weights[b] = sets[j][lj > 0], lj[lj > 0]
                cand.method[b] = "inside"
            pending &= np.isfinite(W).all(axis=1)             # failed NNLS: left to the LP
            thr = np.einsum("bj,bj->b", W, Q[active] - W)   # = r @ p >= max over S
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
                work[b] = np.concatenate([work[b], top_idx[j][viol[j]]])  # violators are new rows
            active = active[grow]
        return cand
