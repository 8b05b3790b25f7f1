"""Verified reads that decode only some columns, and the per-process cache of the last reads.

Each unit is still checked whole (size, SHA-256, schema, planned row count) whatever columns are
decoded; a cached read is reused only while no file under the store's root changed.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mc_hull.errors import StoreError
from mc_hull.query import cell_estimates, cells as cells_module
from mc_hull.runs.runner import execute
from mc_hull.spec import Spec
from mc_hull.store import ResultStore

SPEC = Spec(distribution="gaussian", dims=(2, 3), sizes=(5, 20), trials=60, queries_per_set=20, seed=4,
            shard_trials=20)


@pytest.fixture()
def out(tmp_path):
    path = tmp_path / "res"
    execute(SPEC, str(path), backend="serial", progress=False)
    cells_module._LAST_READ.clear()
    return path


def shards(out: Path) -> list[Path]:
    return sorted((out / "distribution=gaussian").rglob("*.parquet"))


def test_a_projected_read_equals_the_full_read(out):
    store = ResultStore(str(out))
    full = store.trials()
    some = store.trials(columns=["replicate", "inside"])
    assert some.column_names == ["replicate", "inside", "distribution", "d", "n"]
    assert some.num_rows == full.num_rows == SPEC.planned_trials
    assert some.select(["replicate", "inside", "d", "n"]).equals(full.select(["replicate", "inside", "d", "n"]))
    # a column no unit has (the distance measure) is left out, not made up
    assert "nn_distance" not in store.trials(columns=["inside", "nn_distance"]).column_names


def rewrite(path: Path, table: pa.Table) -> None:
    """Replace a shard with ``table`` (manifest untouched): size and SHA-256 no longer match."""
    pq.write_table(table, path)


@pytest.mark.parametrize("damage", ["column not decoded", "schema", "rows", "truncated"])
def test_every_unit_is_verified_whole_when_only_some_columns_are_decoded(out, damage):
    victim = shards(out)[2]
    table = pq.read_table(victim)
    if damage == "column not decoded":   # only 'method' changes: never decoded by a cell estimate
        i = table.schema.get_field_index("method")
        table = table.set_column(i, "method", pa.array(["forged"] * table.num_rows))
        rewrite(victim, table)
    elif damage == "schema":             # inside stored as integers
        i = table.schema.get_field_index("inside")
        table = table.set_column(i, "inside", pa.array([1] * table.num_rows, pa.int8()))
        rewrite(victim, table)
    elif damage == "rows":
        rewrite(victim, table.slice(0, table.num_rows - 1))
    else:
        victim.write_bytes(victim.read_bytes()[:100])
    with pytest.raises(StoreError):
        ResultStore(str(out)).trials(columns=["replicate", "inside"])
    with pytest.raises(StoreError):
        cell_estimates(str(out))


def test_the_cached_read_is_dropped_when_a_file_changes(out):
    first = cell_estimates(str(out))
    assert cells_module._LAST_READ                      # cached
    assert cell_estimates(str(out)).equals(first)       # served from the cache, same answer
    victim = shards(out)[0]
    body = bytearray(victim.read_bytes())
    body[len(body) // 2] ^= 0xFF                        # same size, new modification time
    victim.write_bytes(bytes(body))
    with pytest.raises(StoreError):
        cell_estimates(str(out))


def test_the_cache_follows_new_shards(out, tmp_path):
    before = cell_estimates(str(out))
    more = Spec.from_dict({**SPEC.to_dict(), "trials": 120})
    execute(more, str(out), backend="serial", progress=False, new_run=True)
    after = cell_estimates(str(out))
    assert sum(after["trials"].to_pylist()) > sum(before["trials"].to_pylist())


def test_two_stores_do_not_share_a_cache(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    execute(SPEC, str(a), backend="serial", progress=False)
    other = Spec(distribution="gaussian", dims=(2,), sizes=(5,), trials=40, queries_per_set=20, seed=9)
    execute(other, str(b), backend="serial", progress=False)
    ta, tb = cell_estimates(str(a)), cell_estimates(str(b))
    assert ta.num_rows == 4 and tb.num_rows == 1
    assert cell_estimates(str(a)).equals(ta)
