"""The store contract: run claims, units published atomically with a manifest entry each, verified reads.

A *unit* is one keyed piece of work's rows (a Monte Carlo shard, a range of
hull-test points, a sweep table) of one *kind* (``trials``, ``points``,
``sweeps``), belonging to one *run* (a run id, a hull-test id, a sweep id).
Publishing a unit writes its rows, then a manifest entry naming the unit, its
row count and the SHA-256 of the stored bytes.  Readers and the resume check
look only at manifest entries and verify each against the stored bytes and the
kind's schema, so stray files, partial writes and damage are never counted.

Backends implement the small set of abstract primitives below (bytes of units,
entries, documents, exclusive creation); everything else is shared here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa

from ..errors import StoreError

#: One row per Monte Carlo trial (the partition columns distribution, d, n are added on read).
SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("replicate", pa.int32()),
    ("query", pa.int32()),
    ("inside", pa.bool_()),
    ("status", pa.string()),
    ("method", pa.string()),
    ("certificate_value", pa.float64()),
    ("solve_seconds", pa.float64()),
    ("rounds", pa.int32()),
])
#: Partition columns of a trials unit, from its manifest entry.
PARTITION_SCHEMA = pa.schema([("distribution", pa.string()), ("d", pa.int32()), ("n", pa.int64())])
#: One row per test point of a hull test.
POINT_SCHEMA = pa.schema([
    ("index", pa.int64()),                # row of the test array
    ("inside", pa.bool_()),               # null when undecided
    ("undecided", pa.bool_()),
    ("status", pa.string()),              # inside | outside | undecided
    ("certificate_value", pa.float64()),  # inside: l-inf residual, outside: margin (both / data scale)
    ("method", pa.string()),
])
#: One row per (reduction, K) of a sweep (``--preset paper-digits``).
SWEEP_SCHEMA = pa.schema([
    ("reduction", pa.string()), ("K", pa.int32()), ("dims", pa.int32()), ("n_train", pa.int64()),
    ("n_test", pa.int64()), ("inside", pa.int64()), ("undecided", pa.int64()), ("fraction", pa.float64()),
    ("ci_low", pa.float64()), ("ci_high", pa.float64()), ("seconds", pa.float64()), ("test_id", pa.string()),
])
#: Columns a trial or test point gains with ``measure = "distance"`` (:func:`mc_hull.hull_distance`).
DISTANCE_FIELDS = [pa.field("distance_low", pa.float64()), pa.field("distance_high", pa.float64()),
                   pa.field("nn_distance", pa.float64())]
#: Columns a sweep row gains with the distance measure (:func:`mc_hull.runs.hulltest.distance_summary`).
SWEEP_DISTANCE_FIELDS = [pa.field("outside_measured", pa.int64())] + [
    pa.field(name, pa.float64()) for name in ("dist_nn_q10", "dist_nn_q25", "dist_nn_q50", "dist_nn_q75",
                                              "dist_nn_q90", "p_near_1pct", "p_near_10pct")]
SCHEMA_DISTANCE = pa.schema(list(SCHEMA) + DISTANCE_FIELDS)
POINT_SCHEMA_DISTANCE = pa.schema(list(POINT_SCHEMA) + DISTANCE_FIELDS)
SWEEP_SCHEMA_DISTANCE = pa.schema(list(SWEEP_SCHEMA) + SWEEP_DISTANCE_FIELDS)
#: kind -> (row schema, partition schema or None).
#: Re-checks a publisher makes of its unit's stored bytes and entry (see ``Store._settle``).
SETTLE_ROUNDS = 8
KINDS = {"trials": (SCHEMA, PARTITION_SCHEMA), "points": (POINT_SCHEMA, None), "sweeps": (SWEEP_SCHEMA, None)}
#: kind -> the row schemas a unit may have: the kind's own, or it with the distance columns (never
#: anything else: a unit of membership rows stays exactly in the kind's schema).
VARIANTS = {"trials": (SCHEMA, SCHEMA_DISTANCE), "points": (POINT_SCHEMA, POINT_SCHEMA_DISTANCE),
            "sweeps": (SWEEP_SCHEMA, SWEEP_SCHEMA_DISTANCE)}


def sweep_schema(measure: str = "membership") -> pa.Schema:
    """The sweep row schema of a measure."""
    return SWEEP_SCHEMA_DISTANCE if measure == "distance" else SWEEP_SCHEMA


def _variant(kind: str, schema: pa.Schema) -> pa.Schema | None:
    """The allowed row schema ``schema`` equals (metadata aside), else None."""
    for allowed in VARIANTS[kind]:
        if schema.equals(allowed, check_metadata=False):
            return allowed
    return None
#: Document collections (small JSON bodies, replaced atomically): run records, run statistics, hull-test
#: records, and progress records (what a runner has done so far: never data, never in the fingerprint).
DOCS = ("runs", "stats", "hulltests", "progress")

_ID = re.compile(r"[0-9a-f]{1,64}")
_KEY = re.compile(r"[A-Za-z0-9_.=-]+(/[A-Za-z0-9_.=-]+)*")


def check_id(run_id: str, what: str = "run id") -> str:
    """``run_id`` if it is 1-64 lowercase hex digits, else StoreError."""
    if not isinstance(run_id, str) or not _ID.fullmatch(run_id):
        raise StoreError(f"not a {what} (hex digits): {run_id!r}")
    return run_id


def check_key(key: str) -> str:
    """``key`` if it is a safe relative unit key (no ``..``, no empty parts), else StoreError."""
    if not isinstance(key, str) or not _KEY.fullmatch(key) or any(p in (".", "..") for p in key.split("/")):
        raise StoreError(f"not a unit key: {key!r}")
    return key


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Entry:
    """A manifest entry: one committed unit.

    ``location`` is the backend's name for the stored bytes (a path for
    Parquet), ``rows`` the row count, ``sha256``/``size`` those of the bytes.
    ``partition`` holds the partition values of a trials unit, ``meta`` small
    JSON data published with the unit (a sweep's record, a shard's replicates).
    """

    kind: str
    run_id: str
    key: str
    location: str
    rows: int
    size: int
    sha256: str
    partition: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    #: The unit's status digest (:func:`make_digest`), ``{}`` when it has none (units of other kinds,
    #: stores written before digests, an entry rewritten by :meth:`Store._settle`).
    digest: dict = field(default_factory=dict)

    def to_json(self) -> bytes:
        body = {"kind": self.kind, "run_id": self.run_id, "key": self.key, "location": self.location,
                "rows": self.rows, "size": self.size, "sha256": self.sha256,
                "partition": self.partition, "meta": self.meta}
        if self.digest:
            body["digest"] = self.digest
        return json.dumps(body, sort_keys=True).encode()

    @classmethod
    def from_json(cls, body: bytes) -> "Entry":
        data = json.loads(body.decode())
        digest = data.get("digest")
        return cls(kind=str(data["kind"]), run_id=str(data["run_id"]), key=str(data["key"]),
                   location=str(data["location"]), rows=int(data["rows"]), size=int(data["size"]),
                   sha256=str(data["sha256"]), partition=dict(data.get("partition") or {}),
                   meta=dict(data.get("meta") or {}), digest=digest if isinstance(digest, dict) else {})


#: Version of the status digest's encoding (a digest of another version is not read).
DIGEST_VERSION = 1


def _digest_seal(entry: "Entry", inside: str, undecided: str, extra: dict) -> str:
    """SHA-256 binding a digest to its entry: kind, run, key, the unit's size, SHA-256 and row count."""
    body = json.dumps([DIGEST_VERSION, entry.kind, entry.run_id, entry.key, entry.size, entry.sha256, entry.rows,
                       inside, undecided, extra], separators=(",", ":"), sort_keys=True)
    return sha256(body.encode())


