"""Nested runs as a job: per replicate one training set of the largest size, every grid size's rows from it.

A unit is a replicate range of one dimension d (:class:`NestedShard`).  For each
replicate it draws X of the largest grid size of d and the replicate's queries
(:func:`mc_hull.nested.search.replicate_data`), locates every query's entry size T
(:func:`mc_hull.nested.search.entry_sizes`) and publishes, for every grid size N of d,
the standard trial rows of cell (d, N): ``inside`` is ``T <= N`` (null where the
bracket is open), the certificate value is the one at the nearer bracket end
(the inside residual at T, the outside margin at the last size below it, both
holding at N by monotonicity).  So ``mc-hull query``, ``--thresholds``, the
dashboard and ``plot`` read a nested run like any other, one row per N; each
cell's interval is clustered by replicate, which accounts for the queries sharing
X.  The bounds on T are the sizes where a query's rows switch from outside to
inside (:func:`entry_bounds` reads them back).

A unit is committed when the units of all its cells are; a crash between two
cells recomputes the whole unit, whose rows are identical (keyed randomness).
"""

from __future__ import annotations

import contextlib

from dataclasses import dataclass

import numpy as np

from ..stats import design
from ..nested import search as nested, stream as nested_stream
from .. import progress
from . import trial
from . import plan as planning
from ..errors import PlanError
from .plan import Shard
from ..samplers import keyed_source
from ..spec import Spec
from .trial import COLUMNS

#: Streamed replicates: passes per replicate that regenerate the rows beyond the held prefix (one
#: replicate of the d = 16 target, 40 sizes to N = 4.57e7, K = 50: 84 CPU s with 25e6 of its rows
#: held against 27 s held whole, i.e. about 17 passes of the 20.7e6-row tail); the pricing itself
#: cost 0.8-2.3x the in-memory search in interleaved pairs (noisy), so no factor is added for it.
#: Scaled by 11/16 when each pass began to price the next probe up as well (median passes per
#: replicate of a d = 14 run, 40 sizes to 1.05e7, K = 33: 16 before, 11 after; README, "Nested replicates").
STREAM_PASSES = 11
#: Sieved replicates (an isotropic law, :data:`mc_hull.nested.stream.SIEVE`): the fraction of X's rows the
#: sieve keeps (0.31-0.33 for the Gaussian at d = 16-20 with the run's grid, from the chi distribution
#: of norms and the box radius of each prefix), and the cost of the replicate's passes and masters
#: against the unsieved model's (the whole d = 18 run, 31 replicates of K = 333 with their kept rows
#: held, one thread: 250 CPU-s per replicate, measured, and 337 on two threads in the whole run; the
#: model gives 251; README, "d = 18").
SIEVE_KEPT, SIEVE_WORK = 0.33, 0.7
#: CPU of a streamed replicate on ``MC_HULL_THREADS`` > 1 threads against one: the whole d = 18 run on
#: two threads, 8,930 CPU-s for 31 replicates (288 each) against 250 on one.  It was 1.35 (337 against
#: 250) while the parts of a pass did not share their cuts (each priced a direction until it failed on
#: its own rows); README, "d = 18".
THREAD_COST = 1.15


def sieved_rows(d: int, n_max: int, held: int) -> tuple[int, float]:
    """Rows whose kept rows the memory holds, and rows drawn per replicate, of a sieved streamed replicate.

    The frame pass draws X once and keeps, within the budget, the rows the sieve may keep (about
    ``SIEVE_KEPT`` of them); the first pricing pass and every later one draw only the blocks that did not fit.
    """
    n_held = min(n_max, int(held / (SIEVE_KEPT * 8 * d)))
    return n_held, n_max + (STREAM_PASSES + 1) * (n_max - n_held)


def _sieved(spec: Spec, d: int) -> bool:
    return bool(nested_stream.SIEVE) and bool(spec.sampler(d).isotropic)


