"""Ray execution: one actor per CPU runs shards and writes their files; the driver keeps work bounded.

Fault model
-----------
* Every shard's rows are a pure function of (spec, shard) and its file name is
  a function of (run, shard): a retry overwrites, it never duplicates.
* Actors are created with ``max_restarts=-1`` and ``SPREAD`` scheduling (no hard
  node affinity), so an actor whose process or node dies is restarted wherever
  a CPU is free.  A restarted actor re-runs its constructor; it holds no results.
* The driver, not Ray, re-queues the shards of a failed call (``max_task_retries=0``)
  and stops sending work to that actor until a ``ping`` to it succeeds, so work
  moves to healthy actors at once even when the dead node's CPUs are gone for good.
* Results live only in the store: a driver killed mid-run loses at most the
  shards in flight, and re-running the same spec resumes from the committed files.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time

import ray
from ray.exceptions import (ActorDiedError, ActorUnavailableError, NodeDiedError, OwnerDiedError,
                            RayActorError, WorkerCrashedError)

from .plan import Shard
from .spec import Spec

#: Environment for workers: one BLAS thread each, so actors do not oversubscribe cores.
WORKER_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "RAY_USAGE_STATS_ENABLED": "0"}
#: Shards in flight per actor: one running, one queued, so an actor never idles.
IN_FLIGHT_PER_ACTOR = 2
#: Attempts per shard before the run gives up on it.
MAX_ATTEMPTS = 6
#: Failures that mean "the actor or its node went away": the shard is re-queued.
LOST = (RayActorError, ActorDiedError, ActorUnavailableError, WorkerCrashedError, NodeDiedError,
        OwnerDiedError)
#: Seconds between checks of the in-flight calls (bounds how long a stuck wait can last).
WAIT_SECONDS = 1.0
#: Seconds the driver waits with no live actor at all (every one restarting) before giving up.
NO_ACTOR_SECONDS = float(os.environ.get("MC_HULL_NO_ACTOR_SECONDS", 600))

#: Events of the last :func:`run_shards` in this process: (perf_counter time, kind, detail).
#: Kinds: ``"start"``, ``"lost"`` (a call failed: actor or node gone), ``"requeued"``,
#: ``"actor_back"`` (a restarted actor answered a ping), ``"done"`` (a shard committed).
LAST_EVENTS: list[tuple[float, str, str]] = []


@ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=0)
class ShardWorker:
    """Holds the spec and the store; runs shards and publishes their files."""

    def __init__(self, spec_json: str, out: str):
        from .spec import Spec
        from .store import ResultStore

        self.spec = Spec.from_json(spec_json)
        self.store = ResultStore(out)

    def ping(self) -> str:
        """The node this actor runs on (used to tell when a restarted actor is back)."""
        return ray.get_runtime_context().get_node_id()

    def pid(self) -> int:
        return os.getpid()

    def run(self, shard: Shard) -> dict:
        from .runner import run_and_write

        summary = run_and_write(self.spec, self.store, shard)
        summary["node"] = ray.get_runtime_context().get_node_id()
        return summary


def in_ray_job() -> bool:
    """True when this process is a Ray job's entrypoint (``ray job submit`` / ``mc-hull submit``)."""
    return "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ and bool(os.environ.get("RAY_ADDRESS"))


def _job_env_vars() -> dict:
    try:
        config = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}"))
        return dict((config.get("runtime_env") or {}).get("env_vars") or {})
    except (ValueError, TypeError, AttributeError):
        return {}


