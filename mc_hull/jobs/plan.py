"""Split a spec into shards lazily (counted arithmetically), and estimate a plan's time and memory before it runs."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, replace
from itertools import islice
from typing import Iterator

from .. import seeding
from ..stats.design import memory_budget
from ..errors import ComputeError, McHullError, PlanError
from ..samplers import replicate_data
from ..solvers import get_solver
from ..solvers.stream import ADD_ROWS
from ..spec import Spec


@dataclass(frozen=True, order=True)
class Shard:
    """Replicates ``start .. stop-1`` of cell (distribution, d, n).

    Because every replicate's randomness comes from its own key, a shard's
    rows depend only on (spec, shard): any worker, any order, any retry.
    """

    distribution: str
    d: int
    n: int
    start: int
    stop: int

    @property
    def key(self) -> str:
        """Stable text key, also the stem of the shard's file name."""
        return f"{self.distribution}/d={self.d}/n={self.n}/r{self.start:07d}-{self.stop:07d}"

    def trials(self, spec: Spec) -> int:
        return replicate_trials(spec, self.start, self.stop, self.d, self.n)


def replicate_trials(spec: Spec, start: int, stop: int, d: int, n: int) -> int:
    """Trials held by replicates ``start .. stop-1`` of cell (d, N) (arithmetic, O(1))."""
    if stop <= start:
        return 0
    full, k = spec.replicates_for(d, n), spec.k_for(d, n)
    planned = max(0, min(stop, full) - start) if start < full else 0
    inside = 0
    if planned:
        last = full - 1  # the only replicate that may hold fewer than K queries
        inside = planned * k - (k - spec.queries_in(last, d, n) if start <= last < stop else 0)
    return inside + max(0, stop - max(start, full)) * k


