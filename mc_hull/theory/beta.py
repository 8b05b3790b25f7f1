r"""Exact p(d, N) for beta and beta' laws (uniform ball, Student-t, ...) via Efron's identity.

Two families of rotation-invariant laws have exactly known expected f-vectors (Kabluchko, Thäle &
Zaporozhets, "Beta polytopes and Poisson polyhedra: f-vectors and angles", Adv. Math. 374 (2020),
arXiv:1805.01338, Thms. 1.2 and 1.14):

* **beta**: density ∝ (1 - |x|²)^β on the unit ball of R^d, β > -1 (β = 0: uniform ball;
  β → -1: the sphere; β → ∞ after scaling by √(2β): the Gaussian). Set α = 2β + d.
* **beta'**: density ∝ (1 + |x|²)^(-β) on R^d, β > d/2. The multivariate Student-t with ν
  degrees of freedom, z / √(χ²_ν / ν), is √ν times the beta' law with β = (d + ν)/2, and hull
  membership does not change under scaling, so its p is the beta' p with α = 2β - d = ν
  (independent of d; Cauchy is ν = 1, the Gaussian is ν → ∞).

For N + 1 i.i.d. points P_{N+1} of such a law, Efron's identity gives

.. math:: p(d, N) = 1 - \frac{E f_0(P_{N+1})}{N + 1},
          \qquad E f_0(P_n) = 2 \sum_{k = d, d-2, \dots \ge 1} \binom{n}{k} I_{n,k}(\alpha) J_k(\alpha),

where, with the 1-d marginal written through an angle y ∈ (0, π) (h = cos y for beta,
h = cot y for beta'),

.. math:: I_{n,k}(\alpha) = \int_0^\pi c(p_k) \sin^{p_k} y \, F(y)^{n-k} \, dy,\quad
          p_k = \alpha k + \delta,\quad F(y) = \int_y^\pi c(p_1) \sin^{p_1} t \, dt,

δ = 0 (beta) or -1 (beta'), c(p) = Γ(p/2 + 1) / (√π Γ((p + 1)/2)), and J_k(α) is k times the
expected internal angle at a vertex of a beta (beta') simplex of k points in R^(k-1)
(Kabluchko, "Angles of random simplices and face numbers of random polytopes", Adv. Math. 380
(2021); "Recursive scheme for angles of random simplices", Discrete Comput. Geom. (2021),
arXiv:1907.07534). The J_k come from :mod:`.beta_angles` (mpmath, cancellation-free to 17
digits, cached per (family, α); common laws are shipped in ``data/beta_angles.csv``).

The integrals are taken in u = log G, G = 1 - F the marginal's upper tail, where the integrand
``R_k(u) e^u (1 - e^u)^(n-k)``, ``R_k = c(p_k)/c(p_1) sin^(α(k-1)) y``, is smooth and of unit
scale for every α and n; sin² y = I^{-1}_{2G}((p_1 + 1)/2, 1/2) (scipy's inverse incomplete
beta function). The G > 1/2 half is integrated in log F. Everything is summed in log space.
"""

from __future__ import annotations

import math
from functools import lru_cache
from numbers import Integral, Real
from pathlib import Path

import numpy as np
from scipy.special import betaincinv, gammaln, logsumexp

from ..errors import InputError

D_MAX = 64
"""Largest dimension."""
N_MAX = 1e40
"""Largest N (accuracy is checked against mpmath up to 1e12)."""
DF_RANGE = (0.5, 1e4)
"""Student-t degrees of freedom with an exact curve."""
BETA_RANGE = (-0.95, 1e4)
"""Beta exponents with an exact curve."""

_TABLE = Path(__file__).resolve().parent / "data" / "beta_angles.csv"
_GL = 16


def _log_c(p):
    """log c(p), c(p) = 1 / ∫_0^π sin^p."""
    p = np.asarray(p, dtype=np.float64)
    return gammaln(p / 2 + 1) - gammaln((p + 1) / 2) - 0.5 * math.log(math.pi)


@lru_cache(maxsize=None)
def _shipped() -> dict[tuple[str, float], dict[int, float]]:
    table: dict[tuple[str, float], dict[int, float]] = {}
    if not _TABLE.exists():
        return table
    for line in _TABLE.read_text().splitlines():
        if not line or line.startswith("#") or line.startswith("family,"):
            continue
        family, alpha, m, value = line.split(",")
        table.setdefault((family, float(alpha)), {})[int(m)] = float(value)
    return table


@lru_cache(maxsize=None)
def _computed(family: str, alpha: float, m_max: int) -> dict[int, float]:
    from .beta_angles import angle_sums

    return {m: float(v) for m, v in angle_sums(family, alpha, m_max).items()}


