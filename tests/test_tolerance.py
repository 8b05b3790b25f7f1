"""The tolerance rule as a hostile user tries it: batch, origin, scale, rounding, float limits, bad tolerances.

Every answer must depend only on the training set and the query; a training point is never
certified outside its own hull; answers survive translation and common scaling; and data near
the float64 limits is solved without overflow.  Each case is checked against an independent
HiGHS LP run on the training set's own centred, unit-scale copy.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.optimize import linprog

import mc_hull
from mc_hull.errors import InputError
from mc_hull.solvers import get_solver, solver_names
from mc_hull.solvers.certificates import TOL_MAX, TOL_MIN, Frame, check_tol, rounding_bound

FAST = ["colgen", "lp"]


def linf_distance(X, x):
    """Independent ℓ∞ distance from x to conv(X) (an LP in weights), in units of the data."""
    N, d = X.shape
    c = X.mean(axis=0)
    s = np.abs(X - c).max() or 1.0
    A, b = (X - c).T / s, (x - c) / s
    # min t s.t. -t <= A lam - b <= t, sum lam = 1, lam >= 0
    cost = np.r_[np.zeros(N), 1.0]
    A_ub = np.block([[A, -np.ones((d, 1))], [-A, -np.ones((d, 1))]])
    b_ub = np.r_[b, -b]
    A_eq = np.r_[np.ones(N), 0.0][None, :]
    res = linprog(cost, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=[1.0], bounds=[(0, None)] * (N + 1),
                  method="highs")
    assert res.status == 0
    return res.fun * s, s


def pushed_vertices(X, eps, k=4):
    """k vertices of X (extremes of random directions) pushed out by eps * s along their direction."""
    rng = np.random.default_rng(123)
    c = X.mean(axis=0)
    s = np.abs(X - c).max()
    out = []
    for _ in range(k):
        w = rng.standard_normal(X.shape[1])
        w /= np.abs(w).sum()
        v = X[np.argmax(X @ w)]
        out.append(v + eps * s * np.sign(w) * (np.abs(w) > 0))
    return np.array(out)


@pytest.mark.parametrize("solver", FAST)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_answer_does_not_depend_on_the_batch(seed, solver):
    """The issue's example (a vertex pushed out by 1e-4 beside a far query) and its class."""
    rng = np.random.default_rng(seed)
    d = 2 + seed
    X = rng.standard_normal((200, d))
    Q = np.vstack([pushed_vertices(X, 1e-6), rng.standard_normal((6, d)) * 0.3])
    alone = np.array([mc_hull.in_hull(X, q, solver=solver) for q in Q])
    for extra in ([1e6] + [0] * (d - 1), [-1e12] * d, [1e300] * d):
        mixed = mc_hull.in_hull(X, np.vstack([Q, extra]), solver=solver)
        assert mixed[:-1].tolist() == alone.tolist()
        assert not mixed[-1]
    assert not alone[:4].any() and alone[4:].all()


def test_issue_example_vertex_pushed_out():
    X = np.random.default_rng(0).standard_normal((200, 3))
    q = X[np.argmax(X[:, 0])].copy()
    q[0] += 1e-4
    assert mc_hull.in_hull(X, q) is False
    assert mc_hull.in_hull(X, np.vstack([q, [1e6, 0, 0]]))[0] == np.False_


