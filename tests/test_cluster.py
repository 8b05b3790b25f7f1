"""Faults on a real multi-node Ray cluster on this machine (ray.cluster_utils.Cluster).

Head (no CPUs: it runs the GCS and the driver) plus two worker nodes of one CPU
each, dashboard off, fast health checks.  Each test disturbs a run in flight and
checks that it still ends with exactly the planned trials and the same rows as
an uninterrupted serial run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mc_hull.jobs.plan import plan
from mc_hull.spec import Spec

pytestmark = [pytest.mark.cluster, pytest.mark.ray]

ROW_COLUMNS = "distribution, d, n, run_id, replicate, query, inside, status, method, certificate_value"

#: 16 shards of ~0.3 s each (LP solver, d = 6, N = 300): long enough to disturb mid-run.
SPEC = Spec(distribution="gaussian", dims=(6,), sizes=(300,), trials=800, queries_per_set=25,
            seed=5, solver="lp", shard_trials=50)


def rows(out) -> list[tuple]:
    import duckdb

    return duckdb.sql(f"""SELECT {ROW_COLUMNS} FROM read_parquet('{out}/**/*.parquet',
        hive_partitioning = true) ORDER BY d, n, replicate, query""").fetchall()


def committed(out) -> int:
    return len(list(Path(out).rglob("*.parquet")))


def wait_for(predicate, timeout: float, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return False


def descendants(pids: list[int]) -> list[int]:
    """Every process below ``pids`` (this cluster's own raylets), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], list(pids)
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            out.append(child)
            todo.append(child)
    return out


def shard_worker_pids(node, running: bool = False) -> list[int]:
    raylet = node.all_processes["raylet"][0].process.pid
    found = []
    for pid in descendants([raylet]):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if (b"ShardWorker.run" if running else b"ShardWorker") in cmd:
            found.append(pid)
    return found


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted serial run of SPEC (no Ray)."""
    from mc_hull.runs.runner import execute

    out = tmp_path_factory.mktemp("ref") / "out"
    execute(SPEC, str(out), backend="serial", progress=False)
    return rows(out)


def ensure_two_workers(cluster):
    alive = [n for n in cluster.workers if n in cluster.worker_nodes]
    while len(alive) < 2:
        alive.append(cluster.add_node(num_cpus=1))
    cluster.workers = alive
    cluster.wait_for_nodes(timeout=60)


def run_disturbed(cluster, out, disturb):
    """Run SPEC on the cluster from this process while ``disturb()`` runs in a thread."""
    from mc_hull.distributed import pool as distributed
    from mc_hull.runs.runner import execute

    thread = threading.Thread(target=disturb, daemon=True)
    thread.start()
    report = execute(SPEC, str(out), backend="ray", address=cluster.address, progress=False)
    thread.join(timeout=60)
    return report, list(distributed.LAST_EVENTS)


def test_actor_killed_mid_run(cluster, reference, tmp_path):
    ensure_two_workers(cluster)
    out = tmp_path / "out"
    killed = {}

    def disturb():
        from mc_hull.distributed import pool as distributed

        assert wait_for(lambda: committed(out) >= 2, timeout=120)
        # Kill the actor process while it runs a shard; if the kill raced with the end of a
        # call and nothing was lost, kill again (at most three times).
        for attempt in range(3):
            pids = shard_worker_pids(cluster.workers[0], running=True) or shard_worker_pids(cluster.workers[0])
            if not pids:
                time.sleep(0.2)
                continue
            os.kill(pids[0], signal.SIGKILL)
            killed.setdefault("t", time.perf_counter())
            killed["kills"] = attempt + 1
            if wait_for(lambda: any(k == "lost" for _, k, _ in distributed.LAST_EVENTS), timeout=5):
                return

    report, events = run_disturbed(cluster, out, disturb)
    assert "t" in killed
    assert report.trials == SPEC.planned_trials
    assert any(kind == "lost" for _, kind, _ in events), (killed, events)
    assert rows(out) == reference


def test_driver_sigkilled_then_rerun_resumes(cluster, reference, tmp_path, capsys):
    ensure_two_workers(cluster)
    out = tmp_path / "out"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, "-m", "mc_hull", "run", "--distribution", SPEC.distribution,
            "--dims", "6", "--sizes", "300", "--trials", str(SPEC.trials),
            "--queries-per-set", str(SPEC.queries_per_set), "--seed", str(SPEC.seed),
            "--solver", "lp", "--shard-trials", str(SPEC.shard_trials),
            "--address", cluster.address, "--out", str(out), "--no-progress"]
    driver = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              start_new_session=True)
    try:
        assert wait_for(lambda: committed(out) >= 3, timeout=120), driver.stderr.read1().decode()
    finally:
        os.kill(driver.pid, signal.SIGKILL)
        driver.communicate(timeout=30)
    before = committed(out)
    assert 3 <= before < len(plan(SPEC))
    # Run again (embedded driver this time): resumes from the committed files.
    from mc_hull.runs.runner import execute

    report = execute(SPEC, str(out), backend="ray", address=cluster.address, progress=False)
    assert report.skipped_shards >= before and report.computed_shards == len(plan(SPEC)) - report.skipped_shards
    assert "already committed" in capsys.readouterr().err
    assert rows(out) == reference
    assert not list(out.rglob(".*.tmp"))


def test_node_removed_mid_run(cluster, reference, tmp_path, capsys):
    ensure_two_workers(cluster)
    out = tmp_path / "out"
    victim = cluster.workers[1]
    removed = {}

    def disturb():
        assert wait_for(lambda: committed(out) >= 2, timeout=120)
        removed["t"] = time.perf_counter()
        cluster.remove_node(victim, allow_graceful=False)

    report, events = run_disturbed(cluster, out, disturb)
    assert "t" in removed, "the node was never removed"
    assert report.trials == SPEC.planned_trials and report.computed_shards == len(plan(SPEC))
    assert rows(out) == reference
    lost = [t for t, kind, _ in events if kind == "lost" and t >= removed["t"]]
    assert lost, "no shard was in flight on the removed node"
    requeued = {detail for t, kind, detail in events if kind == "requeued"}
    redone = [t for t, kind, detail in events if kind == "done" and detail in requeued]
    detect, recover = lost[0] - removed["t"], max(redone) - removed["t"]
    sys.__stderr__.write(f"\n[node loss] detected after {detect:.2f} s; lost shards "
                         f"recommitted {recover:.2f} s after the removal\n")
    assert detect < 15


def test_bigcell_streams_x_and_prices_blocks_on_the_cluster(cluster, tmp_path, monkeypatch):
    """A cell decided without materialising X agrees with the in-memory LP, serially and on Ray."""
    import numpy as np
    import ray

    from mc_hull.distributed.pool import Pool
    from mc_hull.runs.runner import execute
    from mc_hull.solvers import get_solver
    from mc_hull.samplers import keyed_source, replicate_data
    from mc_hull.jobs.trial import stream_solver

    # 3 blocks of X (N > 2 * BLOCK_ROWS), d = 12: p is about 0.75.
    spec = Spec(distribution="gaussian", dims=(12,), sizes=(140_000,), trials=40, queries_per_set=40,
                seed=9, solver="lp")
    X, Q = replicate_data(spec, 12, 140_000, 0)
    src = keyed_source(spec, 12, 140_000, 0)
    assert np.array_equal(np.vstack([blk for _, blk in src.generate(range(src.n_blocks))]), X)
    assert np.array_equal(src.queries(), Q)
    # Against the in-memory LP on a cell small enough for it (same keys, one block).
    small_spec = Spec(distribution="gaussian", dims=(5,), sizes=(2000,), trials=40, queries_per_set=40,
                      seed=9, solver="lp")
    Xs, Qs = replicate_data(small_spec, 5, 2000, 0)
    ref = get_solver("lp").decide(Xs, Qs, tol=spec.tol)
    small_src = keyed_source(small_spec, 5, 2000, 0)
    small = stream_solver().decide(small_src, small_src.queries(), tol=spec.tol)
    np.testing.assert_array_equal(small.status, ref.status)
    serial = stream_solver(ranges=3).decide(src, src.queries(), tol=spec.tol)
    assert (serial.status >= 0).all() and 0 < (serial.status == 1).sum() < 40
    assert (serial.certificate[serial.status == 0] > spec.tol).all()  # margins above atol / s
    assert (serial.certificate[serial.status == 1] <= spec.tol).all()  # residuals within atol / s
    with Pool(address=cluster.address) as pool:  # every pass's block ranges on the cluster's actors
        on_ray = stream_solver(map=pool.map, ranges=3).decide(src, src.queries(), tol=spec.tol)
    assert not ray.is_initialized()
    np.testing.assert_array_equal(on_ray.status, serial.status)
    np.testing.assert_allclose(on_ray.certificate, serial.certificate)

    # Above the memory budget the runner streams: same decisions as the in-memory path.
    small_spec = Spec(distribution="gaussian", dims=(4,), sizes=(50, 400), trials=30,
                      queries_per_set=15, seed=4, solver="lp", shard_trials=15)
    execute(small_spec, str(tmp_path / "mem"), backend="serial", progress=False)
    monkeypatch.setenv("MC_HULL_MEMORY_BUDGET", "1K")
    execute(small_spec, str(tmp_path / "stream"), backend="serial", progress=False)
    a = rows(tmp_path / "mem")
    b = rows(tmp_path / "stream")
    assert [r[:7] for r in a] == [r[:7] for r in b]  # same trials and decisions
    assert {r[8] for r in b} <= {"stream:prefilter", "stream:inside", "stream:outside", "stream:point"}
