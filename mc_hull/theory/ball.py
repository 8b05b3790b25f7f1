"""Exact p(d, N) for points uniform in the unit ball, via Efron's identity and beta-polytope f-vectors."""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.special import betainc, betaincinv, gammaln, logsumexp

D_MAX = 40
"""Largest dimension with tabulated angle constants."""

N_MAX = 1e40
"""Largest N accepted (accuracy is checked up to 1e15 in the tests; 50% points need more for d > 20)."""

_TABLE = Path(__file__).resolve().parent / "data" / "ball_angles.csv"
_GL_NODES = 16
_TAIL = 60.0  # upper cut: F^(n-k) <= exp(-(_TAIL + 3 k)) beyond it


@lru_cache(maxsize=None)
def _angle_table() -> dict[int, np.ndarray]:
    """d -> array J with J[m] = J_m(d) (zero where m has the wrong parity); see data/make_ball.py."""
    table: dict[int, np.ndarray] = {d: np.zeros(d + 1) for d in range(1, D_MAX + 1)}
    for line in _TABLE.read_text().splitlines():
        if not line or line.startswith("#") or line.startswith("d,"):
            continue
        d, m, value = line.split(",")
        table[int(d)][int(m)] = float(value)
    return table


@lru_cache(maxsize=None)
def _gauss_legendre(k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(k)


def _log_c1(g: np.ndarray | float) -> np.ndarray | float:
    """log c_{1,g}, c_{1,g} = Gamma(g + 3/2) / (sqrt(pi) Gamma(g + 1)): the density constant of
    (1 - h^2)^g on [-1, 1]."""
    return gammaln(np.asarray(g) + 1.5) - gammaln(np.asarray(g) + 1.0) - 0.5 * math.log(math.pi)


def _log_binom(n: float, k: np.ndarray) -> np.ndarray:
    """log C(n, k) for real n > k - 1 and small integer k, without lgamma(n) cancellation."""
    kmax = int(k.max())
    cum = np.concatenate([[0.0], np.cumsum(np.log(n - np.arange(kmax)))])
    return cum[k] - gammaln(k + 1.0)


def _mean_f0_over_n(d: int, n: float) -> float:
    """E f_0(P_n) / n for the convex hull P_n of n (real, > d) i.i.d. uniform points in B^d.

    Kabluchko–Thäle–Zaporozhets with beta = 0 (alpha = d):
    E f_0 = 2 sum_{s} C(n, k) I_{n,k}(d) J_k(d), k = d - 2s >= 1.
    I_{n,k} is integrated in y (h = cos y is the distance of the k-point hyperplane) after the
    change of variable w = (d + 1) log(y / y_s), where n G(y_s) = 1 (G the upper tail of the
    1-d marginal), with composite Gauss-Legendre, everything in log space.
    """
    alpha = float(d)
    a = (alpha + 1.0) / 2.0  # the 1-d marginal of beta(0) in R^d is 2 Beta(a, a) - 1
    ks = np.arange(d, 0, -2)
    js = _angle_table()[d][ks]
    # scale y_s and the cut y_c, from the exact tail: sin^2(y/2) = I^{-1}(a, a, q)
    y_s = 2.0 * math.asin(math.sqrt(betaincinv(a, a, min(0.5, 1.0 / n))))
    q_c = (_TAIL + 3.0 * ks.max()) / (n - ks.max())
    y_c = math.pi if q_c >= 0.5 else 2.0 * math.asin(math.sqrt(betaincinv(a, a, q_c)))
    w_hi = (alpha + 1.0) * math.log(y_c / y_s)
    # lower cut: integrand ~ exp(w (alpha k + 1)/(alpha + 1)), so exp(-42) relative is enough
    w_lo = -42.0 * (alpha + 1.0) / (alpha * ks.min() + 1.0)
    edges = [w_lo] + [e for e in (-24.0, -12.0, -6.0) if w_lo < e < w_hi]
    start = edges[-1]
    n_fine = max(1, math.ceil((w_hi - start) / 0.5))
    edges = np.concatenate([edges[:-1], np.linspace(start, w_hi, n_fine + 1)])
    x, wt = _gauss_legendre(_GL_NODES)
    lo, hi = edges[:-1, None], edges[1:, None]
    w = (lo + (x + 1.0) * (hi - lo) / 2.0).ravel()
    wq = (wt * (hi - lo) / 2.0).ravel()
    y = y_s * np.exp(w / (alpha + 1.0))
    y = np.minimum(y, math.pi)
    half = y <= math.pi / 2
    log_f = np.empty_like(y)
    log_f[half] = np.log1p(-betainc(a, a, np.sin(y[half] / 2.0) ** 2))
    with np.errstate(divide="ignore"):
        log_f[~half] = np.log(betainc(a, a, np.cos(y[~half] / 2.0) ** 2))
        log_sin = np.log(np.sin(y))
    # dy = y dw / (alpha + 1)
    base = np.log(wq) + np.log(y) - math.log(alpha + 1.0)
    log_terms = (_log_binom(n, ks)[:, None] + _log_c1((alpha * ks - 1.0) / 2.0)[:, None]
                 + alpha * ks[:, None] * log_sin[None, :]
                 + (n - ks)[:, None] * log_f[None, :] + base[None, :])
    log_ik = logsumexp(log_terms, axis=1)
    return float(2.0 * np.sum(np.exp(log_ik + np.log(js))) / n)


def _mean_f0_over_n_mp(d: int, n, dps: int) -> "mpmath.mpf":
    """Same as :func:`_mean_f0_over_n` in mpmath at ``dps`` digits (slow: ~1 s; reference path)."""
    import mpmath as mp
    from mpmath.calculus.quadrature import GaussLegendre

    with mp.workdps(dps):
        n = mp.mpf(n)
        alpha = mp.mpf(d)
        a = (alpha + 1) / 2
        table = _angle_table_mp()[d]
        ks = list(range(d, 0, -2))
        kmax = max(ks)
        y_s = 2 * mp.asin(mp.sqrt(betaincinv(float(a), float(a), min(0.5, 1.0 / float(n)))))
        q_c = (_TAIL + 3.0 * kmax) / (float(n) - kmax)
        y_c = mp.pi if q_c >= 0.5 else 2 * mp.asin(mp.sqrt(betaincinv(float(a), float(a), q_c)))
        w_hi = (alpha + 1) * mp.log(y_c / y_s)
        w_lo = -mp.mpf(42 + dps) * (alpha + 1) / (alpha * min(ks) + 1)
        edges = [w_lo] + [w_lo + (-6 - w_lo) * f for f in (0.5, 0.8, 0.9)] if w_hi > -6 else [w_lo]
        start = edges[-1]
        n_fine = max(1, int(mp.ceil((w_hi - start) / mp.mpf(0.25))))
        edges = edges[:-1] + [start + (w_hi - start) * i / n_fine for i in range(n_fine + 1)]
        base = GaussLegendre(mp.mp).calc_nodes(5, mp.mp.prec)
        logs = {k: [] for k in ks}
        lbin = {k: mp.log(mp.binomial(n, k)) for k in ks}
        lcw = {k: mp.log(mp.gamma((alpha * k - 1) / 2 + mp.mpf(3) / 2)
                         / (mp.sqrt(mp.pi) * mp.gamma((alpha * k - 1) / 2 + 1))) for k in ks}
        for lo, hi in zip(edges[:-1], edges[1:]):
            for x, wt in base:
                w = lo + (x + 1) * (hi - lo) / 2
                y = min(y_s * mp.exp(w / (alpha + 1)), mp.pi)
                if y >= mp.pi:
                    continue
                if y <= mp.pi / 2:
                    lf = mp.log1p(-mp.betainc(a, a, 0, mp.sin(y / 2) ** 2, regularized=True))
                else:
                    lf = mp.log(mp.betainc(a, a, 0, mp.cos(y / 2) ** 2, regularized=True))
                lb = mp.log(wt * (hi - lo) / 2) + mp.log(y) - mp.log(alpha + 1)
                ls = mp.log(mp.sin(y))
                for k in ks:
                    logs[k].append(lbin[k] + lcw[k] + alpha * k * ls + (n - k) * lf + lb)
        total = mp.fsum(table[k] * mp.fsum(mp.exp(v) for v in logs[k]) for k in ks)
        return 2 * total / n


@lru_cache(maxsize=None)
def _angle_table_mp() -> dict:
    import mpmath as mp

    table: dict = {d: {} for d in range(1, D_MAX + 1)}
    for line in _TABLE.read_text().splitlines():
        if line and line[0].isdigit():
            d, m, value = line.split(",")
            table[int(d)][int(m)] = mp.mpf(value)
    return table


def ball_inside_probability_mp(d, n, dps: int = 30) -> float:
    """:func:`ball_inside_probability` evaluated in mpmath (reference path, about a second).

    The float path has an absolute error of about 1e-13 near p = 0 for d ~ 40 (the 1-d marginal
    tail ``F`` from ``scipy.special.betainc`` carries ~4e-15 relative error, raised to the power
    N - k); this path resolves p down to ~1e-25 (limited by the 25-digit angle table). Needs mpmath.

    Parameters
    ----------
    d : int
        Dimension, ``1 <= d <= 40``.
    n : float
        Number of hull points, ``0 <= N <= 1e40``.
    dps : int
        Working decimal digits.

    Returns
    -------
    float
    """
    d = _check_d(d)
    n = float(n)
    _inside_scalar(d, n)  # validation
    if n <= d:
        return 0.0
    return float(1 - _mean_f0_over_n_mp(d, n + 1.0, dps))


def _check_d(d) -> int:
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)):
        raise ValueError(f"d must be an integer in [1, {D_MAX}], got {d!r}")
    if not 1 <= d <= D_MAX:
        raise ValueError(f"d must be in [1, {D_MAX}] (angle constants are tabulated up to {D_MAX}), got {d}")
    return int(d)


