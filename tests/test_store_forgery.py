"""Forged manifest entries: an entry counts only for its own unit (its key in the plan, its cell, its
replicates, and rows holding exactly the trials the key implies); a trial is counted once within a run.
A query refuses a forged store in one line; a re-run removes the forged entry and recomputes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mc_hull.errors import StoreError
from mc_hull.runs.runner import execute
from mc_hull.spec import Spec
from mc_hull.store import ResultStore

SPEC = Spec(distribution="gaussian", dims=(2,), sizes=(10, 30), trials=400, queries_per_set=50, seed=5,
            shard_trials=100)


@pytest.fixture
def store_dir(tmp_path):
    out = tmp_path / "out"
    execute(SPEC, str(out), backend="serial", progress=False)
    return out


def _entries(out: Path) -> dict[str, Path]:
    base = out / "_manifest" / "trials" / SPEC.run_id
    return {str(p.relative_to(base))[:-5]: p for p in base.rglob("*.json")}


def _forge(out: Path, source: str, key: str, **edits) -> None:
    """Copy the entry of ``source`` to the name of ``key``, its key field set to ``key`` (and ``edits``)."""
    body = json.loads(_entries(out)[source].read_text())
    body.update(key=key, **edits)
    target = out / "_manifest" / "trials" / SPEC.run_id / f"{key}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(body, sort_keys=True))


def _cells(out):
    from mc_hull.query.cells import cell_estimates

    return {(r["d"], r["n"]): r["trials"] for r in cell_estimates(str(out)).to_pylist()}


def _query_refuses(out, capfd, needle):
    from mc_hull.cli import main

    code = main(["query", str(out)])
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0], err
    return err[0]


def _rerun_recomputes(out, capfd):
    rep = execute(SPEC, str(out), backend="serial", progress=False)
    assert rep.computed_shards >= 1    # not "everything committed"
    assert _cells(out) == {(2, 10): 400, (2, 30): 400}
    assert ResultStore(str(out)).verify().problems == []
    return rep


A = "gaussian/d=2/n=10/r0000000-0000002"
B = "gaussian/d=2/n=10/r0000002-0000004"


def test_a_clean_run_counts_each_trial_once(store_dir):
    assert _cells(store_dir) == {(2, 10): 400, (2, 30): 400}
    assert len(_entries(store_dir)) == 8


def test_entry_copied_over_another_key_of_the_run_is_refused_then_recomputed(store_dir, capfd):
    """The issue's case: copy one entry under another key of the same run (its key field edited)."""
    _forge(store_dir, A, B)
    _query_refuses(store_dir, capfd, f"manifest entry trials/{SPEC.run_id}/{B}")
    _rerun_recomputes(store_dir, capfd)


@pytest.mark.parametrize("key", [
    "gaussian/d=2/n=10/r0000008-0000010",      # replicates beyond the plan, in the same cell
    "gaussian/d=2/n=99/r0000000-0000002",      # a cell the plan does not have
    "gaussian/d=4/n=10/r0000000-0000002",      # a dimension the plan does not have
    "cube/d=2/n=10/r0000000-0000002",          # another distribution
    "gaussian/d=2/n=10/r0-2",                  # not the canonical spelling
    "gaussian/d=2/n=10/r0000000-0000002/x",    # not a shard key
])
def test_entry_copied_under_a_key_the_plan_lacks_is_refused_and_removed_on_rerun(store_dir, capfd, key):
    _forge(store_dir, A, key)
    _query_refuses(store_dir, capfd, "manifest entry trials/")
    rep = execute(SPEC, str(store_dir), backend="serial", progress=False)
    assert any("entry removed" in line for line in rep.quarantined)
    assert _cells(store_dir) == {(2, 10): 400, (2, 30): 400}
    assert (store_dir / "distribution=gaussian" / "d=2" / "n=10").exists()
    assert len(_entries(store_dir)) == 8


def test_forged_partition_and_range_pointing_at_another_units_bytes(store_dir, capfd):
    """Key, partition and replicate range all edited to B's, the location still A's file."""
    _forge(store_dir, A, B, meta={"start": 2, "stop": 4})
    _query_refuses(store_dir, capfd, "not the entry of its own unit")
    _rerun_recomputes(store_dir, capfd)
    # A's bytes were left alone (the forged entry pointed at them): A was not recomputed
    assert A in _entries(store_dir)


def test_another_units_rows_under_a_consistent_entry_are_refused(store_dir, capfd):
    """Copy A's file to B's location and write B's entry with its hash: the rows are A's trials."""
    entries = _entries(store_dir)
    a = json.loads(entries[A].read_text())
    b = json.loads(entries[B].read_text())
    shutil.copyfile(store_dir / a["location"], store_dir / b["location"])
    b.update(size=a["size"], sha256=a["sha256"])
    entries[B].write_text(json.dumps(b, sort_keys=True))
    line = _query_refuses(store_dir, capfd, "the rows of another unit")
    assert "replicate 0" in line and "replicate 2" in line
    _rerun_recomputes(store_dir, capfd)


def test_a_trial_is_counted_once_within_a_run(store_dir):
    """Two entries of one run whose replicate ranges overlap: refused, even when each is intact."""
    from mc_hull.store.results import overlaps

    units = ResultStore(str(store_dir)).units(SPEC.run_id)
    assert overlaps(units) == []
    from dataclasses import replace

    extra = replace(units[0], key="gaussian/d=2/n=10/r0000001-0000003")
    found = overlaps([*units, extra])
    assert found and all("overlap" in why for _, why in found)
    assert found[0][0].endswith("r0000001-0000003")


def test_trials_read_raises_store_error_not_a_traceback(store_dir):
    _forge(store_dir, A, B)
    with pytest.raises(StoreError, match="re-run to recompute it"):
        ResultStore(str(store_dir)).trials()


def test_rows_drawn_under_an_older_draw_scheme_keep_their_own_identity(tmp_path):
    """ball's draws changed (prefix-stable radii): a same-seed run recorded before that names other points,
    so its trials are never merged with a new run's; gaussian's did not change, so its runs still merge."""
    from mc_hull.query.cells import cell_estimates

    for dist, merged in (("ball", False), ("gaussian", True)):
        out = tmp_path / dist
        old = Spec(distribution=dist, dims=(2,), sizes=(10,), trials=100, queries_per_set=10, seed=9)
        new = Spec(distribution=dist, dims=(2,), sizes=(10,), trials=100, queries_per_set=20, seed=9)
        execute(old, str(out), backend="serial", progress=False)
        record = out / "_runs" / f"{old.run_id}.json"
        body = json.loads(record.read_text())
        assert body["draws"] == 2
        del body["draws"]                        # as recorded before the draw scheme was versioned
        record.write_text(json.dumps(body))
        execute(new, str(out), backend="serial", progress=False, new_run=True)
        (row,) = cell_estimates(str(out)).to_pylist()
        # merged: the union of identities, replicates 0-4 with 20 queries and 5-9 with 10 (150 trials)
        assert row["trials"] == (150 if merged else 200), dist
