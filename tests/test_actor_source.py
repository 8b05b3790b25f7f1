"""One training set across Ray actors (mc_hull.distributed.blocks.ActorSource): same answers, faults survived.

Embedded Ray for the equivalence checks; a real multi-node ``ray.cluster_utils.Cluster`` (head
without CPUs plus two one-CPU worker nodes, each its own raylet and object store, token
authentication as Ray's default) for the node-loss test.
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest

from mc_hull.solvers.sources import ArraySource, PointSource
from mc_hull.solvers.stream import StreamSolver

pytestmark = [pytest.mark.ray]

class SlowSource(PointSource):
    """An array served block by block with a pause per block: passes long enough to disturb."""

    def __init__(self, X, block_rows, pause):
        self.X, self.pause = X, pause
        self.n, self.d = X.shape
        self.block_rows = block_rows

    def generate(self, block_ids):
        for b in block_ids:
            time.sleep(self.pause)
            start = int(b) * self.block_rows
            yield start, self.X[start:start + self.block_rows]


def same(a, b):
    assert np.array_equal(a.status, b.status)
    assert np.array_equal(a.certificate, b.certificate, equal_nan=True)
    assert list(a.method) == list(b.method)


def data(seed, n, d, q, offset=0.0, scale=1.0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n, d)) * scale + offset).astype(dtype)
    Q = rng.standard_normal((q, d)) * 1.3 * scale + offset
    Q[:5] = X[:5]                      # training points themselves: the nearest-point stage
    return X, Q


@pytest.mark.parametrize("seed, n, d, holders, block_rows, hold, offset, scale, dtype", [
    (1, 5000, 6, 3, 256, None, 0.0, 1.0, np.float64),
    (2, 3000, 4, 2, 100, False, 1e6, 1e-3, np.float64),    # offset and tiny spread: the frame matters
    (3, 4000, 8, 5, 333, True, 0.0, 1e200, np.float64),    # near the float limits
    (4, 4000, 5, 2, 512, None, -3.0, 1.0, np.float32),     # float32 blocks stay float32
])
def test_actor_source_answers_equal_the_in_process_stream(ray_local, seed, n, d, holders, block_rows, hold,
                                                          offset, scale, dtype):
    from mc_hull.distributed.blocks import ActorSource

    X, Q = data(seed, n, d, 200, offset, scale, dtype)
    src = ArraySource(X, block_rows)
    serial = StreamSolver(fallbacks=(), budget=64 * 8 * d * 60).decide(src, Q)   # several batches
    with ActorSource(src, holders=holders, hold=hold) as actors:
        assert len(actors.holders) == holders
        assert actors.hold == (hold if hold is not None else True)
        if actors.hold and dtype == np.float32:
            assert sum(b for _, _, b in actors.placement) == X.nbytes     # held as float32
        solver = StreamSolver(fallbacks=(), budget=64 * 8 * d * 60)
        dist = solver.decide(actors, Q)
        assert solver.passes >= 3
    same(serial, dist)
    assert (serial.status != -1).mean() > 0.95


def test_the_budget_decides_held_or_served(ray_local):
    from mc_hull.distributed.blocks import ActorSource

    X, Q = data(5, 4096, 4, 50)
    src = ArraySource(X, 512)
    with ActorSource(src, holders=2, budget=X.nbytes // 2) as held:
        assert held.hold and "held by 2 actors" in held.describe()
    with ActorSource(src, holders=2, budget=X.nbytes // 3) as served:
        assert not served.hold and "every pass" in served.describe()
        same(StreamSolver(fallbacks=()).decide(src, Q), StreamSolver(fallbacks=()).decide(served, Q))


def test_a_killed_holder_is_replaced_and_its_part_recomputed(ray_local):
    import os
    import signal

    from mc_hull.distributed.blocks import ActorSource

    X, Q = data(6, 3000, 5, 120)
    src = ArraySource(X, 250)
    reference = StreamSolver(fallbacks=()).decide(src, Q)
    with ActorSource(src, holders=2) as actors:
        solver = StreamSolver(fallbacks=())
        original = solver.decide
        calls = {"n": 0}

        def kill_then_pass(fn, context, **kw):
            calls["n"] += 1
            if calls["n"] == 3:        # mid-decision: the third pass
                os.kill(actors.placement[1][1], signal.SIGKILL)
            return ActorSource.map_blocks(actors, fn, context, **kw)

        actors.map_blocks = kill_then_pass
        dec = original(actors, Q)
        assert actors.replaced >= 1
    same(reference, dec)


@pytest.mark.cluster
def test_a_training_set_beyond_one_worker_survives_losing_a_node(cluster):
    """X is 3x one holder's budget: served by the holders every pass; a node dies mid-pass."""
    import ray
    from ray import cloudpickle

    from mc_hull.distributed.blocks import ActorSource

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    X, Q = data(7, 6000, 6, 150)
    reference = StreamSolver(fallbacks=()).decide(ArraySource(X, 500), Q)
    ray.init(address=cluster.address, logging_level="warning")
    try:
        slow = SlowSource(X, 500, 0.15)
        with ActorSource(slow, holders=2, budget=X.nbytes // 3) as actors:
            assert not actors.hold
            assert len({node for node, _, _ in actors.placement}) == 2       # one holder per worker node
            solver = StreamSolver(fallbacks=())
            victim = next(n for n in cluster.workers if n.node_id == actors.placement[0][0])
            removed = {}

            def disturb():
                end = time.monotonic() + 60
                while time.monotonic() < end and (getattr(solver, "data", None) is None
                                                  or solver.data.passes < 3):
                    time.sleep(0.05)
                time.sleep(0.3)                                  # inside the third pass
                cluster.remove_node(victim)
                removed["t"] = time.monotonic()

            thread = threading.Thread(target=disturb, daemon=True)
            thread.start()
            dec = solver.decide(actors, Q)
            thread.join(timeout=60)
            assert "t" in removed
            assert actors.replaced >= 1, actors.events
        same(reference, dec)
    finally:
        ray.shutdown()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def test_a_monte_carlo_cell_beyond_the_budget_spreads_its_x_over_actors(tmp_path, monkeypatch):
    """A run on Ray gives the rows of the serial run; its huge cell's X went to block holders."""
    import duckdb

    from mc_hull.distributed import blocks as distributed_blocks
    from mc_hull.runs.runner import execute
    from mc_hull.spec import Spec

    monkeypatch.setenv("MC_HULL_MEMORY_BUDGET", "200K")           # X of (5, 4000) is 160 KB: streamed
    spec = Spec(distribution="gaussian", dims=(5,), sizes=(300, 4000), trials=100, queries_per_set=50,
                seed=3, shard_trials=50)
    cols = "d, n, replicate, query, status, method, certificate_value"

    def rows(out):
        return duckdb.sql(f"SELECT {cols} FROM read_parquet('{out}/**/*.parquet', hive_partitioning = true) "
                          "ORDER BY ALL").fetchall()

    execute(spec, str(tmp_path / "serial"), backend="serial", progress=False)
    distributed_blocks.PLACED.clear()
    execute(spec, str(tmp_path / "ray"), backend="ray", workers=2, progress=False)
    assert len(distributed_blocks.PLACED) == 2                     # the two replicates of (5, 4000)
    assert all(p.startswith("X held by 1 actors on 1 node") for p in distributed_blocks.PLACED), distributed_blocks.PLACED
    assert rows(tmp_path / "ray") == rows(tmp_path / "serial")
    assert len(rows(tmp_path / "ray")) == 200


def test_take_serves_rows_from_the_holders(ray_local):
    from mc_hull.distributed.blocks import ActorSource

    X, _ = data(8, 3000, 4, 10, dtype=np.float32)
    src = ArraySource(X, 128)
    idx = np.array([2999, 0, 5, 5, 128, 127, 1500, 0])
    with ActorSource(src, holders=3) as actors:
        got = actors.take(idx)
        assert got.dtype == np.float64 and np.array_equal(got, X[idx].astype(np.float64))
        assert actors.take(np.zeros(0, dtype=np.intp)).shape == (0, 4)
