"""No query is left undecided outside the stated band around the tolerance (issue 24, item 4).

The band (``mc_hull/solvers/certificates.py``, README "Certificates"): a query with
Euclidean distance ``delta_2 + rho <= atol / 2`` is decided inside, a query with ℓ∞
distance ``delta > 2 atol + rho`` is decided outside, whatever the solver, and decided
answers are the same for every row and column order of X.  Checked on exact
constructions (``benchmarks/undecided_band.py``: the query ``p + t sign(n)`` with p on a
face and n in its normal cone is at ℓ∞ distance exactly t) and against Clarabel's
Euclidean distance on random data.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

import mc_hull
from mc_hull.solvers import certificates as cert
from mc_hull.solvers import edges
from mc_hull.solvers import get_solver

_spec = importlib.util.spec_from_file_location(
    "undecided_band", Path(__file__).resolve().parents[1] / "benchmarks" / "undecided_band.py")
band = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(band)


def test_the_band_is_stated_as_tested():
    assert (cert.BAND_IN, cert.BAND_OUT) == (0.5, 2.0)
    assert "undecided band" in (cert.__doc__ or "").lower()


@pytest.mark.parametrize("solver", ["auto", "colgen", "lp", "lp-ipm", "cvxpy", "stream"])
def test_issue_example_is_decided_by_every_solver(solver):
    """A segment along z, a query 3.7e-9 off it: undecided before, now outside with margin 3.7e-9 s."""
    X = np.array([[0.0, 0, 0], [0, 0, 2]])
    q = np.array([2.0 ** -28, 0, 1.5])
    dec = mc_hull.decide(X, q, solver=solver)
    assert dec.status.tolist() == [0]
    assert dec.certificate[0] == pytest.approx(2.0 ** -28, rel=1e-6)       # s = 1 here
    dist = mc_hull.distance.distances(X, q)
    assert dist.status.tolist() == [0] and dist.low[0] > 3.7e-9
    # the same segment, offsets at multiples of atol in both free directions and rotated by 45°
    R = np.array([[1, -1, 0], [1, 1, 0], [0, 0, math.sqrt(2)]]) / math.sqrt(2)
    for m in (2.5, 4, 15, 60):
        for Y, x in ((X, [m * 1e-9, 0, 0.7]), (X, [0, -m * 1e-9, 1.9]), (X @ R.T, R @ [m * 1e-9, 0, 1.2])):
            assert mc_hull.decide(Y, np.asarray(x), solver=solver).status.tolist() == [0], (m, x)


@pytest.mark.parametrize("kind", band.CLASSES)
@pytest.mark.parametrize("solver", ["auto", "lp"])
def test_exact_constructions_are_decided_beyond_the_band(kind, solver):
    """Flats, constant columns, duplicates, cube edges, facets, magnitudes: none wrong, none
    undecided beyond the band, and no decided answer changed by permuting rows and columns."""
    sets = 6 if solver == "auto" else 3
    (_, _, t), = band.run([kind], [solver], sets, seed=4242, tols=[1e-9, 1e-12, 1e-6, 1e-3])
    assert t["tried"] > 0 and t["refused"] == 0
    assert t["wrong"] == 0, t
    assert t["beyond"] == 0, t
    assert t["flips_beyond"] == 0, t


@pytest.mark.parametrize("kind", ["constant", "cube"])
def test_streamed_sources_get_the_coordinate_directions(kind):
    """Rows served block by block (not in memory): axis-aligned faces are still decided beyond the band."""
    from mc_hull.solvers.sources import ArraySource

    solver = get_solver("stream")
    for i in range(6):
        rng = np.random.default_rng([4243, i])
        X, faces = band.build(kind, rng)
        tol = float(rng.choice([1e-9, 1e-12, 1e-6]))
        Q, t_inf, t2, slop = band.queries(X, faces, tol, rng)
        outside = t_inf > 0                       # the offsets along sign(n); inside points need weights
        st = solver.decide(ArraySource(X, block_rows=7), Q[outside], tol=tol).status
        wrong, beyond = band.judge(st, t_inf[outside], t2[outside], slop[outside], tol,
                                   (cert.BAND_IN, cert.BAND_OUT))
        assert not wrong.any()
        assert not np.any(beyond & (st == -1) & (t_inf[outside] > tol)), (kind, i)


def test_before_the_stage_these_were_undecided(monkeypatch):
    """The constructions are hard: without the edge stage many queries beyond the band stay undecided."""
    monkeypatch.setattr(edges, "edge_candidates", lambda P, Q, scale, atol: (
        np.full(len(Q), -1, dtype=np.int8), np.zeros(Q.shape), [None] * len(Q), [None] * len(Q),
        np.full(len(Q), "none", dtype=object)))
    (_, _, t), = band.run(["constant"], ["auto"], 6, seed=4242, tols=[1e-9], permute=False)
    assert t["beyond"] > 20 and t["wrong"] == 0


def _clarabel_projection(X, x):
    """Clarabel's Euclidean projection of x onto conv(X) (gap and feasibility tolerances 1e-12)."""
    import clarabel
    import scipy.sparse as sp

    N, d = X.shape
    c = X.mean(axis=0)
    s = float(np.max(np.abs(X - c))) or 1.0
    Xs, xs = (X - c) / s, (x - c) / s
    P = sp.block_diag([sp.csc_matrix((N, N)), sp.eye(d)]).tocsc()
    A = sp.vstack([sp.hstack([sp.csc_matrix(Xs.T), -sp.eye(d)]),
                   sp.hstack([sp.csc_matrix(np.ones((1, N))), sp.csc_matrix((1, d))]),
                   sp.hstack([-sp.eye(N), sp.csc_matrix((N, d))])]).tocsc()
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = settings.tol_gap_rel = settings.tol_feas = 1e-12
    sol = clarabel.DefaultSolver(P, np.zeros(N + d), A, np.concatenate([xs, [1.0], np.zeros(N)]),
                                 [clarabel.ZeroConeT(d + 1), clarabel.NonnegativeConeT(N)], settings).solve()
    lam = np.clip(np.asarray(sol.x)[:N], 0.0, None)
    return c + s * (Xs.T @ (lam / lam.sum()))


