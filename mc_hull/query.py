"""Estimates from a results store: per-cell counts aggregated in DuckDB, intervals, exact curves."""

from __future__ import annotations

import math
import re

import duckdb
import numpy as np
import pyarrow as pa

from . import stats, theory
from .errors import StoreError
from .store import ResultStore

#: Columns of :func:`cell_estimates`, in order.
CELL_COLUMNS = ["distribution", "d", "n", "runs", "replicates", "trials", "inside", "undecided",
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
    """One row per (distribution, d, n): counts, p_hat, intervals, 2^(d/2)/d, exact p and z.

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
    rows = []
    keys = list(zip(reps["distribution"], reps["d"], reps["n"]))
    order = sorted(set(keys), key=lambda k: (k[0], k[1], k[2]))
    index: dict = {}
    for i, k in enumerate(keys):
        index.setdefault(k, []).append(i)
    for key in order:
        idx = index[key]
        dist, d, n = key
        trials = np.array([reps["trials"][i] for i in idx], dtype=np.float64)
        y = np.array([reps["inside"][i] for i in idx], dtype=np.float64)
        und = np.array([reps["undecided"][i] for i in idx], dtype=np.float64)
        m = trials - und
        decided = m.sum()
        p_hat = y.sum() / decided if decided else math.nan
        low, high, deff = stats.clustered_interval(y, m, level)
        wl, wh = stats.wilson(y.sum(), decided, level)
        exact = theory.exact_inside_probability(dist, int(d), int(n)) if theory.has_exact(dist, int(d)) else None
        z = None
        if exact is not None and decided:
            se = math.sqrt(max(exact * (1 - exact), p_hat * (1 - p_hat)) * deff / decided)
            z = (p_hat - exact) / se if se > 0 else (0.0 if p_hat == exact else math.copysign(math.inf, p_hat - exact))
        rows.append({
            "distribution": dist, "d": int(d), "n": int(n),
            "runs": len({reps["run_id"][i] for i in idx}), "replicates": len(idx),
            "trials": int(trials.sum()), "inside": int(y.sum()), "undecided": int(und.sum()),
            "p_hat": p_hat, "ci_low": low, "ci_high": high,
            "wilson_low": float(wl), "wilson_high": float(wh), "design_effect": deff,
            "bf_threshold": theory.bf_threshold(int(d)), "exact": exact, "z": z,
        })
    return pa.Table.from_pylist(rows, schema=_schema())


def _schema() -> pa.Schema:
    types = {"distribution": pa.string(), "d": pa.int32(), "n": pa.int64(), "runs": pa.int32(),
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
