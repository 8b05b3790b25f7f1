"""Array data for ``mc-hull hull-test``: loading and validating files, the digits split, and reductions."""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..store import read_table_file

#: File formats recognised by their first bytes (the extension is not trusted).
MAGIC = {b"\x93NUMPY": "npy", b"PK\x03\x04": "npz", b"PAR1": "parquet", b"ARROW1": "arrow",
         b"FEA1": "feather-v1"}
FORMATS_TEXT = ".npy, .npz, Parquet or Arrow/Feather"
#: Reduction kinds accepted by ``--reduce``.
REDUCTIONS = ("none", "pca", "crop", "subsample", "random-projection")
#: Reductions that need an image geometry (height, width[, channels]).
IMAGE_REDUCTIONS = ("crop", "subsample")
#: Built-in data sets (``--dataset``).
DATASETS = ("digits",)
#: Fraction of the digits kept for testing by :func:`digits_split`.
DIGITS_TEST_FRACTION = 0.2


@dataclass(frozen=True)
class ArrayData:
    """One validated array of samples.

    Attributes
    ----------
    values : ndarray, shape (n, d)
        Finite float64 samples, one per row (images flattened row-major).
    image_shape : tuple of int or None
        ``(h, w)`` or ``(h, w, c)`` when the samples are known to be images.
    source : str
        The file (and member) it came from, or a data set name.
    file_sha256 : str or None
        SHA-256 of the file's bytes (None for built-in data sets).
    """

    values: np.ndarray
    image_shape: tuple[int, ...] | None
    source: str
    file_sha256: str | None = None

    @property
    def content_sha256(self) -> str:
        """SHA-256 of the shape and float64 bytes of :attr:`values` (what the answers depend on)."""
        h = hashlib.sha256(repr(self.values.shape).encode())
        h.update(np.ascontiguousarray(self.values).tobytes())
        return h.hexdigest()


# -- loading -----------------------------------------------------------------------
def split_member(text: str) -> tuple[str, str | None]:
    """``"FILE[:MEMBER]"`` -> (path, member); MEMBER names an .npz array or Parquet/Arrow columns."""
    if os.path.exists(text) or ":" not in text:
        return text, None
    path, _, member = text.rpartition(":")
    return path, member or None


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sniff(path: str, name: str) -> str:
    """The format of ``path`` from its first bytes; InputError if missing or not an array file."""
    if not os.path.exists(path):
        raise InputError(f"{name}: no such file: {path}")
    if not os.path.isfile(path):
        raise InputError(f"{name}: not a file: {path}")
    with open(path, "rb") as fh:
        head = fh.read(8)
    for magic, fmt in MAGIC.items():
        if head.startswith(magic):
            return fmt
    raise InputError(f"{name}: {path} is not an array file (expected {FORMATS_TEXT})")


def load_array(text: str, name: str = "--train") -> ArrayData:
    """Load and validate ``FILE[:MEMBER]`` (.npy, .npz, Parquet, Arrow IPC or Feather).

    Parameters
    ----------
    text : str
        A path, optionally followed by ``:NAME`` (the array of an .npz) or
        ``:COL,COL`` (columns of a table; default every column).
    name : str
        The flag the file was given with, used in error messages.

    Returns
    -------
    ArrayData
        ``values`` of shape (n, d); arrays of shape (n, h, w) or (n, h, w, c)
        are flattened and keep their ``image_shape``.  Table columns become
        the d coordinates of each row; a single list column holds whole rows.

    Raises
    ------
    InputError
        Missing file, not an array, non-numeric data, empty, NaN or inf.
    """
    path, member = split_member(text)
    fmt = sniff(path, name)
    try:
        if fmt in ("npy", "npz"):
            arr = _load_numpy(path, fmt, member, name)
        else:
            arr = table_to_array(read_table_file(path), member, name)
    except InputError:
        raise
    except (ValueError, OSError, EOFError) as exc:  # truncated or damaged files, object arrays
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{name}: cannot read {path} as {fmt}: {reason}") from None
    source = path if member is None else f"{path}:{member}"
    values, image_shape = as_samples(arr, name)
    return ArrayData(values, image_shape, source, file_sha256(path))