def make_digest(entry: "Entry", status, extra: dict | None = None) -> dict:
    """The status digest of a unit: its trials' status in the order of their identity, bound to the entry.

    Parameters
    ----------
    entry : Entry
        The unit's entry (its size, SHA-256 and row count are sealed into the digest).
    status : array_like of int8, shape (rows,)
        1 inside, 0 outside, -1 undecided, one per trial in (replicate, query) order.

    Returns
    -------
    dict
        ``v``, ``inside`` and ``undecided`` (bit planes, ``numpy.packbits``, base64), ``extra`` (small
        JSON aggregates of the unit's other columns, e.g. the audit's counts) and ``seal`` (SHA-256 over
        the entry's kind, run, key, size, SHA-256, rows, both planes and ``extra``): a digest copied to
        another entry, or one whose entry or unit changed, does not open (:func:`open_digest`).
    """
    status = np.asarray(status)
    if status.shape != (entry.rows,):
        raise ValueError(f"status: expected shape ({entry.rows},), got {status.shape}")
    extra = json.loads(json.dumps(extra or {}))     # what a reader will parse back (tuples become lists)
    inside = base64.b64encode(np.packbits(status == 1).tobytes()).decode()
    undecided = base64.b64encode(np.packbits(status < 0).tobytes()).decode()
    return {"v": DIGEST_VERSION, "inside": inside, "undecided": undecided, "extra": extra,
            "seal": _digest_seal(entry, inside, undecided, extra)}


