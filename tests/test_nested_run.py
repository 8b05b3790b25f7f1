"""``mc-hull run --nested``: one training set per replicate, rows for every grid size, resumable, same as the core."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from mc_hull.nested import search as nested
from mc_hull import seeding
from mc_hull.errors import SpecError
from mc_hull.jobs.nested import NestedJob, entry_bounds
from mc_hull.query import cell_estimates
from mc_hull.runs.runner import execute
from mc_hull.spec import Spec
from mc_hull.samplers import KeyedSource


def _spec(**kw):
    base = dict(distribution="gaussian", dims=(3, 5), sizes=(4, 7, 12, 20, 33, 60, 100), trials=120,
                queries_per_set=20, seed=5, shard_trials=40, nested=True)
    base.update(kw)
    return Spec.from_dict(base)


def _rows(out):
    """Every trial row as a dict of numpy columns (through the store's own reader)."""
    from mc_hull.store import ResultStore

    store = ResultStore(str(out))
    table = store.trials() if hasattr(store, "trials") else store.dataset().to_table()
    cols = table.to_pydict()
    inside = np.array([np.nan if v is None else float(v) for v in cols["inside"]])
    out = {k: np.asarray(v) for k, v in cols.items() if k != "inside"}
    out["inside"] = inside
    return out


def test_nested_run_rows_match_the_core_and_resume(tmp_path):
    spec = _spec()
    out = tmp_path / "res"
    first = execute(spec, str(out), backend="serial", progress=False, job=NestedJob(spec))
    assert first.computed_shards == NestedJob(spec).count() == 2 * 3
    assert first.trials == 2 * 7 * 120
    rows = _rows(out)
    assert len(rows["query"]) == 2 * 7 * 120
    for d in spec.dims:
        sel = rows["d"] == d
        sub = {k: v[sel] for k, v in rows.items()}
        bounds = entry_bounds(sub)
        assert len(bounds["query"]) == 120
        # Identical to the core on the replicate's keyed data.
        sizes = np.array(spec.sizes_for(d))
        for r in range(spec.replicates_for(d, sizes[-1])):
            X, Q = nested.replicate_data(spec, d, sizes, r)
            res = nested.entry_sizes(X, Q, sizes)
            mine = bounds["replicate"] == r
            assert (bounds["t_high"][mine] == res.t_high).all()
            assert (bounds["t_low"][mine] == res.t_low).all()
        # Monotone in N for every trial: once inside, inside at every larger size.
        for r, q in zip(bounds["replicate"], bounds["query"]):
            m = (sub["replicate"] == r) & (sub["query"] == q)
            order = np.argsort(sub["n"][m])
            assert (np.diff(sub["inside"][m][order]) >= 0).all()
    est = [row for row in cell_estimates(str(out)).to_pylist()]
    assert len(est) == 14 and all(row["trials"] == 120 for row in est)
    for d in spec.dims:
        p = [row["p_hat"] for row in sorted((r for r in est if r["d"] == d), key=lambda r: r["n"])]
        assert np.all(np.diff(p) >= 0)
    from mc_hull.query import thresholds

    halves = thresholds(str(out)).to_pylist()
    assert [h["d"] for h in halves] == [3, 5] and {h["method"] for h in halves} == {"median of T"}
    for h in halves:   # None: no size below (low), or none reaching 1/2 (estimate, high)
        low = h["n_half_low"] or 0.0
        est = math.inf if h["n_half"] is None else h["n_half"]
        high = math.inf if h["n_half_high"] is None else h["n_half_high"]
        assert low < est <= high
        assert est == math.inf or est in spec.sizes_for(h["d"])
    again = execute(spec, str(out), backend="serial", progress=False, job=NestedJob(spec))
    assert again.computed_shards == 0 and again.skipped_shards == first.computed_shards
    assert len(_rows(out)["query"]) == 2 * 7 * 120


def test_prefixes_are_the_smaller_training_sets():
    """The nested X is drawn in keyed blocks: any prefix (across a block edge) is regenerated alike."""
    spec = _spec(dims=(2,), sizes=(100, seeding.BLOCK_ROWS + 500), trials=3, queries_per_set=3)
    X, Q = nested.replicate_data(spec, 2, spec.sizes, 0)
    key = seeding.replicate_key("gaussian", 2, seeding.BLOCK_ROWS + 500, 0)
    sampler = spec.sampler(2).bind(seeding.rng(spec.seed, key, seeding.STRUCTURE))
    assert np.array_equal(KeyedSource(sampler, spec.seed, key, X.shape[0], 0).training_set(), X)
    head = X[:seeding.BLOCK_ROWS + 7]
    part = np.vstack([s for _, s in zip(range(2), _blocks(spec, key, X.shape[0]))])[:head.shape[0]]
    assert np.array_equal(part, head)


def _blocks(spec, key, n):
    sampler = spec.sampler(2).bind(seeding.rng(spec.seed, key, seeding.STRUCTURE))
    for b, start in enumerate(range(0, n, seeding.block_rows(2))):
        yield sampler.random(min(start + seeding.block_rows(2), n) - start, seeding.rng(spec.seed, key, seeding.TRAIN, b))


def test_spec_field():
    plain = Spec.from_dict({"dims": [2], "sizes": [5]})
    assert "nested" not in plain.to_dict()                     # old specs keep their hash
    assert Spec.from_dict({"dims": [2], "sizes": [5], "nested": False}).hash == plain.hash
    assert json.loads(_spec().to_json())["nested"] is True
    with pytest.raises(SpecError, match="nested"):
        Spec.from_dict({"dims": [2], "sizes": [5], "nested": "yes"})
    with pytest.raises(SpecError, match="nested"):
        Spec.from_dict({"dims": [2], "sizes": [5], "nested": True, "target_halfwidth": 0.01})


def _cli(*args, env=None):
    import os

    return subprocess.run([sys.executable, "-m", "mc_hull", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def test_cli_nested_run_and_a_streamed_one(tmp_path):
    out = tmp_path / "cli"
    r = _cli("run", "--dims", "2", "--sizes", "4,8,16,32", "--trials", "60", "--queries-per-set", "10",
             "--nested", "--serial", "--out", str(out), "--format", "json")
    assert r.returncode == 0, r.stderr
    rows = _rows(out)
    assert len(rows["query"]) == 4 * 60
    # An X beyond the memory budget is streamed (tests/test_nested_stream.py), the plan line says so.
    big = tmp_path / "big"
    r = _cli("run", "--dims", "4", "--sizes", "10,100000", "--trials", "10", "--nested", "--serial",
             "--out", str(big), env={"MC_HULL_MEMORY_BUDGET": "1M"})
    assert r.returncode == 0, r.stderr
    assert "all sizes streamed" in r.stderr and len(_rows(big)["query"]) == 2 * 10


def test_auto_sizes_for_nested_have_forty_sizes_and_no_million_cap():
    from mc_hull.runs.adaptive import auto_options, resolve_auto_sizes

    spec = Spec.from_dict({"dims": [4, 14], "sizes": [10], "nested": True})
    opts = auto_options(spec.nested)
    assert opts["points"] == 40 and opts["max_n"] > 10**6
    import io

    resolved = resolve_auto_sizes(spec, backend="serial", log=io.StringIO())   # the nested options by itself
    grid = dict(resolved.grid)
    assert len(grid[14]) >= 38 and max(grid[14]) > 10**6
    assert len(grid[4]) >= 30


@pytest.mark.ray
def test_ray_nested_run_equals_serial(tmp_path, ray_local):
    spec = _spec(dims=(4,))
    a, b = tmp_path / "serial", tmp_path / "ray"
    execute(spec, str(a), backend="serial", progress=False, job=NestedJob(spec))
    execute(spec, str(b), backend="ray", progress=False, job=NestedJob(spec))
    ra, rb = _rows(a), _rows(b)
    key = lambda r: np.lexsort((r["query"], r["replicate"], r["n"]))  # noqa: E731
    ka, kb = key(ra), key(rb)
    for col in ("n", "replicate", "query", "status", "certificate_value"):
        assert np.array_equal(ra[col][ka], rb[col][kb], equal_nan=col == "certificate_value")
