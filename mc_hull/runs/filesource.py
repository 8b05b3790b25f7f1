"""Training sets read from the user's files: a directory of ``.npy`` shards or a Parquet dataset, any filesystem.

:func:`open_source` turns ``PATH_OR_URI`` into a :class:`FileSource`, a point source
(:class:`mc_hull.solvers.sources.PointSource`: ``n``, ``d``, ``block_rows``,
``generate(block_ids) -> (start, rows)``) that the streamed solvers read block by block.
It holds no solver logic and no rows beyond the block it is asked for.

Layouts
-------
* **``.npy`` shards**: a directory whose ``*.npy`` files (hidden ``.``/``_`` names
  skipped) are 2-D arrays ``(n_i, d)`` of one ``d``; rows are taken in file-name
  order.  Each block is a ranged read of the rows it needs (local files with
  ``readinto`` straight into the block, nothing memory-mapped).
* **Parquet**: one ``.parquet`` file or a directory of them (file-name order, then
  row-group order).  A row is either **one list or fixed-size-list column** of d
  numbers (the usual way embeddings are stored), or, when the schema has several
  columns, **all of them, each numeric**, as the d coordinates.  Files are read
  one row group at a time.

``PATH_OR_URI`` is a local path or any URI ``pyarrow.fs.FileSystem.from_uri`` opens
(``s3://bucket/prefix?endpoint_override=...``, ``gs://``, ``hdfs://``, ``file://``).

Validation (:meth:`FileSource.validate`, one line, :class:`~mc_hull.errors.InputError`)
-------------------------------------------------------------------------------------
missing path or no shard, a shard that is not 2-D, ragged ``d`` (between shards or
between rows of a list column), a non-numeric or complex dtype, Fortran-ordered
``.npy``, nulls, no rows at all, and any NaN or inf.  :meth:`FileSource.validate`
streams every byte once, so a damaged set is refused before a run writes
anything; :meth:`FileSource.generate` checks each block again as it is read (a
file changed under a run is refused, never decided).

dtype
-----
float32 (and float16) files give float32 blocks, so X takes half the memory of
float64; integer, bool and float64 files give float64 blocks.  The solvers map
each block to float64 frame coordinates before any checked arithmetic (see the
README's rule on float32 input).

Digest
------
:attr:`FileSource.digest` is a SHA-256 over the layout, ``n``, ``d``, the dtype and,
per file in order, its name relative to the root, its size and the SHA-256 of its
bytes, computed while streaming (no file is held whole).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..solvers.sources import PointSource

#: Coordinates per block (2^22: 32 MiB as float64, 16 MiB as float32).
BLOCK_ELEMS = 1 << 22
#: Bytes read at a time while hashing and checking.
READ_BYTES = 1 << 24
NPY_SUFFIXES = (".npy",)
PARQUET_SUFFIXES = (".parquet", ".pq")


def is_dataset(text: str) -> bool:
    """Whether ``--train``/``--test`` names a sharded dataset: a URI, or a local directory."""
    return "://" in text or os.path.isdir(text)


def _filesystem(text: str, name: str):
    """(filesystem, path within it) for a local path or a URI."""
    from ..store.files import filesystem

    try:
        return filesystem(text)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ValueError
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{name}: cannot open {text}: {reason}") from None


def _block_dtype(dtypes) -> np.dtype:
    """float32 when every shard is float16/float32, else float64."""
    return np.dtype(np.float32) if all(np.dtype(t).kind == "f" and np.dtype(t).itemsize <= 4
                                       for t in dtypes) else np.dtype(np.float64)


def _check_dtype(dtype, where: str, name: str) -> None:
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        raise InputError(f"{name}: {where} holds complex values (dtype {dtype}); give real samples")
    if dtype.kind not in "biuf":
        raise InputError(f"{name}: {where} is not numeric (dtype {dtype})")


@dataclass
class FileSource(PointSource):
    """Rows of a sharded dataset (see the module docstring), as a point source.

    Attributes
    ----------
    uri : str
        What the user gave.
    layout : {"npy", "parquet"}
    files : list of str
        Paths within the filesystem, in row order.
    counts : list of int
        Rows per file.
    n, d : int
    dtype : numpy dtype
        Of the blocks: float32 or float64.
    block_rows : int
    """

    uri: str
    layout: str
    files: list
    counts: list
    n: int
    d: int
    dtype: np.dtype
    block_rows: int
    name: str = "--train"
    _fs: object = field(default=None, repr=False)
    _local: bool | None = field(default=None, repr=False)       # the local filesystem (set when opened)
    _root: str = field(default="", repr=False)
    _meta: list = field(default_factory=list, repr=False)     # per file: npy (dtype, offset); parquet row groups
    _digest: str | None = field(default=None, repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    # -- rows ---------------------------------------------------------------------------------
    @property
    def offsets(self) -> np.ndarray:
        """First row of each file, and ``n``: shape (len(files) + 1,)."""
        return np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)

    def generate(self, block_ids):
        """Yield ``(start, rows)`` per block id; rows (block_rows, d) in :attr:`dtype` (the last may be short)."""
        for b in block_ids:
            start = int(b) * self.block_rows
            stop = min(start + self.block_rows, self.n)
            if not 0 <= start < stop:
                raise IndexError(f"block {b} outside 0..{self.n_blocks - 1}")
            yield start, self.rows(start, stop)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start .. stop-1`` (stop - start, d), read from the files that hold them and checked finite."""
        out = np.empty((stop - start, self.d), dtype=self.dtype)
        offs = self.offsets
        first = int(np.searchsorted(offs, start, side="right")) - 1
        at = start
        for f in range(first, len(self.files)):
            if at >= stop:
                break
            a, e = at - offs[f], min(stop, offs[f + 1]) - offs[f]
            if e <= a:
                continue
            self._read(f, int(a), int(e), out[at - start:at - start + (e - a)])
            at += e - a
        bad = ~np.isfinite(out).all(axis=1)
        if bad.any():
            row = start + int(np.flatnonzero(bad)[0])
            f = int(np.searchsorted(offs, row, side="right")) - 1
            raise InputError(f"{self.name}: {self._rel(f)} row {row - offs[f]} (row {row} of the set) "
                             "contains NaN or inf")
        return out

    def take(self, idx) -> np.ndarray:
        """Rows ``idx`` (k,) of X, shape (k, d) in :attr:`dtype`; each block holding some read once."""
        idx = np.asarray(idx, dtype=np.intp)
        out = np.empty((idx.size, self.d), dtype=self.dtype)
        blocks = idx // self.block_rows
        for b, (start, X) in zip(np.unique(blocks), self.generate(np.unique(blocks))):
            sel = np.flatnonzero(blocks == b)
            out[sel] = X[idx[sel] - start]
        return out

    def load(self) -> np.ndarray:
        """All of X (n, d) in :attr:`dtype` (for a set that fits the memory budget); no row group kept after."""
        try:
            return self.rows(0, self.n)
        finally:
            self._cache.clear()

    def nbytes(self, dtype=None) -> int:
        """Bytes of X held whole in ``dtype`` (default the block dtype)."""
        return int(self.n) * int(self.d) * np.dtype(dtype or self.dtype).itemsize

    def _rel(self, f: int) -> str:
        path = self.files[f]
        return os.path.relpath(path, self._root) if self._root and path != self._root else os.path.basename(path)

    def _read(self, f: int, a: int, e: int, into: np.ndarray) -> None:
        """Rows ``a .. e-1`` of file ``f`` (any numeric dtype) into ``into`` (e - a, d), converted to its dtype.

        A local ``.npy`` shard is read with ``readinto`` straight into ``into`` when the dtypes agree
        (else through one buffer of the rows): no mapping outlives the call, so a process holding blocks
        keeps no file pages resident beyond its rows.
        """
        if self.layout == "npy":
            dtype, offset = self._meta[f]
            width = self.d * dtype.itemsize
            if self.local:
                buf = into if dtype == into.dtype else np.empty((e - a, self.d), dtype=dtype)
                with open(self.files[f], "rb", buffering=0) as fh:
                    fh.seek(offset + a * width)
                    view, got = memoryview(buf.reshape(-1)).cast("B"), 0
                    while got < len(view):
                        step = fh.readinto(view[got:])
                        if not step:
                            raise InputError(f"{self.name}: {self._rel(f)} is truncated (rows {a}..{e - 1} missing)")
                        got += step
                if buf is not into:
                    into[...] = buf
                return
            with self.fs.open_input_file(self.files[f]) as fh:
                buf = fh.read_at((e - a) * width, offset + a * width)
            if len(buf) != (e - a) * width:
                raise InputError(f"{self.name}: {self._rel(f)} is truncated (rows {a}..{e - 1} missing)")
            into[...] = np.frombuffer(buf, dtype=dtype).reshape(e - a, self.d)
            return
        groups = self._meta[f]                      # rows per row group
        bounds = np.concatenate([[0], np.cumsum(groups)])
        at = 0
        g = int(np.searchsorted(bounds, a, side="right")) - 1
        while a < e:
            Xg = self._row_group(f, g)
            lo, hi = a - bounds[g], min(e, bounds[g + 1]) - bounds[g]
            into[at:at + hi - lo] = Xg[lo:hi]
            at += hi - lo
            a += hi - lo
            g += 1

    def _row_group(self, f: int, g: int) -> np.ndarray:
        """Row group ``g`` of Parquet file ``f`` as (rows, d); the last one read is kept (sequential passes)."""
        key = ("rg", f, g)
        if key not in self._cache:
            from ..store.files import read_row_group

            table = read_row_group(self.fs, self.files[f], g)
            self._cache.clear()
            self._cache[key] = table_rows(table, self.d, f"{self.name}: {self._rel(f)} row group {g}")
        return self._cache[key]

    @property
    def local(self) -> bool:
        """Whether the files are on the local filesystem (read with plain file reads)."""
        if self._local is None:
            from ..store.files import is_local

            self._local = is_local(self._fs)
        return self._local

    @property
    def fs(self):
        """The pyarrow filesystem of the files (a local one made again after unpickling)."""
        if self._fs is None:
            from ..store.files import local_filesystem

            self._fs = local_filesystem()
        return self._fs

    def release(self) -> None:
        """Drop the row group kept for sequential reads (and return Arrow's unused memory to the system)."""
        if self._cache:
            self._cache.clear()
            if self.layout == "parquet":
                import pyarrow as pa

                pa.default_memory_pool().release_unused()

    def __getstate__(self):            # a map may send the source to other processes: no cached rows
        state = dict(self.__dict__)
        state["_cache"] = {}
        if self.local:                 # a process reading local .npy shards needs no pyarrow (~30 MiB of RSS)
            state["_fs"] = None
        return state

    # -- validation and identity ----------------------------------------------------------------
    @property
    def digest(self) -> str:
        """SHA-256 of the layout, shape, dtype and every file's name, size and bytes (see the module docstring)."""
        if self._digest is None:
            self.validate()
        return self._digest

    @property
    def content_sha256(self) -> str:
        """The digest (the name :func:`mc_hull.jobs.hulltest.test_key` reads from any data)."""
        return self.digest

    def validate(self) -> "FileSource":
        """Stream every file once: hash its bytes and check every row finite (and ragged lists); returns self."""
        files = []
        for f, path in enumerate(self.files):
            h = hashlib.sha256()
            size = 0
            with self.fs.open_input_stream(path) as fh:
                while True:
                    chunk = fh.read(READ_BYTES)
                    if not chunk:
                        break
                    h.update(chunk)
                    size += len(chunk)
            files.append([self._rel(f), size, h.hexdigest()])
        for start in range(0, self.n, self.block_rows):      # finite, ragged rows, truncation
            self.rows(start, min(self.n, start + self.block_rows))
        self._cache.clear()
        ident = {"layout": self.layout, "n": self.n, "d": self.d, "dtype": self.dtype.str, "files": files}
        self._digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()
        return self

    def describe(self) -> dict:
        """What a hull-test record says about its data."""
        return {"source": self.uri, "layout": self.layout, "files": len(self.files), "n": self.n, "d": self.d,
                "dtype": self.dtype.name, "content_sha256": self.digest, "file_sha256": None,
                "image_shape": None}


