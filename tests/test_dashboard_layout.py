"""The dashboard with many dimensions, in a real Chromium: nothing wider than its column, every d in the legend.

A distance run over d = 2..16 (one small size each, few trials: the layout is what is tested)
draws three faceted panels; they wrap three to a row instead of one row of 15 panels
(4,419 px in a 940 px column before), and the d legend of view 1 lists all 15 dimensions
inside the chart (it was cut off after d = 14).  The run-rate tile names the run that
reported last.
"""

from __future__ import annotations

import time

import pyarrow as pa
import pytest

from mc_hull.query import views


def test_latest_rate_is_the_last_report_not_the_first_run_id():
    status = pa.Table.from_pylist([
        {"run_id": "000aaa", "trials_per_s": 10.0, "last_write_age_s": 5000.0},
        {"run_id": "fffbbb", "trials_per_s": 99.0, "last_write_age_s": 3.0},
        {"run_id": "888ccc", "trials_per_s": None, "last_write_age_s": 1.0},   # no rate yet
        {"run_id": "777ddd", "trials_per_s": 50.0, "last_write_age_s": None},  # no report time
    ])
    assert views.latest_rate(status) == ("fffbbb", 99.0)
    assert views.latest_rate(status.slice(2, 1)) is None
    assert views.latest_rate(status.slice(3, 1)) == ("777ddd", 50.0)


@pytest.mark.browser
def test_fifteen_dimensions_fit_the_column_and_the_legend(tmp_path):
    from test_browser import assert_no_error, dashboard_page, open_dashboard

    from mc_hull.runs.runner import execute
    from mc_hull.spec import Spec

    out = tmp_path / "results"
    execute(Spec(distribution="gaussian", dims="2..16", sizes=(40,), trials=40, queries_per_set=20, seed=3,
                 measure="distance"), str(out), backend="serial", progress=False)
    with dashboard_page(out) as (page, url):
        open_dashboard(page, url, charts=8)
        assert_no_error(page)
        charts = page.evaluate("""() => [...document.querySelectorAll('[data-testid="stVegaLiteChart"]:not(.st-key-mc-hull-vega-preload *)')].map(c => {
            const drawn = c.querySelector('canvas, svg.marks'), box = c.getBoundingClientRect();
            const legends = [...c.querySelectorAll('g.role-legend')].map(g =>
                [...g.querySelectorAll('g.role-legend-label text')].map(t => {
                    const r = t.getBoundingClientRect();
                    return {text: t.textContent, inside: r.bottom <= box.bottom + 1 && r.right <= box.right + 1
                                                         && r.height > 0};
                }));
            return {width: drawn.getBoundingClientRect().width, column: c.parentElement.getBoundingClientRect().width,
                    legends};
        })""")
        for c in charts:
            assert c["width"] <= c["column"] + 1, charts
        dims = [g for c in charts for g in c["legends"] if g and g[0]["text"] == "2"]
        assert dims, charts
        labels = {e["text"] for e in dims[0]}
        assert labels == {str(d) for d in range(2, 17)}
        assert all(e["inside"] for e in dims[0]), dims[0]
