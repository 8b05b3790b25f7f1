"""The mc-hull command line: bad input gives one line and exit 2 with nothing written; run and query work."""

import json
import os
import subprocess
import sys

import pytest

from mc_hull.cli import main


@pytest.mark.parametrize("argv, needle", [
    (["run", "--dims", "0"], "dims"),
    (["run", "--sizes", "0,10"], "sizes"),
    (["run", "--trials", "0"], "trials"),
    (["run", "--dims", "2,x"], "dims"),
    (["run", "--sizes", "ten"], "sizes"),
    (["run", "--trials", "many"], "--trials"),
    (["run", "--distribution", "uniform"], "valid: "),
    (["run", "--solver", "simplex"], "valid: auto"),
    (["run", "--preset", "slow"], "preset"),
    (["run", "--param", "k"], "--param"),
    (["run", "--tol", "nan"], "tol"),
])
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, argv, needle):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) if "--trials" in argv and "many" in argv else _no_raise():
        code = main([*argv, "--out", str(out)])
        assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and "Traceback" not in err[0]
    assert not out.exists()


class _no_raise:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_bad_spec_file_and_bad_out(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text("dims = [2,\n")
    assert main(["run", str(spec), "--out", str(tmp_path / "o")]) == 2
    assert "does not parse" in capsys.readouterr().err
    afile = tmp_path / "file"
    afile.write_text("x")
    assert main(["run", "--dims", "2", "--sizes", "3", "--trials", "2", "--serial", "--out", str(afile)]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_unwritable_out_as_root_is_refused(tmp_path, capsys):
    # A path under a regular file can never be created, whoever runs the test.
    afile = tmp_path / "file"
    afile.write_text("x")
    assert main(["run", "--dims", "2", "--sizes", "3", "--trials", "2", "--serial",
                 "--out", str(afile / "sub")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_serial_run_then_query_formats(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["run", "--distribution", "cube", "--dims", "2,3", "--sizes", "4,40", "--trials", "60",
            "--queries-per-set", "20", "--seed", "5", "--serial", "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "p_hat" in printed and "ci_low" in printed and "99%" in printed
    assert main(["query", str(out), "--format", "json"]) == 0
    cells = json.loads(capsys.readouterr().out)  # one document
    assert len(cells) == 4 and all(c["trials"] == 60 for c in cells)
    assert main(["query", str(out), "--format", "jsonl"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line) for line in lines] == cells
    assert main(["query", str(out), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("distribution,d,n,") and len(lines) == 5
    assert main(["query", str(tmp_path / "missing")]) == 2
    assert "no such results directory" in capsys.readouterr().err


def test_console_script_runs_on_embedded_ray(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.run(
        [sys.executable, "-m", "mc_hull", "run", "--distribution", "cube", "--dims", "2",
         "--sizes", "5,50", "--trials", "40", "--queries-per-set", "10", "--shard-trials", "20",
         "--workers", "2", "--no-progress", "--out", str(out)],
        capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "4 shards computed" in proc.stderr
    assert len(list(out.rglob("*.parquet"))) == 4
    bad = subprocess.run([sys.executable, "-m", "mc_hull", "run", "--dims", "-3"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_flags_are_merged_into_the_spec_file_before_validation(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text('distribution = "subspace"\nsizes = [10]\ntrials = 20\nqueries_per_set = 10\n'
                    'seed = 3\n[params]\nk = 3\n')
    out = tmp_path / "out"
    # k = 3 is only valid once --dims replaces the default dims (2, 4, 8).
    assert main(["run", str(spec), "--dims", "4", "--serial", "--no-progress", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["query", str(out), "--format", "jsonl"]) == 0
    (cell,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (cell["d"], cell["params"], cell["trials"]) == (4, "k=3", 20)
    assert main(["run", str(spec), "--serial", "--out", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "params.k" in err[0]
    assert not (tmp_path / "other").exists()