@dataclass(frozen=True, order=True)
class NestedShard:
    """Replicates ``start .. stop-1`` of every grid size of dimension d."""

    distribution: str
    d: int
    start: int
    stop: int

    @property
    def key(self) -> str:
        return f"{self.distribution}/d={self.d}/nested/r{self.start:07d}-{self.stop:07d}"

    def cells(self, spec: Spec) -> list[Shard]:
        """The ordinary shards (one per grid size N of d) this unit publishes."""
        return [Shard(self.distribution, self.d, int(n), self.start, self.stop)
                for n in sorted(spec.sizes_for(self.d))]


def streamed_sizes(spec: Spec, d: int) -> tuple[int, int] | None:
    """``(n_mem, n_max)`` when d's replicates take the streamed path (rows >= n_mem regenerated), else None."""
    n_max = max(spec.sizes_for(d))
    if not planning.needs_streaming(n_max, d):
        return None
    return nested_stream.memory_rows(d, n_max, nested_stream.held_bytes(d)), n_max


def check_nested(spec: Spec) -> None:
    """Raise PlanError (one line) for a nested spec that cannot run even streamed.

    X beyond the memory budget is served by the streamed path (:mod:`mc_hull.nested.stream`):
    its prefix that fits stays in memory, the rest is regenerated from its keys on every pass.
    What cannot shrink is one replicate's state: a block of X, its tables of K queries x L sizes
    and their working sets; beyond this machine's memory the plan is refused.
    """
    nested_stream.pass_threads()       # a bad MC_HULL_THREADS is refused before anything runs
    machine = planning._machine_bytes()
    for d in spec.dims:
        sizes = spec.sizes_for(d)
        k = spec.k_for(d, max(sizes))
        need = nested_stream.state_bytes(d, k, len(sizes))
        if machine and need > machine:
            raise PlanError(f"nested: d = {d}: one replicate's search state ({planning._size(need)}: a block of X, "
                            f"{k} queries x {len(sizes)} sizes) exceeds this machine's "
                            f"{planning._size(machine)}; fewer queries per set or sizes")


def plan_note(spec: Spec) -> str:
    """What the plan line says about streamed sizes ('' when every X fits the memory budget)."""
    parts = []
    for d in spec.dims:
        st = streamed_sizes(spec, d)
        if st:
            n_mem, n_max = st
            if n_mem >= n_max:
                parts.append(f"d = {d}: X of N = {n_max:,} ({planning._size(8 * n_max * d)}, no working copy) "
                             "held whole by the streamed search")
                continue
            big = sorted(n for n in spec.sizes_for(d) if n > n_mem)
            which = "all sizes" if len(big) == len(spec.sizes_for(d)) else f"sizes N > {n_mem:,} ({len(big)} of them)"
            if _sieved(spec, d):
                _, drawn = sieved_rows(d, n_max, nested_stream.held_bytes(d))
                how = (f"the rows far from the mean (about {SIEVE_KEPT:.0%}) priced and held where they fit, "
                       f"about {drawn / n_max:.1f} N rows drawn from keys per replicate")
            else:
                held = f"its first {n_mem:,} rows held, the rest" if n_mem else "X"
                how = f"{held} regenerated from keys on each of about {STREAM_PASSES + 2} passes per replicate"
            parts.append(f"d = {d}: {which} streamed (X of N = {n_max:,} is {planning._size(8 * n_max * d)}; "
                         f"{how}; on Ray, each replicate's blocks go to actors over the cluster's nodes)")
    if not parts:
        return ""
    return f"streamed (memory budget {planning._size(planning.memory_budget())}): " + "; ".join(parts)


