"""Run any job against its store with a map (serial in this process by default); Monte Carlo runs on top."""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from ..jobs import plan as planning
from .. import progress as reporting
from ..jobs import trial
from ..errors import ComputeError, McHullError, StoreError
from ..jobs.base import MonteCarloJob
from ..spec import Spec
from ..store import HullTestStore, ResultStore

#: Seconds between progress lines when stderr is not a terminal (a log file, a Ray job's log).
PROGRESS_SECONDS = float(os.environ.get("MC_HULL_PROGRESS_SECONDS", 10))
#: Units in flight for this long get a line of their own under the progress line.
LONG_UNIT_SECONDS = float(os.environ.get("MC_HULL_LONG_UNIT_SECONDS", 30))
#: In-flight unit lines shown at most (the oldest units).
SHOWN_UNITS = 4
#: A unit silent (no report) for this long while its worker lives gets a warning line.
STUCK_SECONDS = float(os.environ.get("MC_HULL_STUCK_SECONDS", 300))
#: Seconds between writes of the progress record (``_progress/<run>.json``) beside the store.
RECORD_SECONDS = float(os.environ.get("MC_HULL_RECORD_SECONDS", 5))


#: The store of each job's ``store_kind``.
STORES = {"results": ResultStore, "hulltest": HullTestStore}
#: Stores opened by :func:`execute_unit` in this process, one per (store kind, location).
_OPEN: dict = {}
#: Publishing is serialised within a process (a driver may compute two units side by side in threads).
_PUBLISH = threading.Lock()


def open_store(job, out: str):
    """The store ``job`` writes to under ``out``, created if needed."""
    store = STORES[job.store_kind](out)
    store.prepare()
    return store


def execute_unit(context, unit) -> dict:
    """Compute ``unit`` of ``job`` and publish its rows to ``out``; ``context`` is ``(job, out[, place])``.

    What a runner maps over units, on any worker; what the unit finishes inside goes to the runner's
    meter (:func:`mc_hull.progress.unit`).

    Returns
    -------
    dict
        ``key``, ``size`` (trials or points), ``undecided`` and ``seconds``.
    """
    job, out, *rest = context
    place = rest[0] if rest else None      # given for the units the runner spreads over the cluster
    t0 = time.perf_counter()
    what = "points" if job.unit_name == "point" else "queries"
    with reporting.unit(unit.key, job.size(unit), what):
        try:
            try:
                cols = job.compute(unit, place=place) if place is not None else job.compute(unit)
            finally:
                if place is not None and place.per_unit:   # on a worker: the unit's holders end with it
                    place.close()
        except McHullError:
            raise
        except Exception as exc:   # noqa: BLE001 - one line, never a traceback after the run's record
            if os.environ.get("MC_HULL_DEBUG"):
                raise
            raise ComputeError(f"{job.name}: unit {unit.key} failed ({type(exc).__name__}: "
                               f"{' '.join(str(exc).split())[:300]}); nothing of it was stored, committed "
                               "units are kept and a re-run resumes (MC_HULL_DEBUG=1 shows the traceback)") from exc
        passes = cols.pop(trial.PASSES, None)      # streamed replicates' (passes, rows drawn / N): said, not stored
        with _PUBLISH:
            store = _OPEN.get((job.store_kind, out))
            if store is None:
                store = _OPEN[(job.store_kind, out)] = open_store(job, out)
            job.publish(store, unit, cols)
    summary = {"key": unit.key, "size": len(cols["status"]), "undecided": trial.undecided(cols),
               "seconds": time.perf_counter() - t0}
    if passes is not None:
        summary["passes"] = np.asarray(passes, dtype=np.float64).reshape(-1, 2).tolist()
    if place is not None:
        summary["placed"] = place.take()
    return summary


def _split(job, done: set, place) -> tuple:
    """The units to map (lazily) and, filled as those are listed, the units to compute here over the
    cluster (``job.spread(unit)``, when there is a ``place``)."""
    spread = getattr(job, "spread", None) if place is not None else None
    wide: list = []

    def mapped():
        for u in job.units():
            if u in done:
                continue
            if spread is not None and spread(u):
                wide.append(u)
            else:
                yield u

    return mapped(), wide


