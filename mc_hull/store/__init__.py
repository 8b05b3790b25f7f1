"""The results store: one contract (base), a Parquet backend and an in-memory reference; the only code that knows paths.

``ResultStore`` and ``HullTestStore`` speak in specs, shards and test points;
``Store`` backends in runs, keyed units and manifest entries.  See
:mod:`mc_hull.store.base` for the contract and :mod:`mc_hull.store.parquet`
for the layout.
"""

from .base import (DISTANCE_FIELDS, DOCS, KINDS, PARTITION_SCHEMA, POINT_SCHEMA, POINT_SCHEMA_DISTANCE, SCHEMA,
                   SCHEMA_DISTANCE, SWEEP_SCHEMA, SWEEP_SCHEMA_DISTANCE, VARIANTS, Damaged, Entry, Forged, RunConflict,
                   Store, Verified, sweep_schema)
from .memory import MemoryStore
from .parquet import ParquetStore, is_uri, local_path, probe, read_table_file, resolve, versions
from .results import HullTestStore, ResultStore, open_store, to_table

__all__ = ["DISTANCE_FIELDS", "POINT_SCHEMA_DISTANCE", "SCHEMA_DISTANCE", "SWEEP_SCHEMA_DISTANCE", "VARIANTS",
           "sweep_schema", "DOCS", "KINDS", "PARTITION_SCHEMA", "POINT_SCHEMA", "SCHEMA", "SWEEP_SCHEMA", "Damaged", "Forged", "Entry",
           "RunConflict", "Store", "Verified", "MemoryStore", "ParquetStore", "is_uri", "local_path", "probe", "read_table_file",
           "resolve", "versions", "HullTestStore", "ResultStore", "open_store", "to_table"]
