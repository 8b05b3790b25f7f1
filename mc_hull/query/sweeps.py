"""Hull-test sweeps read back from the store's manifest: records and verified tables, ordered for tables and legends."""

from __future__ import annotations

import re

import duckdb
import numpy as np
import pyarrow as pa

from ..stats import intervals as stats
from ..stats.distances import median_interval
from ..errors import StoreError
from ..store import HullTestStore

#: Order of the reductions in tables and legends.
REDUCTION_ORDER = ("crop", "subsample", "pca", "random-projection", "none")


def sweeps(out) -> list[dict]:
    """Every listed sweep under ``out``, newest first: its stored record plus ``sweep_id``.

    Returns
    -------
    list of dict
        Records as written by :func:`mc_hull.runs.hulltest.run_sweep` (name, ladder,
        train/test descriptions, seconds, finished); ``[]`` when there are none.
    """
    try:
        found = [{**record, "sweep_id": sweep_id} for sweep_id, record in HullTestStore(out).sweeps() if record]
    except (OSError, StoreError):
        return []
    return sorted(found, key=lambda r: (str(r.get("finished", "")), r["sweep_id"]), reverse=True)


def sweep_table(out, sweep_id: str) -> pa.Table:
    """One sweep's verified rows, ordered by reduction then K (columns of :data:`mc_hull.store.SWEEP_SCHEMA`)."""
    if not re.fullmatch(r"[0-9a-f]{1,64}", sweep_id):
        raise ValueError(f"not a sweep id: {sweep_id!r}")
    if not any(r["sweep_id"] == sweep_id for r in sweeps(out)):
        return pa.table({})
    con = duckdb.connect()
    con.register("sweep", HullTestStore(out).sweep(sweep_id))
    order = " ".join(f"WHEN '{name}' THEN {i}" for i, name in enumerate(REDUCTION_ORDER))
    return con.sql(f"SELECT * FROM sweep ORDER BY CASE reduction {order} ELSE 99 END, reduction, K").to_arrow_table()


def latest_sweep(out, name: str | None = None) -> tuple[pa.Table | None, dict | None]:
    """The newest sweep (of preset ``name`` if given) and its record; ``(None, None)`` when none."""
    for record in sweeps(out):
        if name is None or record.get("name") == name:
            return sweep_table(out, record["sweep_id"]), record
    return None, None


def sweeps_key(out) -> tuple:
    """A cheap fingerprint that changes when a sweep lands (for caching)."""
    try:
        return HullTestStore(out).fingerprint()
    except (OSError, StoreError):
        return ()


def sweep_distances(out, sweep_id: str, level: float = stats.LEVEL) -> pa.Table:
    """Per (reduction, K) of a sweep measured with distance: median distance/nn with its interval and P(near).

    The median's interval is distribution-free (:func:`mc_hull.stats.distances.median_interval`,
    each test image its own cluster: given the training set, test images are
    independent); ``p_near_10pct`` gets a Wilson interval over decided images.

    Returns
    -------
    pyarrow.Table
        Columns ``reduction, K, outside_measured, dist_nn_median, dist_nn_low, dist_nn_high,
        p_near_10pct, p_near_10pct_low, p_near_10pct_high``; empty when the sweep has no distances.
    """
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
