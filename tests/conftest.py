"""Shared fixtures: a real embedded Ray per test module and a small real results directory."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def ray_local():
    """A real local Ray instance with 2 CPUs (never joins another Ray on the host)."""
    import ray

    from mc_hull.distributed.pool import WORKER_ENV

    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="warning",
             runtime_env={"env_vars": WORKER_ENV}, log_to_driver=False)
    yield ray
    ray.shutdown()


#: Fast failure detection (NOTES.md): a dead node is declared after ~1 s instead of ~16 s.
FAST_HEALTH = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
               "health_check_timeout_ms": 500, "health_check_failure_threshold": 2}


@pytest.fixture(scope="module")
def cluster():
    """A real multi-node Ray on this machine: a head without CPUs (GCS, driver) and two one-CPU
    worker nodes, each its own raylet and object store; dashboard off, fast health checks.
    ``cluster.workers`` lists the worker nodes."""
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(initialize_head=True, connect=False,
                head_node_args={"num_cpus": 0, "include_dashboard": False, "_system_config": FAST_HEALTH})
    c.workers = [c.add_node(num_cpus=1) for _ in range(2)]
    c.wait_for_nodes(timeout=60)
    yield c
    if ray.is_initialized():
        ray.shutdown()
    c.shutdown()


@pytest.fixture(scope="session")
def small_spec():
    """A small Gaussian spec spanning p from ~0.05 to ~0.9 (LP solver, fast)."""
    from mc_hull.spec import Spec

    return Spec(distribution="gaussian", dims=(2, 4), sizes=(5, 20, 100), trials=120,
                queries_per_set=30, seed=7, shard_trials=60)


@pytest.fixture(scope="session")
def small_results(tmp_path_factory, small_spec):
    """A real results directory written serially from ``small_spec`` (no Ray)."""
    from mc_hull.runs.runner import execute

    out = tmp_path_factory.mktemp("results") / "out"
    execute(small_spec, str(out), backend="serial", progress=False)
    return out


@pytest.fixture(scope="session")
def nested_spec():
    """A tiny nested Gaussian spec: d = 2, 3 on every N from 3 to 40 (N½ = 10.4 and 27.0)."""
    from mc_hull.spec import Spec

    return Spec(distribution="gaussian", dims=(2, 3), sizes=tuple(range(3, 41)), trials=300, seed=11, nested=True)


@pytest.fixture(scope="session")
def nested_results(tmp_path_factory, nested_spec):
    """A real results directory of one nested run (``mc-hull run --nested``), written serially."""
    from mc_hull.jobs.nested import NestedJob
    from mc_hull.runs.runner import execute

    out = tmp_path_factory.mktemp("nested") / "out"
    execute(nested_spec, str(out), backend="serial", progress=False, job=NestedJob(nested_spec))
    return out
