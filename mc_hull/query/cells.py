"""Per-cell estimates from the verified rows of a store: each trial counted once, intervals, exact curves."""

from __future__ import annotations

import functools
import math
import threading

import duckdb
import numpy as np
import pyarrow as pa

from ..stats import intervals as stats
from .. import theory
from ..stats.distances import SUMMARY_COLUMNS
from ..errors import McHullError, StoreError
from ..samplers import SAMPLERS, get_sampler
from ..store import ResultStore
from .distances import cell_distances, has_distances, summary_fields

#: Columns of :func:`cell_estimates`, in order.
CELL_COLUMNS = ["distribution", "d", "n", "params", "d_intrinsic", "d_affine", "runs", "replicates", "trials", "inside", "undecided",
                "p_hat", "ci_low", "ci_high", "wilson_low", "wilson_high", "design_effect",
                "bf_threshold", "exact", "z"]
INTERVAL_NOTE = ("ci_low/ci_high: 99% cluster-robust interval (Wilson at the effective sample size "
                 "trials / design effect, with a Student-t critical value on replicates - 1 degrees of "
                 "freedom), valid when queries share a training set; wilson_low/wilson_high: plain 99% "
                 "Wilson interval treating trials as independent (too narrow when design_effect > 1)")
#: The columns that identify a trial: the same identity written by two runs is one trial.
IDENTITY = ("distribution", "params", "d", "n", "replicate", "query", "seed_key")


def parse_params(text: str | None) -> dict | None:
    """Invert :meth:`mc_hull.samplers.Sampler.describe`: ``"k=3,df=2.5"`` -> ``{"k": 3, "df": 2.5}``."""
    if text is None or text == "?":
        return None
    out = {}
    for item in filter(None, text.split(",")):
        name, _, value = item.partition("=")
        for cast in (int, float, str):
            try:
                out[name] = cast(value)
                break
            except ValueError:
                continue
    return out


@functools.lru_cache(maxsize=1024)
def _cell_info(distribution: str, params: tuple | None, d: int) -> dict:
    try:
        if params is None:  # the run's spec is not recorded: only parameter-free families are known
            if SAMPLERS[distribution].params:
                raise KeyError(distribution)
            params = ()
        sampler = get_sampler(distribution, d, **dict(params))
    except (KeyError, McHullError):
        return {"params": "?", "d_intrinsic": None, "d_affine": None, "exact_as": None, "exact_params": {}}
    return {"params": sampler.describe(), "d_intrinsic": sampler.dims["intrinsic"],
            "d_affine": sampler.dims["affine"], "exact_as": sampler.exact_as,
            "exact_params": sampler.exact_params}


def cell_info(distribution: str, params: dict | None, d: int) -> dict:
    """What a cell's sampler says about itself, from the run's parameters (None: unknown).

    Returns
    -------
    dict
        ``params`` (defaults filled in, ``"k=3"``; ``"?"`` when unknown),
        ``d_intrinsic``, ``d_affine``, ``exact_as`` (the (distribution, dimension)
        whose exact curve gives p, see :attr:`mc_hull.samplers.Sampler.exact_as`) and
        ``exact_params`` (that law's parameters, e.g. ``{"df": 3}``).
    """
    key = None if params is None else tuple(sorted(params.items()))
    return _cell_info(distribution, key, int(d))


def exact_p(distribution: str, params: dict | None, d: int, n):
    """Exact p at ``n`` through the sampler's ``exact_as`` curve; None when none is known."""
    info = cell_info(distribution, params, d)
    ref, law_params = info["exact_as"], info["exact_params"]
    if ref is None or not theory.has_exact(*ref, **law_params):
        return None
    return theory.exact_inside_probability(ref[0], int(ref[1]), n, **law_params)


def exact_n_half_of(distribution: str, params: dict | None, d: int) -> float | None:
    """Exact N½ through the sampler's ``exact_as`` curve; None when unknown or out of range."""
    info = cell_info(distribution, params, d)
    ref, law_params = info["exact_as"], info["exact_params"]
    if ref is None or not theory.has_exact(*ref, **law_params):
        return None
    return theory.exact_n_half(ref[0], int(ref[1]), **law_params)


