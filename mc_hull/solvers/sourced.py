"""The distance engine's operations as passes over a point source, and a source that holds X in its own dtype.

:func:`mc_hull.solvers.distance.project` reads the training set through four
operations (:class:`~.distance.HeldRows` for an array): ``ax``, ``price``,
``nearest`` and ``rows``.  :class:`SourceRows` gives the same over any point source
(``n``, ``d``, ``block_rows``, ``generate``, ``take``): every operation that touches
all N rows is one pass over the blocks serving all open queries of a batch in one
product per block (:func:`~.colgen.price` and :func:`~.distance.nearest` on the
block, mapped to the frame in float64 first), and ``rows`` fetches the few rows a
working set needs.  So the certified distance runs over an X that is never held
in float64, or never held at all.

:class:`HeldSource` holds X as given (float32 stays float32: half the memory), and
yields blocks as views.
"""

from __future__ import annotations

import numpy as np

from .colgen import price
from .distance import nearest
from .stream import PointSource, StreamSolver

#: Coordinates per block of a :class:`HeldSource` (2^22: a 32 MiB float64 frame copy per block).
HELD_BLOCK_ELEMS = 1 << 22


class HeldSource(PointSource):
    """A point source over an array held in memory in its own dtype (float32 or float64).

    Parameters
    ----------
    X : ndarray, shape (N, d)
        Finite values (validated by the caller); not copied.
    block_rows : int, optional
        Default ``HELD_BLOCK_ELEMS // d``.
    """

    def __init__(self, X: np.ndarray, block_rows: int | None = None):
        self.X = X
        self.n, self.d = X.shape
        self.dtype = X.dtype
        self.block_rows = int(block_rows or max(1, HELD_BLOCK_ELEMS // max(self.d, 1)))

    def generate(self, block_ids):
        for b in block_ids:
            start = int(b) * self.block_rows
            yield start, self.X[start:start + self.block_rows]

    def take(self, idx) -> np.ndarray:
        return self.X[np.asarray(idx, dtype=np.intp)]

    def nbytes(self) -> int:
        return int(self.X.nbytes)


class FrameBlock(np.ndarray):
    """Rows already in frame coordinates (a view): a :class:`PremappedFrame` passes them through."""


class PremappedFrame:
    """A :class:`~.stream.StreamFrame` whose ``map`` leaves :class:`FrameBlock` rows as they are."""

    def __init__(self, frame):
        self.__dict__.update(frame.__dict__)
        self._frame = frame

    def map_pre(self, A):
        return self._frame.map_pre(A)

    def map(self, A):
        if isinstance(A, FrameBlock):
            return A.view(np.ndarray)
        return self._frame.map(A)


class MappedSource(PointSource):
    """X held once in float64 frame coordinates: the blocks of ``raw`` mapped as every pass would map them.

    The frame is ``raw``'s (one pass over its blocks); the rows are bit for bit those that
    ``frame.map`` gives block by block, so every pass returns what it returns over ``raw``,
    without mapping X again.  Memory: ``8 n d`` bytes (the raw rows are read block by block).

    Parameters
    ----------
    raw : PointSource
        A held or file source (any dtype).
    """

    def __init__(self, raw):
        frame = FramedStreamSolver().frame(raw)
        self.n, self.d, self.block_rows = raw.n, raw.d, raw.block_rows
        self.dtype = np.dtype(np.float64)
        self.Y = np.empty((self.n, self.d))
        for start, X in raw.generate(range(raw.n_blocks)):
            self.Y[start:start + len(X)] = frame.map(X)
        self.__dict__["stream_frame"] = PremappedFrame(frame)

    def generate(self, block_ids):
        for b in block_ids:
            start = int(b) * self.block_rows
            yield start, self.Y[start:start + self.block_rows].view(FrameBlock)

    def take(self, idx) -> np.ndarray:
        return self.Y[np.asarray(idx, dtype=np.intp)].view(FrameBlock)

    def nbytes(self) -> int:
        return int(self.Y.nbytes)


def held(raw, budget: int):
    """X held for passes within ``budget`` bytes: in float64 frame coordinates when ``8 n d`` fits
    (:class:`MappedSource`: no mapping per pass), else in its own dtype (:class:`HeldSource`, mapped per pass).

    ``raw`` is a :class:`HeldSource` or a file source (loaded whole only in the second case).
    """
    if raw.n * raw.d * 8 <= budget:
        return MappedSource(raw)
    return raw if isinstance(raw, HeldSource) else HeldSource(raw.load())


class FramedStreamSolver(StreamSolver):
    """:class:`~.stream.StreamSolver` that computes a source's frame once and keeps it on the source.

    A hull test decides its shards one call at a time (membership, then distances, then the
    distance engine's undecided rest): the frame pass runs once per source object, not per call.
    """

    def frame(self, source):
        cached = getattr(source, "__dict__", {}).get("stream_frame")
        if cached is None:
            cached = super().frame(source)
            try:
                source.__dict__["stream_frame"] = cached
            except (AttributeError, TypeError):    # a frozen or slotted source: computed per call
                pass
        return cached


class SourceRows:
    """:func:`~.distance.project`'s operations over a point source in a frame (passes over blocks).

    Parameters
    ----------
    source : PointSource
        With ``take(idx)`` (rows by global index, any dtype).
    frame : mc_hull.solvers.stream.StreamFrame
        Maps raw rows to frame coordinates (float64).
    passes : callable, optional
        ``passes(fn, source, context) -> list`` of per-range results (``StreamSolver._pass``);
        serial over all blocks by default.
    """

    def __init__(self, source, frame, passes=None):
        self.source, self.frame = source, frame
        self.shape = (source.n, source.d)
        self.ax = float(np.max(np.abs(frame.bounds)))   # frame extremes per coordinate: max |X~|
        self._passes = passes
        self.count = 0

    def _run(self, fn, context):
        self.count += 1
        if self._passes is not None:
            return self._passes(fn, self.source, context)
        return [fn(context, (0, self.source.n_blocks))]

    def price(self, directions, k, lowest=None):
        """As :func:`~.colgen.price` over all N rows (chunks are taken per block; indices are global)."""
        parts = self._run(_price_pass, (self.source, self.frame, np.asarray(directions, dtype=np.float64),
                                        k, lowest))
        best = np.max([p[0] for p in parts], axis=0)
        top_val = np.concatenate([p[1] for p in parts], axis=1)
        top_idx = np.concatenate([p[2] for p in parts], axis=1)
        order = np.argsort(-top_val, axis=1, kind="stable")[:, :max(1, k)]
        top_val, top_idx = np.take_along_axis(top_val, order, 1), np.take_along_axis(top_idx, order, 1)
        if lowest is None:
            return best, top_idx, top_val
        low_val = np.concatenate([p[3] for p in parts], axis=1)
        low_idx = np.concatenate([p[4] for p in parts], axis=1)
        order = np.argsort(low_val, axis=1, kind="stable")[:, :lowest]
        return best, top_idx, top_val, np.take_along_axis(low_idx, order, 1)

    def nearest(self, queries):
        """As :func:`~.distance.nearest`: (distance (B,), global row (B,)) of the nearest row per query."""
        parts = self._run(_nearest_pass, (self.source, self.frame, np.asarray(queries, dtype=np.float64)))
        dist = np.array([p[0] for p in parts])
        idx = np.array([p[1] for p in parts])
        pick = np.argmin(dist, axis=0)
        cols = np.arange(dist.shape[1])
        return dist[pick, cols], idx[pick, cols]

    def rows(self, idx) -> np.ndarray:
        """Rows ``idx`` (k,) in frame coordinates, (k, d) float64."""
        idx = np.asarray(idx, dtype=np.intp)
        if idx.size == 0:
            return np.zeros((0, self.shape[1]))
        uniq, inv = np.unique(idx, return_inverse=True)
        return self.frame.map(self.source.take(uniq))[inv.reshape(-1)]

    def radius(self) -> float:
        """``max_i ||X~_i||_2`` in frame units (one pass)."""
        return float(max(self._run(_radius_pass, (self.source, self.frame))))


# -- passes over block ranges (module level: a map may run them in other processes) ---------------
def block_price(Y, W, k, lowest=None):
    """:func:`~.colgen.price` on one block ``Y`` (R, d): one product ``W @ Y.T`` (B, R), no copy of Y.

    Chunks as :func:`~.colgen.price`'s small path (k chunks of L = ceil(R / k) rows, the last padded with
    its last row); also returns the lowest scores (B, lowest) of the coarse chunks.
    """
    S = W @ Y.T
    B, R = S.shape
    k = max(1, min(k, R))
    L = -(-R // k)
    pad = np.minimum(np.arange(k * L), R - 1)
    Sp = S if k * L == R else S[:, pad]
    j = Sp.reshape(B, k, L).argmax(axis=2)
    top_idx = pad[np.arange(k) * L + j]
    top_val = np.take_along_axis(S, top_idx, axis=1)
    best = top_val.max(axis=1)
    if lowest is None:
        return best, top_idx, top_val
    n_low = min(lowest, k)
    edges = [-(-lc * k // n_low) * L for lc in range(n_low + 1)] if n_low else []
    low_idx = np.empty((B, n_low), dtype=np.intp)
    for lc in range(n_low):
        a, e = edges[lc], edges[lc + 1]
        low_idx[:, lc] = pad[a + Sp[:, a:e].argmin(axis=1)]
    return best, top_idx, top_val, low_idx, np.take_along_axis(S, low_idx, axis=1)


def _price_pass(context, block_range):
    """Best score per direction, and the ``k`` best chunk winners and ``lowest`` coarse-chunk losers so far."""
    source, frame, W, k, lowest = context
    B = W.shape[0]
    best = np.full(B, -np.inf)
    tv, ti, lv, li = [np.zeros((B, 0))], [np.zeros((B, 0), np.intp)], [np.zeros((B, 0))], [np.zeros((B, 0), np.intp)]
    for start, X in source.generate(range(*block_range)):
        Y = frame.map(X)
        if lowest is not None:
            b, t_idx, t_val, l_idx, l_val = block_price(Y, W, k, lowest)
            lv, li = _best_k(np.hstack([lv[0], l_val]), np.hstack([li[0], l_idx + start]), lowest, 1)
        else:
            b, t_idx, t_val = block_price(Y, W, k)
        np.maximum(best, b, out=best)
        tv, ti = _best_k(np.hstack([tv[0], t_val]), np.hstack([ti[0], t_idx + start]), k, -1)
    return best, tv[0], ti[0], lv[0], li[0]


def _best_k(val, idx, k, sign):
    order = np.argsort(sign * val, axis=1, kind="stable")[:, :max(k, 0)]
    return [np.take_along_axis(val, order, 1)], [np.take_along_axis(idx, order, 1)]


def _nearest_pass(context, block_range):
    """Nearest row (ℓ2, re-measured) of some blocks to each frame query: (distance, global index)."""
    source, frame, Q = context
    B = Q.shape[0]
    dist, index = np.full(B, np.inf), np.zeros(B, dtype=np.intp)
    for start, X in source.generate(range(*block_range)):
        dd, i = nearest(frame.map(X), Q)
        better = dd < dist
        dist[better], index[better] = dd[better], i[better] + start
    return dist, index


def _radius_pass(context, block_range):
    source, frame = context
    r = 0.0
    for _, X in source.generate(range(*block_range)):
        if len(X):
            r = max(r, float(np.max(np.linalg.norm(frame.map(X), axis=1))))
    return r
