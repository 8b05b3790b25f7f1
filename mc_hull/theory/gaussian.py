"""Exact p(d, N) = P(x in conv(X_1..X_N)) for i.i.d. N(0, I_d) points (Kabluchko & Zaporozhets)."""

from __future__ import annotations

import math
from functools import lru_cache
from numbers import Integral, Real
from pathlib import Path

import numpy as np
from scipy import special

__all__ = ["gaussian_inside_probability", "gaussian_n_half", "n_at_probability"]

D_MAX = 64
"""Largest supported dimension."""
N_MAX = 1e12
"""Largest supported number of points."""

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)

# sinh-mapped trapezoid rule for g_m(r), r > 0: z = z* + s sinh(t), t in [-T, T]
_SINH_T = 6.0
_SINH_POINTS = 241
# trapezoid rule on the horizontal line through the saddle, for g_k(-1/(k+1))
_CONTOUR_POINTS = 1601
_CONTOUR_NATS = 50.0
# rows of (N, k) pairs evaluated at once (bounds memory: rows * _SINH_POINTS floats)
_CHUNK = 2048


def _log_ndtr_accurate(y):
    """log Phi(y), accurate to double relative precision also where Phi(y) is near 1."""
    y = np.asarray(y, dtype=np.float64)
    out = np.empty_like(y)
    pos = y > 0
    out[pos] = np.log1p(-special.ndtr(-y[pos]))
    out[~pos] = special.log_ndtr(y[~pos])
    return out


def _log_inv_mills(y):
    """log(phi(y) / Phi(y))."""
    return -0.5 * y * y - _LOG_SQRT_2PI - _log_ndtr_accurate(y)


def _log_g_positive(m, r):
    """log g_m(r) = log E[Phi(sqrt(r) Z)^m] for real m >= 1, 0 < r <= 1 (arrays, same shape).

    The integrand exp(m log Phi(sqrt(r) z)) phi(z) is log-concave in z.  Its mode z* solves
    m sqrt(r) phi(sqrt(r) z)/Phi(sqrt(r) z) = z (a convex decreasing function of z, so Newton's
    method converges monotonically), s = (-d^2/dz^2 log integrand)^(-1/2) at z* is its local
    width, and the integral is taken by the trapezoid rule in t with z = z* + s sinh(t), which
    follows both the narrow peak (s ~ 0.1 for m ~ 1e12) and the wide Gaussian right tail.
    Everything is summed relative to the largest term, so nothing over- or underflows.
    """
    m = np.asarray(m, dtype=np.float64)
    r = np.asarray(r, dtype=np.float64)
    q = np.sqrt(r)
    # start from one fixed-point step of the large-m approximation z^2 = (2/r) log(m sqrt(r) phi/z)
    z = np.sqrt(2.0 * np.log1p(m) / r)
    z = np.sqrt(np.maximum(2.0 / r * (np.log(m * q) - _LOG_SQRT_2PI - np.log(np.maximum(z, 1.0))), 0.0))
    for _ in range(100):
        y = q * z
        lam = np.exp(_log_inv_mills(y))
        h = m * q * lam - z
        dh = -m * r * lam * (y + lam) - 1.0
        step = h / dh
        z = z - step
        if np.all(np.abs(step) <= 1e-10 * (1.0 + np.abs(z))):
            break
    y = q * z
    lam = np.exp(_log_inv_mills(y))
    s = 1.0 / np.sqrt(1.0 + m * r * lam * (y + lam))

    t = np.linspace(-_SINH_T, _SINH_T, _SINH_POINTS)
    dt = t[1] - t[0]
    zz = z[..., None] + s[..., None] * np.sinh(t)
    log_f = m[..., None] * _log_ndtr_accurate(q[..., None] * zz) - 0.5 * zz * zz
    top = log_f.max(axis=-1)
    total = np.sum(np.cosh(t) * np.exp(log_f - top[..., None]), axis=-1)
    return top + np.log(total * dt * s) - _LOG_SQRT_2PI


def _log_g_simplex(k: int) -> float:
    """log g_k(-1/(k+1)) by contour integration through the saddle point.

    With a = 1/sqrt(k+1), g_k(-a^2) = int Phi(i a z)^k phi(z) dz (the analytic continuation of
    E[Phi(sqrt(r) Z)^k] to r < 0).  It equals the orthant probability P(W_1..W_k <= 0) of
    standard Gaussians with all correlations -1/k, e.g. W_i ~ Y_i - mean(Y_0..Y_k).  On the real
    axis the integrand oscillates and cancels down to ~1e-68 (k = 63); the line Im z = c* through
    the saddle point (c* = k a phi(-a c*)/Phi(-a c*)) is a steepest-descent direction there, and
    the trapezoid rule on it converges fast with little cancellation.  The integrand decays like
    exp(-t^2 / (2(k+1))) along the line.
    """
    if k == 0:
        return 0.0
    a = 1.0 / math.sqrt(k + 1)

    from scipy.optimize import brentq   # here: SciPy's optimizers cost ~0.2 s of imports

    def saddle(c):
        return c - k * a * math.exp(float(_log_inv_mills(np.float64(-a * c))))

    c = brentq(saddle, 0.0, 1e3, xtol=1e-14, rtol=1e-14)
    half_width = math.sqrt(2.0 * (k + 1) * _CONTOUR_NATS) + 10.0
    t = np.linspace(-half_width, half_width, _CONTOUR_POINTS)
    zc = t + 1j * c
    log_f = k * np.log(special.ndtr(1j * a * zc)) - 0.5 * zc * zc
    top = float(np.max(log_f.real))
    total = float(np.sum(np.exp(log_f - top).real)) * (t[1] - t[0])
    if not total > 0:
        raise ArithmeticError(f"internal angle integral failed for k={k}")
    return top + math.log(total) - _LOG_SQRT_2PI


