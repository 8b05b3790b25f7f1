"""Data preparation for the dashboard and ``mc-hull plot``: small aggregated tables, one per view.

Everything here reads the results store through :mod:`mc_hull.query` (DuckDB
over the verified rows the store's manifests list) and aggregates in SQL, so no function ever brings one
row per trial into Python.  The tables returned are Arrow tables of a few
hundred rows at most; the chart code (Streamlit/Altair or matplotlib) only
draws them.  Nothing here imports Streamlit.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from .. import query, theory
from ..errors import StoreError
from ..store import ResultStore as query_store
from ..store.results import AUDIT_BINS_PER_DECADE, AUDIT_FLOOR

#: Series names used in every chart (legends, SVG ids, tests).
MC_SERIES = "Monte Carlo p̂ (99% interval)"
EXACT_SERIES = "exact"
BF_SERIES = "2^(d/2)/d"
HALF_SERIES = "p = 1/2"
EMPIRICAL_HALF_SERIES = "empirical N½"
EXACT_HALF_SERIES = "exact N½"
MEDIAN_T_SERIES = "N½ = median of T (nested, 99% bracket)"
#: ``source`` of an N½ read as the median of the entry size T (nested runs), as in the query layer's ``method``.
MEDIAN_T_SOURCE = query.MEDIAN_T
#: The dimension p can be plotted against -> its cell-table column.
DIMENSIONS = {"ambient": "d", "intrinsic": "d_intrinsic", "affine": "d_affine"}


# -- the store ------------------------------------------------------------------
def dataset_key(out: str) -> tuple:
    """A cheap fingerprint that changes whenever a shard is committed or a run record or statistics land.

    Returns
    -------
    tuple
        :func:`mc_hull.query.fingerprint` (a listing of the manifest and run records);
        ``(0, 0, 0, 0, 0)`` when ``out`` does not exist.
    """
    return query.fingerprint(out) or (0, 0, 0, 0, 0)


def location_problem(out: str) -> str | None:
    """A friendly sentence when ``out`` holds nothing to show, else None."""
    return query.location_problem(out)


def runs(out: str) -> dict[str, dict]:
    """run_id -> stored run record (``{"spec": ..., "hash": ...}``)."""
    return query.runs(out)


# -- filters --------------------------------------------------------------------
@dataclass
class Filters:
    """Row filters shared by the views (None or empty: no filter)."""

    distributions: list[str] = field(default_factory=list)
    dims: list[int] = field(default_factory=list)
    n_min: int | None = None
    n_max: int | None = None
    runs: list[str] = field(default_factory=list)

    def where(self) -> tuple[str, list]:
        """SQL condition over the ``trials`` view and its positional parameters."""
        parts, params = ["TRUE"], []
        if self.distributions:
            parts.append("list_contains(?::VARCHAR[], distribution)")
            params.append(list(self.distributions))
        if self.dims:
            parts.append("list_contains(?::INTEGER[], d)")
            params.append([int(d) for d in self.dims])
        if self.n_min is not None:
            parts.append("n >= ?")
            params.append(int(self.n_min))
        if self.n_max is not None:
            parts.append("n <= ?")
            params.append(int(self.n_max))
        if self.runs:
            parts.append("list_contains(?::VARCHAR[], run_id)")
            params.append(list(self.runs))
        return " AND ".join(parts), params


def _connect(out: str):
    return query.connect(out)


def _sql(con, text: str, params: list | None = None) -> pa.Table:
    return con.sql(text, params=params or None).to_arrow_table()


def _on(table: pa.Table, text: str, params: list | None = None) -> pa.Table:
    """Run SQL over an Arrow table registered as ``t`` (small tables only; one connection per thread)."""
    con = getattr(_LOCAL, "con", None)
    if con is None:
        con = _LOCAL.con = duckdb.connect()
    con.register("t", table)
    try:
        return con.sql(text, params=params or None).to_arrow_table()
    finally:
        con.unregister("t")


_LOCAL = threading.local()


# -- view 1: p against N ---------------------------------------------------------
def cell_table(out: str, run_id: str | None = None) -> pa.Table:
    """Per-cell estimates (:data:`mc_hull.query.CELL_COLUMNS`), via :func:`mc_hull.query.cell_estimates`."""
    return query.cell_estimates(out, run_id=run_id)


def select_cells(cells: pa.Table, filters: Filters) -> pa.Table:
    """The rows of a cell table that pass ``filters`` (the run filter is applied upstream)."""
    cond, params = Filters(filters.distributions, filters.dims, filters.n_min, filters.n_max).where()
    return _on(cells, f"SELECT * FROM t WHERE {cond} ORDER BY distribution, d, n", params)


def by_dimension(cells: pa.Table, which: str = "ambient") -> pa.Table:
    """Cells with ``dim``, the dimension ``which`` (a key of :data:`DIMENSIONS`), and ``curve``.

    ``curve`` (``"d=8"``, ``"k=3, d=8"``) names the line a cell belongs to, so
    cells sharing ``dim`` but not parameters or ambient d stay separate lines.
    Cells whose ``dim`` is unknown (a run without a recorded spec) are left out.
    """
    if which not in DIMENSIONS:
        raise ValueError(f"dimension: one of {', '.join(DIMENSIONS)}, got {which!r}")
    col = DIMENSIONS[which]
    return _on(cells, f"SELECT *, {col} AS dim, CASE WHEN coalesce(params, '') = '' THEN 'd=' || d "
                      f"ELSE params || ', d=' || d END AS curve FROM t WHERE {col} IS NOT NULL "
                      f"ORDER BY distribution, params, d, n")


def exact_reference(cells: pa.Table) -> str | None:
    """The distribution whose exact N½, as a function of ``dim``, holds for every cell, else None.

    Each cell's sampler names the (distribution, dimension) of its exact curve
    (:attr:`mc_hull.samplers.Sampler.exact_as`): a k-dimensional subspace in R^d
    plotted against its affine dimension follows the Gaussian curve, against d it does not.
    """
    refs = set()
    for r in _on(cells, f"SELECT DISTINCT {', '.join(_group_cols(cells))} FROM t").to_pylist():
        ref = query.cell_info(r["distribution"], _params_of(r), int(r["d"]))["exact_as"]
        if ref is None or ref[1] != r.get("dim", r["d"]):
            return None
        refs.add(ref[0])
    return refs.pop() if len(refs) == 1 else None


def _params_of(row: dict) -> dict | None:
    """A cell row's distribution parameters ({} when the table has no params column)."""
    return query.parse_params(row["params"]) if "params" in row else {}


