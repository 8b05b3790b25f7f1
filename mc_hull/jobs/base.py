"""Jobs: keyed units of work, a pure compute(unit) -> rows, and how a unit's rows reach the store.

A job satisfies :class:`Job` (Monte Carlo cells and adaptive additions are a :class:`MonteCarloJob`,
nested runs a :class:`mc_hull.jobs.nested.NestedJob`, hull-test ranges a
:class:`mc_hull.jobs.hulltest.HullTestJob`; ``tests/test_job_contract.py`` holds every one to it).
Rows are built by the one row builder, :func:`mc_hull.jobs.trial.rows`, whose ``status`` is int8.

A job imports no store: it names the kind it writes (``store_kind``) and the runner opens it
(:func:`mc_hull.runs.runner.open_store`); :func:`mc_hull.runs.runner.execute_unit` is what a runner maps over units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Protocol, runtime_checkable

import numpy as np

from . import plan as planning
from . import trial
from .plan import Shard
from ..spec import Spec


@runtime_checkable
class Job(Protocol):
    """What the runner needs of a job.

    ``name``, ``unit_name``
        For messages: ``"run 1a2b..."``, ``"trial"``.
    ``units()``
        The units in plan order, lazily (an iterator; units are hashable and have a ``key``).
    ``count()``, ``total()``, ``size(unit)``
        Number of units, trials or points of all units, and of one unit, computed without listing.
    ``compute(unit)``
        The unit's rows (:func:`mc_hull.jobs.trial.rows`): a pure function of (job, unit), so any worker,
        order or retry gives the same rows.
    ``spread(unit)`` (optional)
        True for a unit whose one training set is better spread over the cluster's nodes than held by
        one worker; a runner with a ``place`` (``mc_hull.distributed.blocks.placer``) computes such
        units on the driver as ``compute(unit, place=place)``, their rows identical.
    ``store_kind``, ``committed(store, units)``, ``publish(store, unit, columns)``
        The store the job writes to (``"results"`` or ``"hulltest"``, opened by the runner), the units
        already committed there (and files moved aside as damaged), and the atomic publication of one
        unit's rows.
    """

    unit_name: str
    store_kind: str

    @property
    def name(self) -> str: ...

    def units(self) -> Iterator: ...

    def count(self) -> int: ...

    def total(self) -> int: ...

    def size(self, unit) -> int: ...

    def compute(self, unit) -> dict[str, np.ndarray]: ...

    def committed(self, store, units) -> tuple[set, list[str]]: ...

    def publish(self, store, unit, columns: dict[str, np.ndarray]) -> None: ...

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
    store_kind = "results"

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

    def spread_bytes(self, shard: Shard) -> int:
        """Bytes of a spread cell's X (float64)."""
        return 8 * int(shard.n) * int(shard.d)

    def compute(self, shard: Shard, place=None) -> dict[str, np.ndarray]:
        return trial.run_shard(self.spec, shard) if place is None else trial.run_shard(self.spec, shard, place=place)

    def committed(self, store, units) -> tuple[set, list[str]]:
        return store.committed(self.spec, units)

    def publish(self, store, shard: Shard, columns: dict[str, np.ndarray]) -> None:
        store.write_shard(self.spec, shard, columns)
