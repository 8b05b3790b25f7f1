"""A hostile user's store: stray copies, extra rows, flipped bits, rewritten schemas, foreign entries, deleted records,
duplicated runs and two writers at once, through `mc-hull run` / `mc-hull query` on a real local directory."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mc_hull.cli import main
from mc_hull.jobs.plan import plan
from mc_hull.query import cell_estimates
from mc_hull.runs.runner import execute
from mc_hull.spec import Spec
from mc_hull.store import ResultStore

SPEC = Spec(distribution="gaussian", dims=(2, 3), sizes=(5, 30), trials=40, queries_per_set=10,
            shard_trials=20, seed=5, solver="lp")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def out(tmp_path):
    path = tmp_path / "out"
    execute(SPEC, str(path), backend="serial", progress=False)
    return path


def total(path) -> int:
    return sum(r["trials"] for r in cell_estimates(str(path)).to_pylist())


def inside(path) -> int:
    return sum(r["inside"] for r in cell_estimates(str(path)).to_pylist())


def shards(path) -> list[Path]:
    return sorted((path / "distribution=gaussian").rglob("*.parquet"))


def entry_file(path, shard: Path) -> Path:
    (found,) = [p for p in (path / "_manifest").rglob("*.json")
                if json.loads(p.read_text())["location"] == str(shard.relative_to(path))]
    return found


def refused(capsys, argv, *needles) -> str:
    """Run the CLI, expect exit 2 with one line on stderr holding every needle."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def forge(path, shard: Path, table: pa.Table) -> None:
    """Replace a shard's file by ``table`` and make its manifest entry agree (size, hash, rows)."""
    import hashlib

    pq.write_table(table, shard, compression="zstd")
    body = shard.read_bytes()
    entry = entry_file(path, shard)
    data = json.loads(entry.read_text())
    data.update(size=len(body), sha256=hashlib.sha256(body).hexdigest(), rows=table.num_rows)
    entry.write_text(json.dumps(data))


def test_stray_copies_are_not_counted(out, capsys):
    base = total(out)
    assert base == SPEC.planned_trials
    for shard in shards(out)[:3]:  # copies under other names beside the originals
        (shard.parent / ("copy-" + shard.name)).write_bytes(shard.read_bytes())
        (shard.parent / shard.name.replace("-r00", "-r99")).write_bytes(shard.read_bytes())
    assert total(out) == base
    report = execute(SPEC, str(out), backend="serial", progress=False)
    assert report.computed_shards == 0 and report.skipped_shards == len(plan(SPEC))
    assert len(ResultStore(str(out)).backend.stray_files()) == 6


def test_a_shard_with_more_rows_than_planned_is_refused_and_recomputed(out, capsys):
    victim = shards(out)[0]
    table = pq.read_table(victim)
    forge(out, victim, pa.concat_tables([table, table.slice(0, 10)]))  # 30 rows, 20 planned, entry agrees
    refused(capsys, ["query", str(out)], str(victim), "30 rows, 20 planned")
    report = execute(SPEC, str(out), backend="serial", progress=False)
    assert report.computed_shards == 1 and "30 rows, 20 planned" in report.quarantined[0]
    assert total(out) == SPEC.planned_trials


def flip_inside_bit(shard: Path) -> None:
    """Flip one bit inside the data of the `inside` column chunk."""
    md = pq.read_metadata(shard)
    col = md.row_group(0).column(md.schema.to_arrow_schema().get_field_index("inside"))
    start = col.dictionary_page_offset or col.data_page_offset
    at = start + col.total_compressed_size - 2  # the last bytes of the chunk: page data, not its header
    body = bytearray(shard.read_bytes())
    body[at] ^= 0x01
    shard.write_bytes(bytes(body))


def test_a_flipped_bit_in_inside_is_caught_and_recomputed(out, capsys):
    before = inside(out)
    victim = shards(out)[1]
    flip_inside_bit(victim)
    refused(capsys, ["query", str(out)], str(victim), "SHA-256")
    with pytest.raises(OSError):  # the page checksum catches it too, for readers that ask for it
        pq.read_table(victim, page_checksum_verification=True)
    report = execute(SPEC, str(out), backend="serial", progress=False)
    assert report.computed_shards == 1
    assert inside(out) == before


def test_inside_rewritten_as_int64_is_caught_even_with_a_matching_manifest(out, capsys):
    victim = shards(out)[2]
    table = pq.read_table(victim)
    as_int = table.set_column(table.schema.get_field_index("inside"), "inside",
                              table.column("inside").cast(pa.int64()))
    pq.write_table(as_int, victim)
    refused(capsys, ["query", str(out)], str(victim), "the manifest says")
    forge(out, victim, as_int)  # now size, hash and rows agree: only the schema check remains
    refused(capsys, ["query", str(out)], str(victim), "inside is int64, not bool")
    assert execute(SPEC, str(out), backend="serial", progress=False).computed_shards == 1
    assert total(out) == SPEC.planned_trials


