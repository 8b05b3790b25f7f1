"""mc-hull hull-test on sharded datasets: the same rows as the array, streamed beyond the budget, resumable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mc_hull.jobs.hulltest import SHARD_POINTS, HullTestSpec
from mc_hull.runs import hulltest
from mc_hull.cli import main
from mc_hull.store import HullTestStore

ROOT = Path(__file__).resolve().parents[1]


def embedding_like(n, d, seed, centres=6):
    """float32 clusters on a decaying spectrum, offset from the origin (as embeddings are)."""
    rng = np.random.default_rng(seed)
    spec = np.arange(1, d + 1) ** -0.5
    C = 2.0 * rng.standard_normal((centres, d)) * spec
    return (C[rng.integers(0, centres, n)] + rng.standard_normal((n, d)) * spec + 5.0).astype(np.float32)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """One training set (float32) as an .npy array, a shard directory and a Parquet dataset; a test set
    with inside points, outside points, training points and a duplicate."""
    d = tmp_path_factory.mktemp("files")
    X = embedding_like(400, 6, 1)
    rng = np.random.default_rng(2)
    lam = rng.dirichlet(np.ones(400), size=40)
    Q = np.vstack([lam @ X, embedding_like(60, 6, 3) * 1.05, X[:10], X[5:6]]).astype(np.float32)
    np.save(d / "train.npy", X)
    np.save(d / "test.npy", Q)
    os.makedirs(d / "shards")
    for i, (a, b) in enumerate([(0, 7), (7, 7), (7, 250), (250, 400)]):      # an empty shard too
        np.save(d / "shards" / f"x-{i:02d}.npy", X[a:b])
    os.makedirs(d / "pq")
    for i, (a, b) in enumerate([(0, 123), (123, 400)]):
        col = pa.FixedSizeListArray.from_arrays(pa.array(X[a:b].ravel()), 6)
        pq.write_table(pa.table({"emb": col}), d / "pq" / f"p{i}.parquet", row_group_size=50)
    os.makedirs(d / "testshards")
    np.save(d / "testshards" / "a.npy", Q[:55])
    np.save(d / "testshards" / "b.npy", Q[55:])
    return X, Q, d


def run(capsys, *argv):
    code = main(["hull-test", *map(str, argv)])
    return code, capsys.readouterr()


def rows(out):
    store = HullTestStore(str(out))
    (test_id,) = store.records()
    return test_id, store.points(test_id), store.records()[test_id]


@pytest.mark.parametrize("measure", ["membership", "distance"])
def test_array_shards_and_parquet_give_identical_rows(files, tmp_path, capsys, measure):
    X, Q, d = files
    tables = {}
    for name, train, test in [("array", d / "train.npy", d / "test.npy"), ("shards", d / "shards", d / "test.npy"),
                              ("parquet", d / "pq", d / "testshards")]:
        out = tmp_path / name
        code, printed = run(capsys, "--train", train, "--test", test, "--out", out, "--serial",
                            "--measure", measure, "--format", "json")
        assert code == 0, printed.err
        test_id, table, record = rows(out)
        tables[name] = (test_id, table)
        assert record["n_train"] == 400 and record["n_test"] == len(Q) and "placement" not in record
    ref_id, ref = tables["array"]
    for name, (test_id, table) in tables.items():
        assert table.equals(ref), name
        assert test_id == ref_id, name       # loaded: the same float64 values, the same identity
    status = ref.column("status").to_pylist()
    assert status[:40] == ["inside"] * 40 and status[100:] == ["inside"] * 11 and "outside" in status[40:100]


@pytest.mark.parametrize("measure", ["membership", "distance"])
def test_held_and_streamed_give_identical_rows_and_the_memory_engine_the_same_decisions(
        files, tmp_path, capsys, monkeypatch, measure):
    X, Q, d = files
    code, _ = run(capsys, "--train", d / "shards", "--test", d / "test.npy", "--out", tmp_path / "mem", "--serial",
                  "--measure", measure)
    assert code == 0
    _, held_f64, _ = rows(tmp_path / "mem")
    tables = {}
    # X: 400 x 6 float32 = 9.6 KB on disk, 19.2 KB as float64, 38.4 KB with its frame copy
    for name, train, budget, place in [("npy", d / "shards", "8K", "streamed"), ("pq", d / "pq", "8K", "streamed"),
                                       ("held", d / "shards", "12K", "held"),            # float32, mapped per pass
                                       ("held64", d / "shards", "20K", "held"),          # frame coordinates
                                       ("array", d / "train.npy", "20K", "held")]:
        monkeypatch.setenv("MC_HULL_MEMORY_BUDGET", budget)
        code, printed = run(capsys, "--train", train, "--test", d / "test.npy", "--out", tmp_path / name,
                            "--serial", "--measure", measure)
        assert code == 0, printed.err
        assert ("on every pass" in printed.err) == (place == "streamed")
        assert ("held in memory" in printed.err) == (place == "held")
        assert ("mapped once" in printed.err) == (name in ("held64", "array"))
        test_id, table, record = rows(tmp_path / name)
        assert record["placement"] == place and record["n_train"] == 400
        assert table.column("status").equals(held_f64.column("status")), name
        assert not any(table.column("undecided").to_pylist())
        assert all(m.startswith("distance:" if measure == "distance" else "stream")
                   for m in table.column("method").to_pylist())
        tables[name] = (test_id, table)
    # one engine over the same blocks: identical rows, whatever the layout and wherever X lives
    for name, (test_id, table) in tables.items():
        assert table.equals(tables["npy"][1]), name
    assert tables["held"][0] == tables["npy"][0]          # same files, same engine: the same test
    if measure == "distance":
        mem, src = held_f64.to_pydict(), tables["npy"][1].to_pydict()
        for j in range(len(Q)):     # two certified intervals of one distance overlap; the same nearest point
            assert src["distance_low"][j] <= mem["distance_high"][j] * (1 + 1e-12) + 1e-300
            assert mem["distance_low"][j] <= src["distance_high"][j] * (1 + 1e-12) + 1e-300
            assert src["nn_distance"][j] == pytest.approx(mem["nn_distance"][j], rel=1e-12, abs=1e-12)


def test_streamed_refusals_are_one_line(files, tmp_path, capsys, monkeypatch):
    X, Q, d = files
    monkeypatch.setenv("MC_HULL_MEMORY_BUDGET", "8K")
    code, printed = run(capsys, "--train", d / "shards", "--test", d / "test.npy", "--out", tmp_path / "o",
                        "--reduce", "pca:3")
    assert code == 2 and printed.err.count("\n") == 1
    assert "--reduce pca:3: the training set (400 x 6) exceeds MC_HULL_MEMORY_BUDGET" in printed.err
    np.save(tmp_path / "q5.npy", np.zeros((3, 5)))
    code, printed = run(capsys, "--train", d / "shards", "--test", tmp_path / "q5.npy", "--out", tmp_path / "o")
    assert code == 2 and "dimension mismatch: train has d = 6, test has d = 5" in printed.err
    assert not (tmp_path / "o").exists()                           # nothing written


def test_bad_shards_exit_2_before_anything_is_written(files, tmp_path, capsys):
    X, Q, d = files
    bad = tmp_path / "bad"
    os.makedirs(bad)
    Y = X.copy()
    Y[333, 4] = np.nan
    np.save(bad / "a.npy", Y[:300])
    np.save(bad / "b.npy", Y[300:])
    code, printed = run(capsys, "--train", bad, "--test", d / "test.npy", "--out", tmp_path / "o")
    assert code == 2 and "--train: b.npy row 33 (row 333 of the set) contains NaN or inf" in printed.err
    assert printed.err.count("\n") == 1 and "Traceback" not in printed.err
    code, printed = run(capsys, "--train", d / "shards", "--test", tmp_path / "missing", "--out", tmp_path / "o")
    assert code == 2 and "--test: no such file" in printed.err
    code, printed = run(capsys, "--train", d / "shards", "--test", d / "test.npy", "--out", tmp_path / "o",
                        "--image-shape", "2,3")
    assert code == 2 and "--image-shape applies to array files" in printed.err
    assert not (tmp_path / "o").exists()


def test_a_killed_streamed_run_resumes_without_duplicates(tmp_path, capsys, monkeypatch):
    """A real SIGKILL mid-run (a subprocess), then a re-run: committed ranges skipped, rows equal a clean run."""
    X = embedding_like(3000, 12, 7)
    Q = embedding_like(4 * SHARD_POINTS, 12, 8) * np.float32(1.02)
    shards = tmp_path / "x"
    os.makedirs(shards)
    for i in range(3):
        np.save(shards / f"{i}.npy", X[i * 1000:(i + 1) * 1000])
    np.save(tmp_path / "q.npy", Q)
    env = {**os.environ, "MC_HULL_MEMORY_BUDGET": "64K", "PYTHONPATH": str(ROOT)}
    argv = ["hull-test", "--train", str(shards), "--test", str(tmp_path / "q.npy"), "--serial"]
    proc = subprocess.Popen([sys.executable, "-m", "mc_hull", *argv, "--out", str(tmp_path / "killed")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not list((tmp_path / "killed").rglob("points-*.pq")):
        assert proc.poll() is None, "the run ended before a shard was committed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    committed = len(list((tmp_path / "killed").rglob("points-*.pq")))
    assert 1 <= committed < 4
    monkeypatch.setenv("MC_HULL_MEMORY_BUDGET", "64K")
    code, printed = run(capsys, *argv[1:], "--out", tmp_path / "killed", "--format", "json")
    assert code == 0, printed.err
    assert f"{committed} shards skipped as committed" in printed.err or f"{committed} skipped" in printed.err
    code, _ = run(capsys, *argv[1:], "--out", tmp_path / "clean")
    assert code == 0
    _, resumed, record = rows(tmp_path / "killed")
    _, clean, _ = rows(tmp_path / "clean")
    assert record["placement"] == "streamed" and resumed.num_rows == len(Q)
    assert resumed.column("index").to_pylist() == list(range(len(Q)))
    assert resumed.drop_columns([]).equals(clean)
    assert len(list((tmp_path / "killed").rglob("points-*.pq"))) == 4


@pytest.mark.parametrize("budget, place, holders", [("1K", "streamed", "served"), ("4K", "streamed", "partly"),
                                                   ("8K", "streamed", "held"), ("20K", "held", "held")])
def test_ray_workers_give_the_serial_rows_for_a_streamed_and_a_held_source(files, tmp_path, monkeypatch, ray_local,
                                                                          budget, place, holders):
    """With Ray the blocks live in holder actors (read once and held, or read on every pass); the ranges
    are decided on the driver with every pass sent to the holders: the serial rows."""
    from mc_hull.runs.datasets import Reduction, load_array
    from mc_hull.runs.filesource import open_source

    X, Q, d = files
    monkeypatch.setenv("MC_HULL_MEMORY_BUDGET", budget)
    monkeypatch.setattr("mc_hull.jobs.hulltest.SHARD_POINTS", 30)                   # 4 ranges
    train, test = open_source(str(d / "shards"), block_elems=6 * 50), load_array(str(d / "test.npy"), "--test")
    import io

    tables = {}
    for backend in ("serial", "ray"):
        log = io.StringIO()
        res = hulltest.run_hull_test(train, test, Reduction("none"), str(tmp_path / backend),
                                     HullTestSpec(measure="distance"), backend=backend, workers=2, log=log)
        assert (res.backend, res.computed_shards, res.n_test) == (backend, 4, len(Q))
        test_id, tables[backend], record = rows(tmp_path / backend)
        assert record["placement"] == place
        if backend == "ray":      # two holders: held when a holder's share (X / 2: 4.8 KB) fits the budget,
            # else the blocks (1.2 KB of float32 each) that fit kept and the rest read on every pass
            said = {"held": "X held by 2 actors", "partly": "X partly held by 2 actors",
                    "served": "X served from its loader on every pass by 2 actors"}[holders]
            assert said in log.getvalue() and record["cluster"].startswith(said)
    assert tables["ray"].equals(tables["serial"])      # partials folded in block order: the same rows


@pytest.mark.parametrize("X, Q", [
    (np.array([[2.5]], np.float32), np.array([[2.5], [2.4999], [-1e30]])),                 # N = 1, d = 1
    (np.array([[1.0, 2.0, 3.0]] * 3, np.float32), np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0001]])),   # duplicates
    (np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]) * 1e-300, np.array([[2e-301, 2e-301], [1e-300, 1e-300]])),
])
def test_degenerate_sets_streamed_decide_like_the_memory_engine(tmp_path, capsys, monkeypatch, X, Q):
    os.makedirs(tmp_path / "x")
    np.save(tmp_path / "x" / "a.npy", X)
    np.save(tmp_path / "q.npy", Q)
    statuses = []
    for budget in ("4G", "1"):
        monkeypatch.setenv("MC_HULL_MEMORY_BUDGET", budget)
        out = tmp_path / budget
        code, printed = run(capsys, "--train", tmp_path / "x", "--test", tmp_path / "q.npy", "--out", out,
                            "--serial", "--measure", "distance")
        assert code == 0, printed.err
        _, table, record = rows(out)
        assert record.get("placement") == (None if budget == "4G" else "streamed")
        statuses.append(table.column("status").to_pylist())
    assert statuses[0] == statuses[1] and "undecided" not in statuses[0]
