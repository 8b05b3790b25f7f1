"""Run a spec into a store: plan shards, skip committed ones, execute the rest serially or on Ray."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from .errors import StoreError
from .plan import Shard, plan
from .spec import Spec
from .store import ResultStore
from .trial import run_shard


@dataclass
class RunReport:
    """What a run did."""

    run_id: str
    planned_shards: int
    skipped_shards: int
    computed_shards: int
    trials: int
    undecided: int
    seconds: float
    quarantined: list[str] = field(default_factory=list)


def spec_difference(old: dict, new: dict) -> list[str]:
    """Names of the spec fields that differ between two spec mappings."""
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def check_run(spec: Spec, out: str, *, new_run: bool = False) -> ResultStore:
    """Raise StoreError (one line) if ``out`` holds a different spec and not ``new_run``; writes nothing.

    Call it before announcing a run, so a refusal is the only line printed.
    """
    store = ResultStore(out)
    store.check_claim(spec, new_run=new_run)
    return store


def open_run(spec: Spec, out: str, *, new_run: bool = False) -> ResultStore:
    """Prepare ``out`` for ``spec``; refuse a different spec unless ``new_run``."""
    store = ResultStore(out)
    store.claim_run(spec, new_run=new_run)  # atomic: of two writers into one store, one is refused
    return store


def execute(spec: Spec, out: str, *, backend: str = "ray", address: str | None = None,
            workers: int | None = None, new_run: bool = False, progress: bool = True,
            shards: list[Shard] | None = None, log=None) -> RunReport:
    """Run every shard of ``spec`` not yet committed in ``out``.

    Parameters
    ----------
    spec : Spec
    out : str
        Results location (directory or URI).
    backend : {"ray", "serial"}
        ``"serial"`` runs in this process (same rows, used by tests and debugging).
    address : str, optional
        Ray address; None or ``"local"`` starts an embedded Ray instance.
    workers : int, optional
        Number of Ray actors (default: CPUs of the embedded instance or cluster).
    new_run : bool
        Allow a spec different from the one already in ``out``.
    shards : list of Shard, optional
        Subset to run (default: the whole plan).
    """
    log = log or sys.stderr
    t0 = time.perf_counter()
    store = open_run(spec, out, new_run=new_run)
    planned = plan(spec) if shards is None else list(shards)
    done, moved = store.committed(spec, planned)
    for what in moved:
        print(f"mc-hull: damaged shard {what}: not counted, it will be recomputed", file=log)
    todo = [s for s in planned if s not in done]
    if done:
        print(f"mc-hull: resuming run {spec.run_id}: {len(done)} of {len(planned)} shards already "
              f"committed, {len(todo)} to run", file=log)
    if backend == "serial":
        results = [_run_serial(spec, store, shard) for shard in todo]
    elif backend == "ray":
        from .distributed import run_shards  # the only module that imports ray

        results = run_shards(spec, out, todo, address=address, workers=workers, progress=progress)
    else:
        raise ValueError(f"backend must be 'ray' or 'serial', got {backend!r}")
    report = RunReport(run_id=spec.run_id, planned_shards=len(planned), skipped_shards=len(done),
                       computed_shards=len(results), trials=sum(r["trials"] for r in results),
                       undecided=sum(r["undecided"] for r in results),
                       seconds=time.perf_counter() - t0, quarantined=moved)
    if results:  # the run's measured rate, for the dashboard (the store keeps it beside the record)
        store.record_stats(spec.run_id, {"trials": report.trials, "seconds": report.seconds,
                                         "shards": report.computed_shards, "backend": backend,
                                         "trials_per_s": report.trials / max(report.seconds, 1e-9),
                                         "finished": time.time()})
    return report


def run_and_write(spec: Spec, store: ResultStore, shard: Shard) -> dict:
    """Compute one shard and publish its file; returns a small summary."""
    t0 = time.perf_counter()
    from . import bigcell

    if bigcell.needs_streaming(shard.n, shard.d):
        cols = bigcell.run_shard(spec, shard)  # X above the memory budget: streamed from its block keys
    else:
        cols = run_shard(spec, shard)
    store.write_shard(spec, shard, cols)
    return {"key": shard.key, "trials": len(cols["query"]),
            "undecided": int((cols["status"] == "undecided").sum()),
            "seconds": time.perf_counter() - t0}


_run_serial = run_and_write
