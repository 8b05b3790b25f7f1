"""The Parquet backend: units as Parquet files on any pyarrow filesystem (local or object store), JSON manifests.

Layout under the root (a local directory or a URI such as ``s3://bucket/prefix``)::

    _runs/<run_id>.json                                         run records
    _claims/<slot>.json                                         run claims, one per slot, created exclusively
    _stats/<run_id>.json                                        run statistics (the runner's measured rate)
    _progress/<run_id or test_id>.json                          progress record (rewritten every few s; not data)
    distribution=<name>/d=<d>/n=<N>/<run_id>-r<start>-<stop>.parquet   Monte Carlo shards (kind ``trials``)
    _hulltest/tests/<test_id>.json                              hull-test records
    _hulltest/tests/<test_id>/points-<start>-<stop>.pq          hull-test points (kind ``points``)
    _hulltest/sweeps/<sweep_id>.pq                              sweep tables (kind ``sweeps``)
    _manifest/<kind>/<run_id>/<unit key>.json                   one manifest entry per committed unit
    _quarantine/<original path>.<tag>.corrupt                   damaged units moved aside (never read)

Every file is written to a hidden temporary name in its directory and renamed
(POSIX), or uploaded in one PUT (object stores), so nothing is seen half
written; a unit's entry is written after its file.  Files are Parquet with
page checksums; entries hold the SHA-256 of the whole file.  Everything under
a name starting with ``_`` is skipped by pyarrow's dataset discovery, and only
Monte Carlo rows lie under ``distribution=*/``.

Claims: locally a slot is created with ``link(2)`` of a complete temporary
file (fails if the slot exists).  pyarrow's S3 filesystem has no conditional
PUT, so on object stores a slot is decided by candidates: each writer PUTs
``<slot>.cand/<uuid>``, then LISTs the candidates; a writer that sees only its
own wins and PUTs the slot, any other withdraws its candidate and retries.
With S3's strong read-after-write consistency for PUT and LIST, two writers
cannot both see only themselves, so at most one wins.  A lone candidate older
than :data:`STALE_SECONDS` (a claimant that died mid-claim) holds its slot.
"""

from __future__ import annotations

import functools
import os
import posixpath
import time
import uuid
from importlib import metadata
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..errors import StoreError
from ..locations import is_uri, local_path
from .base import Damaged, Entry, Forged, Store, check_id, sha256

RUNS_DIR, CLAIMS_DIR, STATS_DIR = "_runs", "_claims", "_stats"
MANIFEST_DIR, QUARANTINE_DIR, HULLTEST_DIR = "_manifest", "_quarantine", "_hulltest"
PROGRESS_DIR = "_progress"
DOC_DIRS = {"runs": RUNS_DIR, "stats": STATS_DIR, "hulltests": f"{HULLTEST_DIR}/tests", "progress": PROGRESS_DIR}
#: Seconds after which a lone claim candidate without its slot is taken to hold the slot.
STALE_SECONDS = 30.0


def versions() -> dict[str, str]:
    """Versions of the packages that shape the rows (recorded with runs and files)."""
    return dict(_versions())


@functools.lru_cache(maxsize=1)
def _versions() -> tuple:
    # read once per process: package metadata costs ~17 ms, which was 40% of a small nested run's wall time
    out = []
    for pkg in ("mc-hull", "numpy", "scipy", "highspy", "pyarrow"):
        try:
            out.append((pkg, metadata.version(pkg)))
        except metadata.PackageNotFoundError:
            out.append((pkg, "unknown"))
    return tuple(out)


#: Seconds an object store (gs://) may retry a request before it fails: its default is 15 minutes.
RETRY_SECONDS = 10


