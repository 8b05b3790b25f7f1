"""cvxpy per query: an independent cross-check written against a different modelling stack.

Solves ``min t  s.t. -t <= X.T lam - x <= t, lam >= 0, sum(lam) = 1``; the
optimal ``t`` is the ℓ∞ distance to the hull, ``lam`` an inside certificate and
the difference of the two inequality duals a separating direction.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .base import INSIDE, OUTSIDE, Candidates, Solver


class CvxpySolver(Solver):
    """Distance LP per query through cvxpy's default solver."""

    name: ClassVar[str] = "cvxpy"
    default_fallbacks: ClassVar[tuple[str, ...]] = ("lp",)

    def _propose(self, points, queries, atol):
        import cvxpy as cp

        N, d = points.shape
        B = queries.shape[0]
        cand = Candidates.empty(B, d, "cvxpy")
        Xs, s = points, 1.0  # already in frame coordinates: centred, scale in [1, 2)
        lam = cp.Variable(N, nonneg=True)
        t = cp.Variable()
        x = cp.Parameter(d)
        upper = Xs.T @ lam - x <= t
        lower = x - Xs.T @ lam <= t
        prob = cp.Problem(cp.Minimize(t), [upper, lower, cp.sum(lam) == 1])
        for k in range(B):
            x.value = queries[k]
            try:
                prob.solve()
            except cp.error.SolverError:
                continue
            if prob.status not in ("optimal", "optimal_inaccurate") or t.value is None:
                continue
            if float(t.value) * s > atol:
                cand.kind[k] = OUTSIDE
                cand.directions[k] = np.asarray(lower.dual_value) - np.asarray(upper.dual_value)
            else:
                weights = np.asarray(lam.value)
                support = np.flatnonzero(weights > 1e-7 * max(weights.max(), 1e-300))
                cand.kind[k] = INSIDE
                cand.support[k] = support
                cand.weights[k] = weights[support]
        return cand
