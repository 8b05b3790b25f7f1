"""hull_distance: certified bounds checked against an independent QP (Clarabel) on adversarial data."""

from __future__ import annotations

import math
import warnings

import clarabel
import numpy as np
import pytest
import scipy.sparse as sp

import mc_hull
from mc_hull.distance import FAR, distances
from mc_hull.errors import InputError
from mc_hull.solvers import distance as eng
from mc_hull.solvers.certificates import Frame


def _scale(X):
    """The training set's scale s (the tolerance rule's)."""
    return Frame.of(np.asarray(X, dtype=np.float64)).data_scale()


def clarabel_bounds(X, x):
    """An independent projection of x onto conv(X) by Clarabel, turned into two-sided bounds.

    The QP ``min ||y||^2 / 2``, ``[X^T; 1^T] lam - [y; 0] = [x; 1]``, ``lam >= 0`` is solved on
    data centred at the mean and divided by the largest deviation (gap and feasibility
    tolerances 1e-12).  Its weights give an upper bound and its residual direction a lower
    bound, both measured here, so the truth lies in [qp_low, qp_high] up to rounding.

    Returns
    -------
    qp_low, qp_high : float
    """
    N, d = X.shape
    c = X.mean(axis=0)
    s = float(np.max(np.abs(X - c))) or max(float(np.max(np.abs(c))), 1.0)
    Xs, xs = (X - c) / s, (x - c) / s
    P = sp.block_diag([sp.csc_matrix((N, N)), sp.eye(d)]).tocsc()
    A = sp.vstack([
        sp.hstack([sp.csc_matrix(Xs.T), -sp.eye(d)]),
        sp.hstack([sp.csc_matrix(np.ones((1, N))), sp.csc_matrix((1, d))]),
        sp.hstack([-sp.eye(N), sp.csc_matrix((N, d))]),
    ]).tocsc()
    b = np.concatenate([xs, [1.0], np.zeros(N)])
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = settings.tol_gap_rel = settings.tol_feas = 1e-12
    sol = clarabel.DefaultSolver(P, np.zeros(N + d), A, b,
                                 [clarabel.ZeroConeT(d + 1), clarabel.NonnegativeConeT(N)], settings).solve()
    assert str(sol.status) in ("Solved", "AlmostSolved"), sol.status
    lam = np.clip(np.asarray(sol.x)[:N], 0.0, None)
    lam /= lam.sum()
    r = xs - Xs.T @ lam
    high = float(np.linalg.norm(r))
    nr = float(np.linalg.norm(r))
    low = (float(r @ xs) - float(np.max(Xs @ r))) / nr if nr > 0 else 0.0
    # rounding of these few products (generous): relative 1e-13 of the frame's size
    slack = 1e-13 * (1.0 + float(np.linalg.norm(xs)))
    return max(low - slack, 0.0) * s, (high + slack) * s


def _queries(rng, X, B):
    c = X.mean(axis=0)
    r = float(np.max(np.abs(X - c))) or 1.0
    return c + rng.standard_normal((B, X.shape[1])) * rng.uniform(0.05, 2.5, (B, 1)) * r


