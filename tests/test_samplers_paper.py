"""Sampler contract for every family, the paper's samplers, their parameters, and the Fig. 1c finding."""

from __future__ import annotations

import numpy as np
import pytest

from mc_hull import seeding
from mc_hull.cli import main as cli_main
from mc_hull.errors import SpecError
from mc_hull.query import cell_estimates, parse_params
from mc_hull.runs.runner import execute
from mc_hull.samplers import SAMPLERS, get_sampler
from mc_hull.samplers.paper import Subspace
from mc_hull.solvers import get_solver
from mc_hull.spec import Spec


def _rng(seed: int, *tags: int) -> np.random.Generator:
    return seeding.rng(seed, (1, 2, 3), *tags)


class SamplerContract:
    """What every sampler promises; a family subclasses this with ``name`` and its dimensions.

    ``intrinsic`` / ``affine`` are the expected dimensions (None: the ambient d).
    """

    name: str = ""
    params: dict = {}
    intrinsic: int | None = None
    affine: int | None = None
    d = 5

    def bound(self, seed: int = 0, d: int | None = None):
        return get_sampler(self.name, d or self.d, **self.params).bind(_rng(seed, seeding.STRUCTURE))

    def draw(self, n: int, seed: int = 0) -> np.ndarray:
        return self.bound(seed).random(n, _rng(seed, seeding.TRAIN))

    def test_registered_with_its_name(self):
        assert SAMPLERS[self.name].name == self.name

    @pytest.mark.parametrize("n", [0, 1, 37])
    def test_shape_and_dtype(self, n):
        X = self.draw(n)
        assert X.shape == (n, self.d) and X.dtype == np.float64 and np.all(np.isfinite(X))

    def test_reproducible_from_the_rng_alone(self):
        np.random.seed(1)
        a = self.draw(50, seed=3)
        np.random.seed(2)  # the global state plays no part
        assert np.array_equal(a, self.draw(50, seed=3))
        assert not np.array_equal(a, self.draw(50, seed=4))

    def test_dims(self):
        dims = get_sampler(self.name, self.d, **self.params).dims
        assert dims == {"ambient": self.d, "intrinsic": self.intrinsic or self.d, "affine": self.affine or self.d}

    def test_affine_hull_dimension_measured(self):
        """Training points and queries of one replicate (one bound sampler) span dims['affine'] affinely."""
        s = self.bound(seed=5)
        X = np.vstack([s.random(4 * self.d, _rng(5, seeding.TRAIN)), s.random(8, _rng(5, seeding.QUERY))])
        sv = np.linalg.svd(X - X.mean(axis=0), compute_uv=False)
        rank = int(np.sum(sv > 1e-9 * sv[0]))
        assert rank == s.dims["affine"]

    def test_params_described_and_parsed_back(self):
        s = get_sampler(self.name, self.d, **self.params)
        assert parse_params(s.describe()) == s.options


class TestGaussian(SamplerContract):
    name = "gaussian"


class TestBall(SamplerContract):
    name = "ball"


class TestCube(SamplerContract):
    name = "cube"


class TestSphere(SamplerContract):
    name, intrinsic = "sphere", 4


class TestManifold(SamplerContract):
    name, intrinsic = "manifold", 1


class TestSubspace(SamplerContract):
    name, params, intrinsic, affine = "subspace", {"k": 3}, 3, 3


class TestStudentT(SamplerContract):
    name, params = "student-t", {"df": 2.5}


class TestMixture(SamplerContract):
    name, params = "mixture", {"components": 4, "separation": 6.0}


# -- the families' own properties -------------------------------------------------------
def test_manifold_is_one_curve():
    """x_j = sin(j t): every coordinate is a function of t, e.g. sin 3t = 3 sin t - 4 sin^3 t."""
    X = TestManifold().draw(500)
    x1, x3 = X[:, 0], X[:, 2]
    assert np.allclose(x3, 3 * x1 - 4 * x1 ** 3, atol=1e-12)
    assert np.all(np.abs(X) <= 1)


def test_subspace_needs_its_embedding_and_draws_a_new_one_per_replicate():
    with pytest.raises(RuntimeError, match="bind"):
        Subspace(4, k=2).random(3, np.random.default_rng(0))
    a, b = (Subspace(6, k=2).bind(np.random.default_rng(s)) for s in (0, 1))
    assert not np.allclose(a.basis, b.basis)
    assert get_sampler("subspace", 6, k=2).exact_as == ("gaussian", 2)


