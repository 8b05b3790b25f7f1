"""Hull-test sweeps read back from the store's manifest: records and verified tables, ordered for tables and legends."""

from __future__ import annotations

import re

import duckdb
import pyarrow as pa

from ..errors import StoreError
from ..store import HullTestStore

#: Order of the reductions in tables and legends.
REDUCTION_ORDER = ("crop", "subsample", "pca", "random-projection", "none")


def sweeps(out) -> list[dict]:
    """Every listed sweep under ``out``, newest first: its stored record plus ``sweep_id``.

    Returns
    -------
    list of dict
        Records as written by :func:`mc_hull.hulltest.run_sweep` (name, ladder,
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