#: :func:`_log_g_simplex` for k = 0..D_MAX-1 as ``float.hex`` (``data/make_gaussian.py``).
_SIMPLEX_TABLE = Path(__file__).resolve().parent / "data" / "gaussian_simplex.csv"


@lru_cache(maxsize=None)
def _log_simplex_constants() -> np.ndarray:
    """log g_k(-1/(k+1)) for k = 0..D_MAX-1: the bits :func:`_log_g_simplex` computes, read from
    ``data/gaussian_simplex.csv`` (computed here, ~50 ms and SciPy's optimizers, when the table is
    missing or not whole)."""
    try:
        rows = [line.split(",") for line in _SIMPLEX_TABLE.read_text().splitlines()[2:] if line]
        if [int(k) for k, _ in rows] == list(range(D_MAX)):
            return np.array([float.fromhex(v) for _, v in rows])
    except (OSError, ValueError):
        pass
    return np.array([_log_g_simplex(k) for k in range(D_MAX)])


def _check_d(d) -> int:
    if isinstance(d, (bool, np.bool_)) or not isinstance(d, (Integral, Real)):
        raise ValueError(f"d must be an integer in [1, {D_MAX}], got {d!r}")
    if isinstance(d, Real) and not isinstance(d, Integral):
        if not (math.isfinite(d) and float(d).is_integer()):
            raise ValueError(f"d must be an integer in [1, {D_MAX}], got {d!r}")
    d = int(d)
    if not 1 <= d <= D_MAX:
        raise ValueError(f"d must be an integer in [1, {D_MAX}], got {d}")
    return d