def _exact(distribution: str, d: int, n: np.ndarray, params: dict | None = None) -> np.ndarray | None:
    """Exact p at sizes ``n``; None when unknown or outside the range the theory covers.

    ``params`` None means unknown: only parameter-free distributions then have a curve.
    """
    try:
        value = query.exact_p(distribution, params, int(d), n)
    except (ValueError, ArithmeticError):  # e.g. d beyond the tabulated range
        return None
    return None if value is None else np.asarray(value, dtype=np.float64).reshape(np.shape(n))


def _exact_n_half(distribution: str, d: int, params: dict | None = None) -> float | None:
    """Exact N½ (through the sampler's ``exact_as`` curve); None when unknown or out of range."""
    try:
        value = query.exact_n_half_of(distribution, params, int(d))
    except (ValueError, ArithmeticError):
        return None
    return None if value is None or not np.isfinite(value) else float(value)


def _group_cols(table: pa.Table) -> list[str]:
    """The columns that identify one curve of cells: distribution, d and, when present, params and dim."""
    return [c for c in ("distribution", "d", "params", "dim", "curve") if c in table.column_names]


_KEY_TYPES = {"distribution": pa.string(), "d": pa.int32(), "params": pa.string(), "dim": pa.int32(),
              "curve": pa.string()}


def exact_curves(cells: pa.Table, points_per_decade: int = 24) -> pa.Table:
    """Dense exact curves p(d, N) over each curve's range of N in ``cells``.

    Returns
    -------
    pyarrow.Table
        ``distribution, d, [params, dim, curve,] n, p, series`` (the bracketed key
        columns when ``cells`` has them); empty when no cell has an exact curve.
    """
    keys = _group_cols(cells)
    ranges = _on(cells, f"SELECT {', '.join(keys)}, min(n) AS lo, max(n) AS hi FROM t "
                        "GROUP BY ALL ORDER BY ALL").to_pylist()
    rows: dict[str, list] = {k: [] for k in keys + ["n", "p", "series"]}
    for r in ranges:
        lo, hi = math.log10(max(r["lo"], 1)), math.log10(max(r["hi"], 1))
        count = max(2, int(math.ceil((hi - lo) * points_per_decade)) + 1)
        n = np.unique(np.round(np.logspace(lo, hi, count)).astype(np.int64))
        p = _exact(r["distribution"], r["d"], n, _params_of(r))
        if p is None:
            continue
        keep = np.isfinite(p)
        k = int(keep.sum())
        for key in keys:
            rows[key] += [r[key]] * k
        rows["n"] += n[keep].tolist()
        rows["p"] += p[keep].tolist()
        rows["series"] += [f"{EXACT_SERIES} ({r['distribution']})"] * k
    return pa.table(rows, schema=pa.schema([(k, _KEY_TYPES[k]) for k in keys] + [
        ("n", pa.int64()), ("p", pa.float64()), ("series", pa.string())]))


def threshold_rules(cells: pa.Table) -> pa.Table:
    """The vertical rules of view 1: one row per dimension, ``d, bf_threshold, series`` (and ``dim``).

    With a ``dim`` column (:func:`by_dimension`) the rules stand at 2^(dim/2)/dim and
    ``d`` repeats ``dim``; otherwise at each ambient d.
    """
    if "dim" in cells.column_names:
        return _on(cells, f"SELECT DISTINCT dim, dim AS d, pow(2, dim / 2) / dim AS bf_threshold, "
                          f"'{BF_SERIES}' AS series FROM t ORDER BY dim")
    return _on(cells, f"SELECT DISTINCT d, bf_threshold, '{BF_SERIES}' AS series FROM t ORDER BY d")


