"""Expected internal-angle sums of beta and beta' simplices, in mpmath (the slow, exact part).

What is computed
----------------
For the beta family (density ∝ (1 - |x|²)^β on the unit ball) and the beta' family (density
∝ (1 + |x|²)^(-β) on R^d), the expected f-vector formulas of Kabluchko, Thäle & Zaporozhets
(arXiv:1805.01338, Thms. 1.2 and 1.14) for a polytope in R^d need, for m = d, d-2, ..., >= 1,

    J_m(α) = m · E[internal angle at a vertex of the simplex [Z_1, ..., Z_m]],

Z_i i.i.d. in R^(m-1) with parameter γ = (α - m + 1)/2 (beta) or γ = (α + m - 1)/2 (beta'),
where α = 2β + d (beta) or α = 2β - d (beta'); the angle is normalised so that the full solid
angle is 1. J_m depends on the family, α and m only, so one table per (family, α) serves every
d. J_1 = J_2 = 1 and J_3 = 1/2.

How
---
The formula holds for every number of points, in particular for the simplex of m + 1 points of
the same family in R^m with the same α, whose f_0 is m + 1; its s = 0 term is J_m itself with
I_{m+1,m} = 1/2, so (as in ``data/make_ball.py`` for the ball, and the recursion underlying
Kabluchko's scheme, arXiv:1907.07534)

    J_m = 1 - 2/(m+1) · Σ_{j = m-2, m-4, ... >= 1} C(m+1, j) I_{m+1,j}(α) J_j.

With h = cos y (beta) or h = cot y (beta'), y in (0, π), both families read

    I_{n,j}(α) = ∫_0^π c(p_j) sin(y)^(p_j) F(y)^(n-j) dy,   p_j = α j + δ,
    F(y) = 1 - ∫_0^y c(p_1) sin(t)^(p_1) dt,   c(p) = Γ(p/2 + 1) / (√π Γ((p+1)/2)),

with δ = 0 (beta) or δ = -1 (beta'). The recursion cancels (J_m is as small as 1e-68 for
m = 64 near the Gaussian limit), so everything runs in mpmath with about 1.6 digits per
recursion level on top of the 16 wanted. The integrals use composite Gauss-Legendre rules in
s = logit(y/π) (smooth, exponentially decaying tails whatever the power of sin at the ends);
F at the nodes comes from the same panels through the Legendre integration matrix, so no
incomplete beta function is evaluated per node. The parts of (0, π) where the marginal mass
beyond is below 10^-(dps+5) are dropped (they contribute less than that).
"""

from __future__ import annotations

from functools import lru_cache

import mpmath as mp
from mpmath.calculus.quadrature import GaussLegendre

FAMILIES = {"beta": 0, "betap": -1}


def _c(p):
    """Normalising constant of sin(y)^p on (0, π)."""
    return mp.exp(mp.loggamma(p / 2 + 1) - mp.loggamma((p + 1) / 2)) / mp.sqrt(mp.pi)


