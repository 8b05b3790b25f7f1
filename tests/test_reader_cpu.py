"""What a reader of results (the dashboard's first chart, ``mc-hull query``) spends no CPU on, with the
same numbers: the Gaussian curve's constants read from a table that holds the bits the code computes
(SciPy's optimizers are not imported on the way to the cell table), and a local store's units
verified in the calling thread, giving exactly what the threaded read gives, problems included.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mc_hull.query import cells as cells_module
from mc_hull.query import views
from mc_hull.store import ResultStore
from mc_hull.theory import gaussian

ROOT = Path(__file__).resolve().parents[1]


def bits(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).view(np.int64)


def test_the_simplex_table_holds_the_bits_the_code_computes():
    computed = np.array([gaussian._log_g_simplex(k) for k in range(gaussian.D_MAX)])
    table = gaussian._log_simplex_constants()
    assert table.shape == (gaussian.D_MAX,)
    assert np.array_equal(bits(table), bits(computed))


@pytest.mark.parametrize("damage", ["missing", "truncated", "not numbers", "reordered"])
def test_a_missing_or_damaged_table_is_computed_instead(tmp_path, monkeypatch, damage):
    good = gaussian._SIMPLEX_TABLE.read_text().splitlines(keepends=True)
    path = tmp_path / "gaussian_simplex.csv"
    if damage == "truncated":
        path.write_text("".join(good[:-5]))
    elif damage == "not numbers":
        path.write_text("".join(good[:10]) + "8,zz\n" + "".join(good[11:]))
    elif damage == "reordered":
        path.write_text("".join(good[:2]) + "".join(reversed(good[2:])))
    monkeypatch.setattr(gaussian, "_SIMPLEX_TABLE", path)
    gaussian._log_simplex_constants.cache_clear()
    try:
        got = gaussian._log_simplex_constants()
        assert np.array_equal(bits(got), bits([gaussian._log_g_simplex(k) for k in range(gaussian.D_MAX)]))
    finally:
        gaussian._log_simplex_constants.cache_clear()


@pytest.mark.parametrize("d", [1, 2, 3, 7, 12, 25, 44, 64])
def test_exact_p_is_bit_identical_with_computed_constants(d, monkeypatch):
    """The curve over N from the table equals the curve from constants computed in this process."""
    n = np.unique(np.round(np.logspace(0, 12, 97)))
    from_table = gaussian.gaussian_inside_probability(d, n)
    computed = np.array([gaussian._log_g_simplex(k) for k in range(gaussian.D_MAX)])
    monkeypatch.setattr(gaussian, "_log_simplex_constants", lambda: computed)
    assert np.array_equal(bits(from_table), bits(gaussian.gaussian_inside_probability(d, n)))


def test_the_page_tables_do_not_import_scipy_optimize(small_results):
    """Cell table, exact curves, N½ per curve, exact N½ lines and thresholds of a Gaussian store."""
    code = ("import sys; from mc_hull.query import views; out = sys.argv[1]; t = views.cell_table(out); "
            "assert t.num_rows and t['exact'].null_count < t.num_rows, t; "
            "sel = views.by_dimension(t); views.exact_curves(sel); "
            "h = views.n_half_table(sel, views.fitted_n_half(out, None, t)); "
            "assert h['exact_n_half'].null_count == 0, h; views.exact_n_half_curve('gaussian', 2, 12); "
            "views.thresholds(out, None, t); print('scipy.optimize' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(small_results)], capture_output=True, text=True,
                         timeout=120, cwd=ROOT, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def threaded(monkeypatch) -> None:
    """Make the store's reads put every unit on the reader threads, as for an object store."""
    from mc_hull.store import base, results

    monkeypatch.setattr(results.ResultStore, "_map_units",
                        lambda self, one, entries, digests: base.map_chunked(one, entries))


def statuses(store: ResultStore, many: bool, monkeypatch, **kw):
    with monkeypatch.context() as m:
        if many:
            threaded(m)
        return store.statuses(**kw)


