"""in_hull: certificates, tie rule, degenerate inputs, scales, and agreement with an independent LP."""

import numpy as np
import pytest
from scipy.optimize import linprog

import mc_hull
from mc_hull.errors import InputError, UndecidedError
from mc_hull.solvers import Candidates, Solver, get_solver
from mc_hull.solvers.certificates import Frame, inside_residual, outside_margins

SOLVERS = ["lp", "auto"]


def independent_lp(X, x):
    """Feasibility LP lam >= 0, sum lam = 1, X.T lam = x, solved directly with HiGHS."""
    N = X.shape[0]
    res = linprog(np.zeros(N), A_eq=np.vstack([X.T, np.ones(N)]), b_eq=np.append(x, 1.0),
                  bounds=[(0, None)] * N, method="highs")
    assert res.status in (0, 2), res.message
    return res.status == 0


@pytest.mark.parametrize("solver", SOLVERS)
def test_centroid_inside_far_point_outside(solver):
    X = np.random.default_rng(0).standard_normal((50, 4))
    assert mc_hull.in_hull(X, X.mean(axis=0), solver=solver) is True
    assert mc_hull.in_hull(X, 100 * np.ones(4), solver=solver) is False


@pytest.mark.parametrize("solver", SOLVERS)
def test_vertices_facets_and_duplicates_count_inside(solver):
    # The unit square: vertices, an edge midpoint, and a point just outside the edge.
    X = np.array([[0, 0], [1, 0], [0, 1], [1, 1], [1, 1]], dtype=float)
    Q = np.array([[1, 1], [0.5, 1.0], [0.5, 1.0 + 1e-12], [0.5, 1.0 + 1e-6], [0.5, 0.5]])
    assert mc_hull.in_hull(X, Q, solver=solver).tolist() == [True, True, True, False, True]


@pytest.mark.parametrize("solver", SOLVERS)
def test_rank_deficient_training_set(solver):
    rng = np.random.default_rng(1)
    basis = rng.standard_normal((2, 5))
    X = rng.standard_normal((40, 2)) @ basis          # a 2-plane through 0 in R^5
    on_plane = X[:3].mean(axis=0)
    off_plane = on_plane + 1e-3 * rng.standard_normal(5)
    assert mc_hull.in_hull(X, np.stack([on_plane, off_plane]), solver=solver).tolist() == [True, False]


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e6])
def test_scale_invariance(solver, scale):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((60, 3))
    Q = rng.standard_normal((40, 3))
    base = mc_hull.in_hull(X, Q, solver="lp")
    assert np.array_equal(mc_hull.in_hull(scale * X + 3 * scale, scale * Q + 3 * scale, solver=solver), base)


@pytest.mark.parametrize("solver", SOLVERS)
def test_single_point_and_n_at_most_d(solver):
    X = np.array([[1.0, 2.0, 3.0]])
    assert mc_hull.in_hull(X, [1.0, 2.0, 3.0], solver=solver) is True
    assert mc_hull.in_hull(X, [1.0, 2.0, 3.1], solver=solver) is False
    rng = np.random.default_rng(3)
    X = rng.standard_normal((4, 6))                   # N <= d: hull has no interior
    Q = rng.standard_normal((20, 6))
    assert not mc_hull.in_hull(X, Q, solver=solver).any()


@pytest.mark.parametrize("solver", SOLVERS)
def test_agrees_with_independent_lp(solver):
    rng = np.random.default_rng(4)
    checked = 0
    for d, N in [(1, 5), (2, 8), (3, 20), (5, 60), (8, 200)]:
        X = rng.standard_normal((N, d))
        Q = rng.standard_normal((15, d)) * 0.8
        got = mc_hull.in_hull(X, Q, solver=solver)
        want = [independent_lp(X, q) for q in Q]
        assert got.tolist() == want
        checked += len(Q)
    assert checked == 75


def test_cvxpy_cross_check_agrees_with_lp():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((80, 4))
    Q = rng.standard_normal((12, 4))
    dec = mc_hull.decide(X, Q, solver="cvxpy")
    assert np.array_equal(dec.status == 1, mc_hull.in_hull(X, Q, solver="lp"))
    assert (dec.status >= 0).all()


def test_decisions_carry_checked_certificates():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((100, 3))
    Q = rng.standard_normal((30, 3))
    dec = mc_hull.decide(X, Q, solver="lp")
    assert set(dec.status.tolist()) == {0, 1}
    assert (dec.certificate[dec.status == 1] <= 1e-9).all()
    assert (dec.certificate[dec.status == 0] > 1e-9).all()
    assert (dec.seconds > 0).all()


