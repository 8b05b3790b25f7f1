"""Point sources and the training set as every solver sees it: in memory, or served by passes.

A *point source* holds the training set X (N, d) as row blocks that it can serve
in any order: :class:`ArraySource` wraps an array, :class:`mc_hull.samplers.KeyedSource`
regenerates blocks from their seeds, file sources read shards, and
``mc_hull.distributed.blocks.ActorSource`` keeps blocks in Ray actors spread over a
cluster's nodes.  Its one collective operation is :meth:`PointSource.map_blocks`:
run ``fn(context, blocks)`` over disjoint runs of blocks and return the partial
results *in block order*, so every reduction below (min, max, top-k by score then
row index, per-block sums) gives the same answer however the blocks are split
and wherever they live.

A solver sees the training set through a :class:`Training`, in frame coordinates
(:class:`~.certificates.Frame`):

- :class:`InMemory` — the framed array itself;
- :class:`Streamed` — a source and its :class:`StreamFrame`: every operation over all
  N rows (the frame, pricing, margins, nearest point) is one pass, a map-reduce over
  blocks serving all queries of a batch in one blocked matrix product; rows chosen by
  the solver (working sets, supports) are remembered as the passes meet them.

Blocks may be float32 (kept so in memory); each block is mapped to float64 frame
coordinates before any product, so a certificate's arithmetic, and its rounding
bound, are those of float64.
"""

from __future__ import annotations

import math

import numpy as np

from .. import progress
from . import certificates as cert

#: Rows per block of an :class:`ArraySource`.
ARRAY_BLOCK_ROWS = 1 << 16


