"""mc_hull dashboard: p(d, N) against N (distance panels for distance runs), heatmap, N½ against d (the
distribution of the entry size T for nested runs), status, audit.

Start it with ``mc-hull dashboard DIR`` (or ``streamlit run dashboards/app.py -- DIR``;
the ``MC_HULL_RESULTS`` environment variable also names DIR).  Every table is
aggregated in SQL by :mod:`mc_hull.query.views`; results are cached under a key that
changes when a shard file lands, so a refresh costs a directory listing.
"""

from __future__ import annotations

import os
import sys
import time


def mark(what: str) -> None:
    """Append ``wall-clock CPU-seconds app WHAT`` to the file ``$MC_HULL_TIMELINE`` names, if any (the
    timeline of a page load: ``benchmarks/dashboard_timeline.py``)."""
    path = os.environ.get("MC_HULL_TIMELINE")
    if path:
        with open(path, "a") as fh:
            fh.write(f"{time.time():.4f} {time.process_time():.3f} app {what}\n")


mark("script start")

import altair as alt
import pandas as pd
import streamlit as st

from mc_hull import query
from mc_hull.query import views
from mc_hull.cli import notes
from mc_hull.errors import McHullError

mark("imports done")
st.set_page_config(page_title="mc_hull: p(d, N)", layout="wide")

#: strokeDash per series, shared by the layers of view 1 so one legend explains the line styles.
DASHES = {views.MC_SERIES: [1, 0], views.EXACT_SERIES: [6, 3], views.BF_SERIES: [2, 2],
          views.HALF_SERIES: [8, 4]}


def results_dir() -> str:
    """DIR from ``streamlit run app.py -- DIR``, else ``$MC_HULL_RESULTS``, else ./results."""
    if sys.argv and sys.argv[0].endswith("app.py") and len(sys.argv) > 1:
        return sys.argv[1]
    return os.environ.get("MC_HULL_RESULTS", "results")


# -- cached loaders (the key argument is the store's fingerprint) --------------------
@st.cache_data(show_spinner=False, max_entries=32)
def load_cells(out: str, key: tuple, run_id: str | None):
    return views.cell_table(out, run_id)


@st.cache_data(show_spinner=False, max_entries=32)
def load_fitted(out: str, key: tuple, run_id: str | None):
    return views.fitted_n_half(out, run_id, load_cells(out, key, run_id))


@st.cache_data(show_spinner=False, max_entries=32)
def load_thresholds(out: str, key: tuple, run_id: str | None):
    return views.thresholds(out, run_id, load_cells(out, key, run_id))


@st.cache_data(show_spinner=False, max_entries=32)
def load_entry_ecdf(out: str, key: tuple, run_id: str | None, dist: str, dims: tuple):
    return views.entry_ecdf(out, run_id, dist, list(dims))


@st.cache_data(show_spinner=False, max_entries=64)
def load_exact_curves(out: str, key: tuple, run_id: str | None, dist: str, dims: tuple, which: str = "ambient"):
    cells = views.select_cells(load_cells(out, key, run_id), views.Filters(distributions=[dist], dims=list(dims)))
    return views.exact_curves(views.by_dimension(cells, which))


@st.cache_data(show_spinner=False, max_entries=32)
def load_ratio_histogram(out: str, key: tuple, run_id: str | None, dist: str, dims: tuple):
    return query.ratio_histogram(out, run_id=run_id, distribution=dist, dims=list(dims))


@st.cache_data(show_spinner=False, max_entries=64)
def load_exact_n_half(distribution: str, d_min: int, d_max: int):
    return views.exact_n_half_curve(distribution, d_min, d_max)


@st.cache_data(show_spinner=False, max_entries=64)
def load_reference_n_half(out: str, key: tuple, run_id: str | None, dist: str, dims: tuple, which: str,
                          x_min: int, x_max: int):
    """(the exact N½ the selected cells follow, against ``which``; its law labels). A single law is
    relabelled to the plain exact-N½ series (black in views 2 and 3)."""
    cells = views.by_dimension(views.select_cells(load_cells(out, key, run_id),
                                                  views.Filters(distributions=[dist], dims=list(dims))), which)
    ref = views.reference_n_half(cells, x_min, x_max)
    series = list(dict.fromkeys(ref["series"].to_pylist()))
    labels = tuple(s[len(views.EXACT_HALF_SERIES) + 2:-1] for s in series)
    return (views.relabel(ref, views.EXACT_HALF_SERIES) if len(series) == 1 else ref), labels


@st.cache_data(show_spinner=False, max_entries=16)
def load_family_n_half(x_min: int, x_max: int, skip: tuple):
    return views.family_n_half(x_min, x_max, skip)


@st.cache_data(show_spinner=False, max_entries=4)
def load_summary(out: str, key: tuple):
    """Trials by cell, run, method, status and log bins (the audit): from the units' digests, else one scan."""
    return views.audit_overview(out)


@st.cache_data(show_spinner=False, max_entries=8, ttl=5)
def load_status(out: str, key: tuple):
    # counts from the verified units' statuses: the status view does not wait for the audit's scan
    return views.run_status(out)


@st.cache_data(show_spinner=False, max_entries=32)
def load_audit(out: str, key: tuple, dists: tuple, dims: tuple, n_min, n_max, runs: tuple):
    filters = views.Filters(list(dists), list(dims), n_min, n_max, list(runs))
    return views.audit_tables(out, filters, load_summary(out, key))


