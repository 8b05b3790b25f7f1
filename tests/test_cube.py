"""The uniform cube, the family comparison's one law without an exact curve.

* Its nested Monte Carlo curve against independent references: d = 1, where every continuous law
  gives p = (N - 1)/(N + 1), and d = 2 by Efron's identity p = 1 - E f0(N + 1 points)/(N + 1) with
  Qhull's vertex counts (scipy.spatial.ConvexHull), a computation that shares nothing with the
  membership engines.
* The pilot of ``--sizes auto`` stops a law whose p creeps up in log N (the cube's does) at
  ``PILOT_SPAN`` times its crossing of 1/2 instead of following it to p = 0.95.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

from mc_hull.runs.adaptive import PILOT_SPAN, pilot_grid
from mc_hull.jobs.nested import NestedJob
from mc_hull.query import cell_estimates
from mc_hull.runs.runner import execute
from mc_hull.samplers import get_sampler
from mc_hull.spec import Spec

Z99 = 2.5758


def _nested_cube(tmp_path, d, sizes, trials, seed, k=5):
    spec = Spec.from_dict(dict(distribution="cube", dims=(d,), sizes=tuple(sizes), trials=trials,
                               queries_per_set=k, seed=seed, shard_trials=trials, nested=True))
    out = str(tmp_path / f"cube{d}")
    execute(spec, out, backend="serial", progress=False, job=NestedJob(spec), log=io.StringIO())
    rows = sorted(cell_estimates(out).to_pylist(), key=lambda r: r["n"])
    assert [r["n"] for r in rows] == list(sizes) and all(r["distribution"] == "cube" for r in rows)
    assert all(r["undecided"] == 0 and r["trials"] == trials for r in rows)
    return rows


@pytest.mark.parametrize("seed", [3, 11])
def test_cube_d1_is_n_minus_1_over_n_plus_1(tmp_path, seed):
    sizes = (2, 3, 4, 6, 9, 14, 20, 30, 45, 70)
    rows = _nested_cube(tmp_path, 1, sizes, 1200, seed)
    misses = [(r["n"], r["p_hat"]) for r in rows if not r["ci_low"] <= (r["n"] - 1) / (r["n"] + 1) <= r["ci_high"]]
    assert len(misses) <= 1, misses
    # and not merely inside wide intervals (240 training sets of 5 queries): close to the truth
    err = [abs(r["p_hat"] - (r["n"] - 1) / (r["n"] + 1)) for r in rows]
    assert max(err) < 0.06 and np.mean(err) < 0.03, err


def _efron_square(n, reps, rng):
    """p(2, n) for the uniform square by Efron's identity from Qhull vertex counts: (p, standard error)."""
    from scipy.spatial import ConvexHull

    sampler = get_sampler("cube", 2)
    f0 = np.array([len(ConvexHull(sampler.random(n + 1, rng)).vertices) for _ in range(reps)], dtype=float)
    return 1 - f0.mean() / (n + 1), f0.std(ddof=1) / math.sqrt(reps) / (n + 1)


def test_cube_d2_matches_efron_with_qhull_vertex_counts(tmp_path):
    sizes = (4, 6, 9, 13, 20, 30, 50, 80)
    rows = _nested_cube(tmp_path, 2, sizes, 1600, 23)
    rng = np.random.default_rng(2)
    z = []
    for r in rows:
        p_ref, se_ref = _efron_square(r["n"], 3000, rng)
        se_mc = (r["ci_high"] - r["ci_low"]) / (2 * Z99)
        z.append((r["p_hat"] - p_ref) / math.hypot(se_mc, se_ref))
    assert max(abs(v) for v in z) < 3.3, z
    # the square's curve is its own: the Gaussian's (10.4) and the ball's (13.4) N½ bracket it nowhere
    # near N = 4 or 50, and p at N = 13 is close to 1/2 (measured N½ = 13 in d = 2)
    p = {r["n"]: r["p_hat"] for r in rows}
    assert p[4] < 0.3 and p[50] > 0.75 and 0.4 < p[13] < 0.6


def _creeping(n):
    """A curve that creeps in log N: logit p = (log N - log 2000) / 2 (p = 1/2 at N = 2000, 0.95 at 7.2e5)."""
    return 1.0 / (1.0 + math.sqrt(2000.0 / n))


def test_pilot_stops_a_creeping_curve_at_its_span():
    calls = []

    def pilot(ladder):
        calls.append(dict(ladder))
        return {(d, n): _creeping(n) for d, n in ladder.items()}

    log = io.StringIO()
    grid = pilot_grid([6], pilot, points=40, p_range=(0.02, 0.95), max_n=10**12, log=log)[6]
    rungs = [c[6] for c in calls]
    first_half = next(n for n in rungs if _creeping(n) >= 0.5)
    assert rungs[-1] == first_half * PILOT_SPAN and _creeping(rungs[-1]) < 0.95   # stopped by the span
    assert grid[-1] == rungs[-1] and len(grid) == 40 and grid[0] == 7
    assert "grid ends there, short of p = 0.95" in log.getvalue() and f"({first_half})" in log.getvalue()
    # without the span the ladder would have gone on, four times the cost per rung, to p = 0.95
    calls.clear()
    wide = pilot_grid([6], pilot, points=40, p_range=(0.02, 0.95), max_n=10**12, span=math.inf)[6]
    assert calls[-1][6] >= 16 * rungs[-1] and _creeping(wide[-1]) >= 0.949


