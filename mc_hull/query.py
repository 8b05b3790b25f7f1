"""Estimates from a results store: per-cell counts aggregated in DuckDB, intervals, exact curves."""

from __future__ import annotations

import functools
import math
import re

import duckdb
import numpy as np
import pyarrow as pa

from . import stats, theory
from .errors import McHullError, StoreError
from .samplers import SAMPLERS, get_sampler
from .store import ResultStore

#: Columns of :func:`cell_estimates`, in order.
CELL_COLUMNS = ["distribution", "d", "n", "params", "d_intrinsic", "d_affine", "runs", "replicates", "trials", "inside", "undecided",
                "p_hat", "ci_low", "ci_high", "wilson_low", "wilson_high", "design_effect",
                "bf_threshold", "exact", "z"]
INTERVAL_NOTE = ("ci_low/ci_high: 99% cluster-robust interval (Wilson at the effective sample size "
                 "trials / design effect, with a Student-t critical value on replicates - 1 degrees of "
                 "freedom), valid when queries share a training set; wilson_low/wilson_high: plain 99% "
                 "Wilson interval treating trials as independent (too narrow when design_effect > 1)")


def connect(out: str, *, run_id: str | None = None, check: bool = True):
    """A DuckDB connection with a ``trials`` view over the store (None if it holds no shards).

    Parameters
    ----------
    out : str
        Results location (directory or URI).
    run_id : str, optional
        Keep only this run's rows.
    check : bool
        First read every shard file's footer and raise StoreError naming any
        unreadable one.
    """
    store = ResultStore(out)
    if check:
        bad = store.check_files()
        if bad:
            raise StoreError(f"unreadable shard file {bad[0]} ({len(bad)} in all); "
                             "re-run the spec to move it aside and recompute it")
    dataset = store.dataset()
    if dataset is None:
        return None
    if run_id is not None and not re.fullmatch(r"[0-9a-f]{1,64}", run_id):
        raise StoreError(f"--run: not a run id (hex digits): {run_id!r}")
    con = duckdb.connect()
    con.register("trials_all", dataset)
    where = f"WHERE run_id = '{run_id}'" if run_id else ""  # validated hex above
    con.execute(f"CREATE VIEW trials AS SELECT * FROM trials_all {where}")
    return con


def parse_params(text: str | None) -> dict | None:
    """Invert :meth:`mc_hull.samplers.Sampler.describe`: ``"k=3,df=2.5"`` -> ``{"k": 3, "df": 2.5}``."""
    if text is None or text == "?":
        return None
    out = {}
    for item in filter(None, text.split(",")):
        name, _, value = item.partition("=")
        for cast in (int, float, str):
            try:
                out[name] = cast(value)
                break
            except ValueError:
                continue
    return out


@functools.lru_cache(maxsize=1024)
def _cell_info(distribution: str, params: tuple | None, d: int) -> dict:
    try:
        if params is None:  # the run's spec is not recorded: only parameter-free families are known
            if SAMPLERS[distribution].params:
                raise KeyError(distribution)
            params = ()
        sampler = get_sampler(distribution, d, **dict(params))
    except (KeyError, McHullError):
        return {"params": "?", "d_intrinsic": None, "d_affine": None, "exact_as": None}
    return {"params": sampler.describe(), "d_intrinsic": sampler.dims["intrinsic"],
            "d_affine": sampler.dims["affine"], "exact_as": sampler.exact_as}


def cell_info(distribution: str, params: dict | None, d: int) -> dict:
    """What a cell's sampler says about itself, from the run's parameters (None: unknown).

    Returns
    -------
    dict
        ``params`` (defaults filled in, ``"k=3"``; ``"?"`` when unknown),
        ``d_intrinsic``, ``d_affine`` and ``exact_as`` (the (distribution, dimension)
        whose exact curve gives p, see :attr:`mc_hull.samplers.Sampler.exact_as`).
    """
    key = None if params is None else tuple(sorted(params.items()))
    return _cell_info(distribution, key, int(d))


def exact_p(distribution: str, params: dict | None, d: int, n):
    """Exact p at ``n`` through the sampler's ``exact_as`` curve; None when none is known."""
    ref = cell_info(distribution, params, d)["exact_as"]
    if ref is None or not theory.has_exact(*ref):
        return None
    return theory.exact_inside_probability(ref[0], int(ref[1]), n)


def run_params(out: str) -> dict[str, dict]:
    """run_id -> the distribution parameters recorded in ``_runs/<run_id>.json``."""
    found = {}
    for run_id, record in ResultStore(out).runs().items():
        try:
            found[run_id] = dict(record["spec"].get("params") or {})
        except (KeyError, TypeError, AttributeError):
            continue
    return found