@st.cache_data(show_spinner=False, max_entries=8)
def load_options(out: str, key: tuple):
    return views.filter_options(out, load_cells(out, key, None))


#: Encoding channel -> its Altair class, for shorthand strings (see :class:`Chart`).
CHANNELS = {"x": alt.X, "y": alt.Y, "x2": alt.X2, "y2": alt.Y2, "color": alt.Color, "stroke": alt.Stroke,
            "strokeDash": alt.StrokeDash, "detail": alt.Detail, "tooltip": alt.Tooltip, "shape": alt.Shape,
            "size": alt.Size, "opacity": alt.Opacity}


def typed(channel: str, value):
    """A shorthand string (or a list of them) as the channel's Altair object; anything else as is."""
    cls = CHANNELS.get(channel)
    if cls is None:
        return value
    if isinstance(value, str):
        return cls(value)
    if isinstance(value, (list, tuple)):
        return [cls(v) if isinstance(v, str) else v for v in value]
    return value


class Chart(alt.Chart):
    """``alt.Chart`` whose ``encode`` wraps shorthand strings in their channel classes first.

    The same chart: Altair wraps a string itself, but through a lookup that rebuilds a table of
    every schema class on each string (~8 ms each: a third of the page's chart-building time).
    """

    def encode(self, *args, **kwargs):
        return super().encode(*args, **{k: typed(k, v) for k, v in kwargs.items()})


def df(table) -> pd.DataFrame:
    """A small aggregated Arrow table as pandas for Altair."""
    return table.to_pandas()


def log_n(title: str = "N (training-set size)", domain=None) -> alt.Scale:
    return alt.Scale(type="log", domain=domain) if domain else alt.Scale(type="log")


def dash_scale(series: list[str]) -> alt.Scale:
    return alt.Scale(domain=series, range=[DASHES[views.EXACT_SERIES] if s.startswith(views.EXACT_SERIES)
                                           else DASHES[s] for s in series])


def no_n_half_notes(n_half, cells) -> list[str]:
    """One line per curve without an empirical N½, saying why (from its cells)."""
    rows = cells.to_pylist()
    out = []
    for r in n_half.to_pylist():
        if r["n_half"] is None:
            mine = [c for c in rows if c.get("curve") == r.get("curve")]
            out.append(f"No N½ for {notes.label(r)}: {notes.reason_from_cells(mine)}.")
    return out


# -- view 1 ------------------------------------------------------------------------
def chart_p_vs_n(cells, exact, rules, which: str = "ambient") -> alt.LayerChart:
    c = df(cells).assign(series=views.MC_SERIES)
    ex = df(exact)
    bf = df(rules)
    series = [views.MC_SERIES] + sorted(set(ex["series"])) + [views.BF_SERIES, views.HALF_SERIES]
    x = alt.X("n:Q", scale=log_n(), title="N (training-set size, log scale)")
    title = "d" if which == "ambient" else f"{which} dimension"
    dims = sorted(set(c["dim"]))
    # ten distinct categorical colours, then a perceptual scale so no two dimensions share one
    color = alt.Color("dim:N", title=title, sort=dims,
                      scale=alt.Scale(scheme="category10" if len(dims) <= 10 else "viridis"),
                      legend=dim_legend(len(dims), title))
    dash = alt.StrokeDash("series:N", scale=dash_scale(series), title="series",
                          legend=alt.Legend(symbolType="stroke", symbolStrokeColor="#444444", symbolStrokeWidth=2,
                                            symbolSize=400, symbolOpacity=1, labelLimit=320,
                                            orient="bottom", direction="horizontal"))
    curve = alt.Detail("curve:N")  # one line per (params, ambient d) even when they share a dimension
    band = Chart(c).mark_area(opacity=0.18).encode(
        x=x, y=alt.Y("ci_low:Q", title="p = P(x in conv(X₁..X_N))", scale=alt.Scale(domain=[0, 1])),
        y2="ci_high:Q", color=color, detail=curve)
    points = Chart(c).mark_line().encode(
        x=x, y="p_hat:Q", color=color, strokeDash=dash, detail=curve,
        tooltip=["distribution", "params", "d", "d_intrinsic", "d_affine", "n", "trials", "undecided",
                 alt.Tooltip("p_hat:Q", format=".4f"), alt.Tooltip("ci_low:Q", format=".4f"),
                 alt.Tooltip("ci_high:Q", format=".4f"), alt.Tooltip("exact:Q", format=".4f")])
    dots = Chart(c).mark_point(filled=True, size=30).encode(x=x, y="p_hat:Q", color=color, detail=curve)
    layers = [points, band, dots]  # the first layer's mark styles the legends
    if len(ex):
        layers.append(Chart(ex).mark_line(strokeWidth=1.5).encode(
            x=alt.X("n:Q", scale=log_n()), y="p:Q", color=color, strokeDash=dash, detail=curve,
            tooltip=["curve", "n", alt.Tooltip("p:Q", format=".4f"), "series"]))
    bf = bf.assign(series=views.BF_SERIES)
    layers.append(Chart(bf).mark_rule(strokeWidth=1.5).encode(
        x=alt.X("bf_threshold:Q", scale=log_n()), color=color, strokeDash=dash,
        tooltip=[alt.Tooltip("dim:Q", title=title), alt.Tooltip("bf_threshold:Q", format=".3g", title="2^(d/2)/d")]))
    half = pd.DataFrame({"p": [0.5], "series": [views.HALF_SERIES]})
    layers.append(Chart(half).mark_rule(color="gray").encode(y="p:Q", strokeDash=dash))
    return alt.layer(*layers).resolve_scale(color="shared").properties(height=420)


