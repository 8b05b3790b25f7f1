"""Interval estimates for proportions measured with clustered trials (queries sharing a training set)."""

from __future__ import annotations

import functools

import numpy as np
# the two quantile functions only (scipy.stats itself takes ~0.6 s to import: every reader of results paid it)
from scipy.special import ndtri, stdtrit

#: Default confidence level of every interval mc_hull reports.
LEVEL = 0.99


@functools.lru_cache(maxsize=64)
def z_value(level: float = LEVEL) -> float:
    """Two-sided normal quantile, e.g. 2.576 for 99% (cached: a cell table asks for it once per cell)."""
    return float(ndtri(0.5 + level / 2))


def t_value(level: float = LEVEL, df: float = np.inf) -> float:
    """Two-sided Student-t quantile with ``df`` degrees of freedom (the normal one when df is inf)."""
    if not np.isfinite(df):
        return z_value(level)
    return _t_value(float(level), float(df))


@functools.lru_cache(maxsize=4096)
def _t_value(level: float, df: float) -> float:
    return float(stdtrit(df, 0.5 + level / 2))


def wilson(successes, n, level: float = LEVEL, *, z: float | None = None):
    """Wilson score interval for a binomial proportion.

    Parameters
    ----------
    successes, n : array_like
        Counts (n may be non-integer: an effective sample size).
    level : float
    z : float, optional
        Critical value to use instead of the normal quantile of ``level``
        (:func:`clustered_interval` passes a Student-t quantile).

    Returns
    -------
    low, high : ndarray
        NaN where ``n == 0``.
    """
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    z = z_value(level) if z is None else float(z)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = np.where(n > 0, np.clip(centre - half, 0, 1), np.nan)
    high = np.where(n > 0, np.clip(centre + half, 0, 1), np.nan)
    return low, high


def design_effect(y, m) -> float:
    """Variance inflation of the pooled proportion caused by clustering.

    Parameters
    ----------
    y, m : ndarray, shape (R,)
        Inside counts and decided trials of each cluster (training set).

    Returns
    -------
    float
        ``var_cluster / var_binomial`` of the ratio estimator ``sum(y)/sum(m)``,
        floored at 1 (clustering never makes a proportion more precise than
        independent trials here); 1 when it cannot be estimated (R < 2 or
        p in {0, 1}).
    """
    y = np.asarray(y, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    R, M = len(m), m.sum()
    if R < 2 or M <= 0:
        return 1.0
    p = y.sum() / M
    var_bin = p * (1 - p) / M
    if var_bin <= 0:
        return 1.0
    var_cl = R / (R - 1) * np.sum((y - p * m) ** 2) / M**2
    return float(max(1.0, var_cl / var_bin))


def clustered_interval(y, m, level: float = LEVEL):
    """Cluster-robust interval: Wilson at the effective sample size, with a t critical value.

    The effective sample size is ``sum(m) / design_effect``, which accounts for
    the correlation of queries tested against one training set (the
    between-set variance) while keeping Wilson's good behaviour near 0 and 1.
    The design effect is itself estimated from only R clusters, so the
    critical value is the Student-t quantile with R - 1 degrees of freedom
    (the usual small-sample correction of cluster-robust variances); with a
    single cluster the between-set variance cannot be estimated and this is
    the plain Wilson interval.

    By simulation (``tests/test_stats.py``; per-set p_r ~ Beta with
    intra-set correlation 0.1-0.3, R = 4..40 sets) the 99% interval covers
    the true p in 98.5-99.9% of cells, where the plain Wilson interval covers
    only 55-82% and the same interval with a normal critical value 93-98%.

    Parameters
    ----------
    y, m : array_like, shape (R,)
        Inside counts and decided trials of each training set.
    level : float

    Returns
    -------
    low, high, deff : float
    """
    y = np.asarray(y, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    deff = design_effect(y, m)
    clusters = int(np.count_nonzero(m > 0))
    z = t_value(level, clusters - 1) if clusters >= 2 else z_value(level)
    low, high = wilson(np.sum(y) / deff, np.sum(m) / deff, level, z=z)
    return float(low), float(high), deff


def halfwidth(y, m, level: float = LEVEL) -> float:
    """Half the width of :func:`clustered_interval` (inf when no trial is decided)."""
    low, high, _ = clustered_interval(y, m, level)
    return (high - low) / 2 if high == high else float("inf")
