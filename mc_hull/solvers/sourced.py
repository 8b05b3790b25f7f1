"""The distance engine's operations as passes over a point source; X held once in frame coordinates.

:func:`mc_hull.solvers.distance.project` reads the training set through four
operations (:class:`~.distance.HeldRows` for an array): ``ax``, ``price``,
``nearest`` and ``rows``.  :class:`SourceRows` gives the same over a point source's
:class:`~.sources.Streamed` view: every operation that touches all N rows is one pass
(``map_blocks``: in process, or wherever the source places its blocks) serving all open
queries of a batch in one product per block (:func:`block_price`, :func:`~.distance.nearest`
on the block, mapped to the frame in float64 first), and ``rows`` fetches the few rows a
working set needs.  So the certified distance runs over an X never held in float64, or
never held at all.

:func:`held` keeps X in memory for such passes: :class:`MappedSource` in float64 frame
coordinates (mapped once) when that fits, else an :class:`~.sources.ArraySource` in X's own
dtype (float32 stays float32; mapped per pass).
"""

from __future__ import annotations

import numpy as np

from .distance import nearest
from .sources import ArraySource, PointSource, Streamed, _clamped, _identity, row_slices, score_slices
from .stream import StreamSolver

#: Coordinates per block of X held for passes (2^22: a 32 MiB float64 frame copy per block).
HELD_BLOCK_ELEMS = 1 << 22


