"""Test every point of a test set against its training set's convex hull, serially or on Ray, into the store."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass

import numpy as np

from . import stats
from .datasets import ArrayData, Reduction, check_pair, digits_split, fit
from .errors import InputError
from .membership import decide
from .runner import pool_map, run
from .solvers import check_solver_name
from .solvers.certificates import check_tol
from .spec import MEASURES

#: Test points per shard (one Parquet file, one Ray task).
SHARD_POINTS = 512
#: With ``backend="auto"``, a test runs on Ray when n_test * n_train * dims reaches this (about ten
#: seconds of serial work on one core, measured on the digits: ~3e8 per second) and it has two or
#: more shards; smaller tests run serially, since starting Ray costs several seconds.
RAY_MIN_WORK = 3e9
#: The paper-digits protocol: kept dimensions K per reduction of the 8x8 digits (crop and
#: subsample keep a k x k window or grid, so K is a square).
PAPER_DIGITS_LADDER = {
    "crop": (1, 4, 9, 16, 25, 36, 49, 64),
    "subsample": (1, 4, 9, 16, 25, 36, 49, 64),
    "pca": (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 25, 36, 49, 64),
}
PRESETS = ("paper-digits",)


@dataclass
class HullTestResult:
    """Summary of one hull test (``inside`` counts decided test points only)."""

    test_id: str
    reduction: str
    k: int | None
    dims: int
    n_train: int
    n_test: int
    inside: int
    undecided: int
    fraction: float
    ci_low: float
    ci_high: float
    seconds: float
    computed_shards: int
    skipped_shards: int
    backend: str
    distance: dict | None = None

    def row(self) -> dict:
        """A row of :data:`mc_hull.store.SWEEP_SCHEMA` (plus the distance summary when measured)."""
        return {"reduction": self.reduction.split(":")[0], "K": self.k if self.k is not None else self.dims,
                "dims": self.dims, "n_train": self.n_train, "n_test": self.n_test, "inside": self.inside,
                "undecided": self.undecided, "fraction": self.fraction, "ci_low": self.ci_low,
                "ci_high": self.ci_high, "seconds": self.seconds, "test_id": self.test_id,
                **(self.distance or {})}


def decide_points(X: np.ndarray, Q: np.ndarray, *, tol: float, solver: str,
                  measure: str = "membership") -> dict[str, np.ndarray]:
    """Certified decisions for one shard of test points (and their distances with ``measure="distance"``).

    Parameters
    ----------
    X : ndarray, shape (N, d)
    Q : ndarray, shape (B, d)

    Returns
    -------
    dict
        ``status`` int8 (B,) 1/0/-1, ``certificate_value`` float (B,) (residual or
        margin over the data scale, NaN if undecided), ``method`` str (B,); with
        ``measure="distance"`` also ``distance_low``, ``distance_high``, ``nn_distance``
        (B,) from :func:`mc_hull.distance.distances`.
    """
    from .trial import guard_status

    dec = decide(X, Q, tol=tol, solver=solver)
    status, value = guard_status(np.asarray(dec.status, dtype=np.int8), dec.certificate)
    out = {"status": status,
           "certificate_value": value,
           "method": np.asarray(dec.method, dtype=str)}
    if measure == "distance":
        from .trial import distance_columns

        out.update(distance_columns(X, Q, tol))
    return out


def shard_ranges(n: int, size: int | None = None) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``0..n`` in pieces of at most ``size`` (default :data:`SHARD_POINTS`)."""
    size = size or SHARD_POINTS
    return [(s, min(s + size, n)) for s in range(0, n, size)]


@dataclass(frozen=True, order=True)
class PointRange:
    """Test points ``start .. stop-1`` of one hull test: a unit of a :class:`HullTestJob`."""

    test_id: str
    start: int
    stop: int

    @property
    def key(self) -> str:
        return f"{self.test_id}/{self.start}-{self.stop}"