# -- view 1, distance runs -----------------------------------------------------------
#: (series, column prefix) of the distance panel: p̂ and P(distance <= eps nn), each with its 99% interval.
NEAR_SERIES = (("p̂ = P(inside)", "p_hat", "ci"), ("P(distance ≤ 0.01·nn)", "p_near_1pct", "p_near_1pct"),
               ("P(distance ≤ 0.1·nn)", "p_near_10pct", "p_near_10pct"))


def measured_distance(cells) -> bool:
    """Whether any of these cells has distance summaries (a run with ``measure = "distance"``)."""
    if "outside_measured" not in cells.column_names:
        return False
    return any(v is not None and v == v for v in cells["p_near_10pct"].to_pylist())


def near_table(cells) -> pd.DataFrame:
    """Long table: one row per (cell, series) with ``value, low, high`` for the distance panel."""
    c = df(cells)
    c = c[c["p_near_10pct"].notna()]
    parts = []
    for series, col, ci in NEAR_SERIES:
        part = c[["curve", "d", "dim", "n", "trials", "outside_measured"]].copy()
        part["series"] = series
        part["value"], part["low"], part["high"] = c[col], c[f"{ci}_low"], c[f"{ci}_high"]
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def curve_order(frame: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(frame.sort_values(["d", "curve"])["curve"]))


#: Facets per row and the width of each (px): three fit the main column of a wide page (about 940 px
#: at a 1400 px window), so every d is reached by scrolling down, never sideways.
FACET_COLUMNS = 3
FACET_WIDTH = 240


def wrapped(chart, frame: pd.DataFrame, height: int):
    """``chart`` faceted per curve (one panel per d), :data:`FACET_COLUMNS` panels to a row."""
    return chart.properties(height=height, width=FACET_WIDTH).facet(
        facet=alt.Facet("curve:N", sort=curve_order(frame), title=None,
                        header=alt.Header(labelFontSize=12, labelFontWeight="bold")),
        columns=FACET_COLUMNS).configure_legend(orient="top")