def _load_numpy(path: str, fmt: str, member: str | None, name: str) -> np.ndarray:
    if fmt == "npy":
        if member is not None:
            raise InputError(f"{name}: {path} is a single .npy array; remove ':{member}'")
        return np.load(path, allow_pickle=False)
    with np.load(path, allow_pickle=False) as npz:
        names = list(npz.files)
        if not names:
            raise InputError(f"{name}: {path} holds no arrays")
        if member is None:
            if len(names) != 1:
                raise InputError(f"{name}: {path} holds {len(names)} arrays; name one as "
                                 f"{path}:NAME (one of {', '.join(names)})")
            member = names[0]
        if member not in names:
            raise InputError(f"{name}: {path} has no array {member!r} (it has {', '.join(names)})")
        return npz[member]


def table_to_array(table, columns: str | None, name: str) -> np.ndarray:
    """Rows of an Arrow table as an (n, d) array: numeric columns, or one list column of rows."""
    import pyarrow as pa
    import pyarrow.types as pat

    if columns is not None:
        wanted = [c.strip() for c in columns.split(",") if c.strip()]
        missing = [c for c in wanted if c not in table.column_names]
        if missing:
            raise InputError(f"{name}: no column {missing[0]!r} (columns: {', '.join(table.column_names)})")
        table = table.select(wanted)
    if table.num_columns == 0:
        raise InputError(f"{name}: the table has no columns")
    if table.num_columns == 1 and (pat.is_list(table.schema[0].type) or pat.is_fixed_size_list(table.schema[0].type)
                                   or pat.is_large_list(table.schema[0].type)):
        from .filesource import table_rows     # the one reader of a list column of rows

        return table_rows(table, None, name).astype(np.float64, copy=False)
    for field in table.schema:
        if not (pat.is_integer(field.type) or pat.is_floating(field.type) or pat.is_boolean(field.type)):
            raise InputError(f"{name}: column {field.name!r} is not numeric ({field.type}); "
                             "select numeric columns with FILE:COL,COL")
    out = np.empty((table.num_rows, table.num_columns), dtype=np.float64)
    for j, col in enumerate(table.columns):
        # nulls become NaN, which as_samples reports with the row
        out[:, j] = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
    return out


def as_samples(arr, name: str) -> tuple[np.ndarray, tuple[int, ...] | None]:
    """Validate an array of samples and flatten it.

    Parameters
    ----------
    arr : ndarray, shape (n, d), (n, h, w) or (n, h, w, c)
    name : str

    Returns
    -------
    values : ndarray, shape (n, d)
        Finite float64.
    image_shape : tuple of int or None
        ``arr.shape[1:]`` for 3-D and 4-D input.
    """
    arr = np.asarray(arr)
    if arr.dtype.kind == "c":
        raise InputError(f"{name}: complex values (dtype {arr.dtype}) are refused, not truncated: "
                         "give real samples (e.g. stack real and imaginary parts as columns)")
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{name}: not a numeric array (dtype {arr.dtype})")
    if arr.ndim < 2 or arr.ndim > 4:
        raise InputError(f"{name}: expected shape (n, d), (n, h, w) or (n, h, w, c), got {arr.shape}")
    if arr.shape[0] == 0 or math.prod(arr.shape[1:]) == 0:
        raise InputError(f"{name}: empty array (shape {arr.shape})")
    values = np.ascontiguousarray(arr.reshape(arr.shape[0], -1), dtype=np.float64)
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise InputError(f"{name}: {len(rows)} row(s) contain NaN or inf (first: row {rows[0]})")
    return values, (tuple(int(s) for s in arr.shape[1:]) if arr.ndim > 2 else None)


def check_pair(train: ArrayData, test: ArrayData) -> None:
    """Raise InputError unless train and test have the same dimension (and image shape, when both have one)."""
    dt, de = train.values.shape[1], test.values.shape[1]
    if dt != de:
        raise InputError(f"dimension mismatch: train has d = {dt}, test has d = {de}")
    if train.image_shape and test.image_shape and train.image_shape != test.image_shape:
        raise InputError(f"image shape mismatch: train {train.image_shape}, test {test.image_shape}")


