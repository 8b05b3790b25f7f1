"""Reading nested runs back: N½ as the median of T (``--thresholds``), per-trial bounds on T (``--entry-sizes``).

Real runs (``NestedJob`` through the runner into a real Parquet store), read by the query layer and the CLI.
"""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest

from mc_hull.nested import search as nested
from mc_hull import query, theory
from mc_hull.cli import main as cli_main
from mc_hull.errors import StoreError
from mc_hull.jobs.nested import NestedJob
from mc_hull.runs.runner import execute
from mc_hull.spec import Spec
from mc_hull.stats.thresholds import fit_n_half


def _cells(out, **kw):
    return sorted(query.cell_estimates(str(out), **kw).to_pylist(), key=lambda r: (r["d"], r["n"]))


def test_thresholds_of_a_nested_run_are_the_median_of_t(nested_results, nested_spec):
    table = query.thresholds(str(nested_results))
    assert table.column_names == query.THRESHOLD_COLUMNS + ["fit_cells", "method"]   # same columns as a fit
    rows = table.to_pylist()
    assert [r["d"] for r in rows] == [2, 3]
    bounds = query.entry_sizes(str(nested_results)).to_pylist()
    cells = _cells(nested_results)
    for row in rows:
        assert row["method"] == query.MEDIAN_T and row["fit_cells"] == 0 and row["cells"] == 38
        assert row["exact_n_half"] == pytest.approx(theory.exact_n_half("gaussian", row["d"]))
        # the median of T from the per-trial bounds: the ceil(M/2)-th smallest t_high (outside at 40: infinite)
        t_high = sorted(math.inf if b["t_high"] is None else b["t_high"] for b in bounds if b["d"] == row["d"])
        assert len(t_high) == nested_spec.trials
        assert row["n_half"] == t_high[math.ceil(len(t_high) / 2) - 1]
        # ... and the smallest N whose p_hat reaches 1/2, its bracket from the cells' 99% clustered intervals
        mine = [c for c in cells if c["d"] == row["d"]]
        assert row["n_half"] == min(c["n"] for c in mine if c["p_hat"] >= 0.5)
        assert row["n_half_low"] == max(c["n"] for c in mine if c["ci_high"] < 0.5)
        assert row["n_half_high"] == min(c["n"] for c in mine if c["ci_low"] >= 0.5)
        assert row["n_half_low"] < row["exact_n_half"] <= row["n_half_high"]
        assert row["n_half_low"] < row["n_half"] <= row["n_half_high"]


def test_median_of_t_bracket_is_one_sided_when_censored():
    n = [5, 10, 20]
    below = query.median_of_t(n, [0.1, 0.2, 0.3], [0.05, 0.1, 0.2], [0.2, 0.3, 0.45])
    assert below == {"n_half": None, "n_half_low": 20.0, "n_half_high": math.inf}
    above = query.median_of_t(n[::-1], [0.9, 0.8, 0.6], [0.8, 0.7, 0.55], [0.95, 0.9, 0.7])  # any order
    assert above == {"n_half": None, "n_half_low": 0.0, "n_half_high": 5.0}
    undecided = query.median_of_t(n, [None, 0.4, 0.7], [None, 0.3, 0.6], [None, 0.5, 0.8])
    assert undecided == {"n_half": 20.0, "n_half_low": 0.0, "n_half_high": 20.0}


SEEDS = 8
#: Dense near N½ = 10.4 (d = 2) and 27.0 (d = 3), up to where p is about 0.85 at d = 2 and 0.7 at d = 3.
GRID = tuple(range(3, 17)) + (18, 20, 22, 24, 26, 28, 30, 33, 36, 40, 48, 56, 64, 80)


