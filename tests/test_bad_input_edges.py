"""The one-line, exit-2 edges of issue 24 (hull-test seeds, --out '' and -, a bad --host, a field given
twice in JSON) and a sample of the option fuzzer (tests/cli_fuzz.py): no traceback, no hang."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from mc_hull.errors import SpecError
from mc_hull.spec import Spec

HERE = Path(__file__).parent

#: (argv, needle in the one line); OUT must stay absent, files are in the case directory.
CASES = {
    "hull-test seed -1 random projection": (["hull-test", "--train", "tr.npy", "--test", "te.npy", "--reduce",
                                             "random-projection:2", "--seed", "-1", "--serial", "--out", "OUT"],
                                            "--seed: must be an integer in [0, 2^63 - 1]"),
    "hull-test seed -1 digits split": (["hull-test", "--dataset", "digits", "--seed", "-1", "--serial", "--out", "OUT"],
                                       "--seed"),
    "hull-test seed 2^64": (["hull-test", "--dataset", "digits", "--seed", "18446744073709551616", "--out", "OUT"],
                            "--seed"),
    "hull-test seed 1e30": (["hull-test", "--dataset", "digits", "--seed", "1e30", "--out", "OUT"], "--seed"),
    "hull-test seed nan": (["hull-test", "--dataset", "digits", "--seed", "nan", "--out", "OUT"], "--seed"),
    "run --out ''": (["run", "--dims", "2", "--sizes", "5", "--trials", "4", "--serial", "--out", ""],
                     "--out: must name a directory or URI, got an empty string"),
    "run --out ' '": (["run", "--dims", "2", "--sizes", "5", "--trials", "4", "--serial", "--out", " "], "--out"),
    "run --out -": (["run", "--dims", "2", "--sizes", "5", "--trials", "4", "--serial", "--out", "-"],
                    "cannot go to standard output"),
    "hull-test --out ''": (["hull-test", "--train", "tr.npy", "--test", "te.npy", "--out", ""], "--out"),
    "hull-test --out -": (["hull-test", "--train", "tr.npy", "--test", "te.npy", "--out", "-"], "--out"),
    "submit --out -": (["submit", "--address", "http://127.0.0.1:9", "--out", "-"], "--out"),
    "query ''": (["query", ""], "DIR"),
    "query -": (["query", "-"], "DIR"),
    "plot -": (["plot", "-", "--out", "fig.png"], "DIR"),
    "dashboard ''": (["dashboard", ""], "DIR"),
    "dashboard bad host": (["dashboard", "OUT", "--host", "bad host"], "--host: not an address or host name"),
    "dashboard host ::1::": (["dashboard", "OUT", "--host", "::1::"], "--host"),
    "dashboard host 999.1.1.1": (["dashboard", "OUT", "--host", "999.1.1.1"], "--host"),
    "spec-json duplicate field": (["run", "--spec-json", '{"trials": 10, "trials": 20}', "--out", "OUT"],
                                  "--spec-json: field 'trials' is given twice"),
    "spec-json duplicate param": (["run", "--spec-json", '{"distribution": "subspace", "params": {"k": 1, "k": 2}}',
                                   "--out", "OUT"], "field 'k' is given twice"),
    "plot --dims beyond int32": (["plot", "RESULTS", "--out", "fig.png", "--dims", "999999999999"],
                                 "--dims: must be in [1, 4096]"),
    "plot --dims ''": (["plot", "RESULTS", "--out", "fig.png", "--dims", ""], "--dims: empty"),
    "dashboard host 1.5 (1.0.0.5, not here)": (["dashboard", "OUT", "--host", "1.5"], "--host: cannot listen on"),
    "dashboard host of another machine": (["dashboard", "OUT", "--host", "8.8.8.8"], "--host: cannot listen on"),
    "run --preset ''": (["run", "--preset", "", "--out", "OUT"], "--preset: empty"),
    "run SPEC ''": (["run", "", "--out", "OUT"], "SPEC.toml: empty"),
    "run --spec-json ''": (["run", "--spec-json", "", "--out", "OUT"], "--spec-json: empty"),
    "submit --preset ''": (["submit", "--preset", "", "--address", "http://127.0.0.1:9", "--out", "OUT"],
                           "--preset: empty"),
}


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("edges")
    rng = np.random.default_rng(0)
    np.save(tmp / "tr.npy", rng.standard_normal((30, 3)))
    np.save(tmp / "te.npy", rng.standard_normal((5, 3)))
    from mc_hull.runs.runner import execute

    execute(Spec(dims=(2,), sizes=(5,), trials=10, seed=1), str(tmp / "results"), backend="serial", progress=False)
    return tmp


@pytest.mark.parametrize("case", list(CASES))
def test_one_line_exit_2_nothing_written(case_dir, tmp_path, monkeypatch, capfd, case):
    from mc_hull.cli import main

    argv, needle = CASES[case]
    out = tmp_path / "out"
    argv = [str(out) if a == "OUT" else str(case_dir / "results") if a == "RESULTS" else a for a in argv]
    monkeypatch.chdir(case_dir)
    before = sorted(os.listdir(case_dir))
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert needle in err[0] and "Traceback" not in err[0], err[0]
    assert not out.exists() and sorted(os.listdir(case_dir)) == before   # nothing written, not even in cwd


def test_spec_from_json_refuses_a_field_given_twice():
    with pytest.raises(SpecError, match="spec: field 'seed' is given twice"):
        Spec.from_json('{"seed": 1, "seed": 2}')


def test_the_store_refuses_an_empty_or_dash_location():
    from mc_hull.errors import StoreError
    from mc_hull.store import ResultStore

    for bad in ("", "  ", "-"):
        with pytest.raises(StoreError, match="is not a results location"):
            ResultStore(bad)


def test_fuzzed_options_never_traceback(tmp_path):
    """A fixed sample of the fuzzer's cases (every subcommand, bad values of every kind)."""
    import sys

    sys.path.insert(0, str(HERE))
    import cli_fuzz

    results = cli_fuzz.setup(tmp_path)
    wrong, tally = [], {}
    for i, (name, argv) in enumerate(cli_fuzz.cases(tmp_path, results, sample=60)):
        scratch = tmp_path / f"case{i}"
        scratch.mkdir()
        code, err = cli_fuzz.run_case(argv, scratch, cli_fuzz.SERVE_SECONDS if argv[0] == "dashboard" else 60)
        v = cli_fuzz.verdict(code, err, argv)
        tally[v] = tally.get(v, 0) + 1
        if v not in ("ok", "refused", "served"):
            wrong.append((name, v, err.strip().splitlines()[-1:]))
    assert not wrong, (tally, wrong)
    assert tally.get("refused", 0) >= 30


