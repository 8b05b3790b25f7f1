"""Nested prefixes streamed: X beyond the memory budget regenerated from its keys, the same entry sizes."""

from __future__ import annotations

import numpy as np
import pytest
from test_nested import CASES, _check_certificates, _data, _grid
from test_nested_run import _cli, _rows

from mc_hull.nested import search as nested, stream as nested_stream
from mc_hull.jobs import nested as nested_job
from mc_hull import seeding
from mc_hull.jobs.nested import NestedJob, NestedShard
from mc_hull.samplers import keyed_source
from mc_hull.solvers.sources import ArraySource
from mc_hull.spec import Spec


class CountingSource(ArraySource):
    """An array source that counts the blocks it yields (a pass regenerates every block it reads)."""

    def __init__(self, X, block_rows):
        super().__init__(X, block_rows)
        self.yielded = 0

    def generate(self, block_ids):
        for item in super().generate(block_ids):
            self.yielded += 1
            yield item


@pytest.mark.parametrize("kind,d,N,L,seed,ref", CASES)
@pytest.mark.parametrize("held", [0, 0.4])
def test_streamed_brackets_equal_the_in_memory_search(kind, d, N, L, seed, ref, held):
    """Same brackets as the in-memory search, every certificate verified on its own prefix, all held or none."""
    rng = np.random.default_rng(100 + seed)
    X, Q = _data(kind, rng, N, d)
    sizes = _grid(N, L)
    mem = nested.entry_sizes(X, Q, sizes)
    br = 97 if N >= 1000 else 13
    src = CountingSource(X, br)            # blocks that straddle the grid sizes
    res = nested_stream.streamed_entry_sizes(src, Q, sizes, budget=int(held * 8 * d * N))
    assert res.located.all() == mem.located.all()
    assert np.array_equal(res.low, mem.low) and np.array_equal(res.high, mem.high)
    _check_certificates(X, Q, res)
    n_mem = (int(held * 8 * d * N) // (8 * d) // br) * br
    assert src.yielded * br >= res.regenerated >= N   # the frame pass reads every row once
    if held == 0:                                     # and the first pricing pass all of them again
        assert res.passes >= 2 and res.regenerated >= 2 * N
    else:
        assert n_mem > 0 and res.regenerated <= N + (res.passes - 1) * (N - n_mem)


def test_far_queries_training_points_and_one_size():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((500, 3))
    Q = np.vstack([X[:4], 1e6 * rng.standard_normal((3, 3)), np.zeros((2, 3))])
    for sizes in ([500], [4, 5, 500], [1, 2, 3, 4]):
        mem = nested.entry_sizes(X, Q, sizes)
        res = nested_stream.streamed_entry_sizes(ArraySource(X, 64), Q, sizes, budget=0)
        assert np.array_equal(res.low, mem.low) and np.array_equal(res.high, mem.high)
        _check_certificates(X, Q, res)


def test_stuck_probes_go_to_the_streaming_engine_and_stay_certified():
    """With no pricing rounds every probe is the engine's: brackets still right, certificates still checked."""
    rng = np.random.default_rng(8)
    X, Q = _data("gauss", rng, 3000, 5)
    sizes = _grid(3000, 20)
    mem = nested.entry_sizes(X, Q, sizes)
    res = nested_stream.streamed_entry_sizes(ArraySource(X, 256), Q, sizes, budget=0, rounds=0)
    assert res.solves.sum() > 0
    assert np.array_equal(res.low[res.located], mem.low[res.located])
    assert np.array_equal(res.high[res.located], mem.high[res.located])
    assert res.located.mean() > 0.9
    _check_certificates(X, Q, res)


def test_bad_input():
    X = np.zeros((10, 2))
    with pytest.raises(ValueError, match="exceeds"):
        nested_stream.streamed_entry_sizes(ArraySource(X), np.zeros((1, 2)), [5, 11], budget=0)
    with pytest.raises(ValueError, match="d = 2"):
        nested_stream.streamed_entry_sizes(ArraySource(X), np.zeros((1, 3)), [5], budget=0)
    with pytest.raises(ValueError, match="strictly increasing"):
        nested_stream.streamed_entry_sizes(ArraySource(X), np.zeros((1, 2)), [5, 5], budget=0)


def _spec(seed, **kw):
    base = dict(distribution="gaussian", dims=(3,), sizes=(5, 40, 300, 2500, 70000, 3 * seeding.BLOCK_ROWS + 5),
                trials=24, queries_per_set=12, seed=seed, shard_trials=24, nested=True)
    base.update(kw)
    return Spec.from_dict(base)


@pytest.mark.parametrize("seed,dist", [(1, "gaussian"), (2, "gaussian"), (3, "ball")])
def test_streamed_job_rows_equal_the_in_memory_rows(seed, dist, monkeypatch):
    """A tiny memory budget takes the streamed path: X regenerated from the replicate's keys, equal rows."""
    spec = _spec(seed, distribution=dist)
    unit = NestedShard(spec.distribution, 3, 0, spec.replicates_for(3, max(spec.sizes_for(3))))
    monkeypatch.delenv("MC_HULL_MEMORY_BUDGET", raising=False)
    assert nested_job.streamed_sizes(spec, 3) is None
    mem = NestedJob(spec).compute(unit)
    for budget, held in (("1M", 0), ("9M", 3 * seeding.BLOCK_ROWS)):   # nothing held, then three blocks
        monkeypatch.setenv("MC_HULL_MEMORY_BUDGET", budget)
        assert nested_job.streamed_sizes(spec, 3) == (held, 3 * seeding.BLOCK_ROWS + 5)
        got = NestedJob(spec).compute(unit)
        for col in ("n", "replicate", "query", "status", "method", "run_id"):
            assert np.array_equal(got[col], mem[col]), (budget, col)
        # Each value is its own checked certificate: outside margins beyond tol, inside residuals within.
        v, status = got["certificate_value"], got["status"]
        assert (v[status == 0] > spec.tol).all() and (v[status == 1] <= spec.tol).all()
        assert np.isfinite(v[status >= 0]).all()


def test_keyed_source_is_the_in_memory_training_set():
    spec = _spec(4)
    sizes = np.array(spec.sizes_for(3))
    X, Q = nested.replicate_data(spec, 3, sizes, 1)
    src = keyed_source(spec, 3, int(sizes[-1]), 1)
    assert np.array_equal(np.vstack([b for _, b in src.generate(range(src.n_blocks))]), X)
    assert np.array_equal(src.queries(), Q)


def test_cli_streamed_nested_run_and_plan_line(tmp_path):
    out = tmp_path / "s"
    args = ("run", "--dims", "4", "--sizes", "10,100,1000,100000", "--trials", "20", "--queries-per-set", "10",
            "--nested", "--serial", "--format", "json")
    r = _cli(*args, "--out", str(out), env={"MC_HULL_MEMORY_BUDGET": "1M"})
    assert r.returncode == 0, r.stderr
    plan = [line for line in r.stderr.splitlines() if "plan:" in line]
    assert plan and "d = 4: all sizes streamed" in plan[0] and "far from the mean" in plan[0]
    assert "N rows drawn from keys per replicate" in plan[0]
    ref = tmp_path / "m"
    r = _cli(*args, "--out", str(ref))
    assert r.returncode == 0 and "sizes streamed" not in r.stderr
    a, b = _rows(out), _rows(ref)
    ka = np.lexsort((a["query"], a["replicate"], a["n"]))
    kb = np.lexsort((b["query"], b["replicate"], b["n"]))
    assert np.array_equal(a["inside"][ka], b["inside"][kb], equal_nan=True)
    assert np.array_equal(a["status"][ka], b["status"][kb])


def test_cli_refuses_a_replicate_state_beyond_the_machine(tmp_path):
    bad = tmp_path / "bad"
    r = _cli("run", "--dims", "3000", "--sizes", "3001,3002", "--trials", "1000", "--queries-per-set", "1000",
             "--nested", "--serial", "--out", str(bad))
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "search state" in r.stderr
    assert "Traceback" not in r.stderr and not bad.exists()


def test_plan_line_and_estimate_of_sieved_and_unsieved_laws(monkeypatch):
    """The plan names the sieve for an isotropic law and the per-pass regeneration otherwise; the sieved
    estimate is lower and follows the rows drawn (fewer as the budget holds more kept rows)."""
    sizes = (1000, 10**5, 4 * 10**6)
    gauss = Spec.from_dict(dict(distribution="gaussian", dims=(12,), sizes=sizes, trials=100, nested=True))
    cube = Spec.from_dict(dict(distribution="cube", dims=(12,), sizes=sizes, trials=100, nested=True))
    est = {}
    for budget in ("64M", "256M"):
        monkeypatch.setenv("MC_HULL_MEMORY_BUDGET", budget)
        g, c = NestedJob(gauss).estimate(), NestedJob(cube).estimate()
        assert "far from the mean" in g.note and "regenerated from keys on each of" in c.note
        assert g.cpu_seconds < c.cpu_seconds
        n_held, drawn = nested_job.sieved_rows(12, 4 * 10**6, nested_stream.held_bytes(12))
        assert 4 * 10**6 <= drawn <= 4 * 10**6 + (nested_job.STREAM_PASSES + 1) * (4 * 10**6 - n_held)
        est[budget] = g.cpu_seconds
    assert est["256M"] < est["64M"]


def test_streamed_estimate_is_not_rescaled_by_the_decision_timing_and_counts_threads(monkeypatch):
    """A streamed replicate's model was fitted on measured streamed replicates: the plan's calibration (a
    timing of in-memory decisions) leaves it alone, while it still scales in-memory work. Threads cost
    THREAD_COST more CPU and divide the wall-time estimate."""
    from mc_hull.jobs import plan as planning
    from mc_hull.runs import runner

    monkeypatch.setenv("MC_HULL_MEMORY_BUDGET", "64M")
    spec = Spec.from_dict(dict(distribution="gaussian", dims=(12,), sizes=(1000, 10**5, 4 * 10**6), trials=100,
                               nested=True))
    one = NestedJob(spec).estimate()
    assert 0 < one.fixed_seconds <= one.cpu_seconds and one.threads == 1
    for factor in (0.25, 4.0):
        scaled = one.scaled(factor)
        assert scaled.fixed_seconds == one.fixed_seconds
        assert scaled.cpu_seconds == pytest.approx(one.fixed_seconds + factor * (one.cpu_seconds - one.fixed_seconds))
    monkeypatch.setenv("MC_HULL_THREADS", "2")
    two = NestedJob(spec).estimate()
    assert two.threads == 2
    assert two.fixed_seconds == pytest.approx(nested_job.THREAD_COST * one.fixed_seconds)
    job = NestedJob(spec)
    monkeypatch.setattr(planning, "calibration", lambda spec: 1.0)
    wall = runner._wall_estimate(job, None, units=job.count(), trials=job.total())
    assert wall == pytest.approx(two.cpu_seconds / 2)
    in_memory = Spec.from_dict(dict(distribution="gaussian", dims=(6,), sizes=(100, 1000), trials=100, nested=True))
    est = NestedJob(in_memory).estimate()        # nothing streamed: threads unused, all of it calibrated
    assert est.fixed_seconds == 0 and est.threads == 1
    assert est.scaled(2.0).cpu_seconds == pytest.approx(2 * est.cpu_seconds)