@pytest.mark.parametrize("offset", [1e9, -3e12, 1e15])
@pytest.mark.parametrize("solver", FAST)
def test_translation_does_not_change_answers(offset, solver):
    """Spread ~5 shifted far from the origin: a point 0.5 outside is still outside."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((300, 4)) * 5
    Q = np.vstack([pushed_vertices(X, 0.5 / np.abs(X - X.mean(0)).max()), rng.standard_normal((5, 4))])
    here = mc_hull.in_hull(X, Q, solver=solver)
    there = mc_hull.in_hull(X + offset, Q + offset, solver=solver)
    assert here.tolist() == there.tolist() == [False] * 4 + [True] * 5


@pytest.mark.parametrize("factor", [2.0 ** -1000, 2.0 ** -60, 2.0 ** 70, 2.0 ** 1000])
def test_common_power_of_two_scaling_gives_identical_decisions(factor):
    rng = np.random.default_rng(8)
    X = rng.standard_normal((150, 5))
    Q = np.vstack([rng.standard_normal((40, 5)) * 1.3, pushed_vertices(X, 1e-7)])
    a = mc_hull.decide(X, Q)
    b = mc_hull.decide(X * factor, Q * factor)
    assert a.status.tolist() == b.status.tolist()
    np.testing.assert_array_equal(a.certificate, b.certificate)


@pytest.mark.parametrize("seed,shape", [(40, (400, 40)), (3, (60, 12)), (9, (2000, 6)), (11, (50, 50))])
@pytest.mark.parametrize("tol", [TOL_MIN, 1e-9])
def test_training_points_are_never_outside_their_own_hull(seed, shape, tol):
    """The issue's d = 40 example at the tightest tolerance allowed, and other shapes (N = d too)."""
    X = np.random.default_rng(seed).standard_normal(shape)
    for data in (X, X * 1e-200, X + 1e6, X * 1e200 - 3e201):
        dec = mc_hull.decide(data, data, tol=tol)
        assert (dec.status == 1).all(), np.bincount(dec.status + 1)
        assert (dec.certificate <= tol).all()


def test_duplicates_and_rank_deficient_training_points_are_inside():
    rng = np.random.default_rng(4)
    flat = rng.standard_normal((80, 3)) @ rng.standard_normal((3, 7))   # rank 3 in R^7
    X = np.vstack([flat, flat[:20]]) + 1e7                              # duplicates, offset
    dec = mc_hull.decide(X, X, tol=TOL_MIN)
    assert (dec.status == 1).all()


@pytest.mark.parametrize("bad", [0.0, 1e-13, 1e-16, 1e-18, -1e-9, 0.02, 1.0, float("nan"), float("inf"),
                                 "1e-9", None, True, 1e-9 + 0j])
def test_tolerances_outside_the_float64_range_are_refused(bad):
    X = np.eye(3)
    with pytest.raises(InputError, match="tol"):
        mc_hull.decide(X, X, tol=bad)
    with pytest.raises(InputError, match="tol"):
        check_tol(bad)


def test_tolerance_limits_are_accepted():
    X = np.random.default_rng(0).standard_normal((30, 3))
    for tol in (TOL_MIN, TOL_MAX, 1e-9, np.float32(1e-6)):
        assert mc_hull.decide(X, X[:3], tol=tol).status.tolist() == [1, 1, 1]


@pytest.mark.parametrize("magnitude", [1e307, 5e307, 1e-300, 1e-320, 1e300])
def test_magnitudes_near_the_float_limits(magnitude):
    """The issue's 1e307 segfault / 5e307 ValueError: solved on centred, scaled data."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((100, 5)) / 4           # |X| <= ~1.2, so 1.2 * 1.5e308 stays finite
    Q = np.vstack([pushed_vertices(X, 1e-3), 0.1 * X[:5]])
    want = mc_hull.in_hull(X, Q)
    assert want.tolist() == [False] * 4 + [True] * 5
    got = mc_hull.in_hull(X * magnitude, Q * magnitude)
    if magnitude >= 1e-300:      # 1e-320 is subnormal: the data itself has lost its digits
        assert got.tolist() == want.tolist()
    assert got[4:].all()


def test_no_float_warnings_near_the_limits():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((120, 4)) / 4
    for m in (1.4e308, 2.0 ** -1060):
        data, queries = X * m, X[:10] * (m * 1.2)
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            for name in FAST:
                assert (mc_hull.decide(data, queries, solver=name).status >= 0).all()


def test_queries_far_beyond_the_data_are_outside():
    X = np.random.default_rng(1).standard_normal((50, 3)) * 1e-300
    Q = np.array([[1e300, 0, 0], [0, -1.7e308, 0], [1e-280, 0, 0], [0, 0, 0]])
    dec = mc_hull.decide(X, Q)
    assert dec.status.tolist() == [0, 0, 0, 1]
    assert dec.method[0].endswith(":far") and dec.method[1].endswith(":far")
    assert (dec.certificate[:3] > 1e6).all()


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", [n for n in solver_names() if n != "auto"])
def test_every_solver_agrees_with_an_independent_lp_near_the_boundary(seed, name):
    """Points at relative ℓ∞ distances 1e-3 .. 1e-10 outside and inside, against linprog."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((60, 4)) * 3 + 100
    Q = np.vstack([pushed_vertices(X, 1e-3), pushed_vertices(X, 1e-6), X[:3], X[:3].mean(0, keepdims=True)])
    dec = get_solver(name).decide(X, Q, tol=1e-9)
    for q, status in zip(Q, dec.status):
        dist, s = linf_distance(X, q)
        if status == 1:
            assert dist <= 1e-9 * s * (1 + 1e-6)
        elif status == 0:
            assert dist > 1e-9 * s
    assert (dec.status[:8] == 0).all() and (dec.status[8:] == 1).all()


