"""Status digests: each trials entry carries its unit's statuses (two bit planes) and audit counts, sealed to
the entry's key, size, SHA-256 and row count.  Readers use a digest only with the unit's bytes hashed
against the entry; a digest that is missing, damaged or copied is ignored and the unit's rows are decoded.

Every view read from digests (cell table, per-replicate counts, entry-size ECDF, run counts, audit) must
equal the same view aggregated from the rows, on stores of several seeds and shapes.
"""

from __future__ import annotations

import base64
import json
import shutil
import threading
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from mc_hull import query
from mc_hull.query import views
from mc_hull.errors import StoreError
from mc_hull.query import cells as cells_module
from mc_hull.runs.runner import execute
from mc_hull.spec import Spec
from mc_hull.store import ResultStore
from mc_hull.store.base import _digest_seal, open_digest

FILTERS = [views.Filters(), views.Filters(dims=[3], n_min=8, n_max=40),
           views.Filters(distributions=["ball"]), views.Filters(n_min=1000)]


def entries(out: Path) -> list[Path]:
    return sorted((Path(out) / "_manifest" / "trials").rglob("*.json"))


def strip_digests(out: Path) -> None:
    """Turn ``out`` into a store as written before digests (entries without one)."""
    for path in entries(out):
        body = json.loads(path.read_text())
        body.pop("digest", None)
        path.write_text(json.dumps(body, sort_keys=True))


def fresh():
    cells_module._LAST_READ.clear()


def reference_counts(out) -> dict:
    """(distribution, params, d, n) -> (replicates, trials, inside, undecided), aggregated in SQL over the
    verified rows (:func:`mc_hull.query.connect`: each trial identity once), never from a digest."""
    con = query.connect(str(out))
    reps = query.replicate_counts(con).to_pylist()
    got: dict = {}
    for r in reps:
        k = (r["distribution"], r["params"], r["d"], r["n"])
        a = got.get(k, (0, 0, 0, 0))
        got[k] = (a[0] + 1, a[1] + r["trials"], a[2] + r["inside"], a[3] + r["undecided"])
    return got


def counts_of(table: pa.Table) -> dict:
    return {(r["distribution"], r["params"], r["d"], r["n"]): (r["replicates"], r["trials"], r["inside"],
                                                                r["undecided"]) for r in table.to_pylist()}


def ecdf_reference(out) -> pa.Table:
    """The entry-size ECDF in SQL over every trial's bounds (the query layer's per-trial view)."""
    con = query.entry._bounds(str(out), None, None)
    return con.sql("""
        WITH g AS (SELECT DISTINCT distribution, params, d, n FROM nested_trials)
        SELECT g.distribution, g.params, g.d, g.n, count(*) AS trials,
               avg((b.t_high IS NOT NULL AND b.t_high <= g.n)::INT) AS certain,
               avg((b.t_low < g.n)::INT) AS possible
        FROM g JOIN bounds b USING (distribution, params, d)
        GROUP BY ALL ORDER BY g.distribution, g.params, g.d, g.n""").to_arrow_table()


def same_audit(out, fast: pa.Table, slow: pa.Table) -> None:
    for f in FILTERS:
        for a, b in zip(views.audit_tables(str(out), f, fast), views.audit_tables(str(out), f, slow)):
            assert a.column_names == b.column_names
            keys = [c for c in a.column_names if c not in ("mean_seconds", "mean_rounds")]
            assert a.select(keys).equals(b.select(keys))
            for c in ("mean_seconds", "mean_rounds"):
                if c in a.column_names:
                    assert np.allclose(a[c].to_numpy(zero_copy_only=False), b[c].to_numpy(zero_copy_only=False),
                                       rtol=1e-12, equal_nan=True)


