"""Monte Carlo runs and hull tests on any store backend: specs, shards and test points in, verified rows out."""

from __future__ import annotations

import functools
import json
import re
import time

import numpy as np
import pyarrow as pa

from ..errors import StoreError
from .base import (DISTANCE_FIELDS, POINT_SCHEMA, POINT_SCHEMA_DISTANCE, SCHEMA, SCHEMA_DISTANCE,
                   SWEEP_SCHEMA, VARIANTS, Damaged, Entry, Forged, RunConflict, Store, Verified, check_id,
                   map_chunked, open_digest, sort_verified)
from .parquet import ParquetStore, versions


def open_store(out) -> Store:
    """The backend for ``out``: a :class:`Store` as is, else a :class:`ParquetStore` on the path or URI."""
    return out if isinstance(out, Store) else ParquetStore(str(out))


def _has_distance(columns) -> bool:
    return all(f.name in columns for f in DISTANCE_FIELDS)


#: The stored name of each status (1 inside, 0 outside, -1 undecided).
STATUS_NAMES = {1: "inside", 0: "outside", -1: "undecided"}


def status_columns(status) -> dict[str, pa.Array]:
    """``inside`` (null where undecided), ``undecided`` and ``status`` (the name) from int8 status (m,).

    The one translation of the rows' status encoding (:func:`mc_hull.jobs.trial.rows`) into stored columns.
    """
    status = np.asarray(status)
    if status.dtype.kind not in "iu":
        raise TypeError(f"status: expected int8 codes 1 / 0 / -1, got {status.dtype}")
    names = np.where(status == 1, STATUS_NAMES[1], np.where(status == 0, STATUS_NAMES[0], STATUS_NAMES[-1]))
    return {"inside": pa.array(status == 1, type=pa.bool_(), mask=status < 0),
            "undecided": pa.array(status < 0, type=pa.bool_()), "status": pa.array(names, type=pa.string())}


