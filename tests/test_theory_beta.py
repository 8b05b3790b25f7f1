"""Exact p(d, N) for the beta and beta' (Student-t) laws (mc_hull.theory.beta), against an
independent mpmath evaluation of the Kabluchko–Thäle–Zaporozhets formulas and against the
curves they must reduce to."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy.special import betaincinv

from mc_hull import theory
from mc_hull.errors import InputError
from mc_hull.theory import beta as B
from mc_hull.theory.ball import ball_inside_probability
from mc_hull.theory.gaussian import gaussian_inside_probability

mp = pytest.importorskip("mpmath")


# -- the independent reference: the formulas in the angle y, mpmath --------------------------------
# With h = cos y (beta) or h = cot y (beta'), y in (0, π), I_{n,k} = ∫ c(p_k) sin^(p_k) y F^(n-k) dy,
# p_k = α k + δ (δ = 0 beta, -1 beta'); the marginal's tail G(y) = ∫_0^y c(p_1) sin^(p_1) is
# ½ I_{sin² y}((p_1 + 1)/2, ½) for y <= π/2 (no 1 - x cancellation near the tail, which in the
# paper's variable h costs 1e-6 relative at N = 1e12). The code under test integrates in
# u = log G with Gauss-Legendre in floats and gets its J_k from Legendre integration matrices:
# this reference shares only the formulas.
def _ref_parts(family: str, alpha):
    delta = 0 if family == "beta" else -1
    p1 = alpha + delta

    def c(p):
        return mp.gamma(p / 2 + 1) / (mp.sqrt(mp.pi) * mp.gamma((p + 1) / 2))

    def weight(k, y):
        p = alpha * k + delta
        return c(p) * mp.sin(y) ** p

    def log_cdf(y):  # log F(y), F = mass of (y, π)
        half = mp.betainc((p1 + 1) / 2, mp.mpf(1) / 2, 0, mp.sin(y) ** 2, regularized=True) / 2
        return mp.log1p(-half) if y <= mp.pi / 2 else mp.log(half)

    def y_s(n):  # where G = 1/n (a breakpoint: float accuracy is enough)
        x = betaincinv(float(p1 + 1) / 2, 0.5, min(1.0, 2.0 / float(n)))
        return mp.asin(mp.sqrt(mp.mpf(x)))

    return weight, log_cdf, y_s, p1


def _ref_integral(family, alpha, n, k, parts):
    """I_{n,k}(alpha) by 24-point Gauss-Legendre on intervals half an octave wide around y_s(n)
    (mp.quad's tanh-sinh returned values off by up to 1e-4 relative here without notice)."""
    weight, log_cdf, y_s, p1 = parts
    ys = y_s(n)
    # F^(n-k) ~ exp(-(y / y_s)^(p1 + 1)) cuts the integrand above y_s; below, it is ~ y^(p_k)
    pts = [mp.mpf(0)] + [ys * mp.mpf(2) ** (j / 2) for j in range(-16, 400)]
    pts = [y for y in pts if y < mp.pi / 2] + [mp.pi / 2]
    pts += [mp.pi - (mp.pi / 2) * mp.mpf(2) ** (-j) for j in range(1, 12)] + [mp.pi]
    x, w = np.polynomial.legendre.leggauss(24)  # nodes to 1e-16: the rule's error is ~1e-16 relative
    total = mp.mpf(0)
    for a, b in zip(pts[:-1], pts[1:]):
        half = (b - a) / 2
        total += half * mp.fsum(mp.mpf(wi) * weight(k, a + (mp.mpf(xi) + 1) * half)
                                * mp.exp((n - k) * log_cdf(a + (mp.mpf(xi) + 1) * half)) for xi, wi in zip(x, w))
    return total


def reference_angles(family, alpha, m_max, parts):
    """J_m by the recursion J_m = 1 - 2/(m+1) Σ_j C(m+1, j) I_{m+1,j} J_j (in h, mp.quad)."""
    out = {}
    for m in range(1, m_max + 1):
        tot = mp.mpf(0)
        for j in range(m - 2, 0, -2):
            tot += mp.binomial(m + 1, j) * _ref_integral(family, alpha, m + 1, j, parts) * out[j]
        out[m] = 1 - 2 * tot / (m + 1)
    return out


def _binomial(n, k):
    """C(n, k) as a product (mp.binomial goes through gamma functions of n ~ 1e12 and loses
    about 13 digits to their ratio)."""
    return mp.fprod(n - j for j in range(k)) / mp.factorial(k)


def reference_p(family, alpha, d, n_points, dps=18):
    """p(d, N) = 1 - E f_0(P_{N+1})/(N+1), everything in mpmath."""
    with mp.workdps(dps):
        alpha = mp.mpf(alpha)
        parts = _ref_parts(family, alpha)
        angles = reference_angles(family, alpha, d, parts)
        out = []
        for n_train in n_points:
            n = mp.mpf(n_train) + 1
            ef0 = 2 * mp.fsum(_binomial(n, k) * _ref_integral(family, alpha, n, k, parts) * angles[k]
                              for k in range(d, 0, -2))
            out.append(float(1 - ef0 / n))
        return out


CASES = [  # (distribution, params, family, alpha, d, N)
    ("student-t", {"df": 1.0}, "betap", 1.0, 3, (4, 1e6)),
    ("student-t", {"df": 3.0}, "betap", 3.0, 4, (200, 1e12)),
    ("student-t", {"df": 0.5}, "betap", 0.5, 2, (1e3,)),
    ("beta", {"beta": -0.5}, "beta", 4.0, 5, (6, 1e12)),
]


def test_against_independent_mpmath_evaluation():
    """Every case within 1e-9 absolute of the mpmath evaluation of the paper's formulas."""
    worst = 0.0
    for dist, params, family, alpha, d, ns in CASES:
        want = reference_p(family, alpha, d, ns)
        got = theory.exact_inside_probability(dist, d, np.array(ns, dtype=float), **params)
        err = np.abs(np.asarray(got) - np.asarray(want))
        worst = max(worst, float(err.max()))
        assert err.max() < 1e-9, (dist, params, d, ns, got, want)
        assert all(0.0 <= w <= 1.0 for w in want)
    print(f"max abs error vs mpmath: {worst:.2e}")


# -- reductions that could fail -------------------------------------------------------------------
@pytest.mark.parametrize("dist,params", [("student-t", {"df": 0.5}), ("student-t", {"df": 3}),
                                         ("student-t", {"df": 1e4}), ("beta", {"beta": -0.9}),
                                         ("beta", {"beta": 2.5}), ("ball", {})])
def test_one_dimension_is_n_minus_one_over_n_plus_one(dist, params):
    n = np.array([1.0, 1.5, 2, 3, 10, 1e3, 1e6, 1e12])
    got = theory.exact_inside_probability(dist, 1, n, **params)
    assert np.allclose(got, (n - 1) / (n + 1), atol=1e-12, rtol=0)


@pytest.mark.parametrize("d", [2, 3, 5, 8, 13, 21, 40])
def test_beta_zero_is_the_ball(d):
    n = np.array([d + 0.5, d + 1, 2 * d, 10 * d, 1e4, 1e8, 1e12, 1e20])
    got = theory.exact_inside_probability("beta", d, n, beta=0.0)
    want = ball_inside_probability(d, n)
    assert np.abs(got - want).max() < 1e-11


@pytest.mark.parametrize("d", [2, 4, 7, 12])
def test_student_t_tends_to_the_gaussian(d):
    """|p_t - p_Gauss| shrinks like 1/df (ratio ~10 per decade of df) and is small at df = 1e4."""
    n = np.array([d + 1, 3 * d, 30 * d, 1e4, 1e7])
    g = gaussian_inside_probability(d, n)
    e3 = np.abs(theory.exact_inside_probability("student-t", d, n, df=1e3) - g).max()
    e4 = np.abs(theory.exact_inside_probability("student-t", d, n, df=1e4) - g).max()
    assert e4 < 1e-3
    assert 6 < e3 / e4 < 14
    # and large beta (a Gaussian of sd 1/sqrt(2 beta) in the limit) agrees with both
    b4 = theory.exact_inside_probability("beta", d, n, beta=1e4)
    assert np.abs(b4 - g).max() < 1e-3


def test_heavier_tails_need_fewer_points():
    """At fixed d, N½ increases with df (Cauchy < t3 < t30 < Gaussian) and with beta."""
    d = 6
    halves = [theory.exact_n_half("student-t", d, df=df) for df in (0.5, 1, 3, 30)] + [theory.exact_n_half("gaussian", d)]
    assert all(a < b for a, b in zip(halves, halves[1:])), halves
    betas = [theory.exact_n_half("beta", d, beta=b) for b in (-0.5, 0, 1, 10)]
    assert all(a > b for a, b in zip(betas, betas[1:])), betas  # mass near the sphere: more points
    for h, df in zip(halves, (0.5, 1, 3, 30)):
        assert theory.exact_inside_probability("student-t", d, h, df=df) == pytest.approx(0.5, abs=1e-9)


def test_monotone_and_bounded_in_n():
    for dist, params in (("student-t", {"df": 1}), ("beta", {"beta": -0.5}), ("student-t", {"df": 100})):
        for d in (3, 9, 20):
            n = np.unique(np.concatenate([np.linspace(d, d + 3, 13), np.logspace(np.log10(d + 3), 12, 40)]))
            p = theory.exact_inside_probability(dist, d, n, **params)
            assert np.all(np.diff(p) >= -1e-12) and p.min() >= 0 and p.max() <= 1
            assert p[0] == 0.0


def test_ranges_refused_in_one_line():
    for call in (lambda: theory.exact_inside_probability("student-t", 3, 10, df=0.1),
                 lambda: theory.exact_inside_probability("student-t", 3, 10, df=2e4),
                 lambda: theory.exact_inside_probability("student-t", 3, 10, df=float("nan")),
                 lambda: theory.exact_inside_probability("student-t", 3, 10, nu=3),
                 lambda: theory.exact_inside_probability("beta", 3, 10, beta=-1.0),
                 lambda: theory.exact_inside_probability("beta", 65, 10, beta=0.0),
                 lambda: theory.exact_inside_probability("beta", 0, 10),
                 lambda: theory.exact_inside_probability("beta", 2.5, 10),
                 lambda: theory.exact_inside_probability("ball", 3, -1),
                 lambda: theory.exact_inside_probability("ball", 3, 1e41),
                 lambda: theory.exact_inside_probability("gaussian", 3, 10, df=3),
                 lambda: theory.exact_n_half("student-t", 3, df=True)):
        with pytest.raises(InputError) as info:
            call()
        assert "\n" not in str(info.value) and str(info.value)
    assert not theory.has_exact("student-t", 3, df=0.1)
    assert theory.has_exact("student-t", 64, df=0.5) and theory.has_exact("beta", 64, beta=-0.95)
    assert theory.exact_inside_probability("cube", 3, 10) is None and not theory.has_exact("cube")


def test_milliseconds_per_value_once_tables_are_cached():
    """The per-value cost is milliseconds (tables cached); measured as a ratio to the Gaussian's
    own evaluation in the same process, which is documented at about 1 ms per value."""
    n = np.logspace(1.5, 12, 60)
    theory.exact_inside_probability("student-t", 12, n[:2], df=3)  # warm the table
    t0 = time.perf_counter()
    theory.exact_inside_probability("student-t", 12, n, df=3)
    t_beta = time.perf_counter() - t0
    t0 = time.perf_counter()
    for v in n:
        gaussian_inside_probability(12, float(v))
    t_gauss = time.perf_counter() - t0
    assert t_beta < 20 * t_gauss + 0.05, (t_beta, t_gauss)


@pytest.mark.parametrize("dist,params,d,n", [("student-t", {"df": 1.0}, 2, 12), ("student-t", {"df": 3.0}, 3, 40),
                                             ("beta", {"beta": -0.5}, 2, 20), ("beta", {"beta": 2.0}, 3, 30)])
def test_qhull_vertex_counts_through_efron(dist, params, d, n):
    """Independent of the f-vector formulas: p = 1 - E f_0(conv of N + 1 draws)/(N + 1), with
    f_0 counted by Qhull on the samplers' own draws (3,000 hulls; within 4.5 standard errors)."""
    from scipy.spatial import ConvexHull

    from mc_hull.samplers import get_sampler

    sampler = get_sampler(dist, d, **params)
    rng = np.random.default_rng(2023)
    reps = 3000
    f0 = np.array([len(ConvexHull(sampler.random(n + 1, rng)).vertices) for _ in range(reps)], dtype=float)
    p_hat = 1 - f0.mean() / (n + 1)
    se = f0.std(ddof=1) / np.sqrt(reps) / (n + 1)
    exact = theory.exact_inside_probability(dist, d, n, **params)
    assert abs(p_hat - exact) < 4.5 * se, (p_hat, exact, se)


def test_shipped_family_table_matches_the_curves():
    """data/n_half_families.csv (docs/make_transition.py; the N½ panels draw it) is the live N½."""
    table = theory.family_n_half_table()
    checks = [("gaussian", {}, "gaussian", 10), ("ball", {}, "ball", 30), ("beta", {"beta": -0.5}, "beta beta=-0.5", 12),
              ("student-t", {"df": 3.0}, "student-t df=3", 64), ("student-t", {"df": 1.0}, "student-t df=1", 5)]
    for dist, params, label, d in checks:
        assert table[(label, d)] == pytest.approx(theory.exact_n_half(dist, d, **params), rel=1e-6)
    assert table[("gaussian", 50)] is None  # above N = 1e12
    assert len({law for law, _ in table}) == 7 and all(2 <= d <= 64 for _, d in table)