@pytest.mark.parametrize("solver", ["colgen", "lp"])
def test_flat_training_sets_are_decided_like_their_coordinates(solver):
    """Rank-deficient X (a 3-flat in R^8): same answers as for the R^3 coordinates, none undecided."""
    engine = get_solver(solver)
    for seed, n in [(0, 12), (1, 40), (2, 3)]:
        s = Subspace(8, k=3).bind(_rng(seed, seeding.STRUCTURE))
        X, Q = s.random(n, _rng(seed, seeding.TRAIN)), s.random(25, _rng(seed, seeding.QUERY))
        Z, Zq = (np.linalg.lstsq(s.basis, (P - s.offset).T, rcond=None)[0].T for P in (X, Q))
        flat, coords = engine.decide(X, Q, tol=1e-9), engine.decide(Z, Zq, tol=1e-9)
        assert np.all(flat.status >= 0) and np.array_equal(flat.status, coords.status)
    off = engine.decide(X, Q[:1] + 1e-3 * np.linalg.svd(s.basis)[0][:, -1], tol=1e-9)  # normal to the flat
    assert off.status.tolist() == [0]


def test_student_t_has_heavier_tails_than_the_gaussian():
    t = get_sampler("student-t", 3, df=3).random(20000, np.random.default_rng(0))
    g = get_sampler("gaussian", 3).random(20000, np.random.default_rng(0))
    assert np.mean(np.abs(t[:, 0]) > 5) > 0.005 > 0.0005 > np.mean(np.abs(g[:, 0]) > 5)
    near = get_sampler("student-t", 3, df=1e6).random(20000, np.random.default_rng(1))
    assert np.std(near) == pytest.approx(1.0, abs=0.02)  # df -> inf: the Gaussian


def test_mixture_has_clusters():
    d = 5
    s = get_sampler("mixture", d, components=3, separation=8.0).bind(np.random.default_rng(2))
    X = s.random(3000, np.random.default_rng(3))
    dist2 = ((X[:, None, :] - s.centres[None]) ** 2).sum(axis=2)
    assert np.mean(dist2.min(axis=1)) == pytest.approx(d, rel=0.1)  # unit Gaussians around the centres
    share = np.bincount(dist2.argmin(axis=1), minlength=3) / len(X)
    assert np.all(np.abs(share - 1 / 3) < 0.05)
    assert np.trace(np.cov(X.T)) > 10 * d  # far more spread than one cluster
    plain = get_sampler("mixture", d, separation=0.0).bind(np.random.default_rng(2))
    assert np.all(plain.centres == 0)


# -- parameters -------------------------------------------------------------------------
@pytest.mark.parametrize("name, params, needle", [
    ("subspace", {"k": 0}, "params.k: subspace needs an integer in [1, 8] (k <= d), got 0"),
    ("subspace", {"k": 9}, "in [1, 8]"),
    ("subspace", {"k": 2.5}, "params.k"),
    ("subspace", {"k": "3"}, "params.k"),
    ("subspace", {"k": True}, "params.k"),
    ("student-t", {"df": 0}, "params.df: student-t needs a finite number >= 0.125 and <= 1e+12"),
    ("student-t", {"df": float("inf")}, "params.df"),
    ("student-t", {"df": "x"}, "params.df"),
    ("mixture", {"components": 0}, "params.components: mixture needs an integer in [1, 1250000] "
                                   "(components x d <= 1e+07), got 0"),
    ("mixture", {"components": 10**9}, "params.components: mixture needs an integer in [1, 1250000]"),
    ("mixture", {"separation": 1e308}, "params.separation: mixture needs a finite number >= 0 and <= 1e+06"),
    ("mixture", {"separation": -1.0}, "params.separation: mixture needs a finite number >= 0"),
    ("mixture", {"separation": float("nan")}, "params.separation"),
    ("manifold", {"k": 2}, "params: manifold takes no parameter 'k'"),
])
def test_bad_parameters_name_the_field_and_range(name, params, needle):
    with pytest.raises(SpecError) as err:
        get_sampler(name, 8, **params)
    assert str(err.value).startswith("params") and needle in str(err.value)


def test_parameters_from_toml_and_cli_strings(tmp_path):
    from mc_hull.cli import build_parser
    from mc_hull.cli.run import build_panels

    def build_spec(args):
        return build_panels(args)[0].spec

    toml = tmp_path / "spec.toml"
    toml.write_text('distribution = "mixture"\ndims = [3]\n[params]\ncomponents = 2\nseparation = 5.0\n')
    args = build_parser().parse_args(["run", str(toml), "--param", "components=4"])
    spec = build_spec(args)
    assert dict(spec.params) == {"components": 4, "separation": 5.0}
    args = build_parser().parse_args(["run", "--distribution", "subspace", "--dims", "4", "--param", "k=3"])
    assert build_spec(args).sampler(4).k == 3
    with pytest.raises(SpecError, match=r"params.k: .*\[1, 2\]"):  # checked against every d of the spec
        Spec(distribution="subspace", dims=(2, 4), params=(("k", 3),))


