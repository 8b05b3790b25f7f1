"""Every view shows the exact curve a cell's law follows: the samplers' parameters reach the
theory (Student-t df, beta), and a k-dimensional subspace keeps its Gaussian-of-R^k reference in
plot's N½ panel and in views 2 and 3 (issue 24 item 10)."""

from __future__ import annotations

import numpy as np
import pytest

from mc_hull import theory
from mc_hull.query import views
from mc_hull.cli import main as cli_main
from mc_hull.query import cell_estimates, empirical_n_half
from mc_hull.runs.runner import execute
from mc_hull.samplers import get_sampler
from mc_hull.spec import Spec


@pytest.fixture(scope="module")
def law_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("laws") / "out"
    common = dict(sizes=(5, 20, 80), trials=40, queries_per_set=20, seed=3)
    for i, (dist, dims, params) in enumerate([("student-t", (3,), (("df", 1.0),)),
                                               ("beta", (3,), (("beta", -0.5),)),
                                               ("subspace", (6,), (("k", 4),))]):
        execute(Spec(distribution=dist, dims=dims, params=params, **common), str(out), backend="serial",
                new_run=i > 0, progress=False)
    return str(out)


def test_exact_and_z_columns_use_the_runs_parameters(law_runs):
    rows = cell_estimates(law_runs).to_pylist()
    for r in rows:
        if r["distribution"] == "student-t":
            want = theory.exact_inside_probability("student-t", 3, r["n"], df=1.0)
        elif r["distribution"] == "beta":
            want = theory.exact_inside_probability("beta", 3, r["n"], beta=-0.5)
        else:
            want = theory.exact_inside_probability("gaussian", 4, r["n"])
        assert r["exact"] == pytest.approx(want, abs=1e-12) and r["z"] is not None
    # df = 1 and the default df = 3 differ: the parameter is not dropped on the way
    assert theory.exact_inside_probability("student-t", 3, 20, df=1.0) != pytest.approx(
        theory.exact_inside_probability("student-t", 3, 20, df=3.0), abs=1e-3)
    halves = {r["distribution"]: r["exact_n_half"] for r in empirical_n_half(law_runs)}
    assert halves["student-t"] == pytest.approx(theory.exact_n_half("student-t", 3, df=1.0))
    assert halves["beta"] == pytest.approx(theory.exact_n_half("beta", 3, beta=-0.5))
    assert halves["subspace"] == pytest.approx(theory.exact_n_half("gaussian", 4))


def test_subspace_reference_against_ambient_and_affine_dimension(law_runs):
    from mc_hull.query import cell_estimates as cells_of

    cells = views.select_cells(cells_of(law_runs), views.Filters(distributions=["subspace"]))
    g4 = theory.exact_n_half("gaussian", 4)
    assert g4 == pytest.approx(62.2, abs=0.05)
    ambient = views.reference_n_half(views.by_dimension(cells, "ambient"), 5, 7).to_pylist()
    assert [(r["d"], r["series"]) for r in ambient] == [(6, "exact N½ (gaussian of R^4)")]
    assert ambient[0]["n"] == pytest.approx(g4)
    affine = views.reference_n_half(views.by_dimension(cells, "affine"), 3, 5).to_pylist()
    assert {r["series"] for r in affine} == {"exact N½ (gaussian)"} and len(affine) == 3
    assert [r["n"] for r in affine if r["d"] == 4][0] == pytest.approx(g4)
    assert not any("ball" in r["series"] for r in ambient + affine)


def test_plot_n_half_panel_draws_each_laws_reference(law_runs, tmp_path):
    fig = tmp_path / "fig.svg"
    assert cli_main(["plot", law_runs, "--out", str(fig)]) == 0
    svg = fig.read_text()
    for gid in ("exact-n-half-student-t-df1", "exact-n-half-beta-beta-0.5", "exact-n-half-gaussian-of-r4",
                "exact-student-t-student-t-df=1.0-d3", "exact-beta-beta-beta=-0.5-d3"):
        assert f'id="{gid}"' in svg, gid
    fig = tmp_path / "affine.svg"
    assert cli_main(["plot", law_runs, "--out", str(fig), "--dimension", "affine"]) == 0
    assert 'id="exact-n-half-gaussian"' in fig.read_text()