def _training(kind, rng, N, d):
    if kind == "gauss":
        return rng.standard_normal((N, d))
    if kind == "cube":
        return rng.uniform(-1, 1, (N, d))
    if kind == "rank":        # an affine subspace of dimension about d / 2, off the origin
        k = max(1, d // 2)
        return rng.standard_normal((N, k)) @ rng.standard_normal((k, d)) + 3.0 * rng.standard_normal(d)
    if kind == "dup":
        return np.repeat(rng.standard_normal((max(1, N // 3), d)), 3, axis=0)[:N]
    if kind == "segment":    # collinear points: hull is a segment in d dimensions
        return np.outer(rng.uniform(-1, 1, N), rng.standard_normal(d)) + rng.standard_normal(d)
    raise ValueError(kind)


# (kind, d, N, B, scale, offset)
CASES = [
    ("gauss", 1, 1, 6, 1.0, 0.0), ("gauss", 1, 40, 10, 1.0, 0.0), ("gauss", 2, 1, 6, 1.0, 5.0),
    ("gauss", 2, 2, 10, 1.0, 0.0), ("gauss", 3, 3, 12, 1.0, 0.0), ("gauss", 5, 4, 12, 1.0, 0.0),
    ("gauss", 6, 300, 25, 1.0, 0.0), ("gauss", 8, 1100, 25, 1.0, 0.0), ("gauss", 12, 10, 12, 1.0, 0.0),
    ("gauss", 12, 3000, 20, 1.0, 0.0), ("gauss", 20, 60, 12, 1.0, 0.0),
    ("gauss", 4, 50, 15, 1.0, 1e9), ("gauss", 6, 200, 15, 1e-300, 0.0), ("gauss", 6, 200, 15, 1e300, 0.0),
    ("gauss", 3, 30, 12, 1e-150, 1e-140), ("cube", 7, 2000, 20, 1e6, -3e7),
    ("rank", 4, 200, 20, 1.0, 0.0), ("rank", 9, 800, 20, 1.0, 0.0), ("rank", 12, 8, 12, 1.0, 0.0),
    ("rank", 6, 300, 15, 1e-9, 1e9),
    ("dup", 2, 30, 12, 1.0, 0.0), ("dup", 8, 900, 20, 1.0, 0.0), ("segment", 5, 40, 15, 1.0, 0.0),
]


def _adversarial_queries(rng, kind, X, B):
    """Gaussian-spread queries, off-hull ones for degenerate sets, convex combinations and vertices."""
    Q = [_queries(rng, X, B)]
    N, d = X.shape
    s = _scale(X)
    if kind in ("rank", "dup", "segment") or N <= d:
        lam = rng.dirichlet(np.ones(N), size=4)
        normal = rng.standard_normal((4, d))
        Q.append(lam @ X)                                              # inside the flat hull
        Q.append(lam @ X + 1e-3 * s * normal / np.linalg.norm(normal, axis=1, keepdims=True))
    Q.append(X[rng.integers(0, N, 3)])                                 # vertices / duplicates
    Q.append(rng.dirichlet(np.ones(N), size=3) @ X)                    # interior or on a face
    far = rng.standard_normal((2, d))
    Q.append(X.mean(axis=0) + 1e3 * s * far / np.linalg.norm(far, axis=1, keepdims=True))   # far
    return np.vstack(Q)


@pytest.mark.parametrize("kind,d,N,B,scale,offset", CASES)
def test_bounds_bracket_an_independent_qp(kind, d, N, B, scale, offset):
    rng = np.random.default_rng([d, N, B, len(kind), int(math.log10(scale) + 400)])
    X = _training(kind, rng, N, d) * scale + offset
    Q = _adversarial_queries(rng, kind, X, B)
    res = distances(X, Q)
    s = res.scale
    assert np.all(res.low >= 0) and np.all(res.low <= res.high)
    assert np.all(res.converged), res.gap[~res.converged] / s
    assert np.all(res.gap <= 1e-6 * s)
    tol_inside = math.sqrt(d) * 1e-9 * s                       # the membership rule's slack for inside
    for j, q in enumerate(Q):
        qp_low, qp_high = clarabel_bounds(X, q)
        # Both intervals contain the truth, so they must overlap; inside counts as distance 0.
        assert res.low[j] <= qp_high, (j, res.low[j], qp_low, qp_high)
        if res.status[j] == 1:
            assert res.high[j] == 0.0 and res.low[j] == 0.0
            assert qp_low <= tol_inside
        else:
            assert qp_low <= res.high[j], (j, res.high[j], qp_low, qp_high)
            assert res.high[j] > 0
    # vertices and convex combinations of the training points are inside: exactly zero
    m = Q.shape[0]
    assert np.all(res.high[m - 8:m - 2] == 0.0)          # 3 vertices + 3 convex combinations
    assert np.all(res.status[m - 2:] == 0) and np.all(res.low[m - 2:] > 100 * s)
    # membership at the same tolerance: inside <=> high == 0 wherever it decides (a query at
    # a distance of about tol * s may be undecided there: a tie, never guessed)
    dec = mc_hull.decide(X, Q)
    known = dec.status >= 0
    assert known.mean() > 0.9
    np.testing.assert_array_equal(dec.status[known] == 1, res.high[known] == 0.0)
    np.testing.assert_array_equal(dec.status[known], res.status[known])


@pytest.mark.parametrize("kind,d,N", [("gauss", 3, 100), ("rank", 6, 300), ("dup", 5, 60), ("gauss", 9, 20)])
def test_nearest_point_distance_matches_brute_force(kind, d, N):
    rng = np.random.default_rng([7, d, N])
    X = _training(kind, rng, N, d) + 1e6
    Q = np.vstack([_queries(rng, X, 30), X[:3]])
    nn = mc_hull.hull_distance(X, Q).nn
    brute = np.array([np.min(np.linalg.norm(X - q, axis=1)) for q in Q])
    s = _scale(X)
    np.testing.assert_allclose(nn, brute, rtol=1e-9, atol=1e-9 * s)
    assert np.all(nn[-3:] == 0.0)
    res = distances(X, Q)
    assert np.all(res.high <= nn * (1 + 1e-12) + 1e-12 * s)      # the nearest point is in the hull


def test_blocked_nearest_and_pricing_over_many_blocks():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((5000, 3))
    Q = rng.standard_normal((700, 3)) * 3
    dist, idx = eng.nearest(X, Q)          # 700 x 5000 > one block of scores
    brute = np.linalg.norm(Q[:, None, :] - X[None], axis=2)
    np.testing.assert_allclose(dist, brute.min(axis=1), rtol=1e-12, atol=1e-12)


def test_far_queries_and_float_limits():
    rng = np.random.default_rng(11)
    X = rng.standard_normal((200, 4))
    c = X.mean(axis=0)
    u = rng.standard_normal(4)
    u /= np.linalg.norm(u)
    for far in (1e5, 1e12, 1e20, 1e250):
        q = c + far * u
        res = distances(X, q)
        true_ish = clarabel_bounds(X, q) if far < 1e7 else None
        assert res.status[0] == 0 and 0 < res.low[0] <= res.high[0]
        # the rounding floor is relative to the distance itself
        assert res.gap[0] <= max(1e-6 * res.scale, 1e-12 * far) or res.method[0] == "far"
        assert res.low[0] <= far * (1 + 1e-12) and res.high[0] >= far * (1 - 1e-9) - 3 * res.scale
        if true_ish is not None:
            assert res.low[0] <= true_ish[1] and true_ish[0] <= res.high[0]
    assert FAR * 2.0 < 1e20 and distances(X, c + 1e20 * u).method[0] == "far"
    # far queries near the float limit: finite, ordered bounds
    big = np.array([1e307, -1e307, 0.0, 0.0])
    res = distances(X * 1e300, np.vstack([big, -big]))
    assert np.all(np.isfinite(res.low)) and np.all(res.low <= res.high) and np.all(res.status == 0)


def test_scaling_by_powers_of_two_is_exact_and_translation_nearly_so():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((300, 6))
    Q = rng.standard_normal((40, 6)) * 1.5
    base = mc_hull.hull_distance(X, Q)
    for k in (-900, -40, 37, 900):
        got = mc_hull.hull_distance(np.ldexp(X, k), np.ldexp(Q, k))
        for a, b in zip(got, base):
            # equal up to the final one-ulp outward rounding
            np.testing.assert_allclose(a, np.ldexp(b, k), rtol=4e-16, atol=0)
    t = 12345.678
    got = mc_hull.hull_distance(X + t, Q + t)
    for a, b in zip(got, base):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)


def test_answers_do_not_depend_on_the_batch():
    rng = np.random.default_rng(8)
    X = rng.standard_normal((1100, 8))
    Q = rng.standard_normal((60, 8))
    whole = mc_hull.hull_distance(X, Q)
    one = [mc_hull.hull_distance(X, q) for q in Q[:10]]
    far_batch = mc_hull.hull_distance(X, np.vstack([Q[:10], 1e6 * Q[10:]]))
    for j in range(10):
        for a, b, c in zip(whole, one[j], far_batch):
            assert abs(a[j] - b[0]) <= 1e-6 and abs(a[j] - c[j]) <= 1e-6
        assert (whole.high[j] == 0) == (one[j].high[0] == 0)


def test_membership_rule_consistency_near_the_boundary():
    """Queries k * tol * s outside a flat facet: inside for k <= 0.9, outside for k >= 1.1, as in_hull."""
    rng = np.random.default_rng(21)
    X = rng.uniform(-1, 1, (400, 5))
    X[:, 0] = np.clip(X[:, 0], -1, 0.5)          # a flat facet at x0 = 0.5 (many points on it)
    s = _scale(X)
    for tol in (1e-12, 1e-9, 1e-6):
        k = rng.choice([-3, -1, 0, 0.5, 0.9, 1.1, 3, 10, 1e3], 40)
        Q = rng.uniform(-0.3, 0.3, (40, 5))
        Q[:, 0] = 0.5 + k * tol * s
        offset = Q[:, 0] - 0.5                    # exact distance to the facet (as stored)
        res = distances(X, Q, tol=tol)
        np.testing.assert_array_equal(res.status, np.where(k <= 0.9, 1, 0))
        dec = mc_hull.decide(X, Q, tol=tol)      # the membership solver may leave a tie undecided
        known = dec.status >= 0
        assert known.mean() >= 0.9
        np.testing.assert_array_equal(dec.status[known], res.status[known])
        np.testing.assert_array_equal(dec.status[known] == 1, res.high[known] == 0.0)
        out = res.status == 0
        assert np.all(res.low[out] <= offset[out]) and np.all(offset[out] <= res.high[out])
        assert np.all(res.gap[out] <= 1e-6 * s)


def test_qp_solver_agrees_and_caps_are_reported():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((300, 6))
    Q = rng.standard_normal((20, 6)) * 1.4
    a = distances(X, Q)
    b = distances(X, Q, solver="qp")
    assert np.all(a.low <= b.high) and np.all(b.low <= a.high)
    np.testing.assert_array_equal(a.status, b.status)
    assert set(b.method) <= {"qp", "membership"}
    capped, full = distances(X, 3 * Q, max_rounds=1), distances(X, 3 * Q)
    assert not np.all(capped.converged) and np.all(full.converged)
    assert np.all(capped.low <= full.high * (1 + 1e-12)) and np.all(capped.high >= full.low)
    assert np.all(capped.gap[~capped.converged] > 1e-6 * capped.scale)
    with pytest.warns(RuntimeWarning, match="hit a cap"):
        mc_hull.hull_distance(X, 3 * Q, max_rounds=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mc_hull.hull_distance(X, Q)


def test_single_query_shapes_and_nnls_failure_falls_back(monkeypatch):
    X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    low, high, nn = mc_hull.hull_distance(X, [1.0, 1.0])
    assert low.shape == high.shape == nn.shape == (1,)
    assert low[0] <= math.sqrt(0.5) <= high[0] and high[0] - low[0] <= 1e-6
    assert nn[0] == 1.0
    import mc_hull.solvers.distance as mod

    def broken(points, queries, idx, sizes, scale):
        lam, offs, R = real(points, queries, idx, sizes, scale)
        return np.zeros_like(lam), offs, np.full_like(R, np.nan)

    real = mod.master
    monkeypatch.setattr(mod, "master", broken)
    res = distances(X, [[1.0, 1.0], [0.2, 0.2]])
    assert list(res.method) == ["qp", "qp"]
    assert res.low[0] <= math.sqrt(0.5) <= res.high[0] and res.high[1] == 0.0


@pytest.mark.parametrize("points, queries, kwargs, match", [
    (np.array([[np.nan, 0.0], [1.0, 1.0]]), [0.0, 0.0], {}, "NaN"),
    (np.eye(2), [np.inf, 0.0], {}, "NaN or inf"),
    (np.zeros((0, 2)), [0.0, 0.0], {}, "shape"),
    (np.zeros(3), [0.0], {}, "shape"),
    (np.eye(3), [0.0, 0.0], {}, "expected shape"),
    ([["a", "b"]], ["c", "d"], {}, "numeric"),
    (np.eye(2), [0.0, 0.0], {"tol": 0.0}, "tol"),
    (np.eye(2), [0.0, 0.0], {"tol": 1.5}, "tol"),
    (np.eye(2), [0.0, 0.0], {"gap": -1.0}, "gap"),
    (np.eye(2), [0.0, 0.0], {"solver": "simplex"}, "solver"),
    (np.eye(2), [0.0, 0.0], {"max_rounds": 0}, "max_rounds"),
])
def test_bad_input_is_one_clear_input_error(points, queries, kwargs, match):
    with pytest.raises(InputError, match=match):
        mc_hull.hull_distance(points, queries, **kwargs)


def test_clustered_median_interval_covers():
    from mc_hull.stats.distances import median_interval

    rng = np.random.default_rng(0)
    for R, K, icc in [(5, 100, 0.3), (40, 10, 0.1), (100, 1, 0.0)]:
        cover = 0
        for _ in range(200):
            shift = rng.standard_normal(R) * math.sqrt(icc)
            v = (shift[:, None] + rng.standard_normal((R, K)) * math.sqrt(1 - icc)).ravel()
            med, lo, hi = median_interval(np.exp(v), np.repeat(np.arange(R), K))
            assert lo <= med <= hi
            cover += lo <= 1.0 <= hi          # the true median of exp(N(0, 1))
        assert cover >= 190, (R, K, icc, cover)   # 99% intervals: >= 95% of 200 with margin


def test_cell_summary_counts_inside_as_near_and_uses_outside_for_the_median():
    from mc_hull.stats.distances import cell_summary, ratio_quantiles

    rep = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    status = np.array(["inside", "outside", "outside", "outside", "undecided", "outside", "inside", "outside"])
    high = np.array([0.0, 0.005, 0.5, 0.05, 0.1, 2.0, 0.0, 0.09])
    nn = np.ones(8)
    row = cell_summary(rep, status, high, nn)
    assert row["outside_measured"] == 5
    assert row["dist_nn_median"] == 0.09                      # of 0.005, 0.05, 0.09, 0.5, 2.0
    assert row["dist_nn_low"] <= 0.09 <= row["dist_nn_high"]
    assert row["p_near_1pct"] == pytest.approx(3 / 7)         # 2 inside + 0.005; the undecided is left out
    assert row["p_near_10pct"] == pytest.approx(5 / 7)
    assert row["p_near_10pct_low"] <= 5 / 7 <= row["p_near_10pct_high"]
    q = ratio_quantiles(status, high, nn)
    assert q["outside"] == 5 and q[0.5] == 0.09
    empty = cell_summary(rep[:1], status[:1], high[:1], nn[:1])
    assert empty["outside_measured"] == 0 and math.isnan(empty["dist_nn_median"]) and empty["p_near_1pct"] == 1.0


def test_spec_measure_field_and_trial_columns():
    from mc_hull.errors import PlanError, SpecError
    from mc_hull.jobs.plan import Shard
    from mc_hull.spec import Spec
    from mc_hull.samplers import replicate_data
    from mc_hull.jobs.trial import COLUMNS, DISTANCE_COLUMNS, check_measure, run_shard

    base = dict(distribution="gaussian", dims=(3,), sizes=(30,), trials=40, queries_per_set=20, seed=3)
    plain = Spec(**base)
    dist = Spec(**base, measure="distance")
    assert "measure" not in plain.to_dict() and plain.run_id == Spec.from_dict(plain.to_dict()).run_id
    assert dist.to_dict()["measure"] == "distance" and dist.run_id != plain.run_id
    with pytest.raises(SpecError, match="measure"):
        Spec(**base, measure="volume")
    with pytest.raises(SpecError, match="nested"):
        Spec(**base, measure="distance", nested=True)
    shard = Shard("gaussian", 3, 30, 0, 2)
    a, b = run_shard(plain, shard), run_shard(dist, shard)
    assert tuple(a) == COLUMNS and tuple(b) == COLUMNS + DISTANCE_COLUMNS
    for name in COLUMNS[1:]:           # membership rows unchanged by the extra measure (but the run id)
        if name != "solve_seconds":
            np.testing.assert_array_equal(a[name], b[name])
    X, Q = replicate_data(dist, 3, 30, 1)
    ref = distances(X, Q)
    np.testing.assert_array_equal(b["distance_high"][20:], ref.high)
    np.testing.assert_array_equal(b["nn_distance"][20:], ref.nn)
    assert np.all((b["distance_high"] == 0) == (b["status"] == 1))
    check_measure(dist)
    with pytest.raises(PlanError, match="memory"):
        check_measure(Spec(**{**base, "sizes": (10**9,)}, measure="distance"))


# -- integration: runs, queries, hull-tests, the store -------------------------------------------
def _cli(capsys, *argv):
    from mc_hull.cli import main

    code = main([str(a) for a in argv])
    return code, capsys.readouterr()


def test_run_measure_distance_rows_and_query(tmp_path, capsys):
    import pyarrow.parquet as pq

    from mc_hull.query import cell_estimates
    from mc_hull.store import SCHEMA, SCHEMA_DISTANCE, ResultStore

    out = tmp_path / "res"
    common = ["--distribution", "gaussian", "--dims", "3", "--sizes", "27", "--trials", "120",
              "--queries-per-set", "30", "--out", out, "--serial", "--no-progress"]
    code, printed = _cli(capsys, "run", *common)
    assert code == 0, printed.err
    plain = cell_estimates(out)
    assert "dist_nn_median" not in plain.column_names          # a membership run: today's table
    files = sorted(out.rglob("*.parquet"))
    assert files and all(pq.read_schema(f).equals(SCHEMA, check_metadata=False) for f in files)
    code, printed = _cli(capsys, "run", *common, "--measure", "distance", "--new-run")
    assert code == 0, printed.err
    assert "dist_nn_median" in printed.out and "p_near_10pct" in printed.out
    rows = ResultStore(str(out)).trials()
    assert set(SCHEMA_DISTANCE.names) <= set(rows.column_names)
    measured = rows.filter(pa_is_valid(rows, "distance_high"))
    assert measured.num_rows == 120 and rows.num_rows == 240        # the membership run's rows: nulls
    t = measured.to_pydict()
    for st, lo, hi, nn in zip(t["status"], t["distance_low"], t["distance_high"], t["nn_distance"]):
        assert 0 <= lo <= hi <= nn * (1 + 1e-12)
        assert (hi == 0.0) == (st == "inside")
    est = cell_estimates(out)
    (row,) = est.to_pylist()
    assert row["trials"] == 120 and row["outside_measured"] == row["trials"] - row["inside"]
    assert row["dist_nn_low"] <= row["dist_nn_median"] <= row["dist_nn_high"] <= 1.0
    assert row["p_hat"] <= row["p_near_1pct"] <= row["p_near_10pct"]
    assert row["p_near_10pct_low"] <= row["p_near_10pct"] <= row["p_near_10pct_high"]
    # the membership columns of the two runs agree trial by trial
    by_run = {}
    for r in rows.to_pylist():
        by_run.setdefault(r["run_id"], {})[(r["replicate"], r["query"])] = r["status"]
    a, b = by_run.values()
    assert a == b
    code, printed = _cli(capsys, "plot", out, "--out", tmp_path / "fig.svg")
    assert code == 0, printed.err
    svg = (tmp_path / "fig.svg").read_text()
    assert "near-10pct-" in svg and "0.1 nn" in svg          # P(distance <= 0.1 nn) beside p
    with pytest.raises(SystemExit) as exc:
        _cli(capsys, "run", *common, "--measure", "volume")
    assert exc.value.code == 2 and "--measure" in capsys.readouterr().err


def pa_is_valid(table, name):
    import pyarrow.compute as pc

    return pc.is_valid(table.column(name))


def test_store_accepts_exactly_the_two_row_schemas(tmp_path):
    import pyarrow as pa

    from mc_hull.errors import StoreError
    from mc_hull.store import SCHEMA, SCHEMA_DISTANCE, MemoryStore

    store = MemoryStore()
    row = {f.name: [None] for f in SCHEMA_DISTANCE}
    good = pa.table({"run_id": ["a"], "replicate": [0], "query": [0], "inside": [True], "status": ["inside"],
                     "method": ["m"], "certificate_value": [0.0], "solve_seconds": [0.0], "rounds": [1]},
                    schema=SCHEMA)
    store.publish("trials", "a", "u0", good, partition={"distribution": "g", "d": 2, "n": 3})
    wide = good.append_column("distance_low", pa.array([0.0])).append_column(
        "distance_high", pa.array([0.0])).append_column("nn_distance", pa.array([0.5]))
    assert wide.schema.equals(SCHEMA_DISTANCE)
    store.publish("trials", "b", "u0", wide, partition={"distribution": "g", "d": 2, "n": 3})
    half = good.append_column("distance_low", pa.array([0.0]))
    with pytest.raises(StoreError, match="schema"):
        store.publish("trials", "c", "u0", half, partition={"distribution": "g", "d": 2, "n": 3})
    both = store.read("trials")
    assert both.num_rows == 2 and both.column("nn_distance").to_pylist() in ([None, 0.5], [0.5, None])
    only = store.read("trials", "a")
    assert only.schema.names == list(SCHEMA.names) + ["distribution", "d", "n"]
    del row


def test_hull_test_measure_distance(tmp_path, capsys):
    from mc_hull.store import HullTestStore

    rng = np.random.default_rng(9)
    X = rng.standard_normal((200, 4))
    Q = np.vstack([rng.standard_normal((30, 4)) * 1.5, X[:5]])
    np.save(tmp_path / "train.npy", X)
    np.save(tmp_path / "test.npy", Q)
    out = tmp_path / "out"
    args = ["hull-test", "--train", tmp_path / "train.npy", "--test", tmp_path / "test.npy", "--out", out, "--serial"]
    code, printed = _cli(capsys, *args, "--measure", "distance")
    assert code == 0, printed.err
    assert "distance/nn over" in printed.out and "median" in printed.out
    code, printed = _cli(capsys, *args)                    # membership: its own test id, today's rows
    assert code == 0, printed.err and "distance/nn" not in printed.out
    store = HullTestStore(str(out))
    records = store.records()
    assert len(records) == 2
    (dist_id,) = [k for k, r in records.items() if r.get("measure") == "distance"]
    (plain_id,) = [k for k in records if k != dist_id]
    assert "nn_distance" not in store.points(plain_id).column_names
    rows = store.points(dist_id).to_pydict()
    ref = distances(X, Q)
    np.testing.assert_array_equal(rows["distance_high"], ref.high)
    np.testing.assert_array_equal(rows["nn_distance"], ref.nn)
    assert rows["distance_high"][-5:] == [0.0] * 5 and rows["status"][-5:] == ["inside"] * 5
    summary = records[dist_id]["distance"]
    assert summary["outside_measured"] == sum(s == "outside" for s in rows["status"])
    assert summary["dist_nn_q10"] <= summary["dist_nn_q50"] <= summary["dist_nn_q90"] <= 1.0
    with pytest.raises(SystemExit) as exc:
        _cli(capsys, *args, "--measure", "area")
    assert exc.value.code == 2 and "--measure" in capsys.readouterr().err
