"""`mc-hull plot DIR --out FIG`: static figures of p̂ against N and N½ against d."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mc_hull.cli import main as cli_main


def test_plot_writes_png(small_results, tmp_path):
    fig = tmp_path / "fig.png"
    assert cli_main(["plot", str(small_results), "--out", str(fig)]) == 0
    data = fig.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_plot_svg_contains_every_series(small_results, tmp_path):
    fig = tmp_path / "fig.svg"
    assert cli_main(["plot", str(small_results), "--out", str(fig), "--dims", "2,4"]) == 0
    svg = fig.read_text()
    for d in (2, 4):
        for gid in (f"monte-carlo-d{d}", f"ci-d{d}", f"exact-gaussian-d{d}"):
            assert f'id="{gid}"' in svg, gid
    # 2^(2/2)/2 = 2^(4/2)/4 = 1: one rule for both, labelled with its dimensions
    assert 'id="bf-threshold-d2-d4"' in svg and "d = 2, 4" in svg
    for gid in ("p-half", "bf-threshold", "exact-n-half-gaussian", "exact-n-half-ball", "empirical-n-half"):
        assert f'id="{gid}"' in svg, gid
    # legend text is kept as text
    for label in ("exact (gaussian)", "2^(d/2)/d", "p = 1/2", "empirical N½", "exact N½ (gaussian)"):
        assert label in svg, label


def test_plot_follows_params_and_the_chosen_dimension(tmp_path):
    from mc_hull.runs import runner
    from mc_hull.spec import Spec

    out = tmp_path / "subspace"
    for k in (2, 3):  # two runs in one directory: same d, different k
        spec = Spec(distribution="subspace", dims=(4,), sizes=(5, 20, 80), trials=40, queries_per_set=20,
                    seed=k, params=(("k", k),))
        runner.execute(spec, str(out), backend="serial", new_run=True, progress=False)
    fig = tmp_path / "fig.svg"
    assert cli_main(["plot", str(out), "--out", str(fig), "--dimension", "affine"]) == 0
    svg = fig.read_text()
    for k in (2, 3):  # one line per k (not one zig-zag per d), each with its exact Gaussian-in-R^k curve
        for gid in (f"monte-carlo-k={k}-d4", f"ci-k={k}-d4", f"exact-subspace-k={k}-d4"):
            assert f'id="{gid}"' in svg, gid
        assert f"affine dim = {k} (k={k}, d=4)" in svg
    assert 'id="exact-n-half-gaussian"' in svg and "affine dimension" in svg
    assert cli_main(["plot", str(out), "--out", str(tmp_path / "ambient.svg")]) == 0
    assert "d = 4 (k=2, d=4)" in (tmp_path / "ambient.svg").read_text()


def test_plot_pdf(small_results, tmp_path):
    fig = tmp_path / "fig.pdf"
    assert cli_main(["plot", str(small_results), "--out", str(fig)]) == 0
    assert fig.read_bytes()[:5] == b"%PDF-"


@pytest.mark.parametrize("name", ["fig.jpg", "fig", "figure.txt"])
def test_plot_bad_suffix_is_one_line_exit_2(small_results, tmp_path, name):
    proc = subprocess.run([sys.executable, "-m", "mc_hull", "plot", str(small_results), "--out",
                           str(tmp_path / name)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "--out" in proc.stderr
    assert not (tmp_path / name).exists()


def test_plot_input_errors(small_results, tmp_path, capsys):
    cases = [
        (["plot", str(tmp_path / "missing"), "--out", str(tmp_path / "f.png")], "no such results directory"),
        (["plot", str(tmp_path), "--out", str(tmp_path / "f.png")], "no results yet"),
        (["plot", str(small_results), "--out", str(tmp_path / "f.png"), "--distribution", "ball"], "--distribution"),
        (["plot", str(small_results), "--out", str(tmp_path / "f.png"), "--dims", "3"], "--dims"),
        (["plot", str(small_results), "--out", str(tmp_path / "nodir" / "f.png")], "directory does not exist"),
        (["plot", str(small_results), "--out", str(tmp_path / "f.png"), "--dpi", "0"], "--dpi"),
    ]
    for argv, needle in cases:
        assert cli_main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1, err


def test_dim_colours_stay_distinct_past_ten():
    from mc_hull.cli.plot import dim_colours

    for count in (3, 10, 11, 16, 40):
        colours = dim_colours(range(2, 2 + count))
        assert len(set(colours.values())) == count


def test_rules_near_one_are_grouped_and_far_ones_kept_apart():
    from mc_hull.cli.plot import rule_groups

    groups = rule_groups(range(2, 13))
    assert sorted(d for g in groups for d in g) == list(range(2, 13))
    assert [2, 3, 4] == sorted(groups[0])[:3]  # 0.94..1.0 share a rule
    assert len(groups) < 11 and [20] in rule_groups([2, 20])  # 51 is far from 1
    for g in groups:  # within a group the rules lie within a factor 1.3 of each other
        xs = [2 ** (d / 2) / d for d in g]
        assert max(xs) / min(xs) <= 1.3


def test_plot_draws_one_panel_per_distribution_with_notes(tmp_path, capsys):
    from mc_hull.runs import runner
    from mc_hull.spec import Spec

    out = tmp_path / "multi"
    # 8 training sets per cell: with 2, the t critical value on 1 degree of freedom makes every 99%
    # interval hold 1/2, and the notes (rightly) claim nothing
    common = dict(sizes=(5, 20, 80), trials=40, queries_per_set=5, seed=4)
    for i, (dist, dims, params) in enumerate([("gaussian", (2, 3), ()), ("manifold", (5,), ()),
                                               ("subspace", (5,), (("k", 2),))]):
        runner.execute(Spec(distribution=dist, dims=dims, params=params, **common), str(out),
                       backend="serial", new_run=i > 0, progress=False)
    fig = tmp_path / "fig.svg"
    assert cli_main(["plot", str(out), "--out", str(fig)]) == 0
    svg = fig.read_text()
    for gid in ("monte-carlo-gaussian-d2", "monte-carlo-manifold-d5", "monte-carlo-subspace-k=2-d5",
                "exact-subspace-subspace-k=2-d5", "exact-n-half-gaussian"):
        assert f'id="{gid}"' in svg, gid
    assert "(a) gaussian" in svg and "(b) manifold" in svg and "(c) subspace (k=2)" in svg
    # manifold in d = 5 stays far below 1/2 at N <= 80: the figure says why it has no N½
    assert "no N½ for manifold d = 5" in svg and "larger N" in svg
    assert cli_main(["plot", str(out), "--out", str(tmp_path / "one.svg"), "--distribution", "manifold"]) == 0
    one = (tmp_path / "one.svg").read_text()
    assert 'id="monte-carlo-d5"' in one and "gaussian-d2" not in one
    capsys.readouterr()
    assert cli_main(["plot", str(out), "--out", str(tmp_path / "x.png"), "--run", "0123abcd"]) == 2
    err = capsys.readouterr().err
    assert "unknown run id" in err and "known run ids" in err and len(err.strip().splitlines()) == 1


def test_plot_marks_n_half_from_the_median_of_t_for_a_nested_run(nested_results, small_results, tmp_path):
    """A nested run: N½ = the median of T on the p̂ panel (marker on p = 1/2, its bracket along it) and on the
    N½ panel, at the query layer's values; an ordinary run draws neither."""
    from mc_hull import query
    from mc_hull.query import views
    from mc_hull.cli.plot import draw

    fig = tmp_path / "nested.svg"
    assert cli_main(["plot", str(nested_results), "--out", str(fig)]) == 0
    svg = fig.read_text()
    for gid in ("median-t-d2", "median-t-bracket-d2", "median-t-d3", "median-t-bracket-d3", "median-t-n-half"):
        assert f'id="{gid}"' in svg, gid
    assert 'id="empirical-n-half"' not in svg and views.MEDIAN_T_SERIES in svg
    thresholds = {r["d"]: r for r in query.thresholds(str(nested_results)).to_pylist()}
    cells = views.cell_table(str(nested_results))
    figure = draw(views.by_dimension(cells), "gaussian", fitted=views.fitted_n_half(str(nested_results), None, cells))
    lines = {line.get_gid(): line for ax in figure.axes for line in ax.get_lines()}
    for d, row in thresholds.items():
        assert list(lines[f"median-t-d{d}"].get_xdata()) == [row["n_half"]]
        assert list(lines[f"median-t-d{d}"].get_ydata()) == [0.5]
        assert list(lines[f"median-t-bracket-d{d}"].get_xdata()) == [row["n_half_low"], row["n_half_high"]]
    points = next(c for ax in figure.axes for c in ax.containers if c.get_label() == views.MEDIAN_T_SERIES)
    assert sorted(points.lines[0].get_ydata()) == sorted(r["n_half"] for r in thresholds.values())
    plain = tmp_path / "plain.svg"
    assert cli_main(["plot", str(small_results), "--out", str(plain)]) == 0
    assert "median-t" not in plain.read_text()
