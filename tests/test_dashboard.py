"""The Streamlit dashboard under AppTest, its data-prep layer (mc_hull.query.views) and `mc-hull dashboard`."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from mc_hull import theory
from mc_hull.query import views
from mc_hull.cli import main as cli_main

APP = str(Path(__file__).resolve().parents[1] / "dashboards" / "app.py")


def run_app(out, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("MC_HULL_RESULTS", str(out))
    return AppTest.from_file(APP, default_timeout=90).run()


def charts(at) -> list[tuple[dict, dict[str, pa.Table]]]:
    """(Vega-Lite spec, datasets by name) of every chart the app drew."""
    out = []
    for el in at.get("vega_lite_chart"):
        spec = json.loads(el.proto.spec)
        data = {ds.name: pa.ipc.open_stream(ds.data.data).read_all() for ds in el.proto.datasets}
        out.append((spec, data))
    return out


def layer_data(spec, data, pred) -> list[pa.Table]:
    return [data[layer["data"]["name"]] for layer in spec.get("layer", []) if pred(layer)]


@pytest.fixture(scope="module")
def app_run(small_results):
    from streamlit.testing.v1 import AppTest

    old = os.environ.get("MC_HULL_RESULTS")
    os.environ["MC_HULL_RESULTS"] = str(small_results)
    try:
        at = AppTest.from_file(APP, default_timeout=90).run()
    finally:
        if old is None:
            os.environ.pop("MC_HULL_RESULTS", None)
        else:
            os.environ["MC_HULL_RESULTS"] = old
    return at


def test_app_runs_and_shows_every_view(app_run):
    at = app_run
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error
    headers = [h.value for h in at.header]
    for prefix in ("1 ·", "2 ·", "3 ·", "4 ·", "5 ·", "6 ·"):
        assert any(h.startswith(prefix) for h in headers), headers
    assert len(at.get("download_button")) == 2
    metrics = {m.label: m.value for m in at.metric}
    done, planned = metrics["shards done / planned"].split(" / ")
    assert done == planned and int(done) > 0
    assert metrics["undecided trials"] == "0"


def test_p_against_n_chart_has_log_axis_threshold_and_exact_series(app_run):
    spec, data = charts(app_run)[0]
    layers = spec["layer"]
    assert any(layer["encoding"]["x"].get("scale", {}).get("type") == "log" for layer in layers)
    assert all(layer["encoding"]["x"]["scale"]["type"] == "log" for layer in layers if "x" in layer["encoding"])
    # the vertical rules at 2^(d/2)/d, one per d, with the right values
    rules = layer_data(spec, data, lambda l: l["mark"]["type"] == "rule" and "x" in l["encoding"])
    assert len(rules) == 1 and set(rules[0]["series"].to_pylist()) == {views.BF_SERIES}
    for d, t in zip(rules[0]["d"].to_pylist(), rules[0]["bf_threshold"].to_pylist()):
        assert t == pytest.approx(2 ** (d / 2) / d)
    assert sorted(rules[0]["d"].to_pylist()) == [2, 4]
    # the horizontal rule at 1/2
    half = layer_data(spec, data, lambda l: l["mark"]["type"] == "rule" and "y" in l["encoding"])
    assert half and half[0]["p"].to_pylist() == [0.5]
    # the exact Gaussian curve, matching mc_hull.theory at its points
    exact = layer_data(spec, data, lambda l: "p" == l["encoding"].get("y", {}).get("field")
                       and l["mark"]["type"] == "line")
    assert len(exact) == 1 and exact[0].num_rows > 20
    ex = exact[0]
    assert set(ex["series"].to_pylist()) == {"exact (gaussian)"}
    for d in (2, 4):
        idx = [i for i, v in enumerate(ex["d"].to_pylist()) if v == d]
        n = np.array([ex["n"][i].as_py() for i in idx])
        p = np.array([ex["p"][i].as_py() for i in idx])
        assert np.allclose(p, np.asarray(theory.exact_inside_probability("gaussian", d, n), dtype=float))
        assert np.all(np.diff(p) >= -1e-12)  # p rises with N
    # the Monte Carlo layer with its interval band
    band = layer_data(spec, data, lambda l: l["mark"]["type"] == "area")
    assert band and {"ci_low", "ci_high", "p_hat"} <= set(band[0].column_names)
    dash_domain = next(l["encoding"]["strokeDash"]["scale"]["domain"] for l in layers if "strokeDash" in l["encoding"])
    assert {views.MC_SERIES, "exact (gaussian)", views.BF_SERIES, views.HALF_SERIES} <= set(dash_domain)


def test_heatmap_and_n_half_charts(app_run):
    all_charts = charts(app_run)
    heat_spec, heat_data = all_charts[1]
    assert heat_spec["layer"][0]["mark"]["type"] == "rect"
    assert heat_spec["layer"][0]["encoding"]["y"]["scale"]["type"] == "log"
    lines = [t for t in heat_data.values() if "series" in t.column_names]
    series = {s for t in lines for s in t["series"].to_pylist()}
    assert {views.BF_SERIES, views.EXACT_HALF_SERIES} <= series
    half_spec, half_data = all_charts[2]
    assert any(l["encoding"]["y"].get("scale", {}).get("type") == "log" for l in half_spec["layer"])
    series = {s for t in half_data.values() if "series" in t.column_names for s in t["series"].to_pylist()}
    assert {views.BF_SERIES, views.EXACT_HALF_SERIES, views.EMPIRICAL_HALF_SERIES} <= series
    assert f"{views.EXACT_HALF_SERIES} (ball)" in series  # both exact curves on the N½ view
    exact = [t for t in half_data.values() if "series" in t.column_names
             and views.EXACT_HALF_SERIES in t["series"].to_pylist()][0].to_pylist()
    for row in exact:
        if row["series"] == views.EXACT_HALF_SERIES:
            assert row["n"] == pytest.approx(theory.exact_n_half("gaussian", int(row["d"])))


def test_audit_filters_rerun_without_error(small_results, monkeypatch):
    at = run_app(small_results, monkeypatch)
    at.multiselect(key="audit_d").select(2).run()
    assert not at.exception
    assert len(charts(at)) >= 6


def test_sidebar_run_selection_and_auto_refresh(small_results, small_spec, monkeypatch):
    at = run_app(small_results, monkeypatch)
    at.selectbox(key="run").select(small_spec.run_id).run()
    assert not at.exception
    at.toggle(key="auto").set_value(True).run()
    assert not at.exception and len(charts(at)) >= 6
    at.multiselect(key="dims").unselect(4).run()
    assert not at.exception
    spec, data = charts(at)[0]
    rules = layer_data(spec, data, lambda l: l["mark"]["type"] == "rule" and "x" in l["encoding"])
    assert rules[0]["d"].to_pylist() == [2]


def test_new_dimensions_appear_after_refresh(tmp_path, small_spec, monkeypatch):
    from mc_hull.jobs.plan import plan
    from mc_hull.runs.runner import execute

    shards = plan(small_spec)
    execute(small_spec, str(tmp_path), backend="serial", progress=False, shards=shards[:len(shards) // 2])
    at = run_app(tmp_path, monkeypatch)
    assert at.multiselect(key="dims").value == [2]
    execute(small_spec, str(tmp_path), backend="serial", progress=False)
    at.button[0].click().run()  # Refresh
    assert not at.exception
    assert at.multiselect(key="dims").value == [2, 4]
    spec, data = charts(at)[0]
    rules = layer_data(spec, data, lambda l: l["mark"]["type"] == "rule" and "x" in l["encoding"])
    assert rules[0]["d"].to_pylist() == [2, 4]


@pytest.mark.parametrize("distribution", ["cube", "ball"])
def test_other_distributions(tmp_path, monkeypatch, distribution):
    """cube has no exact curve (none drawn); the uniform ball has one (drawn from mc_hull.theory)."""
    from mc_hull.runs.runner import execute
    from mc_hull.spec import Spec

    spec = Spec(distribution=distribution, dims=(2, 3), sizes=(4, 30), trials=40, queries_per_set=20, seed=1,
                shard_trials=40)
    execute(spec, str(tmp_path), backend="serial", progress=False)
    at = run_app(tmp_path, monkeypatch)
    assert not at.exception
    spec_json, data = charts(at)[0]
    series = {s for t in data.values() if "series" in t.column_names for s in t["series"].to_pylist()}
    assert {views.MC_SERIES, views.BF_SERIES, views.HALF_SERIES} <= series
    assert all(l["encoding"]["x"]["scale"]["type"] == "log" for l in spec_json["layer"] if "x" in l["encoding"])
    exact = f"{views.EXACT_SERIES} ({distribution})"
    assert (exact in series) == theory.has_exact(distribution)
    if theory.has_exact(distribution):
        table = [t for t in data.values() if "series" in t.column_names and exact in t["series"].to_pylist()][0]
        for row in table.to_pylist()[::7]:
            assert row["p"] == pytest.approx(float(theory.exact_inside_probability(distribution, row["d"], row["n"])))


def test_empty_and_missing_dataset_messages(tmp_path, monkeypatch):
    at = run_app(tmp_path, monkeypatch)
    assert not at.exception
    assert any("no shard files" in i.value for i in at.info)
    at = run_app(tmp_path / "missing", monkeypatch)
    assert not at.exception
    assert any("No results directory" in i.value for i in at.info)


def test_unreadable_shard_file_is_one_message(tmp_path, small_results, monkeypatch):
    out = tmp_path / "copy"
    shutil.copytree(small_results, out)
    shard = next(out.rglob("*.parquet"))
    shard.write_bytes(shard.read_bytes()[:100])  # truncated: footer gone
    at = run_app(out, monkeypatch)
    assert not at.exception
    assert len(at.error) == 1 and shard.name in at.error[0].value and "truncated" in at.error[0].value


# -- mc_hull.query.views ----------------------------------------------------------------
def test_views_tables(small_results, small_spec):
    out = str(small_results)
    cells = views.cell_table(out)
    assert cells.num_rows == len(small_spec.cells)
    status = views.run_status(out).to_pylist()
    assert len(status) == 1 and status[0]["run_id"] == small_spec.run_id
    assert status[0]["shards_done"] == status[0]["shards_planned"] > 0
    assert status[0]["trials_done"] == status[0]["trials_planned"] == small_spec.planned_trials
    assert status[0]["eta_s"] == 0.0 and status[0]["undecided"] == 0
    counts = views.audit_counts(out, views.Filters())
    assert sum(counts["trials"].to_pylist()) == small_spec.planned_trials
    only = views.audit_counts(out, views.Filters(dims=[2], n_min=20, n_max=100, runs=[small_spec.run_id]))
    assert sum(only["trials"].to_pylist()) == 2 * small_spec.trials
    assert views.audit_counts(out, views.Filters(distributions=["ball"])).num_rows == 0
    for col in ("certificate_value", "solve_seconds"):
        hist = views.audit_histogram(out, views.Filters(), col)
        assert sum(hist["trials"].to_pylist()) == small_spec.planned_trials
        assert all(lo < hi for lo, hi in zip(hist["lo"].to_pylist(), hist["hi"].to_pylist()))
    heat = views.heatmap_cells(cells).to_pylist()
    for row in heat:
        assert row["d_lo"] < row["d"] < row["d_hi"] and row["n_lo"] < row["n"] < row["n_hi"]
    csv = views.to_csv(cells).decode().splitlines()
    assert csv[0].startswith('"distribution","d","n"') and len(csv) == cells.num_rows + 1
    opts = views.filter_options(out)
    assert opts["dims"] == [2, 4] and opts["runs"] == [small_spec.run_id]


def test_run_status_of_a_partial_run(tmp_path, small_spec):
    from mc_hull.jobs.plan import plan
    from mc_hull.runs.runner import execute

    shards = plan(small_spec)
    execute(small_spec, str(tmp_path), backend="serial", progress=False, shards=shards[:3])
    row = views.run_status(str(tmp_path)).to_pylist()[0]
    assert (row["shards_done"], row["shards_planned"]) == (3, len(shards))
    assert row["trials_done"] == sum(s.trials(small_spec) for s in shards[:3])
    assert row["trials_planned"] == small_spec.planned_trials
    assert row["trials_per_s"] is None or row["trials_per_s"] > 0
    if row["trials_per_s"]:
        left = small_spec.planned_trials - row["trials_done"]
        assert row["eta_s"] == pytest.approx(left / row["trials_per_s"])
    assert row["active"] is True
    summary = views.audit_summary(str(tmp_path))
    assert views.run_status(str(tmp_path), summary=summary).to_pylist()[0]["trials_done"] == row["trials_done"]


def test_n_half_interpolates_in_log_n():
    cells = pa.table({"distribution": ["gaussian"] * 3, "d": [8] * 3, "n": [10, 100, 1000],
                      "p_hat": [0.1, 0.3, 0.7], "ci_low": [0.05, 0.2, 0.6], "ci_high": [0.2, 0.5, 0.8]})
    row = views.empirical_n_half(cells).to_pylist()[0]
    assert row["n_half"] == pytest.approx(10 ** 2.5)
    assert row["n_half_low"] == pytest.approx(100)      # the upper band reaches 1/2 at N = 100
    assert row["n_half_high"] == pytest.approx(10 ** (2 + 0.3 / 0.4))
    never = views.empirical_n_half(cells.set_column(3, "p_hat", pa.array([0.1, 0.2, 0.3])))
    assert never["n_half"].to_pylist() == [None]
    table = views.n_half_table(cells).to_pylist()[0]
    assert table["exact_n_half"] == pytest.approx(theory.exact_n_half("gaussian", 8))
    assert table["bf_threshold"] == pytest.approx(2.0)


def test_dataset_key_changes_when_a_shard_lands(tmp_path, small_results, small_spec):
    from mc_hull.runs.runner import execute

    out = tmp_path / "copy"
    shutil.copytree(small_results, out)
    before = views.dataset_key(str(out))
    assert before[0] > 0
    shard = next((out / "distribution=gaussian").rglob("*.parquet"))
    shutil.copy(shard, shard.with_name(shard.stem[:-7] + "9999999.parquet"))
    assert views.dataset_key(str(out)) == before  # a stray copy is not part of the store: nothing to refresh
    next((out / "_manifest").rglob("*.json")).unlink()  # the shard is no longer committed ...
    gone = views.dataset_key(str(out))
    assert gone != before
    execute(small_spec, str(out), backend="serial", progress=False)  # ... and lands again
    assert views.dataset_key(str(out)) not in (before, gone)
    assert views.dataset_key(str(tmp_path / "missing")) == (0, 0, 0, 0, 0)


# -- mc-hull dashboard --------------------------------------------------------------
def test_dashboard_command_line(tmp_path):
    from mc_hull.cli.dashboard import command

    argv = command(str(tmp_path), 8765, "127.0.0.1")
    joined = " ".join(argv)
    assert "--server.address 127.0.0.1" in joined and "--server.port 8765" in joined
    assert "--server.headless true" in joined and "--browser.gatherUsageStats false" in joined
    assert "--client.toolbarMode viewer" in joined  # no Deploy button or developer menu
    assert argv[-2:] == ["--", str(tmp_path)] and argv[argv.index("run") + 1].endswith("dashboards/app.py")


@pytest.mark.parametrize("args", [["--port", "0"], ["--port", "http"]])
def test_dashboard_bad_port_exits_2(tmp_path, args, capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main(["dashboard", str(tmp_path)] + args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "--port" in err and len(err.splitlines()) == 1


def test_dashboard_dir_is_a_file_exits_2(tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("x")
    assert cli_main(["dashboard", str(f)]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a directory" in err and len(err.splitlines()) == 1


def test_default_host_is_loopback():
    from mc_hull.cli import build_parser

    args = build_parser().parse_args(["dashboard", "somewhere"])
    assert args.host == "127.0.0.1" and args.port == 8501


# -- p against the ambient, intrinsic or affine dimension -------------------------------
@pytest.fixture(scope="module")
def subspace_results(tmp_path_factory):
    """Two subspace runs (k = 1 and 2, each in d = 3 and 5) and a manifold run in one store."""
    from mc_hull.runs.runner import execute
    from mc_hull.spec import Spec

    out = tmp_path_factory.mktemp("subspace") / "out"
    for dist, params in (("subspace", (("k", 1),)), ("subspace", (("k", 2),)), ("manifold", ())):
        execute(Spec(distribution=dist, dims=(3, 5), sizes=(4, 12, 40), trials=40, queries_per_set=20, seed=3,
                     shard_trials=40, params=params), str(out), backend="serial", progress=False, new_run=True)
    return out


def test_views_by_dimension(subspace_results):
    cells = views.select_cells(views.cell_table(str(subspace_results)), views.Filters(distributions=["subspace"]))
    assert cells.num_rows == 12  # k = 1, 2 are separate cells, not merged
    for which, expected in (("ambient", [3, 5]), ("intrinsic", [1, 2]), ("affine", [1, 2])):
        table = views.by_dimension(cells, which)
        rows = table.to_pylist()
        assert sorted({r["dim"] for r in rows}) == expected
        assert all(r["dim"] == r[views.DIMENSIONS[which]] for r in rows)
        assert sorted({r["curve"] for r in rows}) == ["k=1, d=3", "k=1, d=5", "k=2, d=3", "k=2, d=5"]
        rules = views.threshold_rules(table).to_pylist()  # 2^(x/2)/x at the chosen dimension
        assert [r["d"] for r in rules] == expected
        assert all(r["bf_threshold"] == pytest.approx(2 ** (r["d"] / 2) / r["d"]) for r in rules)
        n_half = views.n_half_table(table)
        assert n_half.num_rows == 4 and sorted(set(n_half["dim"].to_pylist())) == expected
        # against its affine (= intrinsic) dimension a flat Gaussian follows the Gaussian curves
        assert views.exact_reference(table) == (None if which == "ambient" else "gaussian")
    affine = views.by_dimension(cells, "affine")
    exact = views.exact_curves(affine)
    for r in exact.to_pylist()[::5]:
        k = int(r["params"].removeprefix("k="))
        assert r["dim"] == k and r["p"] == pytest.approx(float(theory.exact_inside_probability("gaussian", k, r["n"])))
    with pytest.raises(ValueError, match="dimension"):
        views.by_dimension(cells, "latent")
    manifold = views.by_dimension(views.select_cells(views.cell_table(str(subspace_results)),
                                                     views.Filters(distributions=["manifold"])), "intrinsic")
    assert set(manifold["dim"].to_pylist()) == {1} and views.exact_curves(manifold).num_rows == 0


def test_app_dimension_option(subspace_results, monkeypatch):
    at = run_app(subspace_results, monkeypatch)
    at.selectbox(key="distribution").select("subspace").run()
    at.radio(key="dimension").set_value("affine").run()
    assert not at.exception
    spec, data = charts(at)[0]
    assert spec["layer"][0]["encoding"]["color"]["field"] == "dim"
    rules = layer_data(spec, data, lambda l: l["mark"]["type"] == "rule" and "x" in l["encoding"])
    assert rules[0]["d"].to_pylist() == [1, 2]
    assert any(h.value.startswith("3 · N½ against the affine dimension") for h in at.header)


def test_dashboard_notes_a_d_without_n_half_and_keeps_colours_distinct(tmp_path, monkeypatch):
    """A sphere run (p = 0 everywhere) has no N½: the N½ view says why; 12 dimensions get 12 colours."""
    from mc_hull.runs.runner import execute
    from mc_hull.spec import Spec

    out = tmp_path / "sphere"
    execute(Spec(distribution="sphere", dims="2..13", sizes=(5, 40), trials=20, queries_per_set=20, seed=1),
            str(out), backend="serial", progress=False)
    at = run_app(out, monkeypatch)
    assert not at.exception, [e.message for e in at.exception]
    captions = " ".join(c.value for c in at.caption)
    assert "No N½ for sphere d = 2: p is below 1/2 up to N = 40 (99% intervals wholly below 1/2)" in captions
    assert "sphere d = 13" in captions
    (p_spec, _), *_ = charts(at)
    schemes = {json.dumps(layer.get("encoding", {}).get("color", {}).get("scale", {}))
               for layer in p_spec.get("layer", [])}
    assert any('"viridis"' in s for s in schemes) and not any('"category10"' in s for s in schemes)


# -- distance runs (measure = "distance") ----------------------------------------------
DIGITS_PAGE = str(Path(__file__).resolve().parents[1] / "dashboards" / "pages" / "digits.py")


@pytest.fixture(scope="module")
def distance_results(tmp_path_factory):
    """A serial Gaussian run with ``measure = "distance"``: d = 2, 3 at N = 10, 30, 200 trials per cell."""
    from mc_hull.runs.runner import execute
    from mc_hull.spec import Spec

    out = tmp_path_factory.mktemp("distance") / "out"
    execute(Spec(distribution="gaussian", dims=(2, 3), sizes=(10, 30), trials=200, queries_per_set=20, seed=5,
                 shard_trials=100, measure="distance"), str(out), backend="serial", progress=False)
    return out


def facet_charts(at, column: str) -> list[pa.Table]:
    """Datasets of the faceted charts whose data carries ``column``."""
    return [t for spec, data in charts(at) if "facet" in spec for t in data.values() if column in t.column_names]


def test_distance_panels_match_the_query_layer(distance_results, monkeypatch):
    from mc_hull import query

    at = run_app(distance_results, monkeypatch)
    assert not at.exception, [e.message for e in at.exception]
    assert any(h.value.startswith("How far outside?") for h in at.subheader)
    assert not any("measured the distance" in c.value for c in at.caption)
    cells = {(r["d"], r["n"]): r for r in query.cell_estimates(str(distance_results)).to_pylist()}
    near = facet_charts(at, "series")
    assert len(near) == 1
    rows = near[0].to_pylist()
    # three series per cell: p-hat and P(distance <= eps nn) for eps = 0.01, 0.1, each with its interval
    assert len(rows) == 3 * len(cells) == 12
    cols = {"p̂ = P(inside)": ("p_hat", "ci_low", "ci_high"),
            "P(distance ≤ 0.01·nn)": ("p_near_1pct", "p_near_1pct_low", "p_near_1pct_high"),
            "P(distance ≤ 0.1·nn)": ("p_near_10pct", "p_near_10pct_low", "p_near_10pct_high")}
    for r in rows:
        c = cells[(r["d"], r["n"])]
        value, low, high = cols[r["series"]]
        assert (r["value"], r["low"], r["high"]) == pytest.approx((c[value], c[low], c[high]))
        assert r["low"] <= r["value"] <= r["high"]
    for c in cells.values():   # near includes inside: P(near) >= p-hat, and 0.1 nn is the wider net
        assert c["p_hat"] <= c["p_near_1pct"] <= c["p_near_10pct"] <= 1
        assert c["p_near_10pct"] > c["p_hat"] or c["outside_measured"] == 0
    # the histogram: bins (lo, hi] of distance/nn counted over outside trials, recomputed from the rows here
    hist = facet_charts(at, "share")
    assert len(hist) == 1
    h = hist[0].to_pandas()
    con = query.connect(str(distance_results))
    raw = con.sql("SELECT d, least(distance_high / nn_distance, 1) AS r FROM trials "
                  "WHERE status = 'outside'").fetchnumpy()
    for d in (2, 3):
        mine = h[h["d"] == d]
        ratios = raw["r"][raw["d"] == d]
        assert mine["trials"].sum() == sum(cells[(d, n)]["outside_measured"] for n in (10, 30)) == ratios.size
        assert mine["share"].sum() == pytest.approx(1.0)
        for lo, hi, k in zip(mine["lo"], mine["hi"], mine["trials"]):
            assert hi == pytest.approx(lo * 10 ** 0.25)
            assert k == np.count_nonzero((ratios > lo * (1 + 1e-12)) & (ratios <= hi * (1 + 1e-12)))
        assert mine["hi"].max() == pytest.approx(1.0)   # distance <= nn (capped: the bound may pass nn by ulps)
    assert h.equals(query.ratio_histogram(str(distance_results), distribution="gaussian").to_pandas()
                    [["distribution", "params", "d", "lo", "hi", "trials", "share"]].assign(curve=h["curve"]))


def test_distance_panel_follows_the_d_filter(distance_results, monkeypatch):
    at = run_app(distance_results, monkeypatch)
    at.sidebar.multiselect(key="dims").set_value([3]).run()
    assert not at.exception, [e.message for e in at.exception]
    assert set(facet_charts(at, "series")[0]["d"].to_pylist()) == {3}
    assert set(facet_charts(at, "share")[0]["d"].to_pylist()) == {3}


def test_no_distance_measured_is_one_caption_and_no_chart(small_results, monkeypatch):
    at = run_app(small_results, monkeypatch)
    assert not at.exception
    assert sum("No selected run measured the distance" in c.value for c in at.caption) == 1
    assert not any(h.value.startswith("How far outside?") for h in at.subheader)
    assert not facet_charts(at, "series") and not facet_charts(at, "share")


@pytest.fixture(scope="module")
def distance_sweep(tmp_path_factory):
    """The digits sweep on a reduced ladder, measured with ``--measure distance``."""
    from mc_hull.runs import hulltest

    out = tmp_path_factory.mktemp("digits-distance") / "results"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hulltest, "PAPER_DIGITS_LADDER", {"crop": (4, 64), "subsample": (16,), "pca": (2, 64)})
        assert cli_main(["hull-test", "--preset", "paper-digits", "--serial", "--measure", "distance",
                         "--out", str(out)]) == 0
    return out


def run_digits(out, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("MC_HULL_RESULTS", str(out))
    return AppTest.from_file(DIGITS_PAGE, default_timeout=90).run()


def test_digits_page_distance_against_k(distance_sweep, monkeypatch):
    from mc_hull import query

    at = run_digits(distance_sweep, monkeypatch)
    assert not at.exception, [e.message for e in at.exception]
    assert any(h.value.startswith("How far outside?") for h in at.subheader)
    sweep, _ = query.latest_sweep(str(distance_sweep))
    stored = {(r["reduction"], r["K"]): r for r in sweep.to_pylist()}
    tables = [t for _, data in charts(at) for t in data.values() if "dist_nn_median" in t.column_names]
    assert tables
    rows = tables[0].to_pylist()
    assert {(r["reduction"], r["K"]) for r in rows} == set(stored)
    for r in rows:
        s = stored[(r["reduction"], r["K"])]
        assert r["outside_measured"] == s["outside_measured"] == s["n_test"] - s["inside"]
        assert r["dist_nn_median"] == pytest.approx(s["dist_nn_q50"])        # the sweep's own median
        assert r["p_near_10pct"] == pytest.approx(s["p_near_10pct"])
        assert r["p_near_10pct_low"] <= r["p_near_10pct"] <= r["p_near_10pct_high"]
        assert r["p_near_10pct"] >= s["fraction"]                           # inside images count as near
        assert r["dist_nn_low"] <= r["dist_nn_median"] <= r["dist_nn_high"]
        if r["outside_measured"] >= 100:   # a 99% interval for the median of >= 100 points lies within the quartiles
            assert s["dist_nn_q25"] <= r["dist_nn_low"] and r["dist_nn_high"] <= s["dist_nn_q75"]
        elif r["outside_measured"] <= 8:   # too few points: the interval is the whole range
            assert r["dist_nn_low"] <= s["dist_nn_q10"] and r["dist_nn_high"] >= s["dist_nn_q90"]
    # 64 kept pixels or components: nothing inside, and the median image is far (> 0.1 nn) from the hull
    assert all(r["dist_nn_median"] > 0.1 for r in rows if r["K"] == 64)


def test_digits_page_without_distance_says_so(tmp_path, monkeypatch):
    from mc_hull.runs import hulltest

    out = tmp_path / "results"
    monkeypatch.setattr(hulltest, "PAPER_DIGITS_LADDER", {"pca": (2,)})
    assert cli_main(["hull-test", "--preset", "paper-digits", "--serial", "--out", str(out)]) == 0
    at = run_digits(out, monkeypatch)
    assert not at.exception
    assert any("did not measure the distance" in c.value for c in at.caption)
    assert not any(h.value.startswith("How far outside?") for h in at.subheader)
    assert len(at.get("vega_lite_chart")) == 1


# -- nested runs ---------------------------------------------------------------------------
def test_nested_run_shows_the_median_of_t_and_the_distribution_of_t(nested_results, monkeypatch):
    """The N½ view, the thresholds table and the entry-size panel of a nested run all carry the query
    layer's median of T; the panel's steps are the per-trial bounds on T, counted again here from the rows."""
    from mc_hull import query

    at = run_app(nested_results, monkeypatch)
    assert not at.exception, [e.message for e in at.exception]
    assert "Nested runs: N½ as the median of the entry size T" in [h.value for h in at.subheader]
    thresholds = {r["d"]: r for r in query.thresholds(str(nested_results)).to_pylist()}
    table = thresholds_frame(at)
    assert list(table["method"]) == [query.MEDIAN_T] * 2 and list(table["d"]) == [2, 3]
    assert list(table["n_half"]) == [thresholds[2]["n_half"], thresholds[3]["n_half"]]
    drawn = charts(at)
    # view 3: N½ points are the median of T, labelled so
    half_spec, half_data = drawn[2]
    points = [t for t in half_data.values() if "source" in t.column_names]
    assert points and set(points[0]["series"].to_pylist()) == {views.MEDIAN_T_SERIES}
    assert sorted(points[0]["n"].to_pylist()) == sorted(r["n_half"] for r in thresholds.values())
    # the entry-size panel: one facet per d, steps from the bounds on T, the median and its bracket
    spec, data = next((s, d) for s, d in drawn if "facet" in s and "n_half" in json.dumps(s))
    (frame,) = data.values()
    rows = frame.to_pylist()
    bounds = query.entry_sizes(str(nested_results)).to_pylist()
    for r in (r for r in rows if r["series"].startswith("certainly")):
        mine = [b for b in bounds if b["d"] == r["d"]]
        assert r["value"] == pytest.approx(sum(b["t_high"] is not None and b["t_high"] <= r["n"] for b in mine)
                                           / len(mine))
    for r in (r for r in rows if r["series"] == "N½ = median of T"):
        t = thresholds[r["d"]]
        assert (r["n_half"], r["lo"], r["hi"]) == (t["n_half"], t["n_half_low"], t["n_half_high"])
        assert r["exact_n_half"] == pytest.approx(theory.exact_n_half("gaussian", r["d"]))
    assert {r["curve"] for r in rows} == {"d=2", "d=3"}
    # the d filter reaches the panel
    at.multiselect(key="dims").set_value([3]).run()
    spec, data = next((s, d) for s, d in charts(at) if "facet" in s and "n_half" in json.dumps(s))
    assert {r["curve"] for r in next(iter(data.values())).to_pylist()} == {"d=3"}


def test_an_ordinary_run_has_no_entry_size_panel(app_run):
    assert not any("Nested runs" in h.value for h in app_run.subheader)
    table = thresholds_frame(app_run)
    assert len(table) == 2 and set(table["method"]) <= {"logistic", "logistic-quadratic", "monotone"}


def thresholds_frame(at):
    """The N½ table the app shows under view 3 (the query layer's thresholds)."""
    (table,) = [el.value for el in at.dataframe if {"n_half", "method", "fit_cells"} <= set(el.value.columns)]
    return table
