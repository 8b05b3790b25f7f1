"""Queries per training set by cell: the cost rule (mc_hull.stats.design) as resolved in specs, plans, runs and stores."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mc_hull.stats import design
from mc_hull.jobs import plan as planning
from mc_hull.errors import SpecError
from mc_hull.jobs.base import MonteCarloJob
from mc_hull.stats.design import default_queries_per_set, efficient_queries_per_set
from mc_hull.jobs.nested import NestedJob
from mc_hull.runs.runner import execute
from mc_hull.spec import Spec


def test_unset_k_is_resolved_per_cell_and_is_part_of_the_spec():
    spec = Spec(dims=(2, 8, 12), sizes=(3, 10, 100, 1000, 10**5, 10**6), trials=10_000)
    assert not isinstance(spec.queries_per_set, int) and spec.uniform_k is None
    table = dict(spec.queries_per_set)
    assert sorted(table) == sorted(spec.cells)
    # Cheap X and correlated queries (small N): few per set; an expensive X: the 30-set cap.
    assert spec.k_for(2, 10) < default_queries_per_set(10_000) < spec.k_for(12, 10**6) == 10_000 // 30
    # N <= d: p = 0 exactly, nothing to spread; the cap.
    assert spec.k_for(12, 10) == spec.k_for(8, 3) == 10_000 // 30
    # K grows with N at fixed d where the rule is not capped.
    ks = [spec.k_for(8, n) for n in (10, 100, 1000)]
    assert ks == sorted(ks) and len(set(ks)) == 3
    # The table is in the canonical JSON, so the run id says which K was used; a round trip keeps it.
    data = json.loads(spec.to_json())
    assert data["queries_per_set"]["12"]["1000000"] == 333
    again = Spec.from_json(spec.to_json())
    assert again == spec and again.run_id == spec.run_id
    # Every trial is still planned: replicates cover exactly `trials` per cell.
    for d, n in spec.cells:
        assert sum(spec.queries_in(r, d, n) for r in range(spec.replicates_for(d, n))) == spec.trials


def test_a_given_k_is_one_k_for_every_cell_and_keeps_its_hash():
    spec = Spec(dims=(2, 8), sizes=(10, 1000), trials=1000, queries_per_set=50)
    assert spec.queries_per_set == 50 and spec.uniform_k == 50
    assert {spec.k_for(d, n) for d, n in spec.cells} == {50}
    assert json.loads(spec.to_json())["queries_per_set"] == 50
    # An adaptive spec's checkpoints are shared by its cells: one K, the fixed default.
    adaptive = Spec(dims=(2,), sizes=(10, 100), trials=1000, target_halfwidth=0.05)
    assert adaptive.queries_per_set == default_queries_per_set(1000)


def test_distributions_without_a_measured_correlation_model_get_the_default():
    spec = Spec(distribution="ball", dims=(3,), sizes=(10, 10**5), trials=3000)
    assert {spec.k_for(3, n) for n in (10, 10**5)} == {default_queries_per_set(3000)}


def test_new_cells_get_their_own_k_but_a_given_k_stays():
    spec = Spec(dims=(8,), sizes=(10,), trials=6000)
    moved = spec.with_overrides(grid={"8": [100, 10**5]})
    assert sorted(dict(moved.queries_per_set)) == [(8, 100), (8, 10**5)]
    assert moved.k_for(8, 10**5) == design.cell_queries("gaussian", 8, 10**5, 6000)
    more = moved.with_overrides(trials=600)
    assert more.k_for(8, 10**5) == 600 // 30
    fixed = Spec(dims=(8,), sizes=(10,), trials=6000, queries_per_set=7).with_overrides(sizes=(20, 30))
    assert fixed.queries_per_set == 7


@pytest.mark.parametrize("table, words", [
    ({"8": {"10": 5}}, "exactly the spec's cells"),
    ({"8": {"10": 5, "100": 5, "1000": 5}}, "exactly the spec's cells"),
    ({"8": {"10": 0, "100": 5}}, "queries_per_set (d = 8, N = 10)"),
    ({"8": {"10": 2.5, "100": 5}}, "queries_per_set (d = 8, N = 10)"),
    ({"8": [1, 2]}, "must be an integer or a table"),
    ({"x": {"10": 1, "100": 2}}, "must be an integer or a table"),
    ("many", "queries_per_set"),
])
def test_a_bad_table_is_one_line_naming_the_field(table, words):
    with pytest.raises(SpecError) as err:
        Spec(dims=(8,), sizes=(10, 100), trials=100, queries_per_set=table)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_a_nested_table_has_one_k_per_d():
    with pytest.raises(SpecError, match="one K per d"):
        Spec(dims=(3,), sizes=(10, 100), trials=100, nested=True, queries_per_set={"3": {"10": 4, "100": 5}})
    spec = Spec(dims=(3, 9), sizes=(10, 100, 10**4), trials=3000, nested=True)
    for d in spec.dims:
        assert len({spec.k_for(d, n) for n in spec.sizes}) == 1
    assert spec.k_for(3, 10) < spec.k_for(9, 10)      # a larger, costlier X per replicate at d = 9
    assert spec.k_for(9, 10) == design.nested_queries("gaussian", 9, (10, 100, 10**4), 3000)


def test_the_rule_is_the_optimum_of_its_own_cost_model():
    """K minimises (1 + (K - 1) rho)(a / K + b) over the integers allowed (model constants of design)."""
    for d, n, trials in [(2, 10, 10**4), (4, 60, 10**4), (8, 1100, 10**4), (12, 2 * 10**4, 10**5)]:
        a = design.CELL_SET_SECONDS + design.CELL_SET_ELEMENT_SECONDS * n * d
        b = design.CELL_QUERY_SECONDS + design.CELL_QUERY_ELEMENT_SECONDS * n * d
        rho = design.rho_model(n)
        k = design.cell_queries("gaussian", d, n, trials)
        assert k == efficient_queries_per_set(a, b, rho, trials=trials)
        cost = [(1 + (kk - 1) * rho) * (a / kk + b) for kk in range(1, trials // 30 + 1)]
        assert cost[k - 1] <= min(cost) * (1 + 1e-12)


@pytest.mark.parametrize("nested", [False, True])
def test_plans_runs_and_stores_follow_each_cells_k(tmp_path, nested):
    from mc_hull.query import cell_estimates

    spec = Spec(dims=(2, 6), sizes=(4, 30, 2000), trials=1500, shard_trials=300, seed=5, nested=nested)
    ks = {c: spec.k_for(*c) for c in spec.cells}
    assert len(set(ks.values())) > 1
    job = NestedJob(spec) if nested else MonteCarloJob(spec)
    units = list(job.units())
    assert job.count() == len(units) and job.total() == spec.planned_trials == sum(job.size(u) for u in units)
    if not nested:
        assert planning.count_shards(spec) == len(list(planning.iter_shards(spec)))
        for d, n in spec.cells:   # a shard holds about shard_trials trials of its own cell's K
            assert all(s.stop - s.start == max(1, 300 // ks[(d, n)]) or s.stop == spec.replicates_for(d, n)
                       for s in planning.iter_shards(spec, cells=[(d, n)]))
    out = tmp_path / "out"
    report = execute(spec, str(out), backend="serial", progress=False, job=job)
    assert report.trials == spec.planned_trials
    rows = {(r["d"], r["n"]): r for r in cell_estimates(str(out)).to_pylist()}
    for (d, n), k in ks.items():
        assert rows[(d, n)]["trials"] == 1500 and rows[(d, n)]["replicates"] == -(-1500 // k)
    again = execute(spec, str(out), backend="serial", progress=False, job=NestedJob(spec) if nested else None)
    assert again.computed_shards == 0 and again.skipped_shards == len(units)


def test_the_store_refuses_rows_of_a_cell_the_spec_never_planned(tmp_path):
    """A unit whose (d, N) is not a cell of its run's spec is counted as 0 planned rows: damaged."""
    from mc_hull.jobs.plan import Shard
    from mc_hull.store import ResultStore
    from mc_hull.jobs.trial import run_shard

    spec = Spec(dims=(2,), sizes=(10, 100), trials=40, seed=1)
    out = tmp_path / "out"
    execute(spec, str(out), backend="serial", progress=False)
    store = ResultStore(str(out))
    assert not store.verify(spec.run_id).problems
    foreign = Shard("gaussian", 2, 55, 0, 1)
    other = Spec(dims=(2,), sizes=(55,), trials=40, seed=1, queries_per_set=spec.k_for(2, 10))
    store.write_shard(spec, foreign, run_shard(other, foreign))
    problems = store.verify(spec.run_id).problems
    assert len(problems) == 1 and "0 planned" in problems[0][1]


