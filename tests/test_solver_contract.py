"""One contract for every solver the registry lists (and the streamed one over many small blocks).

Each solver decides awkward cases (duplicates, rank-deficient data, vertices and boundary
points, single points, offsets and magnitudes far from 1, all-equal data) and must agree with an
independent HiGHS LP of the ℓ∞ distance to the hull: clearly inside (distance 0) is inside,
clearly outside (distance above 1e-6 s) is outside, a decided answer is never on the wrong side
of ``tol``, and the certificate value is on the right side of ``tol``.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linprog

from mc_hull.solvers import INSIDE, OUTSIDE, UNDECIDED, get_solver, solver_names
from mc_hull.solvers.sources import ArraySource
from mc_hull.solvers.stream import StreamSolver

TOL = 1e-9


def reference_distance(X: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """ℓ∞ distance of each query to conv(X) in units of the training set's scale (HiGHS LP)."""
    c = X.mean(axis=0)
    s = np.max(np.abs(X - c)) or (np.max(np.abs(c)) or 1.0)
    Xs, Qs = (X - c) / s, (Q - c) / s
    N, d = Xs.shape
    out = []
    for x in Qs:
        # variables (lam_1..lam_N, t): minimise t; -t <= X^T lam - x <= t; sum lam = 1; lam, t >= 0
        A = np.block([[Xs.T, -np.ones((d, 1))], [-Xs.T, -np.ones((d, 1))]])
        b = np.concatenate([x, -x])
        res = linprog(np.r_[np.zeros(N), 1.0], A_ub=A, b_ub=b, A_eq=np.r_[np.ones(N), 0.0][None, :],
                      b_eq=[1.0], bounds=[(0, None)] * (N + 1), method="highs")
        assert res.status == 0, res.message
        out.append(res.x[-1])
    return np.array(out)


def _cases():
    rng = np.random.default_rng(1201)
    cases = {}
    X = rng.standard_normal((300, 8))
    lam = rng.dirichlet(np.ones(300), size=5)
    cases["gaussian"] = (X, np.vstack([1.2 * rng.standard_normal((30, 8)), lam @ X, X[:5]]))
    D = np.repeat(rng.standard_normal((40, 4)), 3, axis=0)      # every point three times
    cases["duplicates"] = (D, np.vstack([D[::7], D[:10].mean(axis=0), 3 * D[:4]]))
    B = rng.standard_normal((60, 2)) @ rng.standard_normal((2, 5))   # a 2-plane in 5-d
    off = rng.standard_normal(5)
    cases["rank-deficient"] = (B, np.vstack([B[:6], B[:20].mean(axis=0), B[:3].mean(axis=0) + 1e-3 * off,
                                             4 * B[:3]]))
    S = np.vstack([np.zeros(3), np.eye(3)])                      # a simplex: vertices, edges, faces
    cases["simplex"] = (S, np.vstack([S, (S[1] + S[2]) / 2, S[1:].mean(axis=0), [0.3, 0.3, 0.3],
                                      [0.34, 0.34, 0.34], [-1e-3, 0.5, 0.2], [0.5, 0.5, 1e-3]]))
    cases["single point"] = (np.array([[1.0, -2.0, 3.0]]), np.array([[1.0, -2.0, 3.0], [1.0, -2.0, 3.1]]))
    few = rng.standard_normal((3, 6))                            # N <= d
    cases["N<=d"] = (few, np.vstack([few, few.mean(axis=0), few.mean(axis=0) + rng.standard_normal(6)]))
    Xo = rng.standard_normal((80, 3))
    Qo = np.vstack([1.5 * rng.standard_normal((20, 3)), Xo[:3]])
    cases["offset 1e9"] = (Xo * 5 + 1e9, Qo * 5 + 1e9)
    cases["scale 1e-150"] = (Xo * 1e-150, Qo * 1e-150)
    cases["scale 1e150"] = (Xo * 1e150, Qo * 1e150)
    cases["all equal"] = (np.ones((10, 3)), np.array([[1.0, 1, 1], [1.0, 1, 1.5], [0.0, 0, 0]]))
    cases["origin"] = (np.zeros((5, 2)), np.array([[0.0, 0.0], [1e-3, 0.0]]))
    return cases


CASES = _cases()
NAMES = [*solver_names(), "stream-blocks"]


def solve(name: str, X: np.ndarray, Q: np.ndarray):
    if name == "stream-blocks":  # the streamed path over many small blocks, nothing held whole
        return StreamSolver(fallbacks=()).decide(ArraySource(X, block_rows=7), Q, tol=TOL)
    return get_solver(name).decide(X, Q, tol=TOL)


@pytest.fixture(scope="module")
def distances():
    return {case: reference_distance(*CASES[case]) for case in CASES}


class TestSolverContract:
    """Every registry name (and the streamed path on blocks) against the same reference."""

    @pytest.mark.parametrize("name", NAMES)
    @pytest.mark.parametrize("case", list(CASES))
    def test_agrees_with_an_independent_lp(self, name, case, distances):
        X, Q = CASES[case]
        delta = distances[case]
        dec = solve(name, X, Q)
        assert dec.status.shape == (len(Q),)
        clear_in, clear_out = delta <= 1e-12, delta > 1e-6
        tie = ~(clear_in | clear_out)
        assert (dec.status[clear_in] == INSIDE).all(), (name, case, dec.status, delta)
        assert (dec.status[clear_out] == OUTSIDE).all(), (name, case, dec.status, delta)
        # decided answers in the tie band are on the right side of tol (within the LP's own accuracy)
        assert (delta[tie & (dec.status == INSIDE)] <= TOL * (1 + 1e-3) + 1e-12).all()
        assert (delta[tie & (dec.status == OUTSIDE)] >= TOL * (1 - 1e-3)).all()
        value = dec.certificate
        assert (value[dec.status == INSIDE] <= TOL).all() and (value[dec.status == OUTSIDE] > TOL).all()
        assert np.isnan(value[dec.status == UNDECIDED]).all()

    @pytest.mark.parametrize("name", NAMES)
    def test_answers_do_not_depend_on_the_batch(self, name):
        X, Q = CASES["gaussian"]
        alone = np.concatenate([solve(name, X, Q[i:i + 1]).status for i in range(0, len(Q), 9)])
        together = solve(name, X, np.vstack([Q[::9], 1e6 * np.ones((1, X.shape[1]))])).status[:-1]
        assert np.array_equal(alone, together)