def held_array(X: np.ndarray) -> ArraySource:
    """An :class:`~.sources.ArraySource` over ``X`` (N, d) in its own dtype, in blocks of ``HELD_BLOCK_ELEMS``."""
    return ArraySource(X, block_rows=max(1, HELD_BLOCK_ELEMS // max(X.shape[1], 1)))


class FrameBlock(np.ndarray):
    """Rows already in frame coordinates (a view): a :class:`PremappedFrame` passes them through."""


class PremappedFrame:
    """A :class:`~.sources.StreamFrame` whose ``map`` leaves :class:`FrameBlock` rows as they are."""

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
        self.raw = raw                      # what a cluster's block holders read (raw rows, any dtype)
        frame = FramedStreamSolver()._training(raw).frame
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
    (:class:`MappedSource`: no mapping per pass), else in its own dtype (:func:`held_array`, mapped per pass).

    ``raw`` is an :class:`~.sources.ArraySource` or a file source (loaded whole only in the second case).
    """
    if raw.n * raw.d * 8 <= budget:
        return MappedSource(raw)
    return raw if isinstance(raw, ArraySource) else held_array(raw.load())


class FramedStreamSolver(StreamSolver):
    """:class:`~.stream.StreamSolver` that computes a source's frame once and keeps it on the source.

    A hull test decides a shard in several calls (membership or distances, then the distance
    engine's undecided rest): the frame pass runs once per source object, not per call.
    """

    def _training(self, source) -> Streamed:
        frame = getattr(source, "__dict__", {}).get("stream_frame")
        self.data = Streamed(source, map=self.map, parts=self.ranges, frame=frame)
        if frame is None:
            try:
                source.__dict__["stream_frame"] = self.data.frame
            except (AttributeError, TypeError):    # a frozen or slotted source: one frame pass per call
                pass
        return self.data


class SourceRows:
    """:func:`~.distance.project`'s operations over a point source's :class:`~.sources.Streamed` view.

    Parameters
    ----------
    source : PointSource
        Its ``take(idx)`` serves the rows of working sets (raw coordinates; the frame maps them).
    data : Streamed
        The source in its frame; its passes (``_pass``) count in ``data.passes``.
    """

    def __init__(self, source, data: Streamed):
        self.source, self.data, self.frame = source, data, data.frame
        self.shape = (int(source.n), int(source.d))
        self.ax = float(np.max(np.abs(data.bounds)))   # frame extremes per coordinate: max |X~|

    def price(self, directions, k, lowest=None):
        """As :func:`~.pricing.price` over all N rows (chunks are taken per block; indices are global)."""
        W = np.asarray(directions, dtype=np.float64)
        parts = self.data._pass(_price_pass, (self.frame, W, k, lowest))
        best = np.max([p[0] for p in parts], axis=0)
        top_val, top_idx = _best_k(np.hstack([p[1] for p in parts]), np.hstack([p[2] for p in parts]), k, -1)
        if lowest is None:
            return best, top_idx[0], top_val[0]
        _, low_idx = _best_k(np.hstack([p[3] for p in parts]), np.hstack([p[4] for p in parts]), lowest, 1)
        return best, top_idx[0], top_val[0], low_idx[0]

    def nearest(self, queries):
        """As :func:`~.distance.nearest`: (distance (B,), global row (B,)) of the nearest row per query."""
        parts = self.data._pass(_nearest_pass, (self.frame, np.asarray(queries, dtype=np.float64)))
        dist = np.array([p[0] for p in parts])
        idx = np.array([p[1] for p in parts])
        pick = np.argmin(dist, axis=0)
        cols = np.arange(dist.shape[1])
        return dist[pick, cols], idx[pick, cols]

    def rows(self, idx) -> np.ndarray:
        """Rows ``idx`` (k,) in frame coordinates, (k, d) float64 (the blocks holding them read once)."""
        idx = np.asarray(idx, dtype=np.intp)
        if idx.size == 0:
            return np.zeros((0, self.shape[1]))
        uniq, inv = np.unique(idx, return_inverse=True)
        return self.frame.map(self.source.take(uniq))[inv.reshape(-1)]

    def radius(self) -> float:
        """``max_i ||X~_i||_2`` in frame units (one pass)."""
        return float(max(self.data._pass(_radius_pass, self.frame)))


# -- passes over runs of blocks (module level: a map or a block holder may run them elsewhere) -----
def block_price(Y, W, k, lowest=None, map=None):
    """:func:`~.pricing.price` on one block ``Y`` (R, d): scores ``W @ map(Y).T``, in :func:`row_slices`.

    Chunks as :func:`~.pricing.price`'s small path (k chunks of L = ceil(R / k) rows, the last padded with
    its last row: a chunk of padding only has that row); also returns the lowest scores (B, lowest) of the
    coarse chunks.  ``map`` (default none) maps a slice of rows to frame coordinates: only one slice of
    mapped rows and its (B, slice) scores exist at a time, whatever R is.
    """
    map = map or _identity
    B, d = W.shape
    R = len(Y)
    k = max(1, min(k, R))
    L = -(-R // k)
    chunk = np.arange(k + 1) * L          # chunk c: padded positions chunk[c] .. chunk[c + 1] - 1
    t_start, t_stop = _clamped(chunk[:-1], chunk[1:], R)
    top_val, top_idx = np.full((B, k), -np.inf), np.zeros((B, k), dtype=np.intp)
    n_low = 0 if lowest is None else min(lowest, k)
    if n_low:
        edges = np.array([-(-lc * k // n_low) * L for lc in range(n_low + 1)])
        l_start, l_stop = _clamped(edges[:-1], edges[1:], R)
        low_val, low_idx = np.full((B, n_low), np.inf), np.zeros((B, n_low), dtype=np.intp)
    score_slices(W, Y, R, map, (t_start, t_stop, top_val, top_idx),
                 (l_start, l_stop, low_val, low_idx) if n_low else None)
    best = top_val.max(axis=1)
    if lowest is None:
        return best, top_idx, top_val
    if not n_low:
        return best, top_idx, top_val, np.zeros((B, 0), dtype=np.intp), np.zeros((B, 0))
    return best, top_idx, top_val, low_idx, low_val


def _price_pass(context, blocks):
    """Best score per direction, and the ``k`` best chunk winners and ``lowest`` coarse-chunk losers so far."""
    frame, W, k, lowest = context
    B = W.shape[0]
    best = np.full(B, -np.inf)
    tv, ti, lv, li = [np.zeros((B, 0))], [np.zeros((B, 0), np.intp)], [np.zeros((B, 0))], [np.zeros((B, 0), np.intp)]
    for start, X in blocks:
        if lowest is not None:
            b, t_idx, t_val, l_idx, l_val = block_price(X, W, k, lowest, map=frame.map)
            lv, li = _best_k(np.hstack([lv[0], l_val]), np.hstack([li[0], l_idx + start]), lowest, 1)
        else:
            b, t_idx, t_val = block_price(X, W, k, map=frame.map)
        np.maximum(best, b, out=best)
        tv, ti = _best_k(np.hstack([tv[0], t_val]), np.hstack([ti[0], t_idx + start]), k, -1)
    return best, tv[0], ti[0], lv[0], li[0]


def _best_k(val, idx, k, sign):
    order = np.argsort(sign * val, axis=1, kind="stable")[:, :max(k, 0)]
    return [np.take_along_axis(val, order, 1)], [np.take_along_axis(idx, order, 1)]


def _nearest_pass(context, blocks):
    """Nearest row (ℓ2, re-measured) of some blocks to each frame query: (distance, global index).

    A block is measured in :func:`row_slices`; a later slice wins only when strictly nearer, so ties keep
    the lowest row, as over the whole block."""
    frame, Q = context
    B = Q.shape[0]
    dist, index = np.full(B, np.inf), np.zeros(B, dtype=np.intp)
    for start, X in blocks:
        for a, e in row_slices(len(X), X.shape[1], B):
            dd, i = nearest(frame.map(X[a:e]), Q)
            better = dd < dist
            dist[better], index[better] = dd[better], i[better] + start + a
    return dist, index


def _radius_pass(frame, blocks):
    r = 0.0
    for _, X in blocks:
        for a, e in row_slices(len(X), X.shape[1]):
            r = max(r, float(np.max(np.linalg.norm(frame.map(X[a:e]), axis=1))))
    return r