def resolve(out: str) -> tuple[pafs.FileSystem, str, bool]:
    """Filesystem, root path and whether it is local, for a path or a URI.

    Options the store needs are added to a URI here: S3 uploads start delayed (a file smaller than one
    part is one atomic PutObject), and Google Cloud Storage retries for :data:`RETRY_SECONDS`, not 15
    minutes, so an unreachable bucket fails instead of hanging.
    """
    if not str(out).strip() or str(out).strip() == "-" or "\0" in str(out):
        raise StoreError(f"--out: {str(out)!r} is not a results location (give a directory or URI)")
    if is_uri(out):
        uri = str(out)
        parsed = urlparse(uri)
        if parsed.scheme == "s3" and "allow_delayed_open" not in parsed.query:
            uri += ("&" if parsed.query else "?") + "allow_delayed_open=true"
        if parsed.scheme in ("gs", "gcs") and "retry_limit_seconds" not in parsed.query:
            uri += ("&" if "?" in uri else "?") + f"retry_limit_seconds={RETRY_SECONDS}"
        try:
            fs, root = pafs.FileSystem.from_uri(uri)
        except (pa.ArrowInvalid, OSError, ValueError) as exc:
            raise StoreError(f"--out: cannot open {out}: {exc}") from None
        return fs, root.rstrip("/"), False
    return pafs.LocalFileSystem(), local_path(out), True


def probe(out: str) -> str:
    """``"directory"``, ``"file"`` or ``"missing"`` for a results location (StoreError if it cannot be opened)."""
    fs, root, _ = resolve(out)
    kind = fs.get_file_info(root).type  # OSError when it cannot be reached: the caller names it
    return {pafs.FileType.Directory: "directory", pafs.FileType.NotFound: "missing"}.get(kind, "file")


def read_table_file(path: str) -> pa.Table:
    """A user's Parquet, Arrow IPC (file) or Feather table, read whole."""
    with open(path, "rb") as fh:
        parquet = fh.read(4) == b"PAR1"
    if parquet:
        return pq.read_table(path)
    import pyarrow.feather as feather

    return feather.read_table(path)


