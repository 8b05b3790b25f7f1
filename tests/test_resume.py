"""Resume and idempotence of `mc-hull run` on a local store (serial: no Ray needed)."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from mc_hull.cli import main
from mc_hull.jobs.plan import plan
from mc_hull.runs.runner import execute
from mc_hull.spec import Spec

BASE = ["run", "--distribution", "gaussian", "--dims", "2,3", "--sizes", "5,30", "--trials", "40",
        "--queries-per-set", "10", "--shard-trials", "20", "--seed", "1", "--solver", "lp", "--serial", "--no-progress",
        "--format", "csv"]
SPEC = Spec(distribution="gaussian", dims=(2, 3), sizes=(5, 30), trials=40, queries_per_set=10,
            shard_trials=20, seed=1, solver="lp")
N_SHARDS = len(plan(SPEC))


def rows(out):
    return duckdb.sql(f"""SELECT d, n, run_id, replicate, query, inside, status, certificate_value
        FROM read_parquet('{out}/**/*.parquet', hive_partitioning = true)
        ORDER BY d, n, replicate, query""").fetchall()


def test_rerun_skips_committed_shards_and_says_how_many(tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*BASE, "--out", str(out)]) == 0
    assert f"{N_SHARDS} shards computed, 0 skipped" in capsys.readouterr().err
    before = rows(out)
    sorted(out.rglob("*.parquet"))[1].unlink()
    assert main([*BASE, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"{N_SHARDS - 1} of {N_SHARDS} shards already committed, 1 to run" in err
    assert f"1 shards computed, {N_SHARDS - 1} skipped" in err
    assert rows(out) == before and len(before) == SPEC.planned_trials


def test_changed_spec_is_refused_unless_new_run(tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*BASE, "--out", str(out)]) == 0
    capsys.readouterr()
    files = sorted(p.name for p in out.rglob("*") if p.is_file())
    changed = [*BASE, "--out", str(out), "--trials", "50"]
    assert main(changed) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("mc-hull: error:")]
    assert len(errors) == 1 and "Traceback" not in err
    assert "different spec" in errors[0] and "trials" in errors[0] and "--new-run" in errors[0]
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == files  # nothing written
    assert main([*changed, "--new-run"]) == 0
    assert len(list((out / "_runs").glob("*.json"))) == 2


def test_truncated_shard_is_named_by_query_then_moved_aside_and_recomputed(tmp_path, capsys):
    out = tmp_path / "out"
    execute(SPEC, str(out), backend="serial", progress=False)
    before = rows(out)
    victim = sorted(out.rglob("*.parquet"))[2]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 3])
    capsys.readouterr()
    assert main(["query", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(victim) in err and "truncated" in err and "re-run" in err
    report = execute(SPEC, str(out), backend="serial", progress=False)
    err = capsys.readouterr().err
    assert f"moved aside damaged shard file {victim} (" in err and "it will be recomputed" in err
    assert report.computed_shards == 1 and len(report.quarantined) == 1
    assert report.quarantined[0].startswith(f"{victim} (")
    (moved,) = (out / "_quarantine").rglob("*.corrupt")  # where neither the store nor the README readers look
    assert moved.name.startswith(victim.name) and moved.read_bytes() == data[: len(data) // 3]
    assert rows(out) == before
    assert main(["query", str(out), "--format", "csv"]) == 0


def test_wrong_row_count_or_foreign_file_is_not_trusted(tmp_path):
    out = tmp_path / "out"
    execute(SPEC, str(out), backend="serial", progress=False)
    files = sorted(out.rglob("*.parquet"))
    files[0].write_bytes(files[1].read_bytes())  # a readable file, but another shard's rows
    report = execute(SPEC, str(out), backend="serial", progress=False)
    assert report.computed_shards == 1 and len(report.quarantined) == 1


def test_leftover_temporary_files_are_never_read(tmp_path):
    out = tmp_path / "out"
    execute(SPEC, str(out), backend="serial", progress=False)
    part = next(out.rglob("*.parquet")).parent
    (part / ".half-written.parquet.abc.tmp").write_bytes(b"PAR1 garbage")
    assert sum(r["trials"] for r in __import__("mc_hull.query", fromlist=["x"]).cell_estimates(str(out)).to_pylist()) \
        == SPEC.planned_trials


def test_store_data_is_never_unpickled_or_evaluated():
    root = Path(__file__).resolve().parents[1] / "mc_hull"
    paths = [p for folder in ("store", "query", "jobs", "runs", "distributed") for p in (root / folder).glob("*.py")]
    paths.append(root / "samplers" / "keyed.py")
    assert len(paths) >= 25
    for path in paths:
        text = path.read_text()
        assert not re.search(r"\b(pickle|cloudpickle|marshal|shelve)\b|\beval\(|\bexec\(", text), path