def _p_inside(d: int, n: np.ndarray) -> np.ndarray:
    """Kabluchko–Zaporozhets sum for validated d and a 1-d float array n (any n >= 1)."""
    out = np.zeros(n.shape, dtype=np.float64)
    live = np.flatnonzero(n > d)
    if live.size == 0:
        return out
    ks = np.arange(d - 1, -1, -2)  # k = d-1, d-3, ..., (1 or 0)
    log_neg = _log_simplex_constants()[ks]
    r = 1.0 / (1.0 + ks)
    log_k_fact = special.gammaln(ks + 1.0)
    rows_per_chunk = max(1, _CHUNK // ks.size)
    for start in range(0, live.size, rows_per_chunk):
        idx = live[start : start + rows_per_chunk]
        nn = n[idx]
        # log C(N, k) = sum_{j<k} log(N - j) - log k!, exact enough for real N up to 1e12
        cum = np.concatenate(
            [np.zeros((nn.size, 1)), np.cumsum(np.log(nn[:, None] - np.arange(d)), axis=1)], axis=1
        )
        log_binom = cum[:, ks] - log_k_fact
        m = nn[:, None] - ks
        log_pos = _log_g_positive(m, np.broadcast_to(r, m.shape))
        outside = 2.0 * np.sum(np.exp(log_binom + log_neg + log_pos), axis=1)
        out[idx] = np.clip(1.0 - outside, 0.0, 1.0)
    return out


def gaussian_inside_probability(d, n):
    r"""Exact probability that a Gaussian point lies in the convex hull of N Gaussian points.

    Parameters
    ----------
    d : int
        Dimension, ``1 <= d <= 64``.
    n : float or array_like of float
        Number of points N, ``1 <= N <= 1e12``.  Non-integer N is allowed and gives the
        natural continuous extension of the formula below (real binomial coefficients
        and real exponents m in g_m); ``p = 0`` for ``N <= d``.

    Returns
    -------
    float or numpy.ndarray
        :math:`p(d, N) = P(x \in \mathrm{conv}(X_1, \dots, X_N))` with
        :math:`x, X_1, \dots, X_N` i.i.d. :math:`N(0, I_d)`; a float for scalar ``n``,
        else an array of ``n``'s shape.  Absolute error below 1e-9 (checked against an
        mpmath reference in ``tests/test_theory_gaussian.py``).

    Raises
    ------
    ValueError
        If ``d`` is not an integer in [1, 64] or some ``n`` is not a finite number in
        [1, 1e12].

    Notes
    -----
    Kabluchko & Zaporozhets, "Absorption probabilities for Gaussian polytopes and regular
    spherical simplices", arXiv:1704.04968, main theorem with :math:`\sigma = 1` (the query
    point x has the same law as the X_i):

    .. math::

        1 - p(d, N) = 2\,(b_{N,d-1} + b_{N,d-3} + \dots), \qquad
        b_{N,k} = \binom{N}{k}\, g_k\!\left(-\tfrac{1}{1+k}\right)
                  g_{N-k}\!\left(\tfrac{1}{1+k}\right),

    where the sum stops at k = 1 or k = 0, :math:`g_m(r) = E[\Phi(\sqrt{r} Z)^m]`,
    :math:`Z \sim N(0, 1)`, and for r < 0 the square root is imaginary,
    :math:`g_k(r) = \int \Phi(i\sqrt{-r}\,z)^k \varphi(z)\,dz`.  Equivalently
    :math:`g_m(r)` is the orthant probability :math:`P(W_1, \dots, W_m \le 0)` of standard
    Gaussians with common correlation r/(1+r), so :math:`g_k(-1/(1+k))` has correlation
    -1/k (an internal angle of a regular simplex) and e.g. :math:`g_1 = 1/2`,
    :math:`g_2(-1/3) = 1/6`, :math:`g_N(1) = 1/(N+1)`; for d = 1 this gives
    :math:`p = (N-1)/(N+1)`.  All terms are positive, so the sum is formed in log space:
    :math:`\log\binom{N}{k} = \sum_{j<k} \log(N-j) - \log k!`, the 64 constants
    :math:`g_k(-1/(k+1))` come from a contour integral through the saddle point (cached),
    and :math:`g_{N-k}` from a sinh-mapped trapezoid rule around the mode of the
    log-concave integrand, which stays accurate up to N = 1e12.  About 1 ms per value.
    """
    d = _check_d(d)
    try:
        if isinstance(n, (bool, np.bool_, str, bytes)):
            raise TypeError
        arr = np.asarray(n, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"n must be a real number or an array of them, got {n!r}") from None
    bad = ~(np.isfinite(arr) & (arr >= 1.0) & (arr <= N_MAX))
    if np.any(bad):
        raise ValueError(f"n must be finite numbers in [1, {N_MAX:g}], got {float(arr[bad].ravel()[0])!r}")
    p = _p_inside(d, arr.ravel()).reshape(arr.shape)
    return float(p) if p.ndim == 0 else p


def n_at_probability(d, p) -> float:
    r"""The real N at which the exact Gaussian p(d, N) equals ``p``.

    Parameters
    ----------
    d : int
        Dimension, ``1 <= d <= 64``.
    p : float
        Target probability, ``0 < p < 1``.

    Returns
    -------
    float
        N with ``gaussian_inside_probability(d, N) == p``, N treated as a continuous
        variable in the exact formula (real binomial coefficients via products and
        real exponents N - k in :math:`g_{N-k}`; no interpolation between integers).
        Found by Brent's method in log N on (d, 1e12]; p is increasing in N.
        Relative accuracy about 1e-8 near p = 1/2 (limited by the 1e-9 absolute
        accuracy of p); targets p below ~1e-7 are correspondingly less precise.

    Raises
    ------
    ValueError
        If ``d`` is out of range, ``p`` is not in (0, 1), or the answer exceeds 1e12
        (e.g. ``p = 1/2`` for d >= 45).
    """
    d = _check_d(d)
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, Real) or not 0.0 < float(p) < 1.0:
        raise ValueError(f"p must be a number with 0 < p < 1, got {p!r}")
    p = float(p)
    if d == 1:  # p = (N-1)/(N+1)
        n = (1.0 + p) / (1.0 - p)
    else:
        hi = math.log(N_MAX)
        p_hi = _p_inside(d, np.array([N_MAX]))[0]
        if p_hi < p:
            raise ValueError(
                f"p(d={d}, N) reaches {p} only beyond N = {N_MAX:g} (p(N={N_MAX:g}) = {p_hi:.3g}); "
                "outside the supported range"
            )

        from scipy.optimize import brentq

        def f(u):
            return _p_inside(d, np.array([math.exp(u)]))[0] - p

        n = math.exp(brentq(f, math.log(d), hi, xtol=1e-13, rtol=4 * np.finfo(float).eps))
    if n > N_MAX:
        raise ValueError(f"p(d={d}, N) = {p} needs N = {n:g} > {N_MAX:g}; outside the supported range")
    return n


@lru_cache(maxsize=None)
def _n_half(d: int) -> float:
    return n_at_probability(d, 0.5)


def gaussian_n_half(d) -> float:
    r"""The real N at which the exact Gaussian p(d, N) = 1/2.

    Parameters
    ----------
    d : int
        Dimension, ``1 <= d <= 44`` (beyond that the 50% point lies above N = 1e12).

    Returns
    -------
    float
        ``n_at_probability(d, 0.5)``: N treated as continuous in the exact
        Kabluchko–Zaporozhets formula (see :func:`gaussian_inside_probability`), root
        found in log N.  E.g. d = 1: 3, d = 2: ~10.4, d = 10: ~3.9e3.  Cached.

    Raises
    ------
    ValueError
        If ``d`` is out of range or the 50% point exceeds N = 1e12.
    """
    return _n_half(_check_d(d))