def test_pilot_span_leaves_a_steep_curve_alone():
    """A curve that reaches 0.95 within 16x of its crossing gives the grid it always gave."""
    steep = lambda d, n: 1 - math.exp(-max(0, n - d) / (20.0 * d))  # noqa: E731

    def pilot(ladder):
        return {(d, n): steep(d, n) for d, n in ladder.items()}

    log = io.StringIO()
    assert pilot_grid([2, 4, 9], pilot, log=log) == pilot_grid([2, 4, 9], pilot, span=math.inf)
    assert log.getvalue() == ""


# -- the cube in the family comparison: make_transition's table, plot's and the dashboard's N½ panels --
def _make_transition():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "docs" / "make_transition.py"
    spec = importlib.util.spec_from_file_location("make_transition", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_transition_reads_a_cube_run_and_falls_back_to_the_shipped_table(tmp_path, monkeypatch, capsys):
    from mc_hull import theory

    table = tmp_path / "n_half_cube.csv"
    table.write_text("d,n_half,n_half_low,n_half_high\n2,13.0,9.0,20.0\n3,29.0,17.0,\n")
    monkeypatch.setattr(theory, "CUBE_N_HALF_CSV", table)
    mt = _make_transition()
    # no run at the path (the README's /tmp/cube-run on a fresh clone): one line, the shipped table
    assert mt.cube_points(str(tmp_path / "absent")) == [(2, 13.0, 9.0, 20.0), (3, 29.0, 17.0, None)]
    assert "no cube run in" in capsys.readouterr().err
    # a store without a cube run: the same
    gauss = tmp_path / "gauss"
    execute(Spec.from_dict(dict(distribution="gaussian", dims=(2,), sizes=(5, 20), trials=40, seed=1)),
            str(gauss), backend="serial", progress=False, log=io.StringIO())
    assert mt.cube_points(str(gauss))[0] == (2, 13.0, 9.0, 20.0) and "no cube run" in capsys.readouterr().err
    # a nested cube run: its median of T and bracket, written to the shipped table
    sizes = tuple(range(4, 13)) + (14, 16, 19, 23, 28, 35, 45, 60, 80, 110, 150, 200)
    _nested_cube(tmp_path, 2, sizes, 400, 9, k=20)
    rows = mt.cube_points(str(tmp_path / "cube2"))
    assert [r[0] for r in rows] == [2] and capsys.readouterr().err == ""
    d, n, low, high = rows[0]
    assert low < n <= high and 8 <= n <= 20 and n in sizes and high in sizes
    assert theory.cube_n_half_table() == {2: (float(n), float(low), float(high))}


def test_shipped_cube_table_is_a_measurement_with_brackets():
    from mc_hull import theory
    from mc_hull.query import views

    table = theory.cube_n_half_table()
    assert sorted(table) == list(range(2, 13))
    for d, (n, low, high) in table.items():
        assert low < n <= high, d
    ns = [table[d][0] for d in sorted(table)]
    assert ns[0] < 20 and all(b > a for a, b in zip(ns, ns[1:]))  # grows with d
    # between the Gaussian's and the ball's N½ at d = 12 (bounded support, no exact curve)
    assert theory.exact_n_half("gaussian", 12) < table[12][0] < theory.exact_n_half("ball", 12)
    rows = views.family_measured_n_half(4, 8).to_pylist()
    assert [r["d"] for r in rows] == [4, 5, 6, 7, 8] and {r["series"] for r in rows} == {views.CUBE_SERIES}
    assert all(r["n_low"] < r["n"] <= r["n_high"] for r in rows)


@pytest.fixture(scope="module")
def gauss_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gauss") / "out"
    execute(Spec.from_dict(dict(distribution="gaussian", dims=(2, 3, 4), sizes=(5, 10, 20, 40, 80), trials=60,
                                seed=4)), str(out), backend="serial", progress=False, log=io.StringIO())
    return str(out)


def test_plot_n_half_panel_draws_the_measured_cube(gauss_run, tmp_path):
    from mc_hull.cli import main as cli_main

    fig = tmp_path / "fig.svg"
    assert cli_main(["plot", gauss_run, "--out", str(fig)]) == 0
    assert 'id="measured-n-half-cube"' in fig.read_text()


def test_dashboard_n_half_panel_draws_the_measured_cube_with_its_bracket(gauss_run, monkeypatch):
    import json
    from pathlib import Path

    import pyarrow as pa
    from streamlit.testing.v1 import AppTest

    from mc_hull import theory
    from mc_hull.query import views

    monkeypatch.setenv("MC_HULL_RESULTS", gauss_run)
    app = str(Path(__file__).resolve().parents[1] / "dashboards" / "app.py")
    at = AppTest.from_file(app, default_timeout=120).run()
    assert not at.exception
    drawn = None
    for el in at.get("vega_lite_chart"):
        data = [pa.ipc.open_stream(ds.data.data).read_all() for ds in el.proto.datasets]
        rows = [r for t in data if "n_low" in t.column_names for r in t.to_pylist()
                if r.get("series") == views.CUBE_SERIES]
        if rows:
            drawn = (json.loads(el.proto.spec), rows)
    assert drawn is not None, "no N½ chart with the cube's series"
    spec, rows = drawn
    shipped = theory.cube_n_half_table()
    by_d = {int(r["d"]): (r["n"], r["n_low"], r["n_high"]) for r in rows}
    assert by_d and all(by_d[d] == shipped[d] for d in by_d) and set(by_d) <= set(range(2, 5))
    # drawn as points and as a rule from n_low to n_high (the bracket), not only listed
    marks = json.dumps(spec)
    assert '"n_low"' in marks and '"n_high"' in marks and "diamond" in marks
