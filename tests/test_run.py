"""End to end: spec -> shards -> Parquet, read back by DuckDB and pyarrow; Ray equals serial."""

import json

import duckdb
import numpy as np
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from mc_hull.jobs.plan import plan
from mc_hull.query import cell_estimates
from mc_hull.runs.runner import execute
from mc_hull.spec import Spec
from mc_hull.stats.intervals import wilson

ORDER = "distribution, d, n, replicate, query"


def rows(out):
    return duckdb.sql(f"""
        SELECT distribution, d, n, run_id, replicate, query, inside, status, method, certificate_value
        FROM read_parquet('{out}/**/*.parquet', hive_partitioning = true) ORDER BY {ORDER}""").fetchall()


def test_results_read_back_with_planned_rows(small_results, small_spec):
    con = duckdb.sql(f"""SELECT count(*), count(DISTINCT (d, n, replicate, query)),
                         min(d), max(n), typeof(max(n)), count(*) FILTER (WHERE inside IS NULL)
                         FROM read_parquet('{small_results}/**/*.parquet', hive_partitioning = true)""")
    total, distinct, dmin, nmax, ntype, undecided = con.fetchall()[0]
    assert total == distinct == small_spec.planned_trials
    assert (dmin, nmax) == (2, 100) and ntype in ("BIGINT", "INTEGER")
    assert undecided == 0
    table = ds.dataset(str(small_results), format="parquet", partitioning="hive",
                       exclude_invalid_files=True).to_table()
    assert table.num_rows == small_spec.planned_trials
    assert {"inside", "status", "method", "certificate_value", "solve_seconds", "run_id"} <= set(table.column_names)


def test_file_metadata_and_layout(small_results, small_spec):
    files = sorted(small_results.rglob("*.parquet"))
    assert len(files) == len(plan(small_spec))
    assert all("distribution=gaussian" in str(f) for f in files)
    meta = pq.read_metadata(files[0]).metadata
    assert meta[b"mc_hull.spec_hash"].decode() == small_spec.hash
    assert json.loads(meta[b"mc_hull.spec"])["seed"] == small_spec.seed
    assert b"numpy" in meta[b"mc_hull.versions"]
    run = json.loads((small_results / "_runs" / f"{small_spec.run_id}.json").read_text())
    assert run["hash"] == small_spec.hash
    assert not list(small_results.rglob(".*tmp"))


def test_rerun_overwrites_never_duplicates(tmp_path, small_spec):
    out = tmp_path / "out"
    first = execute(small_spec, str(out), backend="serial", progress=False)
    before = rows(out)
    # Delete one shard file: the re-run recomputes exactly that shard, identically.
    victim = sorted(out.rglob("*.parquet"))[3]
    victim.unlink()
    again = execute(small_spec, str(out), backend="serial", progress=False)
    assert again.skipped_shards == first.planned_shards - 1 and again.computed_shards == 1
    assert rows(out) == before
    assert len(before) == small_spec.planned_trials


@pytest.mark.ray
def test_ray_run_equals_serial_row_for_row(tmp_path, ray_local, small_spec, small_results):
    out = tmp_path / "ray"
    report = execute(small_spec, str(out), backend="ray", progress=False)
    assert report.computed_shards == len(plan(small_spec)) >= 2
    assert rows(out) == rows(small_results)


def test_estimates_table(small_results, small_spec):
    table = cell_estimates(str(small_results)).to_pylist()
    assert len(table) == len(small_spec.cells)
    for row in table:
        assert row["trials"] == small_spec.trials and row["undecided"] == 0
        assert row["ci_low"] <= row["p_hat"] <= row["ci_high"]
        assert row["bf_threshold"] == pytest.approx(2 ** (row["d"] / 2) / row["d"])
    # p grows with N in every dimension
    for d in small_spec.dims:
        ps = [r["p_hat"] for r in table if r["d"] == d]
        assert ps == sorted(ps)


def test_d1_matches_exact_within_interval(tmp_path):
    # In d = 1 the hull is [min, max]: p = (N - 1) / (N + 1) exactly, whatever the distribution.
    spec = Spec(distribution="gaussian", dims=(1,), sizes=(2, 5, 20), trials=2000, queries_per_set=1,
                seed=12, shard_trials=2000)
    out = tmp_path / "d1b"
    execute(spec, str(out), backend="serial", progress=False)
    for row in cell_estimates(str(out)).to_pylist():
        exact = (row["n"] - 1) / (row["n"] + 1)
        low, high = wilson(row["inside"], row["trials"])
        assert low <= exact <= high, row


def test_sphere_is_never_inside(tmp_path):
    spec = Spec(distribution="sphere", dims=(2, 3), sizes=(10, 200), trials=100, queries_per_set=50, seed=3)
    out = tmp_path / "sphere"
    execute(spec, str(out), backend="serial", progress=False)
    assert all(r["inside"] == 0 and r["undecided"] == 0 for r in cell_estimates(str(out)).to_pylist())
