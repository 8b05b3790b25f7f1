"""Ray execution: one actor per CPU runs shards and writes their files; the driver keeps work bounded."""

from __future__ import annotations

import os
import sys
import time

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, WorkerCrashedError

from .plan import Shard
from .spec import Spec

#: Environment for workers: one BLAS thread each, so actors do not oversubscribe cores.
WORKER_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "RAY_USAGE_STATS_ENABLED": "0"}
#: Shards in flight per actor: one running, one queued, so an actor never idles.
IN_FLIGHT_PER_ACTOR = 2
#: Attempts per shard before the run gives up on it.
MAX_ATTEMPTS = 4


@ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=0)
class ShardWorker:
    """Holds the spec and the store; runs shards and publishes their files."""

    def __init__(self, spec_json: str, out: str):
        from .spec import Spec
        from .store import ResultStore

        self.spec = Spec.from_json(spec_json)
        self.store = ResultStore(out)

    def run(self, shard: Shard) -> dict:
        from .runner import run_and_write

        return run_and_write(self.spec, self.store, shard)


def connect(address: str | None, workers: int | None) -> bool:
    """Start an embedded Ray (address None/"local") or join ``address``; True if we started it."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return False
    runtime_env = {"env_vars": WORKER_ENV}
    if address in (None, "", "local"):
        ray.init(address="local", num_cpus=workers or os.cpu_count(), include_dashboard=False,
                 runtime_env=runtime_env, logging_level="warning", log_to_driver=False)
    else:
        ray.init(address=address, runtime_env=runtime_env, logging_level="warning")
    return True


def run_shards(spec: Spec, out: str, shards: list[Shard], *, address: str | None = None,
               workers: int | None = None, progress: bool = True) -> list[dict]:
    """Run ``shards`` on Ray actors, re-queueing shards whose actor died.

    Parameters
    ----------
    spec : Spec
    out : str
        Results location; workers write their shard files there directly.
    shards : list of Shard
    address, workers
        See :func:`connect`.
    progress : bool
        Show a progress bar (shards, trials/s, ETA) on stderr.

    Returns
    -------
    list of dict
        One summary per shard (key, trials, undecided, seconds).
    """
    if not shards:
        return []
    started = connect(address, workers)
    try:
        n_actors = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        n_actors = min(n_actors, len(shards))
        actors = [ShardWorker.remote(spec.to_json(), out) for _ in range(n_actors)]
        return _drive(spec, shards, actors, progress)
    finally:
        if started:
            ray.shutdown()


def _drive(spec: Spec, shards: list[Shard], actors: list, progress: bool) -> list[dict]:
    from tqdm import tqdm

    queue = list(reversed(shards))
    attempts: dict[Shard, int] = {}
    pending: dict = {}  # ObjectRef -> (shard, actor index)
    load = [0] * len(actors)
    results = []
    total = sum(s.trials(spec) for s in shards)
    bar = tqdm(total=total, unit="trial", unit_scale=True, disable=not progress or None,
               file=sys.stderr, desc=f"run {spec.run_id}", dynamic_ncols=True)
    t0 = time.perf_counter()
    try:
        while queue or pending:
            for i, actor in enumerate(actors):
                while queue and load[i] < IN_FLIGHT_PER_ACTOR:
                    shard = queue.pop()
                    pending[actor.run.remote(shard)] = (shard, i)
                    load[i] += 1
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                shard, i = pending.pop(ref)
                load[i] -= 1
                try:
                    summary = ray.get(ref)
                except (RayActorError, ActorDiedError, ActorUnavailableError, WorkerCrashedError):
                    attempts[shard] = attempts.get(shard, 0) + 1
                    if attempts[shard] >= MAX_ATTEMPTS:
                        raise RuntimeError(f"shard {shard.key} failed {MAX_ATTEMPTS} times") from None
                    queue.append(shard)  # files are keyed: a retry overwrites, never duplicates
                    continue
                results.append(summary)
                bar.update(summary["trials"])
                bar.set_postfix_str(f"shards {len(results)}/{len(shards)}", refresh=False)
    finally:
        bar.close()
    elapsed = time.perf_counter() - t0
    n = sum(r["trials"] for r in results)
    print(f"mc-hull: {len(results)} shards, {n} trials in {elapsed:.1f} s "
          f"({n / max(elapsed, 1e-9):.0f} trials/s) on {len(actors)} actors", file=sys.stderr)
    return results