def check_views_equal_rows(out) -> None:
    """Every digest-read view of ``out`` equals its aggregation from the rows."""
    fresh()
    _, units = ResultStore(str(out)).statuses()
    assert units and all(u.from_digest for u in units)
    cells = query.cell_estimates(str(out))
    assert counts_of(cells) == reference_counts(out)
    fast = views.audit_digests(str(out))
    assert fast is not None
    same_audit(out, fast, views.audit_summary(str(out)))
    con = duckdb.connect()
    con.register("tab", ResultStore(str(out)).trials(columns=["run_id", "inside"]))
    want = con.sql("SELECT run_id, count(*)::BIGINT AS trials, count(*) FILTER (WHERE inside IS NULL)::BIGINT "
                   "AS undecided FROM tab GROUP BY run_id ORDER BY run_id").to_arrow_table()
    assert query.run_counts(str(out)).equals(want)
    # the same views from the rows (a store as written before digests) are equal, column for column
    copy = Path(str(out) + "-rows")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(out, copy)
    strip_digests(copy)
    fresh()
    _, units = ResultStore(str(copy)).statuses()
    assert units and not any(u.from_digest for u in units)
    assert query.cell_estimates(str(copy)).equals(cells)
    assert views.audit_digests(str(copy)) is None          # no digest: the audit scans the rows
    assert query.run_counts(str(copy)).equals(query.run_counts(str(out)))
    if query.nested_runs(str(out)):
        assert query.entry_ecdf(str(out)).equals(ecdf_reference(out))
        assert query.entry_ecdf(str(copy)).equals(query.entry_ecdf(str(out)))
    shutil.rmtree(copy)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_plain_runs_with_shared_cells_and_a_hull_test(tmp_path, seed):
    """Two runs of one seed share cells (each trial counted once), a third has another seed and K,
    a fourth another distribution; a hull test lies in the same directory."""
    out = tmp_path / "out"
    rng = np.random.default_rng(seed)
    base = Spec(distribution="gaussian", dims=(2, 3), sizes=(4, 12, 40), trials=int(rng.integers(40, 90)),
                queries_per_set=int(rng.integers(3, 20)), seed=seed, shard_trials=int(rng.integers(10, 40)))
    execute(base, str(out), backend="serial", progress=False)
    more = Spec.from_dict({**base.to_dict(), "trials": base.trials + 30})      # the same trials, and more
    execute(more, str(out), backend="serial", progress=False, new_run=True)
    other = Spec.from_dict({**base.to_dict(), "seed": seed + 100, "queries_per_set": 7})
    execute(other, str(out), backend="serial", progress=False, new_run=True)
    ball = Spec(distribution="ball", dims=(3,), sizes=(10, 30), trials=50, queries_per_set=10, seed=seed)
    execute(ball, str(out), backend="serial", progress=False, new_run=True)
    from mc_hull.cli import main as cli_main

    train, test = tmp_path / "train.npy", tmp_path / "test.npy"
    np.save(train, rng.normal(size=(60, 3)))
    np.save(test, rng.normal(size=(25, 3)))
    assert cli_main(["hull-test", "--train", str(train), "--test", str(test), "--out", str(out), "--serial"]) == 0
    check_views_equal_rows(out)
    cells = query.cell_estimates(str(out)).to_pylist()
    shared = [r for r in cells if r["distribution"] == "gaussian" and r["runs"] == 3]
    assert shared and all(r["trials"] == more.trials + other.trials for r in shared)


@pytest.mark.parametrize("seed", [4, 5])
def test_nested_runs(tmp_path, seed):
    out = tmp_path / "out"
    spec = Spec(distribution="gaussian", dims=(2, 3), sizes=(3, 5, 9, 17, 33), trials=120, seed=seed, nested=True,
                queries_per_set=int(np.random.default_rng(seed).integers(5, 30)))
    execute(spec, str(out), backend="serial", progress=False)
    ordinary = Spec(distribution="gaussian", dims=(3,), sizes=(5, 17), trials=60, queries_per_set=10, seed=seed)
    execute(ordinary, str(out), backend="serial", progress=False, new_run=True)
    check_views_equal_rows(out)
    fresh()
    assert query.entry_ecdf(str(out), distribution="gaussian", dims=[3]).equals(
        ecdf_reference(out).filter(pa.compute.equal(ecdf_reference(out)["d"], 3)))