def _inside_scalar(d: int, n: float) -> float:
    if not math.isfinite(n) or n < 0:
        raise ValueError(f"N must be a finite number >= 0, got {n!r}")
    if n > N_MAX:
        raise ValueError(f"N must be <= {N_MAX:g}, got {n:g}")
    if n <= d:
        return 0.0
    p = 1.0 - _mean_f0_over_n(d, n + 1.0)
    return min(1.0, max(0.0, p))


def ball_inside_probability(d, n):
    r"""Exact probability that a uniform point of the unit ball lies in the hull of N others.

    ``p(d, N) = P(x in conv(X_1, ..., X_N))`` with ``x, X_1, ..., X_N`` i.i.d. uniform in the unit
    ball :math:`B^d`.

    Parameters
    ----------
    d : int
        Dimension, ``1 <= d <= 40``.
    n : float or array_like
        Number of hull points N, ``0 <= N <= 1e40``. ``N <= d`` gives exactly 0. Non-integer
        ``N > d`` are accepted and give the analytic continuation of the formula below (it is
        increasing, equals 0 at ``N = d`` and is what :func:`ball_n_half` solves).

    Returns
    -------
    float or ndarray
        ``p(d, N)``; a float for scalar ``n``, an array of ``n``'s shape otherwise.

    Notes
    -----
    Efron's identity (the new point is the (N+1)-th of N+1 exchangeable points) gives

    .. math:: 1 - p(d, N) = \frac{E f_0(P_{N+1})}{N+1},

    with :math:`f_0(P_n)` the number of vertices of the hull of n uniform points. The uniform ball
    is the beta distribution with beta = 0 (density proportional to (1-|x|^2)^beta), for which
    Kabluchko, Thäle & Zaporozhets, "Beta polytopes and Poisson polyhedra: f-vectors and angles",
    Adv. Math. 374 (2020), arXiv:1805.01338, Thm. 1.2, give (alpha = 2 beta + d = d)

    .. math::

        E f_0(P_n) = 2 \sum_{s \ge 0,\ k = d-2s \ge 1} \binom{n}{k} I_{n,k}(d)\, J_k(d),

        I_{n,k}(\alpha) = \int_{-1}^{1} c_{1,\frac{\alpha k - 1}{2}} (1-h^2)^{\frac{\alpha k-1}{2}}
                          F(h)^{n-k}\, dh,
        \qquad F(h) = \int_{-1}^{h} c_{1,\frac{\alpha-1}{2}} (1-t^2)^{\frac{\alpha-1}{2}} dt,

    :math:`c_{1,g} = \Gamma(g+3/2) / (\sqrt\pi\, \Gamma(g+1))`. :math:`I_{n,k}` is the expected
    external angle of P_n at the simplex of k given points times the indicator that it is a face;
    :math:`J_k(d) = k\, E\,\beta(\text{vertex}, [Z_1..Z_k])` is the expected sum of internal angles
    at the vertices of a simplex of k i.i.d. beta((d-k+1)/2) points in R^(k-1) (Kabluchko, "Angles
    of random simplices and face numbers of random polytopes", Adv. Math. 380 (2021); "Recursive
    scheme for angles of random simplices", arXiv:1907.07534). The J_k(d) come from the table
    ``data/ball_angles.csv`` written by ``data/make_ball.py`` (mpmath, 100 digits; they follow from
    the formula itself applied to the simplex of k+1 points, whose f_0 is k+1). All terms are
    positive; the N-dependence is evaluated in log space (binomials up to 1e600 times tiny
    integrals) with composite Gauss-Legendre quadrature. Absolute error: about 1e-15 for d <= 12 and up to
    ~1e-13 near p = 0 for d ~ 40 (the marginal tail from ``scipy.special.betainc`` carries ~4e-15
    relative error, raised to the power N - k); :func:`ball_inside_probability_mp` is a slow
    mpmath path that resolves p down to ~1e-25.

    Examples
    --------
    >>> round(ball_inside_probability(1, 9), 12)   # (N-1)/(N+1)
    0.8
    """
    d = _check_d(d)
    n_arr = np.asarray(n, dtype=np.float64)
    if n_arr.ndim == 0:
        return _inside_scalar(d, float(n_arr))
    flat = n_arr.ravel()
    uniq, inverse = np.unique(flat, return_inverse=True)
    vals = np.array([_inside_scalar(d, float(v)) for v in uniq])
    return vals[inverse].reshape(n_arr.shape)


