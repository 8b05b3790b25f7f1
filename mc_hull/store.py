"""The Parquet results store: one deterministic file per shard, published atomically, on any pyarrow filesystem.

Layout under the output root (a local directory or an object-store URI such
as ``s3://bucket/prefix``)::

    _runs/<run_id>.json                                   the spec of each run
    distribution=<name>/d=<d>/n=<N>/<run_id>-r<start>-<stop>.parquet

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
        sel = pafs.FileSelector(posixpath.join(self.root, RUNS_DIR), allow_not_found=True)
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
                       if i.is_file and i.base_name.endswith(".parquet")
                       and not i.base_name.startswith((".", "_"))), key=lambda i: i.path)

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