# -- view 3 (and the heatmap's contours): N½ ------------------------------------
def _crossing(n: np.ndarray, p: np.ndarray) -> float | None:
    """N where ``p`` first reaches 1/2, interpolating linearly in log N (None if it never does)."""
    ok = np.isfinite(p)
    n, p = n[ok], p[ok]
    if len(n) == 0:
        return None
    if p[0] >= 0.5:
        return float(n[0]) if p[0] == 0.5 else None
    for i in range(1, len(n)):
        if p[i] >= 0.5:
            a, b = math.log(n[i - 1]), math.log(n[i])
            t = (0.5 - p[i - 1]) / (p[i] - p[i - 1])
            return float(math.exp(a + t * (b - a)))
    return None


def empirical_n_half(cells: pa.Table) -> pa.Table:
    """Per curve (distribution, d and params/dim when present): N½ interpolated in log N,
    with a bracket from the interval bands.

    ``n_half`` is where p̂ first crosses 1/2; ``n_half_low`` where the upper
    99% band ``ci_high`` does, ``n_half_high`` where ``ci_low`` does (None
    where a curve does not cross inside the measured range).
    """
    rows = []
    keys = _group_cols(cells)
    groups = _on(cells, f"SELECT {', '.join(keys)}, list(n ORDER BY n) AS n, list(p_hat ORDER BY n) AS p, "
                        "list(ci_low ORDER BY n) AS lo, list(ci_high ORDER BY n) AS hi "
                        "FROM t GROUP BY ALL ORDER BY ALL").to_pylist()
    for g in groups:
        n = np.asarray(g["n"], dtype=np.float64)

        def arr(key):
            return np.asarray([np.nan if v is None else v for v in g[key]], dtype=np.float64)

        rows.append({**{k: g[k] for k in keys},
                     "n_half": _crossing(n, arr("p")), "n_half_low": _crossing(n, arr("hi")),
                     "n_half_high": _crossing(n, arr("lo")), "source": "interpolated"})
    return pa.Table.from_pylist(rows, schema=_n_half_schema(keys))


def _n_half_schema(keys: list[str]) -> pa.Schema:
    return pa.schema([(k, _KEY_TYPES[k]) for k in keys] + [
        ("n_half", pa.float64()), ("n_half_low", pa.float64()), ("n_half_high", pa.float64()),
        ("source", pa.string())])


def fitted_n_half(out: str, run_id: str | None = None, cells: pa.Table | None = None) -> pa.Table:
    """The query layer's N½ with its interval per curve: for a nested curve the median of T
    (:func:`mc_hull.query.median_of_t`, ``source`` :data:`MEDIAN_T_SOURCE`), otherwise the fit
    (:func:`mc_hull.stats.thresholds.fit_n_half` on the cell table, ``source`` "fitted")."""
    cells = cell_table(out, run_id) if cells is None else cells
    keys = _group_cols(cells)
    nested = query.nested_curves(out, run_id=run_id) if cells.num_rows else set()
    nested_dd = {(dist, d) for dist, _, d in nested}
    groups = _on(cells, f"SELECT {', '.join(keys)}, list(n) AS n, list(inside) AS y, "
                        "list(trials - undecided) AS m, list(design_effect) AS deff, "
                        "list(replicates) AS reps, list(p_hat) AS p, list(ci_low) AS lo, list(ci_high) AS hi "
                        "FROM t GROUP BY ALL ORDER BY ALL").to_pylist()
    rows = []
    for g in groups:
        is_nested = ((g["distribution"], g["params"], g["d"]) in nested if "params" in g
                     else (g["distribution"], g["d"]) in nested_dd)
        try:
            fit = query.curve_n_half(g["n"], g["y"], g["m"], g["deff"], g["reps"], g["p"], g["lo"], g["hi"],
                                     nested=is_nested)
        except (ValueError, ArithmeticError, np.linalg.LinAlgError):
            continue
        rows.append({**{k: g[k] for k in keys}, "n_half": _positive(fit.get("n_half")),
                     "n_half_low": _positive(fit.get("n_half_low")),
                     "n_half_high": _positive(fit.get("n_half_high")),
                     "source": MEDIAN_T_SOURCE if is_nested else "fitted"})
    return pa.Table.from_pylist(rows, schema=_n_half_schema(keys))