def run_params(out) -> dict[str, dict]:
    """run_id -> the distribution parameters recorded with the run."""
    found = {}
    for run_id, record in ResultStore(out).runs().items():
        try:
            found[run_id] = dict(record["spec"].get("params") or {})
        except (KeyError, TypeError, AttributeError):
            continue
    return found


def _run_seeds(records: dict[str, dict]) -> dict[str, int | str]:
    """run_id -> its seed, or ``"<seed>/draws:<scheme>"`` for a run recorded under an older draw scheme
    than its sampler's (:attr:`mc_hull.samplers.Sampler.draws`): its rows name other points."""
    seeds = {}
    for run_id, record in records.items():
        try:
            seed = int(record["spec"]["seed"])
            scheme = record.get("draws", 1)
            cls = SAMPLERS.get(record["spec"].get("distribution", "gaussian"))
            old = cls is not None and isinstance(scheme, int) and scheme < cls.draws
            seeds[run_id] = f"{seed}/draws:{scheme}" if old else seed
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
    return seeds


def _nested_sizes(records: dict[str, dict]) -> dict[str, dict[int, int]]:
    """run_id -> {d: largest grid size} of every recorded nested run (its training sets' size)."""
    found = {}
    for run_id, record in records.items():
        spec = record.get("spec") if isinstance(record, dict) else None
        if not isinstance(spec, dict) or not spec.get("nested"):
            continue
        grid = spec.get("grid") or {}
        try:
            sizes = {int(d): max(int(n) for n in ns) for d, ns in dict(grid).items()} if grid else {}
            default = max(int(n) for n in spec.get("sizes") or [0])
        except (TypeError, ValueError, AttributeError):
            continue
        found[run_id] = {int(d): sizes.get(int(d), default) for d in spec.get("dims") or []}
    return found


def _seed_key(run: str, d: int, n: int, seeds: dict[str, int], nested: dict[str, dict[int, int]]) -> str:
    """The part of a trial's identity beyond (distribution, params, d, n, replicate, query): its run's seed and,
    for a nested run's rows below its largest size N_max, that size (they are prefixes of a training set
    of N_max points, not the training set an ordinary run draws at n)."""
    base = f"seed:{seeds[run]}" if run in seeds else f"run:{run}"
    n_max = nested.get(run, {}).get(int(d))
    return base if n_max is None or int(n) >= n_max else f"{base}/prefix-of:{n_max}"


#: The last verified reads of this process: ``(root, run_id, columns, state) -> (rows, run records)``.
_LAST_READ: dict = {}
_READ_LOCK = threading.Lock()
#: One lock per (root, run, what): a read in progress is waited for, not repeated.
_KEY_LOCKS: dict = {}
#: Reads kept per store state (statuses, the cell table, rows decoded for distances or the audit ...).
LAST_READS = 8
#: Per thread, ``(root, state)`` of the read in progress: a read nested in it (the cell table reading the
#: units' statuses) keys its value by the same state instead of listing the store's files again (~30 ms
#: on 5,000 files); a change after that state was taken still makes the next call read again.
_HELD = threading.local()
#: The (run, distribution, d, n) present in the last table :func:`connect` opened (``"table"``: that table).
_CELLS_OF: dict = {}


#: The trial columns a cell estimate reads (with the partition columns and, in distance runs, the distances).
CELL_READ = ("run_id", "replicate", "query", "inside", "distance_low", "distance_high", "nn_distance")


def _cached(store: ResultStore, run_id: str | None, what, read):
    """``read()`` once per state of a Parquet store's files (see :func:`verified_rows`), keyed by ``what``.

    Two threads asking for the same value at once (a page and the dashboard's warm-up) read it once:
    the second waits for the first's result.
    """
    state_of = getattr(store.backend, "state", None)
    held = getattr(_HELD, "state", None)
    if held is not None and held[0] == store.out:
        state = held[1]   # inside another read of this store: the state taken before it (one listing less)
    else:
        state = state_of() if state_of is not None else None   # taken before the read: a change during it
    key = (store.out, run_id, what, state)                      # makes the next call read again
    if state is None:
        return read()
    with _READ_LOCK:
        hit = _LAST_READ.get(key)
        if hit is not None:
            return hit
        lock = _KEY_LOCKS.setdefault(key[:3], threading.Lock())
    with lock:
        with _READ_LOCK:
            hit = _LAST_READ.get(key)
        if hit is not None:
            return hit
        _HELD.state = (store.out, state)
        try:
            value = read()
        finally:
            _HELD.state = held
        with _READ_LOCK:
            for old in [k for k in _LAST_READ if k[-1] != state or k[:2] != key[:2]]:
                del _LAST_READ[old]   # another store, run or state: keep only this one's reads
            while len(_LAST_READ) >= LAST_READS:
                del _LAST_READ[next(iter(_LAST_READ))]
            _LAST_READ[key] = value
    return value