def _summaries(mapper, job, out: str, todo, hint: int, wide: list, place):
    """Each unit's summary: the mapped units', then the spread ones (:meth:`Placer.plan`): one at a time
    here when one replicate at a time should have the cluster, else several at once on the pool's
    actors, each over its own holders."""
    yield from (s for _, s in mapper(execute_unit, todo, (job, out), hint))
    if not wide:
        return
    concurrent = place.plan(max(map(job.spread_bytes, wide)), len(wide)) if hasattr(job, "spread_bytes") else 1
    if place.holders_each == 0 and mapper is not serial_map:   # quicker in process, side by side
        yield from (s for _, s in mapper(execute_unit, iter(wide), (job, out), concurrent))
        return
    if concurrent <= 1 or mapper is serial_map:
        for unit in wide:
            yield execute_unit((job, out, place), unit)
        return
    yield from (s for _, s in mapper(execute_unit, iter(wide), (job, out, place.for_workers()), concurrent))


def serial_map(fn, units, context=None, hint=None):
    """The default map: ``(unit, fn(context, unit))`` for each unit, in order, in this process."""
    for unit in units:
        yield unit, fn(context, unit)


def thread_map(threads: int):
    """A map that runs ``threads`` units side by side in this process's threads (at most that many in flight).

    For units that spend much of their time waiting on other processes (passes over blocks held by
    actors): while one unit's pass runs on the holders, another's master problems run here.  Results
    come in completion order; each unit's rows depend on that unit alone, so the store's content is
    the serial map's.  The first failure is raised once the units in flight have ended.
    """
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    def tmap(fn, units, context=None, hint=None):
        units = iter(units)
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="mc-hull-unit") as ex:
            running = {}
            try:
                for unit in units:
                    running[ex.submit(fn, context, unit)] = unit
                    if len(running) < threads:
                        continue
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for f in done:
                        yield running.pop(f), f.result()
                while running:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for f in done:
                        yield running.pop(f), f.result()
            finally:
                wait(running)      # never leave a unit computing behind a failure or a closed generator

    tmap.threads = threads
    return tmap


@dataclass
class JobReport:
    """What a run of a job did (``size`` counts trials or points)."""

    name: str
    planned: int
    skipped: int
    computed: int
    size: int
    undecided: int
    seconds: float
    quarantined: list[str] = field(default_factory=list)
    #: (passes over X, rows drawn / N) of each streamed replicate computed
    passes: list = field(default_factory=list)


