"""Every sampler in the registry: declared parameter ranges with finite draws, refusals outside them,
draws prefix-stable in the number of points (so a trial's identity names one point), and the Monte
Carlo path's defences (a non-finite draw or certificate is never stored as decided)."""

from __future__ import annotations

import numpy as np
import pytest

from mc_hull import seeding
from mc_hull.errors import SpecError
from mc_hull.samplers import SAMPLERS, Sampler, get_sampler
from mc_hull.samplers.base import Range

DIMS = (1, 2, 5)


def _sampler(name, d, **params):
    """A sampler of the registry with per-replicate structure bound, or None where d is too small."""
    try:
        s = get_sampler(name, d, **params)
    except SpecError:
        return None     # e.g. subspace's k = 2 default needs d >= 2
    return s.bind(seeding.rng(5, (1, 2), seeding.STRUCTURE))


def _edges(cls, d):
    """(param name, value) at each declared bound of each parameter, in dimension d."""
    for name, rule in cls.ranges.items():
        for bound in rule.bounds(d):
            if bound is not None:
                yield name, (int(bound) if rule.integer else float(bound))


def _outside(cls, d):
    """(param name, value) just outside each declared bound, and absurd values, per parameter."""
    absurd = [float("nan"), float("inf"), float("-inf"), 1e308, -1e308, True, "x", None, 10 ** 400]
    for name, rule in cls.ranges.items():
        low, high = rule.bounds(d)
        if low is not None:
            yield name, low if rule.open_low else (low - 1 if rule.integer else low - max(abs(low) * 1e-9, 1e-300))
        if high is not None:
            yield name, high + 1 if rule.integer else high * (1 + 1e-9)
        if rule.integer:
            yield name, 2.5
        for v in absurd:
            if (low is None or not isinstance(v, (int, float)) or isinstance(v, bool) or v != v
                    or v < low or (high is not None and v > high) or abs(v) == float("inf")
                    or (rule.integer and not isinstance(v, int))):
                yield name, v


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_parameter_declares_its_range(name):
    cls = SAMPLERS[name]
    missing = sorted(set(cls.params) - set(cls.ranges))
    assert not missing, f"{name}: parameters without a Range in `ranges`: {missing}"
    for pname, default in cls.params.items():   # the defaults lie inside their ranges
        cls.ranges[pname].check(name, pname, default, 8)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_draws_at_the_edges_of_every_range_are_finite(name):
    cls = SAMPLERS[name]
    for d in (2, 5):
        for pname, value in _edges(cls, d):
            s = _sampler(name, d, **{pname: value})
            assert s is not None, (name, pname, value)
            for seed in range(3):
                X = s.random(20_000, seeding.rng(seed, (7,), seeding.TRAIN))
                assert X.shape == (20_000, d) and np.isfinite(X).all(), (name, d, pname, value)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_values_outside_every_range_are_refused_in_one_line(name):
    cls = SAMPLERS[name]
    tried = 0
    for d in (2, 5):
        for pname, value in _outside(cls, d):
            with pytest.raises(SpecError) as err:
                get_sampler(name, d, **{pname: value})
            text = str(err.value)
            assert text.startswith(f"params.{pname}: {name} needs") and "\n" not in text, text
            tried += 1
    assert tried >= 10 * len(cls.ranges)


def test_student_t_range_is_where_draws_stay_finite():
    """The issue's case: below df = 1/8 numpy's chi-square underflows to 0 (an infinite point) often."""
    rng = np.random.default_rng(0)
    assert np.mean(rng.chisquare(0.02, 200_000) == 0) > 1e-4      # why df = 0.02 must be refused
    for df in (0.005, 0.01, 0.02, 0.1, 0.12, 2e12, 1.7e308):
        with pytest.raises(SpecError, match="params.df: student-t needs a finite number >= 0.125 and <= 1e"):
            get_sampler("student-t", 3, df=df)
    X = get_sampler("student-t", 3, df=0.125).random(200_000, np.random.default_rng(1))
    assert np.isfinite(X).all() and np.abs(X).max() > 1e10       # heavy, but finite
    near = get_sampler("student-t", 3, df=1e12).random(20_000, np.random.default_rng(1))
    assert np.std(near) == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_draws_are_prefix_stable_in_the_number_of_points(name):
    """random(k) is the first k rows of random(K) from the same generator state, for any k <= K."""
    for d in DIMS:
        s = _sampler(name, d)
        if s is None:
            continue
        for seed in (0, 1, 2):
            full = s.random(257, seeding.rng(seed, (3, d), seeding.QUERY))
            for k in (0, 1, 2, 7, 100, 256):
                part = s.random(k, seeding.rng(seed, (3, d), seeding.QUERY))
                assert np.array_equal(part, full[:k]), (name, d, seed, k)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_same_seed_runs_with_different_queries_per_set_share_their_points(name):
    """The trial identity (distribution, params, d, N, replicate, query, seed) names one point whatever K is:
    the training set and the first K queries of a replicate are the same in a run with more queries per set."""
    from mc_hull.spec import Spec
    from mc_hull.samplers import replicate_data

    d = 3
    default = {p: v for p, v in SAMPLERS[name].params.items()}
    small = Spec(distribution=name, dims=(d,), sizes=(12,), trials=40, queries_per_set=10, seed=4, params=default)
    large = Spec(distribution=name, dims=(d,), sizes=(12,), trials=40, queries_per_set=40, seed=4, params=default)
    for r in range(small.replicates_for(d, 12)):
        Xa, Qa = replicate_data(small, d, 12, r)
        Xb, Qb = replicate_data(large, d, 12, 0)
        if r == 0:
            assert np.array_equal(Xa, Xb) and np.array_equal(Qa, Qb[:len(Qa)]), name


