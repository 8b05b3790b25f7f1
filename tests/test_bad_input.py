"""Bad input of every kind: one line naming the problem, exit status 2, no traceback, nothing written."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from mc_hull.errors import McHullError, SpecError
from mc_hull.spec import Spec


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _files(tmp):
    """Input files the cases refer to by name."""
    rng = np.random.default_rng(0)
    np.save(tmp / "real.npy", rng.standard_normal((30, 3)))
    np.save(tmp / "complex.npy", rng.standard_normal((30, 3)) + 1e-3j)
    np.save(tmp / "complex_test.npy", rng.standard_normal((5, 3)).astype(np.complex64))
    np.save(tmp / "object.npy", np.array([[1, "a"], [2, "b"]], dtype=object), allow_pickle=True)
    np.save(tmp / "strings.npy", np.array([["1", "2"], ["3", "4"]]))
    (tmp / "deep_array.toml").write_text("dims = " + "[" * 5000 + "]" * 5000 + "\n")
    (tmp / "deep_table.toml").write_text("[params]\nk = " + "{a = " * 300 + "1" + "}" * 300 + "\n")
    (tmp / "deep_headers.toml").write_text("[" + ".".join(["a"] * 3000) + "]\nx = 1\n")
    (tmp / "tol_string.toml").write_text('tol = "1e-9"\ndims = [2]\nsizes = [5]\ntrials = 4\n')
    (tmp / "tol_tiny.toml").write_text("tol = 1e-18\ndims = [2]\nsizes = [5]\ntrials = 4\n")
    (tmp / "tol_table.toml").write_text("dims = [2]\n[tol]\nvalue = 1e-9\n")
    (tmp / "dims_range_bad.toml").write_text('dims = "2..x"\n')
    (tmp / "sizes_range.toml").write_text('sizes = "10..1000"\n')
    (tmp / "panels_empty.toml").write_text("panels = []\n")
    (tmp / "panels_dup.toml").write_text('[[panels]]\nname = "a"\ndims = [2]\n[[panels]]\nname = "a"\ndims = [3]\n')
    (tmp / "panels_bad_field.toml").write_text('[[panels]]\ndims = [2]\n[[panels]]\ndimz = [3]\n')
    (tmp / "panels_bad_value.toml").write_text('sizes = [5]\n[[panels]]\ndims = "2..3"\n'
                                               '[[panels]]\ndistribution = "subspace"\ndims = [2]\nparams = {k = 5}\n')
    (tmp / "binary.toml").write_bytes(b"\xff\xfe\x00dims")
    (tmp / "not_a_table.toml").write_text("panels = 3\n")


S3_DOWN = "s3://bucket/prefix?endpoint_override=127.0.0.1:{port}&scheme=http"

#: (argv, needle in the one line); OUT is the --out that must stay absent, files are under the case dir.
CASES = {
    # issue 13 section 3
    "mixture separation=1e308": (["run", "--distribution", "mixture", "--param", "separation=1e308", "--dims", "2",
                                  "--sizes", "5", "--trials", "4", "--serial", "--out", "OUT"], "params.separation"),
    "mixture components=1e9 (int)": (["run", "--distribution", "mixture", "--param", "components=1000000000",
                                      "--dims", "2", "--sizes", "5", "--trials", "4", "--out", "OUT"],
                                     "params.components"),
    "mixture components=1e9 (float)": (["run", "--distribution", "mixture", "--param", "components=1e9",
                                        "--out", "OUT"], "params.components"),
    "unreachable S3 --out (run)": (["run", "--dims", "2", "--sizes", "5", "--trials", "4", "--serial",
                                    "--out", "S3DOWN"], "--out: cannot"),
    "unreachable S3 DIR (query)": (["query", "S3DOWN"], "DIR: cannot read s3://"),
    "--out under /sys": (["run", "--dims", "2", "--sizes", "5", "--trials", "4", "--serial",
                          "--out", "/sys/mc-hull-test-out"], "--out"),
    "deeply nested TOML array": (["run", "deep_array.toml", "--out", "OUT"], "nested too deeply"),
    "deeply nested TOML inline table": (["run", "deep_table.toml", "--out", "OUT"], "params.k"),
    "deeply nested TOML headers": (["run", "deep_headers.toml", "--out", "OUT"], "unknown spec field"),
    "tol as a string (spec file)": (["run", "tol_string.toml", "--out", "OUT"], "tol: must be a number"),
    "tol as a table (spec file)": (["run", "tol_table.toml", "--out", "OUT"], "tol: must be a number"),
    "tol below float resolution (spec file)": (["run", "tol_tiny.toml", "--out", "OUT"], "tol"),
    "tol below float resolution (run)": (["run", "--tol", "1e-18", "--out", "OUT"], "tol"),
    "tol 1 (run)": (["run", "--tol", "1", "--out", "OUT"], "tol"),
    "tol negative (run)": (["run", "--tol", "-1e-9", "--out", "OUT"], "tol"),
    "tol inf (run)": (["run", "--tol", "inf", "--out", "OUT"], "tol"),
    "tol nan (run)": (["run", "--tol", "nan", "--out", "OUT"], "tol"),
    "tol a word (run)": (["run", "--tol", "small", "--out", "OUT"], "--tol"),
    "tol below float resolution (hull-test)": (["hull-test", "--train", "real.npy", "--test", "real.npy",
                                                "--tol", "1e-18", "--serial", "--out", "OUT"], "--tol"),
    "tol 2 (hull-test)": (["hull-test", "--train", "real.npy", "--test", "real.npy", "--tol", "2",
                           "--serial", "--out", "OUT"], "--tol"),
    "complex train (hull-test)": (["hull-test", "--train", "complex.npy", "--test", "real.npy", "--serial",
                                   "--out", "OUT"], "complex values"),
    "complex test (hull-test)": (["hull-test", "--train", "real.npy", "--test", "complex_test.npy", "--serial",
                                  "--out", "OUT"], "complex values"),
    # cases of our own
    "object array (needs pickle)": (["hull-test", "--train", "object.npy", "--test", "real.npy", "--serial",
                                     "--out", "OUT"], "--train"),
    "string array": (["hull-test", "--train", "strings.npy", "--test", "real.npy", "--serial",
                      "--out", "OUT"], "not a numeric array"),
    "empty range": (["run", "--dims", "3..1", "--out", "OUT"], "is empty"),
    "range step 0": (["run", "--dims", "2..12..0", "--out", "OUT"], "step"),
    "range not integers": (["run", "--dims", "2..x", "--out", "OUT"], "START..STOP"),
    "range with four parts": (["run", "--dims", "2..4..1..1", "--out", "OUT"], "START..STOP"),
    "range too long": (["run", "--dims", "1..100000", "--out", "OUT"], "more than 4096"),
    "range into d > 4096": (["run", "--dims", "4000..4100", "--out", "OUT"], "dims"),
    "range duplicates": (["run", "--dims", "2..4,3", "--out", "OUT"], "duplicates"),
    "range in a spec file, bad": (["run", "dims_range_bad.toml", "--out", "OUT"], "dims"),
    "range for sizes": (["run", "sizes_range.toml", "--out", "OUT"], "are for dims"),
    "sizes range on the command line": (["run", "--sizes", "10..100", "--out", "OUT"], "are for dims"),
    "absurd trials": (["run", "--trials", "1e30", "--out", "OUT"], "trials: must be in"),
    "huge plan": (["run", "--trials", "1e12", "--out", "OUT"], "beyond the limit"),
    "seed beyond 63 bits": (["run", "--seed", "18446744073709551616", "--out", "OUT"], "seed"),
    "separation inf": (["run", "--distribution", "mixture", "--param", "separation=inf", "--out", "OUT"],
                       "params.separation"),
    "empty panels": (["run", "panels_empty.toml", "--out", "OUT"], "panels"),
    "duplicate panel names": (["run", "panels_dup.toml", "--out", "OUT"], "unique"),
    "panel with an unknown field": (["run", "panels_bad_field.toml", "--out", "OUT"], "panels.b.dimz"),
    "panel with a bad value": (["run", "panels_bad_value.toml", "--out", "OUT"], "panels.b.params.k"),
    "panel preset with --dims": (["run", "--preset", "paper-fig1", "--dims", "2", "--out", "OUT"], "--dims"),
    "panel preset with --param": (["run", "--preset", "paper-fig1", "--param", "k=3", "--out", "OUT"], "--param"),
    "spec file not UTF-8": (["run", "binary.toml", "--out", "OUT"], "spec"),
    "spec file is a directory": (["run", ".", "--out", "OUT"], "directory"),
    "panels not tables": (["run", "not_a_table.toml", "--out", "OUT"], "panels"),
    "plot dims range bad": (["plot", "OUT", "--out", "fig.png", "--dims", "2..x"], "--dims"),
}


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad")
    _files(tmp)
    return tmp


#: Also run as a real process (the console entry point, interpreter start-up and all).
SUBPROCESS = ("unreachable S3 --out (run)", "--out under /sys", "deeply nested TOML array", "complex train (hull-test)")


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_nothing_written(case_dir, tmp_path, monkeypatch, capfd, case):
    from mc_hull.cli import main

    argv, needle = CASES[case]
    out = tmp_path / "out"
    s3 = S3_DOWN.format(port=_free_port())
    argv = [str(out) if a == "OUT" else s3 if a == "S3DOWN" else a for a in argv]
    for key, value in {"RAY_USAGE_STATS_ENABLED": "0", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y",
                       "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(case_dir)
    runs = [("in-process", lambda: main(argv))]
    if case in SUBPROCESS:
        runs.append(("process", lambda: subprocess.run([sys.executable, "-m", "mc_hull", *argv],
                                                       capture_output=True, text=True, timeout=120)))
    for how, call in runs:
        try:
            result = call()
        except SystemExit as exc:  # argparse's own errors (a flag's type)
            result = exc.code
        if how == "process":
            code, stderr = result.returncode, result.stderr
        else:
            code, stderr = result, capfd.readouterr().err
        err = stderr.strip().splitlines()
        assert code == 2, (how, stderr[-2000:])
        assert len(err) == 1, (how, stderr[-2000:])
        assert "Traceback" not in stderr and needle in err[0], (how, err[0])
        assert err[0].startswith("mc-hull")
        assert not out.exists() and not (case_dir / "results").exists() and not (case_dir / "fig.png").exists()
        assert not os.path.exists("/sys/mc-hull-test-out")


@pytest.mark.parametrize("value", [None, "1e-9", b"1e-9", [1e-9], 1e-18, 0.0, 1.0, float("nan"), True, 1j])
def test_spec_tol_refused_in_one_line(value):
    with pytest.raises(SpecError) as err:
        Spec(tol=value)
    assert str(err.value).startswith("tol:") and "\n" not in str(err.value)


@pytest.mark.parametrize("text", ['{"tol": null}', '{"dims": "2..0"}', '{"sizes": [1e400]}',
                                  '[' * 100000 + ']' * 100000, '{"params": {"k": {"k": {"k": 1}}}}', "not json"])
def test_spec_from_json_refuses_in_one_line(text):
    with pytest.raises(McHullError) as err:
        Spec.from_json(text)
    assert "\n" not in str(err.value)


def test_spec_is_frozen_and_normalised_once():
    import dataclasses

    spec = Spec(dims="2..6..2", sizes="10,1e2", params={}, tol=1e-9)
    assert spec.dims == (2, 4, 6) and spec.sizes == (10, 100) and spec.solver != "auto"
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.dims = (3,)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.solver = "lp"
    assert Spec(**{f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}) == spec  # idempotent
    assert dataclasses.replace(spec, seed=3).seed == 3 and dataclasses.replace(spec, seed=3).dims == (2, 4, 6)
    assert spec.sizes_for(4) == (10, 100)
    import inspect

    import mc_hull.spec as module

    assert "__setattr__" not in inspect.getsource(module)


@pytest.mark.parametrize("case", ["complex points", "complex queries", "complex tol", "tol string", "tol None",
                                  "tol tiny"])
def test_api_refuses_in_one_line(case):
    import mc_hull
    from mc_hull.errors import InputError

    X = np.random.default_rng(1).standard_normal((40, 3))
    args, kw = {"complex points": ((X + 1e-9j, X[0]), {}), "complex queries": ((X, X[:2] + 0j), {}),
                "complex tol": ((X, X[0]), {"tol": 1e-9 + 0j}), "tol string": ((X, X[0]), {"tol": "1e-9"}),
                "tol None": ((X, X[0]), {"tol": None}), "tol tiny": ((X, X[0]), {"tol": 1e-18})}[case]
    for call in (mc_hull.in_hull, mc_hull.decide):
        with pytest.raises(InputError) as err:
            call(*args, **kw)
        assert "\n" not in str(err.value) and str(err.value).split(":")[0] in ("points", "queries", "tol")
