"""Interval estimates for proportions measured with clustered trials (queries sharing a training set)."""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

#: Default confidence level of every interval mc_hull reports.
LEVEL = 0.99


def z_value(level: float = LEVEL) -> float:
    """Two-sided normal quantile, e.g. 2.576 for 99%."""
    return float(norm.ppf(0.5 + level / 2))


def wilson(successes, n, level: float = LEVEL):
    """Wilson score interval for a binomial proportion.

    Parameters
    ----------
    successes, n : array_like
        Counts (n may be non-integer: an effective sample size).
    level : float

    Returns
    -------
    low, high : ndarray
        NaN where ``n == 0``.
    """
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    z = z_value(level)
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
    """Wilson interval at the effective sample size ``sum(m) / design_effect``.

    This accounts for the correlation of queries tested against one training
    set (the between-set variance) while keeping Wilson's good behaviour near
    0 and 1.

    Returns
    -------
    low, high, deff : float
    """
    deff = design_effect(y, m)
    low, high = wilson(np.sum(y) / deff, np.sum(m) / deff, level)
    return float(low), float(high), deff
