"""The nearest-training-point distance against brute force, near tight clusters (issue 24, item 5).

Ranking rows by ``|X_i|^2 - 2 x.X_i`` cancels catastrophically for a cluster far from
the origin: with a spread of 1e-9 s the expanded scores cannot tell the cluster's rows
apart.  ``nearest`` re-measures every row within the scores' rounding band directly, so
its distance must match brute force (``min_i ||x - X_i||_2`` computed directly) to a few
ulps, at every offset, scale and spread, in one block of scores or many.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import mc_hull
from mc_hull.solvers import distance as eng

U = 2.0 ** -53


def brute(X: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Direct ``min_i ||x - X_i||_2`` per query (no expanded form), in prescaled units when huge."""
    out = np.empty(len(Q))
    for b, x in enumerate(Q):
        D = X - x
        g = np.max(np.abs(D))
        if g == 0:
            out[b] = 0.0
            continue
        e = math.frexp(g)[1]                       # scale by a power of two: no overflow, exact
        out[b] = math.ldexp(float(np.min(np.linalg.norm(np.ldexp(D, -e), axis=1))), e)
    return out


def cluster_case(rng, d, spread, offset, scale, n_cluster=200, n_far=5):
    """A tight cluster of ``n_cluster`` rows at ``offset`` (in units of the data's spread) plus far rows."""
    c = rng.standard_normal(d) * offset
    X = np.vstack([c + spread * rng.standard_normal((n_cluster, d)),
                   rng.standard_normal((n_far, d)) * max(offset, 1.0) * 3])
    Q = np.vstack([c + spread * rng.standard_normal((6, d)) * 0.5,       # among the cluster
                   c + spread * rng.standard_normal((3, d)) * 20,        # just beyond it
                   X[:2]])                                               # rows themselves
    return np.ldexp(X, scale), np.ldexp(Q, scale)


@pytest.mark.parametrize("spread", [1e-3, 1e-6, 1e-9, 1e-12])
@pytest.mark.parametrize("offset", [0.0, 1.0, 1e3])
def test_nearest_matches_brute_force_near_tight_clusters(spread, offset):
    rng = np.random.default_rng([24, 5, int(-math.log10(spread)), int(offset)])
    for trial in range(6):
        d = int(rng.integers(1, 12))
        X, Q = cluster_case(rng, d, spread, offset, 0)
        dist, idx = eng.nearest(X, Q)
        ref = brute(X, Q)
        tol = 4 * (d + 3) * U
        assert np.all(np.abs(dist - ref) <= tol * ref), (d, dist / np.where(ref > 0, ref, 1))
        # the returned row is at the returned distance, and a nearest one up to rounding
        again = np.linalg.norm(Q - X[idx], axis=1)
        assert np.all(np.abs(again - dist) <= 4 * U * dist)
        assert np.all(dist[-2:] == 0.0)                    # rows of X are at distance 0


@pytest.mark.parametrize("scale", [-1000, -600, 0, 600, 1000])
def test_public_nn_matches_brute_force_at_every_magnitude(scale):
    """``hull_distance(...).nn`` at spreads down to 1e-10 s and data near the float limits.

    The stated bound: ``nn* (1 - g) <= nn <= (nn* + 2 e)(1 + g)``, ``e`` the frame's rounding
    ``2 sqrt(d) u (||x - c||_inf + s)``; in practice exact to a few ulps (checked too).
    """
    from mc_hull.solvers.certificates import Frame

    rng = np.random.default_rng([24, 5, scale + 2000])
    exact = total = 0
    for trial in range(8):
        d = int(rng.integers(2, 9))
        spread = float(10.0 ** -rng.integers(3, 11))
        X, Q = cluster_case(rng, d, spread, float(rng.choice([1.0, 30.0])), scale, n_cluster=60)
        nn = mc_hull.hull_distance(X, Q).nn
        ref = brute(X, Q)
        fr = Frame.of(X)
        s = fr.data_scale()
        e = 2 * math.sqrt(d) * U * (np.max(np.abs(Q - np.ldexp(fr.centre, fr.pre)), axis=1) + s)
        g = (d + 2) * U
        sub = 4 * 2.0 ** -1074             # distances below 2^-1022 have only absolute precision
        assert np.all(nn >= ref * (1 - g) - sub) and np.all(nn <= (ref + 2 * e) * (1 + g) + sub)
        close = np.abs(nn - ref) <= 64 * U * ref + sub
        exact += int(close.sum())
        total += len(ref)
        assert np.all(nn[ref == 0] == 0.0)
    assert exact >= 0.95 * total, (exact, total)


def test_nearest_in_many_blocks_and_with_ties():
    """Many score blocks (B x N above one block), duplicated rows and exact ties."""
    rng = np.random.default_rng(2405)
    c = np.full(4, 7.0)
    base = c + 1e-9 * rng.standard_normal((1500, 4))
    X = np.vstack([base, base[:300], rng.standard_normal((1200, 4))])     # duplicates
    Q = np.vstack([c + 1e-9 * rng.standard_normal((2000, 4)), X[::97]])
    dist, idx = eng.nearest(X, Q)
    ref = brute(X, Q)
    assert np.all(np.abs(dist - ref) <= 4 * 7 * U * ref)
    # of two rows at the same computed distance the lower index is returned
    dup = np.flatnonzero(np.all(Q[:, None, :] == X[None, 1500:1800], axis=2).any(axis=1))
    assert np.all(idx[dup] < 1500)


def test_expanded_scores_alone_would_fail_here():
    """The construction is hard: ranking by the expanded score alone is far off (what the fix repairs)."""
    rng = np.random.default_rng(11)
    d = 6
    c = rng.standard_normal(d) * 1e3
    X = np.vstack([c + 1e-9 * rng.standard_normal((400, d)), -c])
    Q = c + 1e-9 * rng.standard_normal((50, d)) * 0.5
    scores = np.einsum("ij,ij->i", X, X)[None, :] - 2.0 * Q @ X.T
    naive = np.linalg.norm(Q - X[scores.argmin(axis=1)], axis=1)
    ref = brute(X, Q)
    assert np.max(naive / ref) > 2.0                      # the old ranking picks a wrong row
    assert np.allclose(eng.nearest(X, Q)[0], ref, rtol=64 * U, atol=0)