def angle_table(family: str, alpha: float, m_max: int) -> dict[int, float]:
    """J_m(α) for m = m_max, m_max - 2, ... as floats: the shipped table if it covers them, else
    mpmath (cached; all m up to the next multiple of 8).

    Parameters
    ----------
    family : {"beta", "betap"}
    alpha : float
    m_max : int

    Returns
    -------
    dict
        m -> J_m(α).
    """
    alpha = float(alpha)
    shipped = _shipped().get((family, alpha))
    if shipped is not None and all(m in shipped for m in range(m_max, 0, -2)):
        return shipped
    # compute up to the next multiple of 8 so that nearby d share one computation (for beta
    # only m < α + 2 are angle sums of proper beta simplices)
    top = min(D_MAX, 8 * (-(-m_max // 8)))
    if family == "beta":
        top = min(top, math.ceil(alpha + 2.0) - 1)
    return _computed(family, alpha, max(m_max, top))


@lru_cache(maxsize=None)
def _gl(k: int):
    return np.polynomial.legendre.leggauss(k)


def _panels(edges: np.ndarray):
    x, w = _gl(_GL)
    lo, hi = edges[:-1, None], edges[1:, None]
    return (lo + (x + 1) * (hi - lo) / 2).ravel(), (w * (hi - lo) / 2).ravel()


def _log_binom(n: float, k: np.ndarray) -> np.ndarray:
    kmax = int(k.max())
    cum = np.concatenate([[0.0], np.cumsum(np.log(n - np.arange(kmax)))])
    return cum[k] - gammaln(k + 1.0)


def _mean_f0_over_n(family: str, alpha: float, d: int, n: float) -> float:
    """E f_0(P_n) / n for n (real, > d) points of the law (family, α) in R^d."""
    delta = 0.0 if family == "beta" else -1.0
    p1 = alpha + delta
    a_inv = (p1 + 1.0) / 2.0
    ks = np.arange(d, 0, -2)
    table = angle_table(family, alpha, d)
    log_j = np.log(np.array([table[int(k)] for k in ks]))
    log_coef = _log_binom(n, ks) + log_j + _log_c(alpha * ks + delta) - _log_c(p1)
    half_power = alpha * (ks - 1) / 2.0  # R_k = c_k/c_1 (sin^2 y)^half_power
    rate = 1.0 + alpha * (ks.max() - 1) / (p1 + 1.0)  # steepest left-tail rate in u
    log_half = math.log(0.5)
    # part A: G = e^u in (0, 1/2]; v = u + log n, the mass sits at v ~ log(rate)
    v_top = min(math.log(n) + log_half, math.log(80.0 + 4.0 * rate) + math.log(n / (n - ks.max())))
    v_lo = -45.0
    fine_lo = max(v_lo, min(-2.0, v_top - 1.0))
    width = min(0.5, 2.0 / math.sqrt(rate))
    coarse = np.arange(v_lo, fine_lo, 3.0)
    fine = np.linspace(fine_lo, v_top, max(2, math.ceil((v_top - fine_lo) / width)) + 1)
    edges = np.unique(np.concatenate([coarse, fine]))
    edges = edges[edges <= v_top]
    v, wq = _panels(edges)
    u = v - math.log(n)
    sin2 = betaincinv(a_inv, 0.5, 2.0 * np.exp(u))
    log_sin2 = np.log(sin2)
    log_f = np.log1p(-np.exp(u))
    terms = (log_coef[:, None] + half_power[:, None] * log_sin2[None, :] + u[None, :]
             + (n - ks)[:, None] * log_f[None, :] + np.log(wq)[None, :])
    total = logsumexp(terms)
    # part B: F = e^t in (0, 1/2] (the lower half of the marginal); decays like e^{t (n - k + 1)}
    slow = n - ks.max() + 1.0
    if slow * math.log(2.0) < 60.0:
        depth = 45.0 / slow
        steps = log_half - np.concatenate([[0.0], depth * np.geomspace(1e-3, 1.0, 24)])
        t, wt = _panels(np.sort(steps))
        sin2 = betaincinv(a_inv, 0.5, 2.0 * np.exp(t))
        terms_b = (log_coef[:, None] + half_power[:, None] * np.log(sin2)[None, :]
                   + (n - ks + 1.0)[:, None] * t[None, :] + np.log(wt)[None, :])
        total = np.logaddexp(total, logsumexp(terms_b))
    return float(2.0 * math.exp(total) / n)


def _check_d(d) -> int:
    if isinstance(d, (bool, np.bool_)) or not isinstance(d, (Integral, Real)):
        raise InputError(f"d must be an integer in [1, {D_MAX}], got {d!r}")
    if not isinstance(d, Integral) and not (math.isfinite(d) and float(d).is_integer()):
        raise InputError(f"d must be an integer in [1, {D_MAX}], got {d!r}")
    if not 1 <= int(d) <= D_MAX:
        raise InputError(f"d must be an integer in [1, {D_MAX}], got {d}")
    return int(d)


def _check_param(name: str, value, rng: tuple[float, float], law: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real) or not math.isfinite(value):
        raise InputError(f"{name} must be a finite number in [{rng[0]:g}, {rng[1]:g}], got {value!r}")
    if not rng[0] <= value <= rng[1]:
        raise InputError(f"{name} = {value:g}: the exact {law} curve covers {name} in "
                         f"[{rng[0]:g}, {rng[1]:g}]")
    return float(value)


def law_alpha(distribution: str, d: int, **params) -> tuple[str, float]:
    """(family, α) of a supported law: ``beta`` (param ``beta``), ``ball`` or ``student-t`` (``df``).

    Raises
    ------
    InputError
        For another distribution, unknown parameters or a parameter outside its range.
    """
    if distribution == "student-t":
        _only(params, {"df"}, distribution)
        return "betap", _check_param("df", params.get("df", 3), DF_RANGE, "Student-t")
    if distribution == "beta":
        _only(params, {"beta"}, distribution)
        beta = _check_param("beta", params.get("beta", 0.0), BETA_RANGE, "beta")
        return "beta", 2.0 * beta + d
    if distribution == "ball":
        _only(params, set(), distribution)
        return "beta", float(d)
    raise InputError(f"no beta/beta' form for distribution {distribution!r}")


def _only(params: dict, names: set, distribution: str) -> None:
    extra = sorted(set(params) - names)
    if extra:
        raise InputError(f"{distribution} takes no parameter {extra[0]!r}"
                         + (f"; valid: {', '.join(sorted(names))}" if names else ""))


def _p_scalar(family: str, alpha: float, d: int, n: float) -> float:
    if n <= d:
        return 0.0
    p = 1.0 - _mean_f0_over_n(family, alpha, d, n + 1.0)
    return min(1.0, max(0.0, p))


def _check_n(n):
    try:
        if isinstance(n, (bool, np.bool_, str, bytes)):
            raise TypeError
        arr = np.asarray(n, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"n must be a real number or an array of them, got {n!r}") from None
    bad = ~(np.isfinite(arr) & (arr >= 0.0) & (arr <= N_MAX))
    if np.any(bad):
        raise InputError(f"n must be finite numbers in [0, {N_MAX:g}], got {float(arr[bad].ravel()[0])!r}")
    return arr


def inside_probability(distribution: str, d, n, **params):
    """Exact p(d, N) for ``beta``, ``ball`` or ``student-t`` (see the module docstring).

    Parameters
    ----------
    distribution : {"beta", "ball", "student-t"}
    d : int
        Dimension, 1..64.
    n : float or array_like
        N, 0 <= N <= 1e40 (N <= d gives 0; real N > d the analytic continuation).
    **params
        ``beta`` (default 0, in [-0.95, 1e4]) or ``df`` (default 3, in [0.5, 1e4]).

    Returns
    -------
    float or ndarray
        p(d, N), a float for scalar n, else an array of n's shape.
    """
    d = _check_d(d)
    family, alpha = law_alpha(distribution, d, **params)
    arr = _check_n(n)
    flat = arr.ravel()
    uniq, inverse = np.unique(flat, return_inverse=True)
    vals = np.array([_p_scalar(family, alpha, d, float(v)) for v in uniq])
    out = vals[inverse].reshape(arr.shape)
    return float(out) if out.ndim == 0 else out


@lru_cache(maxsize=4096)
def _n_at(family: str, alpha: float, d: int, p: float) -> float:
    top = _p_scalar(family, alpha, d, N_MAX)
    if top < p:
        raise InputError(f"p = {p:g} needs N > {N_MAX:g} here (p(d={d}, {N_MAX:g}) = {top:.3g})")

    def gap(x: float) -> float:
        return _p_scalar(family, alpha, d, min(N_MAX, d + math.exp(x))) - p

    lo = math.log(1e-9)
    if gap(lo) >= 0:
        return d + 1e-9
    from scipy.optimize import brentq   # here: SciPy's optimizers cost ~0.2 s of imports

    return min(N_MAX, d + math.exp(brentq(gap, lo, math.log(N_MAX - d), xtol=1e-13, rtol=1e-13)))


def n_at_probability(distribution: str, d, p, **params) -> float:
    """Real N > d at which the exact p(d, N) equals ``p`` (Brent in log(N - d)); cached.

    Raises
    ------
    InputError
        Out-of-range d or parameters, p not in (0, 1), or the answer above 1e40.
    """
    d = _check_d(d)
    family, alpha = law_alpha(distribution, d, **params)
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, Real) or not 0.0 < float(p) < 1.0:
        raise InputError(f"p must be a number with 0 < p < 1, got {p!r}")
    return _n_at(family, alpha, d, float(p))


def n_half(distribution: str, d, **params) -> float:
    """Real N at which the exact p(d, N) = 1/2 (see :func:`n_at_probability`)."""
    return n_at_probability(distribution, d, 0.5, **params)


__all__ = ["inside_probability", "n_half", "n_at_probability", "angle_table", "law_alpha",
           "D_MAX", "N_MAX", "DF_RANGE", "BETA_RANGE"]