@lru_cache(maxsize=None)
def _legendre_rule(n: int, dps: int):
    """Nodes, weights on [-1, 1] and the integration matrix M[i][l] = ∫_{-1}^{x_i} ℓ_l."""
    with mp.workdps(dps + 10):
        degree = 1
        while 3 * 2 ** (degree - 1) < n:
            degree += 1
        # mpmath's GaussLegendre has 3*2^(degree-1) nodes; build our own n-point rule instead
        xs = []
        for i in range(1, n + 1):
            x = mp.cos(mp.pi * (i - mp.mpf(1) / 4) / (n + mp.mpf(1) / 2))
            for _ in range(100):
                p0, p1 = mp.mpf(1), x
                for k in range(2, n + 1):
                    p0, p1 = p1, ((2 * k - 1) * x * p1 - (k - 1) * p0) / k
                dp = n * (x * p1 - p0) / (x * x - 1)
                dx = p1 / dp
                x -= dx
                if abs(dx) < mp.mpf(10) ** (-(dps + 8)):
                    break
            p0, p1 = mp.mpf(1), x
            for k in range(2, n + 1):
                p0, p1 = p1, ((2 * k - 1) * x * p1 - (k - 1) * p0) / k
            dp = n * (x * p1 - p0) / (x * x - 1)
            xs.append((x, 2 / ((1 - x * x) * dp * dp)))
        xs.sort()
        nodes = [x for x, _ in xs]
        weights = [w for _, w in xs]

        def legendre_all(x):
            vals = [mp.mpf(1), x]
            for k in range(2, n + 1):
                vals.append(((2 * k - 1) * x * vals[-1] - (k - 1) * vals[-2]) / k)
            return vals

        pl = [legendre_all(x) for x in nodes]  # P_k(x_l), k = 0..n
        # Q_k(x) = ∫_{-1}^x P_k: x + 1 for k = 0, (P_{k+1} - P_{k-1})/(2k+1) otherwise;
        # M[i][l] = Σ_k (2k+1)/2 w_l P_k(x_l) Q_k(x_i), formed in fixed point
        bits = int((dps + 10) * 3.33) + 32
        q = [[int(mp.ldexp((x + 1) if k == 0 else (pl[i][k + 1] - pl[i][k - 1]) / (2 * k + 1), bits))
              for k in range(n)] for i, x in enumerate(nodes)]
        r = [[int(mp.ldexp((2 * k + 1) * weights[l] * pl[l][k] / 2, bits)) for l in range(n)]
             for k in range(n)]
        matrix = [[mp.ldexp(sum(qi[k] * r[k][l] for k in range(n)), -2 * bits) for l in range(n)]
                  for qi in q]
    return nodes, weights, matrix


