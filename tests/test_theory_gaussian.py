"""Exact Gaussian p(d, N) and the BF line: closed forms, mpmath reference, Monte Carlo LP check."""

from __future__ import annotations

import math
from functools import lru_cache

import mpmath as mp
import numpy as np
import pytest
from scipy.optimize import linprog
from scipy.stats import norm

from mc_hull.theory.bf import bf_threshold
from mc_hull.theory.gaussian import (
    _log_simplex_constants,
    gaussian_inside_probability,
    gaussian_n_half,
    n_at_probability,
)

# ---------------------------------------------------------------- BF line


def test_bf_threshold_scalar_and_array():
    assert bf_threshold(2) == 1.0
    assert bf_threshold(10) == pytest.approx(3.2)
    assert isinstance(bf_threshold(4), float)
    out = bf_threshold(np.array([2, 4, 64]))
    np.testing.assert_allclose(out, [1.0, 1.0, 2.0**32 / 64])


# ---------------------------------------------------------------- closed forms


@pytest.mark.parametrize("n", [1, 2, 3, 7.5, 100, 12345, 1e9, 1e12])
def test_d1_is_wendel(n):
    assert gaussian_inside_probability(1, n) == pytest.approx((n - 1) / (n + 1), abs=1e-12)


def test_simplex_constants_closed_forms():
    g = np.exp(_log_simplex_constants())
    assert g[0] == pytest.approx(1.0, rel=1e-12)
    assert g[1] == pytest.approx(0.5, rel=1e-12)
    assert g[2] == pytest.approx(1 / 6, rel=1e-12)  # orthant, correlation -1/2
    assert g[3] == pytest.approx(1 / 8 + 3 * math.asin(-1 / 3) / (4 * math.pi), rel=1e-12)


def test_small_simplices_closed_forms():
    # p(2,3) = 1 - 3 g_2(1/2), g_2(1/2) = 1/4 + asin(1/3)/(2 pi)
    assert gaussian_inside_probability(2, 3) == pytest.approx(
        1 - 3 * (0.25 + math.asin(1 / 3) / (2 * math.pi)), abs=1e-13
    )
    # p(3,4) = 1 - 2 (g_2(1/3) + g_4(1)), g_2(1/3) = 1/4 + asin(1/4)/(2 pi), g_4(1) = 1/5
    assert gaussian_inside_probability(3, 4) == pytest.approx(
        1 - 2 * (0.25 + math.asin(0.25) / (2 * math.pi) + 0.2), abs=1e-13
    )


@pytest.mark.parametrize("d", [2, 3, 7, 20, 64])
def test_at_most_d_points_never_contain(d):
    assert gaussian_inside_probability(d, np.arange(1, d + 1)).tolist() == [0.0] * d
    # continuous in N at N = d: the formula gives P(out) = 1 there
    assert gaussian_inside_probability(d, d + 1e-9) < 1e-9


@pytest.mark.parametrize("d", [2, 5, 13, 40, 64])
def test_monotone_in_n(d):
    ns = np.logspace(math.log10(d), 12, 600)
    p = gaussian_inside_probability(d, ns)
    assert np.all(np.diff(p) > -1e-12)
    assert np.all((p >= 0) & (p <= 1))


def test_vectorised_matches_scalar_and_keeps_shape():
    ns = np.array([[5.0, 17.0, 1e3], [2.5e4, 1e8, 1e12]])
    out = gaussian_inside_probability(7, ns)
    assert out.shape == ns.shape
    for idx in np.ndindex(ns.shape):
        assert out[idx] == pytest.approx(gaussian_inside_probability(7, float(ns[idx])), abs=1e-14)
    assert isinstance(gaussian_inside_probability(7, 100), float)
    assert gaussian_inside_probability(7, [100, 200]).shape == (2,)


# ---------------------------------------------------------------- 50% points, BF line