def digest_extra(entry: "Entry") -> dict | None:
    """The ``extra`` aggregates of an entry's digest when the digest opens (:func:`open_digest`), else None."""
    return None if open_digest(entry) is None else entry.digest.get("extra")


def open_digest(entry: "Entry") -> np.ndarray | None:
    """The status (int8, shape (rows,): 1 / 0 / -1) an entry's digest holds, or None when it has none or
    the digest does not open (another version, malformed, its seal not this entry's: copied, damaged).

    A digest speaks for the unit only together with the unit's bytes: a reader checks the bytes' size and
    SHA-256 against the entry (:meth:`Store.check_bytes`) before using it.
    """
    d = entry.digest
    if not d:
        return None
    try:
        if d.get("v") != DIGEST_VERSION:
            return None
        inside, undecided, extra = str(d["inside"]), str(d["undecided"]), d.get("extra", {})
        if not isinstance(extra, dict) or d.get("seal") != _digest_seal(entry, inside, undecided, extra):
            return None
        a = np.unpackbits(np.frombuffer(base64.b64decode(inside, validate=True), dtype=np.uint8))
        b = np.unpackbits(np.frombuffer(base64.b64decode(undecided, validate=True), dtype=np.uint8))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    nbytes = -(-entry.rows // 8) * 8
    if a.size != nbytes or b.size != nbytes or a[entry.rows:].any() or b[entry.rows:].any():
        return None
    a, b = a[:entry.rows], b[:entry.rows]
    if (a & b).any():
        return None
    return (a.astype(np.int8) - b.astype(np.int8))


#: Parsed manifest entries by their bytes (a process-wide memo: readers list the manifest several times
#: per page; an entry is immutable, and changed bytes are parsed again).
_PARSED: dict[bytes, "Entry"] = {}
PARSED_CACHE = 500_000


class Damaged(Exception):
    """A manifest entry whose stored unit does not match it (the message says how)."""


class Forged(Damaged):
    """A manifest entry that does not name its own unit (its key, cell or rows belong elsewhere).

    Its entry is removed on resume, but the bytes it points at are left alone: they may be
    another entry's intact unit.
    """


@dataclass
class Verified:
    """What a verification pass found: intact entries and ``(what, reason)`` for every problem."""

    ok: list[Entry] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)

    def line(self) -> str | None:
        """The first problem as one line (with the count), or None."""
        if not self.problems:
            return None
        what, why = self.problems[0]
        more = f" ({len(self.problems)} in all)" if len(self.problems) > 1 else ""
        return f"{what}: {why}{more}"


class RunConflict(StoreError):
    """Claiming a run exclusively found another run (``other``) or its rows without a record (``orphan``)."""

    def __init__(self, other: str, orphan: bool):
        self.other, self.orphan = other, orphan
        super().__init__(f"another run {other}" + (" (rows without a run record)" if orphan else ""))


