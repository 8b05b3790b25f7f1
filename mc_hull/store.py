"""The Parquet results store: one deterministic file per shard, published atomically, on any pyarrow filesystem.

Layout under the output root (a local directory or an object-store URI such
as ``s3://bucket/prefix``)::

    _runs/<run_id>.json                                   the spec of each run
    distribution=<name>/d=<d>/n=<N>/<run_id>-r<start>-<stop>.parquet
    _hulltest/...                                         ``mc-hull hull-test`` (see HullTestStore)

Shard files are written to a hidden temporary name in the same directory and
renamed (POSIX), or uploaded in one PUT (object stores), so a reader never sees
half a file.  A shard's name is a function of (run, shard), so a re-run
overwrites rather than duplicates.  Nothing read back is unpickled or evaluated:
specs are JSON, rows are Parquet.
"""

from __future__ import annotations

import json
import os
import posixpath
import uuid
from dataclasses import dataclass
from importlib import metadata
from urllib.parse import urlparse

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .errors import StoreError
from .plan import Shard
from .spec import Spec

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
PARTITIONING = ds.partitioning(
    pa.schema([("distribution", pa.string()), ("d", pa.int32()), ("n", pa.int64())]), flavor="hive")
RUNS_DIR = "_runs"
QUARANTINE_SUFFIX = ".corrupt"


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("mc-hull", "numpy", "scipy", "highspy", "pyarrow"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def resolve(out: str) -> tuple[pafs.FileSystem, str, bool]:
    """Filesystem, root path and whether it is local, for a path or a URI."""
    parsed = urlparse(str(out))
    if parsed.scheme and len(parsed.scheme) > 1 and parsed.scheme != "file":
        uri = str(out)
        if parsed.scheme == "s3" and "allow_delayed_open" not in parsed.query:
            # Delay the upload's start so a file smaller than one part is sent as a single
            # PutObject (atomic, and supported by every S3-compatible store), not a multipart upload.
            uri += ("&" if parsed.query else "?") + "allow_delayed_open=true"
        try:
            fs, root = pafs.FileSystem.from_uri(uri)
        except (pa.ArrowInvalid, OSError, ValueError) as exc:
            raise StoreError(f"--out: cannot open {out}: {exc}") from None
        return fs, root.rstrip("/"), False
    path = parsed.path if parsed.scheme == "file" else str(out)
    return pafs.LocalFileSystem(), os.path.abspath(path), True


@dataclass
class ShardInfo:
    """A shard file found in the store."""

    path: str
    key: str
    run_id: str
    rows: int


class ResultStore:
    """Read and write shard files under one output root.

    Parameters
    ----------
    out : str
        Local directory or a pyarrow filesystem URI (``s3://bucket/prefix?...``).
    """

    def __init__(self, out: str):
        self.out = str(out)
        self.fs, self.root, self.local = resolve(out)

    # -- paths ---------------------------------------------------------------
    def shard_path(self, run_id: str, shard: Shard) -> str:
        name = f"{run_id}-r{shard.start:07d}-{shard.stop:07d}.parquet"
        return posixpath.join(self.root, shard.partition, name)

    def _info(self, path: str) -> pafs.FileInfo:
        return self.fs.get_file_info(path)

    # -- checks --------------------------------------------------------------
    def prepare(self) -> None:
        """Create the root if needed and check that it is a writable directory."""
        info = self._info(self.root)
        if info.type == pafs.FileType.File:
            raise StoreError(f"--out: not a directory: {self.out}")
        if self.local:
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

    # -- runs ----------------------------------------------------------------
    def runs(self) -> dict[str, dict]:
        """run_id -> spec mapping of every run recorded in the store (JSON only)."""
        return self.read_json_dir(posixpath.join(self.root, RUNS_DIR))

    def read_json_dir(self, directory: str) -> dict[str, dict]:
        """name -> parsed body of every ``<name>.json`` directly in ``directory`` (unparsable ones skipped)."""
        sel = pafs.FileSelector(directory, allow_not_found=True)
        out = {}
        for info in self.fs.get_file_info(sel):
            if info.is_file and info.base_name.endswith(".json"):
                with self.fs.open_input_stream(info.path) as fh:
                    try:
                        out[info.base_name[:-5]] = json.loads(fh.read().decode())
                    except (UnicodeDecodeError, json.JSONDecodeError):
                        continue
        return out

    def record_run(self, spec: Spec) -> None:
        """Write ``_runs/<run_id>.json`` (the spec and its hash)."""
        body = json.dumps({"spec": spec.to_dict(), "hash": spec.hash, "versions": _versions()},
                          indent=2, sort_keys=True).encode()
        self._publish(posixpath.join(self.root, RUNS_DIR, f"{spec.run_id}.json"), body)

    # -- writing -------------------------------------------------------------
    def _publish(self, path: str, body: bytes) -> None:
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

    def write_shard(self, spec: Spec, shard: Shard, columns: dict[str, np.ndarray]) -> str:
        """Publish one shard's rows atomically; returns the file path."""
        table = to_table(columns)
        table = table.replace_schema_metadata({
            "mc_hull.spec": spec.to_json(),
            "mc_hull.spec_hash": spec.hash,
            "mc_hull.shard": shard.key,
            "mc_hull.versions": json.dumps(_versions(), sort_keys=True),
        })
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        path = self.shard_path(spec.run_id, shard)
        self._publish(path, sink.getvalue().to_pybytes())
        return path

    # -- reading -------------------------------------------------------------
    def shard_files(self) -> list[pafs.FileInfo]:
        """Every visible ``*.parquet`` file under the root (hidden and quarantined excluded)."""
        sel = pafs.FileSelector(self.root, recursive=True, allow_not_found=True)
        return sorted((i for i in self.fs.get_file_info(sel)
                       if i.is_file and i.base_name.endswith(".parquet") and not self._hidden(i.path)),
                      key=lambda i: i.path)

    def _hidden(self, path: str) -> bool:
        """True for a path with a part (below the root) starting with "." or "_" (e.g. ``_hulltest/``)."""
        rel = posixpath.relpath(path, self.root)
        return any(part.startswith((".", "_")) for part in rel.split("/"))

    def inspect(self, path: str) -> ShardInfo:
        """Read a shard file's footer; raises StoreError naming the file if unreadable."""
        try:
            with self.fs.open_input_file(path) as fh:
                md = pq.read_metadata(fh)
            meta = md.metadata or {}
            key = meta[b"mc_hull.shard"].decode()
            run_id = meta[b"mc_hull.spec_hash"].decode()[:12]
        except Exception as exc:  # truncated, not Parquet, missing metadata
            raise StoreError(f"unreadable shard file {path}: {type(exc).__name__}: {exc}") from None
        return ShardInfo(path=path, key=key, run_id=run_id, rows=md.num_rows)

    def quarantine(self, path: str) -> str:
        """Move a damaged file aside (``<name>.corrupt``) so it is recomputed, not read."""
        target = path + QUARANTINE_SUFFIX
        self.fs.move(path, target)
        return target

    def committed(self, spec: Spec, shards: list[Shard]) -> tuple[set[Shard], list[str]]:
        """Shards of ``spec`` already present and intact, and files moved aside as damaged.

        A file counts as committed when its footer is readable, it belongs to
        this run and holds exactly the shard's planned number of rows.
        """
        done, moved = set(), []
        present = {i.path for i in self.shard_files()}  # one listing, not one request per shard
        for shard in shards:
            path = self.shard_path(spec.run_id, shard)
            if path not in present:
                continue
            try:
                info = self.inspect(path)
                ok = (info.run_id == spec.run_id and info.key == shard.key
                      and info.rows == shard.trials(spec))
            except StoreError:
                ok = False
            if ok:
                done.add(shard)
            else:
                moved.append(self.quarantine(path))
        return done, moved

    def dataset(self) -> ds.Dataset | None:
        """A pyarrow dataset over every shard file (None when there are none)."""
        files = [i.path for i in self.shard_files()]
        if not files:
            return None
        return ds.dataset(files, filesystem=self.fs, format="parquet", schema=_full_schema(),
                          partitioning=PARTITIONING, partition_base_dir=self.root)

    def check_files(self) -> list[str]:
        """Paths of shard files whose footer cannot be read."""
        bad = []
        for info in self.shard_files():
            try:
                self.inspect(info.path)
            except StoreError:
                bad.append(info.path)
        return bad


def _full_schema() -> pa.Schema:
    schema = SCHEMA
    for field in PARTITIONING.schema:
        schema = schema.append(field)
    return schema


def to_table(columns: dict[str, np.ndarray]) -> pa.Table:
    """Arrow table in :data:`SCHEMA` from the columns of ``trial.run_shard``."""
    arrays = []
    for field in SCHEMA:
        values = columns[field.name]
        if field.name == "inside":
            values = np.asarray(values, dtype=np.float64)
            arrays.append(pa.array(values == 1.0, type=pa.bool_(), mask=np.isnan(values)))
        else:
            arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


# -- input tables and hull tests (``mc-hull hull-test``) --------------------------------
#: Directory of hull-test files under an output root; hidden from :meth:`ResultStore.shard_files`.
HULLTEST_DIR = "_hulltest"
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


def read_table_file(path: str) -> pa.Table:
    """A user's Parquet, Arrow IPC (file) or Feather table, read whole."""
    with open(path, "rb") as fh:
        parquet = fh.read(4) == b"PAR1"
    if parquet:
        return pq.read_table(path)
    import pyarrow.feather as feather

    return feather.read_table(path)


def _parquet_bytes(table: pa.Table, meta: dict[str, str]) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table.replace_schema_metadata(meta), sink, compression="zstd")
    return sink.getvalue().to_pybytes()