def parquet_bytes(table: pa.Table) -> bytes:
    """The table as one Parquet file (zstd, page checksums), schema metadata included."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", write_page_checksum=True)
    return sink.getvalue().to_pybytes()


class ParquetStore(Store):
    """Units as Parquet files under one root (see the module docstring for the layout).

    Parameters
    ----------
    out : str
        Local directory or a pyarrow filesystem URI (``s3://bucket/prefix?...``).
    """

    def __init__(self, out: str):
        self.out = str(out)
        self.fs, self.root, self.local = resolve(out)

    # -- paths (the only place that knows them) ------------------------------------------
    def _abs(self, rel: str) -> str:
        return posixpath.join(self.root, rel)

    def unit_location(self, kind: str, run_id: str, key: str, partition: dict) -> str:
        """Path (relative to the root) of a unit's file."""
        if kind == "trials":
            hive = "/".join(f"{name}={partition[name]}" for name in ("distribution", "d", "n"))
            return f"{hive}/{run_id}-{key.rsplit('/', 1)[-1]}.parquet"
        if kind == "points":
            # Parquet too, named .pq so that a reader's `DIR/**/*.parquet` glob with hive
            # partitioning (the README's DuckDB snippet) meets only the Monte Carlo shards.
            return f"{HULLTEST_DIR}/tests/{run_id}/points-{key}.pq"
        return f"{HULLTEST_DIR}/sweeps/{run_id}.pq"

    def _entry_path(self, kind: str, run_id: str, key: str) -> str:
        return self._abs(f"{MANIFEST_DIR}/{kind}/{run_id}/{key}.json")

    def where(self, location: str) -> str:
        return self._abs(location)

    # -- low-level I/O -------------------------------------------------------------------
    def _info(self, path: str) -> pafs.FileInfo:
        return self.fs.get_file_info(path)

    def _write(self, path: str, body: bytes) -> None:
        """Publish ``body`` at ``path`` atomically (temporary name + rename, or one PUT)."""
        directory = posixpath.dirname(path)
        self.fs.create_dir(directory, recursive=True)
        if self.local:
            tmp = posixpath.join(directory, f".{posixpath.basename(path)}.{uuid.uuid4().hex}.tmp")
            try:
                with self.fs.open_output_stream(tmp) as fh:
                    fh.write(body)
                self.fs.move(tmp, path)  # rename(2): atomic within a directory
            finally:
                if self._info(tmp).type != pafs.FileType.NotFound:
                    self.fs.delete_file(tmp)
        else:
            # One object, visible only once complete: a single PUT for small files (see
            # resolve), and an atomic CompleteMultipartUpload for files larger than one part.
            with self.fs.open_output_stream(path) as fh:
                fh.write(body)

    def _read(self, path: str) -> bytes:
        if self.local:   # the same bytes; Python's own file reads cost a third of pyarrow's stream per file
            with open(path, "rb") as fh:
                return fh.read()
        with self.fs.open_input_stream(path) as fh:
            return fh.read()

    def _files(self, directory: str, recursive: bool = False) -> list[pafs.FileInfo]:
        sel = pafs.FileSelector(directory, recursive=recursive, allow_not_found=True)
        try:
            return [i for i in self.fs.get_file_info(sel) if i.is_file]
        except OSError:
            return []

    # -- contract ------------------------------------------------------------------------
    def prepare(self) -> None:
        """Create the root if needed and check that it is a writable directory."""
        try:
            info = self._info(self.root)
        except OSError as exc:
            raise StoreError(f"--out: cannot open {self.out}: {exc}") from None
        if info.type == pafs.FileType.File:
            raise StoreError(f"--out: not a directory: {self.out}")
        if self.local:
            self._refuse_links()
            if info.type == pafs.FileType.NotFound:
                parent = os.path.dirname(self.root.rstrip("/")) or "."
                while not os.path.exists(parent):
                    parent = os.path.dirname(parent)
                if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
                    raise StoreError(f"--out: cannot create directory {self.out} (parent not writable)")
            elif not os.access(self.root, os.W_OK | os.X_OK):
                raise StoreError(f"--out: directory not writable: {self.out}")
        try:
            self.fs.create_dir(self.root, recursive=True)
        except OSError as exc:
            raise StoreError(f"--out: cannot create {self.out}: {exc}") from None

    #: Directories of the root the store writes into, and those under the manifest (two levels).
    OWN_DIRS = (RUNS_DIR, CLAIMS_DIR, STATS_DIR, MANIFEST_DIR, QUARANTINE_DIR, HULLTEST_DIR)

    def _refuse_links(self) -> None:
        """StoreError (one line) when a directory the store writes into is a symbolic link.

        A ``_manifest`` (or ``_runs``, ``_claims``, a partition directory ...) linked elsewhere
        would make a re-run write its entries or rows into another store.  The root itself may
        be a link: that is where the user pointed ``--out``.
        """
        if not os.path.isdir(self.root):
            return
        suspects = []
        with os.scandir(self.root) as it:
            for e in it:
                if e.name in self.OWN_DIRS or e.name.startswith("distribution="):
                    suspects.append(e.path)
        manifest = os.path.join(self.root, MANIFEST_DIR)
        if os.path.isdir(manifest) and not os.path.islink(manifest):
            for kind in os.scandir(manifest):
                suspects.append(kind.path)
                if kind.is_dir(follow_symlinks=False):
                    suspects += [e.path for e in os.scandir(kind.path) if not e.name.endswith(".json")]
        for path in suspects:
            if os.path.islink(path):
                raise StoreError(f"--out: {path} is a symbolic link (to {os.readlink(path)}); a store's own "
                                 "directories must be real directories, or its writes land in another store")

    def exists(self) -> bool:
        try:
            return self._info(self.root).type == pafs.FileType.Directory
        except OSError:
            return False

    def _put_unit(self, kind, run_id, key, table, partition, meta):
        body = parquet_bytes(table)
        rel = self.unit_location(kind, run_id, key, partition)
        self._write(self._abs(rel), body)
        return rel, len(body), sha256(body)

    def _body(self, entry: Entry) -> bytes:
        """The unit's bytes, checked against the entry's location, size and SHA-256; raises Damaged."""
        expected = self.unit_location(entry.kind, entry.run_id, entry.key, entry.partition)
        if entry.location != expected:
            raise Forged(f"the manifest entry points at {entry.location}, not at {expected}")
        try:
            body = self._read(self._abs(entry.location))
        except FileNotFoundError:
            raise Damaged("file missing") from None
        except OSError as exc:
            raise Damaged(f"unreadable ({exc})") from None
        if len(body) != entry.size:
            raise Damaged(f"{len(body)} bytes, the manifest says {entry.size} (truncated or replaced)")
        if sha256(body) != entry.sha256:
            raise Damaged("SHA-256 differs from the manifest (the file was changed after it was committed)")
        return body

    def check_bytes(self, entry: Entry) -> None:
        self._body(entry)

    def _get_unit(self, entry: Entry) -> pa.Table:
        body = self._body(entry)
        try:
            # one thread per unit: the reader already decodes units in parallel (base.READ_THREADS)
            return pq.ParquetFile(pa.BufferReader(body), page_checksum_verification=True).read(use_threads=False)
        except (OSError, pa.ArrowException) as exc:
            raise Damaged(f"not readable as Parquet ({exc})") from None

    def _get_unit_columns(self, entry: Entry, columns: list[str]) -> tuple[pa.Schema, int, pa.Table]:
        body = self._body(entry)
        try:
            pf = pq.ParquetFile(pa.BufferReader(body), page_checksum_verification=True)
            schema = pf.schema_arrow
            names = [c for c in schema.names if c in set(columns)]
            return schema, pf.metadata.num_rows, pf.read(columns=names, use_threads=False)
        except (OSError, pa.ArrowException) as exc:
            raise Damaged(f"not readable as Parquet ({exc})") from None

    def _drop_unit(self, entry: Entry) -> str | None:
        src = self._abs(entry.location)
        if self._info(src).type != pafs.FileType.File:
            return None
        target = self._abs(f"{QUARANTINE_DIR}/{entry.location}.{uuid.uuid4().hex[:8]}.corrupt")
        self.fs.create_dir(posixpath.dirname(target), recursive=True)
        try:
            self.fs.move(src, target)
        except FileNotFoundError:  # another process resuming the same run moved it first
            return None
        return target

    def _put_entry(self, entry: Entry) -> None:
        self._write(self._entry_path(entry.kind, entry.run_id, entry.key), entry.to_json())

    def _get_entry(self, kind, run_id, key):
        try:
            return Entry.from_json(self._read(self._entry_path(kind, run_id, key)))
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
            return None

    def _unit_bytes(self, location):
        try:
            return self._read(self._abs(location))
        except OSError:
            return None

    def _list_entries(self, kind, run_id):
        base = self._abs(f"{MANIFEST_DIR}/{kind}" + (f"/{run_id}" if run_id else ""))
        top = self._abs(f"{MANIFEST_DIR}/{kind}") + "/"
        out = []
        for info in self._files(base, recursive=True):
            rel = info.path[len(top):] if info.path.startswith(top) else posixpath.relpath(info.path, top)
            if not rel.endswith(".json") or posixpath.basename(rel).startswith("."):
                continue
            manifest_run, _, key = rel[:-len(".json")].partition("/")
            out.append((manifest_run, key, self._entry_body(info)))
        return out

    def _entry_body(self, info: pafs.FileInfo) -> bytes | None:
        """A manifest entry's bytes (None when unreadable): read on every listing (a parse of bytes seen
        before is memoised by content, :data:`mc_hull.store.base._PARSED`; the bytes are never cached by
        file name and time, which a same-size edit within the clock's resolution would not change)."""
        try:
            return self._read(info.path)
        except OSError:
            return None

    def _drop_entry(self, kind, run_id, key):
        path = self._entry_path(kind, run_id, key)
        try:
            self.fs.delete_file(path)
        except FileNotFoundError:  # already gone (another process resuming the same run)
            pass

    def _put_doc(self, collection, name, body):
        self._write(self._abs(f"{DOC_DIRS[collection]}/{name}.json"), body)

    def _docs(self, collection):
        out = {}
        for info in self._files(self._abs(DOC_DIRS[collection])):
            if info.base_name.endswith(".json") and not info.base_name.startswith("."):
                try:
                    out[info.base_name[:-5]] = self._read(info.path)
                except OSError:
                    continue
        return out

    def _slot_path(self, slot: int) -> str:
        return self._abs(f"{CLAIMS_DIR}/{slot:08d}.json")

    def _create_exclusive(self, slot: int, body: bytes) -> bool:
        final = self._slot_path(slot)
        directory = posixpath.dirname(final)
        self.fs.create_dir(directory, recursive=True)
        if self.local:
            tmp = posixpath.join(directory, f".{slot:08d}.{uuid.uuid4().hex}.tmp")
            with open(tmp, "wb") as fh:
                fh.write(body)
            try:
                os.link(tmp, final)  # fails if the slot exists: first writer wins, with complete content
                return True
            except FileExistsError:
                return False
            finally:
                os.unlink(tmp)
        if self._info(final).type == pafs.FileType.File:
            return False
        cand_dir = final[:-len(".json")] + ".cand"
        mine = f"{cand_dir}/{uuid.uuid4().hex}"
        self._write(mine, body)
        seen = [i.path for i in self._files(cand_dir)]
        if seen == [mine]:
            self._write(final, body)  # the candidate stays: any later contender sees two and withdraws
            return True
        self.fs.delete_file(mine)
        return False

    def _slots(self) -> dict[int, bytes | None]:
        out: dict[int, bytes | None] = {}
        pending: dict[int, list[pafs.FileInfo]] = {}
        for info in self._files(self._abs(CLAIMS_DIR), recursive=True):
            rel = posixpath.relpath(info.path, self._abs(CLAIMS_DIR))
            head = rel.split("/", 1)[0]
            if "/" not in rel and head.endswith(".json") and head[:-5].isdigit():
                try:
                    out[int(head[:-5])] = self._read(info.path)
                except OSError:
                    out[int(head[:-5])] = None
            elif head.endswith(".cand") and head[:-5].isdigit():
                pending.setdefault(int(head[:-5]), []).append(info)
        now = time.time()
        for slot, cands in pending.items():
            if slot in out:
                continue
            stale = len(cands) == 1 and now - (cands[0].mtime_ns or 0) / 1e9 > STALE_SECONDS
            out[slot] = self._read(cands[0].path) if stale else None
        return out

    def _unit_runs(self) -> set[str]:
        runs = set()
        for info in self._files(self._abs(f"{MANIFEST_DIR}/trials"), recursive=True):
            runs.add(posixpath.relpath(info.path, self._abs(f"{MANIFEST_DIR}/trials")).split("/", 1)[0])
        for info in self._files(self.root, recursive=True):
            rel = posixpath.relpath(info.path, self.root)
            if rel.startswith("distribution=") and info.base_name.endswith(".parquet"):
                runs.add(info.base_name.split("-", 1)[0])
        return {r for r in runs if _is_id(r)}

    def state(self) -> str:
        """A digest of every file's path, size and modification time under the root: it changes when
        anything is written, replaced or damaged in place (one listing; for caches of verified reads)."""
        import hashlib

        h = hashlib.sha256()
        for info in sorted(self._files(self.root, recursive=True), key=lambda i: i.path):
            h.update(f"{info.path}\0{info.size}\0{info.mtime_ns}\n".encode())
        return h.hexdigest()

    def fingerprint(self) -> tuple:
        entries = self._files(self._abs(MANIFEST_DIR), recursive=True)
        docs = self._files(self._abs(RUNS_DIR)) + self._files(self._abs(STATS_DIR))
        return (len(entries), max((i.mtime_ns or 0 for i in entries), default=0),
                sum(i.size or 0 for i in entries), len(docs), max((i.mtime_ns or 0 for i in docs), default=0))

    def stray_files(self) -> list[str]:
        """Parquet files under the Monte Carlo partitions that no manifest entry names (never read)."""
        named = {e.location for e in self.entries("trials")}
        return sorted(posixpath.relpath(i.path, self.root) for i in self._files(self.root, recursive=True)
                      if posixpath.relpath(i.path, self.root).startswith("distribution=")
                      and posixpath.relpath(i.path, self.root) not in named)


def _is_id(text: str) -> bool:
    try:
        check_id(text)
        return True
    except StoreError:
        return False