def listed_units(store: ResultStore, run_id: str | None = None) -> list:
    """The manifest's trials entries (:meth:`ResultStore.units`: listed, not verified), read once per
    state of a Parquet store's files like :func:`verified_rows` (a page asks for them several times:
    whether the store holds anything, its runs, its nested curves, each run's progress).  Read-only."""
    return _cached(store, run_id, "units", lambda: store.units(run_id))


def verified_rows(store: ResultStore, run_id: str | None = None,
                  columns: tuple[str, ...] | None = None) -> tuple[pa.Table, dict]:
    """The store's verified rows (:meth:`ResultStore.trials`) and run records, read once per state.

    A dashboard page or ``query --thresholds`` asks for the same rows several times (cells,
    audit, entry sizes); a Parquet store is read and verified again only when a file under
    its root changed (path, size or modification time: :meth:`ParquetStore.state`, one
    listing).  Other backends are read on every call.  The last :data:`LAST_READS` reads are kept
    (a page reads the units' statuses and the cell table, then columns for distances or an audit).  ``columns``: see
    :meth:`ResultStore.trials`.
    """
    return _cached(store, run_id, columns, lambda: (store.trials(run_id, None if columns is None else list(columns)),
                                                    store.runs()))


def verified_statuses(store: ResultStore, run_id: str | None = None) -> tuple[list, dict]:
    """Every verified unit as its trials' statuses (:meth:`ResultStore.statuses`) and the run records,
    read once per state of the store's files like :func:`verified_rows`; StoreError (one line) naming
    the first unit that does not verify."""
    def read():
        records = store.runs()
        report, units = store.statuses(run_id)
        if report.problems:
            raise StoreError(f"{report.line()}; re-run to recompute it")
        return units, records

    return _cached(store, run_id, "status", read)


_RUNINFO = pa.schema([("run_id", pa.string()), ("distribution", pa.string()), ("d", pa.int32()),
                      ("n", pa.int64()), ("params", pa.string()), ("seed_key", pa.string())])
_SHARED = pa.schema([("distribution", pa.string()), ("params", pa.string()), ("d", pa.int32()),
                     ("n", pa.int64()), ("seed_key", pa.string())])


def _runinfo(cells, records: dict, params: dict) -> tuple[pa.Table, list[tuple]]:
    """(``runinfo``: per (run, distribution, d, n) present, its ``params`` and ``seed_key``; the cells
    (distribution, params, d, n, seed_key) that two or more runs hold: their trials are one trial each)."""
    seeds = _run_seeds(records)
    nested = _nested_sizes(records)
    info = {"run_id": [], "distribution": [], "d": [], "n": [], "params": [], "seed_key": []}
    holders: dict = {}  # (distribution, params, d, n, seed_key) -> runs holding that cell
    for run, dist, d, n in cells:
        p = cell_info(dist, params.get(run) if run in params else None, d)["params"]
        seed_key = _seed_key(run, d, n, seeds, nested)
        holders.setdefault((dist, p, d, n, seed_key), set()).add(run)
        for k, v in zip(info, (run, dist, d, n, p, seed_key)):
            info[k].append(v)
    return pa.table(info, schema=_RUNINFO), [k for k, runs in holders.items() if len(runs) > 1]


def _shared_table(shared: list[tuple]) -> pa.Table:
    return pa.table([list(c) for c in zip(*shared)] if shared else [[] for _ in _SHARED], schema=_SHARED)