class Progress:
    """What a run has done, said every :data:`PROGRESS_SECONDS`: a bar on a terminal, lines elsewhere.

    Counts are the trials (or points) of committed units plus the share finished inside the units
    in flight, as they report it (:mod:`mc_hull.progress`: states handed to :meth:`receive`, from
    this process or, on Ray, relayed by the map).  Off a terminal (a log file, a Ray job's log) a
    clock thread prints, at least every :data:`PROGRESS_SECONDS` while the run goes on::

        mc-hull: run ID: 12,000 of 80,000 trials (15%; 3,100 inside 2 units in flight), 120 trials/s, ETA 9.4 min
        mc-hull:   unit gaussian/d=16/nested/r0000006-0000012: replicate 3 of 6, pass 9, 41 of 333 queries open (4.1 min)

    one line per unit in flight for longer than :data:`LONG_UNIT_SECONDS` (at most
    :data:`SHOWN_UNITS`), and a warning for a unit that has not reported for
    :data:`STUCK_SECONDS` while its worker lives.  The ETA blends the plan's estimate
    (``estimate_seconds`` of wall time for the whole run) with the measured rate, the measured
    rate taking over entirely once 5% of the run is done.  ``record(doc)``, if given, receives
    the same counts at most every :data:`RECORD_SECONDS` and once at the end (the progress record
    of the dashboard).
    """

    def __init__(self, total: int, name: str, unit: str, *, enabled: bool = True, log=None,
                 estimate_seconds: float | None = None, record=None, every: float | None = None):
        self.total, self.name, self.unit, self.log = total, name, unit, log or sys.stderr
        self.done, self.t0, self.last = 0, time.perf_counter(), time.perf_counter()
        self.estimate = estimate_seconds if estimate_seconds and estimate_seconds > 0 else None   # wall s
        self.every = PROGRESS_SECONDS if every is None else every
        self.record, self.last_record = record, 0.0
        self.inflight: dict[str, dict] = {}
        self.finished: set = set()
        self.lost: dict[str, float] = {}
        self.lock = threading.Lock()
        self.bar = None
        self.lines = enabled and not _isatty(self.log)
        if enabled and not self.lines:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=unit, unit_scale=True, file=self.log, desc=name,
                            dynamic_ncols=True)
        self._stop = threading.Event()
        self._clock, self.clock_cpu = None, 0.0
        if enabled or record is not None:
            self._clock = threading.Thread(target=self._run_clock, name="mc-hull-progress", daemon=True)
            self._clock.start()

    # -- what arrives ------------------------------------------------------------------------------
    def receive(self, state: dict) -> None:
        """A unit's state (:mod:`mc_hull.progress`); ``{"key": k, "lost": True}`` when its call failed."""
        key = state.get("key")
        now = time.perf_counter()
        with self.lock:
            if key is None or key in self.finished:
                return
            if state.get("lost"):   # its call failed: it will be re-run, and its older states are stale
                self.inflight.pop(key, None)
                self.lost[key] = time.time()
                return
            if state.get("t", 0) < self.lost.get(key, 0):
                return
            old = self.inflight.get(key)
            entry = dict(state, first=old["first"] if old else now, seen=now, warned=old["warned"] if old else 0.0)
            self.inflight[key] = entry

    def update(self, n: int, key: str | None = None) -> None:
        """A unit of ``n`` trials (or points) was committed."""
        with self.lock:
            self.done += n
            if key is not None:
                self.inflight.pop(key, None)
                self.finished.add(key)
        if self.bar is not None:
            self._move_bar()

    # -- what is said ------------------------------------------------------------------------------
    def counts(self) -> tuple[float, float, int]:
        """(trials done including the share inside units, that share, units in flight)."""
        with self.lock:
            inside = sum(min(1.0, max(0.0, float(s.get("share", 0)))) * int(s.get("size", 0))
                         for s in self.inflight.values())
            return min(float(self.total), self.done + inside), inside, len(self.inflight)

    def eta(self, done: float, elapsed: float) -> float:
        """Seconds left: the plan's estimate blended with the measured rate (which takes over at 5% done)."""
        left = max(self.total - done, 0.0)
        frac = done / self.total if self.total else 1.0
        measured = left * elapsed / done if done > 0 else float("inf")
        if not self.estimate or self.estimate <= 0:
            return measured
        planned = max(self.estimate - elapsed, 0.0)    # the plan's wall time, counting down
        if planned <= 0:                               # past the plan: only the measured rate says anything
            return measured
        w = min(1.0, frac / 0.05)
        if w >= 1.0:
            return measured
        return planned if w <= 0 else (1 - w) * planned + w * measured

    def line(self) -> str:
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        done, inside, units = self.counts()
        rate = done / elapsed
        pct = 100 * done / self.total if self.total else 100
        share = (f"; {inside:,.0f} inside {units} unit{'s' if units != 1 else ''} in flight"
                 if units else "")
        return (f"{self.name}: {done:,.0f} of {self.total:,} {self.unit}s ({pct:.0f}%{share}), "
                f"{rate:,.1f} {self.unit}s/s, ETA {_eta_text(self.eta(done, elapsed))}")

    def unit_lines(self) -> list[str]:
        """One line per unit in flight for over :data:`LONG_UNIT_SECONDS` (the oldest first)."""
        now = time.perf_counter()
        with self.lock:
            long = sorted((s for s in self.inflight.values() if now - s["first"] >= LONG_UNIT_SECONDS),
                          key=lambda s: s["first"])
        out = [f"  unit {s['key']}: {s.get('detail') or 'started'} ({planning._duration(now - s['first'])})"
               for s in long[:SHOWN_UNITS]]
        if len(long) > SHOWN_UNITS:
            out.append(f"  and {len(long) - SHOWN_UNITS} more units in flight")
        return out

    def stuck_lines(self) -> list[str]:
        """Warnings for units silent for :data:`STUCK_SECONDS` (repeated every STUCK_SECONDS)."""
        now = time.perf_counter()
        out = []
        with self.lock:
            for s in self.inflight.values():
                silent = now - s["seen"]
                if silent >= STUCK_SECONDS and now - s["warned"] >= STUCK_SECONDS:
                    s["warned"] = now
                    where = f" (worker pid {s['pid']} alive)" if s.get("pid") else ""
                    out.append(f"warning: unit {s['key']} has not reported for {planning._duration(silent)}"
                               f"{where}; last: {s.get('detail') or 'started'}")
        return out

    def document(self, finished: bool = False, stopped: bool = False) -> dict:
        """The progress record: counts, rate, ETA and the units in flight (JSON-ready).

        ``finished``: the runner ended with every unit done; ``stopped``: it ended otherwise (an error,
        an interrupt); a later run resumes.
        """
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        done, inside, _ = self.counts()
        with self.lock:
            units = [{"key": s["key"], "size": int(s.get("size", 0)), "share": float(s.get("share", 0)),
                      "detail": s.get("detail", ""), "age_s": time.perf_counter() - s["first"]}
                     for s in self.inflight.values()]
            committed = self.done
        return {"name": self.name, "unit": self.unit, "total": int(self.total), "committed": int(committed),
                "in_flight": float(inside), "done": float(done), "rate": done / elapsed,
                "eta_s": None if finished else _finite(self.eta(done, elapsed)), "elapsed_s": elapsed,
                "units": units, "updated": time.time(), "finished": bool(finished), "stopped": bool(stopped)}

    def _move_bar(self) -> None:
        done, _, _ = self.counts()
        with self.lock:
            self.bar.n = int(done)
            self.bar.refresh()

    def _run_clock(self) -> None:
        try:
            self._clock_loop()
        finally:
            self.clock_cpu = time.thread_time()    # what the clock cost (benchmarks/progress_overhead.py)

    def _clock_loop(self) -> None:
        tick = min(self.every, RECORD_SECONDS, 1.0) if (self.lines or self.bar is not None) else RECORD_SECONDS
        while not self._stop.wait(tick):
            now = time.perf_counter()
            if self.bar is not None:
                self._move_bar()
            if self.lines and now - self.last >= self.every:
                self.last = now
                text = "\n".join(f"mc-hull: {x}" for x in [self.line(), *self.unit_lines(), *self.stuck_lines()])
                print(text, file=self.log, flush=True)
            elif self.bar is not None:
                for x in self.stuck_lines():
                    self.bar.write(f"mc-hull: {x}", file=self.log)
            if self.record is not None and now - self.last_record >= RECORD_SECONDS:
                self.last_record = now
                self._write_record(False)

    def _write_record(self, finished: bool, stopped: bool = False) -> None:
        try:
            self.record(self.document(finished, stopped))
        except Exception as exc:  # noqa: BLE001 - the record is a courtesy: never fail the run
            if not getattr(self, "_record_failed", False):
                self._record_failed = True
                print(f"mc-hull: note: cannot write the progress record: {str(exc).splitlines()[0][:200]}",
                      file=self.log)

    def close(self, completed: bool = True) -> None:
        """Stop the clock; the record's last write says whether the run ``completed`` or stopped."""
        self._stop.set()
        if self._clock is not None:
            self._clock.join(timeout=10)
        if self.record is not None:
            self._write_record(completed, stopped=not completed)
        if self.bar is not None:
            self.bar.close()


