"""Per-cell distance summaries of runs with ``measure = "distance"``: distance/nn and P(distance <= eps nn)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .. import stats
from ..distance_stats import SUMMARY_COLUMNS, cell_summary

#: Columns the trials carry in a distance run.
DISTANCE_COLUMNS = ("distance_low", "distance_high", "nn_distance")
DISTANCE_NOTE = ("dist_nn_*: median of distance/nn over outside trials (distance = certified upper bound, "
                 "nn = distance to the nearest training point) with a 99% interval clustered by training "
                 "set; p_near_1pct/p_near_10pct: fraction of decided trials with distance <= 0.01 / 0.1 nn "
                 "(inside trials count: distance 0), clustered 99% intervals like p_hat")


def has_distances(con) -> bool:
    """Whether the connection's ``trials_all`` view carries the distance columns."""
    names = {r[0] for r in con.sql("DESCRIBE trials_all").fetchall()}
    return set(DISTANCE_COLUMNS) <= names


def cell_distances(con, identity, level: float = stats.LEVEL) -> dict[tuple, dict]:
    """``(distribution, params, d, n) -> summary`` (:data:`SUMMARY_COLUMNS`) over measured trials.

    Each trial identity counts once (the row of the lowest run id that measured it);
    trials of runs without the measure are left out, so a cell mixing runs is
    summarised over its measured trials only (``outside_measured`` says how many).
    """
    if not has_distances(con):
        return {}
    ident = ", ".join(identity)
    table = con.sql(f"""
        SELECT DISTINCT ON ({ident}) distribution, params, d, n, seed_key, replicate,
               CASE WHEN inside THEN 'inside' WHEN NOT inside THEN 'outside' ELSE 'undecided' END AS status,
               distance_high, nn_distance
        FROM trials_all WHERE distance_high IS NOT NULL AND nn_distance IS NOT NULL
        ORDER BY {ident}, run_id""").to_arrow_table()
    if table.num_rows == 0:
        return {}
    cols = {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
    keys = list(zip(cols["distribution"], cols["params"], cols["d"].tolist(), cols["n"].tolist()))
    cluster = np.array([f"{s}/{r}" for s, r in zip(cols["seed_key"], cols["replicate"].tolist())])
    groups: dict = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    out = {}
    for k, idx in groups.items():
        idx = np.asarray(idx)
        out[k] = cell_summary(cluster[idx], cols["status"][idx], cols["distance_high"][idx],
                              cols["nn_distance"][idx], level)
    return out


def summary_fields() -> list[pa.Field]:
    """Arrow fields of :data:`SUMMARY_COLUMNS` (counts as int64, the rest float64)."""
    return [pa.field(c, pa.int64() if c == "outside_measured" else pa.float64()) for c in SUMMARY_COLUMNS]


def ratio_histogram(out, *, run_id: str | None = None, distribution: str | None = None, dims=None,
                    bins_per_decade: int = 4) -> pa.Table:
    """Log-binned counts of distance/nn over the outside trials, per (params, d), aggregated in DuckDB.

    Each trial identity counts once (the lowest run id that measured it), as in
    :func:`cell_distances`; distance is the certified upper bound ``distance_high``.
    Bins are ``(lo, hi]`` so that distance/nn = 1 (the nearest training point is the
    nearest hull point) falls in the top bin below 1; the ratio is capped at 1 (the
    distance to the hull never exceeds nn, but the upper bound can by a few ulps).

    Parameters
    ----------
    out : str or Store
    run_id : str, optional
        Keep only this run's rows.
    distribution : str, optional
    dims : sequence of int, optional
        Keep only these d (all when None or empty).
    bins_per_decade : int

    Returns
    -------
    pyarrow.Table
        Columns ``distribution, params, d, lo, hi, trials, share`` (``share``: the
        bin's fraction of that d's outside trials); a few rows per d, empty when
        no run measured distance.
    """
    from .cells import IDENTITY, connect

    con = connect(out, run_id=run_id)
    empty = pa.table({"distribution": pa.array([], pa.string()), "params": pa.array([], pa.string()),
                      "d": pa.array([], pa.int32()), "lo": pa.array([], pa.float64()),
                      "hi": pa.array([], pa.float64()), "trials": pa.array([], pa.int64()),
                      "share": pa.array([], pa.float64())})
    if con is None or not has_distances(con):
        return empty
    conds, params = ["distance_high IS NOT NULL", "nn_distance > 0"], []
    if distribution is not None:
        conds.append("distribution = ?")
        params.append(distribution)
    if dims:
        conds.append("list_contains(?::INTEGER[], d)")
        params.append([int(d) for d in dims])
    ident, b = ", ".join(IDENTITY), float(bins_per_decade)
    table = con.sql(f"""
        WITH t AS (SELECT DISTINCT ON ({ident}) distribution, params, d, status,
                          least(distance_high / nn_distance, 1.0) AS ratio
                   FROM trials_all WHERE {' AND '.join(conds)} ORDER BY {ident}, run_id),
             o AS (SELECT distribution, params, d, ceil(log10(ratio) * {b}) - 1 AS k FROM t
                   WHERE status = 'outside' AND ratio > 0),
             h AS (SELECT distribution, params, d, k, count(*) AS trials FROM o GROUP BY ALL)
        SELECT distribution, params, d, pow(10, k / {b}) AS lo, pow(10, (k + 1) / {b}) AS hi, trials,
               trials / sum(trials) OVER (PARTITION BY distribution, params, d) AS share
        FROM h ORDER BY distribution, params, d, lo""", params=params or None).to_arrow_table()
    return table.cast(empty.schema) if table.num_rows else empty


def sweep_distances(out, sweep_id: str, level: float = stats.LEVEL) -> pa.Table:
    """Per (reduction, K) of a sweep measured with distance: median distance/nn with its interval and P(near).

    The median's interval is distribution-free (:func:`mc_hull.distance_stats.median_interval`,
    each test image its own cluster: given the training set, test images are
    independent); ``p_near_10pct`` gets a Wilson interval over decided images.

    Returns
    -------
    pyarrow.Table
        Columns ``reduction, K, outside_measured, dist_nn_median, dist_nn_low, dist_nn_high,
        p_near_10pct, p_near_10pct_low, p_near_10pct_high``; empty when the sweep has no distances.
    """
    from ..distance_stats import median_interval
    from ..store import HullTestStore
    from .sweeps import sweep_table

    rows = sweep_table(out, sweep_id)
    names = ["reduction", "K", "outside_measured", "dist_nn_median", "dist_nn_low", "dist_nn_high",
             "p_near_10pct", "p_near_10pct_low", "p_near_10pct_high"]
    result = {n: [] for n in names}
    if rows.num_rows == 0 or "dist_nn_q50" not in rows.column_names:
        return pa.table({n: pa.array([], pa.string() if n == "reduction" else
                                     pa.int64() if n in ("K", "outside_measured") else pa.float64())
                         for n in names})
    store = HullTestStore(out)
    for r in rows.select(["reduction", "K", "test_id"]).to_pylist():
        pts = store.points(r["test_id"])
        status = np.asarray(pts.column("status").to_numpy(zero_copy_only=False))
        high = pts.column("distance_high").to_numpy(zero_copy_only=False).astype(np.float64)
        nn = pts.column("nn_distance").to_numpy(zero_copy_only=False).astype(np.float64)
        outside = (status == "outside") & np.isfinite(high) & (nn > 0)
        ratio = high[outside] / nn[outside]
        med, lo, hi = median_interval(ratio, np.arange(ratio.size), level)
        decided = (status != "undecided") & np.isfinite(high) & np.isfinite(nn)
        near = int(((status[decided] == "inside") | (high[decided] <= 0.1 * nn[decided])).sum())
        m = int(decided.sum())
        plo, phi = (float(x) for x in stats.wilson(near, m, level)) if m else (np.nan, np.nan)
        for n, v in zip(names, (r["reduction"], r["K"], int(outside.sum()), med, lo, hi,
                                near / m if m else np.nan, plo, phi)):
            result[n].append(v)
    return pa.table(result)
