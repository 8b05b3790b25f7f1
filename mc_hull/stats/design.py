"""Queries per training set for every cell: the cost rule (:func:`efficient_queries_per_set`) with a cost and correlation model.

A replicate of cell (d, N) costs ``a + K b``: ``a`` to draw X (and start the
replicate), ``b`` per query.  Its K trials share X, with intra-replicate
correlation ``rho``, so a cell's variance per second is smallest at
``K* = sqrt((1 - rho) a / (rho b))`` (:func:`efficient_queries_per_set`),
capped so that a cell rests on at least 30 training sets.  A spec that does not
set ``queries_per_set`` gets this K per cell, resolved once when the spec is built
(so it is part of the spec's canonical JSON and run id, and a later change of the
constants below cannot change the meaning of a stored run).

The model (2026-12-02, this 2-core machine, ``benchmarks/nested.py`` and
``benchmarks/membership.py`` cells):

* ``a`` and ``b`` are linear in the N x d coordinates of X (the constants below):
  drawing X costs 10-19 ns per coordinate, a decision 0.3-0.45 ns per coordinate
  at large N plus 50 us; a nested replicate's search adds a few passes over X
  per replicate and about 0.25 ms per located query.
* ``rho(N) = min(1, 1 / N)``.  Measured on Gaussian data, the pooled correlation
  of a nested curve (weights p (1 - p) over its sizes) is 0.051, 0.020, 0.012,
  0.0031, 0.0008 and 0.0002 at d = 2, 3, 4, 6, 8, 10, and the model gives 0.076,
  0.038, 0.019, 0.0055, 0.0018 and 0.0006: 1.5-3x larger everywhere, so the rule
  errs towards fewer queries per set.  Single cells: (3, 27) 0.032 (model 0.037),
  (4, 62) 0.0065 (model 0.016), (8, 80) and (8, 1100) indistinguishable from 0.

The correlation model is used only for the distributions in :data:`MODELLED`
(where it was measured).  Uniform in the ball, measured the same way: 0.024,
0.0058, 0.0012 and 0.0017 at d = 2, 3, 4, 6 against the model's 0.064, 0.023,
0.0079 and 0.0012, so not an upper bound at d = 6 (within that estimate's noise of
about 0.003, but not shown to hold): the ball is not in :data:`MODELLED`.  Other distributions get the fixed default
``min(50, trials // 30)`` (:func:`default_queries_per_set`), as do
adaptive runs, whose checkpoints need one K for every cell.

Pure: imports neither ray nor pyarrow.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache

import numpy as np

from .. import theory

#: Distributions whose intra-replicate correlation model was measured (see the module docstring).
MODELLED = ("gaussian",)
#: Seconds per replicate of an ordinary cell: fixed, and per coordinate of X (drawing it).
CELL_SET_SECONDS, CELL_SET_ELEMENT_SECONDS = 2e-3, 1.5e-8
#: Seconds per query of an ordinary cell: fixed, and per coordinate of X (pricing passes).
CELL_QUERY_SECONDS, CELL_QUERY_ELEMENT_SECONDS = 5e-5, 4e-10
#: Seconds per nested replicate (X of the largest size, its prefix scales and shared passes).
NESTED_SET_SECONDS, NESTED_SET_ELEMENT_SECONDS = 4.5e-3, 2.5e-8
#: Seconds per located query of a nested replicate.
NESTED_QUERY_SECONDS, NESTED_QUERY_ELEMENT_SECONDS = 2.5e-4, 2e-10
#: rho(N) = min(1, RHO_CONSTANT / N).
RHO_CONSTANT = 1.0


def rho_model(n: int) -> float:
    """The modelled intra-replicate correlation of a cell with training sets of size ``n``."""
    return min(1.0, RHO_CONSTANT / max(int(n), 1))


@lru_cache(maxsize=4096)
def cell_queries(distribution: str, d: int, n: int, trials: int) -> int:
    """K of an ordinary cell (d, N) with ``trials`` trials (see the module docstring).

    A cell with N <= d has p = 0 exactly (no query is ever inside), so there is
    no variance to spread: it gets the largest K the 30-set floor allows.
    """
    if distribution not in MODELLED:
        return default_queries_per_set(trials)
    a = CELL_SET_SECONDS + CELL_SET_ELEMENT_SECONDS * n * d
    b = CELL_QUERY_SECONDS + CELL_QUERY_ELEMENT_SECONDS * n * d
    rho = 0.0 if n <= d else rho_model(n)
    return efficient_queries_per_set(a, b, rho, trials=trials)


@lru_cache(maxsize=1024)
def nested_queries(distribution: str, d: int, sizes: tuple, trials: int) -> int:
    """K of a nested curve of dimension d over ``sizes`` (one training set serves every size).

    The correlation is :func:`pooled_rho` of the per-size model,
    weighted by p (1 - p) from the exact curve where one is known (uniform
    weights otherwise); sizes N <= d (p = 0) carry no weight.
    """
    if distribution not in MODELLED:
        return default_queries_per_set(trials)
    n_max = max(sizes)
    a = NESTED_SET_SECONDS + NESTED_SET_ELEMENT_SECONDS * n_max * d
    b = NESTED_QUERY_SECONDS + NESTED_QUERY_ELEMENT_SECONDS * n_max * d
    live = [n for n in sizes if n > d]
    if not live:
        return efficient_queries_per_set(a, b, 0.0, trials=trials)
    if theory.has_exact(distribution, d):
        p = [float(theory.exact_inside_probability(distribution, d, n)) for n in live]
    else:
        p = [0.5] * len(live)
    rho = pooled_rho([rho_model(n) for n in live], p)
    if not math.isfinite(rho):
        rho = max(rho_model(n) for n in live)
    return efficient_queries_per_set(a, b, rho, trials=trials)


def queries_table(distribution: str, cells, trials: int, nested: bool, sizes_for=None) -> tuple:
    """``(((d, n), K), ...)`` for every cell, sorted: the per-cell K of a spec without ``queries_per_set``.

    Parameters
    ----------
    distribution : str
    cells : iterable of (d, n)
    trials : int
    nested : bool
        One K per d (the nested rule over ``sizes_for(d)``) instead of one per cell.
    sizes_for : callable, optional
        d -> the sizes of d (needed when ``nested``).
    """
    out = {}
    for d, n in cells:
        if nested:
            out[(d, n)] = nested_queries(distribution, d, tuple(sorted(sizes_for(d))), trials)
        else:
            out[(d, n)] = cell_queries(distribution, d, n, trials)
    return tuple(sorted(out.items()))


# -- queries per training set ---------------------------------------------------
#: Fewest training sets a cell's interval should rest on: the clustered interval uses a Student-t
#: quantile with R - 1 degrees of freedom, 7% wider than the normal one at R = 30 (26% at R = 10).
MIN_REPLICATES = 30
#: Largest default K: the rule's K* at the most clustered cells measured (3, 27) -> 35 and
#: (4, 62) -> 77 (benchmarks/nested.py --design-effects), their geometric middle.
DEFAULT_MAX_QUERIES = 50


def efficient_queries_per_set(set_seconds: float, query_seconds: float, rho: float, *,
                              trials: int | None = None, k_min: int = 1, k_max: int = 1000,
                              min_replicates: int = MIN_REPLICATES) -> int:
    """The number of queries per training set K that minimises the variance per second.

    A replicate costs ``C = set_seconds + K * query_seconds`` (drawing X and
    starting the replicate, then its queries).  Its K trials are correlated
    through X with intra-replicate correlation ``rho``, so the pooled proportion
    has variance ``p (1 - p) (1 + (K - 1) rho) / (R K)`` (the design effect
    ``1 + (K - 1) rho``).  For a fixed time budget ``R = budget / C``, and the
    variance is proportional to ``(1 + (K - 1) rho) (set_seconds / K + query_seconds)``,
    which is smallest at the classic optimal cluster size

        K* = sqrt((1 - rho) * set_seconds / (rho * query_seconds)).

    So a cheap X (small N, or a cell where queries are costly) gets few queries
    per set and an expensive X many; with rho = 0 (no clustering) every set
    should carry ``k_max`` queries.  When the cell's ``trials`` are given, K is
    also capped at ``trials / min_replicates``: the interval's t quantile with
    R - 1 degrees of freedom costs more than any saving below 30 sets.  Rounded
    to the better integer neighbour and clipped to ``[k_min, k_max]``.

    Parameters
    ----------
    set_seconds : float
        Cost of one training set: about ``DRAW_SECONDS * N * d`` plus the fixed
        cost of a replicate (keys, sampler, one engine call), which dominates at small N.
    query_seconds : float
        Cost of one more query against that set.
    rho : float
        Intra-replicate correlation, ``(deff - 1) / (K - 1)`` from a measured
        design effect (:func:`rho_from_design_effect`), in [0, 1]; for a nested
        curve the pooled value over its sizes (:func:`pooled_rho`).
    trials : int, optional

    Returns
    -------
    int
    """
    if not (set_seconds >= 0 and query_seconds > 0 and 0 <= rho <= 1):
        raise ValueError("need set_seconds >= 0, query_seconds > 0 and 0 <= rho <= 1")
    if trials is not None:
        k_max = max(k_min, min(k_max, int(trials) // int(min_replicates)))
    if rho == 0:
        return int(k_max)
    if rho == 1:
        return int(k_min)
    k = math.sqrt((1 - rho) * set_seconds / (rho * query_seconds))

    def cost(kk):
        return (1 + (kk - 1) * rho) * (set_seconds / kk + query_seconds)

    lo, hi = max(k_min, math.floor(k)), max(k_min, math.ceil(k))
    best = lo if cost(max(lo, 1)) <= cost(max(hi, 1)) else hi
    return int(min(max(best, k_min), k_max))


def default_queries_per_set(trials: int) -> int:
    """The spec's default K for ``trials`` per cell: ``min(DEFAULT_MAX_QUERIES, trials // MIN_REPLICATES)``, >= 1.

    The rule of :func:`efficient_queries_per_set` needs a cell's costs and its
    correlation, which a spec does not know before it runs; this is that rule at
    the cells where clustering is strongest (small d near p = 1/2), which loses
    little elsewhere, with the 30-set floor on replicates.
    """
    return int(max(1, min(DEFAULT_MAX_QUERIES, int(trials) // MIN_REPLICATES)))


def pooled_rho(rhos, p) -> float:
    """One correlation for a nested curve: the per-size ``rhos`` weighted by ``p (1 - p)``.

    Minimising the sum over sizes of the variances ``p_j (1 - p_j) deff_j / (R K)``
    per second has the same optimum as one cell with this pooled correlation.
    """
    rhos, p = np.asarray(rhos, dtype=np.float64), np.asarray(p, dtype=np.float64)
    w = p * (1 - p)
    ok = np.isfinite(rhos) & np.isfinite(w) & (w > 0)
    if not ok.any():
        return 0.0
    return float(np.sum(w[ok] * rhos[ok]) / np.sum(w[ok]))


def rho_from_design_effect(deff: float, k: float) -> float:
    """Intra-replicate correlation from a design effect measured with k queries per set."""
    if k <= 1:
        return 0.0
    return float(min(1.0, max(0.0, (deff - 1.0) / (k - 1.0))))


def design_effect(rho: float, k: float) -> float:
    """``1 + (k - 1) rho``: the variance inflation of k correlated trials per training set."""
    return 1.0 + (k - 1.0) * rho


# -- memory ------------------------------------------------------------------------
def memory_budget() -> int:
    """Bytes one training set may take in memory: ``MC_HULL_MEMORY_BUDGET`` (e.g. ``8G``) or 4 GiB."""
    text = os.environ.get("MC_HULL_MEMORY_BUDGET", "").strip().upper()
    default = 4 << 30
    if not text:
        return default
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(text[-1:], 1)
    try:
        return int(float(text.rstrip("KMGTB") if mult > 1 else text) * mult)
    except ValueError:
        return default
