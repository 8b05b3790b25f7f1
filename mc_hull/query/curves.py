"""Empirical 50% points per (distribution, params, d) from a store's cells.

Fitted by :mod:`mc_hull.stats.thresholds` for ordinary runs; read as the median of the
entry size T for nested curves (:mod:`.entry`), whose cells are one set of trials
read at every N and so cannot be fitted as independent binomials.
"""

from __future__ import annotations

import pyarrow as pa

from ..stats import intervals as stats
from .. import theory
from ..stats.thresholds import fit_n_half
from .cells import cell_estimates, exact_n_half_of, parse_params
from .entry import MEDIAN_T, median_of_t, nested_curves

#: Columns of :func:`thresholds_table`, in order (then ``fit_cells`` and ``method``).
THRESHOLD_COLUMNS = ["distribution", "d", "params", "n_half", "n_half_low", "n_half_high", "exact_n_half",
                     "bf_threshold", "cells"]
THRESHOLDS_NOTE = ("n_half: N at which p crosses 1/2, from a binomial logistic fit (quadratic in log N "
                   "from 4 cells) to the cells around the crossing, with cluster-adjusted counts; "
                   "n_half_low/n_half_high: 99% test-inversion interval (method 'monotone': bounds from cells whose 99% interval lies wholly below / "
                   "above 1/2, when the data do not bracket 1/2); exact_n_half: exact curve; "
                   "bf_threshold: 2^(d/2)/d")


def curve_n_half(n, inside, decided, deff, replicates, p_hat, ci_low, ci_high, *, nested: bool,
                 level: float = stats.LEVEL) -> dict:
    """N½ of one curve from its cells (arrays of shape (L,)): the one dispatch of every face.

    A nested curve (one set of trials read at every N) gets the median of T with its bracket
    (:func:`mc_hull.query.entry.median_of_t`, ``method`` "median of T", ``fit_cells`` 0); any other
    curve the fit of :func:`mc_hull.stats.thresholds.fit_n_half` on ``inside`` of ``decided`` trials,
    with the cells' design effects and replicates.

    Returns
    -------
    dict
        ``n_half``, ``n_half_low``, ``n_half_high``, ``fit_cells``, ``method``.
    """
    if nested:
        return {**median_of_t(n, p_hat, ci_low, ci_high), "fit_cells": 0, "method": MEDIAN_T}
    return fit_n_half(n, inside, decided, deff, replicates, level)


def empirical_n_half(out, *, run_id: str | None = None, level: float = stats.LEVEL,
                     cells: pa.Table | None = None, nested: set | None = None) -> list[dict]:
    """Per (distribution, params, d) in a results store: the empirical N_half and its interval.

    A nested curve (every unit from a ``nested = true`` run,
    :func:`mc_hull.query.entry.nested_curves`) gets N_half as the median of T with
    the bracket of :func:`mc_hull.query.entry.median_of_t` (``method`` "median of T",
    ``fit_cells`` 0); any other curve the fit of :func:`mc_hull.stats.thresholds.fit_n_half`.

    Parameters
    ----------
    out : str or Store
    cells : pyarrow.Table, optional
        The store's :func:`mc_hull.query.cell_estimates` when already computed (no second scan).
    nested : set, optional
        The nested curves when already known (else read from the manifest and run records).

    Returns
    -------
    list of dict
        Keys :data:`THRESHOLD_COLUMNS` plus ``fit_cells`` and ``method``.
    """
    cells = cell_estimates(out, run_id=run_id, level=level) if cells is None else cells
    nested = nested_curves(out, run_id=run_id) if nested is None else nested
    rows_in = cells.to_pylist()
    groups: dict = {}
    for row in rows_in:  # runs with different parameters are different curves
        groups.setdefault((row["distribution"], row["params"], row["d"]), []).append(row)
    rows = []
    for (dist, params, d), group in sorted(groups.items()):
        col = {k: [r[k] for r in group] for k in ("n", "inside", "design_effect", "replicates", "p_hat",
                                                   "ci_low", "ci_high")}
        fit = curve_n_half(col["n"], col["inside"], [r["trials"] - r["undecided"] for r in group],
                           col["design_effect"], col["replicates"], col["p_hat"], col["ci_low"], col["ci_high"],
                           nested=(dist, params, d) in nested, level=level)
        exact = exact_n_half_of(dist, parse_params(params), int(d))
        rows.append({"distribution": dist, "d": int(d), "params": params, "n_half": fit["n_half"],
                     "n_half_low": fit["n_half_low"], "n_half_high": fit["n_half_high"],
                     "exact_n_half": exact, "bf_threshold": float(theory.bf_threshold(int(d))),
                     "cells": len(group), "fit_cells": fit["fit_cells"], "method": fit["method"]})
    return rows


def _schema() -> pa.Schema:
    types = {"distribution": pa.string(), "d": pa.int32(), "params": pa.string(), "cells": pa.int32(),
             "fit_cells": pa.int32(), "method": pa.string()}
    cols = THRESHOLD_COLUMNS + ["fit_cells", "method"]
    return pa.schema([(c, types.get(c, pa.float64())) for c in cols])


def thresholds(out, *, run_id: str | None = None, level: float = stats.LEVEL,
               cells: pa.Table | None = None) -> pa.Table:
    """:func:`empirical_n_half` as a pyarrow Table (columns :data:`THRESHOLD_COLUMNS`,
    then ``fit_cells`` and ``method``); empty when the store holds no rows.  ``cells``: the
    store's cell estimates when already computed (at ``level``)."""
    if cells is not None and cells.num_rows == 0:
        return _schema().empty_table()
    return pa.Table.from_pylist(empirical_n_half(out, run_id=run_id, level=level, cells=cells), schema=_schema())


thresholds_table = thresholds
