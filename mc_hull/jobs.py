"""Jobs: keyed units of work, a pure compute(unit) -> columns, and how a unit's rows reach the store.

A job is any object with these members (Monte Carlo cells and adaptive additions are a
:class:`MonteCarloJob`; hull-test ranges are :class:`mc_hull.hulltest.HullTestJob`):

``name``, ``unit_name``
    For messages: ``"run 1a2b..."``, ``"trial"``.
``units()``
    The units in plan order, lazily (an iterator; units are hashable and have a ``key``).
``count()``, ``total()``, ``size(unit)``
    Number of units, trials or points of all units, and of one unit, computed without listing.
``compute(unit)``
    The unit's columns: a pure function of (job, unit), so any worker, order or retry gives the same rows.
``spread(unit)`` (optional)
    True for a unit whose one training set is better spread over the cluster's nodes than held by one
    worker; a runner with a ``place`` (``mc_hull.distributed_blocks.placer``) computes such units on
    the driver as ``compute(unit, place=place)``, their rows identical.
``open_store(out)``, ``committed(store, units)``, ``publish(store, unit, columns)``
    The store the job writes to, the units already committed there (and files moved aside as
    damaged), and the atomic publication of one unit's rows.

:func:`execute_unit` is what a runner maps over units: compute, publish, return a small summary.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from . import plan as planning
from .errors import ComputeError, McHullError
from .plan import Shard
from .spec import Spec

#: Stores opened by :func:`execute_unit` in this process, one per (store kind, location).
_STORES: dict = {}


def execute_unit(context, unit) -> dict:
    """Compute ``unit`` of ``job`` and publish its rows to ``out``; ``context`` is ``(job, out)``.

    Returns
    -------
    dict
        ``key``, ``size`` (trials or points), ``undecided`` and ``seconds``.
    """
    job, out, *rest = context
    place = rest[0] if rest else None
    t0 = time.perf_counter()
    try:
        cols = job.compute(unit, place=place) if place is not None else job.compute(unit)
    except McHullError:
        raise
    except Exception as exc:   # noqa: BLE001 - one line, never a traceback after the run's record
        import os

        if os.environ.get("MC_HULL_DEBUG"):
            raise
        key = unit.key if hasattr(unit, "key") else str(unit)
        raise ComputeError(f"{job.name}: unit {key} failed ({type(exc).__name__}: {' '.join(str(exc).split())[:300]}); "
                           "nothing of it was stored, committed units are kept and a re-run resumes "
                           "(MC_HULL_DEBUG=1 shows the traceback)") from exc
    kind = type(job).__name__
    store = _STORES.get((kind, out))
    if store is None:
        store = _STORES[(kind, out)] = job.open_store(out)
    job.publish(store, unit, cols)
    status = cols["status"]
    undecided = int(np.sum(status == "undecided")) if status.dtype == object else int(np.sum(status < 0))
    return {"key": unit.key if hasattr(unit, "key") else str(unit), "size": len(status),
            "undecided": undecided, "seconds": time.perf_counter() - t0}


@dataclass(frozen=True)
class MonteCarloJob:
    """The shards of a spec: all of them, a replicate range of some cells (adaptive), or a given list.

    Parameters
    ----------
    spec : Spec
    replicate_start, replicate_stop : int
        Replicates per cell (default all of each cell's planned replicates).
    cells : tuple of (d, n), optional
        Only these cells (default all, in spec order).
    shards : tuple of Shard, optional
        Exactly these shards (overrides the three above).
    """

    spec: Spec
    replicate_start: int = 0
    replicate_stop: int | None = None
    cells: tuple | None = None
    shards: tuple | None = None

    unit_name = "trial"

    @property
    def name(self) -> str:
        return f"run {self.spec.run_id}"

    def units(self):
        if self.shards is not None:
            return iter(self.shards)
        cells = planning.costliest_first(self.spec, self.cells)   # the largest units first: workers end together
        return planning.iter_shards(self.spec, self.replicate_start, self.replicate_stop, cells)

    def count(self) -> int:
        if self.shards is not None:
            return len(self.shards)
        return planning.count_shards(self.spec, self.replicate_start, self.replicate_stop, self.cells)

    def total(self) -> int:
        if self.shards is not None:
            return sum(s.trials(self.spec) for s in self.shards)
        total = 0
        for d, n in (self.spec.cells if self.cells is None else self.cells):
            stop = self.spec.replicates_for(d, n) if self.replicate_stop is None else self.replicate_stop
            total += planning.replicate_trials(self.spec, self.replicate_start, stop, d, n)
        return total

    def estimate(self) -> planning.Estimate:
        if self.shards is not None:
            cells = sorted({(s.d, s.n) for s in self.shards})
            est = planning.estimate(self.spec, cells)
            return planning.Estimate(len(cells), self.total(), len(self.shards),
                                     est.cpu_seconds * self.total() / max(est.trials, 1), est.peak_bytes)
        return planning.estimate(self.spec, self.cells, self.replicate_start, self.replicate_stop)

    def size(self, shard: Shard) -> int:
        return shard.trials(self.spec)

    def spread(self, shard: Shard) -> bool:
        """True for a cell whose X exceeds the memory budget (streamed: its blocks go to the cluster)."""
        return planning.needs_streaming(shard.n, shard.d)

    def compute(self, shard: Shard, place=None) -> dict[str, np.ndarray]:
        from . import trial

        if planning.needs_streaming(shard.n, shard.d):
            from . import bigcell  # X above the memory budget: streamed from its block keys
            from .trial import check_measure

            check_measure(self.spec)  # a streamed X has no distance measure: refused, never dropped

            return bigcell.run_shard(self.spec, shard, place=place)
        return trial.run_shard(self.spec, shard)

    def open_store(self, out: str):
        from .store import ResultStore

        return ResultStore(out)

    def committed(self, store, units) -> tuple[set, list[str]]:
        return store.committed(self.spec, units)

    def publish(self, store, shard: Shard, columns: dict[str, np.ndarray]) -> None:
        store.write_shard(self.spec, shard, columns)
