"""The only module that imports Ray: connecting, one fault-tolerant bounded map over actors, and the job client.

Fault model of :meth:`Pool.map_unordered`
-----------------------------------------
* A unit's result is a pure function of (context, unit), and whatever it writes is
  keyed by the unit: a retry overwrites, it never duplicates.
* Actors are created with ``max_restarts=-1`` and ``SPREAD`` scheduling (no hard
  node affinity), so an actor whose process or node dies is restarted wherever a
  CPU is free.  A restarted actor re-runs its constructor; it holds no results.
* The driver, not Ray, re-queues the units of a failed call (``max_task_retries=0``)
  and stops sending work to that actor until a ``ping`` to it succeeds, so work
  moves to healthy actors at once even when the dead node's CPUs are gone for good.
* At most :data:`IN_FLIGHT_PER_ACTOR` calls per actor are in flight and units are
  drawn from the (possibly lazy) iterator only when a slot frees, so a plan of any
  length costs bounded driver memory.  The context (large inputs: a training set)
  is ``ray.put`` once per map and cached by each actor.
* Results live only where the mapped function puts them (the store): a driver killed
  mid-run loses at most the units in flight, and a re-run resumes.

Embedded Ray (no address) binds every socket it can to 127.0.0.1 (see README, "What is
guaranteed"); it is started only when a map first needs it, and its actors lazily.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections import deque

import ray
from ray.exceptions import (ActorDiedError, ActorUnavailableError, NodeDiedError, OwnerDiedError,
                            RayActorError, WorkerCrashedError)

from .. import progress
from ..errors import PlanError

#: Environment for workers: one BLAS thread each, so actors do not oversubscribe cores.
WORKER_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "RAY_USAGE_STATS_ENABLED": "0"}
#: Calls in flight per actor: one running, one queued, so an actor never idles.
IN_FLIGHT_PER_ACTOR = 2
#: Attempts per unit before the map gives up on it.
MAX_ATTEMPTS = 6
#: Failures that mean "the actor or its node went away": the unit is re-queued.
LOST = (RayActorError, ActorDiedError, ActorUnavailableError, WorkerCrashedError, NodeDiedError,
        OwnerDiedError)
#: Seconds between checks of the in-flight calls (bounds how long a stuck wait can last).
WAIT_SECONDS = 1.0
#: Seconds between the driver's collections of progress states from the hub.
POLL_SECONDS = 1.0
#: Seconds the driver waits with no live actor at all (every one restarting) before giving up.
NO_ACTOR_SECONDS = float(os.environ.get("MC_HULL_NO_ACTOR_SECONDS", 600))
#: Seconds to wait for a cluster at ``--address`` before refusing it.
CONNECT_SECONDS = float(os.environ.get("MC_HULL_CONNECT_SECONDS", 30))
#: Loopback: the node address of an embedded Ray, so its agents and ports stay on this machine.
LOOPBACK = "127.0.0.1"

#: Events of the last map in this process: (perf_counter time, kind, detail).
#: Kinds: ``"start"``, ``"lost"`` (a call failed: actor or node gone), ``"requeued"``,
#: ``"actor_back"`` (a restarted actor answered a ping), ``"done"`` (a unit finished).
LAST_EVENTS: list[tuple[float, str, str]] = []


@ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=0)
class ShardWorker:
    """Runs ``fn(context, unit)``; the context is fetched once per map and kept."""

    def __init__(self):
        self._ref, self._context = None, None

    def ping(self) -> str:
        """The node this actor runs on (used to tell when a restarted actor is back)."""
        return ray.get_runtime_context().get_node_id()

    def run(self, fn, holder, unit, hub=None, workers: int = 1):
        ref = holder[0]  # wrapped in a list so Ray passes the reference, not the value
        if ref != self._ref:
            self._context, self._ref = ray.get(ref), ref
        # Progress from inside the unit goes to the driver's hub, fire and forget (never awaited).
        progress.install(None if hub is None else _HubSink(hub), workers=workers)
        return fn(self._context, unit)


class _HubSink:
    """A worker's progress sink: each state is one ``put`` call on the hub actor, not awaited."""

    def __init__(self, hub):
        self.hub = hub

    def __call__(self, state: dict) -> None:
        self.hub.put.remote(state)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class ProgressHub:
    """The latest progress state of each unit, sent by workers and taken by the driver (see mc_hull.progress)."""

    def __init__(self):
        self.states: dict = {}

    def put(self, state: dict) -> None:
        self.states[state.get("key")] = state

    def take(self) -> list:
        states, self.states = list(self.states.values()), {}
        return states