def connect(address: str | None, workers: int | None) -> bool:
    """Start an embedded Ray (address None/"local") or join ``address``; True if we started it.

    A Ray job's entrypoint with no ``address`` joins the job's own cluster
    (``RAY_ADDRESS`` set by the job supervisor); anywhere else no address means
    an embedded instance for this process only, never another Ray on the host.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return False
    runtime_env = {"env_vars": dict(WORKER_ENV)}
    if os.environ.get("MC_HULL_MEMORY_BUDGET"):  # the bigcell streaming threshold, for the workers too
        runtime_env["env_vars"]["MC_HULL_MEMORY_BUDGET"] = os.environ["MC_HULL_MEMORY_BUDGET"]
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ:
        # Inside a Ray job, its runtime env is merged with ours key by key: add only what it lacks.
        have = _job_env_vars()
        runtime_env = {"env_vars": {k: v for k, v in runtime_env["env_vars"].items() if k not in have}}
    if address in (None, "", "local") and in_ray_job():
        ray.init(address=os.environ["RAY_ADDRESS"], runtime_env=runtime_env, logging_level="warning")
    elif address in (None, "", "local"):
        ray.init(address="local", num_cpus=workers or os.cpu_count(), include_dashboard=False,
                 runtime_env=runtime_env, logging_level="warning", log_to_driver=False)
    else:
        ray.init(address=address, runtime_env=runtime_env, logging_level="warning")
    return True


def run_shards(spec: Spec, out: str, shards: list[Shard], *, address: str | None = None,
               workers: int | None = None, progress: bool = True) -> list[dict]:
    """Run ``shards`` on Ray actors, re-queueing shards whose actor or node died.

    Parameters
    ----------
    spec : Spec
    out : str
        Results location; workers write their shard files there directly
        (object-store credentials must be available on every node).
    shards : list of Shard
    address, workers
        See :func:`connect`.
    progress : bool
        Show a progress bar (shards, trials/s, ETA) on stderr.

    Returns
    -------
    list of dict
        One summary per shard (key, trials, undecided, seconds, node).
    """
    if not shards:
        return []
    started = connect(address, workers)
    actors = []
    try:
        n_actors = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        n_actors = min(n_actors, len(shards))
        opts = dict(scheduling_strategy="SPREAD", max_restarts=-1, max_task_retries=0)
        actors = [ShardWorker.options(**opts).remote(spec.to_json(), out) for _ in range(n_actors)]
        return _drive(spec, shards, actors, progress)
    finally:
        for actor in actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - best effort cleanup of our own actors
                pass
        if started:
            ray.shutdown()


def _drive(spec: Spec, shards: list[Shard], actors: list, progress: bool) -> list[dict]:
    from tqdm import tqdm

    LAST_EVENTS.clear()
    t0 = time.perf_counter()
    LAST_EVENTS.append((t0, "start", f"{len(shards)} shards, {len(actors)} actors"))
    queue = list(reversed(shards))
    attempts: dict[Shard, int] = {}
    pending: dict = {}  # ObjectRef -> (shard, actor index)
    pings: dict = {}  # ObjectRef -> actor index, for actors not trusted until they answer
    healthy = [True] * len(actors)
    load = [0] * len(actors)
    results: dict[Shard, dict] = {}
    idle_since = None
    total = sum(s.trials(spec) for s in shards)
    bar = tqdm(total=total, unit="trial", unit_scale=True, disable=not progress or None,
               file=sys.stderr, desc=f"run {spec.run_id}", dynamic_ncols=True)
    try:
        while queue or pending:
            for i, actor in enumerate(actors):
                while healthy[i] and queue and load[i] < IN_FLIGHT_PER_ACTOR:
                    shard = queue.pop()
                    pending[actor.run.remote(shard)] = (shard, i)
                    load[i] += 1
            if not pending and not any(healthy):
                # Every actor is restarting (e.g. their nodes are gone): wait, but not forever.
                idle_since = idle_since or time.perf_counter()
                if time.perf_counter() - idle_since > NO_ACTOR_SECONDS:
                    raise RuntimeError(
                        f"no live actor for {NO_ACTOR_SECONDS:.0f} s (nodes lost?); {len(results)} shards "
                        "were committed and are kept: run again to resume")
                ready, _ = ray.wait(list(pings), num_returns=1, timeout=WAIT_SECONDS)
            else:
                idle_since = None
                ready, _ = ray.wait(list(pending) + list(pings), num_returns=1, timeout=WAIT_SECONDS)
            for ref in ready:
                if ref in pings:
                    i = pings.pop(ref)
                    try:
                        ray.get(ref)
                    except LOST:
                        pings[actors[i].ping.remote()] = i
                        continue
                    healthy[i] = True
                    LAST_EVENTS.append((time.perf_counter(), "actor_back", str(i)))
                    continue
                shard, i = pending.pop(ref)
                load[i] -= 1
                try:
                    summary = ray.get(ref)
                except LOST as exc:
                    now = time.perf_counter()
                    LAST_EVENTS.append((now, "lost", f"{shard.key} on actor {i}: {type(exc).__name__}"))
                    attempts[shard] = attempts.get(shard, 0) + 1
                    if attempts[shard] >= MAX_ATTEMPTS:
                        raise RuntimeError(f"shard {shard.key} failed {MAX_ATTEMPTS} times") from None
                    queue.append(shard)  # files are keyed: a retry overwrites, never duplicates
                    LAST_EVENTS.append((now, "requeued", shard.key))
                    print(f"mc-hull: lost shard {shard.key} ({type(exc).__name__}); re-queued",
                          file=sys.stderr)
                    if healthy[i]:
                        healthy[i] = False
                        pings[actors[i].ping.remote()] = i
                    continue
                if shard in results:  # cannot happen (one call per shard at a time); never double count
                    continue
                results[shard] = summary
                LAST_EVENTS.append((time.perf_counter(), "done", shard.key))
                bar.update(summary["trials"])
                bar.set_postfix_str(f"shards {len(results)}/{len(shards)}", refresh=False)
    finally:
        bar.close()
    elapsed = time.perf_counter() - t0
    n = sum(r["trials"] for r in results.values())
    print(f"mc-hull: {len(results)} shards, {n} trials in {elapsed:.1f} s "
          f"({n / max(elapsed, 1e-9):.0f} trials/s) on {len(actors)} actors", file=sys.stderr)
    return [results[s] for s in shards]


@ray.remote(num_cpus=1, max_retries=4)
def _price_task(source, block_ids, W, m):
    from .bigcell import price

    return price(source, block_ids, W, m)


def ray_map_blocks(source, ranges, W, m, timeout: float | None = None) -> list[dict]:
    """``map_blocks`` for :func:`mc_hull.bigcell.decide`: price block ranges as Ray tasks.

    Each task regenerates its blocks from their keys on whatever node runs it, so
    nothing but the directions and the top rows crosses the network; a task lost
    with its node is retried by Ray (same blocks, same values).
    """
    W_ref = ray.put(W)
    return ray.get([_price_task.remote(source, list(map(int, r)), W_ref, m) for r in ranges],
                   timeout=timeout)


# -- hull tests: shards of test points against one training set (mc_hull.hulltest) ----------
@ray.remote(num_cpus=1, max_retries=4)
def _hull_points_task(X, Q, tol, solver):
    from .hulltest import decide_points

    return decide_points(X, Q, tol=tol, solver=solver)


def ray_hull_points(X, Q, ranges, on_result, *, tol: float, solver: str, address: str | None = None,
                    workers: int | None = None) -> None:
    """Decide the test points ``Q[start:stop]`` of each range as a Ray task against ``X``.

    ``X`` (N, d) is put into the object store once; at most two tasks per CPU (or
    per ``workers``) are in flight.  ``on_result((start, stop), columns)`` runs on
    the driver as each task finishes.  A range's columns are a pure function of
    (X, Q[start:stop], tol, solver), so completion order and Ray's retries of a
    lost task change nothing.
    """
    started = connect(address, workers)
    try:
        X_ref = ray.put(X)
        limit = IN_FLIGHT_PER_ACTOR * (workers or max(1, int(ray.cluster_resources().get("CPU", 1))))
        queue, pending = list(reversed(ranges)), {}
        while queue or pending:
            while queue and len(pending) < limit:
                start, stop = queue.pop()
                pending[_hull_points_task.remote(X_ref, Q[start:stop], tol, solver)] = (start, stop)
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                on_result(pending.pop(ref), ray.get(ref))
    finally:
        if started:
            ray.shutdown()


@contextlib.contextmanager
def ray_session(address: str | None = None, workers: int | None = None):
    """Keep one Ray connection open across several :func:`ray_hull_points` calls (a sweep)."""
    started = connect(address, workers)
    try:
        yield
    finally:
        if started:
            ray.shutdown()