#: What :meth:`Store.claimed` gives for a claim slot whose body is not a claim (empty, damaged).
UNREADABLE = "?"
#: Threads that read and verify units at once.
READ_THREADS = 8


def map_chunked(fn, items: list, threads: int | None = None) -> list:
    """``[fn(x) for x in items]`` on up to ``threads`` (default :data:`READ_THREADS`) threads, each taking
    one contiguous slice of ``items``.

    Reading, hashing and decoding release the GIL, so a few threads overlap I/O (object stores) and
    CPU; one task per slice rather than per item spares a future, a lock and a thread switch per unit
    (on a store of thousands of units that bookkeeping cost more than the reads).
    """
    items = list(items)
    threads = max(1, min(READ_THREADS if threads is None else threads, len(items)))
    if threads == 1:
        return [fn(x) for x in items]
    step = -(-len(items) // threads)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        parts = pool.map(lambda i: [fn(x) for x in items[i:i + step]], range(0, len(items), step))
        return [y for part in parts for y in part]


#: Tries of the claim loop before giving up, and the pause between contended tries (seconds).
CLAIM_TRIES, CLAIM_PAUSE = 400, (0.005, 0.05)


class Store:
    """Base class of the backends: shared logic over a few abstract primitives.

    Subclasses implement ``_put_unit``, ``_get_unit``, ``_drop_unit``, ``_put_entry``,
    ``_list_entries``, ``_drop_entry``, ``_put_doc``, ``_docs``, ``_create_exclusive``,
    ``_slots``, ``_unit_runs`` and ``prepare``.
    """

    #: A short description of where the store lives (for messages).
    out: str = "?"

    # -- primitives (backends) ---------------------------------------------------------
    def prepare(self) -> None:
        """Create the store if needed; StoreError (one line) when it cannot be used."""
        raise NotImplementedError

    def _put_unit(self, kind: str, run_id: str, key: str, table: pa.Table, partition: dict,
                  meta: dict) -> tuple[str, int, str]:
        """Store a unit's rows atomically; (location, size, sha256 of the stored bytes)."""
        raise NotImplementedError

    def _get_unit(self, entry: Entry) -> pa.Table:
        """The unit's rows after checking size, hash and schema against ``entry``; raises Damaged."""
        raise NotImplementedError

    def _drop_unit(self, entry: Entry) -> str | None:
        """Move the unit's bytes aside where no reader looks; the new location (None if absent)."""
        raise NotImplementedError

    def _put_entry(self, entry: Entry) -> None:
        raise NotImplementedError

    def _get_entry(self, kind: str, run_id: str, key: str) -> Entry | None:
        """The stored entry of one unit (None if absent or malformed)."""
        raise NotImplementedError

    def _unit_bytes(self, location: str) -> bytes | None:
        """The bytes stored at a unit's location (None if absent)."""
        raise NotImplementedError

    def _list_entries(self, kind: str, run_id: str | None) -> list[tuple[str, str, bytes | None]]:
        """``(run_id of the manifest, key of the entry name, body or None if unreadable)`` per entry."""
        raise NotImplementedError

    def _drop_entry(self, kind: str, run_id: str, key: str) -> None:
        raise NotImplementedError

    def _put_doc(self, collection: str, name: str, body: bytes) -> None:
        raise NotImplementedError

    def _docs(self, collection: str) -> dict[str, bytes]:
        raise NotImplementedError

    def _create_exclusive(self, slot: int, body: bytes) -> bool:
        """Create claim slot ``slot`` with ``body`` unless it exists: True if this call created it."""
        raise NotImplementedError

    def _slots(self) -> dict[int, bytes | None]:
        """slot -> body of every claim slot (None while a claim is being decided)."""
        raise NotImplementedError

    def _unit_runs(self) -> set[str]:
        """Run ids that have manifest entries or trials units stored (for the orphan check)."""
        raise NotImplementedError

    def where(self, location: str) -> str:
        """A location as users see it (an absolute path or object key)."""
        return location

    def fingerprint(self) -> tuple:
        """A cheap value that changes when an entry, run record or statistics document lands."""
        raise NotImplementedError

    def exists(self) -> bool:
        """Whether the store's root exists (False before anything was written)."""
        raise NotImplementedError

    # -- documents -----------------------------------------------------------------------
    def put_doc(self, collection: str, name: str, doc: dict) -> None:
        """Replace document ``name`` of ``collection`` (one of :data:`DOCS`) atomically."""
        if collection not in DOCS:
            raise ValueError(f"not a document collection: {collection!r}")
        self._put_doc(collection, check_id(name), json.dumps(doc, indent=2, sort_keys=True).encode())

    def docs(self, collection: str) -> dict[str, dict]:
        """name -> parsed body of every document of ``collection`` (unparsable ones skipped)."""
        out = {}
        for name, body in self._docs(collection).items():
            try:
                doc = json.loads(body.decode())
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(doc, dict):
                out[name] = doc
        return out

    # -- runs ----------------------------------------------------------------------------
    def runs(self) -> dict[str, dict]:
        """run_id -> run record of every recorded run."""
        return self.docs("runs")

    def claimed(self) -> dict[int, str | None]:
        """slot -> run id of every claim (None while undecided, :data:`UNREADABLE` for a damaged slot:
        empty or not a claim, e.g. after a crash or a full disk; it names no run and blocks none)."""
        out = {}
        for slot, body in self._slots().items():
            try:
                out[slot] = None if body is None else str(json.loads(body.decode())["run_id"])
            except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
                out[slot] = UNREADABLE
        return out

    def claimed_runs(self) -> set[str]:
        """Run ids that hold a readable claim slot."""
        return {r for r in self.claimed().values() if r and r != UNREADABLE}

    def orphans(self) -> list[str]:
        """Run ids with manifest entries or stored units but neither a claim nor a record."""
        known = self.claimed_runs() | set(self.runs())
        return sorted(self._unit_runs() - known)

    def claim_run(self, run_id: str, record: dict, *, exclusive: bool) -> bool:
        """Claim ``run_id`` and write its record; True if this call added the run.

        Claims take numbered slots, each created exclusively (first writer
        wins).  With ``exclusive`` the run must be the only one in the store:
        another claimed or recorded run, or units/manifest entries of a run
        without a record (its record deleted), raise :class:`RunConflict`.
        Claiming an already claimed run id (a resume) rewrites a missing record.
        """
        check_id(run_id)
        body = json.dumps({"run_id": run_id}).encode()
        for _ in range(CLAIM_TRIES):
            slots = self.claimed()
            if None in slots.values():  # a claim is being decided: look again shortly
                time.sleep(random.uniform(*CLAIM_PAUSE))
                continue
            records = self.runs()
            if run_id in slots.values():
                if run_id not in records:
                    self.put_doc("runs", run_id, record)
                return False
            known = {r for r in slots.values() if r and r != UNREADABLE} | set(records)
            if exclusive:
                others = sorted(known - {run_id})
                if others:
                    raise RunConflict(others[-1], orphan=False)
                orphans = sorted(self._unit_runs() - known - {run_id})
                if orphans:
                    raise RunConflict(orphans[0], orphan=True)
            slot = max(slots, default=-1) + 1
            if self._create_exclusive(slot, body):
                self.put_doc("runs", run_id, record)
                return True
            time.sleep(random.uniform(*CLAIM_PAUSE))
        raise StoreError(f"--out: could not claim run {run_id} in {self.out} (too many concurrent writers)")

    # -- units ---------------------------------------------------------------------------
    def publish(self, kind: str, run_id: str, key: str, table: pa.Table, *, partition: dict | None = None,
                meta: dict | None = None, status=None, extra: dict | None = None) -> Entry:
        """Store a unit's rows atomically, then its manifest entry; returns the entry.

        A re-publish of the same (kind, run, key) replaces both.  ``table`` must
        have exactly the kind's schema (names and types).  ``status`` (int8, shape (rows,),
        the trials' status in identity order) adds a status digest to the entry (:func:`make_digest`),
        sealing ``extra`` (small JSON aggregates of the rows) with it.
        """
        schema, part_schema = _kind(kind)
        check_id(run_id)
        check_key(key)
        if _variant(kind, table.schema) is None:
            raise StoreError(f"unit {kind}/{run_id}/{key}: rows do not have the {kind} schema")
        partition = dict(partition or {})
        if part_schema is not None and sorted(partition) != sorted(part_schema.names):
            raise StoreError(f"unit {kind}/{run_id}/{key}: partition must give {part_schema.names}")
        meta = dict(meta or {})
        location, size, digest = self._put_unit(kind, run_id, key, table, partition, meta)
        entry = Entry(kind=kind, run_id=run_id, key=key, location=location, rows=table.num_rows, size=size,
                      sha256=digest, partition=partition, meta=meta)
        if status is not None:
            entry = replace(entry, digest=make_digest(entry, status, extra))
        self._put_entry(entry)  # after the data: an entry always names bytes already stored
        return self._settle(entry)

    def _settle(self, entry: Entry) -> Entry:
        """Leave the unit's entry naming the bytes now stored, when another publisher raced this one.

        Two processes publishing the same unit (the same spec started twice) write equal rows
        but different bytes (timings differ), and their data and entry writes can interleave
        (A's file, B's file, B's entry, A's entry).  Each publisher therefore re-reads what is
        stored after writing its entry; if the two disagree and the stored bytes are a whole,
        well-formed unit of this kind with the entry's row count, the entry is rewritten to name
        them.  Each publisher's last action is a check that found them agreeing, so when the
        last one returns the pair is consistent.  Anything else (bytes gone, not this unit) is
        left for a reader to report.
        """
        for _ in range(SETTLE_ROUNDS):
            body = self._unit_bytes(entry.location)
            stored = self._get_entry(entry.kind, entry.run_id, entry.key)
            if body is None or stored is None:
                return entry
            # another publisher's bytes: its rows equal ours, but the digest is sealed to our bytes, so the
            # rewritten entry carries none (readers decode that unit's rows)
            now = replace(entry, size=len(body), sha256=sha256(body), digest={})
            if (stored.location, stored.size, stored.sha256) == (now.location, now.size, now.sha256):
                return stored
            try:
                table = self._get_unit(now)
            except Damaged:
                return entry
            if _variant(entry.kind, table.schema) is None or table.num_rows != entry.rows:
                return entry
            self._put_entry(now)
        return entry

    def entries(self, kind: str, run_id: str | None = None) -> list[Entry]:
        """Manifest entries of ``kind`` (of one run if given), unverified; malformed ones left out."""
        return self._entries(kind, run_id)[0]

    def _entries(self, kind: str, run_id: str | None) -> tuple[list[Entry], list[tuple[str, str, str, str]]]:
        """(well-formed entries, ``(what, reason, run_id, key)`` per malformed or misplaced entry)."""
        _kind(kind)
        if run_id is not None:
            check_id(run_id)
        found, problems = [], []
        for manifest_run, key, body in self._list_entries(kind, run_id):
            what = f"manifest entry {kind}/{manifest_run}/{key}"
            try:
                if body is None:
                    raise ValueError("unreadable")
                entry = _PARSED.get(body)
                if entry is None:
                    entry = Entry.from_json(body)
                    if len(_PARSED) >= PARSED_CACHE:
                        _PARSED.clear()
                    _PARSED[body] = entry
            except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
                problems.append((what, f"not a manifest entry ({exc})", manifest_run, key))
                continue
            if (entry.kind, entry.run_id, entry.key) != (kind, manifest_run, key):
                problems.append((what, f"names unit {entry.kind}/{entry.run_id}/{entry.key}, not itself "
                                       "(an entry copied from another run or unit)", manifest_run, key))
                continue
            found.append(entry)
        return sorted(found, key=lambda e: (e.run_id, e.key)), problems

    def forget(self, kind: str, run_id: str, key: str) -> None:
        """Remove one manifest entry (its unit is then not committed; the bytes are left where they are)."""
        _kind(kind)
        self._drop_entry(kind, check_id(run_id), check_key(key))

    def load(self, entry: Entry, columns: list[str] | None = None) -> pa.Table:
        """The rows of one entry, verified (size, SHA-256, schema, row count); raises Damaged.

        ``columns``: decode only these (those the unit has, in its order); the whole unit's
        bytes are still checked against the manifest's size and SHA-256, and its schema and
        row count read from the file's metadata.
        """
        if columns is None:
            table = self._get_unit(entry)
            schema, rows = table.schema, table.num_rows
        else:
            schema, rows, table = self._get_unit_columns(entry, columns)
        _check_schema(entry.kind, schema)
        if rows != entry.rows:
            raise Damaged(f"holds {rows} rows, the manifest says {entry.rows}")
        return table

    def check_bytes(self, entry: Entry) -> None:
        """Check the unit's stored bytes against the entry (location, size, SHA-256) without decoding them;
        raises Damaged (Forged for a location that is not the entry's own).  Backends that can read the
        bytes without decoding override this."""
        self._get_unit(entry)

    def _get_unit_columns(self, entry: Entry, columns: list[str]) -> tuple[pa.Schema, int, pa.Table]:
        """(the unit's whole schema, its row count, the rows of ``columns`` it has); raises Damaged.
        Backends that can decode a subset of columns override this."""
        table = self._get_unit(entry)
        return table.schema, table.num_rows, table.select([c for c in columns if c in table.schema.names])

    def verify(self, kind: str, run_id: str | None = None,
               expected_rows: dict[tuple[str, str], int] | None = None,
               check=None, columns: list[str] | None = None) -> tuple[Verified, list[pa.Table]]:
        """Check every manifest entry of ``kind`` against its stored unit; (report, tables of the intact ones).

        ``expected_rows`` maps (run_id, key) to the planned row count; an entry
        holding another count is reported (a shard with more rows than planned).
        ``check(entry, table)``, if given, raises :class:`Damaged` (or :class:`Forged`)
        when the rows are not the ones the entry's key implies.
        """
        entries, problems = self._entries(kind, run_id)
        report, tables = Verified(problems=[(w, r) for w, r, _, _ in problems]), []

        def one(entry):
            try:
                want = None if expected_rows is None else expected_rows.get((entry.run_id, entry.key))
                if want is not None and entry.rows != want:
                    raise Damaged(f"holds {entry.rows} rows, {want} planned")
                table = self.load(entry, columns)
                if check is not None:
                    check(entry, table)
                return table
            except Damaged as exc:
                return exc

        tables = sort_verified(entries, map_chunked(one, entries), report, self.where)
        return report, tables

    def read(self, kind: str, run_id: str | None = None, *,
             expected_rows: dict[tuple[str, str], int] | None = None, check=None,
             columns: list[str] | None = None) -> pa.Table:
        """Every verified row of ``kind`` (with partition columns); StoreError naming the first mismatch.

        ``columns``: only these of the kind's columns (the partition columns always), each unit
        still verified whole (:meth:`load`); a column no unit has is left out.
        """
        report, tables = self.verify(kind, run_id, expected_rows, check, columns)
        if report.problems:
            raise StoreError(f"{report.line()}; re-run to recompute it")
        return self.assemble(kind, report.ok, tables, columns)

    @staticmethod
    def assemble(kind: str, entries: list[Entry], tables: list[pa.Table],
                 columns: list[str] | None = None) -> pa.Table:
        """One table from verified units, with the partition columns taken from the entries."""
        schema, part = KINDS[kind]
        # The widest variant present: units without the distance columns get nulls there, and a
        # store holding none keeps exactly the kind's schema.
        wide = schema
        for allowed in VARIANTS[kind][1:]:
            extra = {f.name for f in allowed} - set(schema.names)
            if any(extra & set(t.schema.names) for t in tables):
                wide = allowed
        if columns is not None:
            wide = pa.schema([f for f in wide if f.name in columns])
        full = wide if part is None else pa.schema(list(wide) + list(part))
        out = []
        for entry, table in zip(entries, tables):
            table = table.replace_schema_metadata(None)
            for i, f in enumerate(wide):
                if f.name not in table.schema.names:
                    table = table.add_column(i, f, pa.nulls(table.num_rows, f.type))
            if part is not None:
                for f in part:
                    table = table.append_column(f, pa.repeat(pa.scalar(entry.partition[f.name], f.type),
                                                              table.num_rows))
            out.append(table)
        return pa.concat_tables(out) if out else full.empty_table()

    def committed(self, kind: str, run_id: str, expected_rows: dict[str, int],
                  check=None) -> tuple[set[str], list[str]]:
        """Keys of ``expected_rows`` committed intact, and one line per damaged unit found.

        A unit counts as committed when its manifest entry verifies, holds
        the expected number of rows and passes ``check(entry, table)`` (see
        :meth:`verify`).  A damaged unit loses its entry and its bytes are moved
        aside where no reader looks, so it is recomputed; a malformed or foreign
        entry in this run's manifest is removed, as is an entry that does not
        name its own unit (:class:`Forged`: the bytes it names are left alone).
        Units without an entry are not committed, whatever files exist.
        """
        entries, problems = self._entries(kind, run_id)
        found = []
        for what, why, manifest_run, key in problems:
            self._drop_entry(kind, manifest_run, key)
            found.append(f"{what} ({why})")
        done = set()
        for entry in entries:
            if entry.key not in expected_rows:
                continue
            try:
                if entry.rows != expected_rows[entry.key]:
                    raise Damaged(f"holds {entry.rows} rows, {expected_rows[entry.key]} planned")
                table = self.load(entry)
                if check is not None:
                    check(entry, table)
                done.add(entry.key)
            except Forged as exc:
                self._drop_entry(kind, run_id, entry.key)
                found.append(f"manifest entry {kind}/{run_id}/{entry.key} ({exc}; entry removed)")
            except Damaged as exc:
                self._drop_entry(kind, run_id, entry.key)
                where = self._drop_unit(entry)
                found.append(f"{self.where(entry.location)} ({exc}" + (f"; moved to {where})" if where else ")"))
        return done, found


def sort_verified(entries, results, report: "Verified", where) -> list:
    """Each entry's verification result into ``report``; returns the intact units' results in order.

    ``results[i]`` is what checking ``entries[i]`` gave: a :class:`Forged` or :class:`Damaged` (a
    problem, with ``where(location)`` naming a damaged unit) or the unit's content (kept).
    """
    kept = []
    for entry, got in zip(entries, results):
        if isinstance(got, Forged):
            report.problems.append((f"manifest entry {entry.kind}/{entry.run_id}/{entry.key}",
                                    f"{got} (not the entry of its own unit)"))
        elif isinstance(got, Damaged):
            report.problems.append((f"unit {where(entry.location)}", str(got)))
        else:
            kept.append(got)
            report.ok.append(entry)
    return kept


def _check_schema(kind: str, got_schema: pa.Schema) -> None:
    """Raise Damaged unless ``got_schema`` is one of ``kind``'s schemas, naming the differences."""
    if _variant(kind, got_schema) is not None:
        return
    schema, _ = KINDS[kind]
    names = set(got_schema.names)
    for allowed in VARIANTS[kind][1:]:    # compare with the variant it claims to be
        if names >= {f.name for f in allowed} - {f.name for f in schema}:
            schema = allowed
    got = {f.name: str(f.type) for f in got_schema}
    diff = [f"{f.name} is {got.get(f.name, 'missing')}, not {f.type}" for f in schema
            if got.get(f.name) != str(f.type)]
    extra = [n for n in got if n not in schema.names]
    raise Damaged("schema differs: " + "; ".join(diff + [f"extra column {n}" for n in extra]))


def _kind(kind: str):
    if kind not in KINDS:
        raise ValueError(f"not a unit kind: {kind!r}")
    return KINDS[kind]