def connect(out, *, run_id: str | None = None, check: bool = True, columns: tuple[str, ...] | None = None):
    """A DuckDB connection over the store's verified rows (None when it holds none).

    Views: ``trials_all`` (every listed and verified row, with ``params`` and
    ``seed_key`` from its run's record) and ``trials`` (one row per trial
    identity :data:`IDENTITY`: two runs with the same seed writing the same
    cell count each trial once).  A nested run's rows at N below its largest
    size N_max come from prefixes of a training set of N_max points: their
    ``seed_key`` names N_max, so they are never merged with an ordinary run's
    trials at N or with a nested run of another N_max (at N_max itself the
    training set and queries are those of an ordinary run with the same seed).  Only units named by a manifest entry are
    read, each checked against its SHA-256, the schema and its planned row
    count; a mismatch raises StoreError in one line.

    Parameters
    ----------
    out : str or Store
        Results location (directory, URI or backend).
    run_id : str, optional
        Keep only this run's rows.
    check : bool
        Kept for compatibility: rows are always verified.
    columns : tuple of str, optional
        Decode only these trial columns (default all; the identity's and partition columns
        are always there): each unit is still verified whole.
    """
    store = ResultStore(out)
    if columns is not None:
        columns = tuple(dict.fromkeys(("run_id", "replicate", "query", *columns)))
    table, records = verified_rows(store, run_id, columns)
    if table.num_rows == 0:
        return None
    params = run_params(store.backend)
    con = duckdb.connect()
    con.register("rows_raw", table)
    with _READ_LOCK:   # the cells present depend only on the rows read: once per read
        cells = _CELLS_OF.get(id(table)) if _CELLS_OF.get("table") is table else None
    if cells is None:
        cells = con.sql("SELECT DISTINCT run_id, distribution, d, n FROM rows_raw").fetchall()
        with _READ_LOCK:
            _CELLS_OF.clear()
            _CELLS_OF.update({"table": table, id(table): cells})
    info, shared = _runinfo(cells, records, params)
    con.register("runinfo", info)
    con.execute("CREATE VIEW trials_all AS SELECT r.*, i.params, i.seed_key FROM rows_raw r "
                "JOIN runinfo i USING (run_id, distribution, d, n)")
    if not shared:  # no two runs with one seed wrote the same cell: every row is a distinct trial
        con.execute("CREATE VIEW trials AS SELECT * FROM trials_all")
        # the same per-replicate counts, aggregated over the rows before the join with runinfo
        # (a join per row of millions costs more than the count itself)
        con.execute("""CREATE VIEW replicate_counts_fast AS
            SELECT i.distribution, i.params, i.d, i.n, i.seed_key, c.replicate, sum(c.trials)::BIGINT AS trials,
                   sum(c.inside)::BIGINT AS inside, sum(c.undecided)::BIGINT AS undecided
            FROM (SELECT run_id, distribution, d, n, replicate, count(*) AS trials,
                         count(*) FILTER (WHERE inside) AS inside,
                         count(*) FILTER (WHERE inside IS NULL) AS undecided
                  FROM rows_raw GROUP BY ALL) c
            JOIN runinfo i USING (run_id, distribution, d, n) GROUP BY ALL""")
        return con
    con.register("shared_cells", _shared_table(shared))
    ident, cell = ", ".join(IDENTITY), "distribution, params, d, n, seed_key"
    con.execute(f"""CREATE VIEW trials AS
        SELECT * FROM trials_all ANTI JOIN shared_cells USING ({cell})
        UNION ALL BY NAME
        SELECT * FROM (SELECT DISTINCT ON ({ident}) t.* FROM trials_all t SEMI JOIN shared_cells USING ({cell})
                       ORDER BY {ident}, run_id)""")
    return con


def replicate_counts(con) -> pa.Table:
    """Per (distribution, params, d, n, seed_key, replicate): trials, inside, undecided (each trial once)."""
    order = "ORDER BY distribution, params, d, n, seed_key, replicate"
    if con.sql("SELECT count(*) FROM duckdb_views() WHERE view_name = 'replicate_counts_fast'").fetchall()[0][0]:
        return con.sql(f"SELECT * FROM replicate_counts_fast {order}").to_arrow_table()
    return con.sql(f"""
        SELECT distribution, params, d, n, seed_key, replicate,
               count(*) AS trials,
               count(*) FILTER (WHERE inside) AS inside,
               count(*) FILTER (WHERE inside IS NULL) AS undecided
        FROM trials GROUP BY ALL {order}
    """).to_arrow_table()