def in_ray_job() -> bool:
    """True when this process is a Ray job's entrypoint (``ray job submit`` / ``mc-hull submit``)."""
    return "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ and bool(os.environ.get("RAY_ADDRESS"))


def _job_env_vars() -> dict:
    try:
        config = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}"))
        return dict((config.get("runtime_env") or {}).get("env_vars") or {})
    except (ValueError, TypeError, AttributeError):
        return {}


def _quiet_auth_notice() -> None:
    """Token auth stays on; Ray's "Set RAY_AUTH_MODE=disabled to opt out" notice is not shown.

    An embedded Ray generates its own token (kept under ``~/.ray``); nothing outside this
    machine can reach it (every port on 127.0.0.1), so the notice has nothing to act on.
    """
    import logging

    class _Drop(logging.Filter):
        def filter(self, record):
            return "RAY_AUTH_MODE" not in record.getMessage()

    # A filter acts on records of the logger it is attached to: attach it where the notice is logged.
    logging.getLogger("ray._private.authentication.authentication_token_setup").addFilter(_Drop())


@contextlib.contextmanager
def _loopback_node():
    """Let ``_node_ip_address="127.0.0.1"`` stand while an embedded Ray starts.

    ``ray.init`` replaces a loopback node address by the host's routable one unless
    Ray believes clusters are disabled (as on macOS and Windows); with the node on
    127.0.0.1 the GCS, raylet, workers and agents bind their ports to loopback.
    """
    from ray._private import ray_constants

    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


def connect(address: str | None, workers: int | None) -> bool:
    """Start an embedded Ray (address None/"local") or join ``address``; True if we started it.

    A Ray job's entrypoint with no ``address`` joins the job's own cluster
    (``RAY_ADDRESS`` set by the job supervisor); anywhere else no address means an
    embedded instance for this process only, on loopback, never another Ray on the host.
    Raises PlanError (one line) for ``workers < 1`` or an address that does not answer.
    """
    if workers is not None and workers < 1:
        raise PlanError(f"--workers: must be at least 1, got {workers}")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return False
    _quiet_auth_notice()
    embedded = address in (None, "", "local") and not in_ray_job()
    if embedded:
        # Workers inherit this process's environment: no runtime env to build (seconds saved).
        for key, value in WORKER_ENV.items():
            os.environ.setdefault(key, value)
        with _loopback_node():
            ray.init(address="local", num_cpus=workers or os.cpu_count(), include_dashboard=False,
                     logging_level="warning", log_to_driver=False, _node_ip_address=LOOPBACK)
        return True
    runtime_env = {"env_vars": dict(WORKER_ENV)}
    if os.environ.get("MC_HULL_MEMORY_BUDGET"):  # the streaming threshold, for the workers too
        runtime_env["env_vars"]["MC_HULL_MEMORY_BUDGET"] = os.environ["MC_HULL_MEMORY_BUDGET"]
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ:
        # Inside a Ray job, its runtime env is merged with ours key by key: add only what it lacks.
        have = _job_env_vars()
        runtime_env = {"env_vars": {k: v for k, v in runtime_env["env_vars"].items() if k not in have}}
    target = os.environ["RAY_ADDRESS"] if address in (None, "", "local") else address
    check_reachable(target)
    try:
        ray.init(address=target, runtime_env=runtime_env, logging_level="warning")
    except (ConnectionError, TimeoutError, ValueError, RuntimeError) as exc:
        raise PlanError(f"--address: cannot join the Ray cluster at {target}: {_first_line(exc)}") from None
    return True


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def check_reachable(address: str) -> None:
    """PlanError (one line) unless ``host:port`` is a Ray GCS that this process may join.

    Answers within a few seconds (``ray.init`` itself retries an unreachable GCS, or one
    that refuses its token, for 20 s to a minute): a TCP connection, then one GCS call
    (``GetClusterId``).  When the cluster requires token authentication (Ray >= 2.60's
    default) the token is found as Ray resolves it (``RAY_AUTH_TOKEN``,
    ``RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token``) and token mode is switched on for this
    process, as ``mc-hull submit`` does; without an accepted token the refusal names
    authentication and the fix.
    """
    import socket

    if address == "auto" or address.startswith("ray://"):
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise PlanError(f"--address: expected HOST:PORT of a Ray cluster's GCS (e.g. 10.0.0.5:6379), "
                        f"got {address!r}")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=min(CONNECT_SECONDS, 5)):
            pass
    except OSError as exc:
        raise PlanError(f"--address: no Ray cluster answers at {address} ({exc.strerror or exc})") from None
    check_auth(address)


