"""Progress from inside units: the reporter, the runner's lines, the Ray channel, the record, and rows unchanged."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pyarrow.dataset as ds
import pytest

from mc_hull import progress
from mc_hull.runs import runner
from mc_hull.errors import McHullError
from mc_hull.jobs.base import MonteCarloJob
from mc_hull.jobs.nested import NestedJob
from mc_hull.spec import Spec
from mc_hull.store import ResultStore


# -- the reporter (pure) ------------------------------------------------------------------------
@pytest.fixture
def sink():
    got = []
    previous = progress.install(got.append)
    yield got
    progress.install(previous)


def test_nothing_is_recorded_without_a_unit_or_a_sink():
    previous = progress.install(None)
    try:
        with progress.unit("u", 10):       # no sink: a no-op
            progress.replicate(0, 2)
            progress.update("x", inner=0.5, open=1, queries=2)
            assert not progress.due()
    finally:
        progress.install(previous)
    progress.update("x", inner=0.5)        # no unit: returns at once


def test_a_unit_sends_first_and_last_states_and_is_rate_limited(sink, monkeypatch):
    monkeypatch.setattr(progress, "REPORT_SECONDS", 0.2)
    progress.install(sink.append, workers=1)
    with progress.unit("gaussian/d=3/r0-4", 40):
        for r in range(4):
            progress.replicate(r, 4)
            for k in range(2000):       # far more calls than states
                progress.update("nested", inner=k / 2000, open=2000 - k, queries=2000, passes=k)
        time.sleep(0.25)
        progress.update("nested", inner=1.0, open=0, queries=2000, passes=9)
    assert sink[0]["key"] == "gaussian/d=3/r0-4" and sink[0]["share"] == 0 and sink[0]["size"] == 40
    assert sink[-1]["end"] and sink[-1]["share"] == 1.0
    assert len(sink) <= 2 + 4 + 3, len(sink)          # begin, end, and at most one per 0.2 s
    mid = [s for s in sink if not s.get("end")][-1]
    assert mid["detail"].startswith("replicate 4 of 4, pass 9, 0 of 2,000 queries open"), mid
    assert 0.74 < mid["share"] <= 1.0


def test_an_engine_inside_a_search_does_not_take_its_share(sink, monkeypatch):
    monkeypatch.setattr(progress, "REPORT_SECONDS", 0.0)
    monkeypatch.setattr(progress, "MAX_REPORTS_PER_SECOND", 1e9)
    progress.install(sink.append)
    with progress.unit("k", 10):
        progress.replicate(1, 2)
        progress.update("nested", inner=0.5, open=3, queries=6, passes=4)
        progress.update("colgen", inner=0.99, open=1, queries=500, round=3)   # an engine call inside
    state = sink[-2]
    assert state["share"] == pytest.approx(0.75)          # (1 + 0.5) / 2: the search's share only
    assert state["detail"] == "replicate 2 of 2, pass 4, 3 of 6 queries open; colgen: round 3, 1 of 500 queries open"


def test_bracket_share():
    assert progress.bracket_share(np.array([-1, -1]), np.array([40, 40]), 40) == 0.0
    assert progress.bracket_share(np.array([3, 7]), np.array([4, 8]), 40) == 1.0
    half = progress.bracket_share(np.array([-1]), np.array([5]), 40)   # width 6 of 41
    assert 0.4 < half < 0.6


def test_switched_off_by_the_environment(sink, monkeypatch):
    monkeypatch.setenv("MC_HULL_PROGRESS", "0")
    with progress.unit("k", 10):
        progress.update("x", inner=0.5)
    assert sink == []


# -- the runner's meter -------------------------------------------------------------------------
def test_meter_counts_inside_units_and_blends_the_plan_into_the_eta():
    log = io.StringIO()
    m = runner.Progress(1000, "run x", "trial", log=log, estimate_seconds=100.0, every=3600)
    try:
        assert m.eta(0.0, 10.0) == pytest.approx(90.0)         # nothing measured: the plan, counting down
        m.receive({"key": "a", "size": 400, "share": 0.25, "detail": "replicate 2 of 8", "t": time.time()})
        m.receive({"key": "b", "size": 400, "share": 0.5, "detail": "", "t": time.time()})
        assert m.counts() == (300.0, 300.0, 2)
        assert m.eta(300.0, 30.0) == pytest.approx(70.0)        # 30% done at 10 trials/s: measured only
        assert m.eta(20.0, 10.0) == pytest.approx(0.6 * 90 + 0.4 * 490)   # 2% done: 0.4 of the way to the rate
        assert m.eta(20.0, 120.0) == pytest.approx(980 * 6)       # past the plan's time: the measured rate
        m.update(400, "a")
        m.receive({"key": "a", "size": 400, "share": 0.9, "t": time.time()})   # a late state of a committed unit
        assert m.counts() == (600.0, 200.0, 1)
        m.receive({"key": "b", "lost": True})                   # its call failed: re-run from the start
        m.receive({"key": "b", "size": 400, "share": 0.7, "t": time.time() - 60})   # stale, from before
        assert m.counts() == (400.0, 0.0, 0)
        assert "400 of 1,000 trials (40%)" in m.line()
        doc = m.document()
        assert doc["committed"] == 400 and doc["in_flight"] == 0 and not doc["finished"]
        json.dumps(doc)
    finally:
        m.close()


def test_stuck_unit_warning(monkeypatch):
    monkeypatch.setattr(runner, "STUCK_SECONDS", 0.2)
    monkeypatch.setattr(runner, "LONG_UNIT_SECONDS", 0.0)
    log = io.StringIO()
    m = runner.Progress(10, "run x", "trial", log=log, every=0.1)
    try:
        m.receive({"key": "u1", "size": 10, "share": 0.1, "detail": "replicate 1 of 3", "pid": 4242,
                   "t": time.time()})
        time.sleep(1.0)
    finally:
        m.close()
    text = log.getvalue()
    assert "warning: unit u1 has not reported for" in text and "worker pid 4242 alive" in text
    assert "mc-hull:   unit u1: replicate 1 of 3" in text


# -- whole runs ---------------------------------------------------------------------------------
def _streamed_spec(seed=3, trials=24, top=30000):
    return Spec.from_dict({"distribution": "gaussian", "dims": [4], "sizes": [10, 100, 1000, top],
                           "trials": trials, "queries_per_set": 4, "seed": seed, "nested": True,
                           "shard_trials": trials})


def _rows(out, run_id):
    t = ResultStore(str(out)).trials(run_id).drop(["solve_seconds"]).to_pydict()
    order = np.lexsort((t["query"], t["replicate"], t["n"]))
    return {k: [v[i] for i in order] for k, v in t.items()}


def _fast(monkeypatch):
    monkeypatch.setattr(progress, "REPORT_SECONDS", 0.05)
    monkeypatch.setattr(progress, "MAX_REPORTS_PER_SECOND", 20.0)
    monkeypatch.setattr(runner, "PROGRESS_SECONDS", 0.3)
    monkeypatch.setattr(runner, "LONG_UNIT_SECONDS", 0.0)
    monkeypatch.setattr(runner, "RECORD_SECONDS", 0.2)


@pytest.mark.parametrize("budget", ["1M", None])     # the streamed search, then X in memory
def test_rows_are_identical_with_progress_on_and_off(tmp_path, monkeypatch, budget):
    if budget:
        monkeypatch.setenv("MC_HULL_MEMORY_BUDGET", budget)
    else:
        monkeypatch.delenv("MC_HULL_MEMORY_BUDGET", raising=False)
    _fast(monkeypatch)
    monkeypatch.setattr(runner, "PROGRESS_SECONDS", 0.02)    # lines while even a fast machine runs it
    monkeypatch.setattr(progress, "REPORT_SECONDS", 0.01)
    spec = _streamed_spec(top=120_000 if budget else 600_000)
    logs = {}
    for mode in ("on", "off"):
        monkeypatch.setenv("MC_HULL_PROGRESS", "1" if mode == "on" else "0")
        log = io.StringIO()
        runner.execute(spec, str(tmp_path / mode), backend="serial", job=NestedJob(spec), log=log)
        logs[mode] = log.getvalue()
    assert _rows(tmp_path / "on", spec.run_id) == _rows(tmp_path / "off", spec.run_id)
    on = logs["on"].splitlines()
    assert any("inside 1 unit in flight" in line for line in on), logs["on"]
    assert any(line.startswith("mc-hull:   unit gaussian/d=4/nested/r0000000-0000006: replicate ")
               for line in on), logs["on"]
    assert "in flight" not in logs["off"] and "unit gaussian" not in logs["off"]
    # The record lies beside the data, finished, and never counts as data.
    record = json.loads((tmp_path / "on" / "_progress" / f"{spec.run_id}.json").read_text())
    assert record["finished"] and not record["stopped"]
    assert record["committed"] == record["total"] == spec.trials * 4
    assert not (tmp_path / "off" / "_progress").exists()


def test_monte_carlo_units_report_replicates_and_colgen_rounds(tmp_path, monkeypatch):
    _fast(monkeypatch)
    spec = Spec(distribution="gaussian", dims=(12,), sizes=(3000,), trials=400, queries_per_set=50, seed=5,
                shard_trials=400)
    seen = []
    real = runner.Progress.receive

    def keep(self, state):
        seen.append(dict(state))
        real(self, state)

    monkeypatch.setattr(runner.Progress, "receive", keep)
    runner.execute(spec, str(tmp_path / "o"), backend="serial", log=io.StringIO(), job=MonteCarloJob(spec))
    details = [s.get("detail", "") for s in seen]
    assert any(d.startswith("replicate ") and " of 8" in d for d in details), details
    assert seen[-1].get("end")
    shares = [s["share"] for s in seen if "share" in s]
    assert shares == sorted(shares)          # a unit's share never goes back


def test_store_readers_ignore_the_progress_record(tmp_path, small_spec):
    import duckdb

    out = tmp_path / "o"
    runner.execute(small_spec, str(out), backend="serial", log=io.StringIO())
    store = ResultStore(str(out))
    before = store.fingerprint()
    assert (out / "_progress" / f"{small_spec.run_id}.json").is_file()
    store.backend.put_doc("progress", small_spec.run_id, {"in_flight": 5.0, "updated": time.time()})
    assert store.fingerprint() == before           # a progress record is not data: no dashboard reload
    n = store.trials(small_spec.run_id).num_rows
    assert n == small_spec.planned_trials
    assert ds.dataset(str(out), format="parquet", partitioning="hive").count_rows() == n
    got = duckdb.sql(f"SELECT count(*) FROM read_parquet('{out}/**/*.parquet', hive_partitioning = true, "
                     "union_by_name = true)").fetchall()[0][0]
    assert got == n


def test_run_status_shows_the_in_flight_share(tmp_path, small_spec):
    from mc_hull.query import views
    from mc_hull.jobs.plan import plan

    out = tmp_path / "o"
    shards = plan(small_spec)
    runner.execute(small_spec, str(out), backend="serial", shards=shards[:2], log=io.StringIO())
    store = ResultStore(str(out))
    now = time.time()
    store.backend.put_doc("progress", small_spec.run_id,
                          {"committed": 120, "in_flight": 37.5, "rate": 10.0, "eta_s": 50.0, "updated": now - 2,
                           "finished": False, "units": []})
    row = views.run_status(str(out), now=now).to_pylist()[0]
    assert row["trials_in_flight"] == 37.5 and row["active"]
    assert row["trials_per_s"] == 10.0 and row["eta_s"] == pytest.approx(48.0)
    store.backend.put_doc("progress", small_spec.run_id, {"in_flight": 37.5, "updated": now - 600})
    row = views.run_status(str(out), now=now).to_pylist()[0]
    assert row["trials_in_flight"] == 0.0 and row["progress_age_s"] == pytest.approx(600)   # a runner gone


def test_job_status_shows_the_last_progress_lines():
    from mc_hull.distributed.submit import last_progress

    log = ("mc-hull: plan: 40 cells\n"
           "mc-hull: run ab12: 10 of 400 trials (2%; 10 inside 1 unit in flight), 0.5 trials/s, ETA 13 min\n"
           "mc-hull:   unit gaussian/d=16/nested/r0000000-0000006: replicate 1 of 6, pass 3\n"
           "mc-hull: run ab12: 20 of 400 trials (5%; 20 inside 1 unit in flight), 0.5 trials/s, ETA 12 min\n"
           "mc-hull:   unit gaussian/d=16/nested/r0000000-0000006: replicate 2 of 6, pass 1\n"
           "some other line\n")
    assert last_progress(log) == log.splitlines()[3:5]
    assert last_progress("mc-hull: plan: 40 cells\n") == []


def test_ray_workers_report_through_the_hub(tmp_path, monkeypatch, ray_local):
    from mc_hull.distributed.pool import Pool

    _fast(monkeypatch)
    # the units on the pool's actors, as a farm (spread units would run on the driver, over holders)
    monkeypatch.setattr(NestedJob, "spread", lambda self, unit: False)
    # units of several seconds: a worker reports at most once a second (its own MC_HULL_REPORT_SECONDS)
    spec = Spec.from_dict({**_streamed_spec(seed=4, trials=96, top=3_000_000).to_dict(), "shard_trials": 48})
    log = io.StringIO()
    with Pool("local", 2) as pool:
        runner.execute(spec, str(tmp_path / "r"), backend="ray", pool=pool, job=NestedJob(spec), log=log)
    text = log.getvalue()
    assert "inside 1 unit in flight" in text or "inside 2 units in flight" in text, text
    assert "mc-hull:   unit gaussian/d=4/nested/" in text and "replicate " in text, text
    monkeypatch.setenv("MC_HULL_PROGRESS", "0")
    runner.execute(spec, str(tmp_path / "s"), backend="serial", job=NestedJob(spec), log=io.StringIO())
    assert _rows(tmp_path / "r", spec.run_id) == _rows(tmp_path / "s", spec.run_id)


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_on_a_terminal_the_bar_moves_with_the_share_inside_units():
    log = _Terminal()
    m = runner.Progress(1000, "run x", "trial", log=log, every=0.1)
    try:
        assert m.bar is not None and not m.lines
        m.receive({"key": "a", "size": 400, "share": 0.5, "t": time.time()})
        time.sleep(1.5)                  # the clock redraws the bar
        assert m.bar.n == 200
        m.update(400, "a")
        assert m.bar.n == 400
    finally:
        m.close()
    assert "mc-hull: run x:" not in log.getvalue()      # a bar, not lines


def test_hull_test_units_report_points_open(tmp_path, monkeypatch):
    from mc_hull.runs.datasets import ArrayData, Reduction
    from mc_hull.runs.hulltest import run_hull_test

    _fast(monkeypatch)
    seen = []
    real = runner.Progress.receive
    monkeypatch.setattr(runner.Progress, "receive", lambda self, s: (seen.append(dict(s)), real(self, s)))
    rng = np.random.default_rng(0)
    train, test = rng.standard_normal((20000, 24)), rng.standard_normal((1100, 24))
    run_hull_test(ArrayData(train, None, "train"), ArrayData(test, None, "test"), Reduction("none"), str(tmp_path / "h"), backend="serial",
                  log=io.StringIO())
    assert any("points open" in s.get("detail", "") for s in seen), seen
    assert {s["key"].rsplit("/", 1)[1] for s in seen} == {"0-512", "512-1024", "1024-1100"}


def test_dashboard_run_status_shows_the_share_inside_units(tmp_path, small_spec, monkeypatch):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from mc_hull.jobs.plan import plan

    out = tmp_path / "o"
    runner.execute(small_spec, str(out), backend="serial", shards=plan(small_spec)[:2], log=io.StringIO())
    ResultStore(str(out)).backend.put_doc("progress", small_spec.run_id, {
        "committed": 120, "in_flight": 45.0, "rate": 3.0, "eta_s": 300.0, "updated": time.time(),
        "finished": False, "units": []})
    monkeypatch.setenv("MC_HULL_RESULTS", str(out))
    app = str(Path(__file__).resolve().parents[1] / "dashboards" / "app.py")
    at = AppTest.from_file(app, default_timeout=90).run()
    assert not at.exception
    texts = [p.proto.text for p in at.get("progress")]
    assert any("45 trials inside units in flight" in t and "running" in t for t in texts), texts
    at.toggle(key="auto").set_value(True).run()     # the status section then redraws on its own clock
    assert not at.exception


def test_a_run_that_fails_leaves_a_stopped_record(tmp_path, small_spec, monkeypatch):
    from mc_hull.jobs import trial

    def boom(spec, shard):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(trial, "run_shard", boom)
    with pytest.raises(McHullError, match="disk on fire"):
        runner.execute(small_spec, str(tmp_path / "o"), backend="serial", log=io.StringIO())
    record = json.loads((tmp_path / "o" / "_progress" / f"{small_spec.run_id}.json").read_text())
    assert record["stopped"] and not record["finished"] and record["committed"] == 0


def test_the_start_of_a_replicate_after_a_slow_one_is_reported_at_once(sink, monkeypatch):
    """After a replicate of a report interval or more, the next replicate's start is sent even though a
    state was sent just before (the end of the slow one's last pass); quick replicates stay rate-limited."""
    monkeypatch.setattr(progress, "REPORT_SECONDS", 0.3)
    progress.install(sink.append, workers=1)
    with progress.unit("gaussian/d=18/r0-3", 30):
        progress.replicate(0, 3)
        time.sleep(0.35)                       # a slow replicate, its last pass reported at its very end
        progress.update("nested", inner=1.0, open=0, queries=5, passes=14)
        progress.replicate(1, 3)
        after_slow = [s["detail"] for s in sink]
        for _ in range(50):                    # quick replicates: no state for each
            progress.replicate(2, 3)
    assert after_slow[-2].startswith("replicate 1 of 3, pass 14") and after_slow[-1] == "replicate 2 of 3", after_slow
    assert len(sink) - len(after_slow) <= 1