def to_table(columns: dict[str, np.ndarray]) -> pa.Table:
    """Arrow table in :data:`SCHEMA` from a Monte Carlo job's rows (:func:`mc_hull.jobs.trial.rows`;
    :data:`SCHEMA_DISTANCE` when they hold the distance measure's columns)."""
    schema = SCHEMA_DISTANCE if _has_distance(columns) else SCHEMA
    _refuse_uncertified(np.asarray(columns["status"]) >= 0, columns["certificate_value"])
    status = status_columns(columns["status"])
    arrays = [status[f.name] if f.name in status else pa.array(columns[f.name], type=f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _refuse_uncertified(decided: np.ndarray, certificate) -> None:
    """StoreError when a decided row has a NaN or infinite certificate: such a row is never published."""
    bad = np.asarray(decided, dtype=bool) & ~np.isfinite(np.asarray(certificate, dtype=np.float64))
    if bad.any():
        raise StoreError(f"refusing to publish {int(bad.sum())} decided rows without a finite certificate "
                         f"(first at row {int(np.flatnonzero(bad)[0])}); nothing of this unit is stored")


def _queries_between(trials: int, k: int, start: int, stop: int) -> int:
    """Queries in replicates ``start .. stop - 1`` of a cell of ``trials`` trials, K = ``k``:
    ``sum(Spec.queries_in(r, d, n) for r in range(start, stop))`` without a call per replicate
    (the last planned replicate may hold fewer; replicates beyond the planned ones hold K)."""
    planned = -(-trials // k)
    r = np.arange(start, min(stop, planned), dtype=np.int64)
    full = int(np.minimum(k, trials - r * k).sum())
    return full + k * max(0, stop - max(start, planned))


def _with_identity(columns: list[str] | None) -> list[str] | None:
    """``columns`` plus the trial identity (replicate, query) that every unit's check reads."""
    return None if columns is None else list(columns) + [c for c in ("replicate", "query") if c not in columns]


def _difference(old: dict, new: dict) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


#: A Monte Carlo shard's unit key (:attr:`mc_hull.jobs.plan.Shard.key`).
_SHARD_KEY = re.compile(r"(?P<distribution>[A-Za-z0-9_.-]+)/d=(?P<d>[0-9]+)/n=(?P<n>[0-9]+)/"
                        r"r(?P<start>[0-9]+)-(?P<stop>[0-9]+)")


def shard_key(distribution: str, d: int, n: int, start: int, stop: int) -> str:
    """The unit key of replicates ``start .. stop-1`` of cell (distribution, d, n), as :class:`mc_hull.jobs.plan.Shard`."""
    return f"{distribution}/d={d}/n={n}/r{start:07d}-{stop:07d}"


@functools.lru_cache(maxsize=1 << 16)
def parse_shard_key(key: str) -> tuple[str, int, int, int, int] | None:
    """(distribution, d, n, start, stop) of a canonical shard key, else None (memoised: a read of a store
    asks for each of its thousands of keys several times)."""
    m = _SHARD_KEY.fullmatch(key)
    if m is None:
        return None
    dist, d, n, start, stop = m["distribution"], int(m["d"]), int(m["n"]), int(m["start"]), int(m["stop"])
    return (dist, d, n, start, stop) if shard_key(dist, d, n, start, stop) == key else None


class RunPlan:
    """What the store checks a run's units against, read from its recorded spec (never rebuilt as a Spec).

    The recorded spec is the canonical dict of :meth:`mc_hull.spec.Spec.to_dict` (``dims``,
    ``sizes``, an optional ``grid`` ``{"d": [N, ...]}``, ``trials``, ``queries_per_set`` an int or a
    table ``{"d": {"N": K}}``); the plan is its cells, K per cell and trials, so the store
    counts a unit's planned rows without the spec module.  :meth:`from_record` returns None for a
    record that is not such a dict (damaged or forged), as an unreadable record was always skipped.
    """

    def __init__(self, distribution: str, cells: tuple, trials: int, k: int | dict):
        self.distribution, self.cells, self.trials, self._k = distribution, cells, trials, k
        self.cell_set = frozenset(cells)

    @classmethod
    def from_record(cls, spec: dict) -> "RunPlan | None":
        try:
            dims = [_count(d) for d in spec["dims"]]
            grid = spec.get("grid")
            per_d = ({int(d): [_count(n) for n in ns] for d, ns in grid.items()} if grid
                     else {d: [_count(n) for n in spec["sizes"]] for d in dims})
            cells = tuple((d, n) for d in dims for n in per_d[d])
            q = spec["queries_per_set"]
            k = (_count(q) if not isinstance(q, dict) else
                 {(int(d), int(n)): _count(v) for d, row in q.items() for n, v in row.items()})
            plan = cls(str(spec.get("distribution", "gaussian")), cells, _count(spec["trials"]), k)
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        return plan if isinstance(k, int) or set(k) == plan.cell_set else None

    def k_for(self, d: int, n: int) -> int | None:
        """K of cell (d, N), as :meth:`mc_hull.spec.Spec.k_for`: the one K of every cell, or the
        table's (None for a cell that the table lacks)."""
        return self._k if isinstance(self._k, int) else self._k.get((d, n))

    def queries_in(self, replicate: int, d: int, n: int) -> int:
        """Queries of training set ``replicate`` of a planned cell, as :meth:`mc_hull.spec.Spec.queries_in`."""
        k = self.k_for(d, n)
        return k if replicate >= -(-self.trials // k) else min(k, self.trials - replicate * k)


def _count(value) -> int:
    """A positive int of a recorded spec (bools and floats refused: the record is not canonical)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(value)
    return value


def unit_problem(entry: Entry, plan: RunPlan | None = None) -> str | None:
    """Why a trials entry does not name its own unit (None when it does).

    The key must be a canonical shard key; the entry's partition and replicate range
    (``meta``) must be the ones the key implies; with the run's ``plan``, the key's cell must
    be one of the plan's cells, its distribution the run's and its range non-empty.  So an
    entry copied under another key, or with its key field edited, is not counted.
    """
    parsed = parse_shard_key(entry.key)
    if parsed is None:
        return "its key is not a shard key"
    dist, d, n, start, stop = parsed
    if entry.partition != {"distribution": dist, "d": d, "n": n}:
        return f"its cell {entry.partition} is not the one its key names"
    if (entry.meta.get("start"), entry.meta.get("stop")) != (start, stop):
        return f"its replicates {entry.meta.get('start')}..{entry.meta.get('stop')} are not the ones its key names"
    if not start < stop:
        return "its key names no replicates"
    if plan is not None and (dist != plan.distribution or (d, n) not in plan.cell_set):
        return "its key names a cell that its run's plan does not have"
    return None


def identity_problem(table: pa.Table, start: int, stop: int, per_replicate) -> str | None:
    """Why a unit's (replicate, query) columns are not exactly replicates ``start..stop-1`` with
    ``per_replicate(r)`` queries each (queries 0..k-1), else None."""
    rep = table.column("replicate").to_numpy(zero_copy_only=False).astype(np.int64)
    qry = table.column("query").to_numpy(zero_copy_only=False).astype(np.int64)
    counts = np.array([per_replicate(r) for r in range(start, stop)], dtype=np.int64)
    if len(rep) != int(counts.sum()):
        return f"holds {len(rep)} trials, its key implies {int(counts.sum())}"
    want_rep = np.repeat(np.arange(start, stop, dtype=np.int64), counts)
    want_q = np.arange(len(rep)) - np.repeat(np.cumsum(counts) - counts, counts)
    if np.array_equal(rep, want_rep) and np.array_equal(qry, want_q):   # rows are written in this order
        return None
    order = np.lexsort((qry, rep))
    if not (np.array_equal(rep[order], want_rep) and np.array_equal(qry[order], want_q)):
        bad = int(np.flatnonzero((rep[order] != want_rep) | (qry[order] != want_q))[0])
        return (f"holds trial (replicate {rep[order][bad]}, query {qry[order][bad]}) where its key implies "
                f"(replicate {want_rep[bad]}, query {want_q[bad]}): the rows of another unit")
    return None


def planned_queries(spec, d: int, n: int, start: int, stop: int, k: int | None = None) -> np.ndarray:
    """Queries per replicate ``start .. stop - 1`` of cell (d, n) (int64, shape (stop - start,)):
    ``[spec.queries_in(r, d, n) for r in range(start, stop)]`` without a call per replicate
    (``k``: the cell's K when known)."""
    k = spec.k_for(d, n) if k is None else k
    r = np.arange(start, stop, dtype=np.int64)
    planned = -(-spec.trials // k)
    return np.where(r >= planned, k, np.minimum(k, spec.trials - r * k))


def _identity_status(table: pa.Table, spec, shard, status) -> np.ndarray | None:
    """The unit's status (int8) in the order of its trials' identity when its rows are exactly the trials
    its key implies (:func:`identity_problem`), else None (then the unit is published without a digest)."""
    try:
        spec.k_for(shard.d, shard.n)
    except KeyError:          # a cell its spec never planned: no digest (readers refuse the unit)
        return None
    if identity_problem(table, shard.start, shard.stop, lambda r: spec.queries_in(r, shard.d, shard.n)):
        return None

    rep = table.column("replicate").to_numpy(zero_copy_only=False)
    qry = table.column("query").to_numpy(zero_copy_only=False)
    order = np.lexsort((qry, rep))
    return np.asarray(status, dtype=np.int8)[order]


#: Log10 bins of the audit digest: per decade, and the floor below which a value falls in the floor's bin
#: (:func:`mc_hull.query.views.audit_summary` bins the same way).
AUDIT_BINS_PER_DECADE, AUDIT_FLOOR = 4, 1e-18


def log_bins(values, per_decade: int = AUDIT_BINS_PER_DECADE, floor: float = AUDIT_FLOOR) -> np.ndarray:
    """floor(log10(max(|x|, floor)) * per_decade) per value (float64, NaN where x is missing or not finite)."""
    x = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.floor(np.log10(np.maximum(np.abs(x), floor)) * per_decade)
    return np.where(np.isfinite(x), out, np.nan)


def audit_digest(columns: dict[str, np.ndarray]) -> dict:
    """The audit's counts of one unit's rows (:func:`mc_hull.jobs.trial.rows`), small enough for its entry.

    Columns (lists of equal length) per part: ``methods``: ``method, status, trials, undecided, seconds,
    rounds`` per (method, status); ``cbins`` / ``tbins``: ``status, bin, trials`` per status and log10 bin
    of ``|certificate_value|`` / ``solve_seconds`` (:func:`log_bins`; values that are missing or not
    finite are left out); with ``per_decade`` and ``floor``.
    """
    status = np.asarray(columns["status"])
    names = np.where(status == 1, STATUS_NAMES[1], np.where(status == 0, STATUS_NAMES[0], STATUS_NAMES[-1]))
    method = np.asarray(columns["method"]).astype(str)
    seconds = np.asarray(columns["solve_seconds"], dtype=np.float64)
    rounds = np.asarray(columns["rounds"], dtype=np.float64)
    methods: dict[str, list] = {k: [] for k in ("method", "status", "trials", "undecided", "seconds", "rounds")}
    pairs, inverse = np.unique(np.stack([method, names]), axis=1, return_inverse=True)
    inverse = inverse.reshape(-1)
    for j in range(pairs.shape[1]):
        sel = inverse == j
        for k, v in (("method", str(pairs[0, j])), ("status", str(pairs[1, j])), ("trials", int(sel.sum())),
                     ("undecided", int(np.count_nonzero(status[sel] < 0))), ("seconds", float(seconds[sel].sum())),
                     ("rounds", float(rounds[sel].sum()))):
            methods[k].append(v)
    out = {"per_decade": AUDIT_BINS_PER_DECADE, "floor": AUDIT_FLOOR, "methods": methods}
    for key, col in (("cbins", "certificate_value"), ("tbins", "solve_seconds")):
        bins = log_bins(columns[col])
        ok = np.isfinite(bins)
        part: dict[str, list] = {"status": [], "bin": [], "trials": []}
        for name in sorted(set(names[ok].tolist())):
            b, c = np.unique(bins[ok & (names == name)], return_counts=True)
            part["status"] += [name] * len(b)
            part["bin"] += b.tolist()
            part["trials"] += c.tolist()
        out[key] = part
    return out


def status_of(table: pa.Table) -> np.ndarray:
    """int8 status (1 inside, 0 outside, -1 undecided) of rows with an ``inside`` column (null: undecided)."""
    inside = table.column("inside")
    known = inside.is_valid().to_numpy(zero_copy_only=False)
    value = inside.fill_null(False).to_numpy(zero_copy_only=False)
    return np.where(known, value.astype(np.int8), np.int8(-1)).astype(np.int8)


class UnitStatus:
    """One verified trials unit read as its trials' identities and statuses, in identity order.

    ``replicates`` (int64, shape (R,): the unit's replicates, ascending) and ``counts`` (int64, shape
    (R,): trials of each); ``status`` (int8, shape (rows,): 1 inside, 0 outside, -1 undecided) in
    (replicate, query) order; ``replicate`` and ``query`` (int32, shape (rows,)) each trial's identity.
    ``from_digest``: read from the entry's status digest (the unit's bytes checked against the entry,
    not decoded), else decoded from the rows; ``extra``: the digest's sealed aggregates then.
    """

    __slots__ = ("entry", "replicates", "counts", "status", "from_digest", "extra", "_query")

    def __init__(self, entry: Entry, replicates, counts, status, from_digest: bool, query=None):
        self.entry, self.replicates, self.counts = entry, replicates, counts
        self.status, self.from_digest, self._query = status, from_digest, query
        #: The digest's sealed aggregates (``{}`` when read from the rows).
        self.extra = entry.digest.get("extra") or {} if from_digest else {}

    @property
    def replicate(self) -> np.ndarray:
        return np.repeat(self.replicates.astype(np.int32), self.counts)

    @property
    def query(self) -> np.ndarray:
        if self._query is None:     # queries 0 .. count - 1 of each replicate (the identity check's order)
            self._query = (np.arange(len(self.status), dtype=np.int64)
                           - np.repeat(np.cumsum(self.counts) - self.counts, self.counts)).astype(np.int32)
        return self._query


def overlaps(entries: list[Entry]) -> list[tuple[str, str]]:
    """``(what, reason)`` per trials entry whose replicates overlap an earlier entry's of the same run and cell."""
    problems, last = [], {}
    ranges = []
    for e in entries:
        parsed = parse_shard_key(e.key)
        if parsed is not None:
            ranges.append(((e.run_id, *parsed[:3]), parsed[3], parsed[4], e))
    for cell, start, stop, e in sorted(ranges, key=lambda t: (t[0], t[1], t[2])):
        prev = last.get(cell)
        if prev is not None and start < prev[0]:
            problems.append((f"manifest entry trials/{e.run_id}/{e.key}",
                             f"its replicates overlap those of {prev[1]} (a trial is counted once)"))
        if prev is None or stop > prev[0]:
            last[cell] = (stop, e.key)
    return problems


#: Seconds a refused writer waits for the record of a run claimed a moment ago (to name how it differs).
RECORD_WAIT_SECONDS = 2.0


class ResultStore:
    """Monte Carlo runs in a store: run records, one unit per shard, verified reads.

    Parameters
    ----------
    out : str or Store
        Local directory, pyarrow filesystem URI, or a store backend.
    """

    def __init__(self, out):
        self.backend = open_store(out)
        self.out = self.backend.out

    # -- runs ----------------------------------------------------------------------------
    def prepare(self) -> None:
        """Create the store if needed (StoreError, one line, when it cannot be used)."""
        self.backend.prepare()

    def exists(self) -> bool:
        return self.backend.exists()

    def runs(self) -> dict[str, dict]:
        """run_id -> run record (``{"spec": ..., "hash": ..., "versions": ...}``)."""
        return self.backend.runs()

    def _record(self, spec) -> dict:
        return {"spec": spec.to_dict(), "hash": spec.hash, "versions": versions(), "draws": spec.draws}

    def _conflict(self, spec, exc: RunConflict) -> StoreError:
        if exc.orphan:
            return StoreError(
                f"--out: {self.out} holds rows of run {exc.other} but no record of that run (was "
                f"_runs/{exc.other}.json deleted?); pass --new-run to add this run, or choose another --out")
        runs = self.runs()
        deadline = time.monotonic() + RECORD_WAIT_SECONDS
        while exc.other not in runs and time.monotonic() < deadline:
            # claimed, its record not yet written: the other writer is between its claim and its record
            time.sleep(0.05)
            runs = self.runs()
        if exc.other not in runs:
            return StoreError(
                f"--out: {self.out} holds run {exc.other}, claimed by another writer that has not recorded "
                "its spec (a different spec); pass --new-run to add this run, or choose another --out")
        other = runs.get(exc.other, {})
        diff = _difference(other.get("spec", {}) if isinstance(other, dict) else {}, spec.to_dict())
        return StoreError(
            f"--out: {self.out} holds run {exc.other} with a different spec (differs in: "
            f"{', '.join(diff) or 'unknown'}); pass --new-run to add this run, or choose another --out")

    def check_claim(self, spec, *, new_run: bool = False) -> None:
        """Raise the one-line refusal :meth:`claim_run` would give now; writes nothing but the root."""
        self.prepare()
        if new_run:
            return
        known = self.backend.claimed_runs() | set(self.runs())
        if spec.run_id in known:
            return
        if known:
            raise self._conflict(spec, RunConflict(sorted(known)[-1], orphan=False))
        orphans = [r for r in self.backend.orphans() if r != spec.run_id]
        if orphans:
            raise self._conflict(spec, RunConflict(orphans[0], orphan=True))

    def claim_run(self, spec, *, new_run: bool = False) -> bool:
        """Claim ``spec``'s run atomically and record it; True if the run is new.

        Without ``new_run`` the store must hold no other run (nor rows of a run
        whose record was deleted): of two different specs started together into
        one empty store exactly one is accepted, the other gets StoreError.
        """
        self.prepare()
        try:
            return self.backend.claim_run(spec.run_id, self._record(spec), exclusive=not new_run)
        except RunConflict as exc:
            raise self._conflict(spec, exc) from None

    def record_stats(self, run_id: str, stats: dict) -> None:
        """Replace the run's statistics document (trials, seconds, trials_per_s, finished, ...)."""
        self.backend.put_doc("stats", run_id, stats)

    def run_stats(self) -> dict[str, dict]:
        """run_id -> the statistics its runner recorded."""
        return self.backend.docs("stats")

    # -- shards --------------------------------------------------------------------------
    @staticmethod
    def _unit(shard) -> tuple[str, dict]:
        return shard.key, {"distribution": shard.distribution, "d": int(shard.d), "n": int(shard.n)}

    def write_shard(self, spec, shard, columns: dict[str, np.ndarray]) -> str:
        """Publish one shard's rows and its manifest entry; returns the unit's location."""
        table = to_table(columns).replace_schema_metadata({
            "mc_hull.spec": spec.to_json(), "mc_hull.spec_hash": spec.hash, "mc_hull.shard": shard.key,
            "mc_hull.versions": json.dumps(versions(), sort_keys=True)})
        key, partition = self._unit(shard)
        entry = self.backend.publish("trials", spec.run_id, key, table, partition=partition,
                                     meta={"start": int(shard.start), "stop": int(shard.stop)},
                                     status=_identity_status(table, spec, shard, columns["status"]),
                                     extra={"audit": audit_digest(columns)})
        return entry.location

    def committed(self, spec, shards) -> tuple[set, list[str]]:
        """Shards of ``spec`` committed intact (manifest entry verified, planned row count), and
        one line per damaged unit found (its entry removed, its file moved aside)."""
        by_key = {s.key: s for s in shards}
        plan = RunPlan.from_record(spec.to_dict())
        dropped = []
        for e in self.backend.entries("trials", spec.run_id):   # entries that name no unit of the plan
            why = unit_problem(e, plan)
            if why is not None:
                self.backend.forget("trials", spec.run_id, e.key)
                dropped.append(f"manifest entry trials/{spec.run_id}/{e.key} ({why}; entry removed)")
        done, damaged = self.backend.committed("trials", spec.run_id, {k: s.trials(spec) for k, s in by_key.items()},
                                               check=self._checker({spec.run_id: plan}))
        return {by_key[k] for k in done}, dropped + damaged

    def units(self, run_id: str | None = None):
        """Manifest entries of the Monte Carlo shards (unverified)."""
        return self.backend.entries("trials", run_id)

    def _plans(self) -> dict[str, RunPlan]:
        """run_id -> the plan of every run whose recorded spec reads as one (:class:`RunPlan`)."""
        plans = {}
        for run_id, record in self.runs().items():
            plan = RunPlan.from_record(record.get("spec")) if isinstance(record, dict) else None
            if plan is not None:
                plans[run_id] = plan
        return plans

    def _expected(self, plans: dict[str, RunPlan], entries: list[Entry] | None = None) -> dict[tuple[str, str], int]:
        """(run_id, key) -> planned rows, from the key, for every entry (of ``entries``, default all
        listed) of a recorded run."""
        out = {}
        for e in (self.units() if entries is None else entries):
            plan, parsed = plans.get(e.run_id), parse_shard_key(e.key)
            if plan is not None and parsed is not None:
                _, d, n, start, stop = parsed
                k = plan.k_for(d, n)   # a unit of a cell the K table lacks was never planned: 0 rows
                out[(e.run_id, e.key)] = 0 if k is None else _queries_between(plan.trials, k, start, stop)
        return out

    @staticmethod
    def _checker(plans: dict[str, RunPlan]):
        """``check(entry, table)`` for the backend: the entry names its own unit and the rows are the
        trials its key implies (raises :class:`Forged` or :class:`Damaged`)."""
        def check(entry: Entry, table: pa.Table) -> None:
            plan = plans.get(entry.run_id)
            why = unit_problem(entry, plan)
            if why is not None:
                raise Forged(why)
            _, d, n, start, stop = parse_shard_key(entry.key)
            if plan is not None:
                why = identity_problem(table, start, stop, lambda r: plan.queries_in(r, d, n))
                if why is not None:
                    raise Damaged(why)
        return check

    def _verified(self, run_id: str | None, columns: list[str] | None = None):
        plans = self._plans()
        report, tables = self.backend.verify("trials", run_id, self._expected(plans), self._checker(plans),
                                             _with_identity(columns))
        report.problems.extend(overlaps(report.ok))     # a trial is counted once within a run too
        return report, tables

    def verify(self, run_id: str | None = None) -> Verified:
        """Check every listed shard (bytes, schema, rows as planned, the trials its key names); the report."""
        return self._verified(run_id)[0]

    def trials(self, run_id: str | None = None, columns: list[str] | None = None) -> pa.Table:
        """Every verified trial row (columns of :data:`SCHEMA` plus distribution, d, n).

        ``columns``: decode only these of :data:`SCHEMA` (and the distance columns) where a unit
        has them; every unit is still checked whole against its manifest entry.  Raises
        StoreError naming the first unit that does not match its manifest entry, the schema or
        its planned row count.
        """
        if run_id is not None:
            check_id(run_id)
        report, tables = self._verified(run_id, columns)
        if report.problems:
            raise StoreError(f"{report.line()}; re-run to recompute it")
        table = self.backend.assemble("trials", report.ok, tables, _with_identity(columns))
        if columns is not None:     # the identity columns were read for the check only
            table = table.drop_columns([c for c in ("replicate", "query") if c not in columns])
        return table

    def statuses(self, run_id: str | None = None, *, digests: bool = True) -> tuple[Verified, list[UnitStatus]]:
        """Every listed trials unit, verified, as its trials' identities and statuses (:class:`UnitStatus`).

        Each entry is checked as :meth:`verify` checks it (its key names its own unit in its run's
        plan, its planned row count, the unit's size and SHA-256 against the entry, no replicate
        counted twice within a run).  A unit whose entry carries a status digest that opens
        (:func:`mc_hull.store.base.open_digest`: sealed to this entry's key, size, SHA-256 and row
        count) is read from the digest, its bytes hashed but not decoded; any other unit (a store
        written before digests, a digest damaged or copied, a run without a readable record) is
        decoded (``replicate``, ``query``, ``inside``) and its rows checked against the trials its
        key implies, as :meth:`trials` does.  ``digests=False`` decodes every unit.

        Returns
        -------
        (Verified, list of UnitStatus)
            The report (problems as :meth:`verify` names them) and the intact units.
        """
        if run_id is not None:
            check_id(run_id)
        plans = self._plans()
        entries, problems = self.backend._entries("trials", run_id)
        expected = self._expected(plans, entries)
        check = self._checker(plans)
        report = Verified(problems=[(w, r) for w, r, _, _ in problems])

        def one(entry: Entry):
            try:
                want = expected.get((entry.run_id, entry.key))
                if want is not None and entry.rows != want:
                    raise Damaged(f"holds {entry.rows} rows, {want} planned")
                plan = plans.get(entry.run_id)
                why = unit_problem(entry, plan)
                if why is not None:
                    raise Forged(why)
                status = open_digest(entry) if digests and plan is not None and want is not None else None
                if status is not None:
                    self.backend.check_bytes(entry)
                    _, d, n, start, stop = parse_shard_key(entry.key)
                    counts = planned_queries(plan, d, n, start, stop)
                    return UnitStatus(entry, np.arange(start, stop, dtype=np.int64), counts, status, True)
                table = self.backend.load(entry, ["replicate", "query", "inside"])
                check(entry, table)
                rep = table.column("replicate").to_numpy(zero_copy_only=False).astype(np.int32)
                qry = table.column("query").to_numpy(zero_copy_only=False).astype(np.int32)
                order = np.lexsort((qry, rep))
                reps, counts = np.unique(rep, return_counts=True)
                return UnitStatus(entry, reps.astype(np.int64), counts.astype(np.int64), status_of(table)[order],
                                  False, qry[order])
            except Damaged as exc:
                return exc

        units = sort_verified(entries, self._map_units(one, entries, digests), report, self.backend.where)
        report.problems.extend(overlaps(report.ok))
        return report, units

    def _map_units(self, one, entries: list, digests: bool) -> list:
        """``[one(e) for e in entries]``: on a local store, the entries with a digest in this thread and the
        others (decoded) on the reader threads; on an object store, every one on the threads.

        A unit read from its digest is mostly Python work under the GIL (its seal, two bit planes, a
        file read and hashed), so threads only add switching: on 2,640 such units (5 million trials)
        eight threads took 0.66 s of CPU for 0.55 s, one thread 0.34 s for 0.34 s.  An object store's
        requests are latency, which the threads overlap.
        """
        if not digests or not getattr(self.backend, "local", False):
            return map_chunked(one, entries)
        out = [None] * len(entries)
        rest = [i for i, e in enumerate(entries) if not e.digest]
        for i, entry in enumerate(entries):
            if entry.digest:
                out[i] = one(entry)
        for i, value in zip(rest, map_chunked(one, [entries[i] for i in rest])):
            out[i] = value
        return out

    def check_digests(self, run_id: str | None = None) -> list[tuple[str, str]]:
        """``(what, reason)`` per unit whose status digest opens but disagrees with its decoded rows.

        A digest is sealed to its entry, so a damaged or copied digest does not open and its
        unit is read from its rows; one rewritten together with its seal is found here, by
        decoding every unit (what :meth:`statuses` spares a reader).
        """
        _, fast = self.statuses(run_id)
        _, slow = self.statuses(run_id, digests=False)
        rows = {(u.entry.run_id, u.entry.key): u for u in slow}
        out = []
        for u in fast:
            other = rows.get((u.entry.run_id, u.entry.key))
            if u.from_digest and other is not None and not (
                    np.array_equal(u.replicate, other.replicate) and np.array_equal(u.query, other.query)
                    and np.array_equal(u.status, other.status)):
                out.append((f"manifest entry trials/{u.entry.run_id}/{u.entry.key}",
                            "its status digest differs from the unit's rows (a forged digest)"))
        return out

    def fingerprint(self) -> tuple:
        return self.backend.fingerprint()


class HullTestStore:
    """Hull tests in a store: per-point rows (one unit per shard of test points), records and sweeps.

    Ids are hashes of the inputs, so a re-run overwrites or skips, never duplicates.

    Parameters
    ----------
    out : str or Store
        Local directory, URI or backend (the same root as a results store).
    """

    def __init__(self, out):
        self.backend = open_store(out)
        self.out = self.backend.out

    def prepare(self) -> None:
        """Create the output root if needed (StoreError if it is unusable)."""
        self.backend.prepare()

    # -- per-point rows ------------------------------------------------------------------
    @staticmethod
    def _key(start: int, stop: int) -> str:
        return f"{int(start):09d}-{int(stop):09d}"

    def write_points(self, test_id: str, start: int, stop: int, columns: dict[str, np.ndarray]) -> str:
        """Publish the rows of test points ``start..stop``; returns the unit's location.

        ``columns`` holds arrays of shape (stop - start,): ``status`` (int8: 1 inside,
        0 outside, -1 undecided), ``certificate_value`` and ``method``.
        """
        _refuse_uncertified(np.asarray(columns["status"]) >= 0, columns["certificate_value"])
        status = status_columns(columns["status"])
        arrays = [
            pa.array(np.arange(start, stop, dtype=np.int64)), status["inside"], status["undecided"], status["status"],
            pa.array(np.asarray(columns["certificate_value"], dtype=np.float64)),
            pa.array(np.asarray(columns["method"], dtype=str)),
        ]
        schema = POINT_SCHEMA
        if _has_distance(columns):     # hull-test --measure distance
            schema = POINT_SCHEMA_DISTANCE
            arrays += [pa.array(np.asarray(columns[f.name], dtype=np.float64)) for f in DISTANCE_FIELDS]
        table = pa.Table.from_arrays(arrays, schema=schema).replace_schema_metadata({
            "mc_hull.test_id": test_id, "mc_hull.points": f"{start}-{stop}"})
        return self.backend.publish("points", test_id, self._key(start, stop), table).location

    def committed_points(self, test_id: str, ranges: list[tuple[int, int]]) -> set[tuple[int, int]]:
        """Ranges whose unit is listed, verifies and holds ``stop - start`` rows (damaged ones moved aside)."""
        want = {self._key(a, b): (a, b) for a, b in ranges}
        done, _ = self.backend.committed("points", test_id, {k: b - a for k, (a, b) in want.items()})
        return {want[k] for k in done}

    def points(self, test_id: str) -> pa.Table:
        """Every per-point row of ``test_id``, verified, sorted by index."""
        table = self.backend.read("points", test_id)
        return table.sort_by("index").replace_schema_metadata(None)

    # -- records -------------------------------------------------------------------------
    def write_record(self, test_id: str, record: dict) -> None:
        self.backend.put_doc("hulltests", test_id, {**record, "versions": versions()})

    def records(self) -> dict[str, dict]:
        """test_id -> record of every finished hull test."""
        return self.backend.docs("hulltests")

    # -- sweeps --------------------------------------------------------------------------
    def write_sweep(self, sweep_id: str, table: pa.Table, record: dict) -> str:
        """Publish a sweep table (SWEEP_SCHEMA) with ``record`` in its manifest entry and file metadata."""
        meta = {"mc_hull.sweep_id": sweep_id, "mc_hull.sweep": json.dumps(record, sort_keys=True),
                "mc_hull.versions": json.dumps(versions(), sort_keys=True)}
        wide = VARIANTS["sweeps"][1]
        table = table.cast(wide if table.schema.names == wide.names else SWEEP_SCHEMA).replace_schema_metadata(meta)
        return self.backend.publish("sweeps", sweep_id, "table", table, meta={"record": record}).location

    def sweeps(self) -> list[tuple[str, dict]]:
        """``(sweep_id, record)`` of every listed sweep (unverified listing)."""
        return [(e.run_id, dict(e.meta.get("record") or {})) for e in self.backend.entries("sweeps")]

    def sweep(self, sweep_id: str) -> pa.Table:
        """One sweep's rows, verified (StoreError naming a mismatch)."""
        return self.backend.read("sweeps", check_id(sweep_id, "sweep id")).replace_schema_metadata(None)

    def fingerprint(self) -> tuple:
        return self.backend.fingerprint()