#: Seconds one probe of the GCS may take.
PROBE_SECONDS = 3.0
#: What to do without an accepted token, in one line.
TOKEN_FIX = ("copy the cluster's token (`ray get-auth-token` on its head) to ~/.ray/auth_token, or set "
             "RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH")


def find_token() -> tuple[str | None, str]:
    """The auth token as Ray resolves it, and where it came from (for messages).

    ``RAY_AUTH_TOKEN``, else the file at ``RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``;
    ``(None, where it was looked for)`` when there is none.
    """
    from pathlib import Path

    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return os.environ["RAY_AUTH_TOKEN"].strip(), "RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    try:
        return (Path(path).read_text().strip() or None), path
    except (OSError, UnicodeDecodeError):
        return None, path


def _probe(address: str, token: str | None):
    """The gRPC status code of one ``GetClusterId`` call to the GCS at ``address`` (OK on success)."""
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    metadata = [("authorization", f"Bearer {token}")] if token else []
    with grpc.insecure_channel(address) as channel:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
        try:
            stub.GetClusterId(gcs_service_pb2.GetClusterIdRequest(), timeout=PROBE_SECONDS,
                              metadata=metadata)
            return grpc.StatusCode.OK
        except grpc.RpcError as exc:
            return exc.code()


def check_auth(address: str) -> None:
    """Refuse (PlanError, one line) a GCS at ``address`` that rejects us; switch token mode on if needed.

    ``RAY_AUTH_MODE`` given by the user is respected: ``disabled`` against a cluster that
    requires a token is refused with the fix, not retried.
    """
    import grpc

    status = _probe(address, None)
    if status == grpc.StatusCode.OK:
        return  # no authentication on this cluster
    if status != grpc.StatusCode.UNAUTHENTICATED:
        raise PlanError(f"--address: {address} does not answer as a Ray cluster's GCS ({status.name.lower()}); "
                        "give the head's GCS port (ray start --head --port, default 6379)")
    mode = os.environ.get("RAY_AUTH_MODE", "").strip().lower()
    if mode and mode != "token":
        raise PlanError(f"--address: the Ray cluster at {address} requires token authentication but "
                        f"RAY_AUTH_MODE={mode}: unset it (or set RAY_AUTH_MODE=token) and {TOKEN_FIX}")
    token, where = find_token()
    if token is None:
        raise PlanError(f"--address: the Ray cluster at {address} requires token authentication and no "
                        f"token was found (looked in {where}): {TOKEN_FIX}")
    status = _probe(address, token)
    if status == grpc.StatusCode.UNAUTHENTICATED:
        raise PlanError(f"--address: the Ray cluster at {address} requires token authentication and refused "
                        f"the token from {where}: {TOKEN_FIX}")
    if status != grpc.StatusCode.OK:
        raise PlanError(f"--address: the Ray cluster at {address} did not answer with the token "
                        f"({status.name.lower()})")
    _enable_token_mode()