def test_the_cli_says_which_k_each_d_gets(tmp_path, capsys):
    from mc_hull.cli import main

    assert main(["run", "--dims", "2,8", "--sizes", "10,1000", "--trials", "300", "--serial", "--no-progress",
                 "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if "queries per training set" in x)
    assert "cost rule" in line and "d = 2:" in line and "d = 8:" in line
    assert main(["run", "--dims", "2", "--sizes", "10", "--trials", "300", "--queries-per-set", "20", "--serial",
                 "--no-progress", "--out", str(tmp_path / "b")]) == 0
    assert "K = 20 for every cell (given)" in capsys.readouterr().err


def test_the_model_correlation_bounds_the_measured_one_at_small_d():
    """rho(N) = 1/N pooled over a nested curve is at least the measured pooled correlation (seeded, d = 3)."""
    from mc_hull.nested import search as nested
    from mc_hull.stats import intervals as stats
    from mc_hull.theory import exact_inside_probability

    sizes = np.array([5, 8, 12, 18, 28, 42, 64, 96, 150])
    spec = Spec(dims=(3,), sizes=tuple(int(n) for n in sizes), trials=6000, queries_per_set=100, nested=True,
                seed=11)
    res = []
    for r in range(60):
        X, Q = nested.replicate_data(spec, 3, sizes, r)
        res.append(nested.entry_sizes(X, Q, sizes))
    y, m = nested.cluster_counts(res)
    rhos = [design.rho_from_design_effect(stats.design_effect(y[:, j], m[:, j]), 100) for j in range(len(sizes))]
    p = np.array([exact_inside_probability("gaussian", 3, int(n)) for n in sizes])
    measured = design.pooled_rho(rhos, y.sum(0) / m.sum(0))
    model = design.pooled_rho([design.rho_model(n) for n in sizes], p)
    assert 0 < measured < model