def _positive(value) -> float | None:
    """A finite positive float, else None (0 and inf are open interval ends)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def n_half_table(cells: pa.Table, fitted: pa.Table | None = None) -> pa.Table:
    """Per curve in ``cells`` (see :func:`empirical_n_half`): empirical N½ (from ``fitted``, the
    :func:`fitted_n_half` table, when given: the median of T for a nested curve, else the fit; else
    interpolated), its bracket, the exact N½ where known and 2^(d/2)/d (ambient d)."""
    emp = empirical_n_half(cells)
    if fitted is not None and fitted.num_rows:
        con = duckdb.connect()
        con.register("e", emp)
        con.register("f", fitted)
        keys = _group_cols(emp)
        using = [k for k in keys if k in fitted.column_names]
        # the median of T stands for a nested curve even when censored (its bracket is then one-sided)
        own = f"(f.n_half IS NOT NULL OR f.source = '{MEDIAN_T_SOURCE}')"
        emp = con.sql(f"SELECT {', '.join(f'e.{k}' for k in keys)}, "
                      f"CASE WHEN {own} THEN f.n_half ELSE e.n_half END AS n_half, "
                      f"CASE WHEN {own} THEN f.n_half_low ELSE e.n_half_low END AS n_half_low, "
                      f"CASE WHEN {own} THEN f.n_half_high ELSE e.n_half_high END AS n_half_high, "
                      f"CASE WHEN {own} THEN f.source ELSE e.source END AS source "
                      f"FROM e LEFT JOIN f USING ({', '.join(using)}) "
                      f"ORDER BY {', '.join(f'e.{k}' for k in keys)}").to_arrow_table()
    data = emp.to_pydict()
    data["exact_n_half"] = [_exact_n_half(r["distribution"], r["d"], _params_of(r)) for r in emp.to_pylist()]
    data["bf_threshold"] = [float(theory.bf_threshold(int(d))) for d in data["d"]]
    return pa.table(data, schema=_n_half_schema(_group_cols(emp)).append(pa.field("exact_n_half", pa.float64()))
                    .append(pa.field("bf_threshold", pa.float64())))


def thresholds(out: str, run_id: str | None = None, cells: pa.Table | None = None) -> pa.Table:
    """The query layer's thresholds table (:func:`mc_hull.query.empirical_n_half`: ``method`` "median of T"
    for a nested curve, else the fit) from an already computed cell table (no second scan)."""
    return query.thresholds(out, run_id=run_id, cells=cell_table(out, run_id) if cells is None else cells)


def entry_ecdf(out: str, run_id: str | None, distribution: str, dims: list[int]) -> pa.Table:
    """Per nested curve and grid size: the empirical distribution of T's bounds
    (:func:`mc_hull.query.entry_ecdf`) with ``curve`` naming the line; empty when no nested run matches."""
    nested = query.nested_runs(out)
    if not nested or (run_id is not None and run_id not in nested):
        return pa.table({})
    try:
        table = query.entry_ecdf(out, run_id=run_id, distribution=distribution, dims=dims or None)
    except StoreError:   # no nested run with committed shards under this selection
        return pa.table({})
    return _on(table, "SELECT *, CASE WHEN coalesce(params, '') = '' THEN 'd=' || d "
                      "ELSE params || ', d=' || d END AS curve FROM t ORDER BY distribution, params, d, n")


def exact_n_half_curve(distribution: str, d_min: int, d_max: int, params: dict | None = None,
                       series: str = EXACT_HALF_SERIES) -> pa.Table:
    """Exact N½ of ``distribution`` (with ``params``, default: the sampler's defaults) for every
    integer d in [d_min, d_max] (empty when unknown)."""
    rows = []
    if theory.has_exact(distribution):
        for d in range(max(1, int(d_min)), int(d_max) + 1):
            v = _exact_n_half(distribution, d, dict(params or {}))
            if v is not None:
                rows.append({"d": d, "n": v, "series": series})
    return pa.Table.from_pylist(rows, schema=_CURVE_SCHEMA)


def law_label(distribution: str, params: dict | None = None) -> str:
    """A short name of a law with its parameters, e.g. ``student-t df=3``."""
    extra = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted((params or {}).items()))
    return f"{distribution} {extra}".strip()


def reference_n_half(cells: pa.Table, x_min: int, x_max: int) -> pa.Table:
    """The exact N½ that the selected cells should follow, against the plotted dimension.

    Each cell's sampler names the law of its exact curve (:attr:`~mc_hull.samplers.Sampler.exact_as`
    with :attr:`~mc_hull.samplers.Sampler.exact_params`). Where that law's dimension is the
    plotted one (``dim``, e.g. a k-dimensional subspace against its affine dimension k, or any
    law against d) its whole N½ curve over [x_min, x_max] is returned; otherwise (a subspace
    against its ambient d) the law's N½ at each plotted dimension that has cells, e.g. the
    Gaussian of R^k's N½ at every d. One series per law, named ``exact N½ (law)``.

    Returns
    -------
    pyarrow.Table
        ``d`` (the plotted dimension), ``n``, ``series``.
    """
    keys = [c for c in ("distribution", "params", "d", "dim") if c in cells.column_names]
    groups = _on(cells, f"SELECT DISTINCT {', '.join(keys)} FROM t").to_pylist()
    curves: dict[tuple, dict] = {}
    points: dict[tuple, list] = {}
    for r in groups:
        info = query.cell_info(r["distribution"], _params_of(r), int(r["d"]))
        ref = info["exact_as"]
        if ref is None or not theory.has_exact(ref[0]):
            continue
        law = (ref[0], tuple(sorted(info["exact_params"].items())))
        dim = int(r.get("dim", r["d"]))
        if int(ref[1]) == dim:
            curves.setdefault(law, {})
        else:
            value = _exact_n_half(r["distribution"], int(r["d"]), _params_of(r))
            if value is not None:
                points.setdefault(law + (int(ref[1]),), []).append({"d": dim, "n": value})
    parts = []
    for (name, params) in curves:
        label = f"{EXACT_HALF_SERIES} ({law_label(name, dict(params))})"
        parts.append(exact_n_half_curve(name, x_min, x_max, dict(params), series=label))
    for (name, params, k), rows in points.items():
        label = f"{EXACT_HALF_SERIES} ({law_label(name, dict(params))} of R^{k})"
        rows = sorted({r["d"]: r for r in rows}.values(), key=lambda r: r["d"])
        parts.append(pa.Table.from_pylist([{**r, "series": label} for r in rows], schema=_CURVE_SCHEMA))
    if not parts:
        return pa.Table.from_pylist([], schema=_CURVE_SCHEMA)
    return pa.concat_tables(parts)


#: The laws of the family comparison in the N½ panels (README table): name, parameters.
FAMILY_LAWS = (("gaussian", {}), ("ball", {}), ("beta", {"beta": -0.5}), ("beta", {"beta": 1.0}),
               ("student-t", {"df": 1.0}), ("student-t", {"df": 3.0}), ("student-t", {"df": 30.0}))


def family_n_half(x_min: int, x_max: int, skip: tuple = ()) -> pa.Table:
    """Exact N½ against d for the family comparison :data:`FAMILY_LAWS` (laws in ``skip``, as
    ``law_label`` strings, left out), one series ``exact N½ (law)`` each. Read from the table
    that ``docs/make_transition.py`` writes (d = 2..64), computed where it has no entry."""
    table = theory.family_n_half_table()
    rows = []
    for name, params in FAMILY_LAWS:
        label = law_label(name, params)
        if label in skip:
            continue
        for d in range(max(1, int(x_min)), int(x_max) + 1):
            if (label, d) in table:
                v = table[(label, d)]
            else:
                v = _exact_n_half(name, d, dict(params))
            if v is not None:
                rows.append({"d": d, "n": v, "series": f"{EXACT_HALF_SERIES} ({label})"})
    return pa.Table.from_pylist(rows, schema=_CURVE_SCHEMA)


#: The measured law of the family comparison: the uniform cube, no exact curve (README N½ table).
CUBE_SERIES = "uniform cube: nested MC, median of T (99% bracket)"


def family_measured_n_half(x_min: int, x_max: int) -> pa.Table:
    """The uniform cube's N½ measured by nested Monte Carlo (:func:`mc_hull.theory.cube_n_half_table`,
    shipped by ``docs/make_transition.py --cube DIR``) for d in [x_min, x_max]: columns ``d, n,
    n_low, n_high, series`` (N½ in (n_low, n_high]; a missing bound is null)."""
    rows = [{"d": float(d), "n": n, "n_low": lo, "n_high": hi, "series": CUBE_SERIES}
            for d, (n, lo, hi) in sorted(theory.cube_n_half_table().items())
            if int(x_min) <= d <= int(x_max) and n is not None]
    return pa.Table.from_pylist(rows, schema=pa.schema([("d", pa.float64()), ("n", pa.float64()),
                                                        ("n_low", pa.float64()), ("n_high", pa.float64()),
                                                        ("series", pa.string())]))


def relabel(curve: pa.Table, series: str) -> pa.Table:
    """The same curve with every row's series name replaced."""
    return curve.set_column(curve.schema.get_field_index("series"), "series",
                            pa.array([series] * curve.num_rows, type=pa.string()))