def table_rows(table, d: int | None, where: str) -> np.ndarray:
    """Rows of an Arrow table (one list column of rows, or numeric columns), keeping float32.

    Returns
    -------
    ndarray, shape (rows, d)
        float32 for float16/float32 data, float64 otherwise.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.types as pat

    if table.num_columns == 1 and _is_list(table.schema[0].type):
        col = table.column(0).combine_chunks()
        if col.null_count:
            raise InputError(f"{where}: column {table.column_names[0]!r} has missing rows")
        lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
        width = int(lengths[0]) if len(lengths) else (d or 0)
        if len(lengths) and (lengths.min() != lengths.max() or (d is not None and width != d)):
            bad = lengths != (d if d is not None else width)
            raise InputError(f"{where}: rows have ragged d ({int(lengths[np.argmax(bad)])} values in row "
                             f"{int(np.argmax(bad))}, expected {d if d is not None else width})")
        flat = col.flatten()
        if not (pat.is_integer(flat.type) or pat.is_floating(flat.type)):
            raise InputError(f"{where}: list column {table.column_names[0]!r} is not numeric ({flat.type})")
        if flat.null_count:
            raise InputError(f"{where}: list column {table.column_names[0]!r} has missing values")
        values = flat.to_numpy(zero_copy_only=False)
        dtype = np.float32 if pat.is_floating(flat.type) and flat.type.bit_width <= 32 else np.float64
        return values.astype(dtype, copy=False).reshape(len(col), width)
    for fld in table.schema:
        if not (pat.is_integer(fld.type) or pat.is_floating(fld.type) or pat.is_boolean(fld.type)):
            raise InputError(f"{where}: column {fld.name!r} is not numeric ({fld.type})")
    small = all(pat.is_floating(f.type) and f.type.bit_width <= 32 for f in table.schema)
    out = np.empty((table.num_rows, table.num_columns), dtype=np.float32 if small else np.float64)
    for j, col in enumerate(table.columns):
        if col.null_count:
            raise InputError(f"{where}: column {table.column_names[j]!r} has missing values")
        out[:, j] = col.cast(pa.float32() if small else pa.float64()).to_numpy(zero_copy_only=False)
    return out


def _is_list(t) -> bool:
    import pyarrow.types as pat

    return pat.is_list(t) or pat.is_large_list(t) or pat.is_fixed_size_list(t)


def _listing(fs, path: str, name: str, text: str) -> list[str]:
    """Files of a directory (not hidden, not nested), sorted by name; or the single file ``path``."""
    from ..store.files import listing

    files = listing(fs, path)
    if files is None:
        raise InputError(f"{name}: no such file or directory: {text}")
    return files


def open_source(text: str, name: str = "--train", *, block_elems: int = BLOCK_ELEMS,
                validate: bool = True) -> FileSource:
    """A :class:`FileSource` over ``text`` (a directory, a file, or a URI), headers read and checked.

    Parameters
    ----------
    text : str
        Local path or URI of a directory of ``.npy`` shards, or of a Parquet file or directory.
    name : str
        The flag it was given with (error messages).
    block_elems : int
        Coordinates per block; ``block_rows = max(1, block_elems // d)``.
    validate : bool
        Also stream every byte: digest and finiteness (:meth:`FileSource.validate`).

    Raises
    ------
    InputError
        One line: what is wrong and where.
    """
    fs, path = _filesystem(text, name)
    try:
        files = _listing(fs, path, name, text)
    except InputError:
        raise
    except OSError as exc:
        raise InputError(f"{name}: cannot list {text}: {str(exc).splitlines()[0]}") from None
    npy = [p for p in files if p.endswith(NPY_SUFFIXES)]
    par = [p for p in files if p.endswith(PARQUET_SUFFIXES)]
    if npy and par:
        raise InputError(f"{name}: {text} mixes .npy and Parquet files; give one layout")
    if not npy and not par:
        raise InputError(f"{name}: {text} holds no .npy or .parquet files")
    try:
        if npy:
            src = _open_npy(fs, path, npy, text, name)
        else:
            src = _open_parquet(fs, path, par, text, name)
    except InputError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{name}: cannot read {text}: {reason}") from None
    if src.n == 0:
        raise InputError(f"{name}: {text} holds no rows")
    if src.d == 0:
        raise InputError(f"{name}: {text} has rows of dimension 0")
    src.block_rows = max(1, int(block_elems) // src.d)
    if validate:
        try:
            src.validate()
        except InputError:
            raise
        except (OSError, ValueError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(f"{name}: cannot read {text}: {reason}") from None
    return src


def _open_npy(fs, root, paths, text, name) -> FileSource:
    import numpy.lib.format as npf

    counts, meta, d0, first = [], [], None, None
    rel = (lambda p: os.path.relpath(p, root) if p != root else os.path.basename(p))
    for p in paths:
        with fs.open_input_file(p) as fh:
            try:
                version = npf.read_magic(fh)
                shape, fortran, dtype = (npf.read_array_header_1_0(fh) if version == (1, 0)
                                         else npf.read_array_header_2_0(fh))
            except ValueError as exc:
                raise InputError(f"{name}: {rel(p)} is not a .npy array ({str(exc).splitlines()[0]})") from None
            offset = fh.tell()
            size = fh.size()
        _check_dtype(dtype, rel(p), name)
        if len(shape) != 2:
            raise InputError(f"{name}: {rel(p)} has shape {shape}; each shard must be 2-D (rows, d)")
        if fortran and shape[0] > 1 and shape[1] > 1:
            raise InputError(f"{name}: {rel(p)} is stored in Fortran order; save it C-ordered "
                             "(np.save(path, np.ascontiguousarray(a)))")
        if d0 is None:
            d0, first = shape[1], rel(p)
        elif shape[1] != d0:
            raise InputError(f"{name}: ragged d: {rel(p)} has d = {shape[1]}, {first} has d = {d0}")
        if size - offset < shape[0] * shape[1] * dtype.itemsize:
            raise InputError(f"{name}: {rel(p)} is truncated ({size - offset} bytes of data, "
                             f"{shape[0] * shape[1] * dtype.itemsize} expected)")
        counts.append(int(shape[0]))
        meta.append((np.dtype(dtype), offset))
    return FileSource(uri=text, layout="npy", files=list(paths), counts=counts, n=int(sum(counts)), d=int(d0),
                      dtype=_block_dtype(m[0] for m in meta), block_rows=1, name=name, _fs=fs, _root=root,
                      _meta=meta)


def _open_parquet(fs, root, paths, text, name) -> FileSource:
    import pyarrow.types as pat

    from ..store.files import parquet_metadata, read_row_group

    rel = (lambda p: os.path.relpath(p, root) if p != root else os.path.basename(p))
    counts, meta, schema0, d, small = [], [], None, None, True
    for p in paths:
        try:
            md = parquet_metadata(fs, p)
        except Exception as exc:  # noqa: BLE001 - ArrowInvalid for a damaged footer
            raise InputError(f"{name}: {rel(p)} is not a Parquet file ({str(exc).splitlines()[0]})") from None
        schema = md.schema.to_arrow_schema()
        if schema0 is None:
            schema0, first = schema, rel(p)
            if schema.names == []:
                raise InputError(f"{name}: {rel(p)} has no columns")
            if len(schema) == 1 and _is_list(schema[0].type):
                t = schema[0].type
                if not (pat.is_integer(t.value_type) or pat.is_floating(t.value_type)):
                    raise InputError(f"{name}: list column {schema.names[0]!r} is not numeric ({t.value_type})")
                small = pat.is_floating(t.value_type) and t.value_type.bit_width <= 32
                d = t.list_size if pat.is_fixed_size_list(t) else None
            else:
                for fld in schema:
                    if not (pat.is_integer(fld.type) or pat.is_floating(fld.type) or pat.is_boolean(fld.type)):
                        raise InputError(f"{name}: column {fld.name!r} of {rel(p)} is not numeric ({fld.type}); "
                                         "give one list column of rows or numeric columns only")
                small = all(pat.is_floating(f.type) and f.type.bit_width <= 32 for f in schema)
                d = len(schema)
        elif not schema.equals(schema0):
            raise InputError(f"{name}: {rel(p)} has schema {_short(schema)}, {first} has {_short(schema0)}")
        groups = [md.row_group(g).num_rows for g in range(md.num_row_groups)]
        counts.append(int(sum(groups)))
        meta.append(groups)
    src = FileSource(uri=text, layout="parquet", files=list(paths), counts=counts, n=int(sum(counts)), d=d or 0,
                     dtype=np.dtype(np.float32 if small else np.float64), block_rows=1, name=name, _fs=fs,
                     _root=root, _meta=meta)
    if d is None and src.n:          # a variable-length list column: d from the first row
        f = next(i for i, c in enumerate(counts) if c)
        g = next(i for i, c in enumerate(meta[f]) if c)
        first_rows = read_row_group(fs, paths[f], g)
        src.d = table_rows(first_rows, None, f"{name}: {rel(paths[f])}").shape[1]
    return src


def _short(schema) -> str:
    return "(" + ", ".join(f"{f.name}: {f.type}" for f in schema) + ")"