def test_frame_is_set_by_the_training_set_alone():
    X = np.random.default_rng(0).standard_normal((30, 3))
    f = Frame.of(X)
    assert 1.0 <= f.scale < 2.0
    assert np.abs(f.points).max() == pytest.approx(f.scale)
    np.testing.assert_allclose(f.points.mean(axis=0), 0, atol=1e-15)
    assert f.data_scale() == pytest.approx(np.abs(X - X.mean(0)).max())
    single = Frame.of([[4.0, -8.0]])
    assert single.data_scale() == 8.0 and (single.points == 0).all()


def test_rounding_bound_grows_with_length_and_magnitude():
    q = np.array([[1.0, 0.0], [1e6, 0.0]])
    r = rounding_bound(q, 1.0, 2)
    assert 0 < r[0] < r[1] < 1e-8
    assert rounding_bound(q[:1], 1.0, 1000)[0] > r[0]


# -- the same limits on the command line and in spec files -------------------------------------------

@pytest.mark.parametrize("argv", [["run", "--tol", "1e-13"], ["run", "--tol", "0.5"], ["run", "--tol=-1e-9"]])
def test_run_refuses_tolerances_out_of_range(tmp_path, capsys, argv):
    from mc_hull.cli import main

    out = tmp_path / "out"
    assert main([*argv, "--dims", "2", "--sizes", "5", "--trials", "4", "--serial", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tol" in err[0] and "1e-12" in err[0]
    assert not out.exists()


@pytest.mark.parametrize("value", ['"1e-9"', "1e-16", "true"])
def test_spec_file_tolerance_is_checked_like_the_api(tmp_path, capsys, value):
    from mc_hull.cli import main

    spec = tmp_path / "spec.toml"
    spec.write_text(f'distribution = "gaussian"\ndims = [2]\nsizes = [5]\ntrials = 4\ntol = {value}\n')
    out = tmp_path / "out"
    assert main(["run", str(spec), "--serial", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tol" in err[0]
    assert not out.exists()


def test_hull_test_of_a_set_against_itself(tmp_path, capsys):
    """The issue's `hull-test --train X --test X --tol 1e-18` (76 of 400 outside): refused; at 1e-12 all inside."""
    from mc_hull.cli import main

    X = np.random.default_rng(40).standard_normal((400, 40))
    np.save(tmp_path / "x.npy", X)
    out = tmp_path / "out"
    args = ["hull-test", "--train", str(tmp_path / "x.npy"), "--test", str(tmp_path / "x.npy"), "--serial",
            "--out", str(out)]
    assert main([*args, "--tol", "1e-18"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--tol" in err[0]
    assert main([*args, "--tol", "1e-12", "--format", "json"]) == 0
    text = capsys.readouterr().out.strip()
    try:
        record = json.loads(text)
    except ValueError:                       # JSON Lines
        record = json.loads(text.splitlines()[0])
    record = record[0] if isinstance(record, list) else record
    assert record["inside"] == 400 and record["undecided"] == 0 and record["n_test"] == 400
