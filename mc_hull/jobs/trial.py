"""Trial rows: the one row builder (one status encoding), and the rows of one Monte Carlo shard.

Every job's compute returns rows built here: :func:`rows` (and :func:`decision_rows` for a
solver's :class:`~mc_hull.solvers.Decisions`) with ``status`` as int8, 1 inside, 0 outside, -1
undecided; the store turns it into its stored columns (``inside``, the status name).

A shard's training sets come from the keyed draw (:func:`mc_hull.samplers.keyed_source`).  When
``N * d * 8`` bytes exceed the memory budget (:func:`mc_hull.jobs.plan.needs_streaming`), X is never
materialised: the keyed source regenerates any block from its key, in any order, on any worker,
and :class:`mc_hull.solvers.stream.StreamSolver` decides the queries against it with the same
frame and certificates as every solver.  Memory is then one block (at most 2^26 coordinates,
512 MiB) and its frame copy, plus the working sets of a batch of queries sized to a quarter of
``MC_HULL_MEMORY_BUDGET`` (the README's Performance section has the reach: d = 20, N = 10^7 ..
10^9 and d = 4096, N = 70,000); block ranges of a pass are independent, so a ``map`` over Ray
actors (``mc_hull.distributed.pool.Pool.map``) divides a pass by the CPUs it has.
"""

from __future__ import annotations

import contextlib

import numpy as np

from .. import progress
from ..distance import distances
from ..errors import PlanError
from .plan import Shard, memory_budget, needs_streaming
from ..samplers import keyed_source
from ..solvers import get_solver
from ..solvers.stream import StreamSolver
from ..spec import Spec

#: The columns of a Monte Carlo shard's rows (the store adds ``inside`` and the hive partition columns).
COLUMNS = ("run_id", "replicate", "query", "status", "method", "certificate_value", "solve_seconds", "rounds")
#: Key of a unit's columns holding its streamed replicates' (passes, rows drawn / N): the runner says
#: them per run and never stores them.
PASSES = "_passes"
#: Columns added by ``measure = "distance"`` (:func:`mc_hull.hull_distance`, data units).
DISTANCE_COLUMNS = ("distance_low", "distance_high", "nn_distance")


#: The certificate stored for an outside margin that overflowed (a lower bound on the true margin).
MARGIN_CAP = float(np.finfo(np.float64).max)