class HullTestStore:
    """Files of ``mc-hull hull-test`` under ``<out>/_hulltest``, each published atomically::

        tests/<test_id>.json                              the test's record (inputs, hashes, reduction, counts)
        tests/<test_id>/points-<start>-<stop>.parquet     per-point rows (POINT_SCHEMA), one file per shard
        sweeps/<sweep_id>.parquet                         a sweep table (SWEEP_SCHEMA), record in its metadata

    Ids are hashes of the inputs, so a re-run overwrites or skips, never duplicates.

    Parameters
    ----------
    out : str
        Local directory or pyarrow filesystem URI (the same root as a results store).
    """

    def __init__(self, out: str):
        self.results = ResultStore(out)
        self.fs = self.results.fs
        self.root = posixpath.join(self.results.root, HULLTEST_DIR)

    def prepare(self) -> None:
        """Create the output root if needed (StoreError if it is unusable)."""
        self.results.prepare()

    # -- per-point rows ------------------------------------------------------------
    def points_path(self, test_id: str, start: int, stop: int) -> str:
        return posixpath.join(self.root, "tests", test_id, f"points-{start:09d}-{stop:09d}.parquet")

    def write_points(self, test_id: str, start: int, stop: int, columns: dict[str, np.ndarray]) -> str:
        """Publish the rows of test points ``start..stop``; returns the path.

        ``columns`` holds arrays of shape (stop - start,): ``status`` (1 inside,
        0 outside, -1 undecided), ``certificate_value`` and ``method``.
        """
        status = np.asarray(columns["status"])
        table = pa.Table.from_arrays([
            pa.array(np.arange(start, stop, dtype=np.int64)),
            pa.array(status == 1, type=pa.bool_(), mask=status < 0),
            pa.array(status < 0, type=pa.bool_()),
            pa.array(np.where(status == 1, "inside", np.where(status == 0, "outside", "undecided"))),
            pa.array(np.asarray(columns["certificate_value"], dtype=np.float64)),
            pa.array(np.asarray(columns["method"], dtype=str)),
        ], schema=POINT_SCHEMA)
        path = self.points_path(test_id, start, stop)
        self.results._publish(path, _parquet_bytes(table, {"mc_hull.test_id": test_id,
                                                           "mc_hull.points": f"{start}-{stop}"}))
        return path

    def committed_points(self, test_id: str, ranges: list[tuple[int, int]]) -> set[tuple[int, int]]:
        """Ranges whose file is present, readable, of this test and holds ``stop - start`` rows."""
        sel = pafs.FileSelector(posixpath.join(self.root, "tests", test_id), allow_not_found=True)
        present = {i.path for i in self.fs.get_file_info(sel) if i.is_file}
        done = set()
        for start, stop in ranges:
            path = self.points_path(test_id, start, stop)
            if path not in present:
                continue
            try:
                with self.fs.open_input_file(path) as fh:
                    md = pq.read_metadata(fh)
                ok = (md.metadata or {}).get(b"mc_hull.test_id") == test_id.encode() and md.num_rows == stop - start
            except Exception:  # noqa: BLE001 - damaged: recomputed and overwritten
                ok = False
            if ok:
                done.add((start, stop))
        return done

    def points(self, test_id: str) -> pa.Table:
        """Every per-point row of ``test_id``, sorted by index."""
        sel = pafs.FileSelector(posixpath.join(self.root, "tests", test_id), allow_not_found=True)
        files = sorted(i.path for i in self.fs.get_file_info(sel)
                       if i.is_file and i.base_name.startswith("points-") and i.base_name.endswith(".parquet"))
        if not files:
            return POINT_SCHEMA.empty_table()
        table = ds.dataset(files, filesystem=self.fs, format="parquet", schema=POINT_SCHEMA).to_table()
        return table.sort_by("index").replace_schema_metadata(None)

    # -- records -------------------------------------------------------------------
    def write_record(self, test_id: str, record: dict) -> None:
        body = json.dumps({**record, "versions": _versions()}, indent=2, sort_keys=True).encode()
        self.results._publish(posixpath.join(self.root, "tests", f"{test_id}.json"), body)

    def records(self) -> dict[str, dict]:
        """test_id -> record of every finished hull test."""
        return self.results.read_json_dir(posixpath.join(self.root, "tests"))

    # -- sweeps --------------------------------------------------------------------
    def write_sweep(self, sweep_id: str, table: pa.Table, record: dict) -> str:
        """Publish a sweep table (SWEEP_SCHEMA) with ``record`` as JSON in its metadata."""
        path = posixpath.join(self.root, "sweeps", f"{sweep_id}.parquet")
        meta = {"mc_hull.sweep_id": sweep_id, "mc_hull.sweep": json.dumps(record, sort_keys=True),
                "mc_hull.versions": json.dumps(_versions(), sort_keys=True)}
        self.results._publish(path, _parquet_bytes(table.cast(SWEEP_SCHEMA), meta))
        return path

    def sweep_files(self) -> list[pafs.FileInfo]:
        sel = pafs.FileSelector(posixpath.join(self.root, "sweeps"), allow_not_found=True)
        return sorted((i for i in self.fs.get_file_info(sel)
                       if i.is_file and i.base_name.endswith(".parquet") and not i.base_name.startswith(".")),
                      key=lambda i: i.path)

    def sweep_record(self, path: str) -> dict:
        """The record stored in a sweep file's metadata ({} if unreadable)."""
        try:
            with self.fs.open_input_file(path) as fh:
                meta = pq.read_metadata(fh).metadata or {}
            return json.loads(meta[b"mc_hull.sweep"].decode())
        except Exception:  # noqa: BLE001 - a damaged file shows as having no record
            return {}

    def sweep_dataset(self, paths: list[str]) -> ds.Dataset:
        """A pyarrow dataset over the given sweep files."""
        return ds.dataset(paths, filesystem=self.fs, format="parquet", schema=SWEEP_SCHEMA)
