"""One HiGHS linear program per query (scipy.optimize.linprog): the reference judge.

Each query solves the separation LP

    maximise  w @ x - z   subject to   X (w+ - w-) <= z,  sum(w+ + w-) <= 1,  w± >= 0,

whose optimum is the ℓ∞ distance from x to conv(X).  The primal gives a
separating direction; the duals of the N point rows are convex weights.  The
data arrive in the training set's frame (centred, scaled by a power of two;
see :mod:`.certificates`); certificates are checked there by the base class.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy.optimize import linprog

from .base import INSIDE, OUTSIDE, Candidates, Solver


class LPSolver(Solver):
    """Separation LP per query with HiGHS dual simplex; falls back to interior point."""

    name: ClassVar[str] = "lp"
    method: ClassVar[str] = "highs-ds"
    default_fallbacks: ClassVar[tuple[str, ...]] = ("lp-ipm",)

    def _propose(self, points, queries, atol):
        N, d = points.shape
        B = queries.shape[0]
        cand = Candidates.empty(B, d, "lp")
        Xs, s = points, 1.0  # already in frame coordinates: centred, scale in [1, 2)
        A = np.zeros((N + 1, 2 * d + 1))
        A[:N, :d] = Xs
        A[:N, d:2 * d] = -Xs
        A[:N, -1] = -1.0
        A[N, :2 * d] = 1.0
        b = np.zeros(N + 1)
        b[N] = 1.0
        bounds = [(0, None)] * (2 * d) + [(None, None)]
        for k in range(B):
            xs = queries[k]
            c = np.concatenate([-xs, xs, [1.0]])
            res = linprog(c, A_ub=A, b_ub=b, bounds=bounds, method=self.method)
            if res.status != 0 or res.x is None:
                continue  # no certificate: stays undecided, never "outside"
            delta = -res.fun * s
            if delta > atol:
                cand.kind[k] = OUTSIDE
                cand.directions[k] = res.x[:d] - res.x[d:2 * d]
            else:
                lam = -np.asarray(res.ineqlin.marginals[:N])
                support = np.flatnonzero(lam > 1e-12 * max(lam.max(), 1e-300))
                cand.kind[k] = INSIDE
                cand.support[k] = support
                cand.weights[k] = lam[support]
        return cand


class IPMSolver(LPSolver):
    """The same LP with HiGHS's interior-point method: an independent second try."""

    name: ClassVar[str] = "lp-ipm"
    method: ClassVar[str] = "highs-ipm"
    default_fallbacks: ClassVar[tuple[str, ...]] = ()