def cell_estimates(out, *, run_id: str | None = None, level: float = stats.LEVEL) -> pa.Table:
    """One row per (distribution, d, n, params): counts, p_hat, intervals, 2^(d/2)/d, exact p and z.

    ``params`` (from each run's recorded spec, defaults filled in) keeps runs
    with different distribution parameters apart; ``d`` is the ambient
    dimension, ``d_intrinsic`` and ``d_affine`` those of the distribution
    (its manifold and the smallest affine subspace holding it).  A trial is
    counted once however many runs wrote it; ``runs`` counts the runs that did.

    ``p_hat = inside / (trials - undecided)``: undecided trials are reported,
    never counted as outside.  ``z = (p_hat - exact) / se`` with the clustered
    standard error (floored at the binomial one at the exact p).

    When the store holds runs with ``measure = "distance"``, the columns of
    :data:`mc_hull.stats.distances.SUMMARY_COLUMNS` follow (:mod:`.distances`;
    null for cells without measured trials); otherwise the table is unchanged.

    Returns
    -------
    pyarrow.Table
        Columns :data:`CELL_COLUMNS` (and the distance summaries); empty when the store holds no rows.
    """
    store = ResultStore(out)
    return _cached(store, run_id, ("cells", float(level)), lambda: _cell_estimates(store, out, run_id, level))


def _cell_estimates(store: ResultStore, out, run_id: str | None, level: float) -> pa.Table:
    units, records = verified_statuses(store, run_id)
    if not units:
        return _empty()
    con = _status_connect(store, units, records)
    reps = con.sql("SELECT * FROM replicate_counts ORDER BY distribution, params, d, n, seed_key, replicate"
                   ).to_arrow_table().to_pydict()
    # runinfo holds one row per (run, cell) present: the same count as over every row
    runs = {(r[0], r[1], r[2], r[3]): r[4] for r in con.sql(
        "SELECT distribution, params, d, n, count(DISTINCT run_id) FROM runinfo GROUP BY ALL").fetchall()}
    index: dict = {}
    for i, k in enumerate(zip(reps["distribution"], reps["params"], reps["d"], reps["n"])):
        index.setdefault(k, []).append(i)
    exacts = _exact_values(sorted(index))
    rows = []
    for key in sorted(index):
        idx = index[key]
        dist, params, d, n = key
        cell = cell_info(dist, parse_params(params), int(d)) if params != "?" else cell_info(dist, None, int(d))
        trials = np.array([reps["trials"][i] for i in idx], dtype=np.float64)
        y = np.array([reps["inside"][i] for i in idx], dtype=np.float64)
        und = np.array([reps["undecided"][i] for i in idx], dtype=np.float64)
        m = trials - und
        decided = m.sum()
        p_hat = y.sum() / decided if decided else math.nan
        low, high, deff = stats.clustered_interval(y, m, level)
        wl, wh = stats.wilson(y.sum(), decided, level)
        exact = exacts.get(key)
        z = None
        if exact is not None and decided:
            se = math.sqrt(max(exact * (1 - exact), p_hat * (1 - p_hat)) * deff / decided)
            z = (p_hat - exact) / se if se > 0 else (0.0 if p_hat == exact else math.copysign(math.inf, p_hat - exact))
        rows.append({
            "distribution": dist, "d": int(d), "n": int(n), "params": params,
            "d_intrinsic": cell["d_intrinsic"], "d_affine": cell["d_affine"],
            "runs": int(runs.get(key, 1)), "replicates": len(idx),
            "trials": int(trials.sum()), "inside": int(y.sum()), "undecided": int(und.sum()),
            "p_hat": p_hat, "ci_low": low, "ci_high": high,
            "wilson_low": float(wl), "wilson_high": float(wh), "design_effect": deff,
            "bf_threshold": theory.bf_threshold(int(d)), "exact": exact, "z": z,
        })
    schema = _schema()
    dist = {}
    if _may_measure_distance(units, records):      # runs with measure = "distance" only: their rows are read
        rows_con = connect(out, run_id=run_id, columns=CELL_READ)
        dist = {} if rows_con is None else cell_distances(rows_con, IDENTITY, level)
    if dist:
        schema = pa.schema(list(schema) + summary_fields())
        blank = dict.fromkeys(SUMMARY_COLUMNS)
        for row in rows:
            row.update(dist.get((row["distribution"], row["params"], row["d"], row["n"]), blank))
    return pa.Table.from_pylist(rows, schema=schema)


