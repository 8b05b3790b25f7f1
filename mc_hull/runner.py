"""Run any job against its store with a map (serial in this process by default); Monte Carlo runs on top."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field

from . import plan as planning
from .errors import StoreError
from .jobs import MonteCarloJob, execute_unit
from .spec import Spec

#: Seconds between progress lines when stderr is not a terminal (a log file, a Ray job's log).
PROGRESS_SECONDS = float(os.environ.get("MC_HULL_PROGRESS_SECONDS", 10))


def serial_map(fn, units, context=None, hint=None):
    """The default map: ``(unit, fn(context, unit))`` for each unit, in order, in this process."""
    for unit in units:
        yield unit, fn(context, unit)


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


class Progress:
    """A bar on a terminal; elsewhere (log files, Ray job logs) a line every :data:`PROGRESS_SECONDS`.

    Lines read ``mc-hull: run ID: 12,000 of 80,000 trials (15%), 1,520 trials/s, ETA 38 s``.
    """

    def __init__(self, total: int, name: str, unit: str, *, enabled: bool = True, log=None):
        self.total, self.name, self.unit, self.log = total, name, unit, log or sys.stderr
        self.done, self.t0, self.last = 0, time.perf_counter(), time.perf_counter()
        self.bar = None
        self.lines = enabled and not _isatty(self.log)
        if enabled and not self.lines:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=unit, unit_scale=True, file=self.log, desc=name,
                            dynamic_ncols=True)

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.lines and time.perf_counter() - self.last >= PROGRESS_SECONDS:
            self.last = time.perf_counter()
            print(f"mc-hull: {self.line()}", file=self.log, flush=True)

    def line(self) -> str:
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        pct = 100 * self.done / self.total if self.total else 100
        return (f"{self.name}: {self.done:,} of {self.total:,} {self.unit}s ({pct:.0f}%), "
                f"{rate:,.0f} {self.unit}s/s, ETA {planning._duration(eta)}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def run(job, out: str, *, map=None, progress: bool = True, log=None, place=None) -> JobReport:
    """Execute every unit of ``job`` not yet committed in ``out``.

    Parameters
    ----------
    job
        A job (:mod:`mc_hull.jobs`).
    out : str
        Results location (directory or URI).
    map : callable, optional
        ``map(fn, units, context, hint) -> iterator of (unit, result)``: :func:`serial_map`
        by default, or :meth:`mc_hull.distributed.Pool.map_unordered`.
    progress : bool
        A bar on a terminal, progress lines elsewhere.
    place : callable, optional
        ``place(loader)`` -> context manager over a point source spread over the cluster
        (``mc_hull.distributed_blocks.placer``): the units ``job.spread(unit)`` names are then
        computed here, one at a time, each over the whole cluster, after the mapped ones.
    """
    log = log or sys.stderr
    t0 = time.perf_counter()
    store = job.open_store(out)
    done, moved = job.committed(store, job.units())
    for path in moved:
        print(f"mc-hull: moved aside damaged shard file {path}; it will be recomputed", file=log)
    planned = job.count()
    wide: list = []          # units spread over the cluster: computed here after the mapped ones
    spread = getattr(job, "spread", None) if place is not None else None

    def mapped():
        for u in job.units():
            if u in done:
                continue
            if spread is not None and spread(u):
                wide.append(u)
                continue
            yield u

    todo = mapped()
    if done:
        print(f"mc-hull: resuming {job.name}: {len(done)} of {planned} shards already committed, "
              f"{planned - len(done)} to run", file=log)
    remaining = job.total() - sum(job.size(u) for u in done)
    meter = Progress(remaining, job.name, job.unit_name, enabled=progress and planned > len(done), log=log)
    computed = size = undecided = 0
    try:
        for _, summary in (map or serial_map)(execute_unit, todo, (job, str(out)), planned - len(done)):
            computed += 1
            size += summary["size"]
            undecided += summary["undecided"]
            meter.update(summary["size"])
        for unit in wide:        # one training set over the whole cluster, unit by unit
            summary = execute_unit((job, str(out), place), unit)
            computed += 1
            size += summary["size"]
            undecided += summary["undecided"]
            meter.update(summary["size"])
    finally:
        meter.close()
    elapsed = time.perf_counter() - t0
    if computed and progress:
        print(f"mc-hull: {computed} shards, {size:,} {job.unit_name}s in {elapsed:.1f} s "
              f"({size / max(elapsed, 1e-9):,.0f} {job.unit_name}s/s)", file=log)
    return JobReport(name=job.name, planned=planned, skipped=len(done), computed=computed, size=size,
                     undecided=undecided, seconds=elapsed, quarantined=moved)


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


def spec_difference(old: dict, new: dict) -> list[str]:
    """Names of the spec fields that differ between two spec mappings."""
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def check_run(spec: Spec, out: str, *, new_run: bool = False):
    """Raise StoreError (one line) if ``out`` holds a different spec and not ``new_run``; writes nothing.

    Call it before announcing a run, so a refusal is the only line printed.
    """
    from .store import ResultStore

    store = ResultStore(out)
    try:
        store.check_claim(spec, new_run=new_run)  # another run, or rows of one whose record was deleted
    except OSError as exc:  # e.g. an object store that refuses or cannot be reached
        raise StoreError(f"--out: cannot use {out}: {str(exc).splitlines()[0][:300]}") from None
    return store


#: Seconds an object store (gs://) may retry a request before it fails: its default is 15 minutes.
RETRY_SECONDS = 10


def bounded_out(out: str) -> str:
    """``out`` with a bounded retry time for Google Cloud Storage URIs, so an unreachable one fails, not hangs."""
    text = str(out)
    if text.startswith(("gs://", "gcs://")) and "retry_limit_seconds" not in text:
        text += ("&" if "?" in text else "?") + f"retry_limit_seconds={RETRY_SECONDS}"
    return text


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
    from .distributed import Pool  # the only module that imports ray

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
    pool : mc_hull.distributed.Pool, optional
        Reuse this pool's Ray connection and actors (adaptive rounds).
    """
    log = log or sys.stderr
    t0 = time.perf_counter()
    store = open_run(spec, out, new_run=new_run)
    if job is None:
        job = MonteCarloJob(spec, shards=None if shards is None else tuple(shards))
    mapper, own = pool_map(backend, address, workers, pool)
    place = None
    if backend == "ray":
        from .distributed_blocks import placer  # X of a huge cell: row blocks over the cluster's nodes

        place = placer(workers, log=log)
    try:
        rep = run(job, out, map=mapper, progress=progress, log=log, place=place)
    finally:
        if own is not None:
            own.close()
    report = RunReport(run_id=spec.run_id, planned_shards=rep.planned, skipped_shards=rep.skipped,
                       computed_shards=rep.computed, trials=rep.size, undecided=rep.undecided,
                       seconds=time.perf_counter() - t0, quarantined=rep.quarantined, backend=backend)
    if rep.computed:  # the runner's measured rate, kept by the store beside the run's record (dashboard)
        store.record_stats(spec.run_id, {"trials": rep.size, "seconds": rep.seconds, "shards": rep.computed,
                                         "backend": backend, "trials_per_s": rep.size / max(rep.seconds, 1e-9),
                                         "finished": time.time()})
    return report
