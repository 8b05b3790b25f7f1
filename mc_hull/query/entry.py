"""Nested runs read back: which curves are nested, every trial's bounds on its entry size T, N½ as the median of T.

A nested run (spec ``nested = true``, rows with ``method`` ``"nested:<solver>"``,
:mod:`mc_hull.jobs.nested`) locates each query's entry size
T = min{n : x ∈ conv(X₁…X_n)} on the grid of sizes of its d, so P(T ≤ N) = p(d, N)
and p̂ is the empirical distribution function of T at the grid sizes.  N½ is then
read directly as the median of T, with no curve fit (:func:`median_of_t`).

Why not the fit of :mod:`mc_hull.stats.thresholds`: the cells of a nested curve are the
same trials read at different N, so a likelihood that multiplies their binomial
terms counts every trial once per cell in the window and its interval is far too
narrow (its 99% interval missed the exact Gaussian N½ in 36-47% of small runs at
d = 2..5, ``benchmarks/median_t_coverage.py``).

The interval inverts the per-size tests: N½ > N wherever the cell's 99% clustered
interval lies below 1/2, N½ ≤ N wherever it lies at or above 1/2
(:func:`mc_hull.stats.thresholds.median_interval`).  It is the clustered analogue of the
distribution-free binomial interval of a median: a miss needs a cell near N½ whose
interval excludes p(N) on the wrong side, which happens with probability at most
0.5% on each side, and the per-cell intervals are clustered by training set, so the
queries sharing X are accounted for.  ``benchmarks/median_t_coverage.py`` compares it
with a cluster bootstrap over training sets and with the unclustered Wilson
inversion against the exact Gaussian N½: with 10 training sets of 30 queries the
bracket missed in 2 of 1,200 runs (d = 2..5), the bootstrap in 23 and the
unclustered inversion in 24; with 30 sets of 10, 4, 7 and 11 of 1,200.  The
bracket is conservative (a few grid steps wider than the bootstrap's), the price
of holding its level with few training sets.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from ..errors import StoreError
from ..store import ResultStore
from ..stats.thresholds import median_interval
from .cells import CELL_READ, _cached, cell_info, connect, listed_units, run_params, verified_statuses

#: ``method`` of a thresholds row read as the median of T (a nested curve).
MEDIAN_T = "median of T"
#: What :func:`median_of_t` reports, for the notes under a table.
MEDIAN_T_NOTE = ("method 'median of T' (nested runs): every query's entry size T = min{N : x in conv(X_1..X_N)} "
                 "is located on the grid, p_hat(N) = P(T <= N), and n_half is the median of T (the smallest "
                 "grid N with p_hat >= 1/2), no fit; (n_half_low, n_half_high] brackets the true N_half by "
                 "inverting the per-size 99% cluster-robust intervals (N_half exceeds every N whose interval "
                 "lies below 1/2 and is at most every N whose interval lies at or above 1/2), so queries "
                 "sharing a training set are accounted for; the grid's spacing limits its width (no fit: the "
                 "cells of a nested curve are the same trials read at every N, and a fit treating them as "
                 "independent would give far too narrow an interval)")
#: Columns of :func:`entry_sizes`.
ENTRY_COLUMNS = ["distribution", "params", "d", "run_id", "replicate", "query", "t_low", "t_high"]
ENTRY_NOTE = ("one row per trial of a nested run: the entry size T lies in (t_low, t_high]; t_low is the "
              "largest grid N at which the query is certified outside (0: inside already at the smallest N), "
              "t_high the smallest at which it is certified inside (-: outside at the largest N)")


def _is_nested(record: dict) -> bool:
    try:
        return bool(record["spec"].get("nested", False))
    except (KeyError, TypeError, AttributeError):
        return False


def nested_runs(out) -> set[str]:
    """Ids of the recorded runs whose spec says ``nested = true``."""
    return {run_id for run_id, record in ResultStore(out).runs().items() if _is_nested(record)}


def nested_curves(out, *, run_id: str | None = None) -> set[tuple[str, str, int]]:
    """The curves (distribution, params, d) whose every committed unit belongs to a nested run.

    From the manifest and the run records only (no trial rows read).  A curve that
    also holds units of an ordinary run is not nested (its cells mix trials that
    are not read off one T each).
    """
    store = ResultStore(out)
    runs = nested_runs(store.backend)
    params = run_params(store.backend)
    found: dict = {}
    for entry in listed_units(store, run_id):
        dist, d = str(entry.partition.get("distribution")), int(entry.partition.get("d", -1))
        p = cell_info(dist, params.get(entry.run_id) if entry.run_id in params else None, d)["params"]
        found[(dist, p, d)] = found.get((dist, p, d), True) and entry.run_id in runs
    return {key for key, every in found.items() if every}


def median_of_t(n, p_hat, ci_low, ci_high) -> dict:
    """N½ of one nested curve as the median of T, with its bracket.

    Parameters
    ----------
    n, p_hat, ci_low, ci_high : array_like, shape (L,)
        The curve's cells (any order): size, estimate and 99% clustered interval
        (None or NaN where a cell has no decided trial).

    Returns
    -------
    dict
        ``n_half`` (None when the median is censored: p̂ < 1/2 at every size, or
        p̂ >= 1/2 already at the smallest), ``n_half_low`` (0 when no interval lies
        below 1/2) and ``n_half_high`` (inf when none lies at or above 1/2): the
        true N½ is in ``(n_half_low, n_half_high]``.
    """
    def arr(v):
        return np.array([np.nan if x is None else float(x) for x in v], dtype=np.float64)

    n = np.asarray(n, dtype=np.float64)
    order = np.argsort(n)
    est = {"n": n[order], "p_hat": arr(p_hat)[order], "low": arr(ci_low)[order], "high": arr(ci_high)[order]}
    med, low, high = median_interval(est)
    decided = est["p_hat"][np.isfinite(est["p_hat"])]
    censored = not math.isfinite(med) or (decided.size and decided[0] >= 0.5)
    return {"n_half": None if censored else med, "n_half_low": low, "n_half_high": high}


def _bounds(out, run_id, d):
    """A connection with view ``bounds`` (one row per nested trial) and table ``grid`` (its sizes)."""
    runs = nested_runs(out)
    if run_id is not None and run_id not in runs:
        raise StoreError(f"--entry-sizes: run {run_id} is not a nested run (entry sizes are located only by "
                         "`mc-hull run --nested`)")
    present = {e.run_id for e in listed_units(ResultStore(out), run_id)} & runs
    if not present:
        raise StoreError(f"--entry-sizes: {out} holds no nested run with committed shards "
                         "(entry sizes are located only by `mc-hull run --nested`)")
    con = connect(out, run_id=run_id, columns=CELL_READ)   # the cells' read: one verified read serves both
    dims = None if d is None else [int(d)] if np.ndim(d) == 0 else [int(v) for v in d]
    con.register("nested_runs", pa.table({"run_id": sorted(present)}))
    where = "" if dims is None else f"AND d IN ({', '.join(map(str, dims))})"
    con.execute(f"""CREATE VIEW nested_trials AS SELECT * FROM trials_all SEMI JOIN nested_runs USING (run_id)
                    WHERE TRUE {where}""")
    con.execute("""CREATE VIEW bounds AS
        SELECT distribution, params, d, run_id, replicate, query,
               coalesce(max(n) FILTER (WHERE inside = false), 0)::BIGINT AS t_low,
               min(n) FILTER (WHERE inside = true)::BIGINT AS t_high
        FROM nested_trials GROUP BY ALL""")
    return con


def _nested_store(out: str, run_id: str | None):
    """(the store at ``out``, its nested run ids); one line if ``run_id`` or ``out`` holds no nested run."""
    store = ResultStore(out)
    runs = nested_runs(store.backend)
    if run_id is not None and run_id not in runs:
        raise StoreError(f"--entry-sizes: run {run_id} is not a nested run (entry sizes are located only by "
                         "`mc-hull run --nested`)")
    if not {e.run_id for e in listed_units(store, run_id)} & runs:
        raise StoreError(f"--entry-sizes: {out} holds no nested run with committed shards "
                         "(entry sizes are located only by `mc-hull run --nested`)")
    return store, runs


def entry_sizes(out, run_id: str | None = None, d=None) -> pa.Table:
    """Per trial of the nested runs in ``out``: the bounds on its entry size T.

    Parameters
    ----------
    out : str or Store
    run_id : str, optional
        Only this run (StoreError, one line, when it is not a nested run).
    d : int or iterable of int, optional
        Only these dimensions.

    Returns
    -------
    pyarrow.Table
        Columns :data:`ENTRY_COLUMNS`, one row per (run, d, replicate, query), in that order.
        T lies in ``(t_low, t_high]``; ``t_low`` is 0 when the query is inside
        already at the smallest size, ``t_high`` null when it is outside at the
        largest.  Sizes where a trial is undecided widen its bracket.

    Raises
    ------
    StoreError
        When ``out`` (or ``run_id``) holds no nested run.
    """
    store, runs = _nested_store(out, run_id)
    dims = None if d is None else {int(d)} if np.ndim(d) == 0 else {int(v) for v in d}
    # from the verified units' statuses (digests where they open, else the decoded rows), as the cells:
    # the same bounds as the SQL over every row (:func:`_bounds`), without decoding 10^6 rows
    units, _ = verified_statuses(store, run_id)
    params = run_params(store.backend)
    groups: dict = {}   # (distribution, params, d, run) -> units
    for u in units:
        part = u.entry.partition
        dim = int(part["d"])
        if u.entry.run_id not in runs or (dims is not None and dim not in dims):
            continue
        p = cell_info(part["distribution"], params.get(u.entry.run_id) if u.entry.run_id in params else None,
                      dim)["params"]
        groups.setdefault((part["distribution"], p, dim, u.entry.run_id), []).append(u)
    cols: dict = {c: [] for c in ENTRY_COLUMNS}
    for (dist, p, dim, run), us in sorted(groups.items()):
        rep, qry, low, high = _run_bounds(us)
        size = len(rep)
        for c, v in (("distribution", [dist] * size), ("params", [p] * size), ("d", [dim] * size),
                     ("run_id", [run] * size)):
            cols[c].append(pa.array(v, pa.string() if c != "d" else pa.int32()))
        cols["replicate"].append(pa.array(rep.astype(np.int32)))
        cols["query"].append(pa.array(qry.astype(np.int32)))
        cols["t_low"].append(pa.array(low))
        cols["t_high"].append(pa.array(high, mask=high == _NEVER))
    schema = _entry_schema()
    if not groups:
        return schema.empty_table()
    return pa.table({c: pa.chunked_array(v, schema.field(c).type) for c, v in cols.items()}, schema=schema)


def _entry_schema() -> pa.Schema:
    types = {"distribution": pa.string(), "params": pa.string(), "d": pa.int32(), "run_id": pa.string(),
             "replicate": pa.int32(), "query": pa.int32(), "t_low": pa.int64(), "t_high": pa.int64()}
    return pa.schema([(c, types[c]) for c in ENTRY_COLUMNS])


def entry_ecdf(out, *, run_id: str | None = None, distribution: str | None = None, dims=None) -> pa.Table:
    """The empirical distribution of T's bounds per curve at its grid sizes (a small table).

    Read from the verified units' statuses (:func:`mc_hull.query.cells.verified_statuses`: status
    digests where they open, else the decoded rows): each trial's bounds are its largest size
    certified outside and its smallest certified inside, as :func:`entry_sizes` has them.

    Returns
    -------
    pyarrow.Table
        ``distribution, params, d, n, trials, certain, possible``: at each grid size n,
        the fraction of trials with ``t_high <= n`` (certainly entered by n: p̂ at n)
        and with ``t_low < n`` (possibly entered by n).  Between two grid sizes the
        distribution function of T lies between ``certain`` at the lower one and
        ``possible`` at the upper one; at a grid size both equal p̂ when no trial is undecided.
    """
    store, runs = _nested_store(out, run_id)
    dims = None if dims is None else {int(dims)} if np.ndim(dims) == 0 else {int(v) for v in dims}
    rows = {k: [] for k in ("distribution", "params", "d", "n", "trials", "certain", "possible")}
    for (dist, p, d), (g, low, high) in sorted(curve_bounds(store, run_id, runs).items()):
        if (distribution is not None and dist != distribution) or (dims is not None and d not in dims):
            continue
        certain = np.searchsorted(high, g, side="right") / len(high)
        possible = np.searchsorted(low, g, side="left") / len(low)
        for k, v in (("distribution", [dist] * len(g)), ("params", [p] * len(g)), ("d", [d] * len(g)),
                     ("n", g.tolist()), ("trials", [len(high)] * len(g)), ("certain", certain.tolist()),
                     ("possible", possible.tolist())):
            rows[k] += v
    return pa.table(rows, schema=pa.schema([
        ("distribution", pa.string()), ("params", pa.string()), ("d", pa.int32()), ("n", pa.int64()),
        ("trials", pa.int64()), ("certain", pa.float64()), ("possible", pa.float64())]))


def curve_bounds(store: ResultStore, run_id: str | None, runs: set[str]) -> dict:
    """(distribution, params, d) -> (grid sizes, sorted t_low, sorted t_high) of the nested runs ``runs``'
    trials, from the verified units' statuses; computed once per state of the store's files."""
    def compute():
        units, _ = verified_statuses(store, run_id)
        params = run_params(store.backend)
        curves: dict = {}   # (distribution, params, d) -> run -> units
        for u in units:
            part = u.entry.partition
            if u.entry.run_id not in runs:
                continue
            d = int(part["d"])
            p = cell_info(part["distribution"], params.get(u.entry.run_id) if u.entry.run_id in params else None,
                          d)["params"]
            curves.setdefault((part["distribution"], p, d), {}).setdefault(u.entry.run_id, []).append(u)
        out = {}
        for key, by_run in curves.items():
            grid = np.array(sorted({int(u.entry.partition["n"]) for us in by_run.values() for u in us}),
                            dtype=np.int64)
            low, high = _trial_bounds(by_run)
            low.sort()
            high.sort()
            out[key] = (grid, low, high)
        return out

    return _cached(store, run_id, ("bounds", tuple(sorted(runs))), compute)


#: ``t_high`` of a trial never certified inside (SQL's NULL): above every size.
_NEVER = np.iinfo(np.int64).max


def _trial_bounds(by_run: dict) -> tuple[np.ndarray, np.ndarray]:
    """(t_low, t_high) of every trial (run, replicate, query) of one curve's units (int64, shape (trials,)):
    the largest size certified outside (0 if none) and the smallest certified inside (:data:`_NEVER`)."""
    lows, highs = [], []
    for us in by_run.values():
        _, _, low, high = _run_bounds(us)
        lows.append(low)
        highs.append(high)
    return np.concatenate(lows), np.concatenate(highs)


def _run_bounds(us: list) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(replicate, query, t_low, t_high) of every trial of one run's units of one curve, in (replicate,
    query) order: t_low the largest size certified outside (0 if none), t_high the smallest certified
    inside (:data:`_NEVER` if none), as :func:`_trial_bounds` computes them."""
    us = [u for u in us if len(u.status)]
    if not us:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty
    k = max(int(u.counts.max()) if u._query is None else int(u._query.max()) + 1 for u in us)
    r = max(int(u.replicates.max()) + 1 for u in us)
    low = np.zeros(r * k, dtype=np.int64)
    high = np.full(r * k, _NEVER, dtype=np.int64)
    seen = np.zeros(r * k, dtype=bool)
    for u in us:
        n = int(u.entry.partition["n"])
        idx = u.replicate.astype(np.int64) * k + u.query   # each trial once in a unit (verified)
        seen[idx] = True
        out, ins = idx[u.status == 0], idx[u.status == 1]
        low[out] = np.maximum(low[out], n)
        high[ins] = np.minimum(high[ins], n)
    where = np.flatnonzero(seen)
    return where // k, where % k, low[where], high[where]
