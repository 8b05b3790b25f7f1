"""Batched membership by a one-product outside prefilter plus column generation with an NNLS master."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .. import progress
from .base import INSIDE, OUTSIDE, Candidates, Solver
from .master import master
from .pricing import price


def record_inside(cand: Candidates, active: np.ndarray, idx: np.ndarray, lam: np.ndarray,
                  offs: np.ndarray, W: np.ndarray, atol: float) -> tuple[np.ndarray, np.ndarray]:
    """Propose inside for the active queries whose master residual is within ``atol``.

    Parameters
    ----------
    cand : Candidates
        Updated in place: kind, support, weights and method of the settled queries.
    active : int ndarray, shape (A,)
        Query rows of ``cand`` the master solved.
    idx, lam, offs, W
        The working sets and :func:`master`'s weights, offsets and residuals (A, d).

    Returns
    -------
    pending : bool ndarray, shape (A,)
        Queries still open with a finite residual (a failed NNLS is left to the fallbacks).
    positive : bool ndarray, shape (len(idx),)
        Working-set rows with positive weight (the master's support).
    """
    pending = ~(np.abs(W).max(axis=1) <= atol)     # NaN (NNLS failure) stays pending
    positive = lam > 0
    bounds = offs.tolist()
    for j in np.flatnonzero(~pending).tolist():
        a, e = bounds[j], bounds[j + 1]
        pos = positive[a:e]
        cand.support[active[j]], cand.weights[active[j]] = idx[a:e][pos], lam[a:e][pos]
    cand.kind[active[~pending]] = INSIDE
    cand.method[active[~pending]] = "inside"
    pending &= np.isfinite(W).all(axis=1)             # failed NNLS: left to the LP
    return pending, positive


class ColGenSolver(Solver):
    """Prefilter with ``w = x - mean(X)``, then column generation on the rest.

    Works in the frame of :mod:`~.certificates` (X centred at its mean), so
    ``w = x`` there.  Round 0 prices every query along ``w`` in one blocked product:
    a margin above ``atol`` settles it outside (``"prefilter"``); otherwise the
    best row of each of ``k0`` chunks of X (in front of x) and the worst row of
    each of ``n_low`` coarser chunks (behind it) seed its working set S.  Each later round
    projects x onto conv(X_S) with :func:`master`; a residual within ``atol``
    proposes inside (``"inside"``), otherwise all active residuals are priced in
    one product: a margin above ``atol`` proposes outside (``"outside"``), S is cut
    to the master's support and the best row of each of ``k`` chunks joins it if
    it violates the master's bound,
    and a query with no violator (a tie within tolerance), a failed NNLS or
    past ``max_rounds`` stays undecided for the ``lp`` fallbacks (dual simplex,
    then interior point: the simplex's direction can miss a margin of ~1e-8 by
    its own feasibility tolerance, e.g. queries next to a densely sampled curve).

    Memory per batch of B queries: (the frame's copy of X, N d doubles), one
    16 MiB score block, and the masters' (B, |S|, d + 1) array, |S| about 3 d.

    Parameters
    ----------
    max_rounds : int
        Master/pricing rounds after the prefilter.
    k0, k : int or None
        Seeding chunks and chunks priced per round; default ``2 d + 2`` and ``d + 1``.
    n_low : int
        Seeds from behind x (the lowest row of each of ``n_low`` coarse chunks).  Few
        suffice: the first master's cost grows with |S| and these rows rarely end
        in its support (2 instead of ``d + 1`` measured 5-13% faster per query at
        d = 8-12 near p = 1/2, ``benchmarks/membership.py`` cells).
    fallbacks : tuple of str or None
        Solvers for undecided queries; default ``("lp",)``, which brings its own
        ``lp-ipm`` (see :meth:`Solver.fallback_chain`).
    """

    name: ClassVar[str] = "colgen"
    default_fallbacks: ClassVar[tuple[str, ...]] = ("lp",)  # and lp's own: lp-ipm

    def __init__(self, *, max_rounds: int = 12, k0: int | None = None, k: int | None = None,
                 n_low: int = 2, fallbacks: tuple[str, ...] | None = None):
        super().__init__(fallbacks=fallbacks)
        if n_low < 0:
            raise ValueError(f"n_low must be >= 0, got {n_low}")
        self.max_rounds, self.k0, self.k, self.n_low = max_rounds, k0, k, n_low

    def _propose(self, points, queries, atol):
        N, d = points.shape
        B = queries.shape[0]
        cand = Candidates.empty(B, d, "colgen")
        X, Q = points, queries                  # frame coordinates: centred, scale in [1, 2)
        s = float(np.max(np.abs(X))) or 1.0     # the training set's alone: no batch dependence
        k0 = self.k0 or 2 * d + 2
        k = self.k or d + 1

        # Round 0: w = x - centre (= x in the frame) for every query.
        best, top_idx, _, low_idx = price(X, Q, k0, lowest=self.n_low)
        l1 = np.abs(Q).sum(axis=1)
        out = (np.einsum("bj,bj->b", Q, Q) - best > atol * l1) & (l1 > 0)
        cand.kind[out] = OUTSIDE
        cand.directions[out] = Q[out]
        cand.method[out] = "prefilter"
        active = np.flatnonzero(~out)
        seeds = np.sort(np.hstack([top_idx[active], low_idx[active]]), axis=1)
        fresh = np.ones(seeds.shape, dtype=bool)
        fresh[:, 1:] = seeds[:, 1:] != seeds[:, :-1]       # a row can win two chunks only if tiny
        # Working sets of the active queries, concatenated in query order (see master).
        idx, sizes = seeds[fresh], fresh.sum(axis=1)

        for rnd in range(1, self.max_rounds + 1):
            progress.update("colgen", inner=1.0 - active.size / max(B, 1), open=int(active.size), queries=B,
                            round=rnd)
            if active.size == 0:
                break
            lam, offs, W = master(X, Q[active], idx, sizes, s)
            cand.rounds[active] = rnd
            pending, positive = record_inside(cand, active, idx, lam, offs, W, atol)
            # Column dropping: a set keeps only its support.  The next master still holds the last
            # optimum, so the distance cannot grow, and later masters stay small (NNLS cost ~ |S|).
            row = np.repeat(np.arange(active.size), sizes)
            keep = positive & pending[row]
            sup_idx, sup_row = idx[keep], (np.cumsum(pending) - 1)[row[keep]]
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
            # Scores above the master's bound (beyond rounding) are violators: new rows of S.
            viol = top_val > (thr + 1e-13 * d * s * l1)[:, None]
            grow = ~out & viol.any(axis=1)   # no violator and no margin: a tie, left to the LP
            new_row = np.cumsum(grow) - 1
            v_row, v_col = np.nonzero(viol & grow[:, None])
            from_sup = grow[sup_row]
            rows = np.concatenate([new_row[sup_row[from_sup]], new_row[v_row]])
            order = np.argsort(rows, kind="stable")
            idx = np.concatenate([sup_idx[from_sup], top_idx[v_row, v_col]])[order]
            active = active[grow]
            sizes = np.bincount(rows, minlength=active.size)
        return cand