def _eta_text(seconds: float) -> str:
    return planning._duration(seconds) if seconds == seconds and seconds != float("inf") else "not known yet"


def _finite(x: float) -> float | None:
    return x if x == x and x not in (float("inf"), float("-inf")) else None


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _wall_estimate(job, mapper, units: int, trials: int) -> float | None:
    """The plan's wall-time estimate for ``trials`` of ``job`` on the map's workers (None if unknown)."""
    try:
        est = job.estimate()
        if hasattr(job, "spec"):   # as the plan line: the model's constants corrected by a short timing
            est = est.scaled(planning.calibration(job.spec))
        pool = getattr(mapper, "__self__", None)
        workers = pool.size() if pool is not None and hasattr(pool, "size") else 1
        share = trials / max(est.trials, 1)
        return est.cpu_seconds * share / (max(1, min(workers, units)) * max(1, est.threads))
    except Exception:  # noqa: BLE001 - no estimate: the measured rate alone
        return None


def _recorder(job, store):
    """``record(doc)`` writing the progress record ``_progress/<run or test id>.json`` (None if no id)."""
    name = getattr(getattr(job, "spec", None), "run_id", None) or getattr(job, "test_id", None)
    backend = getattr(store, "backend", None)
    if name is None or backend is None or not hasattr(backend, "put_doc"):
        return None
    return lambda doc: backend.put_doc("progress", name, doc)