class HullTestJob:
    """The test points of one hull test, in ranges of :data:`SHARD_POINTS`, against one training set.

    Parameters
    ----------
    test_id : str
    X : ndarray, shape (N, d)
        Training set after the reduction.
    Q : ndarray, shape (B, d)
        Test set after the reduction.
    tol : float
    solver : str
    measure : {"membership", "distance"}
    """

    unit_name = "point"

    def __init__(self, test_id: str, X: np.ndarray, Q: np.ndarray, *, tol: float, solver: str,
                 measure: str = "membership"):
        self.test_id, self.X, self.Q, self.tol, self.solver = test_id, X, Q, tol, solver
        self.measure = measure

    @property
    def name(self) -> str:
        return f"hull-test {self.test_id}"

    def units(self):
        return (PointRange(self.test_id, a, b) for a, b in shard_ranges(len(self.Q)))

    def count(self) -> int:
        return -(-len(self.Q) // SHARD_POINTS)

    def total(self) -> int:
        return len(self.Q)

    def size(self, unit: PointRange) -> int:
        return unit.stop - unit.start

    def compute(self, unit: PointRange) -> dict[str, np.ndarray]:
        return decide_points(self.X, self.Q[unit.start:unit.stop], tol=self.tol, solver=self.solver,
                             measure=self.measure)

    def open_store(self, out: str):
        from .store import HullTestStore

        return HullTestStore(out)

    def committed(self, store, units) -> tuple[set, list[str]]:
        units = list(units)
        done = store.committed_points(self.test_id, [(u.start, u.stop) for u in units])
        return {u for u in units if (u.start, u.stop) in done}, []

    def publish(self, store, unit: PointRange, columns: dict[str, np.ndarray]) -> None:
        store.write_points(self.test_id, unit.start, unit.stop, columns)


def test_key(train: ArrayData, test: ArrayData, reduction: Reduction, *, seed: int, solver: str,
             tol: float, measure: str = "membership") -> str:
    """The 16-hex-digit id of a hull test: a hash of everything its rows depend on.

    ``measure`` enters the hash only when it is not ``"membership"``, so membership
    tests keep their ids.
    """
    key = {"train": train.content_sha256, "test": test.content_sha256, "reduce": reduction.label,
           "image_shape": train.image_shape, "solver": check_solver_name(solver), "tol": float(tol),
           "shard_points": SHARD_POINTS,
           "seed": int(seed) if reduction.kind == "random-projection" else None}
    if measure != "membership":
        key["measure"] = measure
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def check_options(solver: str, tol: float, measure: str = "membership") -> None:
    """Raise a one-line error for an unknown solver or measure, or a tolerance outside [TOL_MIN, TOL_MAX]."""
    check_solver_name(solver)
    check_tol(tol, "--tol")
    if measure not in MEASURES:
        raise InputError(f"--measure: must be one of {', '.join(MEASURES)}, got {measure!r}")


def distance_summary(status: np.ndarray, high: np.ndarray, nn: np.ndarray) -> dict:
    """Quantiles of distance/nn over the outside points and P(distance <= eps nn) over decided ones.

    Returns
    -------
    dict
        ``outside_measured``, ``dist_nn_q10`` .. ``dist_nn_q90`` (:data:`distance_stats.QUANTILES`),
        ``p_near_1pct``, ``p_near_10pct`` (inside points count as near: distance 0).
    """
    from .distance_stats import EPSILONS, QUANTILES, ratio_quantiles

    q = ratio_quantiles(status, high, nn)
    out = {"outside_measured": q.pop("outside")}
    out.update({f"dist_nn_q{round(100 * k):02d}": v for k, v in q.items()})
    decided = status >= 0
    for eps, name in zip(EPSILONS, ("p_near_1pct", "p_near_10pct")):
        near = (status[decided] == 1) | (high[decided] <= eps * nn[decided])
        out[name] = float(near.mean()) if decided.any() else float("nan")
    assert len(QUANTILES) == 5
    return out


def choose_backend(backend: str, shape: tuple[int, int, int], address: str | None, workers: int | None) -> str:
    """``"serial"`` or ``"ray"``; ``"auto"`` picks Ray for an address, workers or a large test.

    ``shape`` is (n_test, n_train, dims) after the reduction.
    """
    if backend != "auto":
        return backend
    n_test, n_train, dims = shape
    large = n_test > SHARD_POINTS and float(n_test) * n_train * dims >= RAY_MIN_WORK
    return "ray" if address or workers or large else "serial"


def summarize(status: np.ndarray, level: float = stats.LEVEL) -> tuple[int, int, float, float, float]:
    """(inside, undecided, fraction, ci_low, ci_high) of a status array of shape (n,).

    The fraction and its Wilson interval are over decided points: given the
    training set, test points are independent, so the plain Wilson interval applies.
    """
    inside = int(np.sum(status == 1))
    undecided = int(np.sum(status < 0))
    decided = len(status) - undecided
    low, high = stats.wilson(inside, decided, level)
    return inside, undecided, inside / decided if decided else float("nan"), float(low), float(high)


def run_hull_test(train: ArrayData, test: ArrayData, reduction: Reduction, out: str, *, seed: int = 0,
                  solver: str = "auto", tol: float = 1e-9, backend: str = "auto", address: str | None = None,
                  workers: int | None = None, pool=None, log=None, measure: str = "membership") -> HullTestResult:
    """Test every row of ``test`` against the hull of ``train`` after ``reduction``; write rows to ``out``.

    Everything is validated (options, dimensions, the reduction fitted on the
    training set only) before anything is written.  Test points are cut into
    shards of :data:`SHARD_POINTS`; each shard's rows go to one Parquet file
    named by the test id and range, so a re-run skips committed shards and
    never duplicates a row.

    Parameters
    ----------
    train, test : ArrayData
        Samples of shape (n_train, d) and (n_test, d).
    reduction : Reduction
    out : str
        Output root (files under ``<out>/_hulltest``).
    backend : {"auto", "serial", "ray"}
    pool : mc_hull.distributed.Pool, optional
        Reuse this pool's Ray connection and actors (a sweep).
    measure : {"membership", "distance"}
        ``"distance"`` also records each point's ``distance_low``, ``distance_high``
        and ``nn_distance`` and summarises distance/nn (:func:`distance_summary`).

    Returns
    -------
    HullTestResult
    """
    from .store import HullTestStore

    log = log or sys.stderr
    t0 = time.perf_counter()
    check_options(solver, tol, measure)
    check_pair(train, test)
    if train.image_shape is None and test.image_shape is not None:
        train = ArrayData(train.values, test.image_shape, train.source, train.file_sha256)
    fitted = fit(reduction, train, seed)
    X, Q = fitted.apply(train.values), fitted.apply(test.values)
    test_id = test_key(train, test, reduction, seed=seed, solver=solver, tol=tol, measure=measure)
    store = HullTestStore(out)
    store.prepare()  # the first write: everything above only read and checked
    backend = choose_backend(backend, (len(Q), len(X), X.shape[1]), address, workers)
    job = HullTestJob(test_id, X, Q, tol=tol, solver=solver, measure=measure)
    mapper, own = pool_map(backend, address, workers, pool)
    try:
        rep = run(job, out, map=mapper, progress=job.count() > 1, log=log)
    finally:
        if own is not None:
            own.close()
    status, table = _stored_status(store, test_id, len(Q))
    inside, undecided, fraction, low, high = summarize(status)
    dist = None
    if measure == "distance":
        dist = distance_summary(status, table.column("distance_high").to_numpy(zero_copy_only=False),
                                table.column("nn_distance").to_numpy(zero_copy_only=False))
    result = HullTestResult(test_id=test_id, reduction=reduction.label, k=reduction.k, dims=X.shape[1],
                            n_train=len(X), n_test=len(Q), inside=inside, undecided=undecided,
                            fraction=fraction, ci_low=low, ci_high=high, seconds=time.perf_counter() - t0,
                            computed_shards=rep.computed, skipped_shards=rep.skipped, backend=backend,
                            distance=dist)
    store.write_record(test_id, {
        "test_id": test_id, "train": _describe(train), "test": _describe(test), "reduce": reduction.label,
        "dims": X.shape[1], "seed": seed, "solver": check_solver_name(solver), "tol": tol,
        "n_train": len(X), "n_test": len(Q), "inside": inside, "undecided": undecided,
        "fraction": fraction, "ci_low": low, "ci_high": high, "level": stats.LEVEL,
        "shard_points": SHARD_POINTS, "seconds": result.seconds, "backend": backend,
        **({"measure": measure, "distance": dist} if dist is not None else {})})
    return result


def _stored_status(store, test_id: str, n: int) -> tuple[np.ndarray, "object"]:
    """Status (n,) and the rows read back from the committed files (so the summary is what the store holds)."""
    table = store.points(test_id)
    if table.num_rows != n or table.column("index").to_numpy().tolist() != list(range(n)):
        raise RuntimeError(f"hull-test {test_id}: store holds {table.num_rows} rows, expected {n}")
    inside = table.column("inside").to_numpy(zero_copy_only=False)
    undecided = table.column("undecided").to_numpy(zero_copy_only=False)
    status = np.where(undecided, -1, np.where(inside == True, 1, 0)).astype(np.int8)  # noqa: E712 - object array
    return status, table


def _describe(data: ArrayData) -> dict:
    n, d = data.values.shape
    return {"source": data.source, "file_sha256": data.file_sha256, "content_sha256": data.content_sha256,
            "n": n, "d": d, "image_shape": list(data.image_shape) if data.image_shape else None}


# -- sweeps -------------------------------------------------------------------------------
def check_ladder(ladder: dict[str, tuple[int, ...]], train: ArrayData) -> list[Reduction]:
    """The reductions of a sweep, each validated against ``train`` before anything runs."""
    reductions = [Reduction(kind, int(k)) for kind, ks in ladder.items() for k in ks]
    for red in reductions:
        fit(red, train)
    return reductions


def run_sweep(train: ArrayData, test: ArrayData, ladder: dict[str, tuple[int, ...]], out: str, *,
              name: str, seed: int = 0, solver: str = "auto", tol: float = 1e-9, backend: str = "auto",
              address: str | None = None, workers: int | None = None, log=None, measure: str = "membership"):
    """Run a hull test per (reduction, K) of ``ladder`` and publish one sweep table.

    Returns
    -------
    table : pyarrow.Table
        One row per (reduction, K) in :data:`mc_hull.store.SWEEP_SCHEMA`.
    sweep_id : str
    seconds : float
    """
    from .store import HullTestStore, sweep_schema

    import pyarrow as pa

    t0 = time.perf_counter()
    check_options(solver, tol, measure)
    check_pair(train, test)
    reductions = check_ladder(ladder, train)
    ids = [test_key(train, test, red, seed=seed, solver=solver, tol=tol, measure=measure) for red in reductions]
    sweep_id = hashlib.sha256(json.dumps([name, ids]).encode()).hexdigest()[:16]
    backend = choose_backend(backend, (*test.values.shape[:1], *train.values.shape), address, workers)
    pool = None
    if backend == "ray":
        from .distributed import Pool  # one Ray connection and one set of actors for the whole sweep

        pool = Pool(address, workers)
    rows = []
    try:
        for red in reductions:
            res = run_hull_test(train, test, red, out, seed=seed, solver=solver, tol=tol, backend=backend,
                                address=address, workers=workers, pool=pool, log=log, measure=measure)
            rows.append(res.row())
    finally:
        if pool is not None:
            pool.close()
    seconds = time.perf_counter() - t0
    table = pa.Table.from_pylist(rows, schema=sweep_schema(measure))
    HullTestStore(out).write_sweep(sweep_id, table, {
        "name": name, "sweep_id": sweep_id, "train": _describe(train), "test": _describe(test),
        "ladder": {k: list(v) for k, v in ladder.items()}, "seed": seed, "solver": check_solver_name(solver),
        "tol": tol, "seconds": seconds, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return table, sweep_id, seconds


def paper_digits(out: str, *, seed: int = 0, ladder: dict[str, tuple[int, ...]] | None = None, **options):
    """The paper's pixel-space protocol on the 8x8 digits: :func:`run_sweep` over :data:`PAPER_DIGITS_LADDER`."""
    train, test = digits_split(seed)
    return run_sweep(train, test, ladder or PAPER_DIGITS_LADDER, out, name="paper-digits", seed=seed, **options)
