"""Clustered intervals: coverage by simulation of a cheap model of queries sharing a training set."""

from __future__ import annotations

import numpy as np
import pytest

from mc_hull.stats import intervals as stats


def simulate(rng, cells: int, R: int, K: int, rho: float, p_range=(0.03, 0.97)):
    """Per cell: true p, inside counts y (R,), trials m (R,).

    Each training set r has its own p_r ~ Beta with mean p and intra-set
    correlation rho (design effect 1 + (K - 1) rho); y_r ~ Binomial(K, p_r).
    """
    s = 1 / rho - 1
    p = rng.uniform(*p_range, cells)
    pr = rng.beta(p[:, None] * s, (1 - p[:, None]) * s, (cells, R))
    y = rng.binomial(K, pr)
    return p, y, np.full((cells, R), K)


def coverage(p, y, m):
    clustered = plain = 0
    for pi, yi, mi in zip(p, y, m):
        low, high, _ = stats.clustered_interval(yi, mi)
        clustered += low <= pi <= high
        wl, wh = stats.wilson(yi.sum(), mi.sum())
        plain += wl <= pi <= wh
    return clustered / len(p), plain / len(p)


@pytest.mark.parametrize("R, K, rho", [(10, 50, 0.1), (4, 30, 0.1), (20, 50, 0.3)])
def test_clustered_interval_covers_under_strong_between_set_variance(R, K, rho):
    rng = np.random.default_rng(20240 + R)
    clustered, plain = coverage(*simulate(rng, 400, R, K, rho))
    print(f"R={R} K={K} rho={rho}: clustered 99% coverage {clustered:.4f}, plain Wilson {plain:.4f}")
    assert clustered >= 0.98
    assert plain < 0.9  # plain Wilson treats correlated queries as independent and under-covers


def test_no_clustering_stays_close_to_wilson():
    rng = np.random.default_rng(5)
    p, y, m = simulate(rng, 400, 10, 50, 1e-4)
    clustered, plain = coverage(p, y, m)
    assert clustered >= 0.98 and plain >= 0.97
    # width penalty of the t critical value (9 df) stays moderate
    low, high, deff = stats.clustered_interval(y[0], m[0])
    wl, wh = stats.wilson(y[0].sum(), m[0].sum())
    assert deff < 2 and (high - low) < 2 * (wh - wl)


def test_design_effect_recovers_known_value():
    rng = np.random.default_rng(3)
    _, y, m = simulate(rng, 1, 4000, 50, 0.1, p_range=(0.5, 0.5))
    assert stats.design_effect(y[0], m[0]) == pytest.approx(1 + 49 * 0.1, rel=0.1)


def test_edge_cases():
    assert stats.design_effect([5], [10]) == 1.0                     # one cluster
    assert stats.design_effect([0, 0, 0], [10, 10, 10]) == 1.0       # p = 0
    low, high, deff = stats.clustered_interval([0] * 10, [10] * 10)
    assert low == 0 and 0 < high < 0.5 and deff == 1
    low, high, _ = stats.clustered_interval([7], [10])                # plain Wilson with one set
    assert (low, high) == pytest.approx(tuple(float(v) for v in stats.wilson(7, 10)))
    assert stats.halfwidth([], []) == float("inf")
    lo, hi = stats.wilson(np.array([0, 5]), np.array([0, 10]))
    assert np.isnan(lo[0]) and 0 < lo[1] < 0.5 < hi[1] < 1
    assert stats.t_value(0.99, np.inf) == pytest.approx(stats.z_value(0.99))
    assert stats.t_value(0.99, 3) > stats.z_value(0.99)