# -- the digits data set -------------------------------------------------------------
def digits_split(seed: int = 0, test_fraction: float = DIGITS_TEST_FRACTION) -> tuple[ArrayData, ArrayData]:
    """scikit-learn's bundled 8x8 digits (1797 images, 64 pixels in 0..16), split by ``seed``.

    Returns
    -------
    train, test : ArrayData
        ``values`` of shape (n_train, 64) and (n_test, 64) with
        ``n_test = round(test_fraction * 1797)``; ``image_shape`` (8, 8).
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise InputError("--dataset digits needs scikit-learn, part of mc-hull's install: "
                         "pip install -e . (or pip install scikit-learn)") from None
    images = load_digits().images.astype(np.float64)  # (1797, 8, 8), shipped with scikit-learn
    order = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(0x6469,))).permutation(len(images))
    n_test = int(round(test_fraction * len(images)))
    test, train = images[np.sort(order[:n_test])], images[np.sort(order[n_test:])]
    return (ArrayData(train.reshape(len(train), -1), (8, 8), f"digits[seed={seed}]:train"),
            ArrayData(test.reshape(len(test), -1), (8, 8), f"digits[seed={seed}]:test"))


# -- reductions --------------------------------------------------------------------
@dataclass(frozen=True)
class Reduction:
    """A parsed ``--reduce`` value: ``kind`` in :data:`REDUCTIONS` and ``k`` (None for ``none``)."""

    kind: str
    k: int | None = None

    @property
    def label(self) -> str:
        return self.kind if self.k is None else f"{self.kind}:{self.k}"


def parse_reduce(text: str) -> Reduction:
    """Parse ``none``, ``pca:K``, ``crop:K``, ``subsample:K`` or ``random-projection:K`` (K >= 1)."""
    kind, sep, k = str(text).strip().partition(":")
    kind = kind.strip().lower()
    if kind not in REDUCTIONS:
        raise InputError(f"--reduce: unknown reduction {kind!r}; valid: none, "
                         + ", ".join(f"{r}:K" for r in REDUCTIONS[1:]))
    if kind == "none":
        if sep:
            raise InputError("--reduce: 'none' takes no K")
        return Reduction("none")
    try:
        value = int(k)
    except ValueError:
        raise InputError(f"--reduce: {kind}:K needs an integer K >= 1, got {k!r}") from None
    if value < 1:
        raise InputError(f"--reduce: K must be >= 1, got {value}")
    return Reduction(kind, value)


def image_geometry(d: int, image_shape: tuple[int, ...] | None) -> tuple[int, int, int]:
    """(h, w, c) of flattened images: ``image_shape``, else a square s x s grey image when d = s^2."""
    if image_shape is not None:
        if math.prod(image_shape) != d:
            raise InputError(f"--image-shape {image_shape} does not hold d = {d} values")
        h, w, *c = image_shape
        return int(h), int(w), int(c[0]) if c else 1
    s = math.isqrt(d)
    if s * s != d:
        raise InputError(f"--reduce: crop and subsample need images; d = {d} is not a square s*s, "
                         "so give (n, h, w[, c]) arrays or --image-shape H,W[,C]")
    return s, s, 1


@dataclass(frozen=True)
class FittedReduction:
    """A reduction fitted on the training set: ``x -> x[:, index]`` or ``x -> (x - mean) @ matrix``.

    Attributes
    ----------
    reduction : Reduction
    index : ndarray of int, shape (K_out,), or None
        Kept coordinates (crop, subsample).
    mean : ndarray, shape (d,), or None
        Training mean subtracted first (PCA).
    matrix : ndarray, shape (d, K), or None
        Projection (PCA components as columns, or a Gaussian matrix).
    """

    reduction: Reduction
    index: np.ndarray | None = None
    mean: np.ndarray | None = None
    matrix: np.ndarray | None = None

    @property
    def dims(self) -> int | None:
        """Output dimension (None for ``none``: unchanged)."""
        if self.index is not None:
            return len(self.index)
        return None if self.matrix is None else self.matrix.shape[1]

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Map samples of shape (n, d) to shape (n, K_out)."""
        if self.index is not None:
            return np.ascontiguousarray(values[:, self.index])
        if self.matrix is None:
            return values
        centred = values - self.mean if self.mean is not None else values
        return centred @ self.matrix


