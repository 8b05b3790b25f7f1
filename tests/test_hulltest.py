"""mc-hull hull-test: agreement with an independent LP, bad data, Ray = serial, re-runs, the digits sweep."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.optimize import linprog
from scipy.spatial import ConvexHull

from mc_hull.jobs.hulltest import HullTestSpec
from mc_hull.runs import hulltest
from mc_hull.cli import main
from mc_hull.runs.datasets import ArrayData, Reduction
from mc_hull.store import HullTestStore


def lp_inside(X: np.ndarray, x: np.ndarray) -> bool:
    """Independent check: is there lambda >= 0, sum 1, X^T lambda = x? (HiGHS feasibility LP)."""
    n = len(X)
    res = linprog(np.zeros(n), A_eq=np.vstack([X.T, np.ones(n)]), b_eq=np.append(x, 1.0),
                  bounds=(0, None), method="highs")
    assert res.status in (0, 2), res.message
    return res.status == 0


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """40 Gaussian training points in R^3 and 60 test points: inside, outside, training points and
    points 1e-4 inside, on, and 1e-4 outside facets of the hull."""
    rng = np.random.default_rng(11)
    X = rng.normal(size=(40, 3))
    hull = ConvexHull(X)
    facets = hull.equations[:10]  # unit outward normal n, offset b: n.x + b = 0 on the facet
    centroids = X[hull.simplices[:10]].mean(axis=1)
    lam = rng.dirichlet(np.ones(40), size=10)
    Q = np.vstack([
        lam @ X,                                     # inside
        rng.normal(size=(10, 3)) * 4,                # mostly outside
        X[rng.choice(40, 10, replace=False)],        # training points (inside: vertices count)
        centroids,                                   # on the boundary
        centroids - 1e-4 * facets[:, :3],            # just inside
        centroids + 1e-4 * facets[:, :3],            # just outside
    ])
    d = tmp_path_factory.mktemp("case")
    np.save(d / "train.npy", X)
    np.save(d / "test.npy", Q)
    return X, Q, d


def run_cli(capsys, *argv):
    code = main(["hull-test", *map(str, argv)])
    return code, capsys.readouterr()


def test_every_answer_agrees_with_an_independent_lp(case, tmp_path, capsys):
    X, Q, d = case
    out = tmp_path / "out"
    code, printed = run_cli(capsys, "--train", d / "train.npy", "--test", d / "test.npy", "--out", out,
                            "--serial", "--format", "json")
    assert code == 0, printed.err
    (summary,) = json.loads(printed.out)  # --format json: one document, an array of rows
    (test_id,) = HullTestStore(str(out)).records()
    rows = HullTestStore(str(out)).points(test_id).to_pylist()
    assert [r["index"] for r in rows] == list(range(len(Q)))
    assert not any(r["undecided"] for r in rows)
    expected = [lp_inside(X, q) for q in Q]
    assert [r["inside"] for r in rows] == expected
    assert expected[:10] == [True] * 10 and expected[20:40] == [True] * 20 and expected[50:] == [False] * 10
    assert expected[40:50] == [True] * 10
    for r in rows:  # inside: residual <= tol; outside: a positive margin
        assert (r["certificate_value"] <= 1e-9) if r["inside"] else (r["certificate_value"] > 1e-9)
    assert summary["inside"] == sum(expected) and summary["n_test"] == 60
    assert summary["ci_low"] <= summary["fraction"] <= summary["ci_high"]
    record = json.loads((out / "_hulltest" / "tests" / f"{test_id}.json").read_text())
    assert record["train"]["n"] == 40 and len(record["train"]["file_sha256"]) == 64
    assert record["reduce"] == "none" and record["inside"] == sum(expected)


def test_ray_and_serial_give_identical_rows_and_reruns_do_not_duplicate(case, tmp_path, monkeypatch, ray_local):
    X, Q, _ = case
    rng = np.random.default_rng(3)
    train = ArrayData(X, None, "train")
    test = ArrayData(np.vstack([Q, rng.normal(size=(140, 3)) * 1.5]), None, "test")
    monkeypatch.setattr("mc_hull.jobs.hulltest.SHARD_POINTS", 40)  # 5 shards
    red = Reduction("random-projection", 2)
    tables = {}
    for backend in ("serial", "ray"):
        out = str(tmp_path / backend)
        res = hulltest.run_hull_test(train, test, red, out, HullTestSpec(seed=5), backend=backend)
        assert (res.backend, res.computed_shards, res.n_test) == (backend, 5, 200)
        tables[backend] = HullTestStore(out).points(res.test_id)
    assert tables["ray"].equals(tables["serial"])
    assert 0 < res.inside < 200
    # a re-run skips every committed shard; a damaged file is recomputed, never duplicated
    out = str(tmp_path / "serial")
    files = sorted((tmp_path / "serial").rglob("points-*.pq"))
    files[2].write_bytes(b"PAR1 truncated")
    again = hulltest.run_hull_test(train, test, red, out, HullTestSpec(seed=5), backend="serial")
    assert (again.computed_shards, again.skipped_shards, again.inside) == (1, 4, res.inside)
    assert sorted((tmp_path / "serial").rglob("points-*.pq")) == files
    assert HullTestStore(out).points(res.test_id).equals(tables["serial"])
    assert len(HullTestStore(out).records()) == 1


def _bad_files(tmp_path):
    good = np.random.default_rng(0).normal(size=(20, 4))
    paths = {}
    for name, arr in {"good": good, "nan": np.vstack([good, [[np.nan] * 4]]), "inf": good * np.inf,
                      "d5": np.zeros((5, 5)), "empty": np.zeros((0, 4))}.items():
        paths[name] = tmp_path / f"{name}.npy"
        np.save(paths[name], arr)
    paths["text"] = tmp_path / "text.npy"
    paths["text"].write_text("not an array\n")
    paths["pickled"] = tmp_path / "pickled.npy"
    np.save(paths["pickled"], np.array([{"a": 1}], dtype=object), allow_pickle=True)
    paths["strings"] = tmp_path / "strings.parquet"
    pq.write_table(pa.table({"x": [1.0, 2.0], "name": ["a", "b"]}), paths["strings"])
    return paths


@pytest.mark.parametrize("train, test, extra, needle", [
    ("nan", "good", [], "--train: 1 row(s) contain NaN or inf (first: row 20)"),
    ("good", "inf", [], "--test: 20 row(s) contain NaN or inf"),
    ("good", "d5", [], "dimension mismatch: train has d = 4, test has d = 5"),
    ("empty", "good", [], "--train: empty array"),
    ("good", "strings", [], "column 'name' is not numeric"),
    ("text", "good", [], "is not an array file"),
    ("pickled", "good", [], "cannot read"),
    ("missing", "good", [], "--train: no such file"),
    ("good", "good", ["--reduce", "pca:9"], "min(n_train, d) = 4"),
    ("good", "good", ["--reduce", "crop:9"], "k <= 2 for 2x2 images"),
    ("good", "good", ["--reduce", "tsne:2"], "valid: none, pca:K, crop:K, subsample:K, random-projection:K"),
    ("good", "good", ["--reduce", "pca:0"], "K must be >= 1"),
    ("good", "good", ["--solver", "simplex"], "valid: auto"),
])
def test_bad_data_is_one_line_exit_2_nothing_written(tmp_path, capsys, train, test, extra, needle):
    paths = _bad_files(tmp_path)
    out = tmp_path / "out"
    code, printed = run_cli(capsys, "--train", paths.get(train, tmp_path / "nope.npy"),
                            "--test", paths[test], "--out", out, *extra)
    lines = printed.err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and needle in lines[0], lines
    assert "Traceback" not in printed.err and printed.out == ""
    assert not out.exists()


LADDER = {"crop": (4, 64), "subsample": (16,), "pca": (2, 64)}


@pytest.fixture(scope="module")
def digits_sweep(tmp_path_factory):
    """A results directory holding the digits sweep on a reduced ladder, and what it printed."""
    out = tmp_path_factory.mktemp("digits") / "results"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hulltest, "PAPER_DIGITS_LADDER", LADDER)
        # the spelling: `mc-hull run --preset paper-digits` runs the same sweep
        code = main(["run", "--preset", "paper-digits", "--serial", "--out", str(out), "--format", "csv"])
    return out, code


def test_digits_sweep_on_a_reduced_ladder(digits_sweep, capsys, monkeypatch):
    from mc_hull.query import latest_sweep

    out, code = digits_sweep
    assert code == 0
    table, record = latest_sweep(str(out))
    rows = {(r["reduction"], r["K"]): r for r in table.to_pylist()}
    assert list(rows) == [("crop", 4), ("crop", 64), ("subsample", 16), ("pca", 2), ("pca", 64)]
    assert record["name"] == "paper-digits" and record["ladder"] == {k: list(v) for k, v in LADDER.items()}
    for r in rows.values():
        assert (r["n_train"], r["n_test"], r["undecided"]) == (1438, 359, 0)
        assert 0 <= r["ci_low"] <= r["fraction"] <= r["ci_high"] <= 1
    assert rows[("crop", 64)]["fraction"] < 0.02 and rows[("pca", 64)]["fraction"] < 0.02
    assert rows[("pca", 2)]["fraction"] > 0.5 and rows[("crop", 4)]["fraction"] > 0.5
    # full-pixel crop and PCA to all 64 components decide the same points
    assert rows[("crop", 64)]["inside"] == rows[("pca", 64)]["inside"]
    # a second sweep re-uses every committed test and rewrites the same sweep file
    monkeypatch.setattr(hulltest, "PAPER_DIGITS_LADDER", LADDER)
    assert main(["hull-test", "--preset", "paper-digits", "--serial", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert printed.out.splitlines()[0].split() == ["reduction", "K", "dims", "n_train", "n_test", "inside",
                                                   "undecided", "fraction", "ci_low", "ci_high"]
    assert len(printed.out.splitlines()) == 6 and printed.err.count("0 to run") == 5
    assert len(list((out / "_hulltest" / "sweeps").glob("*.pq"))) == 1
    # the Monte Carlo shard listing does not see hull-test files in the same directory
    from mc_hull.store import ResultStore

    assert ResultStore(str(out)).units() == []


def test_digits_dashboard_page(digits_sweep, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    page = str(Path(__file__).resolve().parents[1] / "dashboards" / "pages" / "digits.py")
    out, _ = digits_sweep
    monkeypatch.setenv("MC_HULL_RESULTS", str(out))
    at = AppTest.from_file(page, default_timeout=60).run()
    assert not at.exception, [e.message for e in at.exception]
    (chart,) = at.get("vega_lite_chart")
    data = [pa.ipc.open_stream(d.data.data).read_all() for d in chart.proto.datasets]
    drawn = {(r["reduction"], r["K"], r["fraction"]) for t in data for r in t.to_pylist()}
    assert ("pca", 2, latest_fraction(out, "pca", 2)) in drawn and len(drawn) == 5
    monkeypatch.setenv("MC_HULL_RESULTS", str(tmp_path / "empty"))
    at = AppTest.from_file(page, default_timeout=60).run()
    assert not at.exception and "No sweep under" in at.info[0].value


def latest_fraction(out, reduction, k) -> float:
    from mc_hull.query import latest_sweep

    table, _ = latest_sweep(str(out))
    return next(r["fraction"] for r in table.to_pylist() if (r["reduction"], r["K"]) == (reduction, k))


def test_auto_backend_uses_ray_only_when_it_pays():
    assert hulltest.auto_backend((359, 1438, 64), None, None) == "serial"
    assert hulltest.auto_backend((10_000, 50_000, 512), None, None) == "ray"
    assert hulltest.auto_backend((100, 10**9, 10**3), None, None) == "serial"  # one shard
    assert hulltest.auto_backend((10, 10, 2), "127.0.0.1:6379", None) == "ray"
    assert hulltest.auto_backend((10, 10, 2), None, 2) == "ray"
