"""Digits sweep: the fraction of test images inside the training hull against kept dimensions, per reduction.

A page of the ``mc-hull dashboard DIR`` app (Streamlit picks up files in
``dashboards/pages``).  It shows sweeps written by
``mc-hull hull-test --preset paper-digits --out DIR``, read through
:mod:`mc_hull.query`.
"""

from __future__ import annotations

import os
import sys

import altair as alt
import streamlit as st

from mc_hull import query

st.set_page_config(page_title="mc_hull: digits sweep", layout="wide")


def location() -> str:
    """DIR as the main app gets it: ``streamlit run app.py -- DIR``, else ``$MC_HULL_RESULTS``, else ./results."""
    argv_dir = sys.argv[1] if len(sys.argv) > 1 and sys.argv[0].endswith("app.py") else None
    return argv_dir or os.environ.get("MC_HULL_RESULTS") or "results"


@st.cache_data(show_spinner=False, max_entries=16)
def load(out: str, key: tuple, sweep_id: str):
    return query.sweep_table(out, sweep_id).to_pandas()


@st.cache_data(show_spinner=False, max_entries=16)
def load_distances(out: str, key: tuple, sweep_id: str):
    return query.sweep_distances(out, sweep_id).to_pandas()


def kinds_of(rows) -> list[str]:
    kinds = [k for k in query.REDUCTION_ORDER if k in set(rows["reduction"])]
    return kinds + sorted(set(rows["reduction"]) - set(kinds))


def chart_distance(rows, value: str, low: str, high: str, title: str, log: bool) -> alt.LayerChart:
    """``value`` against K per reduction, its interval as bars (distance/nn panels)."""
    x = alt.X("K:Q", scale=alt.Scale(type="log", base=2), title="kept dimensions K (log scale)")
    color = alt.Color("reduction:N", title="reduction", scale=alt.Scale(domain=kinds_of(rows), scheme="category10"))
    y = alt.Y(f"{value}:Q", title=title, scale=alt.Scale(type="log") if log else alt.Scale(domain=[0, 1]))
    tips = ["reduction", "K", "outside_measured"] + [alt.Tooltip(f"{c}:Q", format=".4g") for c in (value, low, high)]
    base = alt.Chart(rows[rows[value].notna()])
    bars = base.mark_rule(strokeWidth=2, opacity=0.6).encode(x=x, y=alt.Y(f"{low}:Q"), y2=f"{high}:Q", color=color)
    line = base.mark_line(point=alt.OverlayMarkDef(filled=True, size=60)).encode(x=x, y=y, color=color, tooltip=tips)
    return alt.layer(line, bars).properties(height=320)


def chart(rows) -> alt.LayerChart:
    """Fraction inside against K (log scale) per reduction, with 99% Wilson intervals as bars."""
    x = alt.X("K:Q", scale=alt.Scale(type="log", base=2), title="kept dimensions K (log scale)")
    kinds = kinds_of(rows)
    color = alt.Color("reduction:N", title="reduction", scale=alt.Scale(domain=kinds, scheme="category10"))
    y = alt.Y("fraction:Q", scale=alt.Scale(domain=[0, 1]), title="fraction of test images inside the training hull")
    tips = ["reduction", "K", "dims", "n_train", "n_test", "inside", "undecided",
            alt.Tooltip("fraction:Q", format=".4f"), alt.Tooltip("ci_low:Q", format=".4f"),
            alt.Tooltip("ci_high:Q", format=".4f")]
    base = alt.Chart(rows)
    bars = base.mark_rule(strokeWidth=2, opacity=0.6).encode(x=x, y=alt.Y("ci_low:Q"), y2="ci_high:Q", color=color)
    line = base.mark_line(point=alt.OverlayMarkDef(filled=True, size=60)).encode(x=x, y=y, color=color, tooltip=tips)
    return alt.layer(line, bars).properties(height=420)


out = location()
st.title("Test images inside the training hull: digits")
found = query.sweeps(out)
if not found:
    st.info(f"No sweep under {out} yet. Run `mc-hull hull-test --preset paper-digits --out {out}` "
            "(about ten seconds); this page shows it on the next refresh.")
    st.stop()
labels = {r["sweep_id"]: f"{r.get('name', 'sweep')} · {r['sweep_id']} · {r.get('finished', '?')}" for r in found}
sweep_id = st.sidebar.selectbox("Sweep", list(labels), format_func=labels.get)
record = next(r for r in found if r["sweep_id"] == sweep_id)
rows = load(out, query.sweeps_key(out), sweep_id)
train, test = record.get("train", {}), record.get("test", {})
st.caption(f"{train.get('source', '?')} (n = {train.get('n', '?')}) against {test.get('source', '?')} "
           f"(n = {test.get('n', '?')}) · solver {record.get('solver', '?')} · "
           f"{record.get('seconds', float('nan')):.1f} s. Every answer is certified; bars are 99% Wilson "
           "intervals over test images, given this training set.")
st.altair_chart(chart(rows), width="stretch")
if "dist_nn_q50" in rows:
    dist = load_distances(out, query.sweeps_key(out), sweep_id)
    st.subheader("How far outside? distance/nn against K")
    st.caption("distance: certified upper bound on a test image's distance to the training hull; nn: its "
               "distance to the nearest training image. Left: median over outside images with a 99% "
               "distribution-free interval; right: fraction of decided images within 0.1·nn of the hull "
               "(inside images count), 99% Wilson intervals.")
    left, right = st.columns(2)
    with left:
        st.altair_chart(chart_distance(dist, "dist_nn_median", "dist_nn_low", "dist_nn_high",
                                       "median distance / nn (outside images, log scale)", True), width="stretch")
    with right:
        st.altair_chart(chart_distance(dist, "p_near_10pct", "p_near_10pct_low", "p_near_10pct_high",
                                       "P(distance ≤ 0.1·nn)", False), width="stretch")
else:
    st.caption("This sweep did not measure the distance to the hull (`--measure distance`).")
st.dataframe(rows.drop(columns=["test_id"]), hide_index=True, width="stretch")
st.download_button("Download the sweep table (CSV)", rows.to_csv(index=False), file_name=f"sweep-{sweep_id}.csv")
