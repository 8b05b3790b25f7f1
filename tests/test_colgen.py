"""The column-generation solver agrees with the per-query LP and settles almost everything itself."""

from __future__ import annotations

import numpy as np
import pytest

import mc_hull
from mc_hull.solvers.colgen import ColGenSolver
from mc_hull.solvers.master import master
from mc_hull.solvers.pricing import price


def _queries(rng, X, B):
    """A mix of inside and outside queries around the training set (B, d)."""
    c = X.mean(axis=0)
    radius = float(np.max(np.abs(X - c))) or float(np.max(np.abs(X))) or 1.0
    return c + rng.standard_normal((B, X.shape[1])) * rng.uniform(0.05, 1.2, (B, 1)) * radius


def _training_set(kind, rng, N, d):
    if kind == "gauss":
        return rng.standard_normal((N, d))
    if kind == "cube":
        return rng.uniform(-1, 1, (N, d))
    if kind == "sphere":
        Z = rng.standard_normal((N, d))
        return Z / np.linalg.norm(Z, axis=1, keepdims=True)
    if kind == "rank":  # rank-deficient: a random subspace of dimension about d/2, shifted
        r = max(1, d // 2)
        return rng.standard_normal((N, r)) @ rng.standard_normal((r, d)) + rng.standard_normal(d)
    if kind == "dup":  # every point three times
        return np.repeat(rng.standard_normal((max(1, N // 3), d)), 3, axis=0)
    raise ValueError(kind)


CASES = [  # (kind, d, N, B, scale)
    ("gauss", 1, 1, 6, 1.0), ("gauss", 1, 30, 20, 1.0), ("gauss", 2, 2, 20, 1.0),
    ("gauss", 2, 200, 30, 1.0), ("gauss", 3, 3, 20, 1e6), ("gauss", 4, 40, 30, 1.0),
    ("gauss", 5, 5, 20, 1.0), ("gauss", 6, 3000, 25, 1.0), ("gauss", 8, 1100, 40, 1e-6),
    ("gauss", 12, 12, 20, 1.0), ("gauss", 12, 2500, 25, 1.0),
    ("cube", 3, 500, 30, 1.0), ("cube", 7, 2000, 25, 1e6), ("cube", 10, 300, 30, 1.0),
    ("sphere", 3, 100, 30, 1.0), ("sphere", 6, 800, 30, 1e-6), ("sphere", 9, 2000, 25, 1.0),
    ("rank", 4, 200, 30, 1.0), ("rank", 9, 1000, 30, 1.0), ("rank", 12, 8, 20, 1.0),
    ("dup", 2, 30, 20, 1.0), ("dup", 8, 900, 30, 1.0),
]


@pytest.mark.parametrize("kind,d,N,B,scale", CASES)
def test_agrees_with_lp_on_every_query(kind, d, N, B, scale):
    rng = np.random.default_rng([d, N, B, len(kind)])
    X = _training_set(kind, rng, N, d) * scale
    Q = _queries(rng, X, B)
    if kind in ("rank", "dup"):  # queries inside the degenerate hull too
        lam = rng.dirichlet(np.ones(X.shape[0]), size=B // 3)
        Q = np.vstack([Q, lam @ X])
    Q = np.vstack([Q, X[rng.integers(0, X.shape[0], 5)]])   # vertices and duplicates
    cg = mc_hull.decide(X, Q, solver="colgen")
    lp = mc_hull.decide(X, Q, solver="lp")
    assert np.all(cg.status >= 0) and np.all(lp.status >= 0)
    np.testing.assert_array_equal(cg.status, lp.status)
    assert np.all(cg.status[-5:] == 1)
    own = np.char.startswith(cg.method.astype(str), "colgen")
    assert own.mean() >= 0.9, dict(zip(*np.unique(cg.method.astype(str), return_counts=True)))


def test_boundary_points_count_inside():
    X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    Q = np.array([[0.5, 0.0], [0.5, 1.0], [0.5, 0.5], [1.0, 1.0], [1.0 + 1e-12, 0.5],
                  [1.0 + 1e-6, 0.5], [2.0, 2.0]])
    dec = mc_hull.decide(X, Q, solver="colgen")
    np.testing.assert_array_equal(dec.status, [1, 1, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(dec.status, mc_hull.decide(X, Q, solver="lp").status)


def test_fallback_fraction_small_near_half():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((4000, 10))
    Q = rng.standard_normal((400, 10))
    dec = mc_hull.decide(X, Q, solver="colgen")
    methods = dec.method.astype(str)
    assert 0.35 < dec.inside.mean() < 0.65
    assert np.char.startswith(methods, "colgen").mean() >= 0.98
    assert {"colgen:prefilter", "colgen:inside", "colgen:outside"} <= set(methods)
    assert dec.rounds.max() <= ColGenSolver().max_rounds


@pytest.mark.parametrize("n_low", [0, 5])
def test_seeds_from_behind_are_optional(n_low):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((600, 5))
    Q = rng.standard_normal((60, 5))
    cg = ColGenSolver(n_low=n_low).decide(X, Q)
    np.testing.assert_array_equal(cg.status, mc_hull.decide(X, Q, solver="lp").status)


def test_batch_equals_per_query():
    rng = np.random.default_rng(11)
    X = rng.standard_normal((700, 6))
    Q = rng.standard_normal((40, 6))
    batch = mc_hull.decide(X, Q, solver="colgen")
    single = np.array([mc_hull.decide(X, q, solver="colgen").status[0] for q in Q])
    np.testing.assert_array_equal(batch.status, single)


def test_price_matches_dense_product():
    rng = np.random.default_rng(5)
    W = rng.standard_normal((7, 4))
    for N, k in ((5000, 3), (40000, 5)):   # the one-product path, then the blocked one
        X = rng.standard_normal((N, 4))
        S = W @ X.T
        best, top_idx, top_val, low_idx = price(X, W, k, lowest=2)
        np.testing.assert_allclose(best, S.max(axis=1))
        np.testing.assert_allclose(top_val, np.take_along_axis(S, top_idx, axis=1))
        chunks = np.array_split(np.arange(N), k)
        for c, rows in enumerate(chunks):
            assert np.all(np.isin(top_idx[:, c], rows))
            np.testing.assert_allclose(top_val[:, c], S[:, rows].max(axis=1))
        assert low_idx.shape == (7, 2)
        for lc in range(2):   # coarse chunk lc: the chunks c with c * 2 // k == lc
            rows = np.concatenate([chunks[c] for c in range(k) if c * 2 // k == lc])
            np.testing.assert_allclose(np.take_along_axis(S, low_idx[:, lc:lc + 1], axis=1)[:, 0],
                                       S[:, rows].min(axis=1))


def test_master_projects_onto_working_hull():
    X = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
    Q = np.array([[0.5, 0.5], [2.0, 2.0]])
    lam, offs, R = master(X, Q, np.r_[np.arange(3), np.arange(3)], np.array([3, 3]), 2.0)
    np.testing.assert_array_equal(offs, [0, 3, 6])
    np.testing.assert_allclose(R[0], 0.0, atol=1e-12)
    np.testing.assert_allclose(lam[:3] @ X, Q[0])
    np.testing.assert_allclose(lam[3:].sum(), 1.0)
    np.testing.assert_allclose(R[1], [1.0, 1.0])   # nearest point (1, 1)