def guard_rows(cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The row builder's last check: no decided row without a finite certificate.

    An outside margin of +inf (a far query whose frame coordinate overflowed) is stored as
    :data:`MARGIN_CAP`, still a lower bound on the margin; any other decided row whose
    certificate is NaN or infinite becomes undecided (method suffixed ``:nonfinite``), so it is
    reported as undecided, never counted.  The store refuses such rows too
    (:func:`mc_hull.store.results.to_table`).

    Parameters
    ----------
    cols : dict of str -> ndarray
        Rows with ``status`` (int8: 1 inside, 0 outside, -1 undecided), ``certificate_value`` and
        ``method``, all of length B.  Changed in place and returned.
    """
    status = np.asarray(cols["status"])
    value = np.asarray(cols["certificate_value"], dtype=np.float64)
    cap = (status == 0) & (value == np.inf)
    if cap.any():
        value = value.copy()
        value[cap] = MARGIN_CAP
        cols["certificate_value"] = value
    bad = (status >= 0) & ~np.isfinite(value)
    if bad.any():
        status = status.copy()
        status[bad] = -1
        cols["status"] = status
        method = np.asarray(cols["method"], dtype=object).copy()
        method[bad] = [f"{m}:nonfinite" for m in method[bad]]
        cols["method"] = method
    return cols


def rows(status, certificate, method, seconds, rounds, **keys) -> dict[str, np.ndarray]:
    """The one row builder: ``keys`` (replicate, query, n, ...) beside one decision per row, guarded
    (:func:`guard_rows`: no decided row without a finite certificate).

    Parameters
    ----------
    status : array_like, shape (m,)
        1 inside, 0 outside, -1 undecided (stored as int8: the one status encoding).
    certificate, seconds : array_like, shape (m,)
        Certificate value (residual or margin over the data scale, NaN if undecided) and seconds.
    method : str or array_like of str, shape (m,)
    rounds : array_like of int, shape (m,)
    **keys : array_like, shape (m,)

    Returns
    -------
    dict of str -> ndarray, shape (m,)
    """
    status = np.asarray(status, dtype=np.int8)
    m = status.shape[0]
    return guard_rows({**keys, "status": status,
            "method": np.broadcast_to(np.asarray(method, dtype=object), (m,)).copy(),
            "certificate_value": np.asarray(certificate, dtype=np.float64),
            "solve_seconds": np.broadcast_to(np.asarray(seconds, dtype=np.float64), (m,)).copy(),
            "rounds": np.asarray(rounds, dtype=np.int32)})


def decision_rows(dec, **keys) -> dict[str, np.ndarray]:
    """:func:`rows` of a solver's Decisions (``status``, ``certificate``, ``method``, ``seconds``, ``rounds``)."""
    return rows(dec.status, dec.certificate, dec.method, dec.seconds, dec.rounds, **keys)


def concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The rows of several parts, one after another."""
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def undecided(columns: dict[str, np.ndarray]) -> int:
    """Undecided rows of a job's columns."""
    return int(np.sum(np.asarray(columns["status"]) < 0))


def columns(spec: Spec) -> tuple[str, ...]:
    """The per-trial columns of a run with this spec."""
    return COLUMNS + DISTANCE_COLUMNS if spec.measure == "distance" else COLUMNS


def check_measure(spec: Spec) -> None:
    """Refuse (PlanError, one line) a distance run with a cell whose X must be streamed."""
    if spec.measure == "distance":
        big = [(d, n) for d, n in spec.cells if needs_streaming(n, d)]
        if big:
            raise PlanError(f"measure: distance needs X in memory; cell d = {big[0][0]}, N = {big[0][1]:,} "
                            f"is above the memory budget (streamed cells decide membership only)")


def distance_columns(X: np.ndarray, Q: np.ndarray, tol: float) -> dict[str, np.ndarray]:
    """``distance_low``, ``distance_high``, ``nn_distance`` (K,) of queries Q against X."""
    res = distances(X, Q, tol=tol)
    return {"distance_low": res.low, "distance_high": res.high, "nn_distance": res.nn}


def stream_solver(map=None, ranges: int = 1) -> StreamSolver:
    """The streaming solver with a quarter of the memory budget for its working sets."""
    return StreamSolver(budget=memory_budget() // 4, map=map, ranges=ranges, fallbacks=())


def run_shard(spec: Spec, shard: Shard, *, map=None, ranges: int = 1, place=None) -> dict[str, np.ndarray]:
    """Decide every trial of ``shard``: a pure function of (spec, shard).

    X in memory, or streamed from its keys when it exceeds the memory budget (``map`` and
    ``ranges`` then spread each pass; a streamed X has no distance measure).  ``place``, when given,
    turns a streamed replicate's keyed source into a context manager over a placed source
    (``mc_hull.distributed.blocks.placer``: its blocks held by actors over the cluster); the answers
    are the same.

    Returns
    -------
    dict of str -> ndarray
        Columns :func:`columns`, one entry per trial, ordered by (replicate, query).
    """
    # placed by the runner, which decided on its own budget: spread even where this process's budget differs
    streamed = place is not None or needs_streaming(shard.n, shard.d)
    if streamed:
        check_measure(spec)    # refused, never dropped
    solver = stream_solver(map, ranges) if streamed else get_solver(spec.solver)
    parts = []
    for r in range(shard.start, shard.stop):
        progress.replicate(r - shard.start, shard.stop - shard.start)
        src = keyed_source(spec, shard.d, shard.n, r)
        X, Q = (src if streamed else src.training_set()), src.queries()
        with place(src) if streamed and place is not None else contextlib.nullcontext(X) as points:
            dec = solver.decide(points, Q, tol=spec.tol)
        k = Q.shape[0]
        parts.append(decision_rows(dec, replicate=np.full(k, r, dtype=np.int32), query=np.arange(k, dtype=np.int32)))
        if spec.measure == "distance":
            parts[-1].update(distance_columns(X, Q, spec.tol))
    cols = concat(parts)
    cols["run_id"] = np.full(len(cols["query"]), spec.run_id, dtype=object)
    return guard_rows({name: cols[name] for name in columns(spec)})