def window(size: int, k: int, kind: str) -> np.ndarray:
    """Indices of ``k`` of ``size`` rows: a centred run (crop) or evenly spaced ones (subsample)."""
    if kind == "crop":
        start = (size - k) // 2
        return np.arange(start, start + k)
    return (np.arange(k) * 2 + 1) * size // (2 * k)  # floor((i + 1/2) * size / k): stride size/k, centred


def image_index(reduction: Reduction, d: int, image_shape: tuple[int, ...] | None) -> np.ndarray:
    """Flat indices kept by ``crop:K`` or ``subsample:K``: a k x k grid of pixels (K = k^2), all channels."""
    h, w, c = image_geometry(d, image_shape)
    k = math.isqrt(reduction.k)
    if k * k != reduction.k or k > min(h, w):
        squares = ", ".join(str(i * i) for i in range(1, min(h, w) + 1))
        raise InputError(f"--reduce: {reduction.label}: K must be a square k*k with k <= {min(h, w)} "
                         f"for {h}x{w} images (one of {squares})")
    rows, cols = window(h, k, reduction.kind), window(w, k, reduction.kind)
    pix = (rows[:, None] * w + cols[None, :]).ravel()
    return (pix[:, None] * c + np.arange(c)[None, :]).ravel()


def fit(reduction: Reduction, train: ArrayData, seed: int = 0) -> FittedReduction:
    """Fit ``reduction`` on the training set only.

    Parameters
    ----------
    reduction : Reduction
    train : ArrayData
        ``values`` of shape (n, d).
    seed : int
        Seed of the Gaussian matrix of ``random-projection``.

    Returns
    -------
    FittedReduction
        ``pca:K`` (1 <= K <= min(n, d)) keeps the top K right singular vectors of
        the centred training set (sign fixed so each column's largest entry is
        positive; beyond the rank they span directions where the training set
        has no variance); ``random-projection:K`` (K <= d) multiplies by a
        d x K matrix of N(0, 1/K) entries from ``seed``.
    """
    X = train.values
    n, d = X.shape
    kind, k = reduction.kind, reduction.k
    if kind == "none":
        return FittedReduction(reduction)
    if kind in IMAGE_REDUCTIONS:
        return FittedReduction(reduction, index=image_index(reduction, d, train.image_shape))
    if kind == "pca":
        if k > min(n, d):
            raise InputError(f"--reduce: pca:{k}: K must be between 1 and min(n_train, d) = {min(n, d)}")
        mean = X.mean(axis=0)
        _, _, vt = np.linalg.svd(X - mean, full_matrices=False)
        comps = vt[:k].T
        signs = np.sign(comps[np.abs(comps).argmax(axis=0), np.arange(k)])
        return FittedReduction(reduction, mean=mean, matrix=comps * np.where(signs == 0, 1, signs))
    if k > d:
        raise InputError(f"--reduce: random-projection:{k}: K must be between 1 and d = {d}")
    gen = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(0x7270, d, k)))
    return FittedReduction(reduction, matrix=gen.standard_normal((d, k)) / np.sqrt(k))


def reduce_pair(reduction: Reduction, train: ArrayData, test: ArrayData,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fit on ``train``, apply to both: arrays of shape (n_train, K) and (n_test, K)."""
    check_pair(train, test)
    shape = train.image_shape or test.image_shape
    if shape != train.image_shape:
        train = ArrayData(train.values, shape, train.source, train.file_sha256)
    fitted = fit(reduction, train, seed)
    return fitted.apply(train.values), fitted.apply(test.values)
