"""Read hull-test sweeps back for the dashboard and tests: small Arrow tables from DuckDB over the store."""

from __future__ import annotations

import re

import duckdb
import pyarrow as pa

from .store import HullTestStore

#: Order of the reductions in tables and legends.
REDUCTION_ORDER = ("crop", "subsample", "pca", "random-projection", "none")


def sweeps(out: str) -> list[dict]:
    """Every sweep under ``out``, newest first: its stored record plus ``sweep_id`` and ``path``.

    Returns
    -------
    list of dict
        Records as written by :func:`mc_hull.hulltest.run_sweep` (name, ladder,
        train/test descriptions, seconds, finished); ``[]`` when there are none.
    """
    store = HullTestStore(out)
    try:
        files = store.sweep_files()
    except OSError:
        return []
    found = []
    for info in files:
        record = store.sweep_record(info.path)
        if record:
            found.append({**record, "sweep_id": info.base_name[:-len(".parquet")], "path": info.path,
                          "mtime_ns": info.mtime_ns or 0})
    return sorted(found, key=lambda r: (r.get("finished", ""), r["mtime_ns"]), reverse=True)


def sweep_table(out: str, sweep_id: str) -> pa.Table:
    """One sweep's rows, ordered by reduction then K (columns of :data:`mc_hull.store.SWEEP_SCHEMA`)."""
    if not re.fullmatch(r"[0-9a-f]{1,64}", sweep_id):
        raise ValueError(f"not a sweep id: {sweep_id!r}")
    match = [r for r in sweeps(out) if r["sweep_id"] == sweep_id]
    if not match:
        return pa.table({})
    store = HullTestStore(out)
    con = duckdb.connect()
    con.register("sweep", store.sweep_dataset([match[0]["path"]]))
    order = " ".join(f"WHEN '{name}' THEN {i}" for i, name in enumerate(REDUCTION_ORDER))
    return con.sql(f"SELECT * FROM sweep ORDER BY CASE reduction {order} ELSE 99 END, reduction, K").to_arrow_table()


def latest_sweep(out: str, name: str | None = None) -> tuple[pa.Table | None, dict | None]:
    """The newest sweep (of preset ``name`` if given) and its record; ``(None, None)`` when none."""
    for record in sweeps(out):
        if name is None or record.get("name") == name:
            return sweep_table(out, record["sweep_id"]), record
    return None, None


def sweeps_key(out: str) -> tuple:
    """A cheap fingerprint that changes when a sweep file lands (for caching)."""
    found = sweeps(out)
    return tuple((r["sweep_id"], r["mtime_ns"]) for r in found)