def same_units(a, b) -> None:
    assert [(u.entry.run_id, u.entry.key) for u in a] == [(u.entry.run_id, u.entry.key) for u in b]
    for x, y in zip(a, b):
        assert x.from_digest == y.from_digest
        for name in ("replicates", "counts", "status", "replicate", "query"):
            assert np.array_equal(getattr(x, name), getattr(y, name)), name


@pytest.mark.parametrize("digests", [True, False])
def test_one_thread_reads_what_the_threads_read(small_results, monkeypatch, digests):
    store = ResultStore(str(small_results))
    r1, one = statuses(store, False, monkeypatch, digests=digests)
    r8, many = statuses(store, True, monkeypatch, digests=digests)
    assert not r1.problems and not r8.problems and len(one) > 1
    same_units(one, many)


def test_one_thread_reports_the_problems_the_threads_report(small_results, tmp_path, monkeypatch):
    out = tmp_path / "out"
    shutil.copytree(small_results, out)
    shards = sorted(out.rglob("*.parquet"))
    shards[0].write_bytes(shards[0].read_bytes()[:60])            # damaged bytes
    listed = sorted((out / "_manifest" / "trials").rglob("*.json"))
    body = json.loads(listed[-1].read_text())
    body["digest"]["seal"] = "0" * 64                               # a digest that does not open
    listed[-1].write_text(json.dumps(body, sort_keys=True))
    for entry in listed[1:-1:2]:                                    # entries written before digests
        body = json.loads(entry.read_text())
        body.pop("digest")
        entry.write_text(json.dumps(body, sort_keys=True))
    store = ResultStore(str(out))
    r1, one = statuses(store, False, monkeypatch)
    r8, many = statuses(store, True, monkeypatch)
    assert r1.problems and r1.problems == r8.problems
    same_units(one, many)
    assert sum(not u.from_digest for u in one) >= 2 and any(u.from_digest for u in one)


def test_the_page_tables_are_those_of_a_threaded_read(small_results, monkeypatch):
    """The cell table, options and chart-1 tables, read in one thread, equal the threaded read's."""
    def tables(many: bool):
        cells_module._LAST_READ.clear()
        with monkeypatch.context() as m:
            if many:
                threaded(m)
            cells = views.cell_table(str(small_results))
        sel = views.by_dimension(views.select_cells(cells, views.Filters(distributions=["gaussian"])))
        return [cells, sel, views.exact_curves(sel), views.threshold_rules(sel)]

    try:
        one, many = tables(False), tables(True)
    finally:
        cells_module._LAST_READ.clear()
    for a, b in zip(one, many):
        assert a.equals(b, check_metadata=True)


LAUNCH = """
import json, os, sys
from mc_hull.cli import main
def execve(path, argv, env):
    print(json.dumps({"argv": argv, "results": env.get("MC_HULL_RESULTS"),
                      "loaded": [m for m in ("numpy", "pyarrow", "duckdb", "mc_hull.store") if m in sys.modules]}))
    sys.stdout.flush()
    os._exit(0)
os.execve = execve
sys.exit(main(["dashboard", sys.argv[1], "--port", "8765"]))
"""