class _Overflowing(Sampler):
    """A sampler whose draws overflow (to check the last line of defence, not registered)."""

    name = "overflowing-test"

    def _random(self, n, rng):
        X = rng.standard_normal((n, self.d))
        X[2:, 0] = np.inf
        return X


def test_a_non_finite_draw_is_refused_before_any_solver_sees_it():
    s = _Overflowing(3)
    assert s.random(1, np.random.default_rng(0)).shape == (1, 3)
    with pytest.raises(SpecError, match=r"params: overflowing-test drew a non-finite point \(row 2 of 4"):
        s.random(4, np.random.default_rng(0))


def test_range_check_names_field_and_bounds():
    r = Range(1, lambda d: d, integer=True, why=" (k <= d)")
    assert r.check("s", "k", 3, 5) == 3
    with pytest.raises(SpecError, match=r"params.k: s needs an integer in \[1, 5\] \(k <= d\), got 6"):
        r.check("s", "k", 6, 5)
    with pytest.raises(SpecError, match="needs a finite number > 0, got 0"):
        Range(0.0, open_low=True).check("s", "x", 0, 1)


def test_row_builder_never_keeps_a_decided_row_without_a_finite_certificate():
    from mc_hull.jobs.trial import MARGIN_CAP, guard_rows, rows

    cols = {"status": np.array([1, 0, 0, 0, -1, 1], dtype=np.int8),
            "certificate_value": np.array([0.0, np.nan, np.inf, 2.0, np.nan, -np.inf]),
            "method": np.array(["a", "colgen:far", "colgen:far", "b", "c", "d"], dtype=object)}
    out = guard_rows(cols)
    assert out["status"].tolist() == [1, -1, 0, 0, -1, -1]
    assert out["certificate_value"][2] == MARGIN_CAP       # an overflowed margin: a lower bound, kept
    assert out["method"][1] == "colgen:far:nonfinite"
    # the one row builder applies it to every job's rows
    built = rows(np.array([1, 0, 0, -1], dtype=np.int8), np.array([np.nan, np.inf, 1.0, np.nan]), "m", 0.0,
                 np.zeros(4, dtype=np.int32))
    assert built["status"].tolist() == [-1, 0, 0, -1] and built["certificate_value"][1] == MARGIN_CAP


def test_store_refuses_decided_rows_without_a_finite_certificate(tmp_path):
    from mc_hull.errors import StoreError
    from mc_hull.jobs.plan import plan
    from mc_hull.spec import Spec
    from mc_hull.store import ResultStore
    from mc_hull.jobs.trial import run_shard

    spec = Spec(distribution="gaussian", dims=(2,), sizes=(6,), trials=20, queries_per_set=10, seed=1)
    shard = plan(spec)[0]
    cols = run_shard(spec, shard)
    store = ResultStore(str(tmp_path / "out"))
    store.claim_run(spec)
    cols["certificate_value"] = cols["certificate_value"].copy()
    cols["certificate_value"][3] = np.nan
    with pytest.raises(StoreError, match="refusing to publish 1 decided rows without a finite certificate"):
        store.write_shard(spec, shard, cols)
    assert store.units(spec.run_id) == []


@pytest.mark.parametrize("df", ["0.005", "0.01", "0.02"])
def test_cli_refuses_an_overflowing_student_t_in_one_line(tmp_path, capfd, df):
    from mc_hull.cli import main

    out = tmp_path / "out"
    code = main(["run", "--distribution", "student-t", "--param", f"df={df}", "--dims", "2", "--sizes", "10",
                 "--trials", "100", "--serial", "--out", str(out)])
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "params.df: student-t needs a finite number >= 0.125" in err[0]
    assert not out.exists()


def test_heavy_student_t_at_its_smallest_df_is_stored_with_finite_certificates(tmp_path):
    """df = 1/8 (points up to ~1e150): every stored decided row carries a finite certificate."""
    from mc_hull.runs.runner import execute
    from mc_hull.spec import Spec
    from mc_hull.store import ResultStore

    spec = Spec(distribution="student-t", params={"df": 0.125}, dims=(2, 4), sizes=(10, 40), trials=200,
                queries_per_set=20, seed=3)
    execute(spec, str(tmp_path / "out"), backend="serial", progress=False)
    rows = ResultStore(str(tmp_path / "out")).trials().to_pydict()
    decided = np.array([s != "undecided" for s in rows["status"]])
    assert len(decided) == 800 and decided.sum() > 700
    assert np.isfinite(np.asarray(rows["certificate_value"], dtype=float)[decided]).all()