def run(job, out: str, *, map=None, progress: bool = True, log=None, place=None) -> JobReport:
    """Execute every unit of ``job`` not yet committed in ``out``.

    Parameters
    ----------
    job
        A job (:mod:`mc_hull.jobs.base`).
    out : str
        Results location (directory or URI).
    map : callable, optional
        ``map(fn, units, context, hint) -> iterator of (unit, result)``: :func:`serial_map`
        by default, or :meth:`mc_hull.distributed.pool.Pool.map_unordered`.
    progress : bool
        A bar on a terminal, progress lines elsewhere.
    place : callable, optional
        ``place(loader)`` -> context manager over a point source spread over the cluster
        (``mc_hull.distributed.blocks.placer``): the units ``job.spread(unit)`` names are then
        computed here, one at a time, each over the whole cluster, after the mapped ones.
    """
    log = log or sys.stderr
    t0 = time.perf_counter()
    store = open_store(job, out)
    done, moved = job.committed(store, job.units())
    for path in moved:
        print(f"mc-hull: moved aside damaged shard file {path}; it will be recomputed", file=log)
    planned = job.count()
    todo, wide = _split(job, done, place)
    if done:
        print(f"mc-hull: resuming {job.name}: {len(done)} of {planned} shards already committed, "
              f"{planned - len(done)} to run", file=log)
    remaining = job.total() - sum(job.size(u) for u in done)
    progress = progress and reporting.enabled()
    todo_units = planned - len(done)
    mapper = map or serial_map
    meter = Progress(remaining, job.name, job.unit_name, enabled=progress and todo_units > 0, log=log,
                     record=_recorder(job, store) if progress and todo_units > 0 else None)
    if progress:   # after the meter's clock starts: asking a pool its size may start Ray (tens of seconds)
        meter.estimate = _wall_estimate(job, mapper, todo_units, remaining)
    computed = size = undecided = 0
    passes: list = []
    previous = reporting.install(meter.receive if progress else None)
    completed = False
    try:
        for summary in _summaries(mapper, job, str(out), todo, todo_units, wide, place):
            computed += 1
            size += summary["size"]
            undecided += summary["undecided"]
            passes.extend(summary.get("passes", ()))
            if summary.get("placed") and place is not None:
                place.record(summary["placed"])
            meter.update(summary["size"], summary.get("key"))
        completed = True
    finally:
        reporting.install(previous)
        meter.close(completed)
    elapsed = time.perf_counter() - t0
    if computed and progress:
        print(f"mc-hull: {computed} shards, {size:,} {job.unit_name}s in {elapsed:.1f} s "
              f"({size / max(elapsed, 1e-9):,.0f} {job.unit_name}s/s)", file=log)
    if passes:
        print(f"mc-hull: {pass_line(passes)}", file=log)
    return JobReport(name=job.name, planned=planned, skipped=len(done), computed=computed, size=size,
                     undecided=undecided, seconds=elapsed, quarantined=moved, passes=passes)


def pass_line(passes) -> str:
    """One line on the passes over X of the streamed replicates, from ``[(passes, rows drawn / N), ...]``."""
    p = np.asarray(passes, dtype=np.float64).reshape(-1, 2)
    q = np.percentile(p, [0, 50, 100], axis=0)
    return (f"{len(p)} streamed replicate(s): passes over X per replicate {q[0, 0]:.0f} / {q[1, 0]:.0f} / "
            f"{q[2, 0]:.0f} (min / median / max), rows drawn or read {q[1, 1]:.1f} N (median)")


# -- Monte Carlo runs -------------------------------------------------------------------------
@dataclass
class RunReport:
    """What a Monte Carlo run did."""

    run_id: str
    planned_shards: int
    skipped_shards: int
    computed_shards: int
    trials: int
    undecided: int
    seconds: float
    quarantined: list[str] = field(default_factory=list)
    backend: str = "serial"