def test_distance_runs(tmp_path):
    out = tmp_path / "out"
    spec = Spec(distribution="gaussian", dims=(2, 3), sizes=(8, 30), trials=60, queries_per_set=15, seed=6,
                shard_trials=30, measure="distance")
    execute(spec, str(out), backend="serial", progress=False)
    check_views_equal_rows(out)
    cells = query.cell_estimates(str(out))
    assert "dist_nn_median" in cells.column_names and all(v is not None for v in cells["p_near_10pct"].to_pylist())


@pytest.fixture()
def store(tmp_path):
    out = tmp_path / "out"
    spec = Spec(distribution="gaussian", dims=(2,), sizes=(5, 20), trials=80, queries_per_set=10, seed=9,
                shard_trials=20)
    execute(spec, str(out), backend="serial", progress=False)
    fresh()
    return out


def edit_entry(path: Path, change) -> None:
    body = json.loads(path.read_text())
    change(body)
    path.write_text(json.dumps(body, sort_keys=True))


def test_a_damaged_digest_is_ignored_and_the_rows_read(store):
    truth = query.cell_estimates(str(store))
    victim = entries(store)[1]

    def flip(body):
        planes = bytearray(base64.b64decode(body["digest"]["inside"]))
        planes[0] ^= 0xFF
        body["digest"]["inside"] = base64.b64encode(bytes(planes)).decode()
    edit_entry(victim, flip)
    fresh()
    _, units = ResultStore(str(store)).statuses()
    assert sum(not u.from_digest for u in units) == 1
    assert query.cell_estimates(str(store)).equals(truth)
    assert views.audit_digests(str(store)) is None          # one unit without audit counts: the audit scans


@pytest.mark.parametrize("how", ["removed", "another version", "audit edited", "not a dict"])
def test_a_missing_or_unreadable_digest_reads_the_rows(store, how):
    truth = query.cell_estimates(str(store))
    victim = entries(store)[0]

    def change(body):
        if how == "removed":
            del body["digest"]
        elif how == "another version":
            body["digest"]["v"] = 99
        elif how == "audit edited":
            body["digest"]["extra"]["audit"]["methods"]["trials"][0] += 5
        else:
            body["digest"] = "garbage"
    edit_entry(victim, change)
    fresh()
    assert query.cell_estimates(str(store)).equals(truth)
    assert ResultStore(str(store)).verify().problems == []


def test_a_digest_copied_from_another_unit_does_not_open(store):
    """Both units hold 20 trials: the copied planes would fit, but the seal names the other key and bytes."""
    truth = query.cell_estimates(str(store))
    a, b = entries(store)[0], entries(store)[1]
    donor = json.loads(a.read_text())["digest"]
    edit_entry(b, lambda body: body.__setitem__("digest", donor))
    fresh()
    _, units = ResultStore(str(store)).statuses()
    assert sum(not u.from_digest for u in units) == 1
    assert query.cell_estimates(str(store)).equals(truth)


def test_a_resealed_forged_digest_is_found_by_the_full_check(store):
    """A digest rewritten together with its seal opens (the seal is a checksum, not a signature): the
    reader's views would follow it, so ``ResultStore.check_digests`` decodes every unit and names it."""
    victim = entries(store)[0]
    store_obj = ResultStore(str(store))
    entry = next(e for e in store_obj.units() if str(victim).endswith(e.key + ".json"))
    inside = base64.b64encode(np.packbits(np.ones(entry.rows, dtype=bool)).tobytes()).decode()

    def forge(body):
        d = body["digest"]
        d["inside"] = inside
        d["undecided"] = base64.b64encode(np.packbits(np.zeros(entry.rows, bool)).tobytes()).decode()
        d["seal"] = _digest_seal(entry, d["inside"], d["undecided"], d["extra"])
    edit_entry(victim, forge)
    fresh()
    forged = next(e for e in ResultStore(str(store)).units() if e.key == entry.key)
    assert open_digest(forged) is not None and (open_digest(forged) == 1).all()
    found = ResultStore(str(store)).check_digests()
    assert len(found) == 1 and entry.key in found[0][0] and "forged digest" in found[0][1]