def dim_legend(count: int, title: str) -> alt.Legend:
    """A legend for ``count`` dimensions that shows every one: one column per 12 entries."""
    return alt.Legend(title=title, symbolOpacity=1, symbolType="circle", columns=max(1, -(-count // 12)),
                      symbolLimit=0, labelLimit=0)


def chart_near(near: pd.DataFrame) -> alt.FacetChart:
    """Per d: p̂ and P(distance <= eps nn) against N on one axis, each with its shaded 99% interval."""
    series = [s for s, _, _ in NEAR_SERIES]
    x = alt.X("n:Q", scale=log_n(), title="N (log scale)")
    color = alt.Color("series:N", title="series", sort=series,
                      scale=alt.Scale(domain=series, range=["#4c78a8", "#e45756", "#f58518"]))
    y = alt.Y("value:Q", title="probability", scale=alt.Scale(domain=[0, 1]))
    base = Chart(near)
    band = base.mark_area(opacity=0.15).encode(x=x, y=alt.Y("low:Q"), y2="high:Q", color=color)
    line = base.mark_line(point=True).encode(
        x=x, y=y, color=color, tooltip=["curve", "n", "series", "trials", "outside_measured",
                                        alt.Tooltip("value:Q", format=".4f"), alt.Tooltip("low:Q", format=".4f"),
                                        alt.Tooltip("high:Q", format=".4f")])
    return wrapped(alt.layer(line, band), near, 260)


def chart_ratio_histogram(hist: pd.DataFrame) -> alt.FacetChart:
    """Per d: the share of outside trials in each log bin of distance/nn."""
    x = alt.X("lo:Q", scale=alt.Scale(type="log"), title="distance / nn (log bins, outside trials)")
    bars = Chart(hist).mark_bar(opacity=0.8).encode(
        x=x, x2="hi:Q", y=alt.Y("share:Q", title="share of outside trials", stack=None), y2=alt.datum(0),
        tooltip=["curve", alt.Tooltip("lo:Q", format=".3g"), alt.Tooltip("hi:Q", format=".3g"), "trials",
                 alt.Tooltip("share:Q", format=".3f")])
    return wrapped(bars, hist, 220)


def section_distance(out: str, key: tuple, run_id: str | None, dist: str, dims: list, cells) -> None:
    """How far outside the outside points are, when the selected run(s) measured distance."""
    if not measured_distance(cells):
        st.caption("No selected run measured the distance to the hull (`--measure distance`).")
        return
    st.subheader("How far outside? P(distance ≤ ε·nn) beside p̂")
    st.caption("distance: certified upper bound on the distance of the new point to the hull; nn: its distance "
               "to the nearest training point. Inside points count as distance 0. Shaded: 99% intervals "
               "clustered by training set, like p̂.")
    st.altair_chart(chart_near(near_table(cells)), width="stretch")
    hist = df(load_ratio_histogram(out, key, run_id, dist, tuple(dims)))
    if len(hist):
        hist["curve"] = [f"{p}, d={d}" if p else f"d={d}" for p, d in zip(hist["params"].fillna(""), hist["d"])]
        st.caption("distance/nn of the outside trials, per d (log bins of a quarter decade, counted in SQL).")
        st.altair_chart(chart_ratio_histogram(hist), width="stretch")


# -- view 2 ------------------------------------------------------------------------
def chart_heatmap(heat, n_half, exact_half, bf) -> alt.LayerChart:
    h = df(heat)
    b = df(bf)
    lo = min(float(h["n_lo"].min()), float(b["n"].min()))
    hi = max(float(h["n_hi"].max()), lo * 10)
    y_scale = alt.Scale(type="log", domain=[lo, hi], nice=False)
    x_scale = alt.Scale(domain=[float(h["d_lo"].min()), float(h["d_hi"].max())], nice=False)
    x_axis = alt.Axis(tickMinStep=1, format="d")
    rect = Chart(h).mark_rect().encode(
        x=alt.X("d_lo:Q", scale=x_scale, title="d", axis=x_axis), x2="d_hi:Q",
        y=alt.Y("n_lo:Q", scale=y_scale, title="N (log scale)"), y2="n_hi:Q",
        color=alt.Color("p_hat:Q", scale=alt.Scale(scheme="viridis", domain=[0, 1]), title="p̂"),
        tooltip=["d", "n", alt.Tooltip("p_hat:Q", format=".3f"), "trials"])
    emp = df(n_half)
    emp = emp[emp["n_half"].notna()][["d", "n_half"]].rename(columns={"n_half": "n"})
    emp["series"] = views.EMPIRICAL_HALF_SERIES
    lines = pd.concat([b, emp] + ([df(exact_half)] if exact_half.num_rows else []), ignore_index=True)
    lines = lines[lines["n"] > 0]
    series = list(dict.fromkeys(lines["series"]))
    colors = {views.BF_SERIES: "#ff00ff", views.EMPIRICAL_HALF_SERIES: "#e4572e", views.EXACT_HALF_SERIES: "black"}
    dashes = {views.BF_SERIES: [2, 2], views.EMPIRICAL_HALF_SERIES: [1, 0], views.EXACT_HALF_SERIES: [6, 3]}
    enc = dict(
        x=alt.X("d:Q", scale=x_scale), y=alt.Y("n:Q", scale=y_scale),
        stroke=alt.Stroke("series:N", title="50% contour / line",
                          scale=alt.Scale(domain=series, range=[colors[s] for s in series]),
                          legend=alt.Legend(symbolType="stroke", symbolStrokeWidth=3)),
        strokeDash=alt.StrokeDash("series:N", legend=None,
                                  scale=alt.Scale(domain=series, range=[dashes[s] for s in series])),
        tooltip=["series", "d", alt.Tooltip("n:Q", format=".4g")])
    bf_line = Chart(lines[lines["series"] == views.BF_SERIES]).mark_line(clip=True, strokeWidth=2.5).encode(**enc)
    contours = Chart(lines[lines["series"] != views.BF_SERIES]).mark_line(
        point=True, clip=True, strokeWidth=2).encode(**enc)
    return alt.layer(rect, bf_line, contours).resolve_scale(color="independent").properties(height=420)


# -- view 3 ------------------------------------------------------------------------
def chart_n_half(n_half, exact_half, bf, other_half=None, which: str = "ambient", measured=None) -> alt.LayerChart:
    """N½ against d: the cells' own points (fit or median of T, with brackets), exact curves, 2^(d/2)/d
    and, where given, ``measured`` (:func:`mc_hull.query.views.family_measured_n_half`: the uniform cube's
    shipped nested Monte Carlo N½ with its 99% bracket)."""
    meas = df(measured) if measured is not None and measured.num_rows else None
    emp = df(n_half)
    emp = emp[emp["n_half"].notna()]
    emp = emp.assign(series=[views.MEDIAN_T_SERIES if src == views.MEDIAN_T_SOURCE else views.EMPIRICAL_HALF_SERIES
                             for src in emp["source"]])
    if "dim" in emp:  # the points stand at the chosen dimension; the curves are functions of it
        emp = emp.rename(columns={"d": "d_ambient", "dim": "d"})
    curves = [df(bf)] + [df(t) for t in (exact_half, other_half) if t is not None and t.num_rows]
    lines = pd.concat(curves, ignore_index=True)
    series = list(dict.fromkeys(list(lines["series"]) + (sorted(set(emp["series"]), reverse=True) if len(emp)
                                                         else [views.EMPIRICAL_HALF_SERIES])
                                + ([views.CUBE_SERIES] if meas is not None else [])))
    palette = {views.BF_SERIES: "#888888", views.EXACT_HALF_SERIES: "black", views.EMPIRICAL_HALF_SERIES: "#e4572e",
               views.MEDIAN_T_SERIES: "#9c27b0", views.CUBE_SERIES: "#6a3d9a"}
    family = ["#4c78a8", "#72b7b2", "#54a24b", "#b279a2", "#f58518", "#e45756", "#9d755d", "#bab0ac"]
    rest = [s for s in series if s not in palette]
    palette.update({s: family[i % len(family)] for i, s in enumerate(rest)})  # the family comparison
    color = alt.Color("series:N", title="N½", scale=alt.Scale(domain=series, range=[palette[s] for s in series]))
    y = alt.Y("n:Q", scale=alt.Scale(type="log"), title="N½ (log scale): p(d, N½) = 1/2")
    d_lo, d_hi = float(lines["d"].min()), float(lines["d"].max())
    x = alt.X("d:Q", title="d" if which == "ambient" else f"{which} dimension",
              scale=alt.Scale(domain=[d_lo - 0.5, d_hi + 0.5], nice=False),
              axis=alt.Axis(tickMinStep=1, format="d"))
    layers = [Chart(lines).mark_line(strokeDash=[5, 3], point=True).encode(
        x=x, y=y, color=color, tooltip=["series", "d", alt.Tooltip("n:Q", format=".4g")])]
    if meas is not None:
        bars = meas[meas["n_low"].notna() & meas["n_high"].notna()]
        if len(bars):
            layers.append(Chart(bars).mark_rule(strokeWidth=1.5).encode(
                x=x, y=alt.Y("n_low:Q", scale=alt.Scale(type="log")), y2="n_high:Q", color=color))
        layers.append(Chart(meas).mark_point(shape="diamond", filled=True, size=60).encode(
            x=x, y=y, color=color, tooltip=["series", "d", alt.Tooltip("n:Q", format=".4g", title="N½"),
                                            alt.Tooltip("n_low:Q", format=".4g"), alt.Tooltip("n_high:Q", format=".4g")]))
    if len(emp):
        e = emp.rename(columns={"n_half": "n"})
        bars = e[e["n_half_low"].notna() & e["n_half_high"].notna()]
        if len(bars):
            layers.append(Chart(bars).mark_rule(strokeWidth=2).encode(
                x=x, y=alt.Y("n_half_low:Q", scale=alt.Scale(type="log")), y2="n_half_high:Q", color=color))
        layers.append(Chart(e).mark_point(filled=True, size=70).encode(
            x=x, y=y, color=color,
            tooltip=[c for c in ("curve", "d") if c in e] + [
                     alt.Tooltip("n:Q", format=".4g", title="N½"), alt.Tooltip("n_half_low:Q", format=".4g"),
                     alt.Tooltip("n_half_high:Q", format=".4g"), "source",
                     alt.Tooltip("exact_n_half:Q", format=".4g")]))
    return alt.layer(*layers).properties(height=420)


# -- view 3, nested runs: the distribution of the entry size T -------------------------
#: Series of the entry-size view: the two step functions between which P(T <= N) lies.
ECDF_SERIES = ("certainly entered: t_high ≤ N", "possibly entered: t_low < N")


def ecdf_table(ecdf) -> pd.DataFrame:
    """Long table for :func:`chart_entry_ecdf`: one row per (curve, grid size, series)."""
    e = df(ecdf)
    parts = []
    for series, col in zip(ECDF_SERIES, ("certain", "possible")):
        part = e[["curve", "d", "n", "trials"]].copy()
        part["series"], part["value"] = series, e[col]
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def chart_entry_ecdf(frame: pd.DataFrame, medians: pd.DataFrame) -> alt.FacetChart:
    """Per d: the empirical CDF of T's bounds (steps), the line at 1/2 and N½ = median of T with its bracket."""
    x = alt.X("n:Q", scale=log_n(), title="N (log scale)")
    color = alt.Color("series:N", title="P(T ≤ N)", sort=list(ECDF_SERIES),
                      scale=alt.Scale(domain=list(ECDF_SERIES), range=["#4c78a8", "#f58518"]))
    y = alt.Y("value:Q", title="share of trials", scale=alt.Scale(domain=[0, 1]))
    tooltip = ["curve", "n", "series", "trials", alt.Tooltip("value:Q", format=".4f")]
    lower = Chart().transform_filter(alt.datum.series == ECDF_SERIES[0]).mark_line(
        interpolate="step-after").encode(x=x, y=y, color=color, tooltip=tooltip)
    upper = Chart().transform_filter(alt.datum.series == ECDF_SERIES[1]).mark_line(
        interpolate="step-before", strokeDash=[4, 2]).encode(x=x, y=y, color=color, tooltip=tooltip)
    half = Chart().mark_rule(color="gray", strokeWidth=0.8).encode(y=alt.datum(0.5))
    layers = [lower, upper, half]
    data = frame
    if len(medians):   # the bracket along p = 1/2 and the median, in the same facets
        m = medians.assign(series="N½ = median of T", value=0.5)
        data = pd.concat([frame, m], ignore_index=True)
        tip = ["curve", alt.Tooltip("n_half:Q", format=".4g", title="N½ (median of T)"),
               alt.Tooltip("n_half_low:Q", format=".4g"), alt.Tooltip("n_half_high:Q", format=".4g"),
               alt.Tooltip("exact_n_half:Q", format=".4g")]
        sel = alt.datum.series == "N½ = median of T"
        layers.append(Chart().transform_filter(sel).mark_rule(strokeWidth=5, opacity=0.45, color="#e4572e")
                      .encode(x=alt.X("lo:Q", scale=log_n()), x2="hi:Q", y="value:Q", tooltip=tip))
        layers.append(Chart().transform_filter(sel).mark_point(shape="diamond", filled=True, size=90,
                                                                   color="#e4572e")
                      .encode(x=alt.X("n_half:Q", scale=log_n()), y="value:Q", tooltip=tip))
        layers.append(Chart().transform_filter(sel & (alt.datum.exact_n_half > 0)).mark_point(
            shape="cross", size=90, color="black").encode(x=alt.X("exact_n_half:Q", scale=log_n()), y="value:Q",
                                                           tooltip=tip))
    return wrapped(alt.layer(*layers, data=data), frame, 240)


def section_nested(out: str, key: tuple, run_id: str | None, dist: str, dims: list, cells, n_half) -> None:
    """For nested runs: N½ read as the median of T (the query layer's table) and the distribution of T."""
    ecdf = load_entry_ecdf(out, key, run_id, dist, tuple(dims))
    if ecdf.num_rows == 0:
        return
    st.subheader("Nested runs: N½ as the median of the entry size T")
    st.caption("Each query's entry size T = min{N : x ∈ conv(X₁…X_N)} is located on the grid, so p̂(N) = "
               "P(T ≤ N) and N½ is the median of T, read off without a fit. Steps: the share of trials "
               "certainly inside by N (t_high ≤ N) and possibly inside (t_low < N); P(T ≤ N) lies between. "
               "Red: N½ = median of T with its 99% bracket, from the per-size intervals clustered by "
               "training set; black cross: exact N½ where known.")
    frame = ecdf_table(ecdf)
    nh = df(n_half)
    nh = nh[(nh["source"] == views.MEDIAN_T_SOURCE) & nh["curve"].isin(set(frame["curve"]))]
    lo_n, hi_n = float(frame["n"].min()), float(frame["n"].max())
    nh = nh.assign(lo=nh["n_half_low"].fillna(lo_n).clip(lower=lo_n), hi=nh["n_half_high"].fillna(hi_n))
    st.altair_chart(chart_entry_ecdf(frame, nh[["curve", "d", "n_half", "n_half_low", "n_half_high",
                                                "exact_n_half", "lo", "hi"]]), width="stretch")


# -- view 5 ------------------------------------------------------------------------
def chart_histogram(hist, title: str) -> alt.Chart:
    return Chart(df(hist)).mark_bar(opacity=0.75).encode(
        x=alt.X("lo:Q", scale=alt.Scale(type="log"), title=title), x2="hi:Q",
        y=alt.Y("trials:Q", stack=None, title="trials", scale=alt.Scale(zero=True)), y2=alt.datum(0), color=alt.Color("status:N"),
        tooltip=["status", alt.Tooltip("lo:Q", format=".2g"), alt.Tooltip("hi:Q", format=".2g"), "trials"]
    ).properties(height=260)


def fmt_seconds(s) -> str:
    if s is None or s != s:
        return "–"
    s = float(s)
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def section_status(out: str, key: tuple) -> None:
    st.header("4 · Run status")
    # With auto-refresh on, this section redraws itself on its own clock: a runner's progress record
    # moves between commits, which do not change the store's fingerprint.
    every = float(st.session_state.get("every") or 10) if st.session_state.get("auto") else None

    @st.fragment(run_every=every)
    def body():
        status_table(out, key)

    body()


def status_table(out: str, key: tuple) -> None:
    status = load_status(out, key)
    if status.num_rows == 0:
        st.info("No runs recorded yet.")
        return
    s = df(status)
    planned = s["shards_planned"].dropna().sum()
    eta = s["eta_s"].dropna()
    cols = st.columns(4)
    cols[0].metric("shards done / planned", f"{int(s['shards_done'].sum())} / {int(planned) if planned else '?'}")
    latest = views.latest_rate(status)
    cols[1].metric("trials/s (latest run)", f"{latest[1]:,.0f}" if latest else "–",
                   help=f"run {latest[0]}, the last to report" if latest else None)
    cols[2].metric("ETA", fmt_seconds(eta.max()) if len(eta) else "–")
    cols[3].metric("undecided trials", f"{int(s['undecided'].sum())}")
    for row in s.itertuples():
        flight = row.trials_in_flight if row.trials_in_flight == row.trials_in_flight else 0.0
        if row.trials_planned and row.trials_planned == row.trials_planned and (flight or row.active):
            # the share finished inside the units running (the runner's progress record) counts too
            frac = min(1.0, (row.trials_done + flight) / row.trials_planned)
            st.progress(frac, text=f"run {row.run_id} ({row.distribution}): {frac:.0%} of "
                                   f"{int(row.trials_planned):,} trials ({row.shards_done} of "
                                   f"{int(row.shards_planned or 0)} shards committed, {flight:,.0f} trials "
                                   "inside units in flight)" + (" · running" if row.active else ""))
        elif row.shards_planned and row.shards_planned == row.shards_planned:
            frac = min(1.0, row.shards_done / row.shards_planned)
            st.progress(frac, text=f"run {row.run_id} ({row.distribution}): {row.shards_done} of "
                                   f"{int(row.shards_planned)} shards" + (" · running" if row.active else ""))
    st.dataframe(s, hide_index=True, width="stretch")


def section_audit(out: str, key: tuple, options: dict) -> None:
    st.header("5 · Trial audit")
    c = st.columns(4)
    dist = c[0].multiselect("distribution", options["distributions"], key="audit_dist")
    dims = c[1].multiselect("d", options["dims"], key="audit_d")
    sizes = options["sizes"] or [1]
    if len(sizes) > 1:
        # a new key when the sizes change (new shards): the range resets to the full one
        n_lo, n_hi = c[2].select_slider("N range", options=sizes, value=(sizes[0], sizes[-1]),
                                        key=f"audit_n_{'_'.join(map(str, sizes))}")
    else:
        n_lo = n_hi = sizes[0]
    run_sel = c[3].multiselect("run", options["runs"], key="audit_run")
    counts, cert, secs = load_audit(out, key, tuple(dist), tuple(dims), n_lo, n_hi, tuple(run_sel))
    if counts.num_rows == 0:
        st.info("No trials match these filters.")
        return
    left, right = st.columns(2)
    with left:
        st.subheader("trials by method and status")
        st.altair_chart(Chart(df(counts)).mark_bar().encode(
            x=alt.X("trials:Q"), y=alt.Y("method:N", title=None), color="status:N",
            tooltip=["method", "status", "trials", alt.Tooltip("mean_seconds:Q", format=".2e"),
                     alt.Tooltip("mean_rounds:Q", format=".2f")]).properties(height=260), width="stretch")
    with right:
        st.subheader("counts")
        st.dataframe(df(counts), hide_index=True, width="stretch")
    left, right = st.columns(2)
    with left:
        st.subheader("certificate value")
        st.altair_chart(chart_histogram(cert, "certificate / data scale (log): inside residual, outside margin"),
                        width="stretch")
    with right:
        st.subheader("solve time")
        st.altair_chart(chart_histogram(secs, "seconds per trial (log)"), width="stretch")


def follow_options(key: str, options: list, full, keep) -> None:
    """Seed widget ``key`` with ``full``; when its options change (new shards), a selection that
    covered all the old options grows to cover the new ones, any other keeps its still-valid part."""
    memo = f"_options_{key}"
    previous = st.session_state.get(memo)
    if key not in st.session_state:
        st.session_state[key] = full
    elif previous is not None and previous != list(options):
        current = st.session_state[key]
        st.session_state[key] = full if list(current) == list(previous) else keep(current, options)
    st.session_state[memo] = list(options)


def watcher(out: str, key: tuple, every: float | None) -> None:
    """Rerun the whole app when the store's fingerprint changes (checked every ``every`` s)."""

    @st.fragment(run_every=every)
    def check():
        if every and views.dataset_key(out) != key:
            st.rerun()

    check()


#: Key of the hidden chart that makes the browser load Vega's code while the store is read.
PRELOAD_KEY = "mc-hull-vega-preload"


def preload_charts():
    """Send a hidden one-point chart before the store is read; returns its slot (emptied after view 1).

    Streamlit's browser code loads its Vega chunks (about 0.8 MB of JavaScript) only when a page's
    first chart arrives. Sending this one first lets the browser fetch and compile them while the
    server reads and verifies the store, instead of after it. Nothing is shown: the slot is hidden by
    a style rule, and emptied once view 1 is drawn.
    """
    st.html(f"<style>.st-key-{PRELOAD_KEY} {{display: none}}</style>")
    slot = st.empty()
    with slot.container(key=PRELOAD_KEY):
        st.altair_chart(alt.Chart(pd.DataFrame({"x": [0.0]})).mark_point().encode(x="x:Q"), width=10, height=10)
    return slot


def main() -> None:
    mark("main")
    out = results_dir()
    st.title("mc_hull · p(d, N) = P(x ∈ conv(X₁…X_N))")
    preload = preload_charts()
    with st.sidebar:
        st.caption(f"results: `{out}`")
        if st.button("Refresh", width="stretch"):
            st.cache_data.clear()
        auto = st.toggle("auto-refresh", value=False, key="auto")
        every = st.number_input("every (s)", min_value=2, max_value=3600, value=10, disabled=not auto, key="every")
    key = views.dataset_key(out)
    watcher(out, key, float(every) if auto else None)
    problem = views.location_problem(out)
    mark("key and location")
    try:
        if problem:
            st.info(problem)
            return
        render(out, key, preload)
    except McHullError as exc:
        st.error(f"Cannot read {out}: {exc}")
    finally:
        preload.empty()      # whatever the page showed (a problem, no cells): no hidden chart stays


def render(out: str, key: tuple, preload=None) -> None:
    options = load_options(out, key)
    mark("options (cell table read)")
    with st.sidebar:
        run = st.selectbox("run", ["all runs"] + options["runs"], key="run")
        run_id = None if run == "all runs" else run
        dists = options["distributions"]
        dist = st.selectbox("distribution", dists, index=dists.index("gaussian") if "gaussian" in dists else 0,
                            key="distribution")
        follow_options("dims", options["dims"], list(options["dims"]),
                       lambda v, opts: [d for d in v if d in opts])
        dims = st.multiselect("d", options["dims"], key="dims")
        which = st.radio("plot p against the dimension", list(views.DIMENSIONS), horizontal=True, key="dimension",
                         help="ambient: d; intrinsic: of the data's manifold; affine: of the smallest affine "
                              "subspace holding the data (views 1 and 3)")
    cells_all = load_cells(out, key, run_id)
    cells = views.by_dimension(views.select_cells(cells_all, views.Filters(distributions=[dist], dims=dims)), which)
    if cells.num_rows == 0:
        st.info("No cells match the selected run, distribution and dimensions.")
        section_status(out, key)
        return

    st.header(f"1 · p̂ against N ({dist})")
    st.caption("Lines: Monte Carlo p̂ with shaded 99% intervals (design-effect corrected); dashed: exact curve "
               "where known; dotted vertical rules: 2^(d/2)/d for each d; grey: p = 1/2.")
    exact = load_exact_curves(out, key, run_id, dist, tuple(dims), which)
    mark("chart 1 data")
    chart = chart_p_vs_n(cells, exact, views.threshold_rules(cells), which)
    mark("chart 1 built")
    st.altair_chart(chart, width="stretch")
    mark("chart 1 sent")
    if preload is not None:
        preload.empty()
    section_distance(out, key, run_id, dist, dims, cells)
    mark("distance section")

    n_half = views.n_half_table(cells, load_fitted(out, key, run_id))
    d_min, d_max = int(min(cells["d"].to_pylist())), int(max(cells["d"].to_pylist()))
    # the cells' own reference (a subspace's Gaussian of R^k, a Student-t's df...), against d
    exact_half, _ = load_reference_n_half(out, key, run_id, dist, tuple(dims), "ambient", d_min, d_max)
    exact_half = views.relabel(exact_half, views.EXACT_HALF_SERIES)
    bf = views.bf_curve(d_min, d_max)
    x_min, x_max = int(min(cells["dim"].to_pylist())), int(max(cells["dim"].to_pylist()))
    left, right = st.columns(2)
    with left:
        st.header("2 · p̂ over (d, log N)")
        st.caption("Colour: p̂ per cell; magenta dotted: N = 2^(d/2)/d; red: empirical 50% contour; "
                   "black dashed: exact 50% contour.")
        st.altair_chart(chart_heatmap(views.heatmap_cells(cells), n_half, exact_half, bf), width="stretch")
        mark("chart 2 sent")
    with right:
        st.header(f"3 · N½ against {'d' if which == 'ambient' else f'the {which} dimension'}")
        st.caption("N½: where p crosses 1/2. Empirical points with the bracket where the 99% band crosses "
                   "(the fit's interval; for a nested run N½ = the median of T with its 99% bracket); "
                   "exact where known (black: the law these cells follow, e.g. the Gaussian of R^k for a "
                   "k-dimensional subspace; thin colours: the family comparison of the README: Gaussian, "
                   "ball, beta, Student-t; purple diamonds: the uniform cube, no exact curve, measured by nested "
                   "Monte Carlo with its 99% bracket); "
                   "the line 2^(d/2)/d for comparison.")
        # curves over at least three dimensions, so that a single plotted dimension (a k-subspace
        # against its affine dimension k) still shows lines
        c_min, c_max = (max(1, x_min - 1), x_max + 1) if x_max - x_min < 2 else (x_min, x_max)
        ref_half, ref_labels = load_reference_n_half(out, key, run_id, dist, tuple(dims), which, c_min, c_max)
        family_half = load_family_n_half(c_min, c_max, ref_labels)
        # the uniform cube measured (no exact curve), unless these cells are the cube's own points
        measured = views.family_measured_n_half(c_min, c_max) if dist != "cube" else None
        st.altair_chart(chart_n_half(n_half, ref_half, views.bf_curve(c_min, c_max), family_half, which, measured),
                        width="stretch")
        mark("chart 3 sent")
        st.caption("What the line is and is not: 2^(d/2)/d (Bárány–Füredi, quoted by Balestriero, Pesenti & "
                   "LeCun 2021 for the uniform ball) is the scale of a union bound at which every training "
                   "point is a vertex of the hull, not where a new point becomes as likely inside as outside. "
                   "The exact 50% points (Kabluchko & Zaporozhets 2017 for Gaussian data; Efron's identity "
                   "with Kabluchko, Thäle & Zaporozhets 2018 for the ball, beta and Student-t laws) lie orders "
                   "of magnitude above it for light tails, "
                   "and for the Gaussian and the ball p on the line itself is 0 for d ≤ 16 and below 2·10⁻⁶ "
                   "up to d = 64.")
        if all(v is None for v in n_half["n_half"].to_pylist()):
            st.caption("No measured curve crosses 1/2 in this N range yet.")
        for note in no_n_half_notes(n_half, cells):
            st.caption(note)
    table = df(load_thresholds(out, key, run_id))
    table = table[(table["distribution"] == dist) & table["d"].isin(dims or options["dims"])]
    if len(table):
        st.caption("N½ per d from the query layer (`mc-hull query --thresholds`): method 'median of T' for a "
                   "nested run (the median of the entry size T, 99% bracket (n_half_low, n_half_high] "
                   "inverting the per-size clustered intervals), otherwise a logistic fit with a 99% "
                   "test-inversion interval.")
        st.dataframe(table, hide_index=True, width="stretch")
    section_nested(out, key, run_id, dist, dims, cells, n_half)
    mark("nested section")
    section_status(out, key)
    mark("status section")
    section_audit(out, key, options)
    mark("audit section")

    st.header("6 · Download")
    st.download_button("Download the cell table (CSV)", views.to_csv(cells_all), file_name="mc_hull_cells.csv",
                       mime="text/csv")
    st.download_button("Download N½ per d (CSV)", views.to_csv(n_half), file_name="mc_hull_n_half.csv",
                       mime="text/csv")
    with st.expander("cell table"):
        st.dataframe(df(cells), hide_index=True, width="stretch")
    mark("script end")


main()