def _enable_token_mode() -> None:
    """Token mode for this process (and what it starts), as ``ray.init`` does for a local cluster."""
    if os.environ.get("RAY_AUTH_MODE", "").strip().lower() == "token":
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    from ray._raylet import Config  # Ray caches its config: refresh it so this process sees token mode

    Config.initialize("")


class Pool:
    """Ray actors for one or more maps; Ray is started (or joined) and actors created on first use.

    Parameters
    ----------
    address : str, optional
        Ray address; None or ``"local"`` starts an embedded Ray (or joins the job's own cluster).
    workers : int, optional
        Number of actors (default: the cluster's CPUs).
    """

    def __init__(self, address: str | None = None, workers: int | None = None):
        if workers is not None and workers < 1:
            raise PlanError(f"--workers: must be at least 1, got {workers}")
        self.address, self.workers = address, workers
        self.actors: list = []
        self.hub = None
        self._started = None

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _connect(self) -> None:
        if self._started is None:
            self._started = connect(self.address, self.workers)

    def size(self) -> int:
        """Number of actors a map uses (at most)."""
        self._connect()
        return self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))

    def _actors(self, wanted: int) -> list:
        opts = dict(scheduling_strategy="SPREAD", max_restarts=-1, max_task_retries=0)
        while len(self.actors) < wanted:
            self.actors.append(ShardWorker.options(**opts).remote())
        return self.actors[:wanted]

    def close(self) -> None:
        """Kill this pool's actors; shut Ray down if this pool started it."""
        for actor in self.actors + ([self.hub] if self.hub is not None else []):
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - best effort cleanup of our own actors
                pass
        self.actors, self.hub = [], None
        if self._started:
            ray.shutdown()
        self._started = None

    def map_unordered(self, fn, units, context=None, hint: int | None = None):
        """Yield ``(unit, fn(context, unit))`` as calls finish, re-queueing units whose actor died.

        Parameters
        ----------
        fn : callable
            A module-level function ``fn(context, unit)`` (pickled by reference).
        units : iterable
            Hashable units, drawn lazily as slots free up.
        context : object
            Put into the object store once and handed to every call.
        hint : int, optional
            How many units there are (fewer actors than CPUs for a short map).
        """
        self._connect()
        todo = iter(units)
        first = next(todo, None)
        if first is None:
            return
        n = min(self.size(), hint or self.size())
        actors = self._actors(max(1, n))
        holder = [ray.put(context)]
        sink = progress.installed() if progress.enabled() else None
        if sink is not None and self.hub is None:   # beside the driver (soft: anywhere if that fails)
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
            self.hub = ProgressHub.options(scheduling_strategy=here).remote()
        yield from _drive(fn, holder, first, todo, actors, self.hub if sink is not None else None, sink)

    def map(self, fn, units, context=None) -> list:
        """``[fn(context, u) for u in units]`` computed on the actors, in the order of ``units``."""
        units = tuple(units)
        out = dict(self.map_unordered(_indexed, range(len(units)), (fn, context, units), hint=len(units)))
        return [out[i] for i in range(len(units))]



def _indexed(context, i: int):
    fn, inner, units = context
    return fn(inner, units[i])


