"""Store recovery: a short cell is noted (exit 3), a store whose own directories are symbolic links is
refused in one line before anything is written, a zero-byte claim slot does not block the run's resume."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from mc_hull.cli import main

ARGS = ["--dims", "2", "--sizes", "10,30", "--trials", "400", "--queries-per-set", "50", "--seed", "5",
        "--shard-trials", "100", "--serial", "--no-progress"]


def _run(out, capfd, *extra):
    code = main(["run", *ARGS, *extra, "--out", str(out)])
    cap = capfd.readouterr()
    return code, cap.out, cap.err


def _query(out, capfd, *extra):
    code = main(["query", str(out), *extra])
    cap = capfd.readouterr()
    return code, cap.out, cap.err


@pytest.fixture
def done(tmp_path, capfd):
    out = tmp_path / "out"
    code, _, err = _run(out, capfd)
    assert code == 0, err
    return out


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file()}


# -- a cell with fewer trials than planned -------------------------------------------------
def test_complete_store_queries_with_exit_0(done, capfd):
    code, out, err = _query(done, capfd)
    assert code == 0 and "incomplete" not in out and err == ""


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_a_short_cell_is_noted_and_exits_3(done, capfd, fmt):
    """An interrupted run: one shard of cell (2, 10) never committed (entry and file gone)."""
    manifest = done / "_manifest" / "trials"
    entry = next(manifest.rglob("n=10/r0000002-0000004.json"))
    (done / json.loads(entry.read_text())["location"]).unlink()
    entry.unlink()
    code, out, err = _query(done, capfd, "--format", fmt)
    assert code == 3
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "1 cell(s) hold fewer trials than planned" in lines[0] and "re-run" in lines[0]
    if fmt == "table":
        assert "# incomplete: gaussian d = 2, N = 10: 300 of 400 planned trials" in out
    elif fmt == "json":
        rows = json.loads(out)
        assert {(r["n"], r["trials"]) for r in rows} == {(10, 300), (30, 400)}
    code, _, err = _run(done, capfd)      # the re-run completes it
    assert code == 0, err
    assert _query(done, capfd)[0] == 0


def test_a_planned_cell_without_any_trials_is_noted(done, capfd):
    manifest = done / "_manifest" / "trials"
    for entry in manifest.rglob("n=30/*.json"):
        (done / json.loads(entry.read_text())["location"]).unlink()
        entry.unlink()
    code, out, err = _query(done, capfd)
    assert code == 3 and "# incomplete: gaussian d = 2, N = 30: 0 of 400 planned trials" in out


# -- symbolic links inside the store -------------------------------------------------------
@pytest.mark.parametrize("link", ["_manifest", "_runs", "_claims", "_stats", "distribution=gaussian",
                                  "_manifest/trials", "_manifest/trials/RUN"])
def test_a_store_directory_that_is_a_symlink_is_refused_before_writing(tmp_path, capfd, link):
    other, out = tmp_path / "other", tmp_path / "out"
    assert _run(other, capfd)[0] == 0
    assert _run(out, capfd)[0] == 0
    run_id = next((out / "_runs").glob("*.json")).stem
    rel = link.replace("RUN", run_id)
    # the victim's directory is replaced by a link into the other store, and one shard is lost
    shutil.rmtree(out / rel)
    os.symlink(other / rel, out / rel)
    before = _snapshot(other)
    code, _, err = _run(out, capfd, "--trials", "500", "--new-run")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "is a symbolic link" in lines[0] and "Traceback" not in err
    assert _snapshot(other) == before


def test_the_root_itself_may_be_a_symlink(tmp_path, capfd):
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "link")
    assert _run(tmp_path / "link", capfd)[0] == 0
    assert _query(tmp_path / "link", capfd)[0] == 0


# -- a damaged claim slot ------------------------------------------------------------------
@pytest.mark.parametrize("body", [b"", b"\0\0\0", b"{", b"[]", b'{"run": 1}'])
def test_a_damaged_claim_slot_does_not_block_the_runs_own_resume(done, capfd, body):
    slot = next((done / "_claims").glob("*.json"))
    slot.write_bytes(body)
    entry = next((done / "_manifest" / "trials").rglob("n=10/r0000000-0000002.json"))
    entry.unlink()  # something left to resume
    code, _, err = _run(done, capfd)
    assert code == 0 and "another" not in err, err
    assert _query(done, capfd)[0] == 0


def test_a_damaged_claim_slot_still_refuses_another_spec(done, capfd):
    for slot in (done / "_claims").glob("*.json"):
        slot.write_bytes(b"")
    code, _, err = _run(done, capfd, "--trials", "300")
    assert code == 2 and "with a different spec" in err and "Traceback" not in err