_CURVE_SCHEMA = pa.schema([("d", pa.float64()), ("n", pa.float64()), ("series", pa.string())])


def bf_curve(d_min: float, d_max: float, points: int = 120) -> pa.Table:
    """N = 2^(d/2)/d on a fine grid of d."""
    d = np.linspace(max(1.0, d_min), max(d_max, d_min + 1e-9), points)
    return pa.table({"d": d, "n": 2.0 ** (d / 2) / d, "series": [BF_SERIES] * len(d)}, schema=_CURVE_SCHEMA)


# -- view 2: heatmap --------------------------------------------------------------
def heatmap_cells(cells: pa.Table) -> pa.Table:
    """Cells as rectangles over (d, log N): ``d_lo, d_hi, n_lo, n_hi`` bound each (d, n) cell.

    Edges lie halfway between neighbouring d values and, in log N, between
    neighbouring sizes of the same d (the outer edges mirror the inner ones).
    """
    return _on(cells, """
        WITH dd AS (
            SELECT d, lag(d) OVER (ORDER BY d) AS dp, lead(d) OVER (ORDER BY d) AS dn
            FROM (SELECT DISTINCT d FROM t)),
        nn AS (
            SELECT distribution, d, n, p_hat, ci_low, ci_high, trials, bf_threshold,
                   ln(n) AS ln_n,
                   ln(lag(n) OVER w) AS ln_p, ln(lead(n) OVER w) AS ln_n2
            FROM t WINDOW w AS (PARTITION BY distribution, d ORDER BY n))
        SELECT nn.distribution, nn.d, nn.n, nn.p_hat, nn.ci_low, nn.ci_high, nn.trials,
               nn.d - coalesce((nn.d - dd.dp) / 2.0, (dd.dn - nn.d) / 2.0, 0.5) AS d_lo,
               nn.d + coalesce((dd.dn - nn.d) / 2.0, (nn.d - dd.dp) / 2.0, 0.5) AS d_hi,
               exp(ln_n - coalesce((ln_n - ln_p) / 2, (ln_n2 - ln_n) / 2, 0.5)) AS n_lo,
               exp(ln_n + coalesce((ln_n2 - ln_n) / 2, (ln_n - ln_p) / 2, 0.5)) AS n_hi
        FROM nn JOIN dd USING (d) ORDER BY nn.distribution, nn.d, nn.n""")


