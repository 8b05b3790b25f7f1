"""The in-memory reference backend: units as Arrow IPC bytes in dictionaries, guarded by one lock."""

from __future__ import annotations

import itertools
import threading

import pyarrow as pa

from .base import Damaged, Entry, Forged, Store, sha256


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


class MemoryStore(Store):
    """Everything in this process's memory: the reference the contract tests hold other backends to.

    ``blobs`` (location -> bytes), ``entries`` ((kind, run, key) -> entry bytes),
    ``documents`` and ``slots`` are plain dictionaries, so tests can damage them.
    """

    def __init__(self, name: str = "memory"):
        self.out = f"memory:{name}"
        self.blobs: dict[str, bytes] = {}
        self.entries_raw: dict[tuple[str, str, str], bytes] = {}
        self.documents: dict[tuple[str, str], bytes] = {}
        self.slots: dict[int, bytes] = {}
        self.quarantine: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._version = itertools.count()
        self._stamp = 0

    def _touch(self) -> None:
        self._stamp = next(self._version)

    def prepare(self) -> None:
        return None

    def exists(self) -> bool:
        return bool(self.blobs or self.documents or self.slots)

    def _put_unit(self, kind, run_id, key, table, partition, meta):
        body = _ipc(table)
        location = f"{kind}/{run_id}/{key}"
        with self._lock:
            self.blobs[location] = body
        return location, len(body), sha256(body)

    def _get_unit(self, entry: Entry) -> pa.Table:
        if entry.location != f"{entry.kind}/{entry.run_id}/{entry.key}":
            raise Forged(f"the manifest entry points at {entry.location}")
        body = self.blobs.get(entry.location)
        if body is None:
            raise Damaged("file missing")
        if len(body) != entry.size:
            raise Damaged(f"{len(body)} bytes, the manifest says {entry.size} (truncated or replaced)")
        if sha256(body) != entry.sha256:
            raise Damaged("SHA-256 differs from the manifest (the file was changed after it was committed)")
        try:
            return pa.ipc.open_stream(body).read_all()
        except pa.ArrowException as exc:
            raise Damaged(f"not readable ({exc})") from None

    def _drop_unit(self, entry: Entry) -> str | None:
        with self._lock:
            body = self.blobs.pop(entry.location, None)
            if body is None:
                return None
            self.quarantine[entry.location] = body
        return f"quarantine/{entry.location}"

    def _put_entry(self, entry: Entry) -> None:
        with self._lock:
            self.entries_raw[(entry.kind, entry.run_id, entry.key)] = entry.to_json()
            self._touch()

    def _get_entry(self, kind, run_id, key):
        with self._lock:
            body = self.entries_raw.get((kind, run_id, key))
        try:
            return None if body is None else Entry.from_json(body)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return None

    def _unit_bytes(self, location):
        with self._lock:
            return self.blobs.get(location)

    def _list_entries(self, kind, run_id):
        with self._lock:
            items = list(self.entries_raw.items())
        return [(r, k, body) for (kd, r, k), body in items if kd == kind and (run_id is None or r == run_id)]

    def _drop_entry(self, kind, run_id, key):
        with self._lock:
            self.entries_raw.pop((kind, run_id, key), None)
            self._touch()

    def _put_doc(self, collection, name, body):
        with self._lock:
            self.documents[(collection, name)] = body
            if collection != "progress":   # a progress record is not data: the fingerprint stays
                self._touch()

    def _docs(self, collection):
        with self._lock:
            return {name: body for (c, name), body in self.documents.items() if c == collection}

    def _create_exclusive(self, slot, body):
        with self._lock:
            if slot in self.slots:
                return False
            self.slots[slot] = body
            return True

    def _slots(self):
        with self._lock:
            return dict(self.slots)

    def _unit_runs(self):
        with self._lock:
            return {r for (kind, r, _) in self.entries_raw if kind == "trials"} | {
                loc.split("/")[1] for loc in self.blobs if loc.startswith("trials/")}

    def fingerprint(self) -> tuple:
        return (self._stamp, len(self.entries_raw), len(self.documents))