def _drive(fn, holder, first, todo, actors, hub=None, sink=None):
    LAST_EVENTS.clear()
    LAST_EVENTS.append((time.perf_counter(), "start", f"{len(actors)} actors"))
    queue = deque([first])  # re-queued units first, then fresh ones from ``todo``
    attempts: dict = {}
    pending: dict = {}  # ObjectRef -> (unit, actor index)
    pings: dict = {}  # ObjectRef -> actor index, for actors not trusted until they answer
    healthy = [True] * len(actors)
    load = [0] * len(actors)
    exhausted = False
    idle_since = None
    done = 0
    poll, polled = None, 0.0   # the outstanding ``hub.take`` call and when it was made
    n_actors = len(actors)

    def collect():
        """Hand the hub's states to ``sink``: at most one ``take`` in flight, one per POLL_SECONDS."""
        nonlocal poll, polled
        if hub is None:
            return
        if poll is not None:
            ready, _ = ray.wait([poll], timeout=0)
            if not ready:
                return
            try:
                for state in ray.get(poll):
                    sink(state)
            except Exception:  # noqa: BLE001 - progress never fails the map (a hub restart loses states)
                pass
            poll = None
        if time.perf_counter() - polled >= POLL_SECONDS:
            poll, polled = hub.take.remote(), time.perf_counter()

    def next_unit():
        nonlocal exhausted
        if queue:
            return queue.popleft()
        if not exhausted:
            unit = next(todo, None)
            if unit is not None:
                return unit
            exhausted = True
        return None

    while True:
        # Fill level by level (every actor's first slot, then the second), so that a map with as many
        # units as actors runs them all at once instead of queueing two on the first actor.
        for level in range(1, IN_FLIGHT_PER_ACTOR + 1):
            for i, actor in enumerate(actors):
                if healthy[i] and load[i] < level:
                    unit = next_unit()
                    if unit is None:
                        break
                    pending[actor.run.remote(fn, holder, unit, hub, n_actors)] = (unit, i)
                    load[i] += 1
        collect()
        if not pending and (exhausted and not queue):
            break
        if not pending and not any(healthy):
            # Every actor is restarting (e.g. their nodes are gone): wait, but not forever.
            idle_since = idle_since or time.perf_counter()
            if time.perf_counter() - idle_since > NO_ACTOR_SECONDS:
                raise RuntimeError(f"no live actor for {NO_ACTOR_SECONDS:.0f} s (nodes lost?); {done} units "
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
            unit, i = pending.pop(ref)
            load[i] -= 1
            try:
                result = ray.get(ref)  # ready: returns at once
            except LOST as exc:
                now = time.perf_counter()
                key = getattr(unit, "key", str(unit))
                LAST_EVENTS.append((now, "lost", f"{key} on actor {i}: {type(exc).__name__}"))
                attempts[unit] = attempts.get(unit, 0) + 1
                if attempts[unit] >= MAX_ATTEMPTS:
                    raise RuntimeError(f"unit {key} failed {MAX_ATTEMPTS} times") from None
                queue.append(unit)  # outputs are keyed: a retry overwrites, never duplicates
                LAST_EVENTS.append((now, "requeued", key))
                if sink is not None:
                    sink({"key": key, "lost": True})
                print(f"mc-hull: lost {key} ({type(exc).__name__}); re-queued", file=sys.stderr)
                if healthy[i]:
                    healthy[i] = False
                    pings[actors[i].ping.remote()] = i
                continue
            except ray.exceptions.RayTaskError as exc:
                raise exc.as_instanceof_cause() from None
            done += 1
            LAST_EVENTS.append((time.perf_counter(), "done", getattr(unit, "key", str(unit))))
            yield unit, result


# -- the Ray job client (mc-hull submit / status / logs / stop) ---------------------------------
def job_client(address: str, token: str | None = None):
    """A ``ray.job_submission.JobSubmissionClient`` for the job API at ``address`` (may raise).

    With ``token`` every request carries it as a bearer header, so the client authenticates
    even when this process's Ray has already settled on another auth mode (e.g. after joining
    a cluster without token auth).
    """
    from ray.job_submission import JobSubmissionClient

    headers = {"Authorization": f"Bearer {token}"} if token else None
    return JobSubmissionClient(address, headers=headers)