@pytest.mark.parametrize(
    "d, expected",
    [(1, 3.0), (2, 10.36), (4, 62.24), (8, 1083.2), (10, 3933.1), (12, 13607), (16, 1.4823e5),
     (20, 1.4885e6), (30, 3.899e8)],
)
def test_n_half_values(d, expected):
    n = gaussian_n_half(d)
    assert n == pytest.approx(expected, rel=2e-3)
    assert gaussian_inside_probability(d, n) == pytest.approx(0.5, abs=1e-9)


@pytest.mark.parametrize("d, p", [(3, 0.01), (8, 0.05), (16, 0.95), (25, 0.3)])
def test_n_at_probability_round_trip(d, p):
    n = n_at_probability(d, p)
    assert d < n <= 1e12
    assert gaussian_inside_probability(d, n) == pytest.approx(p, abs=1e-9)


def test_bf_line_is_far_below_half():
    for d in range(2, 65):
        n = max(bf_threshold(d), 1.0)
        assert gaussian_inside_probability(d, n) < 2e-6, d


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("d", [0, 65, -1, 2.5, "3", None, True, float("nan")])
def test_bad_d(d):
    with pytest.raises(ValueError, match="d must be"):
        gaussian_inside_probability(d, 10)
    with pytest.raises(ValueError, match="d must be"):
        gaussian_n_half(d)


@pytest.mark.parametrize("n", [0, 0.5, -3, 1e12 * 1.001, float("nan"), float("inf"), [10, 0], "x", True])
def test_bad_n(n):
    with pytest.raises(ValueError, match="n must be"):
        gaussian_inside_probability(5, n)


@pytest.mark.parametrize("p", [0, 1, -0.1, 1.5, float("nan"), "0.5", None])
def test_bad_p(p):
    with pytest.raises(ValueError, match="p must be"):
        n_at_probability(5, p)


def test_answer_beyond_supported_n():
    with pytest.raises(ValueError, match="beyond N = 1e"):
        gaussian_n_half(64)


# ---------------------------------------------------------------- Monte Carlo (independent LP membership)