def test_a_unit_that_fails_while_computing_ends_in_one_line_not_a_traceback(tmp_path, monkeypatch, capfd):
    """After the run's record is written, an unexpected exception in a unit is one line (exit 1), nothing
    of the unit is stored, and a re-run resumes."""
    from mc_hull.cli import main
    from mc_hull.samplers import SAMPLERS, Sampler
    from mc_hull.store import ResultStore

    class Broken(Sampler):
        name = "broken-test"

        def _random(self, n, rng):
            if n > 3 and os.environ.get("BROKEN_TEST_FAIL") == "1":
                raise ZeroDivisionError("simulated failure in a draw")
            return rng.standard_normal((n, self.d))

    monkeypatch.setitem(SAMPLERS, "broken-test", Broken)
    monkeypatch.setenv("BROKEN_TEST_FAIL", "1")
    code = main(["run", "--distribution", "broken-test", "--dims", "2", "--sizes", "5", "--trials", "20",
                 "--serial", "--no-progress", "--out", str(tmp_path / "early")])
    err = capfd.readouterr().err
    assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "nothing was written" in err and not (tmp_path / "early").exists()   # caught by the plan's calibration
    monkeypatch.setattr("mc_hull.jobs.plan.calibration", lambda spec, cells=None: 1.0)
    out = tmp_path / "out"
    argv = ["run", "--distribution", "broken-test", "--dims", "2", "--sizes", "5", "--trials", "20",
            "--serial", "--no-progress", "--out", str(out)]
    code = main(argv)
    err = capfd.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.startswith("mc-hull: error")]
    assert code == 1 and "Traceback" not in err and len(lines) == 1, err
    assert "ZeroDivisionError: simulated failure in a draw" in lines[0] and "re-run resumes" in lines[0]
    store = ResultStore(str(out))
    assert len(store.runs()) == 1 and store.units() == []