def test_median_of_t_covers_the_exact_n_half_over_seeds(tmp_path):
    """Eight small real runs at d = 2, 3 (300 trials, K = 30: ten training sets, so the clustering matters).

    The bracket is a 99% one: at most 2 misses in 16 curves (P(X >= 3) = 0.05% at a 1% miss rate) and
    informative (median width a factor below 3.5 in N).  The logistic fit that ordinary runs get, fed the
    same nested cells as if independent, misses far more often (42% of 300 runs at d = 2 in
    benchmarks/median_t_coverage.py): the reason nested curves are not fitted.
    """
    misses = fit_misses = 0
    ratios = []
    for seed in range(SEEDS):
        spec = Spec(distribution="gaussian", dims=(2, 3), sizes=GRID, trials=300,
                    queries_per_set=30, seed=100 + seed, nested=True)
        out = str(tmp_path / f"s{seed}")
        execute(spec, out, backend="serial", progress=False, job=NestedJob(spec))
        cells = _cells(out)
        for row in query.thresholds(out).to_pylist():
            assert row["method"] == query.MEDIAN_T
            exact = theory.exact_n_half("gaussian", row["d"])
            misses += not (row["n_half_low"] < exact <= row["n_half_high"])
            ratios.append(row["n_half_high"] / row["n_half_low"])
            mine = [c for c in cells if c["d"] == row["d"]]
            fit = fit_n_half([c["n"] for c in mine], [c["inside"] for c in mine], [c["trials"] for c in mine],
                             [c["design_effect"] for c in mine], [c["replicates"] for c in mine])
            fit_misses += not (fit["n_half_low"] <= exact <= fit["n_half_high"])
    print(f"median of T: {misses} misses of {2 * SEEDS}; the fit on nested cells: {fit_misses}")
    assert misses <= 2, misses
    assert np.median(ratios) < 3.5 and max(ratios) < 10, ratios
    assert fit_misses >= 2, fit_misses


def test_an_ordinary_run_keeps_the_fit(small_results):
    rows = query.thresholds(str(small_results)).to_pylist()
    assert rows and all(r["method"] != query.MEDIAN_T for r in rows)
    assert query.nested_curves(str(small_results)) == set()


@pytest.fixture(scope="module")
def mixed(tmp_path_factory, nested_spec):
    """A nested run and an ordinary run of the same d = 2 curve in one directory."""
    out = tmp_path_factory.mktemp("mixed") / "out"
    spec = Spec(distribution="gaussian", dims=(2,), sizes=(4, 10, 25), trials=120, seed=3, nested=True)
    execute(spec, str(out), backend="serial", progress=False, job=NestedJob(spec))
    plain = Spec(distribution="gaussian", dims=(2, 4), sizes=(4, 10, 25, 60), trials=120, seed=4)
    execute(plain, str(out), backend="serial", progress=False, new_run=True)
    return out, spec.run_id, plain.run_id


def test_a_curve_mixing_nested_and_ordinary_runs_is_fitted(mixed):
    out, nested_id, plain_id = mixed
    assert query.nested_runs(str(out)) == {nested_id}
    assert query.nested_curves(str(out)) == set()                        # d = 2 mixes both kinds
    assert query.nested_curves(str(out), run_id=nested_id) == {("gaussian", "", 2)}
    assert {r["method"] for r in query.thresholds(str(out)).to_pylist()} <= {"logistic", "logistic-quadratic",
                                                                           "monotone"}
    only = query.thresholds(str(out), run_id=nested_id).to_pylist()
    assert [(r["d"], r["method"]) for r in only] == [(2, query.MEDIAN_T)]
    # --entry-sizes of all runs lists the nested run's trials only
    table = query.entry_sizes(str(out))
    assert set(table["run_id"].to_pylist()) == {nested_id} and table.num_rows == 120
    with pytest.raises(StoreError, match="not a nested run"):
        query.entry_sizes(str(out), run_id=plain_id)


