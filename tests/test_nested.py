"""Entry sizes on nested prefixes agree with per-prefix decisions and follow the exact curves."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import comb
from scipy.stats import chi2

import mc_hull
from mc_hull.stats import design, intervals as stats, thresholds
from mc_hull.nested import search as nested
from mc_hull.solvers import Candidates, Solver
from mc_hull.solvers import certificates as cert
from mc_hull.solvers import edges
from mc_hull.theory.gaussian import gaussian_inside_probability, gaussian_n_half


def _data(kind, rng, N, d):
    """Training set (N, d) and a mix of queries (K, d) around it, some of them training points."""
    if kind == "gauss":
        X = rng.standard_normal((N, d))
    elif kind == "cube":
        X = rng.uniform(-1, 1, (N, d))
    elif kind == "rank":   # an affine subspace of dimension about d/2
        r = max(1, d // 2)
        X = rng.standard_normal((N, r)) @ rng.standard_normal((r, d)) + rng.standard_normal(d)
    elif kind == "dup":    # every point twice, the copy far later in the order
        half = rng.standard_normal((N // 2, d))
        X = np.concatenate([half, half[rng.permutation(N // 2)]])
    elif kind == "offset":  # far from the origin and tiny: only the frame makes this well posed
        X = 1e6 + 1e-3 * rng.standard_normal((N, d))
    else:
        raise ValueError(kind)
    c = X.mean(axis=0)
    spread = float(np.max(np.abs(X - c)))
    Q = c + rng.standard_normal((24, d)) * rng.uniform(0.05, 0.8, (24, 1)) * spread
    if kind == "rank":   # half of them inside the subspace
        A = rng.dirichlet(np.ones(6), 12)
        Q[:12] = A @ X[rng.choice(N, 6, replace=False)] * 1.3 - 0.3 * c
    pick = rng.choice(N, 6, replace=False)
    return X, np.concatenate([Q, X[pick]])


def _grid(N, L):
    return np.unique(np.round(np.geomspace(2, N, L)).astype(int))


def _reference(X, Q, sizes, solver):
    """Independent decisions on every prefix: (K, L) with 1 inside, 0 outside."""
    return np.array([mc_hull.decide(X[:n], Q, solver=solver).status for n in sizes]).T


def _check_certificates(X, Q, res, tol=1e-9):
    """Every stored certificate verifies on its own prefix, by the tolerance rule itself (in its frame)."""
    d = X.shape[1]
    for b in range(len(Q)):
        if res.low[b] >= 0 and np.isfinite(res.directions[b]).all():
            n = int(res.sizes[res.low[b]])
            frame = cert.Frame.of(X[:n])
            q = frame.map(Q[b:b + 1])
            m = cert.outside_margins(frame.points, q, res.directions[b:b + 1])[0]
            assert m - cert.rounding_bound(q, frame.scale, d)[0] > tol * frame.scale, (b, n, m)
            assert res.low_value[b] > tol
        if res.high[b] < len(res.sizes) and res.support[b] is not None:
            n = int(res.sizes[res.high[b]])
            assert int(np.max(res.support[b])) < n
            frame = cert.Frame.of(X[:n])
            q = frame.map(Q[b:b + 1])
            r = cert.inside_residual(frame.points, q[0], res.support[b], res.weights[b])
            bound = cert.rounding_bound(q, frame.scale, np.size(res.support[b]))[0]
            assert r + bound <= tol * frame.scale, (b, n, r)
            assert res.high_value[b] <= tol


CASES = [  # kind, d, N, L, seed, reference solver
    ("gauss", 2, 300, 25, 0, "lp"), ("gauss", 4, 2000, 30, 1, "colgen"),
    ("gauss", 6, 1000, 20, 2, "lp"), ("gauss", 8, 6000, 40, 3, "colgen"),
    ("cube", 3, 1500, 25, 4, "colgen"), ("cube", 1, 200, 15, 5, "lp"),
    ("rank", 5, 800, 20, 6, "lp"), ("rank", 8, 2000, 20, 7, "colgen"),
    ("dup", 4, 1200, 25, 8, "colgen"), ("offset", 3, 1000, 20, 9, "colgen"),
]


@pytest.mark.parametrize("kind,d,N,L,seed,ref", CASES)
def test_agrees_with_independent_prefix_decisions(kind, d, N, L, seed, ref):
    rng = np.random.default_rng(seed)
    X, Q = _data(kind, rng, N, d)
    g = _grid(N, L)
    expected = _reference(X, Q, g, ref)
    assert (expected >= 0).all()
    for method in ("warm", "engine"):
        res = nested.entry_sizes(X, Q, g, method=method)
        assert res.located.all()
        table = res.inside_table()
        bad = np.argwhere(table != expected)
        assert bad.size == 0, [(method, int(b), int(g[j]), expected[b, j]) for b, j in bad[:5]]
        _check_certificates(X, Q, res)
        # Monotone by construction; a training point is inside from the first size holding it.
        assert (np.diff(table, axis=1) >= 0).all()
        for b in range(len(Q) - 6, len(Q)):
            row = int(np.flatnonzero((X == Q[b]).all(axis=1))[0])
            assert res.t_high[b] != -1 and res.t_high[b] <= g[np.searchsorted(g, row + 1)]


def test_outside_everywhere_and_inside_from_the_start():
    rng = np.random.default_rng(11)
    X = rng.standard_normal((500, 3))
    Q = np.array([[50.0, 0, 0], X[:4].mean(axis=0), X[0]])
    g = np.array([4, 10, 100, 500])
    res = nested.entry_sizes(X, Q, g)
    assert res.t_high.tolist()[0] == -1 and res.t_low[0] == 500      # never inside: certified at N_max
    assert res.t_high[1] == 4 and res.t_low[1] == 0                  # inside from the first size
    assert res.t_high[2] == 4
    assert res.located.all()


def test_reuse_saves_solves():
    """Most grid sizes are settled by carried certificates; the engine is rarely called after the first probe."""
    rng = np.random.default_rng(12)
    X = rng.standard_normal((20000, 6))
    Q = rng.standard_normal((60, 6))
    g = np.unique(np.round(np.geomspace(8, 20000, 40)).astype(int))
    res = nested.entry_sizes(X, Q, g)
    assert res.located.all()
    assert res.shortcuts.sum() > 0
    assert res.solves.mean() <= 1.5          # engine calls per query: the first probe and rare fallbacks
    ref = nested.entry_sizes(X, Q, g, method="engine")
    assert (ref.high == res.high).all() and (ref.low == res.low).all()


class _Refuses(Solver):
    """A solver that never proposes anything: every query undecided."""

    name = "refuses"

    def _propose(self, points, queries, atol):
        return Candidates.empty(queries.shape[0], points.shape[1], "refuses")


def test_undecided_probes_leave_open_brackets_never_guesses(monkeypatch):
    # the base class's edge stage would settle these itself: switch it off
    monkeypatch.setattr(edges, "edge_candidates", lambda P, Qf, scale, atol: (
        np.full(len(Qf), -1, dtype=np.int8), np.zeros(Qf.shape), [None] * len(Qf), [None] * len(Qf),
        np.full(len(Qf), "none", dtype=object)))
    rng = np.random.default_rng(13)
    X = rng.standard_normal((300, 3))
    Q = rng.standard_normal((10, 3))
    g = np.array([10, 30, 100, 300])
    res = nested.entry_sizes(X, Q, g, solver=_Refuses(fallbacks=()), method="engine")
    assert not res.located.any()
    assert np.isnan(res.inside_table()).all()
    est = nested.curve([res])
    assert (est["trials"] == 0).all() and np.isnan(est["p_hat"]).all()


def test_bad_input():
    X = np.zeros((10, 2))
    with pytest.raises(ValueError, match="increasing"):
        nested.entry_sizes(X, np.zeros((1, 2)), [5, 5])
    with pytest.raises(ValueError, match="exceeds"):
        nested.entry_sizes(X, np.zeros((1, 2)), [5, 11])
    with pytest.raises(ValueError, match="agree in d"):
        nested.entry_sizes(X, np.zeros((1, 3)), [5])
    with pytest.raises(ValueError, match="method"):
        nested.entry_sizes(X, np.zeros((1, 2)), [5], method="magic")


def _wendel_out(N, d):
    """P(0 not in conv(X_1..X_N)) for N i.i.d. points of a symmetric law in general position."""
    return 2.0 ** -(N - 1) * sum(comb(N - 1, k) for k in range(d))


@pytest.mark.parametrize("law,d", [("gauss", 3), ("cube", 2), ("gauss", 5)])
def test_wendel_entry_size_distribution(law, d):
    """The query fixed at the centre of a symmetric law: T's whole distribution is Wendel's."""
    M, R = 6 * d + 6, 500
    g = np.arange(1, M + 1)
    rng = np.random.default_rng(100 + d)
    T = []
    for _ in range(R):
        X = rng.standard_normal((M, d)) if law == "gauss" else rng.uniform(-1, 1, (M, d))
        res = nested.entry_sizes(X, np.zeros((1, d)), g)
        assert res.located.all()
        T.append(int(res.t_high[0]) if res.t_high[0] > 0 else M + 1)
    T = np.array(T)
    assert T.min() >= d + 1                      # never inside a hull of d points
    out = np.array([_wendel_out(n, d) for n in range(d, M + 1)])   # P(T > n), n = d..M
    pmf = np.append(-np.diff(out), out[-1])      # P(T = n) for n = d+1..M, then P(T > M)
    counts = np.array([np.sum(T == n) for n in range(d + 1, M + 1)] + [np.sum(T > M)])
    # Pool sparse cells, then a chi-square goodness-of-fit test of the whole distribution.
    exp = pmf * R
    keep_c, keep_e, acc_c, acc_e = [], [], 0, 0.0
    for c, e in zip(counts, exp):
        acc_c, acc_e = acc_c + c, acc_e + e
        if acc_e >= 5:
            keep_c.append(acc_c), keep_e.append(acc_e)
            acc_c, acc_e = 0, 0.0
    keep_c[-1] += acc_c
    keep_e[-1] += acc_e
    keep_c, keep_e = np.array(keep_c), np.array(keep_e)
    stat = float(np.sum((keep_c - keep_e) ** 2 / keep_e))
    assert chi2.sf(stat, len(keep_c) - 1) > 1e-3, (stat, keep_c, keep_e)
    # And pointwise: every size's P(0 in hull) inside its 99.9% Wilson interval.
    for n in range(d + 1, M + 1):
        lo, hi = stats.wilson(np.sum(T <= n), R, 0.999)
        assert lo <= 1 - _wendel_out(n, d) <= hi, n


def test_gaussian_curve_within_intervals_at_the_expected_rate():
    """d = 5, 40 sizes from 6 to 3000, 30 replicates x 40 queries, against the exact curve."""
    d, R, K = 5, 30, 40
    g = np.unique(np.round(np.geomspace(6, 3000, 40)).astype(int))
    rng = np.random.default_rng(7)
    results = [nested.entry_sizes(rng.standard_normal((g[-1], d)), rng.standard_normal((K, d)), g)
               for _ in range(R)]
    est = nested.curve(results)
    exact = gaussian_inside_probability(d, g)
    assert (np.diff(est["p_hat"]) >= 0).all()
    assert (est["trials"] == R * K).all()
    covered = (est["low"] <= exact) & (exact <= est["high"])
    assert covered.sum() >= len(g) - 3, np.flatnonzero(~covered)
    # N1/2 directly as the median of T, with an interval containing the exact one.
    n_half = float(g[np.searchsorted(exact, 0.5)])
    med, lo, hi = thresholds.median_interval(est)
    exact_half = float(gaussian_n_half(d))
    assert lo < exact_half <= hi and lo < med <= hi


def test_curve_is_clustered_by_replicate():
    """Queries sharing X are correlated: the design effect is estimated per size and widens the interval."""
    d, K = 3, 60
    g = np.array([5, 8, 12, 20, 27, 40, 60])
    rng = np.random.default_rng(3)
    results = [nested.entry_sizes(rng.standard_normal((60, d)), rng.standard_normal((K, d)), g)
               for _ in range(25)]
    est = nested.curve(results)
    y, m = nested.cluster_counts(results)
    j = 4
    low, high, deff = stats.clustered_interval(y[:, j], m[:, j])
    assert (est["low"][j], est["high"][j], est["deff"][j]) == (low, high, deff)
    assert deff > 1.2          # X drives a good part of the variance at (3, 27)
    plain = stats.wilson(y[:, j].sum(), m[:, j].sum())
    assert high - low > plain[1] - plain[0]


def test_efficient_queries_per_set_rule():
    f = design.efficient_queries_per_set
    # The closed form, and the integer minimum of the variance-per-second model.
    for set_s, q_s, rho in [(1e-3, 1e-5, 0.03), (5e-5, 1e-5, 0.03), (1e-2, 2e-4, 0.01), (0.1, 1e-5, 1e-3)]:
        k = f(set_s, q_s, rho, k_max=10**6)
        cost = lambda kk: (1 + (kk - 1) * rho) * (set_s / kk + q_s)  # noqa: E731
        ks = np.arange(1, 20000)
        costs = cost(ks)
        assert cost(k) <= costs.min() * (1 + 1e-12)
        assert abs(k - math.sqrt((1 - rho) * set_s / (rho * q_s))) <= 1
    assert f(1e-3, 1e-5, 0.0, k_max=500) == 500
    assert f(1e-3, 1e-5, 1.0) == 1
    assert f(1e-9, 1e-5, 0.5) == 1
    assert f(10.0, 1e-6, 0.01, k_max=300) == 300
    # Cheap X: few queries per set; dear X: many.
    assert f(2e-5, 1e-5, 0.03) < f(2e-3, 1e-5, 0.03)
    with pytest.raises(ValueError):
        f(1e-3, 0.0, 0.1)
    assert design.rho_from_design_effect(4.0, 100) == pytest.approx(3 / 99)
    assert design.design_effect(3 / 99, 100) == pytest.approx(4.0)
    assert design.rho_from_design_effect(0.5, 10) == 0.0 and design.rho_from_design_effect(3, 1) == 0.0


def test_median_interval_edges():
    est = {"n": np.array([10, 20, 40]), "p_hat": np.array([0.1, 0.3, 0.4]),
           "low": np.array([0.05, 0.2, 0.3]), "high": np.array([0.2, 0.45, 0.55])}
    med, lo, hi = thresholds.median_interval(est)
    assert med == math.inf and lo == 20 and hi == math.inf


def test_default_queries_per_set_and_pooling():
    assert design.default_queries_per_set(1000) == 33
    assert design.default_queries_per_set(6000) == 50
    assert design.default_queries_per_set(10) == 1
    # the replicate floor caps the rule
    assert design.efficient_queries_per_set(1.0, 1e-6, 0.0, trials=1000) == 33
    assert design.pooled_rho([0.1, 0.0, 0.5], [0.5, 0.5, 1.0]) == pytest.approx(0.05)
    assert design.pooled_rho([0.1], [0.0]) == 0.0