def _exact_values(keys) -> dict:
    """(distribution, params, d, n) -> exact p (float) for cell keys, one call per curve (a vector of n)."""
    curves: dict = {}
    for key in keys:
        curves.setdefault(key[:3], []).append(int(key[3]))
    out = {}
    for (dist, params, d), ns in curves.items():
        p = parse_params(params) if params != "?" else None
        value = exact_p(dist, p, int(d), np.asarray(ns, dtype=np.int64))
        if value is None:
            continue
        for n, v in zip(ns, np.broadcast_to(np.asarray(value, dtype=np.float64), (len(ns),))):
            out[(dist, params, d, n)] = float(v)
    return out


def _may_measure_distance(units, records: dict) -> bool:
    """Whether a unit's run measured distance (its record says so, or it has no readable record)."""
    for run in {u.entry.run_id for u in units}:
        spec = (records.get(run) or {}).get("spec") if isinstance(records.get(run), dict) else None
        if not isinstance(spec, dict) or spec.get("measure", "membership") != "membership":
            return True
    return False


def replicate_table(units) -> pa.Table:
    """Per (run, distribution, d, n, replicate) of verified units: trials, inside, undecided.

    One pass over all units' statuses at once (a few numpy calls in all, not per unit: a store of
    thousands of units spent more in the calls than in the sums)."""
    units = [u for u in units if len(u.status)]
    types = {"run_id": pa.string(), "distribution": pa.string(), "d": pa.int32(), "n": pa.int64(),
             "replicate": pa.int32(), "trials": pa.int64(), "inside": pa.int64(), "undecided": pa.int64()}
    if not units:
        return pa.table({k: pa.array([], type=t) for k, t in types.items()})
    per_unit = np.array([len(u.counts) for u in units], dtype=np.int64)           # replicates of each unit
    counts = np.concatenate([u.counts for u in units]).astype(np.int64)            # trials of each replicate
    status = np.concatenate([u.status for u in units])
    # trials of a replicate are contiguous in its unit's status, and units follow one another
    starts = np.minimum(np.cumsum(counts) - counts, len(status) - 1)
    inside = np.add.reduceat((status == 1).astype(np.int64), starts)
    undecided = np.add.reduceat((status < 0).astype(np.int64), starts)
    # a replicate with no trial (count 0) would take the next one's first value in reduceat
    inside, undecided = np.where(counts > 0, inside, 0), np.where(counts > 0, undecided, 0)

    def per_replicate(values, type_):
        return pa.array(np.repeat(np.asarray(values, dtype=object if type_ == pa.string() else None), per_unit),
                        type=type_)

    parts = [u.entry.partition for u in units]
    return pa.table({
        "run_id": per_replicate([u.entry.run_id for u in units], pa.string()),
        "distribution": per_replicate([p["distribution"] for p in parts], pa.string()),
        "d": per_replicate(np.array([int(p["d"]) for p in parts], dtype=np.int32), pa.int32()),
        "n": per_replicate(np.array([int(p["n"]) for p in parts], dtype=np.int64), pa.int64()),
        "replicate": pa.array(np.concatenate([u.replicates for u in units]).astype(np.int32)),
        "trials": pa.array(counts), "inside": pa.array(inside), "undecided": pa.array(undecided)})


def status_rows(units) -> pa.Table:
    """One row per trial of ``units``: run_id, distribution, d, n, replicate, query, inside (null: undecided)."""
    parts = []
    for u in units:
        m, part = len(u.status), u.entry.partition
        parts.append(pa.table({
            "run_id": pa.array(np.full(m, u.entry.run_id, dtype=object), pa.string()),
            "distribution": pa.array(np.full(m, part["distribution"], dtype=object), pa.string()),
            "d": pa.array(np.full(m, int(part["d"]), dtype=np.int32)),
            "n": pa.array(np.full(m, int(part["n"]), dtype=np.int64)),
            "replicate": pa.array(u.replicate), "query": pa.array(u.query),
            "inside": pa.array(u.status == 1, mask=u.status < 0)}))
    if not parts:
        return pa.schema([("run_id", pa.string()), ("distribution", pa.string()), ("d", pa.int32()),
                          ("n", pa.int64()), ("replicate", pa.int32()), ("query", pa.int32()),
                          ("inside", pa.bool_())]).empty_table()
    return pa.concat_tables(parts)