def launch(where: str, cwd: Path):
    return subprocess.run([sys.executable, "-c", LAUNCH, where], capture_output=True, text=True, timeout=60,
                          cwd=cwd, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.parametrize("form", ["absolute", "relative", "file URI", "missing"])
def test_the_dashboard_command_starts_the_server_without_numpy_or_arrow(small_results, tmp_path, form):
    """A local DIR is checked with os alone: the server is started before NumPy and Arrow would load,
    and with the same absolute directory as before (``resolve``)."""
    from mc_hull.store import resolve

    target = {"absolute": str(small_results), "relative": "out", "file URI": f"file://{small_results}",
              "missing": str(tmp_path / "not yet")}[form]
    done = launch(target, small_results.parent)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    want = resolve(str(small_results) if form != "missing" else target)[1]
    assert got["loaded"] == [] and got["results"] == want and got["argv"][-2:] == ["--", want]


def test_a_file_or_an_unreachable_uri_is_refused_in_one_line(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    for where in (str(tmp_path / "f.txt"), f"file://{tmp_path / 'f.txt'}", "nosuchscheme://bucket/x"):
        done = launch(where, tmp_path)
        assert done.returncode == 2 and done.stdout == "", (where, done.stdout, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and "mc-hull: error:" in done.stderr


@pytest.mark.parametrize("law", ["gaussian", "ball"])
def test_tabled_n_half_holds_the_bits_of_the_root_search(law):
    """Every d the shipped table lists for a parameter-free law gives the computed N½ bit for bit."""
    from mc_hull import theory

    listed = sorted(d for (name, d) in theory._family_table() if name == law)
    assert len(listed) >= 40
    for d in range(1, 65):
        got, want = theory.exact_n_half(law, d), theory.computed_n_half(law, d)
        assert (got is None and want is None) or bits(got) == bits(want), (law, d, got, want)


def test_a_damaged_family_table_is_computed_instead(tmp_path, monkeypatch):
    from mc_hull import theory

    want = theory.computed_n_half("gaussian", 7)
    path = tmp_path / "theory"
    (path / "data").mkdir(parents=True)
    (path / "data" / "n_half_families.csv").write_text("law,d,n_half\ngaussian,7,not a number\n")
    monkeypatch.setattr(theory, "__file__", str(path / "__init__.py"))
    theory._family_table.cache_clear()
    try:
        assert bits(theory.exact_n_half("gaussian", 7)) == bits(want)
    finally:
        monkeypatch.undo()
        theory._family_table.cache_clear()


@pytest.fixture(scope="module")
def ball_results(tmp_path_factory):
    from mc_hull.runs.runner import execute
    from mc_hull.spec import Spec

    out = tmp_path_factory.mktemp("ball") / "out"
    execute(Spec(distribution="ball", dims=(2, 3, 5), sizes=(4, 9, 30), trials=60, queries_per_set=10, seed=4),
            str(out), backend="serial", progress=False)
    return out


def page_tables(out: str, dist: str) -> list:
    """The tables behind views 1-3 (cells, exact curves, rules, N½ per curve, reference and exact N½ lines,
    thresholds), as the dashboard asks for them."""
    cells_module._LAST_READ.clear()
    cells_module._cell_info.cache_clear()
    cells = views.cell_table(out)
    sel = views.by_dimension(views.select_cells(cells, views.Filters(distributions=[dist])))
    d_min, d_max = min(sel["d"].to_pylist()), max(sel["d"].to_pylist())
    return [cells, sel, views.exact_curves(sel), views.threshold_rules(sel),
            views.n_half_table(sel, views.fitted_n_half(out, None, cells)),
            views.reference_n_half(sel, d_min, d_max), views.exact_n_half_curve(dist, d_min, d_max),
            views.thresholds(out, None, cells), views.heatmap_cells(sel)]


@pytest.mark.parametrize("which", ["small", "nested", "ball"])
def test_the_page_tables_equal_those_computed_without_the_tables(which, small_results, nested_results,
                                                                  ball_results, monkeypatch):
    """Before/after: every table behind the first three views is the same (values and types) whether the
    exact constants and N½ come from the shipped tables or from the root searches."""
    from mc_hull import theory

    out, dist = {"small": (small_results, "gaussian"), "nested": (nested_results, "gaussian"),
                 "ball": (ball_results, "ball")}[which]
    shipped = page_tables(str(out), dist)
    computed = np.array([gaussian._log_g_simplex(k) for k in range(gaussian.D_MAX)])
    with monkeypatch.context() as m:
        m.setattr(gaussian, "_log_simplex_constants", lambda: computed)
        m.setattr(theory, "exact_n_half", theory.computed_n_half)
        fresh = page_tables(str(out), dist)
    cells_module._LAST_READ.clear()
    cells_module._cell_info.cache_clear()
    assert any(t.num_rows for t in shipped[4:7])
    for a, b in zip(shipped, fresh):
        assert a.equals(b, check_metadata=True)
