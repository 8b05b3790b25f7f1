"""Streamed nested replicates over a cluster: one training set's blocks on actors, every pass run there.

The nested search's passes (frame, pricing) are ``map_blocks`` over the source; on an
:class:`~mc_hull.distributed.blocks.ActorSource` every holder runs them over its own blocks, held or
regenerated, and the partials are merged in block order.  Everything the search returns must be
identical to the in-process search over the same blocks, bit for bit, with held or served blocks,
any number of holders, a holder killed or a node lost mid-pass.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import numpy as np
import pytest
from test_nested import CASES, _check_certificates, _data, _grid

from mc_hull.nested import stream as nested_stream
from mc_hull.solvers.sources import ArraySource

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def identical(a, b):
    """Every field of two EntrySizes (and the pass count), bit for bit."""
    for name in ("low", "high", "low_value", "high_value", "directions", "solves", "shortcuts"):
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True), name
    for sa, sb in zip(a.support, b.support):
        assert (sa is None) == (sb is None) and (sa is None or np.array_equal(sa, sb))
    for wa, wb in zip(a.weights, b.weights):
        assert (wa is None) == (wb is None) and (wa is None or np.array_equal(wa, wb))
    assert a.passes == b.passes


@pytest.mark.parametrize("case", [c for c in CASES if c[0] != "cube" or c[1] > 1][:7] + [CASES[-1]])
@pytest.mark.parametrize("holders,hold", [(2, True), (3, False)])
def test_search_over_holders_is_the_in_process_search(ray_local, case, holders, hold):
    from mc_hull.distributed.blocks import ActorSource

    kind, d, N, L, seed, _ = case
    X, Q = _data(kind, np.random.default_rng(200 + seed), N, d)
    sizes = _grid(N, L)
    br = 97 if N >= 1000 else 13                  # blocks straddle the grid sizes and the holders' runs
    ref = nested_stream.streamed_entry_sizes(ArraySource(X, br), Q, sizes, budget=0)
    with ActorSource(ArraySource(X, br), holders=holders, hold=hold) as actors:
        got = nested_stream.streamed_entry_sizes(actors, Q, sizes, budget=0)
    identical(ref, got)
    _check_certificates(X, Q, got)
    assert got.regenerated == (N if hold else got.regenerated) and got.regenerated >= N


def test_a_holder_killed_mid_search_changes_nothing(ray_local):
    from mc_hull.distributed.blocks import ActorSource

    X, Q = _data("gauss", np.random.default_rng(41), 5000, 6)
    sizes = _grid(5000, 30)
    ref = nested_stream.streamed_entry_sizes(ArraySource(X, 200), Q, sizes, budget=0)
    with ActorSource(ArraySource(X, 200), holders=2, hold=True) as actors:
        calls = {"n": 0}

        def kill_then_pass(fn, context, **kw):
            calls["n"] += 1
            if calls["n"] == 3:
                os.kill(actors.placement[1][1], signal.SIGKILL)
            return ActorSource.map_blocks(actors, fn, context, **kw)

        actors.map_blocks = kill_then_pass
        got = nested_stream.streamed_entry_sizes(actors, Q, sizes, budget=0)
        assert actors.replaced >= 1 and calls["n"] >= 3
    identical(ref, got)


@pytest.mark.parametrize("budget,where", [("1M", "X served from its loader on every pass by 2 actors"),
                                          ("3M", "X held by 2 actors")])
def test_a_nested_run_on_ray_spreads_its_replicates_and_gives_the_serial_rows(tmp_path, monkeypatch, budget, where):
    """A nested run whose X exceeds the budget: on Ray each replicate's blocks go to holders (held when
    X's half fits a holder's budget, regenerated on every pass otherwise); the rows of the serial run."""
    import duckdb

    from mc_hull.distributed import blocks as distributed_blocks
    from mc_hull.jobs import nested as nested_job
    from mc_hull import seeding
    from mc_hull.runs.runner import execute
    from mc_hull.spec import Spec

    monkeypatch.setenv("MC_HULL_MEMORY_BUDGET", budget)
    n_max = 3 * seeding.BLOCK_ROWS + 5
    spec = Spec.from_dict(dict(distribution="gaussian", dims=(3,), sizes=(5, 40, 300, 2500, 70000, n_max),
                               trials=24, queries_per_set=12, seed=11, shard_trials=24, nested=True))
    cols = "d, n, replicate, query, status, method, certificate_value, rounds"

    def rows(out):
        return duckdb.sql(f"SELECT {cols} FROM read_parquet('{out}/**/*.parquet', hive_partitioning = true) "
                          "ORDER BY ALL").fetchall()

    assert nested_job.streamed_sizes(spec, 3) is not None        # streamed in process too
    execute(spec, str(tmp_path / "serial"), backend="serial", progress=False)
    distributed_blocks.PLACED.clear()
    execute(spec, str(tmp_path / "ray"), backend="ray", workers=2, progress=False)
    replicates = spec.replicates_for(3, max(spec.sizes_for(3)))
    assert replicates >= 2 and len(distributed_blocks.PLACED) == replicates, distributed_blocks.PLACED
    assert all(p.startswith(where.replace(" 2 actors", "")) and "on 1 node" in p
               for p in distributed_blocks.PLACED), distributed_blocks.PLACED
    assert rows(tmp_path / "ray") == rows(tmp_path / "serial")
    assert len(rows(tmp_path / "ray")) == 24 * 6


def test_holders_keep_what_their_budget_allows_and_serve_the_rest(ray_local):
    """X twice the holders' budgets: each keeps the first blocks of its run, the answers are unchanged,
    and the rows drawn per pass are only those not held."""
    from mc_hull.distributed.blocks import ActorSource

    X, Q = _data("gauss", np.random.default_rng(44), 4000, 5)
    sizes = _grid(4000, 25)
    br = 100
    ref = nested_stream.streamed_entry_sizes(ArraySource(X, br), Q, sizes, budget=0)
    with ActorSource(ArraySource(X, br), holders=2, budget=X.nbytes // 4) as actors:
        assert not actors.hold and actors.keep == [10, 10]          # 10 of each holder's 20 blocks
        assert "partly held by 2 actors" in actors.describe() and "50% of the rows" in actors.describe()
        got = nested_stream.streamed_entry_sizes(actors, Q, sizes, budget=0)
        drawn_at_placement = 2000
        # every pass draws at most the unheld half; the frame pass draws it all
        assert drawn_at_placement + 2000 <= got.regenerated <= drawn_at_placement + got.passes * 2000
    identical(ref, got)


def test_replicates_reuse_the_holders(ray_local):
    """A placer keeps its holders for the next loader of the same shape; a new shape gets new ones."""
    import ray

    from mc_hull.distributed.blocks import Placer

    rng = np.random.default_rng(45)
    place = Placer(holders=2)
    try:
        ids = []
        for X in (rng.standard_normal((3000, 4)), 5 + rng.standard_normal((3000, 4)), rng.standard_normal((2000, 4))):
            Q = X.mean(axis=0) + rng.standard_normal((20, 4))
            sizes = _grid(len(X), 15)
            ref = nested_stream.streamed_entry_sizes(ArraySource(X, 128), Q, sizes, budget=0)
            with place(ArraySource(X, 128)) as actors:
                ids.append([h._actor_id for h in actors.holders])
                got = nested_stream.streamed_entry_sizes(actors, Q, sizes, budget=0)
            identical(ref, got)
        assert ids[0] == ids[1] and ids[2] != ids[1] and place.reused == 1
        last = list(place.current.holders)
    finally:
        place.close()
    assert place.current is None
    for h in last:                       # closed: the holders are gone (refused at submission or on get)
        end = time.monotonic() + 60
        while True:                      # a kill takes effect asynchronously
            try:
                ray.get(h.where.remote(), timeout=30)
            except Exception as exc:     # noqa: BLE001 - RayActorError, or refused at submission
                assert "actor" in str(exc).lower() or "dead" in str(exc).lower(), exc
                break
            assert time.monotonic() < end, "a closed placer's holder still answers"
            time.sleep(0.2)


def test_spread_plan_chooses_concurrency_by_the_cost_model():
    from mc_hull.distributed.blocks import spread_plan

    G = 1 << 30
    # one X that the cluster can hold once: one replicate at a time, with every core holding it
    assert spread_plan(31, 2, int(5.8 * G), 16 * G) == (1, 2)
    # X beyond the cluster's memory on two cores: replicates side by side in process (no holders)
    assert spread_plan(31, 2, 27 * G, 16 * G) == (2, 0)
    # never several units with a single holder each (that is the farm with more processes)
    assert spread_plan(4, 2, 1, 16 * G) == (1, 2)
    # ... but on 64 cores, 31 replicates side by side with two holders each beat 31 single cores
    assert spread_plan(31, 64, 27 * G, 256 * G) == (31, 2)
    # a big cluster, X held 8 at a time or all 31 regenerated: the model's quicker choice, never more
    # units at once than units or cores, and holders fill the cores
    u, h = spread_plan(31, 512, 117 * G, 2048 * G)
    assert 1 <= u <= 31 and h == 512 // u
    for units, cpus, x, mem in [(1, 64, G, 64 * G), (5, 3, 1, 1), (100, 7, 10 * G, 8 * G)]:
        u, h = spread_plan(units, cpus, x, mem)
        assert 1 <= u <= min(units, cpus) and h in (0, cpus // u) and (u == 1 or h != 1)


def test_spread_units_on_the_pool_actors_give_the_serial_rows(tmp_path, monkeypatch):
    """Many small spread units: the plan runs them side by side on the pool's actors, each over its own
    holders (placements come back to the driver); the rows equal the serial run's."""
    import duckdb

    from mc_hull.distributed import blocks
    from mc_hull.runs.runner import execute
    from mc_hull.spec import Spec

    import ray

    if ray.is_initialized():      # the embedded Ray must start with this budget: its workers inherit it
        ray.shutdown()
    monkeypatch.setenv("MC_HULL_MEMORY_BUDGET", "200K")          # X of (5, 4000) is 160 KB: streamed
    spec = Spec(distribution="gaussian", dims=(5,), sizes=(300, 4000), trials=200, queries_per_set=25,
                seed=5, shard_trials=50)
    assert blocks.spread_plan(4, 4, 8 * 4000 * 5, 16 << 30) == (2, 2)    # 2 at once, 2 holders each
    cols = "d, n, replicate, query, status, method, certificate_value"

    def rows(out):
        return duckdb.sql(f"SELECT {cols} FROM read_parquet('{out}/**/*.parquet', hive_partitioning = true) "
                          "ORDER BY ALL").fetchall()

    execute(spec, str(tmp_path / "serial"), backend="serial", progress=False)
    blocks.PLACED.clear()
    execute(spec, str(tmp_path / "ray"), backend="ray", workers=4, progress=False)
    assert len(blocks.PLACED) == 8, blocks.PLACED                  # the eight replicates of (5, 4000)
    assert all(p.startswith("X held by 1 actors") for p in blocks.PLACED)     # one block: one holder
    assert rows(tmp_path / "ray") == rows(tmp_path / "serial")
    assert len(rows(tmp_path / "ray")) == 400