def _status_connect(store: ResultStore, units, records: dict):
    """A DuckDB connection over verified units' statuses: ``runinfo`` as :func:`connect` makes it,
    ``shared_cells`` and ``replicate_counts`` (per distribution, params, d, n, seed_key, replicate:
    trials, inside, undecided, each trial once).  Units of cells no two runs share are summed per
    replicate in numpy; the trials of shared cells are counted once each in SQL, as :func:`connect`'s
    ``trials`` view does."""
    cells = sorted({(u.entry.run_id, u.entry.partition["distribution"], int(u.entry.partition["d"]),
                     int(u.entry.partition["n"])) for u in units})
    info, shared = _runinfo(cells, records, run_params(store.backend))
    con = duckdb.connect()
    con.register("runinfo", info)
    con.register("shared_cells", _shared_table(shared))
    cell = "distribution, params, d, n, seed_key"
    sharing = set()
    if shared:
        keyed = {(r["run_id"], r["distribution"], r["d"], r["n"]): (r["distribution"], r["params"], r["d"], r["n"],
                                                                    r["seed_key"]) for r in info.to_pylist()}
        wanted = set(shared)
        sharing = {c for c in cells if keyed[c] in wanted}
    own = [u for u in units if _cell_of(u) not in sharing]
    con.register("reps_raw", replicate_table(own))
    query = """SELECT i.distribution, i.params, i.d, i.n, i.seed_key, c.replicate,
                       sum(c.trials)::BIGINT AS trials, sum(c.inside)::BIGINT AS inside,
                       sum(c.undecided)::BIGINT AS undecided
                FROM reps_raw c JOIN runinfo i USING (run_id, distribution, d, n) GROUP BY ALL"""
    if sharing:
        con.register("shared_raw", status_rows([u for u in units if _cell_of(u) in sharing]))
        ident = ", ".join(IDENTITY)
        query += f"""
            UNION ALL
            SELECT {cell}, replicate, count(*)::BIGINT AS trials, count(*) FILTER (WHERE inside)::BIGINT AS inside,
                   count(*) FILTER (WHERE inside IS NULL)::BIGINT AS undecided
            FROM (SELECT DISTINCT ON ({ident}) r.*, i.params, i.seed_key
                  FROM shared_raw r JOIN runinfo i USING (run_id, distribution, d, n)
                  ORDER BY {ident}, run_id)
            GROUP BY ALL"""
    con.execute(f"CREATE VIEW replicate_counts AS {query}")
    return con


def run_counts(out, run_id: str | None = None) -> pa.Table:
    """Per run with verified units: ``run_id, trials, undecided`` (every row of the run; StoreError, one
    line, when a unit does not verify)."""
    units, _ = verified_statuses(ResultStore(out), run_id)
    counts: dict = {}
    for u in units:
        t, und = counts.get(u.entry.run_id, (0, 0))
        counts[u.entry.run_id] = (t + len(u.status), und + int(np.count_nonzero(u.status < 0)))
    runs = sorted(counts)
    return pa.table({"run_id": pa.array(runs, pa.string()),
                     "trials": pa.array([counts[r][0] for r in runs], pa.int64()),
                     "undecided": pa.array([counts[r][1] for r in runs], pa.int64())})


def _cell_of(u) -> tuple:
    p = u.entry.partition
    return (u.entry.run_id, p["distribution"], int(p["d"]), int(p["n"]))


def _schema() -> pa.Schema:
    types = {"distribution": pa.string(), "d": pa.int32(), "n": pa.int64(), "params": pa.string(),
             "d_intrinsic": pa.int32(), "d_affine": pa.int32(), "runs": pa.int32(),
             "replicates": pa.int64(), "trials": pa.int64(), "inside": pa.int64(),
             "undecided": pa.int64()}
    return pa.schema([(c, types.get(c, pa.float64())) for c in CELL_COLUMNS])


def _empty() -> pa.Table:
    return _schema().empty_table()


