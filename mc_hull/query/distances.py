"""Per-cell distance summaries of runs with ``measure = "distance"``: distance/nn and P(distance <= eps nn)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..stats import intervals as stats
from ..stats.distances import SUMMARY_COLUMNS, cell_summary

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