def test_damaged_rows_are_refused_though_the_digest_is_intact(store):
    shard = sorted((store / "distribution=gaussian").rglob("*.parquet"))[0]
    body = bytearray(shard.read_bytes())
    body[len(body) // 2] ^= 0x01
    shard.write_bytes(bytes(body))
    fresh()
    with pytest.raises(StoreError, match="SHA-256"):
        query.cell_estimates(str(store))
    with pytest.raises(StoreError, match="SHA-256"):
        views.run_status(str(store))
    shard.unlink()
    fresh()
    with pytest.raises(StoreError, match="missing"):
        query.cell_estimates(str(store))


def test_an_entry_copied_under_another_key_is_refused_with_its_digest(store):
    run = next(iter(ResultStore(str(store)).runs()))
    base = store / "_manifest" / "trials" / run / "gaussian" / "d=2" / "n=5"
    a, b = sorted(base.glob("*.json"))[:2]
    body = json.loads(a.read_text())
    body["key"] = body["key"].replace(a.stem, b.stem)
    b.write_text(json.dumps(body, sort_keys=True))
    fresh()
    with pytest.raises(StoreError, match="not the entry of its own unit"):
        query.cell_estimates(str(store))


def test_two_writers_and_a_resume_leave_readable_digests(tmp_path):
    spec = Spec(distribution="gaussian", dims=(2, 3), sizes=(5, 15), trials=60, queries_per_set=10, seed=12,
                shard_trials=20)
    one = tmp_path / "one"
    execute(spec, str(one), backend="serial", progress=False)
    fresh()
    want = query.cell_estimates(str(one))
    both = tmp_path / "both"
    errors = []

    def write():
        try:
            execute(spec, str(both), backend="serial", progress=False)
        except Exception as exc:    # pragma: no cover - reported below
            errors.append(exc)
    threads = [threading.Thread(target=write) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors
    fresh()
    assert ResultStore(str(both)).verify().problems == [] and ResultStore(str(both)).check_digests() == []
    assert counts_of(query.cell_estimates(str(both))) == counts_of(want)
    # a resume: a third of the shards, then the rest
    from mc_hull.jobs.plan import plan

    part = tmp_path / "part"
    shards = plan(spec)
    execute(spec, str(part), backend="serial", progress=False, shards=shards[:len(shards) // 3])
    fresh()
    assert sum(query.cell_estimates(str(part))["trials"].to_pylist()) < spec.planned_trials
    execute(spec, str(part), backend="serial", progress=False)
    fresh()
    _, units = ResultStore(str(part)).statuses()
    assert all(u.from_digest for u in units)
    assert counts_of(query.cell_estimates(str(part))) == counts_of(want)


def test_the_digest_is_small_and_sealed_to_its_entry(store):
    for e in ResultStore(str(store)).units():
        status = open_digest(e)
        assert status is not None and status.shape == (e.rows,) and set(np.unique(status)) <= {-1, 0, 1}
        assert len(json.dumps(e.digest)) < 4000


def test_the_dashboard_warm_up_fills_the_cache_and_leaves_errors_to_the_page(store):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dashboards"))
    import serve

    serve.warm(str(store))
    assert any(k[2] == "status" for k in cells_module._LAST_READ)
    assert query.cell_estimates(str(store)).num_rows == 2
    shard = sorted((store / "distribution=gaussian").rglob("*.parquet"))[0]
    shard.write_bytes(shard.read_bytes()[:50])
    fresh()
    serve.warm(str(store))                   # a damaged store: nothing raised here ...
    with pytest.raises(StoreError):          # ... the page says what is wrong
        query.cell_estimates(str(store))