def test_entry_sizes_bound_t_and_reproduce_the_cells(nested_results, nested_spec):
    table = query.entry_sizes(str(nested_results))
    assert table.column_names == query.ENTRY_COLUMNS
    assert table.num_rows == 2 * nested_spec.trials
    rows = table.to_pylist()
    cells = _cells(nested_results)
    sizes = np.array(nested_spec.sizes)
    for d in (2, 3):
        mine = [r for r in rows if r["d"] == d]
        assert len({(r["replicate"], r["query"]) for r in mine}) == nested_spec.trials
        for r in mine:   # T in (t_low, t_high], both grid sizes (or 0 / none), one grid step apart
            assert r["t_low"] == 0 or r["t_low"] in sizes
            assert r["t_high"] is None or (r["t_high"] in sizes and r["t_low"] < r["t_high"])
            nxt = sizes[sizes > r["t_low"]]
            assert r["t_high"] == (int(nxt[0]) if nxt.size else None)
        # P(T <= N) = p_hat(N): the bounds give back every cell's inside count
        for c in (c for c in cells if c["d"] == d):
            assert sum(r["t_high"] is not None and r["t_high"] <= c["n"] for r in mine) == c["inside"]
    # the first replicate against the core on its keyed data
    X, Q = nested.replicate_data(nested_spec, 3, sizes, 0)
    res = nested.entry_sizes(X, Q, sizes)
    first = sorted((r for r in rows if r["d"] == 3 and r["replicate"] == 0), key=lambda r: r["query"])
    assert [r["t_low"] for r in first] == res.t_low.tolist()
    assert [-1 if r["t_high"] is None else r["t_high"] for r in first] == res.t_high.tolist()
    assert query.entry_sizes(str(nested_results), d=3).num_rows == nested_spec.trials
    assert query.entry_sizes(str(nested_results), d=[2, 7]).num_rows == nested_spec.trials


def test_entry_ecdf_brackets_the_distribution_of_t(nested_results):
    ecdf = query.entry_ecdf(str(nested_results), distribution="gaussian").to_pylist()
    cells = {(c["d"], c["n"]): c for c in _cells(nested_results)}
    assert {(r["d"], r["n"]) for r in ecdf} == set(cells)
    for r in ecdf:   # nothing undecided: both bounds equal p_hat at a grid size
        assert r["certain"] == pytest.approx(cells[(r["d"], r["n"])]["p_hat"])
        assert r["possible"] == pytest.approx(r["certain"])