def agreement(table: pa.Table, level: float = stats.LEVEL) -> tuple[int, int]:
    """(cells with an exact value, of which outside their interval)."""
    rows = [r for r in table.to_pylist()
            if r["exact"] is not None and r["exact"] == r["exact"] and r["p_hat"] == r["p_hat"]
            and r["ci_low"] is not None and r["ci_high"] is not None]
    outside = sum(1 for r in rows if not (r["ci_low"] <= r["exact"] <= r["ci_high"]))
    return len(rows), outside


def replicate_halfwidths(out, run_id: str, distribution: str, below: int,
                         level: float = stats.LEVEL) -> dict[tuple[int, int], float]:
    """(d, n) -> 99% half-width of a run's cells from its replicates < ``below`` (adaptive stopping)."""
    con = connect(out, run_id=run_id)
    if con is None:
        return {}
    rows = con.execute(f"""
        SELECT d, n, replicate, count(*) - count(*) FILTER (WHERE inside IS NULL) AS m,
               count(*) FILTER (WHERE inside) AS y
        FROM trials WHERE distribution = ? AND replicate < {int(below)}
        GROUP BY ALL ORDER BY d, n, replicate""", [distribution]).fetchall()
    cells: dict = {}
    for d, n, _, m, y in rows:
        cells.setdefault((int(d), int(n)), ([], []))
        cells[(int(d), int(n))][0].append(y)
        cells[(int(d), int(n))][1].append(m)
    return {k: stats.halfwidth(np.array(y), np.array(m), level) for k, (y, m) in cells.items()}


def ratio_histogram(out, *, run_id: str | None = None, distribution: str | None = None, dims=None,
                    bins_per_decade: int = 4) -> pa.Table:
    """Log-binned counts of distance/nn over the outside trials, per (params, d), aggregated in DuckDB.

    Each trial identity counts once (the lowest run id that measured it), as in
    :func:`cell_distances`; distance is the certified upper bound ``distance_high``.
    Bins are ``(lo, hi]`` so that distance/nn = 1 (the nearest training point is the
    nearest hull point) falls in the top bin below 1; the ratio is capped at 1 (the
    distance to the hull never exceeds nn, but the upper bound can by a few ulps).

    Parameters
    ----------
    out : str or Store
    run_id : str, optional
        Keep only this run's rows.
    distribution : str, optional
    dims : sequence of int, optional
        Keep only these d (all when None or empty).
    bins_per_decade : int

    Returns
    -------
    pyarrow.Table
        Columns ``distribution, params, d, lo, hi, trials, share`` (``share``: the
        bin's fraction of that d's outside trials); a few rows per d, empty when
        no run measured distance.
    """
    con = connect(out, run_id=run_id)
    empty = pa.table({"distribution": pa.array([], pa.string()), "params": pa.array([], pa.string()),
                      "d": pa.array([], pa.int32()), "lo": pa.array([], pa.float64()),
                      "hi": pa.array([], pa.float64()), "trials": pa.array([], pa.int64()),
                      "share": pa.array([], pa.float64())})
    if con is None or not has_distances(con):
        return empty
    conds, params = ["distance_high IS NOT NULL", "nn_distance > 0"], []
    if distribution is not None:
        conds.append("distribution = ?")
        params.append(distribution)
    if dims:
        conds.append("list_contains(?::INTEGER[], d)")
        params.append([int(d) for d in dims])
    ident, b = ", ".join(IDENTITY), float(bins_per_decade)
    table = con.sql(f"""
        WITH t AS (SELECT DISTINCT ON ({ident}) distribution, params, d, status,
                          least(distance_high / nn_distance, 1.0) AS ratio
                   FROM trials_all WHERE {' AND '.join(conds)} ORDER BY {ident}, run_id),
             o AS (SELECT distribution, params, d, ceil(log10(ratio) * {b}) - 1 AS k FROM t
                   WHERE status = 'outside' AND ratio > 0),
             h AS (SELECT distribution, params, d, k, count(*) AS trials FROM o GROUP BY ALL)
        SELECT distribution, params, d, pow(10, k / {b}) AS lo, pow(10, (k + 1) / {b}) AS hi, trials,
               trials / sum(trials) OVER (PARTITION BY distribution, params, d) AS share
        FROM h ORDER BY distribution, params, d, lo""", params=params or None).to_arrow_table()
    return table.cast(empty.schema) if table.num_rows else empty