class _Liar(Solver):
    """Claims every query is outside along a useless direction, and inside with bad weights."""

    name = "liar"

    def _propose(self, points, queries, atol):
        cand = Candidates.empty(len(queries), points.shape[1], "liar")
        cand.kind[::2] = 0
        cand.directions[::2] = 0.0  # zero direction: cannot certify anything
        for b in range(1, len(queries), 2):
            cand.kind[b] = 1
            cand.support[b] = np.array([0])
            cand.weights[b] = np.array([1.0])
        return cand


def _no_edge_stage(monkeypatch):
    """Switch off the base class's edge stage (it would settle the liar's queries itself)."""
    from mc_hull.solvers import edges

    monkeypatch.setattr(edges, "edge_candidates", lambda P, Qf, scale, atol: (
        np.full(len(Qf), -1, dtype=np.int8), np.zeros(Qf.shape), [None] * len(Qf), [None] * len(Qf),
        np.full(len(Qf), "none", dtype=object)))


def test_unverified_answers_become_undecided_or_fall_back(monkeypatch):
    X = np.random.default_rng(7).standard_normal((30, 2))
    Q = np.array([[50.0, 50.0], [0.01, 0.02], [60.0, 0.0], [0.0, 0.0]])
    # The base class's own stage (edge_candidates) settles these with its own checked certificates ...
    staged = _Liar(fallbacks=()).decide(X, Q)
    assert staged.status.tolist() == [0, 1, 0, 1]
    assert all(m.startswith("liar:edge-") for m in staged.method)     # never the liar's own answer
    # ... and without it, the lies are never counted as outside or inside
    _no_edge_stage(monkeypatch)
    alone = _Liar(fallbacks=()).decide(X, Q)
    assert (alone.status == -1).all()
    rescued = _Liar(fallbacks=("lp",)).decide(X, Q)
    assert rescued.status.tolist() == [0, 1, 0, 1]
    assert all(m.startswith("lp") for m in rescued.method)


def test_fallback_chain_follows_each_fallbacks_own_fallbacks():
    from mc_hull.solvers import get_solver

    assert [s.name for s in get_solver("colgen").fallback_chain()] == ["lp", "lp-ipm"]
    assert [s.name for s in get_solver("cvxpy").fallback_chain()] == ["lp", "lp-ipm"]
    assert [s.name for s in get_solver("lp").fallback_chain()] == ["lp-ipm"]
    assert get_solver("lp-ipm").fallback_chain() == []
    assert [s.name for s in _Liar(fallbacks=("lp-ipm", "lp")).fallback_chain()] == ["lp-ipm", "lp"]


def test_in_hull_refuses_to_guess(monkeypatch):
    import mc_hull.membership as membership

    monkeypatch.setattr(membership, "get_solver", lambda name: _Liar(fallbacks=()))
    _no_edge_stage(monkeypatch)
    with pytest.raises(UndecidedError, match="could not be certified"):
        mc_hull.in_hull(np.eye(3), np.zeros((2, 3)))


@pytest.mark.parametrize("points, queries, match", [
    (np.array([[np.nan, 0.0], [1.0, 1.0]]), [0.0, 0.0], "NaN"),
    (np.eye(2), [np.inf, 0.0], "NaN or inf"),
    (np.zeros((0, 2)), [0.0, 0.0], "shape"),
    (np.zeros(3), [0.0], "shape"),
    (np.eye(3), [0.0, 0.0], "expected shape"),
    (np.eye(3), np.zeros((2, 2, 3)), "expected shape"),
    ([["a", "b"]], ["c", "d"], "numeric"),
])
def test_bad_arrays(points, queries, match):
    with pytest.raises(InputError, match=match):
        mc_hull.in_hull(points, queries)


def test_certificate_helpers():
    X = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
    assert inside_residual(X, np.array([0.5, 0.5]), np.array([0, 1, 2]), np.array([0.5, 0.25, 0.25])) == 0.0
    assert inside_residual(X, np.array([0.5, 0.5]), np.array([0]), np.array([-1.0])) == np.inf
    m = outside_margins(X, np.array([[3.0, 3.0]]), np.array([[1.0, 1.0]]))
    assert m[0] == pytest.approx((6 - 2) / 2)
    assert Frame.of(np.zeros((2, 2))).scale == 1.0
    assert get_solver("auto").name in ("lp", "colgen")