@dataclass(frozen=True)
class NestedJob:
    """The units of a nested spec (see the module docstring): the runner's job contract."""

    spec: Spec

    unit_name = "trial"
    store_kind = "results"

    @property
    def name(self) -> str:
        return f"run {self.spec.run_id}"

    def _replicates(self, d: int) -> tuple[int, int]:
        """(replicates, replicates per unit) of dimension d: one K per d, the largest size's cell."""
        n_max = max(self.spec.sizes_for(d))
        return self.spec.replicates_for(d, n_max), planning.replicates_per_shard(self.spec, d, n_max)

    def units(self):
        # the costliest d first (largest X per replicate), so that workers end together
        for d in sorted(self.spec.dims, key=lambda d: -max(self.spec.sizes_for(d)) * d):
            total, step = self._replicates(d)
            for start in range(0, total, step):
                yield NestedShard(self.spec.distribution, d, start, min(start + step, total))

    def count(self) -> int:
        return sum(-(-total // step) for total, step in map(self._replicates, self.spec.dims))

    def total(self) -> int:
        return sum(len(self.spec.sizes_for(d)) for d in self.spec.dims) * self.spec.trials

    def size(self, unit: NestedShard) -> int:
        n_max = max(self.spec.sizes_for(unit.d))
        return len(self.spec.sizes_for(unit.d)) * planning.replicate_trials(self.spec, unit.start, unit.stop,
                                                                             unit.d, n_max)

    def estimate(self) -> planning.Estimate:
        spec = self.spec
        seconds = fixed = 0.0
        threads = nested_stream.pass_threads() if any(streamed_sizes(spec, d) for d in spec.dims) else 1
        peak = planning.BASE_BYTES
        for d in spec.dims:
            n_max = max(spec.sizes_for(d))
            # the cost model of mc_hull.stats.design (measured per nested replicate and per located query)
            R = spec.replicates_for(d, n_max)
            work = R * (design.NESTED_SET_SECONDS + design.NESTED_SET_ELEMENT_SECONDS * n_max * d)
            work += spec.trials * (design.NESTED_QUERY_SECONDS + design.NESTED_QUERY_ELEMENT_SECONDS * n_max * d)
            streamed = streamed_sizes(spec, d)
            if not streamed:   # X (translated in place) and the engine's frame copy of a prefix
                seconds += work
                peak = max(peak, planning.BASE_BYTES + 2 * 8 * n_max * d)
                continue
            n_mem = streamed[0]
            if _sieved(spec, d):   # kept rows priced and held; X drawn about once
                _, drawn = sieved_rows(d, n_max, nested_stream.held_bytes(d))
                part = SIEVE_WORK * work + R * planning.DRAW_SECONDS * drawn * d
            else:                  # every pass regenerates the rows beyond the held prefix
                part = work + R * STREAM_PASSES * planning.DRAW_SECONDS * (n_max - n_mem) * d
            # a model fitted on measured streamed replicates: not calibrated again
            part *= THREAD_COST if threads > 1 else 1.0
            seconds += part
            fixed += part
            held = 8 * n_mem * d + nested_stream.engine_bytes()
            peak = max(peak, planning.BASE_BYTES + held
                       + nested_stream.state_bytes(d, spec.k_for(d, n_max), len(spec.sizes_for(d))))
        return planning.Estimate(cells=len(spec.cells), trials=self.total(), shards=self.count(),
                                 cpu_seconds=seconds + self.count() * planning.SHARD_SECONDS,
                                 peak_bytes=peak, note=plan_note(spec), fixed_seconds=fixed, threads=threads)

    def spread(self, unit: NestedShard) -> bool:
        """True when the unit's X exceeds the memory budget: its blocks then go to the cluster's nodes."""
        return streamed_sizes(self.spec, unit.d) is not None

    def spread_bytes(self, unit: NestedShard) -> int:
        """Bytes of a spread replicate's X (float64, the largest size of its d)."""
        return 8 * int(max(self.spec.sizes_for(unit.d))) * int(unit.d)

    def compute(self, unit: NestedShard, place=None) -> dict[str, np.ndarray]:
        """Rows of every cell (d, N) of the unit, with an extra ``n`` column saying which.

        ``place`` (``mc_hull.distributed.blocks.placer``), for a streamed unit, spreads each replicate's
        blocks over actors on the cluster's nodes, every pass run there; the rows are the same.
        """
        spec = self.spec
        sizes = np.array(sorted(spec.sizes_for(unit.d)), dtype=np.int64)
        parts, passes = [], []
        streamed = streamed_sizes(spec, unit.d)
        if place is not None and streamed is None:   # placed by the runner, on its own budget's word
            streamed = (0, int(sizes[-1]))
        buffer = None if streamed else np.empty((int(sizes[-1]), unit.d), order="F")   # reused by each replicate
        for r in range(unit.start, unit.stop):
            progress.replicate(r - unit.start, unit.stop - unit.start)
            if streamed:   # X beyond the budget: its first rows held, the rest regenerated on each pass
                src = keyed_source(spec, unit.d, int(sizes[-1]), r)
                with place(src) if place is not None else contextlib.nullcontext(src) as points:
                    res = nested_stream.streamed_entry_sizes(points, src.queries(), sizes, solver=spec.solver,
                                                             tol=spec.tol, budget=nested_stream.held_bytes(unit.d))
                passes.append((res.passes, res.regenerated / int(sizes[-1])))
            else:
                X, Q = nested.replicate_data(spec, unit.d, sizes, r, out=buffer)
                res = nested.entry_sizes(X, Q, sizes, solver=spec.solver, tol=spec.tol, overwrite=True)
            parts.append(_rows(spec, res, r))
        cols = trial.concat(parts)            # each part guarded by the row builder
        order = np.lexsort((cols["query"], cols["replicate"], cols["n"]))
        cols = {name: col[order] for name, col in cols.items()}
        if passes:     # said by the runner per run (runner.PASSES), not stored
            cols[trial.PASSES] = np.array(passes, dtype=np.float64)
        return cols

    def committed(self, store, units) -> tuple[set, list[str]]:
        units = list(units)
        done, moved = store.committed(self.spec, [c for u in units for c in u.cells(self.spec)])
        return {u for u in units if all(c in done for c in u.cells(self.spec))}, moved

    def publish(self, store, unit: NestedShard, columns: dict[str, np.ndarray]) -> None:
        for shard in unit.cells(self.spec):
            mask = columns["n"] == shard.n
            store.write_shard(self.spec, shard, {name: columns[name][mask] for name in COLUMNS})


def _rows(spec: Spec, res: nested.EntrySizes, replicate: int) -> dict[str, np.ndarray]:
    """The trial rows of one replicate at every grid size: (L * K,) columns plus ``n``."""
    K, L = len(res.low), len(res.sizes)
    table = res.inside_table()                        # (K, L): 1, 0 or NaN
    value = np.where(table == 1, res.high_value[:, None], np.where(table == 0, res.low_value[:, None], np.nan))
    flat = table.T.ravel()
    return trial.rows(np.where(np.isnan(flat), -1, flat), value.T.ravel(), f"nested:{spec.solver}",
                      res.seconds / max(K * L, 1), np.tile(res.solves, L),
                      n=np.repeat(res.sizes, K), replicate=np.full(K * L, replicate, dtype=np.int32),
                      query=np.tile(np.arange(K, dtype=np.int32), L),
                      run_id=np.full(K * L, spec.run_id, dtype=object))


def entry_bounds(rows) -> dict:
    """Per trial (replicate, query) the bounds on T from a nested run's rows of one d.

    Parameters
    ----------
    rows : mapping of str -> array
        Columns ``n``, ``replicate``, ``query``, ``inside`` (float: 1, 0 or NaN).

    Returns
    -------
    dict of ndarray
        ``replicate``, ``query``, ``t_low`` (largest N outside, 0 if none) and
        ``t_high`` (smallest N inside, -1 if none).
    """
    n = np.asarray(rows["n"], dtype=np.int64)
    rep = np.asarray(rows["replicate"], dtype=np.int64)
    q = np.asarray(rows["query"], dtype=np.int64)
    inside = np.asarray(rows["inside"], dtype=np.float64)
    keys, inv = np.unique(np.stack([rep, q], axis=1), axis=0, return_inverse=True)
    inv = inv.ravel()
    t_low = np.zeros(len(keys), dtype=np.int64)
    t_high = np.full(len(keys), np.iinfo(np.int64).max)
    np.maximum.at(t_low, inv[inside == 0], n[inside == 0])
    np.minimum.at(t_high, inv[inside == 1], n[inside == 1])
    t_high[t_high == np.iinfo(np.int64).max] = -1
    return {"replicate": keys[:, 0], "query": keys[:, 1], "t_low": t_low, "t_high": t_high}

