"""Tests for the exact uniform-ball curve p(d, N) (mc_hull.theory.ball)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy.optimize import linprog
from scipy.special import gammaln

from mc_hull.theory.ball import (
    D_MAX,
    _angle_table,
    ball_inside_probability,
    ball_inside_probability_mp,
    ball_n_at_probability,
    ball_n_half,
)


def kingman_ratio(d: int) -> float:
    """E vol(conv of d+1 uniform points in B^d) / vol(B^d) (Kingman 1969)."""
    def lbinom(n, k):
        return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
    m = d + 1
    return math.exp(m * lbinom(m, m / 2) - d * math.log(2) - lbinom(m * m, m * m / 2))


def uniform_ball(rng, size, d):
    g = rng.standard_normal((size, d))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    return g * rng.random((size, 1)) ** (1.0 / d)


def in_hull_lp(points: np.ndarray, x: np.ndarray) -> bool:
    """Feasibility of lam >= 0, sum lam = 1, points.T lam = x."""
    n = points.shape[0]
    a_eq = np.vstack([points.T, np.ones((1, n))])
    b_eq = np.concatenate([x, [1.0]])
    res = linprog(np.zeros(n), A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    assert res.status in (0, 2), res.message
    return res.status == 0


def wilson(k: int, n: int, z: float = 2.5758293035489) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def test_d1_closed_form():
    ns = np.array([2, 3, 9, 100, 12345, 1e9, 1e15])
    np.testing.assert_allclose(ball_inside_probability(1, ns), (ns - 1) / (ns + 1), rtol=0, atol=1e-13)
    assert ball_inside_probability(1, 9) == pytest.approx(0.8, abs=1e-14)


def test_types_and_shapes():
    assert isinstance(ball_inside_probability(3, 10), float)
    assert isinstance(ball_inside_probability(3, np.int64(10)), float)
    out = ball_inside_probability(3, [[4, 5], [6, 7]])
    assert isinstance(out, np.ndarray) and out.shape == (2, 2)
    assert out[0, 0] == ball_inside_probability(3, 4)


@pytest.mark.parametrize("d", [1, 2, 5, 17, 40])
def test_n_at_most_d_is_zero(d):
    assert ball_inside_probability(d, 0) == 0.0
    assert ball_inside_probability(d, d) == 0.0
    np.testing.assert_array_equal(ball_inside_probability(d, np.arange(d + 1)), 0.0)


def test_kingman_exact_small_d():
    assert ball_inside_probability(2, 3) == pytest.approx(35 / (48 * math.pi**2), abs=1e-14)
    assert ball_inside_probability(3, 4) == pytest.approx(9 / 715, abs=1e-14)


@pytest.mark.parametrize("d", range(1, D_MAX + 1))
def test_simplex_is_kingman(d):
    # P(x in a random simplex) = E vol / vol(B^d); at large d both are tiny, the absolute
    # error of 1 - E f_0/(N+1) is what is promised (plus relative agreement while measurable).
    p = ball_inside_probability(d, d + 1)
    k = kingman_ratio(d)
    assert abs(p - k) < 1e-13
    if d <= 8:
        assert p == pytest.approx(k, rel=1e-9)


def test_renyi_sulanke_disc():
    # E f_0(P_n) ~ 2 (2/3)^(1/3) Gamma(5/3) pi^(2/3) n^(1/3) for n uniform points in the disc
    c = 2 * (2 / 3) ** (1 / 3) * math.gamma(5 / 3) * math.pi ** (2 / 3)
    ratios = []
    for n in (1e3, 1e6, 1e9, 1e12):
        f0 = (1 - ball_inside_probability(2, n - 1)) * n
        ratios.append(f0 / (c * n ** (1 / 3)))
    assert ratios[0] == pytest.approx(1, abs=1e-2)
    assert ratios[-1] == pytest.approx(1, abs=1e-6)
    assert np.all(np.diff(np.abs(np.array(ratios) - 1)) < 0)  # converging


@pytest.mark.parametrize("d", [2, 3, 4, 7, 12, 20, 31, 40])
def test_monotone_in_n(d):
    ns = np.unique(np.round(np.logspace(math.log10(d + 1), 15, 60)))
    p = ball_inside_probability(d, ns)
    assert np.all((p >= 0) & (p <= 1))
    assert np.all(np.diff(p) > -2e-13)  # float-path noise near p = 0 at d ~ 40
    assert p[-1] > p[0]


@pytest.mark.parametrize("d,expected,rel", [(4, 225, 0.005), (8, 9.8e4, 0.01), (12, 7.8e7, 0.01),
                                            (20, 1.9e14, 0.03)])
def test_n_half_landmarks(d, expected, rel):
    n = ball_n_half(d)
    assert n == pytest.approx(expected, rel=rel)
    assert ball_inside_probability(d, n) == pytest.approx(0.5, abs=1e-10)


def test_n_half_d1_and_inverse():
    assert ball_n_half(1) == pytest.approx(3.0, rel=1e-10)
    for d, p in [(3, 0.1), (6, 0.9), (25, 0.5)]:
        n = ball_n_at_probability(d, p)
        assert ball_inside_probability(d, n) == pytest.approx(p, abs=1e-10)


def test_bf_line():
    # N = 2^(d/2)/d is <= d for 2 <= d <= 16 (p = 0) and gives p ~ 1e-13..1e-12 for d = 20..40
    for d in range(2, 17):
        assert ball_inside_probability(d, 2 ** (d / 2) / d) == 0.0
    for d in range(20, 41):
        p = ball_inside_probability(d, 2 ** (d / 2) / d)
        assert 1e-14 < p < 1e-10, (d, p)


def test_angle_table_sane():
    table = _angle_table()
    for d in range(1, D_MAX + 1):
        j = table[d]
        ms = np.arange(d, 0, -2)[::-1]
        assert np.all(j[ms] > 0)
        if d % 2:
            assert j[1] == 1.0 and (d < 3 or j[3] == pytest.approx(0.5, rel=1e-15))
        else:
            assert j[2] == 1.0
        assert np.all(np.diff(j[ms]) < 0) or len(ms) == 1


def test_errors():
    for bad_d in (0, 41, 2.5, "3", True):
        with pytest.raises(ValueError, match="d must"):
            ball_inside_probability(bad_d, 10)
    for bad_n in (-1, float("nan"), float("inf"), 1e41):
        with pytest.raises(ValueError, match="N must"):
            ball_inside_probability(3, bad_n)
    with pytest.raises(ValueError, match="N must"):
        ball_inside_probability(3, [10, -2])
    for bad_p in (0, 1, -0.1, 1.5):
        with pytest.raises(ValueError, match="p must"):
            ball_n_at_probability(3, bad_p)
    with pytest.raises(ValueError, match="not reached"):
        ball_n_at_probability(40, 0.999)


def test_speed():
    ball_inside_probability(40, 1e6)  # warm-up (table load)
    ns = np.logspace(math.log10(41), 15, 50)
    t0 = time.perf_counter()
    for n in ns:
        ball_inside_probability(40, n)
    per_value = (time.perf_counter() - t0) / len(ns)
    assert per_value < 0.03  # ~3 ms measured on an idle core; slack for a busy machine


@pytest.mark.parametrize("d,n", [(2, 20), (3, 40), (4, 225), (5, 200)])
def test_lp_monte_carlo(d, n):
    rng = np.random.default_rng(1000 * d + n)
    trials = 500
    hits = sum(in_hull_lp(uniform_ball(rng, n, d), uniform_ball(rng, 1, d)[0]) for _ in range(trials))
    lo, hi = wilson(hits, trials)
    p = ball_inside_probability(d, n)
    assert lo <= p <= hi, (hits, trials, p)


@pytest.mark.parametrize("d,n", [(12, 1e8), (20, 2**10 / 20), (40, 41)])
def test_float_path_matches_mpmath_path(d, n):
    assert ball_inside_probability(d, n) == pytest.approx(ball_inside_probability_mp(d, n), abs=1.5e-13)


def test_mp_path_near_zero():
    # simplex in B^10: Kingman's ratio, resolved far below the float path's noise
    assert ball_inside_probability_mp(10, 11) == pytest.approx(kingman_ratio(10), rel=1e-12)
    assert 1e-13 < ball_inside_probability_mp(20, 2**10 / 20) < 1e-12