# -- view 4: run status ------------------------------------------------------------
#: A progress record older than this (seconds) is a runner that stopped: its in-flight share is not shown.
PROGRESS_STALE_S = 120.0


def run_status(out: str, now: float | None = None, summary: pa.Table | None = None) -> pa.Table:
    """One row per run: shards done/planned, trials, undecided, trials/s, ETA.

    Trial and undecided counts come from ``summary`` (:func:`audit_summary`)
    when given, else from the verified units' statuses (:func:`mc_hull.query.run_counts`).  Planned shards
    come from the run's spec (:func:`mc_hull.query.run_progress`); done shards
    are the manifest's entries.  ``trials_per_s`` is the rate the runner
    measured and recorded with the run (trials computed over its wall-clock
    time); ``last_write_age_s`` the time since that record; ``active`` is
    whether the run is incomplete and its runner reported within two minutes
    (or has not reported yet).

    While a runner works, its progress record (rewritten every few seconds beside the store,
    never data) adds ``trials_in_flight``: the trials finished inside the units still running
    (0 when the record is missing, finished, stopped or older than :data:`PROGRESS_STALE_S`), and
    ``progress_age_s``; then the rate and ETA are the runner's own (the share inside units
    counted), and ``active`` is true.
    """
    now = time.time() if now is None else now
    progress = query.run_progress(out)
    if summary is not None:
        per_run = _on(summary, "SELECT run_id, sum(trials)::BIGINT AS trials, sum(undecided)::BIGINT AS undecided "
                               f"FROM t WHERE {_part(summary, 'methods')} GROUP BY run_id")
    else:   # from the verified units' statuses (status digests where they open), not a scan of the rows
        per_run = query.run_counts(out) if any(p["shards_done"] for p in progress) else None
    counts = {r["run_id"]: r for r in (per_run.to_pylist() if per_run is not None else [])}
    rows = []
    for p in progress:
        spec, stats = p["spec"], p["stats"]
        done = counts.get(p["run_id"], {}).get("trials", 0) or 0
        planned_trials, planned_shards = p["trials_planned"], p["shards_planned"]
        rate = stats.get("trials_per_s")
        rate = float(rate) if isinstance(rate, (int, float)) and rate > 0 else None
        finished = stats.get("finished")
        age = now - float(finished) if isinstance(finished, (int, float)) else None
        complete = planned_trials is not None and done >= planned_trials
        eta = 0.0 if complete else (max(0.0, planned_trials - done) / rate
                                    if planned_trials is not None and rate else None)
        record = p.get("progress") or {}
        updated = record.get("updated")
        record_age = now - float(updated) if isinstance(updated, (int, float)) else None
        live = (record_age is not None and record_age < PROGRESS_STALE_S and not record.get("finished")
                and not record.get("stopped") and not complete)
        in_flight = float(record.get("in_flight") or 0.0) if live else 0.0
        if live:
            if isinstance(record.get("rate"), (int, float)) and record["rate"] > 0:
                rate = float(record["rate"])
            if isinstance(record.get("eta_s"), (int, float)):
                eta = max(0.0, float(record["eta_s"]) - record_age)
        rows.append({
            "run_id": p["run_id"], "distribution": spec.distribution if spec else None,
            "shards_done": p["shards_done"], "shards_planned": planned_shards,
            "trials_done": int(done), "trials_planned": planned_trials,
            "undecided": int(counts.get(p["run_id"], {}).get("undecided", 0) or 0),
            "trials_per_s": rate, "eta_s": eta, "last_write_age_s": age,
            "active": bool(live or ((planned_shards or 0) > p["shards_done"] and (age is None or age < 120))),
            "trials_in_flight": in_flight, "progress_age_s": record_age,
        })
    return pa.Table.from_pylist(rows, schema=pa.schema([
        ("run_id", pa.string()), ("distribution", pa.string()), ("shards_done", pa.int64()),
        ("shards_planned", pa.int64()), ("trials_done", pa.int64()), ("trials_planned", pa.int64()),
        ("undecided", pa.int64()), ("trials_per_s", pa.float64()), ("eta_s", pa.float64()),
        ("last_write_age_s", pa.float64()), ("active", pa.bool_()), ("trials_in_flight", pa.float64()),
        ("progress_age_s", pa.float64())]))