def _cli(capsys, *args):
    code = cli_main(["query", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_thresholds_of_a_nested_run_say_median_of_t(nested_results, capsys):
    code, out, err = _cli(capsys, nested_results, "--thresholds")
    assert code == 0, err
    assert out.splitlines()[0].split() == query.THRESHOLD_COLUMNS + ["fit_cells", "method"]
    assert "median of T" in out
    notes = [line for line in out.splitlines() if line.startswith("# ")]
    assert any("method 'median of T' (nested runs)" in n and "cluster-robust" in n for n in notes)
    assert not any("binomial logistic fit" in n for n in notes)   # no fit was used, so its note is left out
    code, out, _ = _cli(capsys, nested_results, "--thresholds", "--format", "json")
    rows = json.loads(out)
    assert [r["method"] for r in rows] == [query.MEDIAN_T] * 2


def test_cli_entry_sizes_formats(nested_results, nested_spec, capsys):
    code, out, err = _cli(capsys, nested_results, "--entry-sizes", "--format", "csv")
    assert code == 0, err
    reader = list(csv.DictReader(io.StringIO(out)))
    assert list(reader[0]) == query.ENTRY_COLUMNS and len(reader) == 2 * nested_spec.trials
    code, out, _ = _cli(capsys, nested_results, "--entry-sizes", "--format", "jsonl")
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 2 * nested_spec.trials
    assert any(r["t_high"] is None for r in lines)   # outside at N = 40: no upper bound, null not -1
    code, out, _ = _cli(capsys, nested_results, "--entry-sizes")
    assert out.splitlines()[0].split() == query.ENTRY_COLUMNS and "# one row per trial" in out


def test_cli_entry_sizes_refuses_what_is_not_nested(small_results, mixed, capsys, tmp_path):
    out, _, plain_id = mixed
    for args, message in (([small_results], "holds no nested run"),
                          ([out, "--run", plain_id], f"run {plain_id} is not a nested run"),
                          ([out, "--run", "feedfacecafe"], "unknown run id"),
                          ([tmp_path / "nothing"], "no such results directory"),
                          ([small_results, "--thresholds"], "choose one")):
        code, stdout, err = _cli(capsys, *args, "--entry-sizes")
        assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err, (args, err)
        assert stdout == ""


def test_trials_of_nested_runs_are_told_apart_by_the_size_of_their_training_set(tmp_path):
    """Same seed, one directory: a nested run's rows at N < N_max are prefixes of a training set of N_max points,
    other trials than an ordinary run's at N or a nested run's with another N_max; at N_max they are the same."""
    out = str(tmp_path / "same-seed")
    plain = Spec(distribution="gaussian", dims=(2,), sizes=(10, 20, 40), trials=90, queries_per_set=30, seed=0)
    a = Spec(distribution="gaussian", dims=(2,), sizes=(10, 20, 40), trials=90, queries_per_set=30, seed=0,
             nested=True)
    b = Spec(distribution="gaussian", dims=(2,), sizes=(10, 20, 80), trials=90, queries_per_set=30, seed=0,
             nested=True)
    again = Spec(distribution="gaussian", dims=(2,), sizes=(10, 20, 80), trials=90, queries_per_set=30, seed=0,
                 nested=True, shard_trials=30)    # another run id, the same trials as b
    execute(plain, out, backend="serial", progress=False)
    for spec in (a, b, again):
        execute(spec, out, backend="serial", progress=False, job=NestedJob(spec), new_run=True)
    cells = {c["n"]: c for c in query.cell_estimates(out).to_pylist()}
    assert {n: (c["runs"], c["trials"], c["replicates"]) for n, c in cells.items()} == {
        10: (4, 270, 9), 20: (4, 270, 9),   # plain, a and b: three training sets per replicate; again = b
        40: (2, 90, 3),                     # a's largest size: the very trials of the plain run
        80: (2, 90, 3)}
    # the nested rows at N_max equal the ordinary run's (same keys, same answers)
    rows = query.entry_sizes(out, run_id=a.run_id).to_pylist()
    assert sum(r["t_high"] is not None for r in rows) == cells[40]["inside"]


def test_a_nested_curve_below_one_half_has_a_one_sided_bracket_and_a_note(tmp_path, capsys):
    out = str(tmp_path / "low")
    spec = Spec(distribution="gaussian", dims=(4,), sizes=(5, 8, 12, 20), trials=120, seed=2, nested=True)
    execute(spec, out, backend="serial", progress=False, job=NestedJob(spec))
    (row,) = query.thresholds(out).to_pylist()
    cells = _cells(out)
    assert row["method"] == query.MEDIAN_T and row["n_half"] is None and row["n_half_high"] == math.inf
    assert row["n_half_low"] == max(c["n"] for c in cells if c["ci_high"] < 0.5) == 20
    code, text, err = _cli(capsys, out, "--thresholds")
    assert code == 0, err
    assert "# no N_half for gaussian d = 4: p is below 1/2 up to N = 20" in text


def test_entry_sizes_of_a_damaged_store_is_one_line(nested_results, tmp_path, capsys):
    import shutil

    out = tmp_path / "damaged"
    shutil.copytree(nested_results, out)
    victim = sorted(out.glob("distribution=*/d=3/n=27/*.parquet"))[0]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    for flag in ("--entry-sizes", "--thresholds"):
        code, stdout, err = _cli(capsys, out, flag)
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err and stdout == "", err
        assert "n=27" in err or victim.name in err, err