def replicate_counts(con) -> pa.Table:
    """Per (distribution, d, n, run_id, replicate): trials, inside, undecided (aggregated in SQL)."""
    return con.sql("""
        SELECT distribution, d, n, run_id, replicate,
               count(*) AS trials,
               count(*) FILTER (WHERE inside) AS inside,
               count(*) FILTER (WHERE inside IS NULL) AS undecided
        FROM trials GROUP BY ALL ORDER BY distribution, d, n, run_id, replicate
    """).to_arrow_table()


def cell_estimates(out: str, *, run_id: str | None = None, level: float = stats.LEVEL) -> pa.Table:
    """One row per (distribution, d, n, params): counts, p_hat, intervals, 2^(d/2)/d, exact p and z.

    ``params`` (from each run's recorded spec, defaults filled in) keeps runs
    with different distribution parameters apart; ``d`` is the ambient
    dimension, ``d_intrinsic`` and ``d_affine`` those of the distribution
    (its manifold and the smallest affine subspace holding it).

    ``p_hat = inside / (trials - undecided)``: undecided trials are reported,
    never counted as outside.  ``z = (p_hat - exact) / se`` with the clustered
    standard error (floored at the binomial one at the exact p).

    Returns
    -------
    pyarrow.Table
        Columns :data:`CELL_COLUMNS`; empty when the store holds no shards.
    """
    con = connect(out, run_id=run_id)
    if con is None:
        return _empty()
    reps = replicate_counts(con).to_pydict()
    params = run_params(out)
    rows = []
    # cells of runs with different parameters are different cells
    info = [cell_info(dist, params.get(run), d)
            for dist, d, run in zip(reps["distribution"], reps["d"], reps["run_id"])]
    keys = [(dist, c["params"], d, n) for dist, c, d, n in zip(reps["distribution"], info, reps["d"], reps["n"])]
    index: dict = {}
    for i, k in enumerate(keys):
        index.setdefault(k, []).append(i)
    for key in sorted(index):
        idx = index[key]
        dist, _, d, n = key
        cell = info[idx[0]]
        trials = np.array([reps["trials"][i] for i in idx], dtype=np.float64)
        y = np.array([reps["inside"][i] for i in idx], dtype=np.float64)
        und = np.array([reps["undecided"][i] for i in idx], dtype=np.float64)
        m = trials - und
        decided = m.sum()
        p_hat = y.sum() / decided if decided else math.nan
        low, high, deff = stats.clustered_interval(y, m, level)
        wl, wh = stats.wilson(y.sum(), decided, level)
        exact = exact_p(dist, parse_params(cell["params"]), int(d), int(n))
        exact = None if exact is None else float(exact)
        z = None
        if exact is not None and decided:
            se = math.sqrt(max(exact * (1 - exact), p_hat * (1 - p_hat)) * deff / decided)
            z = (p_hat - exact) / se if se > 0 else (0.0 if p_hat == exact else math.copysign(math.inf, p_hat - exact))
        rows.append({
            "distribution": dist, "d": int(d), "n": int(n), "params": cell["params"],
            "d_intrinsic": cell["d_intrinsic"], "d_affine": cell["d_affine"],
            "runs": len({reps["run_id"][i] for i in idx}), "replicates": len(idx),
            "trials": int(trials.sum()), "inside": int(y.sum()), "undecided": int(und.sum()),
            "p_hat": p_hat, "ci_low": low, "ci_high": high,
            "wilson_low": float(wl), "wilson_high": float(wh), "design_effect": deff,
            "bf_threshold": theory.bf_threshold(int(d)), "exact": exact, "z": z,
        })
    return pa.Table.from_pylist(rows, schema=_schema())


def _schema() -> pa.Schema:
    types = {"distribution": pa.string(), "d": pa.int32(), "n": pa.int64(), "params": pa.string(),
             "d_intrinsic": pa.int32(), "d_affine": pa.int32(), "runs": pa.int32(),
             "replicates": pa.int64(), "trials": pa.int64(), "inside": pa.int64(),
             "undecided": pa.int64()}
    return pa.schema([(c, types.get(c, pa.float64())) for c in CELL_COLUMNS])


def _empty() -> pa.Table:
    return _schema().empty_table()


def agreement(table: pa.Table, level: float = stats.LEVEL) -> tuple[int, int]:
    """(cells with an exact value, of which outside their interval)."""
    rows = [r for r in table.to_pylist()
            if r["exact"] is not None and r["exact"] == r["exact"] and r["p_hat"] == r["p_hat"]
            and r["ci_low"] is not None and r["ci_high"] is not None]
    outside = sum(1 for r in rows if not (r["ci_low"] <= r["exact"] <= r["ci_high"]))
    return len(rows), outside


def thresholds(out: str, *, run_id: str | None = None, level: float = stats.LEVEL) -> pa.Table:
    """Empirical 50% points per (distribution, d) with 99% intervals, exact N_half and 2^(d/2)/d.

    See :func:`mc_hull.thresholds.thresholds_table`.
    """
    from .thresholds import thresholds_table

    return thresholds_table(out, run_id=run_id, level=level)