def latest_rate(status: pa.Table) -> tuple[str, float] | None:
    """``(run_id, trials_per_s)`` of the run whose runner reported last, among runs with a rate.

    The rows of :func:`run_status` are ordered by run id (a hash), not by time: the latest
    report is the smallest ``last_write_age_s``.  None when no run has reported a rate.
    """
    rows = [r for r in status.to_pylist() if r.get("trials_per_s") is not None]
    if not rows:
        return None
    inf = float("inf")
    best = min(rows, key=lambda r: (r["last_write_age_s"] if r["last_write_age_s"] is not None else inf,
                                    r["run_id"]))
    return best["run_id"], float(best["trials_per_s"])


# -- view 5: trial audit --------------------------------------------------------------
_AUDIT_NAMES = ["distribution", "d", "n", "run_id", "method", "status", "cbin", "tbin", "trials", "undecided",
                "seconds", "rounds"]
_AUDIT_TYPES = [pa.string(), pa.int32(), pa.int64(), pa.string(), pa.string(), pa.string(), pa.float64(),
                pa.float64(), pa.int64(), pa.int64(), pa.float64(), pa.float64()]
#: The trial columns the audit decodes (with the partition and identity columns): every unit is still verified whole.
AUDIT_READ = ("method", "status", "certificate_value", "solve_seconds", "rounds", "inside")


def audit_summary(out: str, filters: Filters | None = None, *, bins_per_decade: int = 4,
                  floor: float = 1e-18) -> pa.Table:
    """One scan of the trials, grouped by cell, run, method, status and log10 bins.

    ``cbin``/``tbin`` index bins of width ``1/bins_per_decade`` in log10 of
    ``|certificate_value|`` and ``solve_seconds`` (values below ``floor``,
    including 0, fall in the floor's bin; NULL where the value is missing).
    Every audit table and the run-status counts are re-aggregations of this
    table, so changing a filter does not rescan the store.
    """
    names, types = _AUDIT_NAMES, _AUDIT_TYPES
    k = int(bins_per_decade)
    meta = {"bins_per_decade": str(k)}
    con = query.connect(out, columns=AUDIT_READ)
    if con is None:
        return pa.schema(list(zip(names, types)), metadata=meta).empty_table()
    cond, params = (filters or Filters()).where()

    def binned(col):
        return (f"CASE WHEN {col} IS NULL OR NOT isfinite({col}) THEN NULL "
                f"ELSE floor(log10(greatest(abs({col}), {float(floor)!r})) * {k}) END")

    table = _sql(con, f"""
        SELECT distribution, d, n, run_id, method, status,
               {binned('certificate_value')} AS cbin, {binned('solve_seconds')} AS tbin,
               count(*) AS trials, count(*) FILTER (WHERE inside IS NULL) AS undecided,
               sum(solve_seconds) AS seconds, sum(rounds)::DOUBLE AS rounds
        FROM rows_raw WHERE {cond} GROUP BY ALL""", params)
    return table.cast(pa.schema(list(zip(names, types)))).replace_schema_metadata(meta)


def audit_digests(out: str, run_id: str | None = None) -> pa.Table | None:
    """The audit's counts from the verified units' status digests, or None when a unit has none.

    Each unit of a run written since digests carries its audit counts in its manifest entry, sealed
    with the entry (:func:`mc_hull.store.results.audit_digest`), so no row is decoded.  The table
    has :func:`audit_summary`'s columns and ``part``: ``"methods"`` rows count trials, undecided,
    seconds and rounds per (cell, run, method, status) with ``cbin`` and ``tbin`` null; ``"cbins"`` and
    ``"tbins"`` rows count trials per (cell, run, status) and bin, the other columns null.
    :func:`audit_counts` and :func:`audit_histogram` read either table.
    """
    store = query_store(out)
    return query.cells._cached(store, run_id, "audit", lambda: _audit_digests(store, run_id))


