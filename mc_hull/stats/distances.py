"""Summaries of distance/nn per cell: a clustered median interval and P(distance <= eps * nn)."""

from __future__ import annotations

import math

import numpy as np

from . import intervals as stats

#: The epsilons of P(distance <= eps * nn) that queries report.
EPSILONS = (0.01, 0.1)
#: Quantiles of distance/nn that hull-tests print.
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
#: Summary columns, in order (see :func:`cell_summary`).
SUMMARY_COLUMNS = ("outside_measured", "dist_nn_median", "dist_nn_low", "dist_nn_high",
                   "p_near_1pct", "p_near_1pct_low", "p_near_1pct_high",
                   "p_near_10pct", "p_near_10pct_low", "p_near_10pct_high")


def _quantile(sorted_values: np.ndarray, q: float) -> float:
    """The empirical quantile (inverse of the empirical CDF, lower value) of sorted values."""
    n = sorted_values.size
    return float(sorted_values[min(n - 1, max(0, math.ceil(q * n) - 1))])


def median_interval(values, clusters, level: float = stats.LEVEL):
    """The median of ``values`` with a distribution-free interval that accounts for clustering.

    The interval is ``[Q(a), Q(b)]`` with ``[a, b]`` the clustered Wilson interval
    (:func:`mc_hull.stats.intervals.clustered_interval`) of ``P(value <= median) = 1/2``: the
    design effect is that of the indicator ``value <= median`` over the clusters
    (queries sharing one training set are correlated).

    Parameters
    ----------
    values : array_like, shape (n,)
    clusters : array_like, shape (n,)
        Cluster label of each value (the replicate).
    level : float

    Returns
    -------
    median, low, high : float
        NaN when ``values`` is empty.
    """
    v = np.asarray(values, dtype=np.float64)
    c = np.asarray(clusters)
    if v.size == 0:
        return math.nan, math.nan, math.nan
    order = np.sort(v)
    med = _quantile(order, 0.5)
    _, inv = np.unique(c, return_inverse=True)
    m = np.bincount(inv).astype(np.float64)
    y = np.bincount(inv, weights=(v <= med).astype(np.float64))
    # Interval for the CDF at the median from a sample with p = 1/2 (the design effect of the
    # actual indicator, which is what the clustering does to it).
    deff = stats.design_effect(y, m)
    k = int(np.count_nonzero(m))
    z = stats.t_value(level, k - 1) if k >= 2 else stats.z_value(level)
    a, b = stats.wilson(0.5 * v.size / deff, v.size / deff, level, z=z)
    return med, _quantile(order, float(a)), _quantile(order, float(b))


def cell_summary(replicate, status, high, nn, level: float = stats.LEVEL) -> dict:
    """Distance summaries of one cell's trials.

    Parameters
    ----------
    replicate : array_like of int, shape (n,)
        Training set of each trial (the cluster).
    status : array_like of str or int, shape (n,)
        ``"inside"``/``"outside"``/``"undecided"`` or 1/0/-1.
    high, nn : array_like, shape (n,)
        ``distance_high`` and ``nn_distance`` per trial (NaN where not measured).
    level : float

    Returns
    -------
    dict
        :data:`SUMMARY_COLUMNS`: ``outside_measured`` (outside trials with a distance),
        the median of ``distance_high / nn`` over them with its interval, and for
        each eps in :data:`EPSILONS` the fraction of decided, measured trials with
        ``distance_high <= eps * nn`` (inside trials have distance 0, so count),
        with its clustered interval.  The upper bound is used, so "near" is
        certified; with gaps of 1e-6 s it is the distance for every purpose.
    """
    st = np.asarray(status)
    if st.dtype.kind in "OUS":
        st = np.select([st == "inside", st == "outside"], [1, 0], -1)
    st = st.astype(np.int64)
    h = np.asarray(high, dtype=np.float64)
    nn = np.asarray(nn, dtype=np.float64)
    rep = np.asarray(replicate)
    measured = np.isfinite(h) & np.isfinite(nn)
    out = measured & (st == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(nn > 0, h / nn, 0.0)
    med, lo, hi = median_interval(ratio[out], rep[out], level)
    row = {"outside_measured": int(out.sum()), "dist_nn_median": med, "dist_nn_low": lo, "dist_nn_high": hi}
    decided = measured & (st >= 0)
    _, inv = np.unique(rep[decided], return_inverse=True) if decided.any() else (None, np.zeros(0, np.intp))
    m = np.bincount(inv).astype(np.float64)
    for eps, name in zip(EPSILONS, ("p_near_1pct", "p_near_10pct")):
        near = (st[decided] == 1) | (h[decided] <= eps * nn[decided])
        y = np.bincount(inv, weights=near.astype(np.float64), minlength=m.size)
        if m.sum() > 0:
            low, high_, _ = stats.clustered_interval(y, m, level)
            row.update({name: float(y.sum() / m.sum()), f"{name}_low": low, f"{name}_high": high_})
        else:
            row.update({name: math.nan, f"{name}_low": math.nan, f"{name}_high": math.nan})
    return row


def ratio_quantiles(status, high, nn, quantiles=QUANTILES) -> dict:
    """Quantiles of ``distance_high / nn`` over outside points (for hull-test summaries).

    Returns
    -------
    dict
        ``{q: value}`` (NaN when no point is outside), plus ``"outside"``: the count.
    """
    st = np.asarray(status)
    if st.dtype.kind in "OUS":
        st = np.where(st == "outside", 0, 1)
    h = np.asarray(high, dtype=np.float64)
    nn = np.asarray(nn, dtype=np.float64)
    out = (np.asarray(st) == 0) & np.isfinite(h) & (nn > 0)
    order = np.sort(h[out] / nn[out])
    res = {q: (_quantile(order, q) if order.size else math.nan) for q in quantiles}
    res["outside"] = int(out.sum())
    return res