def check_run(spec: Spec, out: str, *, new_run: bool = False):
    """Raise StoreError (one line) if ``out`` holds a different spec and not ``new_run``; writes nothing.

    Call it before announcing a run, so a refusal is the only line printed.
    """
    store = ResultStore(out)
    try:
        store.check_claim(spec, new_run=new_run)  # another run, or rows of one whose record was deleted
    except OSError as exc:  # e.g. an object store that refuses or cannot be reached
        raise StoreError(f"--out: cannot use {out}: {str(exc).splitlines()[0][:300]}") from None
    return store


def open_run(spec: Spec, out: str, *, new_run: bool = False):
    """Prepare ``out`` for ``spec`` and claim its run atomically; refuse a different spec unless ``new_run``."""
    store = check_run(spec, out, new_run=new_run)
    try:
        store.claim_run(spec, new_run=new_run)  # of two writers started together, one is refused here
    except OSError as exc:
        raise StoreError(f"--out: cannot use {out}: {str(exc).splitlines()[0][:300]}") from None
    return store


def pool_map(backend: str, address: str | None, workers: int | None, pool=None):
    """``(map, pool to close or None)`` for a backend name."""
    if backend == "serial":
        return serial_map, None
    if backend != "ray":
        raise ValueError(f"backend must be 'ray' or 'serial', got {backend!r}")
    if pool is not None:
        return pool.map_unordered, None
    from ..distributed.pool import Pool  # the only module that imports ray

    own = Pool(address, workers)
    return own.map_unordered, own


def execute(spec: Spec, out: str, *, backend: str = "ray", address: str | None = None,
            workers: int | None = None, new_run: bool = False, progress: bool = True,
            shards=None, job: MonteCarloJob | None = None, pool=None, log=None) -> RunReport:
    """Run every shard of ``spec`` (or of ``job``, or the given ``shards``) not yet committed in ``out``.

    Parameters
    ----------
    spec : Spec
    out : str
        Results location (directory or URI).
    backend : {"ray", "serial"}
        ``"serial"`` runs in this process (same rows).
    address : str, optional
        Ray address; None or ``"local"`` starts an embedded Ray instance.
    workers : int, optional
        Number of Ray actors (default: CPUs of the embedded instance or cluster).
    new_run : bool
        Allow a spec different from the one already in ``out``.
    shards : sequence of Shard, optional
        Subset to run (default: the whole plan).
    pool : mc_hull.distributed.pool.Pool, optional
        Reuse this pool's Ray connection and actors (adaptive rounds).
    """
    log = log or sys.stderr
    t0 = time.perf_counter()
    store = open_run(spec, out, new_run=new_run)
    if job is None and spec.nested and shards is None:   # the experiment the spec names, on every face
        from ..jobs.nested import NestedJob, check_nested

        check_nested(spec)
        job = NestedJob(spec)
    if job is None:
        job = MonteCarloJob(spec, shards=None if shards is None else tuple(shards))
    mapper, own = pool_map(backend, address, workers, pool)
    place = None
    if backend == "ray":
        from ..distributed.blocks import placer  # X of a huge cell: row blocks over the cluster's nodes

        place = placer(workers, log=log)
    try:
        rep = run(job, out, map=mapper, progress=progress, log=log, place=place)
    finally:
        if place is not None:
            place.close()
        if own is not None:
            own.close()
    report = RunReport(run_id=spec.run_id, planned_shards=rep.planned, skipped_shards=rep.skipped,
                       computed_shards=rep.computed, trials=rep.size, undecided=rep.undecided,
                       seconds=time.perf_counter() - t0, quarantined=rep.quarantined, backend=backend)
    if rep.computed:  # the runner's measured rate, kept by the store beside the run's record (dashboard)
        store.record_stats(spec.run_id, {"trials": rep.size, "seconds": rep.seconds, "shards": rep.computed,
                                         "backend": backend, "trials_per_s": rep.size / max(rep.seconds, 1e-9),
                                         "finished": time.time(),
                                         **({"streamed": pass_line(rep.passes)} if rep.passes else {})})
    return report