def _rule_dps(dps: int) -> int:
    """Working digits of the cached Gauss-Legendre rule: ``dps`` rounded up to a multiple of 40."""
    return 40 * (-(-dps // 40))


def _log_tail(y, p1):
    """log of the marginal mass in (0, y), y <= π/2: log(c(p1) ∫_0^y sin^p1)."""
    x = mp.sin(y) ** 2
    return mp.log(mp.betainc((p1 + 1) / 2, mp.mpf(1) / 2, 0, x, regularized=True) / 2)


def angle_sums(family: str, alpha, m_max: int, dps: int | None = None, *, n_gl: int = 96,
               width: float = 0.25, digits: int = 17) -> dict[int, "mp.mpf"]:
    """J_m(α) for m = 1..m_max at ``dps`` working digits (see the module docstring).

    Parameters
    ----------
    family : {"beta", "betap"}
    alpha : float or mpf
        α = 2β + d (beta, α > m_max - 2) or 2β - d (beta', α > 0).
    m_max : int
        Largest m, >= 1.
    dps : int, optional
        Working decimal digits. By default chosen so that a propagated bound on the rounding
        error of every J_m is below 10^-digits relative (a first pass at 40 digits measures
        the cancellation; a second pass, if needed, uses enough digits).
    n_gl : int
        Gauss-Legendre nodes per panel.
    width : float
        Scale of the panel width in s (smaller is finer).

    Returns
    -------
    dict
        m -> J_m as mpf.
    """
    if dps is not None:
        return _angle_sums(family, alpha, m_max, dps, n_gl, width)[0]
    dps = min(180, 30 + 2 * m_max)
    for _ in range(4):
        out, lost = _angle_sums(family, alpha, m_max, dps, n_gl, width)
        need = int(lost) + digits + 8
        if need <= dps:
            return out
        dps = 20 * (-(-need // 20))
    raise ArithmeticError(f"angle sums for {family} alpha={alpha} did not reach {digits} digits")


def _angle_sums(family, alpha, m_max, dps, n_gl, width):
    """(J_m dict, digits lost to cancellation, estimated) at ``dps`` working digits."""
    delta = FAMILIES[family]
    with mp.workdps(dps):
        alpha = mp.mpf(alpha)
        p1 = alpha + delta
        eps_log = -(dps + 5) * mp.log(10)
        # tail cut y_t (and π - y_t by symmetry): marginal mass beyond <= 10^-(dps+5)
        lo, hi = mp.mpf(-50), mp.mpf(0)  # in log(y / (π/2))
        while _log_tail(mp.pi / 2 * mp.exp(lo), p1) > eps_log:
            lo *= 2
        for _ in range(60):
            mid = (lo + hi) / 2
            if _log_tail(mp.pi / 2 * mp.exp(mid), p1) > eps_log:
                hi = mid
            else:
                lo = mid
        y_t = mp.pi / 2 * mp.exp(lo)
        s_t = mp.log(y_t / (mp.pi - y_t))  # s = log(y / (π - y)) < 0
        # panels in s: near the peak (|s| small) width ~ 1/sqrt(alpha), growing in the tails
        base = mp.mpf(width) * min(mp.mpf(4), mp.mpf(2.5) / mp.sqrt(alpha + 1))
        edges = [mp.mpf(0)]
        while edges[-1] < -s_t:
            e = edges[-1]
            # grow in the tails, but keep (decay rate) x (width) <= 2 there
            grow = base * max(1, (e / (4 * base)) ** mp.mpf(0.5))
            edges.append(e + max(base, min(grow, 8 / (p1 + 1))))
        edges[-1] = -s_t
        edges = [-e for e in reversed(edges[1:])] + edges
        nodes, weights, matrix = _legendre_rule(n_gl, _rule_dps(dps))
        # fixed point: every value below is an int scaled by 2^bits (absolute precision 2^-bits)
        bits = int(dps * 3.33) + 96
        one = 1 << bits

        def fix(x):
            return int(mp.ldexp(x, bits))

        mat = [[fix(v) for v in row] for row in matrix]
        wts = [fix(w) for w in weights]
        cp1 = _c(p1)
        ws, dens, sin_a = [], [], []  # quadrature weight * sin^delta, marginal density in s, sin^alpha
        halves = []
        for a, b in zip(edges[:-1], edges[1:]):
            half = (b - a) / 2
            halves.append(fix(half))
            for x, w in zip(nodes, weights):
                s = a + (x + 1) * half
                # y = π / (1 + e^-s); sin y from the distance to the nearer end of (0, π)
                near = mp.pi / (1 + mp.exp(abs(s)))
                jac = near * (mp.pi - near) / mp.pi
                ls = mp.log(mp.sin(near))
                ws.append(fix(w * half * jac * mp.exp(delta * ls)))
                dens.append(fix(cp1 * mp.exp(p1 * ls) * jac))
                sin_a.append(fix(mp.exp(alpha * ls)))
        # F at the nodes: 1 - (mass in (y_t, y)), panel by panel through the integration matrix
        f_vals = []
        acc = 0
        n_nodes = len(nodes)
        for k, half in enumerate(halves):
            seg = dens[k * n_nodes:(k + 1) * n_nodes]
            for row in mat:
                inner = sum(u * v for u, v in zip(row, seg)) >> bits
                f_vals.append(one - acc - ((half * inner) >> bits))
            acc += (half * (sum(u * v for u, v in zip(wts, seg)) >> bits)) >> bits
        f_vals = [max(0, min(one, f)) for f in f_vals]
        # a[j][i] = w_i sin^(alpha j + delta)(y_i); b[e][i] = F(y_i)^e
        a = {0: ws}
        for j in range(1, m_max + 1):
            a[j] = [(u * v) >> bits for u, v in zip(a[j - 1], sin_a)]
        b = {0: [one] * len(ws)}
        for e in range(1, m_max + 2):
            b[e] = [(u * v) >> bits for u, v in zip(b[e - 1], f_vals)]
        out: dict[int, mp.mpf] = {}
        err: dict[int, mp.mpf] = {}  # absolute error bound, in units of 10^-dps
        for m in range(1, m_max + 1):
            n = m + 1
            tot = mp.mpf(0)
            e_m = mp.mpf(1)
            for j in range(m - 2, 0, -2):
                integral = mp.ldexp(sum(u * v for u, v in zip(a[j], b[n - j])), -2 * bits)
                coef = 2 * mp.binomial(n, j) * _c(alpha * j + delta) * integral / n
                tot += coef * out[j]
                e_m += coef * (err[j] + out[j] * 10 ** 3)  # the integral to ~10^(3 - dps) relative
            out[m] = 1 - tot
            err[m] = e_m
        if any(v <= 0 for v in out.values()):
            return out, float(dps + 20)
        lost = max(mp.log10(err[m] / out[m]) for m in out) if out else 0
        return out, float(lost)
        return out