def ball_n_at_probability(d, p):
    """Real N at which ``p(d, N) = p`` for the uniform ball.

    Parameters
    ----------
    d : int
        Dimension, ``1 <= d <= 40``.
    p : float
        Target probability, ``0 < p < p(d, 1e40)``.

    Returns
    -------
    float
        The N > d solving ``ball_inside_probability(d, N) == p`` (relative accuracy ~1e-10); it
        lies below d + 1 when p < p(d, d + 1), i.e. in the analytically continued part.

    Notes
    -----
    Brent's method on ``u = log(N - d)``; ``p(d, .)`` is increasing. See
    :func:`ball_inside_probability` for the formula and sources.
    """
    d = _check_d(d)
    p = float(p)
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be strictly between 0 and 1, got {p!r}")
    p_top = _inside_scalar(d, N_MAX)
    if p >= p_top:
        raise ValueError(f"p = {p} is not reached for N <= {N_MAX:g} at d = {d} "
                         f"(p(d, {N_MAX:g}) = {p_top:.6g})")

    def gap(u: float) -> float:
        return _inside_scalar(d, min(N_MAX, d + math.exp(u))) - p

    u_lo = math.log(1e-9)
    if gap(u_lo) >= 0:
        raise ValueError(f"p = {p} is too small: p({d}, {d} + 1e-9) >= p")
    from scipy.optimize import brentq   # here: SciPy's optimizers cost ~0.2 s of imports

    u = brentq(gap, u_lo, math.log(N_MAX - d), xtol=1e-12, rtol=1e-12)
    return min(N_MAX, d + math.exp(u))


def ball_n_half(d):
    """Real N at which ``p(d, N) = 1/2`` for the uniform ball (see :func:`ball_n_at_probability`).

    Parameters
    ----------
    d : int
        Dimension, ``1 <= d <= 40``.

    Returns
    -------
    float
        N_half(d); e.g. 3 for d = 1 (p = (N-1)/(N+1)).
    """
    return ball_n_at_probability(d, 0.5)


__all__ = ["ball_inside_probability", "ball_inside_probability_mp", "ball_n_half", "ball_n_at_probability"]
