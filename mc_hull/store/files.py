"""A user's files on any filesystem (local path or pyarrow URI): listing, ranged reads, Parquet row groups.

The store is the one package that knows filesystems and Parquet; the file point sources
(:mod:`mc_hull.runs.filesource`) read a user's training set through these few calls.
"""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq


def filesystem(text: str):
    """``(filesystem, path within it)`` for a local path or a URI (pyarrow's errors propagate)."""
    if "://" not in text:
        return pafs.LocalFileSystem(), os.path.abspath(text)
    return pafs.FileSystem.from_uri(text)


def local_filesystem():
    """The local filesystem (for a file source unpickled without its filesystem)."""
    return pafs.LocalFileSystem()


def is_local(fs) -> bool:
    """Whether ``fs`` is the local filesystem (files can be read with plain file reads)."""
    return isinstance(fs, pafs.LocalFileSystem)


def listing(fs, path: str) -> list[str] | None:
    """The files of directory ``path`` (not hidden, not nested, sorted by name), ``[path]`` for a file,
    or None when nothing is there."""
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        return None
    if info.type == pafs.FileType.File:
        return [path]
    entries = fs.get_file_info(pafs.FileSelector(path, recursive=False))
    return sorted((e.path for e in entries if e.type == pafs.FileType.File
                   and not e.base_name.startswith((".", "_"))), key=lambda p: p.rsplit("/", 1)[-1])


def parquet_metadata(fs, path: str):
    """The footer metadata of one Parquet file (``pyarrow.parquet.FileMetaData``)."""
    with fs.open_input_file(path) as fh:
        return pq.ParquetFile(fh).metadata


def read_row_group(fs, path: str, group: int) -> pa.Table:
    """Row group ``group`` of one Parquet file."""
    with fs.open_input_file(path) as fh:
        return pq.ParquetFile(fh).read_row_group(group)