def test_an_entry_pointing_at_a_missing_file(out, capsys):
    victim = shards(out)[0]
    victim.unlink()
    refused(capsys, ["query", str(out)], str(victim), "file missing")
    assert execute(SPEC, str(out), backend="serial", progress=False).computed_shards == 1
    assert victim.exists() and total(out) == SPEC.planned_trials


def test_an_entry_copied_from_another_run(out, capsys):
    other = Spec.from_dict({**SPEC.to_dict(), "dims": [2], "seed": 6})
    execute(other, str(out), backend="serial", progress=False, new_run=True)
    entry = entry_file(out, [s for s in shards(out) if s.name.startswith(SPEC.run_id)][0])
    foreign = out / "_manifest" / "trials" / other.run_id / entry.relative_to(
        out / "_manifest" / "trials" / SPEC.run_id)
    foreign.write_text(entry.read_text())
    refused(capsys, ["query", str(out)], "another run")
    # the copy replaced the other run's own entry for that shard: its re-run drops it and recomputes the shard
    assert execute(other, str(out), backend="serial", progress=False, new_run=True).computed_shards == 1
    assert json.loads(foreign.read_text())["run_id"] == other.run_id
    assert total(out) == SPEC.planned_trials + other.planned_trials


def test_a_truncated_manifest_entry(out, capsys):
    entry = entry_file(out, shards(out)[3])
    entry.write_text(entry.read_text()[:20])
    refused(capsys, ["query", str(out)], "not a manifest entry")
    assert execute(SPEC, str(out), backend="serial", progress=False).computed_shards == 1
    assert total(out) == SPEC.planned_trials


RUN = ["run", "--distribution", "gaussian", "--dims", "2", "--sizes", "5", "--trials", "20",
       "--queries-per-set", "10", "--solver", "lp", "--serial", "--no-progress", "--format", "csv"]


def test_a_deleted_run_record_does_not_let_another_spec_in(tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*RUN, "--seed", "1", "--out", str(out)]) == 0
    (record,) = (out / "_runs").glob("*.json")
    run_id = record.stem
    record.unlink()
    refused(capsys, [*RUN, "--seed", "2", "--out", str(out)], run_id, "--new-run")
    for name in ("_runs", "_claims"):  # even with every record and claim gone, the rows are there
        for p in sorted((out / name).rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
    err = refused(capsys, [*RUN, "--seed", "2", "--out", str(out)], run_id, "no record")
    assert "deleted" in err
    assert main([*RUN, "--seed", "1", "--out", str(out)]) == 0  # the same spec resumes and re-records itself
    assert (out / "_runs" / f"{run_id}.json").exists()
    assert main([*RUN, "--seed", "2", "--new-run", "--out", str(out)]) == 0


def test_two_runs_with_the_same_seed_are_counted_once(tmp_path):
    out = str(tmp_path / "out")
    common = dict(distribution="gaussian", dims=(2,), trials=1000, queries_per_set=50, seed=3, solver="lp",
                  shard_trials=500)
    first, second = Spec(sizes=(8,), **common), Spec(sizes=(8, 16), **common)  # --new-run to add a size
    execute(first, out, backend="serial", progress=False)
    execute(second, out, backend="serial", progress=False, new_run=True)
    single = cell_estimates(out, run_id=first.run_id).to_pylist()[0]
    cells = {r["n"]: r for r in cell_estimates(out).to_pylist()}
    shared = cells[8]
    assert (shared["trials"], shared["runs"], shared["replicates"]) == (1000, 2, 20)
    for col in ("inside", "p_hat", "ci_low", "ci_high", "design_effect", "wilson_low", "wilson_high"):
        assert shared[col] == single[col], col
    assert cells[16]["trials"] == 1000
    # a third run with another seed holds other trials: those add up
    execute(Spec(sizes=(8,), **{**common, "seed": 4}), out, backend="serial", progress=False, new_run=True)
    assert {r["n"]: r["trials"] for r in cell_estimates(out).to_pylist()} == {8: 2000, 16: 1000}


SCRIPT = """
import sys, time
from mc_hull.cli import main
at = float(sys.argv[1])
while time.time() < at:
    time.sleep(0.0005)
sys.exit(main(sys.argv[2:]))
"""


def test_two_writers_started_together_exactly_one_is_accepted(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for attempt in range(10):
        out = tmp_path / f"out{attempt}"
        at = f"{time.time() + 6:.3f}"  # both processes import first, then start within a millisecond
        procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, at, *RUN, "--seed", str(seed), "--out", str(out)],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for seed in (1, 2)]
        results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
        for p in procs:
            p.stdout.close()
            p.stderr.close()
        codes = sorted(code for code, _ in results)
        assert codes == [0, 2], (attempt, results)
        (err,) = [e for code, e in results if code == 2]
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and "different spec" in lines[0] and "--new-run" in lines[0], err
        assert len(list((out / "_runs").glob("*.json"))) == 1
        assert len(list((out / "_claims").glob("*.json"))) == 1