# Last in the module: the module-scoped three-node cluster ends with it, so no later test joins it.
class SlowKeyed(ArraySource):
    """An array source that takes its time per block, so that a node can be lost mid-pass."""

    def __init__(self, X, block_rows, delay):
        super().__init__(X, block_rows)
        self.delay = delay

    def generate(self, block_ids):
        for item in super().generate(block_ids):
            time.sleep(self.delay)
            yield item


@pytest.mark.cluster
def test_a_nested_replicate_beyond_one_worker_survives_losing_a_node(cluster):
    """X is 3x one holder's budget, regenerated on two worker nodes every pass; one node dies mid-pass."""
    import ray
    from ray import cloudpickle

    from mc_hull.distributed.blocks import ActorSource

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    X, Q = _data("gauss", np.random.default_rng(43), 6000, 5)
    sizes = _grid(6000, 25)
    ref = nested_stream.streamed_entry_sizes(ArraySource(X, 500), Q, sizes, budget=0)
    ray.init(address=cluster.address, logging_level="warning")
    try:
        with ActorSource(SlowKeyed(X, 500, 0.05), holders=2, budget=X.nbytes // 3) as actors:
            assert not actors.hold
            assert len({node for node, _, _ in actors.placement}) == 2
            victim = next(n for n in cluster.workers if n.node_id == actors.placement[0][0])
            seen = {"passes": 0}
            original = ActorSource.map_blocks

            def counting(fn, context, **kw):
                seen["passes"] += 1
                return original(actors, fn, context, **kw)

            actors.map_blocks = counting
            removed = {}

            def disturb():
                end = time.monotonic() + 60
                while time.monotonic() < end and seen["passes"] < 3:
                    time.sleep(0.02)
                time.sleep(0.2)                        # inside the third pass
                cluster.remove_node(victim)
                removed["t"] = time.monotonic()

            thread = threading.Thread(target=disturb, daemon=True)
            thread.start()
            got = nested_stream.streamed_entry_sizes(actors, Q, sizes, budget=0)
            thread.join(timeout=60)
            assert "t" in removed and actors.replaced >= 1, actors.events
        identical(ref, got)
    finally:
        ray.shutdown()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