@pytest.mark.parametrize("argv, needle", [
    (["--distribution", "subspace", "--dims", "4", "--param", "k=5"], "params.k"),
    (["--distribution", "student-t", "--param", "df=-2"], "params.df"),
    (["--distribution", "mixture", "--param", "components=two"], "params.components"),
])
def test_cli_bad_parameter_one_line_exit_2_nothing_written(tmp_path, capsys, argv, needle):
    out = tmp_path / "out"
    assert cli_main(["run", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and "Traceback" not in err[0]
    assert not out.exists()


# -- the query output ---------------------------------------------------------------------
def test_runs_with_different_parameters_are_different_cells(tmp_path, capsys):
    out = str(tmp_path / "out")
    for k in (2, 3):
        execute(Spec(distribution="subspace", dims=(4,), sizes=(6,), trials=20, queries_per_set=10,
                     params=(("k", k),)), out, backend="serial", progress=False, new_run=True)
    execute(Spec(distribution="manifold", dims=(4,), sizes=(6,), trials=20, queries_per_set=10), out,
            backend="serial", progress=False, new_run=True)
    rows = {(r["distribution"], r["params"]): r for r in cell_estimates(out).to_pylist()}
    assert set(rows) == {("subspace", "k=2"), ("subspace", "k=3"), ("manifold", "")}
    assert all(r["trials"] == 20 and r["d"] == 4 for r in rows.values())
    assert [(rows[k]["d_intrinsic"], rows[k]["d_affine"]) for k in sorted(rows)] == [(1, 4), (2, 2), (3, 3)]
    assert rows[("manifold", "")]["exact"] is None and rows[("subspace", "k=2")]["exact"] is not None
    assert cli_main(["query", out, "--format", "csv"]) == 0
    header = capsys.readouterr().out.splitlines()[0].split(",")
    assert header[:6] == ["distribution", "d", "n", "params", "d_intrinsic", "d_affine"]


def test_a_store_without_run_records_still_reads(tmp_path):
    out = tmp_path / "out"
    for dist in ("gaussian", "subspace"):
        execute(Spec(distribution=dist, dims=(3,), sizes=(5,), trials=10, queries_per_set=10), str(out),
                backend="serial", progress=False, new_run=True)
    for record in (out / "_runs").iterdir():
        record.unlink()
    rows = {r["distribution"]: r for r in cell_estimates(str(out)).to_pylist()}
    assert (rows["gaussian"]["params"], rows["gaussian"]["d_affine"]) == ("", 3)
    assert (rows["subspace"]["params"], rows["subspace"]["d_affine"], rows["subspace"]["exact"]) == ("?", None, None)


# -- Fig. 1c: p depends on the affine dimension, not the ambient one ------------------------
FIG1C_SIZES = (10, 27, 80)  # around the Gaussian-in-R^3 transition (exact p ~ 0.21, 0.50, 0.79)


@pytest.fixture(scope="module")
def fig1c(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("fig1c") / "out")
    common = dict(dims=(8,), sizes=FIG1C_SIZES, trials=800, queries_per_set=20, seed=11, shard_trials=800)
    execute(Spec(distribution="subspace", params=(("k", 3),), **common), out, backend="serial", progress=False)
    execute(Spec(distribution="gaussian", **common), out, backend="serial", progress=False, new_run=True)
    return {(r["distribution"], r["n"]): r for r in cell_estimates(out).to_pylist()}


def test_fig1c_subspace_in_r8_matches_the_gaussian_in_r3(fig1c):
    from mc_hull import theory

    for n in FIG1C_SIZES:
        r = fig1c[("subspace", n)]
        exact3 = float(theory.exact_inside_probability("gaussian", 3, n))
        print(f"k=3 in d=8, N={n}: p_hat={r['p_hat']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] "
              f"exact(R^3)={exact3:.3f}; gaussian R^8: {fig1c[('gaussian', n)]['p_hat']:.4f}")
        assert r["undecided"] == 0 and r["exact"] == pytest.approx(exact3)
        assert r["ci_low"] <= exact3 <= r["ci_high"]


def test_fig1c_gaussian_in_r8_is_far_lower(fig1c):
    for n in FIG1C_SIZES:
        g, s = fig1c[("gaussian", n)], fig1c[("subspace", n)]
        assert g["ci_high"] < s["ci_low"] and g["p_hat"] < 0.25 * s["p_hat"]
        assert g["ci_low"] <= g["exact"] <= g["ci_high"]


def test_query_next_to_a_densely_sampled_curve_is_decided():
    """A manifold query 2e-4 from its nearest of 10^4 training points, outside by a margin of 4e-8:
    colgen runs out of rounds and the dual simplex misses the margin by its feasibility tolerance
    (-1e-8); the interior-point fallback certifies it (found in a README measurement run)."""
    from mc_hull.samplers import replicate_data

    spec = Spec(distribution="manifold", dims=(2,), sizes=(10000,), trials=1000, queries_per_set=50, seed=2)
    X, Q = replicate_data(spec, 2, 10000, 18)
    dec = get_solver("colgen").decide(X, Q[30:31], tol=1e-9)
    assert dec.status.tolist() == [0] and dec.certificate[0] > 1e-9