def test_beta_sampler_is_the_beta_law():
    """|x|² ~ Beta(d/2, beta + 1) and x/|x| uniform; beta = 0 is the uniform ball."""
    from scipy import stats

    rng = np.random.default_rng(7)
    for d, b in ((3, 0.0), (5, -0.5), (2, 3.0)):
        x = get_sampler("beta", d, beta=b).random(20000, rng)
        r2 = np.einsum("ij,ij->i", x, x)
        assert stats.kstest(r2, stats.beta(d / 2, b + 1).cdf).pvalue > 1e-3
        u = x / np.sqrt(r2)[:, None]
        assert np.abs(u.mean(axis=0)).max() < 0.05
    assert get_sampler("beta", 4).exact_as == ("beta", 4) and get_sampler("beta", 4).exact_params == {"beta": 0.0}
    for bad in (-1.0, -2, float("inf"), float("nan"), 2e6, "1", True):
        with pytest.raises(Exception) as info:
            get_sampler("beta", 3, beta=bad)
        assert "beta" in str(info.value) and "\n" not in str(info.value)


def test_dashboard_views_2_and_3_keep_the_subspace_reference(law_runs, monkeypatch):
    import json
    from pathlib import Path

    import pyarrow as pa
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("MC_HULL_RESULTS", law_runs)
    app = str(Path(__file__).resolve().parents[1] / "dashboards" / "app.py")
    at = AppTest.from_file(app, default_timeout=120).run()
    at.selectbox(key="distribution").set_value("subspace").run()
    g4 = theory.exact_n_half("gaussian", 4)

    def line_rows(at):
        out = []
        for el in at.get("vega_lite_chart"):
            spec = json.loads(el.proto.spec)
            data = {ds.name: pa.ipc.open_stream(ds.data.data).read_all() for ds in el.proto.datasets}
            rows = [r for t in data.values() if "series" in t.column_names and "n" in t.column_names
                    for r in t.to_pylist()]
            out.append(rows)
        return out

    charts = line_rows(at)
    heat, half = charts[1], charts[2]
    # view 2 (against d): the exact contour is the Gaussian of R^4's N½ at d = 6, not the ball's
    exact = [r for r in heat if r["series"] == views.EXACT_HALF_SERIES]
    assert exact and all(r["n"] == pytest.approx(g4) for r in exact)
    # view 3: the black reference is that same value; the ball is only a thin comparison line
    ref = [r for r in half if r["series"] == views.EXACT_HALF_SERIES]
    assert ref and all(r["n"] == pytest.approx(g4) for r in ref)
    at.radio(key="dimension").set_value("affine").run()
    half = line_rows(at)[2]
    ref = [r for r in half if r["series"] == views.EXACT_HALF_SERIES]
    assert len(ref) >= 3  # a curve over d = 3..5 (lines drawn with points), not a lone point
    assert [r["n"] for r in ref if r["d"] == 4][0] == pytest.approx(g4)
    assert any(r["series"] == f"{views.EXACT_HALF_SERIES} (ball)" for r in half)


def test_auto_sizes_follow_the_runs_parameters():
    """--sizes auto places the grid on the exact curve of the run's own df (no pilot pass)."""
    import io

    from mc_hull.runs.adaptive import auto_grid

    log = io.StringIO()
    g1 = auto_grid("student-t", [6], params={"df": 1.0}, log=log)[6]
    g30 = auto_grid("student-t", [6], params={"df": 30.0}, log=log)[6]
    for grid, df in ((g1, 1.0), (g30, 30.0)):
        p = theory.exact_inside_probability("student-t", 6, np.array(grid, dtype=float), df=df)
        assert p[0] < 0.1 and p[-1] > 0.9
    assert g30[-1] > 3 * g1[-1]