def test_a_writer_refused_between_the_others_claim_and_record_names_the_other_spec(tmp_path):
    """The interleaving the two-writers test met once under load: slot claimed, record not yet written."""
    import threading

    from mc_hull.errors import StoreError

    out = tmp_path / "out"
    first, second = Spec(sizes=(8,), trials=20, seed=1), Spec(sizes=(8,), trials=20, seed=2)
    store = ResultStore(str(out))
    store.prepare()
    assert store.backend._create_exclusive(0, json.dumps({"run_id": first.run_id}).encode())
    late = threading.Timer(0.3, lambda: store.backend.put_doc("runs", first.run_id, store._record(first)))
    late.start()
    with pytest.raises(StoreError) as err:
        ResultStore(str(out)).claim_run(second)
    late.join()
    text = str(err.value)
    assert "different spec (differs in: seed)" in text and "--new-run" in text and "deleted" not in text
    # A claim whose record never comes is still refused in one line, not called a deleted record.
    store.backend._create_exclusive(1, json.dumps({"run_id": "0123456789ab"}).encode())
    third = Spec(sizes=(8,), trials=20, seed=3)
    with pytest.raises(StoreError) as err:
        ResultStore(str(out)).check_claim(third)
    assert "different spec" in str(err.value) and "\n" not in str(err.value)


def test_readme_snippets_work_verbatim_after_run_repair_and_hull_test(tmp_path, monkeypatch, capsys):
    readme = (REPO / "README.md").read_text()
    (snippet,) = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "read_parquet" in b]
    monkeypatch.chdir(tmp_path)  # the snippets read ./results, the default --out
    assert main([*RUN, "--dims", "2,3", "--sizes", "5,30", "--shard-trials", "10", "--out", "results"]) == 0
    spec_rows = 2 * 2 * 20
    victim = sorted(Path("results/distribution=gaussian").rglob("*.parquet"))[1]
    victim.write_bytes(victim.read_bytes()[:50])
    assert main([*RUN, "--dims", "2,3", "--sizes", "5,30", "--shard-trials", "10", "--out", "results"]) == 0
    assert list(Path("results/_quarantine").rglob("*.corrupt"))  # the repair moved the damaged file aside
    rng = __import__("numpy").random.default_rng(0)
    __import__("numpy").save("train.npy", rng.standard_normal((60, 3)))
    __import__("numpy").save("test.npy", rng.standard_normal((20, 3)))
    assert main(["hull-test", "--train", "train.npy", "--test", "test.npy", "--serial", "--out", "results"]) == 0
    assert list(Path("results/_hulltest").rglob("*.pq"))
    capsys.readouterr()
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)  # verbatim
    printed = capsys.readouterr().out
    assert "gaussian" in printed
    assert namespace["table"].num_rows == spec_rows
    (source,) = re.findall(r"FROM (read_parquet\(.*?\))", snippet)
    source = source.replace("{files}", repr(namespace["files"]))  # the snippet's f-string, filled in
    import duckdb

    assert duckdb.sql(f"SELECT count(*) FROM {source}").fetchall()[0][0] == spec_rows


def test_dashboard_rate_is_the_runners_recorded_rate(out):
    from mc_hull.query import views

    (stats,) = ResultStore(str(out)).run_stats().values()
    assert stats["trials"] == SPEC.planned_trials and stats["trials_per_s"] > 0
    for shard in shards(out):  # file times say nothing about the rate any more
        os.utime(shard, (1, 1))
    (row,) = views.run_status(str(out)).to_pylist()
    assert row["trials_per_s"] == pytest.approx(stats["trials_per_s"]) and row["eta_s"] == 0.0


def test_only_the_store_knows_files():
    """pyarrow.parquet / .dataset / .fs are imported only under mc_hull/store/; thresholds imports no query."""
    pattern = re.compile(r"^\s*(import|from)\s+pyarrow\.(parquet|dataset|fs)\b|^\s*from\s+pyarrow\s+import\s+.*"
                         r"\b(parquet|dataset|fs)\b", re.M)
    for path in [*(REPO / "mc_hull").rglob("*.py"), *(REPO / "dashboards").rglob("*.py")]:
        if "store" in path.relative_to(REPO).parts[:2]:
            continue
        assert not pattern.search(path.read_text()), path
    text = (REPO / "mc_hull" / "stats" / "thresholds.py").read_text()
    assert "query" not in re.findall(r"^\s*from\s+\.(\w*)", text, re.M)
    assert "run_id = name.split" not in (REPO / "mc_hull" / "query" / "views.py").read_text()


def test_the_same_spec_started_twice_at_once_is_one_run(tmp_path):
    import threading

    out = str(tmp_path / "out")
    barrier, reports, errors = threading.Barrier(2), [], []

    def go():
        barrier.wait()
        try:
            reports.append(execute(SPEC, out, backend="serial", progress=False))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors and len(reports) == 2
    store = ResultStore(out)
    assert list(store.runs()) == [SPEC.run_id] and len(store.units()) == len(plan(SPEC))
    assert total(out) == SPEC.planned_trials and store.trials().num_rows == SPEC.planned_trials
