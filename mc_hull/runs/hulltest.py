"""Hull-test runs: where X lives (memory, held, streamed), the job run serially or on Ray into the store,
sweeps over reductions and the paper-digits protocol (the job itself: :mod:`mc_hull.jobs.hulltest`)."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..jobs import plan as planning
from ..jobs import hulltest as hulltest_job
from ..jobs.hulltest import HullTestJob, HullTestSpec, shard_ranges
from ..jobs.plan import memory_budget, needs_streaming
from ..solvers.sourced import MappedSource, held, held_array
from ..solvers.sources import ArraySource
from ..stats import intervals as stats
from ..stats.distances import EPSILONS, QUANTILES, ratio_quantiles
from ..store import HullTestStore, sweep_schema
from .datasets import ArrayData, Reduction, check_pair, digits_split, fit
from .runner import pool_map, run, thread_map

#: Serial work per second of a hull test, in units of n_test * n_train * dims (measured on the
#: digits on one core: ~3e8 per second); with ``backend="auto"`` it gives the estimated seconds
#: that :func:`mc_hull.jobs.plan.choose_backend` weighs (a test of one shard stays serial).
WORK_PER_SECOND = 3e9 / planning.RAY_MIN_SECONDS
#: The paper-digits protocol: kept dimensions K per reduction of the 8x8 digits (crop and
#: subsample keep a k x k window or grid, so K is a square).
PAPER_DIGITS_LADDER = {
    "crop": (1, 4, 9, 16, 25, 36, 49, 64),
    "subsample": (1, 4, 9, 16, 25, 36, 49, 64),
    "pca": (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 25, 36, 49, 64),
}
PRESETS = ("paper-digits",)
#: Training sets of at most this many coordinates (128 MiB as float64) that fit the budget twice over in
#: float64 run the registry's solver on X held whole; larger ones run the source engines' passes over
#: X's blocks in its own dtype (float32 stays float32: half the memory, and no float64 frame copy of X).
MEMORY_ENGINE_MAX_ELEMS = 1 << 24


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


def distance_summary(status: np.ndarray, high: np.ndarray, nn: np.ndarray) -> dict:
    """Quantiles of distance/nn over the outside points and P(distance <= eps nn) over decided ones.

    Returns
    -------
    dict
        ``outside_measured``, ``dist_nn_q10`` .. ``dist_nn_q90`` (:data:`distance_stats.QUANTILES`),
        ``p_near_1pct``, ``p_near_10pct`` (inside points count as near: distance 0).
    """
    q = ratio_quantiles(status, high, nn)
    out = {"outside_measured": q.pop("outside")}
    out.update({f"dist_nn_q{round(100 * k):02d}": v for k, v in q.items()})
    decided = status >= 0
    for eps, name in zip(EPSILONS, ("p_near_1pct", "p_near_10pct")):
        near = (status[decided] == 1) | (high[decided] <= eps * nn[decided])
        out[name] = float(near.mean()) if decided.any() else float("nan")
    assert len(QUANTILES) == 5
    return out


def auto_backend(shape: tuple[int, int, int], address: str | None, workers: int | None) -> str:
    """``"serial"`` or ``"ray"`` by :func:`mc_hull.jobs.plan.choose_backend` for a test of ``shape``.

    ``shape`` is (n_test, n_train, dims) after the reduction.
    """
    n_test, n_train, dims = shape
    return planning.choose_backend(float(n_test) * n_train * dims / WORK_PER_SECOND, address=address,
                                   workers=workers, units=len(shard_ranges(n_test)))[0]


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


#: Units a driver computes side by side over blocks held by actors (measured: ``benchmarks/hulltest_overlap.py``).
UNITS_IN_FLIGHT = 2


def as_array_data(data) -> ArrayData:
    """``data`` as :class:`ArrayData`: a file source loaded whole (float64 values, its streamed digest kept aside)."""
    if isinstance(data, ArrayData):
        return data
    return ArrayData(np.asarray(data.load(), dtype=np.float64), None, data.uri, None)


def placement(n: int, d: int, itemsize: int, budget: int | None = None) -> str:
    """Where X lives for a hull test: ``"memory"``, ``"held"`` or ``"streamed"``.

    ``memory``: X and its float64 frame copy fit ``budget`` (``2 * 8 * n * d``, as
    :func:`mc_hull.jobs.plan.needs_streaming`) and ``n * d <= MEMORY_ENGINE_MAX_ELEMS``;
    ``held``: X in its own dtype (``itemsize`` bytes per value) fits the budget;
    ``streamed``: otherwise (read from its files on every pass).
    """
    budget = memory_budget() if budget is None else budget
    if not needs_streaming(n, d, budget) and n * d <= MEMORY_ENGINE_MAX_ELEMS:
        return "memory"
    return "held" if n * d * itemsize <= budget else "streamed"


def training_set(train, reduction: Reduction, seed: int, spread: bool = False):
    """``(train, X, place, fitted)``: the training data (ArrayData, or a file source left on disk), X as the
    job reads it (an array, a :func:`~mc_hull.solvers.sourced.held` or the file source), its
    placement, and the fitted reduction (None when X was never loaded into an ArrayData: no reduction).

    With ``spread`` (Ray: the blocks will be held over the cluster) a file source is left on disk.
    Raises InputError (nothing written) when X must be streamed but the run needs it whole (a reduction).
    """
    if not isinstance(train, ArrayData):
        place = placement(train.n, train.d, train.dtype.itemsize)
        if place == "streamed" and reduction.kind != "none":
            raise InputError(f"--reduce {reduction.label}: the training set ({train.n} x {train.d}) exceeds "
                             f"MC_HULL_MEMORY_BUDGET ({memory_budget() >> 20} MiB) and is streamed; a reduction "
                             "is fitted on X held whole: raise the budget or give reduced data with --reduce none")
        if place == "streamed" or (spread and place == "held" and reduction.kind == "none"):
            return train, train, place, None
        if place == "held" and reduction.kind == "none":
            return train, held(train, memory_budget()), place, None
        train = as_array_data(train)
    fitted = fit(reduction, train, seed)
    X = fitted.apply(train.values)
    place = placement(*X.shape, X.dtype.itemsize, budget=max(memory_budget(), X.nbytes))  # already held
    return train, (X if place == "memory" else held(held_array(X), memory_budget())), place, fitted


def run_hull_test(train, test, reduction: Reduction, out: str, spec: HullTestSpec | None = None, *,
                  backend: str = "auto", address: str | None = None, workers: int | None = None, pool=None,
                  log=None) -> HullTestResult:
    """Test every row of ``test`` against the hull of ``train`` after ``reduction``; write rows to ``out``.

    Everything is validated (options, dimensions, the reduction fitted on the
    training set only) before anything is written.  Test points are cut into
    shards of :data:`mc_hull.jobs.hulltest.SHARD_POINTS`; each shard's rows go to one Parquet file
    named by the test id and range, so a re-run skips committed shards and
    never duplicates a row.

    Parameters
    ----------
    train, test : ArrayData or mc_hull.runs.filesource.FileSource
        Samples of shape (n_train, d) and (n_test, d).  Where X lives depends on its size only
        (:func:`placement`), so a file source runs exactly like the same array: small sets on
        the registry's solver in float64; larger ones by passes over blocks of X held in its
        own dtype, or streamed from its files when that exceeds ``MC_HULL_MEMORY_BUDGET``
        (:func:`decide_points`; held and streamed give the same rows).  Test sets are loaded.
    reduction : Reduction
    out : str
        Output root (files under ``<out>/_hulltest``).
    spec : HullTestSpec, optional
        Seed, solver, tolerance and measure (validated when built); default ``HullTestSpec()``.
    backend : {"auto", "serial", "ray"}
    pool : mc_hull.distributed.pool.Pool, optional
        Reuse this pool's Ray connection and actors (a sweep).

    Returns
    -------
    HullTestResult
        With ``spec.measure == "distance"`` each point also records ``distance_low``,
        ``distance_high`` and ``nn_distance``, summarised by :func:`distance_summary`.
    """
    log = log or sys.stderr
    t0 = time.perf_counter()
    spec = spec or HullTestSpec()
    test = as_array_data(test)
    if not isinstance(train, ArrayData):
        if train.d != test.values.shape[1]:
            raise InputError(f"dimension mismatch: train has d = {train.d}, test has d = {test.values.shape[1]}")
    else:
        check_pair(train, test)
        if train.image_shape is None and test.image_shape is not None:
            train = ArrayData(train.values, test.image_shape, train.source, train.file_sha256)
    shape = (train.n, train.d) if not isinstance(train, ArrayData) else train.values.shape
    if backend == "auto":
        backend = auto_backend((len(test.values), *shape), address, workers)
    train, X, place, fitted = training_set(train, reduction, spec.seed, spread=backend == "ray")
    Q = test.values if fitted is None else fitted.apply(test.values)
    n_train, dims = (X.shape if isinstance(X, np.ndarray) else (X.n, X.d))
    if place != "memory":
        if not isinstance(X, (np.ndarray, ArraySource, MappedSource)):
            what, size = f"read from {train.uri} ({len(train.files)} file(s))", X.nbytes()
            if place == "streamed":
                what += " on every pass"
        elif hasattr(X, "Y"):
            what, size = "held in memory in float64 frame coordinates, mapped once", X.Y.nbytes
        else:
            what, size = f"held in memory as {X.X.dtype.name}, mapped per pass", X.X.nbytes
        print(f"mc-hull: training set {n_train} x {dims} ({size / 2**20:.0f} MiB): {what}, "
              f"blocks of {X.block_rows} rows, each pass serving a batch of up to {hulltest_job.SHARD_POINTS} test points "
              f"(MC_HULL_MEMORY_BUDGET {memory_budget() >> 20} MiB)", file=log)
    spec = spec.bind(train, test, reduction, engine="memory" if place == "memory" else "source")
    test_id = spec.test_id
    store = HullTestStore(out)
    store.prepare()  # the first write: everything above only read and checked
    if place != "memory" and backend == "ray":     # one training set over the cluster: blocks in holders
        from ..distributed.blocks import ActorSource

        t1 = time.perf_counter()
        loader = train if place == "streamed" or not isinstance(train, ArrayData) else X
        spread = ActorSource(getattr(loader, "raw", loader), holders=workers, address=address)
        print(f"mc-hull: training set: {spread.describe()}, placed in {time.perf_counter() - t1:.1f} s; "
              f"each pass goes to every holder, the ranges are decided on the driver", file=log)
        # two units side by side on the driver: one unit's masters run while the other's pass is on the holders
        X, mapper, own, cluster = spread, thread_map(UNITS_IN_FLIGHT), spread, spread.describe()
    else:
        cluster = None
        mapper, own = pool_map(backend, address, workers, pool)
    job = HullTestJob(spec, X, Q)
    try:
        rep = run(job, out, map=mapper, progress=job.count() > 1, log=log)
    finally:
        if own is not None:
            own.close()
    status, table = _stored_status(store, test_id, len(Q))
    inside, undecided, fraction, low, high = summarize(status)
    dist = None
    if spec.measure == "distance":
        dist = distance_summary(status, table.column("distance_high").to_numpy(zero_copy_only=False),
                                table.column("nn_distance").to_numpy(zero_copy_only=False))
    result = HullTestResult(test_id=test_id, reduction=reduction.label, k=reduction.k, dims=dims,
                            n_train=n_train, n_test=len(Q), inside=inside, undecided=undecided,
                            fraction=fraction, ci_low=low, ci_high=high, seconds=time.perf_counter() - t0,
                            computed_shards=rep.computed, skipped_shards=rep.skipped, backend=backend,
                            distance=dist)
    store.write_record(test_id, {
        "test_id": test_id, "train": _describe(train), "test": _describe(test), "reduce": reduction.label,
        "dims": dims, "seed": spec.seed, "solver": spec.solver_name, "tol": spec.tol,
        "n_train": n_train, "n_test": len(Q), "inside": inside, "undecided": undecided,
        "fraction": fraction, "ci_low": low, "ci_high": high, "level": stats.LEVEL,
        "shard_points": hulltest_job.SHARD_POINTS, "seconds": result.seconds, "backend": backend,
        **({"placement": place} if place != "memory" else {}),
        **({"cluster": cluster} if cluster else {}),
        **({"measure": spec.measure, "distance": dist} if dist is not None else {})})
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


def _describe(data) -> dict:
    if not isinstance(data, ArrayData):
        return data.describe()
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


def run_sweep(train: ArrayData, test: ArrayData, ladder: dict[str, tuple[int, ...]], out: str,
              spec: HullTestSpec | None = None, *, name: str, backend: str = "auto",
              address: str | None = None, workers: int | None = None, log=None):
    """Run a hull test per (reduction, K) of ``ladder`` and publish one sweep table.

    Returns
    -------
    table : pyarrow.Table
        One row per (reduction, K) in :data:`mc_hull.store.SWEEP_SCHEMA`.
    sweep_id : str
    seconds : float
    """
    import pyarrow as pa

    t0 = time.perf_counter()
    spec = spec or HullTestSpec()
    train, test = as_array_data(train), as_array_data(test)
    check_pair(train, test)
    reductions = check_ladder(ladder, train)
    ids = [spec.bind(train, test, red).test_id for red in reductions]
    sweep_id = hashlib.sha256(json.dumps([name, ids]).encode()).hexdigest()[:16]
    if backend == "auto":
        backend = auto_backend((*test.values.shape[:1], *train.values.shape), address, workers)
    pool = None
    if backend == "ray":
        from ..distributed.pool import Pool  # one Ray connection and one set of actors for the whole sweep

        pool = Pool(address, workers)
    rows = []
    try:
        for red in reductions:
            res = run_hull_test(train, test, red, out, spec, backend=backend, address=address,
                                workers=workers, pool=pool, log=log)
            rows.append(res.row())
    finally:
        if pool is not None:
            pool.close()
    seconds = time.perf_counter() - t0
    table = pa.Table.from_pylist(rows, schema=sweep_schema(spec.measure))
    HullTestStore(out).write_sweep(sweep_id, table, {
        "name": name, "sweep_id": sweep_id, "train": _describe(train), "test": _describe(test),
        "ladder": {k: list(v) for k, v in ladder.items()}, "seed": spec.seed, "solver": spec.solver_name,
        "tol": spec.tol, "seconds": seconds, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return table, sweep_id, seconds


def paper_digits(out: str, spec: HullTestSpec | None = None, *, ladder: dict[str, tuple[int, ...]] | None = None,
                 **run_options):
    """The paper's pixel-space protocol on the 8x8 digits: :func:`run_sweep` over :data:`PAPER_DIGITS_LADDER`.

    ``run_options`` are :func:`run_sweep`'s backend, address, workers and log.
    """
    spec = spec or HullTestSpec()
    train, test = digits_split(spec.seed)
    return run_sweep(train, test, ladder or PAPER_DIGITS_LADDER, out, spec, name="paper-digits", **run_options)
