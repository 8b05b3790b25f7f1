"""The Bárány–Füredi line N = 2^(d/2)/d quoted by Balestriero, Pesenti & LeCun (2021)."""

from __future__ import annotations

import numpy as np


def bf_threshold(d):
    """The asymptotic threshold ``2**(d/2) / d``.

    Parameters
    ----------
    d : int or array_like of int
        Dimension(s), >= 1.

    Returns
    -------
    float or ndarray
    """
    d_arr = np.asarray(d, dtype=np.float64)
    if np.any(d_arr < 1):
        raise ValueError(f"d must be >= 1, got {d}")
    out = 2.0 ** (d_arr / 2) / d_arr
    return float(out) if out.ndim == 0 else out