def _audit_digests(store, run_id: str | None) -> pa.Table | None:
    units, _ = query.verified_statuses(store, run_id)
    cols: dict[str, list] = {c: [] for c in _AUDIT_NAMES + ["part"]}
    parts = (("methods", ("method", "status", "trials", "undecided", "seconds", "rounds"), {}),
             ("cbins", ("status", "bin", "trials"), {"bin": "cbin"}),
             ("tbins", ("status", "bin", "trials"), {"bin": "tbin"}))
    for u in units:
        audit = u.extra.get("audit") if u.from_digest and isinstance(u.extra, dict) else None
        if (not isinstance(audit, dict) or audit.get("per_decade") != AUDIT_BINS_PER_DECADE
                or audit.get("floor") != AUDIT_FLOOR):
            return None
        p = u.entry.partition
        base = {"distribution": p["distribution"], "d": int(p["d"]), "n": int(p["n"]), "run_id": u.entry.run_id}
        try:
            for part, names, rename in parts:
                got = audit[part]
                size = len(got["trials"])
                if any(len(got[c]) != size for c in names):
                    return None
                filled = {rename.get(c, c): got[c] for c in names}
                for c in cols:
                    cols[c].extend(filled[c] if c in filled else [part] * size if c == "part"
                                   else [base[c]] * size if c in base else [None] * size)
        except (KeyError, TypeError):
            return None
    types = dict(zip(_AUDIT_NAMES, _AUDIT_TYPES), part=pa.string())
    meta = {"bins_per_decade": str(AUDIT_BINS_PER_DECADE)}
    try:
        table = pa.table({c: pa.array(v, type=types[c]) for c, v in cols.items()})
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):   # a sealed digest of the wrong types
        return None
    return table.replace_schema_metadata(meta)


def audit_overview(out: str) -> pa.Table:
    """The audit's counts: :func:`audit_digests` when every unit has its digest, else :func:`audit_summary`."""
    fast = audit_digests(out)
    return audit_summary(out) if fast is None else fast


def _part(summary: pa.Table, part: str) -> str:
    """SQL condition keeping one part of a digest table (:func:`audit_digests`); TRUE for a scan's table."""
    return f"part = '{part}'" if "part" in summary.column_names else "TRUE"


def audit_counts(out: str, filters: Filters, summary: pa.Table | None = None) -> pa.Table:
    """Trials by method and status under ``filters``, with mean solve time and mean pricing rounds."""
    summary = audit_summary(out) if summary is None else summary
    cond, params = filters.where()
    cond += f" AND {_part(summary, 'methods')}"
    return _on(summary, f"""
        SELECT method, status, sum(trials)::BIGINT AS trials, sum(seconds) / sum(trials) AS mean_seconds,
               sum(rounds) / sum(trials) AS mean_rounds
        FROM t WHERE {cond} GROUP BY ALL ORDER BY trials DESC, method, status""", params)


def audit_histogram(out: str, filters: Filters, column: str, summary: pa.Table | None = None) -> pa.Table:
    """Histogram of log10(``column``) by status: ``status, lo, hi, trials`` (bin edges in the column's units).

    ``column`` is ``"certificate_value"`` (inside: residual, outside: margin,
    both relative to the data scale) or ``"solve_seconds"``.
    """
    bins = {"certificate_value": "cbin", "solve_seconds": "tbin"}
    if column not in bins:
        raise ValueError(f"not a histogram column: {column}")
    summary = audit_summary(out) if summary is None else summary
    k = int((summary.schema.metadata or {}).get(b"bins_per_decade", b"4"))
    b = bins[column]
    cond, params = filters.where()
    return _on(summary, f"""
        SELECT status, pow(10, {b} / {k}) AS lo, pow(10, ({b} + 1) / {k}) AS hi, sum(trials)::BIGINT AS trials
        FROM t WHERE {cond} AND {b} IS NOT NULL AND {_part(summary, b + 's')}
        GROUP BY status, {b} ORDER BY status, lo""", params)


def audit_tables(out: str, filters: Filters, summary: pa.Table | None = None
                 ) -> tuple[pa.Table, pa.Table, pa.Table]:
    """(counts by method and status, certificate-value histogram, solve-time histogram) under ``filters``."""
    summary = audit_summary(out) if summary is None else summary
    return (audit_counts(out, filters, summary), audit_histogram(out, filters, "certificate_value", summary),
            audit_histogram(out, filters, "solve_seconds", summary))


def filter_options(out: str, cells: pa.Table | None = None) -> dict[str, list]:
    """Distinct distributions, dimensions, sizes (from the cell table) and runs (from the manifest)."""
    cells = cell_table(out) if cells is None else cells
    run_ids = query.run_ids(out)
    return {"distributions": sorted(set(cells["distribution"].to_pylist())),
            "dims": sorted(set(cells["d"].to_pylist())), "sizes": sorted(set(cells["n"].to_pylist())),
            "runs": sorted(run_ids)}


# -- view 6: download ------------------------------------------------------------------
def to_csv(table: pa.Table) -> bytes:
    """The table as CSV bytes (header row included)."""
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink)
    return sink.getvalue().to_pybytes()