class PointSource:
    """The point-source contract: ``n`` rows of dimension ``d`` in blocks of ``block_rows``.

    Subclasses set ``n``, ``d`` and ``block_rows`` and yield ``(start, rows)`` from
    ``generate(block_ids)``; every block but the last holds ``block_rows`` rows.
    """

    n: int
    d: int
    block_rows: int

    @property
    def n_blocks(self) -> int:
        return -(-self.n // self.block_rows)

    def generate(self, block_ids):
        """Yield ``(start, rows)`` (rows: ndarray (r, d), float64 or float32) for the given block ids."""
        raise NotImplementedError

    def map_blocks(self, fn, context, *, parts: int = 1, map=None) -> list:
        """``fn(context, blocks)`` over ``parts`` disjoint runs of blocks; partial results in block order.

        Parameters
        ----------
        fn : callable
            Module-level function ``fn(context, blocks) -> partial``; ``blocks`` iterates
            ``(start, rows)`` in increasing ``start``.
        context : object
            Shared by every call (shipped once by a distributed ``map``).
        parts : int
            Runs of blocks to split the pass into.
        map : callable, optional
            ``map(fn, units, context) -> list`` in order (``mc_hull.distributed.pool.Pool.map``); serial
            when omitted.
        """
        runs = block_runs(self.n_blocks, parts)
        if map is None:
            return [fn(context, self.generate(range(a, b))) for a, b in runs]
        return map(_on_run, runs, (self, fn, context))

    def take(self, idx: np.ndarray) -> np.ndarray:
        """Rows ``idx`` (k,) in raw coordinates, shape (k, d): each needed block served once."""
        idx = np.asarray(idx, dtype=np.intp)
        out = np.empty((idx.size, self.d))
        blocks = idx // self.block_rows
        wanted = np.unique(blocks)
        for b, (start, X) in zip(wanted, self.generate(wanted)):
            sel = np.flatnonzero(blocks == b)
            out[sel] = X[idx[sel] - start]
        return out


def block_runs(n_blocks: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous, non-empty runs ``(first, stop)`` of ``n_blocks`` blocks (fewer if too few blocks)."""
    parts = max(1, min(int(parts), int(n_blocks)))
    edges = [n_blocks * i // parts for i in range(parts + 1)]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _on_run(context, run):
    source, fn, inner = context
    return fn(inner, source.generate(range(*run)))


class ArraySource(PointSource):
    """A point source over an in-memory array ``X`` (N, d), float64 or float32 (kept as given)."""

    def __init__(self, X: np.ndarray, block_rows: int = ARRAY_BLOCK_ROWS):
        X = np.asarray(X)
        self.X = X if X.dtype in (np.float64, np.float32) else X.astype(np.float64)
        self.n, self.d = self.X.shape
        self.block_rows = int(block_rows)

    def generate(self, block_ids):
        for b in block_ids:
            start = int(b) * self.block_rows
            yield start, self.X[start:start + self.block_rows]

    def take(self, idx: np.ndarray) -> np.ndarray:
        return np.asarray(self.X[np.asarray(idx, dtype=np.intp)], dtype=np.float64)


def is_source(points) -> bool:
    """True for a point source (anything with ``generate`` and ``map_blocks``), False for an array."""
    return hasattr(points, "generate") and hasattr(points, "n_blocks")


class StreamFrame:
    """The frame of :class:`~.certificates.Frame`, from per-coordinate min, max and sum (no copy of X)."""

    def __init__(self, lo, hi, total, n):
        big = max(float(np.max(np.abs(lo))), float(np.max(np.abs(hi))))
        self.pre = 0
        if big > 0.0 and not (2.0 ** -cert._SAFE_EXP <= big <= 2.0 ** cert._SAFE_EXP):
            self.pre = cert._exponent(big)
        lo, hi = np.ldexp(lo, -self.pre), np.ldexp(hi, -self.pre)
        self.centre = np.ldexp(total, -self.pre) / n
        s = max(float(np.max(hi - self.centre)), float(np.max(self.centre - lo)))
        if not s > 0.0:
            s = float(np.max(np.abs(self.centre))) or 1.0
        self.unit = cert._exponent(s)
        self.scale = math.ldexp(s, -self.unit)
        self.bounds = np.vstack([self.map_pre(lo), self.map_pre(hi)])  # frame min and max per coordinate

    def map_pre(self, A):
        out = np.subtract(A, self.centre, dtype=np.float64)     # float32 rows convert exactly
        if self.unit and -1022 <= -self.unit <= 1023:
            out *= 2.0 ** -self.unit      # a normal power of two: the same correctly rounded result as ldexp
        elif self.unit:
            out = np.ldexp(out, -self.unit)
        return out

    def map(self, A: np.ndarray) -> np.ndarray:
        """Frame coordinates (float64) of the rows of ``A`` (B, d)."""
        with np.errstate(over="ignore"):
            return self.map_pre(np.ldexp(np.asarray(A, dtype=np.float64), -self.pre) if self.pre else A)


# -- passes (module level: a distributed map or a block holder runs them in other processes) -------
#: Coordinates of a block mapped to float64 frame coordinates at a time in a pass, and scores computed at
#: a time (2^20: 8 MiB each): a pass's scratch is bounded by these, not by the block size.
PASS_ELEMS = 1 << 20


def row_slices(R: int, d: int, B: int = 1):
    """Row slices ``(a, e)`` of a block of ``R`` rows that a pass maps (and scores against ``B`` queries) at a
    time: ``max(1, min(PASS_ELEMS // d, PASS_ELEMS // B))`` rows each, from row 0, the last one short.

    The slices depend on ``(R, d, B)`` only, so every product has the same shape wherever the block is
    served (BLAS may round a product of another shape differently)."""
    rs = max(1, min(PASS_ELEMS // max(int(d), 1), PASS_ELEMS // max(int(B), 1)))
    return [(a, min(a + rs, R)) for a in range(0, R, rs)]


def _identity(A):
    return A


def _segments(starts, stops, a, e, S, val, idx, lowest_first):
    """Fold the scores ``S`` (B, e - a) of rows ``a .. e-1`` into the best (highest, or lowest with
    ``lowest_first``) score and row of each segment ``[starts[c], stops[c])`` (sorted); ties keep the
    earlier row, as one ``argmax``/``argmin`` over the whole segment would."""
    ar = np.arange(S.shape[0])
    for c in range(int(np.searchsorted(stops, a, side="right")), int(np.searchsorted(starts, e, side="left"))):
        lo, hi = max(int(starts[c]), a), min(int(stops[c]), e)
        if hi <= lo:
            continue
        part = S[:, lo - a:hi - a]
        j = part.argmin(axis=1) if lowest_first else part.argmax(axis=1)
        v = part[ar, j]
        upd = v < val[:, c] if lowest_first else v > val[:, c]
        val[upd, c] = v[upd]
        idx[upd, c] = lo + j[upd]


def score_slices(W, X, n: int, map, top, low=None) -> None:
    """Score rows ``0 .. n`` of ``X`` against ``W`` (B, d) in :func:`row_slices` and fold each slice's scores
    into the chunk maxima ``top`` and, if given, the chunk minima ``low``, both ``(starts, stops, val, idx)``
    as :func:`_segments` takes them; ``map`` maps a slice of rows (to frame coordinates).  Only one slice of
    mapped rows and its (B, slice) scores exist at a time."""
    for a, e in row_slices(n, W.shape[1], W.shape[0]):
        S = W @ map(X[a:e]).T
        _segments(top[0], top[1], a, e, S, top[2], top[3], False)
        if low is not None:
            _segments(low[0], low[1], a, e, S, low[2], low[3], True)
        del S                      # before the next slice's scores exist


def _clamped(first, stop, R):
    """Padded position ranges ``[first, stop)`` as row ranges: padding is a copy of row ``R - 1``, so a range
    reaching past it ends at ``R`` and one of padding only is ``[R - 1, R)``."""
    a = np.minimum(first, R - 1)
    return a, np.maximum(np.minimum(stop, R), a + 1)


def sliced_price(X, W, k, lowest=None, map=None):
    """:func:`~.pricing.price` of the rows ``map(X)`` (X: (N, d)), scored in :func:`row_slices`.

    The same chunks (``price``'s small path: k chunks of ``ceil(N / k)`` rows, padded; else ``k`` chunks
    between ``linspace(0, N, k + 1)`` edges, the coarse chunks their unions), the same ties (the earlier
    row), the same returns; only one slice of mapped rows and its (B, slice) scores exist at a time.
    """
    from .pricing import _BLOCK_ELEMS

    map = map or _identity
    B, d = W.shape
    N = len(X)
    k = max(1, min(k, N))
    n_low = 0 if lowest is None else min(lowest, k)
    L = -(-N // k)
    if k * L <= _BLOCK_ELEMS // 64:
        t_start, t_stop = _clamped(np.arange(k) * L, np.arange(1, k + 1) * L, N)
        edges = np.array([-(-lc * k // n_low) * L for lc in range(n_low + 1)]) if n_low else np.zeros(1, np.intp)
        l_start, l_stop = _clamped(edges[:-1], edges[1:], N)
    else:
        edges = np.linspace(0, N, k + 1).astype(np.intp)
        t_start, t_stop = edges[:-1], edges[1:]
        first = np.array([-(-lc * k // n_low) for lc in range(n_low + 1)], dtype=np.intp) if n_low else np.zeros(1, np.intp)
        l_start, l_stop = edges[first[:-1]], edges[first[1:]]
    top_val, top_idx = np.full((B, k), -np.inf), np.zeros((B, k), dtype=np.intp)
    low_val, low_idx = np.full((B, n_low), np.inf), np.zeros((B, n_low), dtype=np.intp)
    score_slices(W, X, N, map, (t_start, t_stop, top_val, top_idx),
                 (l_start, l_stop, low_val, low_idx) if n_low else None)
    best = top_val.max(axis=1)
    return (best, top_idx, top_val, low_idx) if lowest is not None else (best, top_idx, top_val)


def frame_pass(context, blocks):
    """Per coordinate min and max of some blocks, and each block's coordinate sums (start, sum)."""
    d = context
    lo, hi, sums = np.full(d, np.inf), np.full(d, -np.inf), []
    for start, X in blocks:
        if len(X):       # no float64 copy of the block: float32 minima, maxima and summands convert exactly
            lo, hi = np.minimum(lo, X.min(axis=0)), np.maximum(hi, X.max(axis=0))
            sums.append((int(start), X.sum(axis=0, dtype=np.float64)))
    return lo, hi, sums


def price_pass(context, blocks):
    """Per direction: the best frame score, and the ``k`` best chunk winners (score, row index, row).

    ``context`` is ``(frame, W, k, low, rows)``: directions ``W`` (B, d), winners kept per
    direction, lowest-scoring coarse-chunk rows kept (``low``), and whether rows are returned.
    """
    frame, W, k, low, rows = context
    B, d = W.shape
    best = np.full(B, -np.inf)
    top = _empty_top(B, d if rows else 0, -np.inf)
    bottom = _empty_top(B, d if rows else 0, np.inf)
    for start, X in blocks:       # scored in row slices (sliced_price); only the rows kept are mapped whole
        if low:
            b_best, t_idx, t_val, l_idx = sliced_price(X, W, k, lowest=low, map=frame.map)
            Yl = frame.map(X[l_idx])
            l_val = np.einsum("bkd,bd->bk", Yl, W)
            bottom = keep_best(bottom, (-l_val, l_idx + start, Yl if rows else bottom[2][:, :0]), low)
        else:
            b_best, t_idx, t_val = sliced_price(X, W, k, map=frame.map)
        np.maximum(best, b_best, out=best)
        top = keep_best(top, (t_val, t_idx + start, frame.map(X[t_idx]) if rows else top[2][:, :0]), k)
    return best, top, bottom


def _empty_top(B, d, fill):
    return np.full((B, 0), fill), np.zeros((B, 0), dtype=np.intp), np.zeros((B, 0, d))


def keep_best(old, new, k):
    """The ``k`` largest scores per row among ``old`` and ``new`` (score, index, rows) triples.

    Ties keep ``old`` first, so folding partials in block order gives the top ``k`` by score,
    then row index, however the blocks were split.  Lowest rows are kept with this too, as
    negated scores.
    """
    val = np.hstack([old[0], new[0]])
    idx = np.hstack([old[1], new[1]])
    order = np.argsort(-val, axis=1, kind="stable")[:, :k]
    rows = np.concatenate([old[2], new[2]], axis=1)
    if rows.shape[2]:
        rows = np.take_along_axis(rows, order[:, :, None], axis=1)
    else:
        rows = np.zeros((val.shape[0], order.shape[1], 0))
    return np.take_along_axis(val, order, axis=1), np.take_along_axis(idx, order, axis=1), rows


def margin_pass(context, blocks):
    """``min`` over some blocks of :func:`~.certificates.outside_margins` (= the margin over their rows)."""
    frame, Q, W = context
    margins = np.full(Q.shape[0], np.inf)
    for _, X in blocks:
        for a, e in row_slices(len(X), X.shape[1], Q.shape[0]):
            np.minimum(margins, cert.outside_margins(frame.map(X[a:e]), Q, W), out=margins)
    return margins


def nearest_pass(context, blocks):
    """Nearest row (ℓ∞) of some blocks to each query: (index, distance, row)."""
    frame, Q = context
    B = Q.shape[0]
    index, dist, rows = np.zeros(B, dtype=np.intp), np.full(B, np.inf), np.zeros_like(Q)
    for start, X in blocks:
        for a, e in row_slices(len(X), X.shape[1], B):     # a later slice wins only when strictly nearer
            Y = frame.map(X[a:e])
            i, dd = cert.nearest_points(Y, Q)
            better = dd < dist
            index[better], dist[better], rows[better] = i[better] + start + a, dd[better], Y[i[better]]
            del Y
    return index, dist, rows


def rows_pass(context, blocks):
    """The frame rows ``idx`` that lie in some blocks: (indices found, rows)."""
    frame, idx = context
    found, rows = [], []
    for start, X in blocks:
        sel = idx[(idx >= start) & (idx < start + len(X))]
        if sel.size:
            found.append(sel)
            rows.append(frame.map(np.asarray(X)[sel - start]))
    if not found:
        return np.zeros(0, dtype=np.intp), np.zeros((0, frame.centre.size))
    return np.concatenate(found), np.vstack(rows)


class Training:
    """The training set in frame coordinates, as a solver sees it (see the module docstring).

    Attributes
    ----------
    n, d : int
    scale : float
        The frame's tolerance scale ``s`` (``atol = tol * s``).
    bounds : ndarray, shape (2, d)
        Frame minimum and maximum per coordinate.
    points : ndarray (N, d) or None
        The framed rows when they are in memory; None when served by passes.
    """

    n: int
    d: int
    scale: float
    bounds: np.ndarray
    points: np.ndarray | None = None

    def price(self, W: np.ndarray, k: int, low: int = 0, rows: bool = True):
        """Best score per direction and the ``k`` best chunk winners (and ``low`` lowest), with rows.

        Returns ``best`` (B,), ``top`` = (scores (B, k'), indices (B, k'), rows (B, k', d or 0))
        and ``bottom`` likewise with negated scores.
        """
        raise NotImplementedError

    def margins(self, Q: np.ndarray, W: np.ndarray) -> np.ndarray:
        """:func:`~.certificates.outside_margins` of queries ``Q`` (B, d) along ``W`` (B, d) over all rows."""
        raise NotImplementedError

    def nearest(self, Q: np.ndarray):
        """Nearest row (ℓ∞) to each query: (index (B,), distance (B,), row (B, d))."""
        raise NotImplementedError

    def take(self, idx: np.ndarray) -> np.ndarray:
        """Frame rows ``idx`` (k,), shape (k, d)."""
        raise NotImplementedError

    def remember(self, idx: np.ndarray, rows: np.ndarray) -> None:
        """Keep rows met by a pass for :meth:`take` (rows in memory need no keeping)."""

    def forget(self) -> None:
        """Drop rows remembered for :meth:`take` (a batch of queries is done)."""


class InMemory(Training):
    """A framed array (N, d)."""

    def __init__(self, points: np.ndarray, scale: float):
        self.points, self.scale = points, float(scale)
        self.n, self.d = points.shape

    @property
    def bounds(self):
        return np.vstack([self.points.min(axis=0), self.points.max(axis=0)]) if self.n else np.zeros((2, self.d))

    def price(self, W, k, low=0, rows=True):
        return price_pass((_IDENTITY, W, k, low, rows), [(0, self.points)])

    def margins(self, Q, W):
        return cert.outside_margins(self.points, Q, W)

    def nearest(self, Q):
        idx, dist = cert.nearest_points(self.points, Q)
        return idx, dist, self.points[idx]

    def take(self, idx):
        return self.points[np.asarray(idx, dtype=np.intp)]


class _Identity:
    """Stand-in frame for rows already in frame coordinates."""

    @staticmethod
    def map(A):
        return A


_IDENTITY = _Identity()


class Streamed(Training):
    """A point source and its frame: every operation over all rows is one pass.

    Parameters
    ----------
    source : PointSource
    map : callable, optional
        A distributed ``map`` for sources that do not place their own blocks.
    parts : int
        Runs of blocks per pass offered to ``map``.
    """

    def __init__(self, source: PointSource, *, map=None, parts: int = 1, frame: StreamFrame | None = None):
        self.source, self.map, self.parts = source, map, max(1, int(parts))
        self.n, self.d = int(source.n), int(source.d)
        self.passes = 0
        self.priced = 0        # query-row products over all N rows (directions priced, margins, nearest)
        self.cache: dict[int, np.ndarray] = {}
        self.frame = frame if frame is not None else self._frame()
        self.scale, self.bounds = self.frame.scale, self.frame.bounds

    def _pass(self, fn, context) -> list:
        self.passes += 1
        progress.update("stream", passes=self.passes, blocks=self.passes * self.source.n_blocks)   # once a pass
        return self.source.map_blocks(fn, context, parts=self.parts, map=self.map)

    def _frame(self) -> StreamFrame:
        parts = self._pass(frame_pass, self.d)
        lo = np.min([p[0] for p in parts], axis=0)
        hi = np.max([p[1] for p in parts], axis=0)
        total = np.zeros(self.d)
        for start, s in sorted((pair for p in parts for pair in p[2]), key=lambda pair: pair[0]):
            total += s                      # block order, however the pass was split
        return StreamFrame(lo, hi, total, self.n)

    def price(self, W, k, low=0, rows=True):
        self.priced += W.shape[0]
        parts = self._pass(price_pass, (self.frame, W, k, low, rows))
        best = np.max([p[0] for p in parts], axis=0)
        top, bottom = parts[0][1], parts[0][2]
        for p in parts[1:]:
            top = keep_best(top, p[1], k)
            bottom = keep_best(bottom, p[2], low) if low else bottom
        return best, top, bottom

    def margins(self, Q, W):
        self.priced += Q.shape[0]
        return np.min(self._pass(margin_pass, (self.frame, Q, W)), axis=0)

    def nearest(self, Q):
        self.priced += Q.shape[0]
        parts = self._pass(nearest_pass, (self.frame, Q))
        dist = np.array([p[1] for p in parts])
        pick = np.argmin(dist, axis=0)            # the first part on ties: the lowest row index
        cols = np.arange(Q.shape[0])
        idx = np.array([p[0] for p in parts])[pick, cols]
        rows = np.array([p[2] for p in parts])[pick, cols]
        return idx, dist[pick, cols], rows

    def remember(self, idx: np.ndarray, rows: np.ndarray) -> None:
        """Keep frame rows met by a pass for :meth:`take` (indices (...), rows (..., d))."""
        for i, r in zip(np.asarray(idx).reshape(-1).tolist(), rows.reshape(-1, self.d)):
            self.cache.setdefault(i, r)

    def take(self, idx):
        idx = np.asarray(idx, dtype=np.intp).reshape(-1)
        missing = np.unique([i for i in idx.tolist() if i not in self.cache]).astype(np.intp)
        if missing.size:
            for found, rows in self._pass(rows_pass, (self.frame, missing)):
                self.remember(found, rows)
        return np.array([self.cache[int(i)] for i in idx.tolist()]).reshape(idx.size, self.d)

    def forget(self) -> None:
        self.cache.clear()