@pytest.mark.parametrize("seed", range(3))
def test_random_hulls_against_clarabel(seed):
    """Gaussian, rank-deficient and duplicated, offset sets: queries at multiples of atol along the
    normal of Clarabel's projection, judged by Clarabel's distance bounds (tests/test_distance.py)."""
    from test_distance import clarabel_bounds

    rng = np.random.default_rng([24, 4, seed])
    tol = 1e-6                                   # Clarabel resolves distances to ~1e-12 s
    for rep in range(3):
        d = int(rng.integers(2, 7))
        N = int(rng.integers(d + 1, 80))
        X = rng.standard_normal((N, d))
        if rep == 1:                             # a flat of dimension 1 or 2
            k = min(2, d - 1)
            X = rng.standard_normal((N, k)) @ rng.standard_normal((k, d))
        if rep == 2:                             # duplicated rows, offset and scaled by 2^-600
            X = np.ldexp(np.repeat(X, 2, axis=0) + 8.0, -600)
        s = band.frame_scale(X)
        atol = tol * s
        Q = []
        for _ in range(4):
            Q.append(rng.dirichlet(np.ones(len(X))) @ X)                    # inside
            z = rng.standard_normal(d)
            far = X.mean(axis=0) + z / np.linalg.norm(z) * 4 * math.sqrt(d) * s    # beyond every row
            p = _clarabel_projection(X, far)
            v = (far - p) / np.max(np.abs(far - p))        # (no underflow at 2^-600)
            unit = v / np.linalg.norm(v)
            for m in (0.05, 0.3, 0.45, 3.0, 6.0, 20.0):                      # multiples of sqrt(d) atol
                Q.append(p + m * math.sqrt(d) * atol * unit)
        Q = np.array(Q)
        lows, highs = np.array([clarabel_bounds(X, x) for x in Q]).T
        for solver in ("auto", "lp"):
            st = mc_hull.decide(X, Q, tol=tol, solver=solver).status
            # decided answers are right: inside needs delta <= atol, so delta_2 <= sqrt(d) atol;
            # outside needs delta > atol, so delta_2 > atol
            assert not np.any((st == 1) & (lows > math.sqrt(d) * atol * (1 + 1e-6))), solver
            assert not np.any((st == 0) & (highs <= atol * (1 - 1e-6))), solver
            # beyond the band: decided (delta >= delta_2 / sqrt(d))
            must_in = highs <= 0.5 * atol * (1 - 1e-6)
            must_out = lows / math.sqrt(d) > 2 * atol * (1 + 1e-6)
            assert np.all(st[must_in] == 1), (solver, st, highs / atol)
            assert np.all(st[must_out] == 0), (solver, st, lows / atol)
            assert must_in.sum() >= 4 and must_out.sum() >= 4


def test_hull_distance_and_decide_agree_on_status():
    """One set of certificate tools: where decide settles a query, distances() says the same."""
    rng = np.random.default_rng(2424)
    for kind in ("flat", "constant", "cube"):
        X, faces = band.build(kind, rng)
        Q, t_inf, t2, slop = band.queries(X, faces, 1e-9, rng)
        st = mc_hull.decide(X, Q).status
        ds = mc_hull.distance.distances(X, Q).status
        both = (st >= 0) & (ds >= 0)
        assert np.all(st[both] == ds[both])
        wrong, beyond = band.judge(ds, t_inf, t2, slop, 1e-9, (cert.BAND_IN, cert.BAND_OUT))
        assert not wrong.any() and not np.any(beyond & (ds == -1))


def test_edge_stage_only_runs_on_what_is_left():
    """Ordinary Gaussian cells never reach the stage (its cost is paid by near-tie queries only)."""
    rng = np.random.default_rng(77)
    X = rng.standard_normal((400, 6))
    Q = rng.standard_normal((300, 6)) * 1.3
    dec = get_solver("auto").decide(X, Q)
    assert not any("edge" in m for m in dec.method)
    assert np.all(dec.status >= 0)