def replicates_per_shard(spec: Spec, d: int, n: int) -> int:
    """Replicates of cell (d, N) in one shard: about ``shard_trials`` trials."""
    return max(1, spec.shard_trials // spec.k_for(d, n))


def iter_shards(spec: Spec, replicate_start: int = 0, replicate_stop: int | None = None,
                cells=None) -> Iterator[Shard]:
    """The shards of ``spec`` (cells in spec order), one at a time, never as a list.

    Parameters
    ----------
    spec : Spec
    replicate_start, replicate_stop : int
        Replicate range per cell (default: all of each cell's planned
        replicates); adaptive runs use later ranges to add shards to a cell.
    cells : iterable of (d, n), optional
        Only these cells of ``spec``, in the order given (default all of ``spec.cells``, in order).
    """
    known = set(spec.cells)
    for d, n in dict.fromkeys(spec.cells if cells is None else cells):
        if (d, n) not in known:
            continue
        stop_all = spec.replicates_for(d, n) if replicate_stop is None else replicate_stop
        step = replicates_per_shard(spec, d, n)
        for start in range(replicate_start, stop_all, step):
            yield Shard(spec.distribution, d, n, start, min(start + step, stop_all))


def costliest_first(spec: Spec, cells=None) -> list:
    """The cells (default all) ordered by estimated cost, largest first (stable for ties).

    Workers that take the largest units first finish together (longest-processing-time
    order): in spec order the costliest cells (largest d and N) come last and a run ends
    with one worker busy and the other idle.
    """
    cells = list(spec.cells if cells is None else cells)
    return sorted(cells, key=lambda c: -cell_seconds(spec, c[0], c[1], spec.trials))


def count_shards(spec: Spec, replicate_start: int = 0, replicate_stop: int | None = None,
                 cells=None) -> int:
    """Number of shards :func:`iter_shards` yields (same arguments), computed per cell without iterating."""
    total = 0
    known = set(spec.cells)
    for d, n in dict.fromkeys(spec.cells if cells is None else cells):
        if (d, n) not in known:
            continue
        stop_all = spec.replicates_for(d, n) if replicate_stop is None else replicate_stop
        total += max(0, -(-(stop_all - replicate_start) // replicates_per_shard(spec, d, n)))
    return total


def plan(spec: Spec, replicate_start: int = 0, replicate_stop: int | None = None) -> list[Shard]:
    """All shards of ``spec`` as a list (small plans and tests; runs iterate :func:`iter_shards`)."""
    n = count_shards(spec, replicate_start, replicate_stop)
    if n > MAX_SHARDS:
        raise PlanError(f"plan: {n:,} shards is beyond the limit of {MAX_SHARDS:,}")
    return list(islice(iter_shards(spec, replicate_start, replicate_stop), n))


# -- the cost model ------------------------------------------------------------------------
#: Most shards a plan may hold without --force-plan (each is a file and a bookkeeping entry).
MAX_SHARDS = 1_000_000
#: Seconds per query of one membership decision, fixed part and per (N x d) element, and per
#: drawn coordinate of a training set (8x8 ... 20x10^6 cells of benchmarks/membership.py on
#: this 2-core machine: 37 us at (5, 150), 83 us at (10, 4000), 15 ms at (20, 10^6)).
QUERY_SECONDS, ELEMENT_SECONDS, DRAW_SECONDS = 30e-6, 1.5e-9, 10e-9
#: A distance run decides membership, then projects every query (benchmarks/distance.py: the
#: projection costs 1.2-2x the membership decision at p ~ 1/2), so about 3x per query in all.
DISTANCE_FACTOR = 3.0
#: Seconds of overhead per shard (its Parquet file, its bookkeeping).
SHARD_SECONDS = 0.01
#: Resident memory of a worker before any training set (Python, numpy, scipy, HiGHS, pyarrow).
BASE_BYTES = 250 << 20
#: Most estimated single-core seconds a plan may take without --force-plan (30 days).
MAX_CPU_SECONDS = 30 * 86400
#: Below this much estimated work a run stays in this process: starting Ray here costs 10-25 s.
RAY_MIN_SECONDS = 20.0


def needs_streaming(n: int, d: int, budget: int | None = None) -> bool:
    """True when X (N x d float64, plus an equal working copy) exceeds the memory budget."""
    return 2 * 8 * int(n) * int(d) > (memory_budget() if budget is None else budget)


def stream_bytes(d: int, queries: int) -> int:
    """Peak bytes of a streamed decision beyond the interpreter: a block, its frame copy, scores, working sets."""
    block = seeding.block_rows(d) * d * 8
    return 3 * block + (16 << 20) + min(memory_budget() // 4, 8 * queries * d * ADD_ROWS * (d + 1))


def cell_seconds(spec: Spec, d: int, n: int, trials: int) -> float:
    """Estimated single-core seconds for ``trials`` trials of cell (d, N)."""
    per_query = QUERY_SECONDS + ELEMENT_SECONDS * n * d
    if needs_streaming(n, d):
        per_query *= 3  # a few streamed passes, each regenerating X
    if getattr(spec, "measure", "membership") == "distance":
        per_query *= DISTANCE_FACTOR
    sets = -(-trials // spec.k_for(d, n))
    return trials * per_query + sets * DRAW_SECONDS * n * d


def cell_bytes(spec: Spec, d: int, n: int) -> int:
    """Estimated peak resident bytes of a worker deciding one replicate of cell (d, N)."""
    if needs_streaming(n, d):
        return BASE_BYTES + stream_bytes(d, spec.k_for(d, n))
    return BASE_BYTES + 3 * 8 * n * d  # X, its frame copy and pricing scratch


@dataclass(frozen=True)
class Estimate:
    """What a plan costs before it runs."""

    cells: int
    trials: int
    shards: int
    cpu_seconds: float
    peak_bytes: int
    #: Appended to the plan line (a nested run names its streamed sizes here).
    note: str = ""
    #: The part of ``cpu_seconds`` that :func:`calibration` does not scale: work of a model fitted on
    #: its own measured runs (a streamed nested replicate's passes), not on the decisions it times.
    fixed_seconds: float = 0.0
    #: Cores one unit keeps busy (``MC_HULL_THREADS`` for a streamed nested replicate): a wall-time
    #: estimate divides by it as by the workers.
    threads: int = 1

    def scaled(self, factor: float) -> "Estimate":
        """The same plan with its CPU estimate, less ``fixed_seconds``, multiplied by ``factor`` (see
        :func:`calibration`)."""
        cpu = self.fixed_seconds + (self.cpu_seconds - self.fixed_seconds) * factor
        return replace(self, cpu_seconds=cpu)

    def line(self) -> str:
        return (f"{self.cells} cells, {self.trials:,} trials in {self.shards:,} shards; estimated "
                f"{_duration(self.cpu_seconds)} of CPU, peak memory {_size(self.peak_bytes)} per worker"
                + (f"; {self.note}" if self.note else ""))


def estimate(spec: Spec, cells=None, replicate_start: int = 0, replicate_stop: int | None = None) -> Estimate:
    """Cost of the shards of ``spec`` for ``cells`` (default all) and a replicate range, without listing them."""
    cells = list(spec.cells) if cells is None else list(cells)
    trials, seconds = 0, 0.0
    for d, n in cells:
        stop = spec.replicates_for(d, n) if replicate_stop is None else replicate_stop
        t = replicate_trials(spec, replicate_start, stop, d, n)
        trials += t
        seconds += cell_seconds(spec, d, n, t)
    shards = count_shards(spec, replicate_start, replicate_stop, cells=cells)
    peak = max((cell_bytes(spec, d, n) for d, n in cells), default=BASE_BYTES)
    return Estimate(cells=len(cells), trials=trials, shards=shards,
                    cpu_seconds=seconds + shards * SHARD_SECONDS, peak_bytes=peak)


#: Largest training set (N x d coordinates) a calibration draws, and most queries it decides.
CALIBRATION_ELEMENTS, CALIBRATION_QUERIES = 4_000_000, 50
#: Range of the calibration factor (a model wrong by more than this is capped, not trusted).
CALIBRATION_RANGE = (0.25, 1000.0)


def calibration(spec: Spec, cells=None) -> float:
    """Measured over modelled CPU seconds of one short decision, the factor to scale an estimate by.

    The cost model's constants fit Gaussian data far from the boundary; hard distributions (a
    curve in R^d, whose queries sit close to its hull) and large N cost many times more per query.
    This draws one replicate of the largest in-memory cell (at most :data:`CALIBRATION_ELEMENTS`
    coordinates) of the plan's smallest and of its largest d, from the spec's own keys (nothing is written, no
    randomness is consumed elsewhere), and decides its queries (at most
    :data:`CALIBRATION_QUERIES`, so a decision's fixed cost is shared as in a run): a fraction of
    a second. 1.0 when no cell is small enough.  Measured once per (spec, cells, memory budget)
    in a process.
    """
    cells = list(spec.cells) if cells is None else list(cells)
    memo = (spec.hash, tuple(cells), memory_budget())
    if memo not in _CALIBRATIONS:   # once per process: the plan line's factor is the runner's ETA's too
        _CALIBRATIONS[memo] = _calibration(spec, cells)
    return _CALIBRATIONS[memo]


_CALIBRATIONS: dict = {}


def _calibration(spec: Spec, cells: list) -> float:
    small = [(d, n) for d, n in cells if n * d <= CALIBRATION_ELEMENTS and not needs_streaming(n, d)]
    if not small:
        return 1.0
    solver = get_solver(spec.solver)
    measured = modelled = 0.0
    for dim in sorted({min(d for d, _ in small), max(d for d, _ in small)}):
        n = max(n for d, n in small if d == dim)     # the largest N of the smallest and largest d
        t0 = time.process_time()
        try:
            X, Q = replicate_data(spec, dim, n, 0)
            Q = Q[:CALIBRATION_QUERIES]
            solver.decide(X, Q, tol=spec.tol)
        except McHullError:
            raise
        except Exception as exc:   # noqa: BLE001 - one line before anything is written, never a traceback
            raise ComputeError(f"plan: drawing and deciding one training set of d = {dim}, N = {n:,} failed "
                               f"({type(exc).__name__}: {' '.join(str(exc).split())[:300]}); nothing was "
                               "written") from exc
        measured += time.process_time() - t0
        modelled += Q.shape[0] * (QUERY_SECONDS + ELEMENT_SECONDS * n * dim) + DRAW_SECONDS * n * dim
    lo, hi = CALIBRATION_RANGE
    return float(min(max(measured / modelled, lo), hi))


def check(est: Estimate, *, force: bool = False, worker_bytes: int | None = None) -> None:
    """Raise PlanError (one line) for a plan that cannot run here, unless ``force``."""
    if force:
        return
    if est.shards > MAX_SHARDS:
        raise PlanError(f"plan: {est.shards:,} shards is beyond the limit of {MAX_SHARDS:,} (fewer trials, "
                        "or a larger shard_trials); --force-plan runs it anyway")
    if est.cpu_seconds > MAX_CPU_SECONDS:
        raise PlanError(f"plan: estimated {_duration(est.cpu_seconds)} of CPU, beyond the limit of "
                        f"{_duration(MAX_CPU_SECONDS)} (fewer trials or smaller sizes); --force-plan "
                        "runs it anyway on a cluster that can")
    limit = worker_bytes if worker_bytes is not None else _machine_bytes()
    if limit and est.peak_bytes > limit:
        raise PlanError(f"plan: a worker would need about {_size(est.peak_bytes)}, more than the "
                        f"{_size(limit)} of memory here; lower MC_HULL_MEMORY_BUDGET or the sizes, or "
                        "--force-plan on a cluster with larger workers")


def choose_backend(seconds: float, *, serial: bool = False, address: str | None = None,
                   workers: int | None = None, units: int | None = None) -> tuple[str, str]:
    """``("serial" | "ray", why)`` for a job of ``seconds`` estimated work in ``units`` units (if known).

    The one serial-or-Ray rule of every run: ``--serial``, ``--address`` and ``--workers`` decide;
    otherwise a job of one unit, or under :data:`RAY_MIN_SECONDS` of work, stays in this process.
    """
    if serial:
        return "serial", "--serial"
    if address:
        return "ray", "--address"
    if workers:
        return "ray", "--workers"
    if units is not None and units < 2:
        return "serial", "one unit of work; Ray cannot divide it"
    if seconds < RAY_MIN_SECONDS:
        return "serial", f"estimated work under {RAY_MIN_SECONDS:.0f} s; Ray's start-up would cost more"
    return "ray", f"estimated work above {RAY_MIN_SECONDS:.0f} s"


def _machine_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def _size(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if nbytes < 1024 or unit == "EiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return ""


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "unbounded time"
    for limit, unit in ((120, "s"), (7200, "min"), (172800, "h")):
        if seconds < limit:
            return f"{seconds / {'s': 1, 'min': 60, 'h': 3600}[unit]:.1f} {unit}"
    days = seconds / 86400
    return f"{days:.1f} days" if days < 3650 else f"{days / 365.25:.2g} years"
