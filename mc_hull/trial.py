"""Run one shard: draw training sets and queries from their keys, decide membership, return rows."""

from __future__ import annotations

import numpy as np

from . import seeding
from .plan import Shard
from .samplers import Sampler
from .solvers import STATUS_NAMES, get_solver
from .spec import Spec

#: Column order of the per-trial rows (the store adds the hive partition columns).
COLUMNS = ("run_id", "replicate", "query", "inside", "status", "method",
           "certificate_value", "solve_seconds", "rounds")
#: Columns added by ``measure = "distance"`` (:func:`mc_hull.hull_distance`, data units).
DISTANCE_COLUMNS = ("distance_low", "distance_high", "nn_distance")


def columns(spec: Spec) -> tuple[str, ...]:
    """The per-trial columns of a run with this spec."""
    return COLUMNS + DISTANCE_COLUMNS if spec.measure == "distance" else COLUMNS


def check_measure(spec: Spec) -> None:
    """Refuse (PlanError, one line) a distance run with a cell whose X must be streamed."""
    from .errors import PlanError
    from .plan import needs_streaming

    if spec.measure == "distance":
        big = [(d, n) for d, n in spec.cells if needs_streaming(n, d)]
        if big:
            raise PlanError(f"measure: distance needs X in memory; cell d = {big[0][0]}, N = {big[0][1]:,} "
                            f"is above the memory budget (streamed cells decide membership only)")


def distance_columns(X: np.ndarray, Q: np.ndarray, tol: float) -> dict[str, np.ndarray]:
    """``distance_low``, ``distance_high``, ``nn_distance`` (K,) of queries Q against X."""
    from .distance import distances

    res = distances(X, Q, tol=tol)
    return {"distance_low": res.low, "distance_high": res.high, "nn_distance": res.nn}


#: The certificate stored for an outside margin that overflowed (a lower bound on the true margin).
MARGIN_CAP = float(np.finfo(np.float64).max)


def guard_rows(cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The row builder's last check: no decided row without a finite certificate.

    An outside margin of +inf (a far query whose frame coordinate overflowed) is stored as
    :data:`MARGIN_CAP`, still a lower bound on the margin; any other decided row whose
    certificate is NaN or infinite becomes undecided (``inside`` NaN, method suffixed
    ``:nonfinite``), so it is reported as undecided, never counted.  The store refuses such
    rows too (:func:`mc_hull.store.results.to_table`).

    Parameters
    ----------
    cols : dict of str -> ndarray
        Trial columns with ``status`` (object: inside/outside/undecided), ``inside`` (float),
        ``certificate_value`` and ``method``, all of length B.  Changed in place and returned.
    """
    status = np.asarray(cols["status"], dtype=object)
    value = np.asarray(cols["certificate_value"], dtype=np.float64)
    decided = status != STATUS_NAMES[-1]
    cap = decided & (status == STATUS_NAMES[0]) & (value == np.inf)
    if cap.any():
        value = value.copy()
        value[cap] = MARGIN_CAP
        cols["certificate_value"] = value
    bad = decided & ~np.isfinite(value)
    if bad.any():
        status = status.copy()
        status[bad] = STATUS_NAMES[-1]
        cols["status"] = status
        inside = np.asarray(cols["inside"], dtype=np.float64).copy()
        inside[bad] = np.nan
        cols["inside"] = inside
        method = np.asarray(cols["method"], dtype=object).copy()
        method[bad] = [f"{m}:nonfinite" for m in method[bad]]
        cols["method"] = method
    return cols


def guard_status(status: np.ndarray, certificate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`guard_rows` for int status arrays (1 inside, 0 outside, -1 undecided): (status, certificate) copies."""
    status = np.array(status, copy=True)
    value = np.array(certificate, dtype=np.float64, copy=True)
    value[(status == 0) & (value == np.inf)] = MARGIN_CAP
    status[(status >= 0) & ~np.isfinite(value)] = -1
    return status, value


def training_set(sampler: Sampler, root: int, key: tuple[int, ...], n: int) -> np.ndarray:
    """The N training points of one replicate, drawn block by block from their keys.

    Returns
    -------
    ndarray, shape (n, d)
    """
    X = np.empty((n, sampler.d))
    for b, start, stop in seeding.train_blocks(n, seeding.block_rows(sampler.d)):
        X[start:stop] = sampler.random(stop - start, seeding.rng(root, key, seeding.TRAIN, b))
    return X


def replicate_data(spec: Spec, d: int, n: int, replicate: int):
    """Training set (n, d) and queries (K_r, d) of one replicate, reproducible from its key."""
    key = seeding.replicate_key(spec.distribution, d, n, replicate)
    sampler = spec.sampler(d).bind(seeding.rng(spec.seed, key, seeding.STRUCTURE))
    X = training_set(sampler, spec.seed, key, n)
    Q = sampler.random(spec.queries_in(replicate, d, n), seeding.rng(spec.seed, key, seeding.QUERY))
    return X, Q


def run_shard(spec: Spec, shard: Shard) -> dict[str, np.ndarray]:
    """Decide every trial of ``shard``: a pure function of (spec, shard).

    Returns
    -------
    dict of str -> ndarray
        Columns :func:`columns` (:data:`COLUMNS`, plus :data:`DISTANCE_COLUMNS` with
        ``measure = "distance"``), one entry per trial, ordered by (replicate, query).
        ``inside`` is a float array with NaN where undecided (stored as a nullable bool).
    """
    solver = get_solver(spec.solver)
    parts = []
    for r in range(shard.start, shard.stop):
        X, Q = replicate_data(spec, shard.d, shard.n, r)
        dec = solver.decide(X, Q, tol=spec.tol)
        k = Q.shape[0]
        inside = np.where(dec.status < 0, np.nan, dec.status.astype(np.float64))
        parts.append({
            "replicate": np.full(k, r, dtype=np.int32),
            "query": np.arange(k, dtype=np.int32),
            "inside": inside,
            "status": np.array([STATUS_NAMES[int(s)] for s in dec.status], dtype=object),
            "method": np.asarray(dec.method, dtype=object),
            "certificate_value": dec.certificate.astype(np.float64),
            "solve_seconds": dec.seconds.astype(np.float64),
            "rounds": dec.rounds.astype(np.int32),
        })
        if spec.measure == "distance":
            parts[-1].update(distance_columns(X, Q, spec.tol))
    cols = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    cols["run_id"] = np.full(len(cols["query"]), spec.run_id, dtype=object)
    return guard_rows({name: cols[name] for name in columns(spec)})