def _in_hull_lp(points: np.ndarray, x: np.ndarray) -> bool:
    n = points.shape[0]
    a_eq = np.vstack([points.T, np.ones((1, n))])
    b_eq = np.concatenate([x, [1.0]])
    res = linprog(np.zeros(n), A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    assert res.status in (0, 2), res.message
    return res.status == 0


def _wilson(k: int, n: int, z: float):
    phat = k / n
    den = 1 + z * z / n
    mid = (phat + z * z / (2 * n)) / den
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / den
    return mid - half, mid + half


@pytest.mark.parametrize("d, n, trials", [(2, 10, 800), (3, 30, 800), (5, 150, 600)])
def test_monte_carlo_agrees(d, n, trials):
    rng = np.random.default_rng(20240917 + 100 * d + n)
    hits = sum(_in_hull_lp(rng.standard_normal((n, d)), rng.standard_normal(d)) for _ in range(trials))
    lo, hi = _wilson(hits, trials, norm.ppf(0.995))
    assert lo <= gaussian_inside_probability(d, n) <= hi, (hits, trials)


# ---------------------------------------------------------------- independent mpmath reference
# Integrands are evaluated in mpmath (no cancellation or overflow issues); the integrals use a
# composite 12-point Gauss-Legendre rule on fixed panels (much faster than mp.quad's adaptive
# escalation, which matters: complex mp.erfc costs ~1 ms), with panels reaching far past the
# integrands' support so truncation is negligible.  Agreement with the module is ~1e-13.

_DPS = 20
_GL_X, _GL_W = np.polynomial.legendre.leggauss(12)


def _mp_panels(f, edges):
    total = mp.mpf(0)
    for a, b in zip(edges[:-1], edges[1:]):
        half, mid = (b - a) / 2, (a + b) / 2
        total += half * mp.fsum(w * f(mid + half * x) for x, w in zip(_GL_X, _GL_W))
    return total


def _mp_phi(w):
    return mp.erfc(-w / mp.sqrt(2)) / 2


@lru_cache(maxsize=None)
def _mp_simplex_constant(k: int):
    """g_k(-1/(k+1)) = int Phi(i a z)^k phi(z) dz, a = 1/sqrt(k+1), on the line Im z = c*."""
    if k == 0:
        return mp.mpf(1)
    with mp.workdps(_DPS):
        a = 1 / mp.sqrt(k + 1)
        c = mp.findroot(lambda c: c - k * a * mp.npdf(-a * c) / mp.ncdf(-a * c), 1.5 * math.sqrt(k))
        f = lambda t: mp.re(_mp_phi(1j * a * mp.mpc(t, c)) ** k * mp.exp(-mp.mpc(t, c) ** 2 / 2))  # noqa: E731
        edges = np.linspace(-8, 8, 9) * math.sqrt(k + 1)
        return _mp_panels(f, [mp.mpf(e) for e in edges]) / mp.sqrt(2 * mp.pi)


@pytest.mark.parametrize("k", [4, 9])
def test_mp_contour_matches_real_axis_integral(k):
    # the shifted contour is legitimate: compare with the oscillating real-axis integral
    with mp.workdps(30):
        a = 1 / mp.sqrt(k + 1)
        f = lambda z: mp.re(_mp_phi(1j * a * z) ** k) * mp.npdf(z)  # noqa: E731
        edges = np.linspace(-12, 12, 33) * math.sqrt(k + 1)
        real_axis = _mp_panels(f, [mp.mpf(e) for e in edges])
    assert abs(_mp_simplex_constant(k) / real_axis - 1) < 1e-12


@pytest.mark.parametrize("k", [5, 17, 32, 49, 63])
def test_simplex_constants_match_mpmath(k):
    assert abs(math.exp(_log_simplex_constants()[k]) / float(_mp_simplex_constant(k)) - 1) < 1e-11


def _mp_log_g_positive(m, r):
    """log E[Phi(sqrt(r) Z)^m] on panels around the mode of the (log-concave) integrand."""
    with mp.workdps(_DPS):
        m, r = mp.mpf(m), mp.mpf(r)
        q = mp.sqrt(r)
        dlog = lambda z: m * q * mp.npdf(q * z) / mp.ncdf(q * z) - z  # noqa: E731
        lo, hi = mp.mpf(-10), mp.mpf(100)
        for _ in range(50):  # bisection: dlog is decreasing
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if dlog(mid) > 0 else (lo, mid)
        z0 = (lo + hi) / 2
        y = q * z0
        lam = mp.npdf(y) / mp.ncdf(y)
        s = 1 / mp.sqrt(1 + m * r * lam * (y + lam))

        def log_f(z):
            y = q * z  # log Phi(y), keeping relative precision where Phi(y) ~ 1 and m ~ 1e12
            return m * (mp.log1p(-mp.ncdf(-y)) if y > 0 else mp.log(mp.ncdf(y))) - z * z / 2

        top = log_f(z0)
        js = [-12, -8, -6, -4, -3, -2, -1, 0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192]
        edges = [z0 + s * j for j in js]
        assert log_f(edges[0]) - top < -60 and log_f(edges[-1]) - top < -60
        total = _mp_panels(lambda z: mp.exp(log_f(z) - top), edges)
        return top + mp.log(total) - mp.log(2 * mp.pi) / 2


def _mp_inside(d: int, n: float):
    with mp.workdps(_DPS):
        n = mp.mpf(n)
        outside = mp.mpf(0)
        for k in range(d - 1, -1, -2):
            log_b = mp.log(mp.binomial(n, k)) + mp.log(_mp_simplex_constant(k))
            outside += mp.exp(log_b + _mp_log_g_positive(n - k, mp.mpf(1) / (k + 1)))
        return 1 - 2 * outside


@pytest.mark.parametrize(
    "d, n",
    [(1, 1e12), (2, 7.5), (3, 5), (5, 150), (9, 10), (10, 3933), (12, 1e12), (20, 1.5e6),
     (30, 3.9e8), (40, 1e11), (64, 65.5), (64, 1e12)],
)
def test_matches_mpmath_reference(d, n):
    ref = _mp_inside(d, n)
    # spec: 1e-9; observed agreement is ~3e-14, so guard with a tighter bound
    assert abs(gaussian_inside_probability(d, n) - float(ref)) < 1e-11, float(ref)
