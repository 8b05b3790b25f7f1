"""Entry sizes on nested prefixes when X of the largest size exceeds the memory budget.

The in-memory search (:func:`mc_hull.nested.search.entry_sizes`) holds X whole.  Here X is
served by :class:`PrefixRows` over a point source (a :class:`mc_hull.samplers.KeyedSource`,
the same blocks :func:`mc_hull.nested.search.replicate_data` draws, so the prefixes are the very
training sets of the in-memory path).  In process, the rows that fit the budget stay in
memory and the rest are regenerated block by block on every pass; over a cluster
(:class:`mc_hull.distributed.blocks.ActorSource`) the blocks stay on actors spread over the
nodes, held or regenerated there.  Every pass is one ``map_blocks``: a pure function of
(context, blocks) returning partials that are merged in block order (:func:`_frame_part`,
:func:`_price_part`), so the answers are the same bits in process and on any number of
holders.  A pass over rows is the expensive step, so the search is organised around
passes shared by every query of the replicate:

1. a *frame pass* gives per grid interval the column sums, maxima and minima (the
   certificate threshold of every prefix, :class:`mc_hull.nested.search.PrefixScales`) and
   the translation ``c0`` (the mean of X), and fills the in-memory part (in process);
2. each *round* first works on cached rows only: for every open query, the NNLS
   master on its working set below its probe ``g_j`` (the bisection probe of
   :mod:`mc_hull.nested.search`) is an inside candidate, checked exactly on the cached
   rows (the same values as X's); an inside answer moves the bracket and the next
   probe is tried at once, still without a pass;
3. then *one pass* prices every query's residual direction (its seed ``x - c_j`` when
   its set is thin) against the rows up to the largest size it may still need
   (``g[high - 1]``): per grid interval the largest score and its row, and the best row
   of each of ``p`` chunks below ``g_j``.  The running maximum over intervals gives an
   outside certificate at the *largest* size the direction separates (the margin
   ``w.x - max`` against that size's threshold, as in the in-memory search), so a
   direction certified at g_j extends over every larger size it still separates, up to
   the first grid interval (at or above g_j) where it fails: it is priced to the end of
   that interval and no further, whatever the split of blocks;
   where it fails at g_j, the chunk winners above the master's bound join the set;
4. a query stuck at a probe (no new rows, or ``rounds`` spent) is handed, with the
   other stuck queries of the same probe, to the streaming engine
   (:class:`mc_hull.solvers.stream.StreamSolver`) on that prefix, whose certificates
   it checks itself; what it leaves undecided stays an open bracket, never a guess.

For an isotropic law (``source.isotropic``: the Gaussian, ball, Student-t and beta families),
the passes after the frame *sieve* X (:data:`SIEVE`): a row of grid interval k whose distance
to the mean is below 0.85 times the box radius of prefix g_k is not scored; per interval the
sieve radius, times ``|w|``, bounds the scores of the rows skipped, so every margin is
still a bound over all rows of the prefix.  The in-memory part then holds only the kept rows
(about a third of X for the Gaussian at d = 16-20), so within one budget it holds about three
times the rows; a probe that only skipped rows could settle goes to the streaming engine, which
reads every row.

Certificates are the in-memory search's, checked the same way: margins over every row
of the prefix (all priced in the pass), inside residuals on the exact rows of the
support, both against :class:`~mc_hull.nested.search.PrefixScales` thresholds with their
rounding bound.  Memory: the in-memory part (at most the budget, less one block and its
scratch), one regenerated block and its translated copy, 16 MiB of scores, and per
query a (L,) table and a few dozen cached rows.

Pure: imports neither ray nor pyarrow.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import search as nested
from .. import progress, seeding
from ..errors import PlanError
from .search import INSIDE, OUTSIDE, EntrySizes, PrefixScales, check_sizes, cert
from ..stats.design import memory_budget
from ..solvers.master import master
from ..solvers.sources import PointSource
from ..solvers.stream import StreamSolver

#: Scores held at once in a pass (16 MiB of doubles).
_BLOCK_ELEMS = 1 << 21
#: Scores per row slice of a pricing pass (directions x rows; fixed per pass, so the same everywhere).
_SLICE_ELEMS = 1 << 21
#: Directions scored by one matrix product in a pricing pass (a fixed shape: the same bits everywhere).
_GROUP = 16
#: Chunk winners per pricing round, in units of d + 1.
WINNERS = 1
#: Each open query's pass also prices a direction at the probe that follows an outside answer (the
#: next probe up the search tree, on the rows cached below it).  Its chunk winners come from rows up
#: to that larger size, which the probe's own pricing never offers, and an outside certificate there
#: settles both probes.  Measured (``benchmarks/nested_passes.py``, d = 14, N = 4e6, K = 333, five
#: replicates): 17-20 passes per replicate without, 11-12 with; CPU about the same with X held, 15-25%
#: less with X regenerated on every pass.  (Speculating on the lower child as well, or further up,
#: cut no more passes.)
SPECULATE = True
#: Pricing passes skip the rows of grid interval k whose norm (about the mean of X) is below
#: ``SIEVE`` times the box radius of prefix g_k (the smallest distance from the mean to a face of
#: the coordinate box of its rows): a bound stands for them in every margin (``|x - c0| |w|``), so a
#: certificate holds over all rows, and they are never offered as columns.  When the hull of g_k
#: rows holds the ball of that radius (the box radius is an upper bound on the hull's inradius, so
#: this is what SIEVE < 1 aims at), the skipped rows lie inside the hull of the kept ones and the
#: kept rows decide every query alone; where it does not, a probe that needs them goes to the
#: streaming engine on every row (``_engine``), so answers never depend on SIEVE, only the cost.
#: 0 prices every row.
SIEVE = 0.85
#: Blocks at the start of X that a sieved in-memory part keeps whole (the engine's small prefixes).
DENSE_BLOCKS = 4
#: The frame pass of a sieved search keeps the rows of later blocks that any sieve it can set may keep
#: (farther from the origin than the fraction of the box radius its run has seen), so that the rows
#: the sieve keeps are drawn once, not again by the first pricing pass; a block whose candidates turn
#: out too few for the sieve set (the mean far from the origin) is drawn again then.
PROVISIONAL = True


def pass_threads() -> int:
    """Threads a streamed replicate's passes run on in process: ``MC_HULL_THREADS`` (default 1).

    Each pass is split into runs of blocks computed side by side (drawing, products and reductions
    release the GIL) and merged in block order, so the answers are the same bits for any count.
    Meant for one replicate at a time on a whole machine (``--workers 1`` or ``--serial``).
    """
    text = os.environ.get("MC_HULL_THREADS", "").strip()
    if not text:
        return 1
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= 1024:
        raise PlanError(f"MC_HULL_THREADS: must be an integer from 1 to 1024, got {text!r}")
    return n


def engine_bytes() -> int:
    """Working-set bytes of the streaming engine on a stuck probe: a sixteenth of the memory budget.

    Stuck probes are rare (none in the d = 12..16 runs measured) and hold few queries, so the
    rest of the budget goes to the rows of X held in memory.
    """
    return max(1 << 20, memory_budget() // 16)


def held_bytes(d: int) -> int:
    """Bytes of X a streamed replicate keeps in memory: the budget less the engine's share and two blocks."""
    block = seeding.block_rows(d) * d * 8
    return max(0, memory_budget() - engine_bytes() - 2 * block)


def memory_rows(d: int, n: int, held: int) -> int:
    """Rows of an n-row X held in memory within ``held`` bytes (whole blocks of ``seeding.block_rows(d)``)."""
    rows = seeding.block_rows(d)
    return int(min(int(n), (max(0, int(held)) // (8 * int(d))) // rows * rows))


def state_bytes(d: int, queries: int, sizes: int) -> int:
    """Bytes of a streamed replicate beyond the rows it holds: a block and its copy, scores, per-query tables."""
    block = seeding.block_rows(d) * d * 8
    per_query = 8 * sizes * (2 * d + 3) + 8 * d * 8 * (d + 1)     # interval tables, cached rows
    return 3 * block + (16 << 20) + int(queries) * per_query


class _Sieved:
    """The rows of one block that the sieve keeps, with what stands for the others.

    Attributes
    ----------
    start, end : int
        The block's global rows ``start .. end``.
    rows : ndarray, shape (m, d)
        Kept rows, raw coordinates, in row order.
    idx : ndarray of int, shape (m,)
        Their global row indices.
    parts : list of (int, float, int)
        Per grid interval with skipped rows: ``(k, squared sieve radius, count)``.
    """

    __slots__ = ("start", "end", "rows", "idx", "parts")

    def __init__(self, start, end, rows, idx, parts):
        self.start, self.end, self.rows, self.idx, self.parts = start, end, rows, idx, parts


class _Held(PointSource):
    """In-process: a source whose first ``n_mem`` rows (whole blocks) stay in memory once drawn.

    Blocks are served in raw coordinates; ``drawn`` counts the rows drawn from the source.
    Once a search sets its sieve (:meth:`set_sieve`), the held rows are replaced by the rows
    the sieve keeps, compacted in the same buffer, and blocks drawn later fill the rest of it:
    ``generate`` then serves :class:`_Sieved` blocks, ``generate_full`` every row.
    """

    def __init__(self, source, n_mem: int, fraction: float = 0.0):
        self.source = source
        self.n, self.d, self.block_rows = int(source.n), int(source.d), int(source.block_rows)
        self.keep = int(n_mem) // self.block_rows
        self.fraction = float(fraction) if PROVISIONAL else 0.0
        self.prov: dict[int, tuple] = {}   # block -> (offset, rows, local indices, radius): frame-pass candidates
        self._box = None                      # (maxima, minima) of the rows the frame pass has drawn
        self.mem = np.empty((self.keep * self.block_rows, self.d))
        self.rows = np.zeros(self.keep, dtype=np.int64)      # rows held per block (0: not drawn yet)
        self.drawn = 0
        self.sieve = None         # (edges, floor2, c0) once set
        self.kept: dict[int, _Sieved] = {}
        self.lock = threading.Lock()       # passes may run on threads (disjoint blocks each)
        # with a sieve to come, the frame pass holds only the first blocks whole and, in the rest of the
        # memory, the rows of later blocks far enough from the origin to be kept by any sieve it can set
        self.dense = min(self.keep, DENSE_BLOCKS) if self.fraction > 0 else self.keep
        self.fill = self.dense * self.block_rows if self.fraction > 0 else 0   # rows of mem in use

    def _draw(self, ids):
        for s, X in self.source.generate(ids):
            with self.lock:
                self.drawn += len(X)
            yield int(s), X

    def set_sieve(self, edges: np.ndarray, floor2: np.ndarray, c0: np.ndarray) -> None:
        """Keep only the rows the sieve keeps: the held blocks compacted in place, later blocks appended."""
        self.fraction = 0.0                 # the frame pass is over: no more candidates
        if not floor2.any():
            self.prov.clear()
            return
        self.sieve = (edges, floor2, c0)
        if self.prov:            # the frame pass's candidates: the kept rows of each block whose radius allows
            shift = float(np.sqrt(np.dot(c0, c0))) * (1.0 + 1e-9)
            self.fill = self.dense * self.block_rows
            for b, (at, rows, loc, radius) in sorted(self.prov.items(), key=lambda kv: kv[1][0]):
                start = b * self.block_rows
                ks = _intervals(edges, start, start + self._len(b))
                if radius == 0 or radius + shift < np.sqrt(min(floor2[k] for k in ks)) * (1.0 - 1e-9):
                    # every row the sieve keeps is a candidate: the same kept rows as the whole block gives
                    self._store(b, start, rows, start + loc)
            self.prov.clear()
            return
        # the first blocks stay whole: probes the sieve cannot decide (small ones, where the box radius is
        # furthest above the hull's inradius) go to the engine, which reads every row of its prefix
        self.dense = min(self.keep, DENSE_BLOCKS)
        self.fill = self.dense * self.block_rows
        held = [b for b in range(self.dense, self.keep) if self.rows[b]]
        self.rows[self.dense:] = 0
        for b in held:        # compaction never overtakes: kept rows of block b land at or before its start
            a = b * self.block_rows
            self._store(b, a, self.mem[a:a + self.block_rows][:self._len(b)])

    def _len(self, b: int) -> int:
        return min(self.block_rows, self.n - b * self.block_rows)

    def _store(self, b: int, start: int, X: np.ndarray, idx: np.ndarray | None = None) -> _Sieved:
        """The sieved block ``b``: from all its rows ``X``, or from candidates ``X`` at global rows ``idx``."""
        edges, floor2, c0 = self.sieve
        keep, parts = _sieve(X - c0, start, edges, floor2, idx, start + self._len(b))
        m = keep.size
        gl = (start + keep) if idx is None else idx[keep]
        with self.lock:
            at = self.fill if self.fill + m <= len(self.mem) else -1
            if at >= 0:
                self.fill += m
        end = start + self._len(b)
        if at >= 0:
            self.mem[at:at + m] = X[keep]
            self.kept[b] = blk = _Sieved(start, end, self.mem[at:at + m], gl, parts)
            return blk
        return _Sieved(start, end, X[keep], gl, parts)

    def generate(self, block_ids):
        ids = [int(b) for b in block_ids]
        if self.sieve is not None:
            rest = [b for b in ids if b not in self.kept and b >= self.dense]
            drawn = self._draw(rest)
            for b in ids:
                if b < self.dense:
                    a = b * self.block_rows
                    yield a, self.mem[a:a + self.rows[b]]
                elif b in self.kept:
                    yield self.kept[b].start, self.kept[b]
                else:
                    s, X = next(drawn)
                    yield s, self._store(b, s, np.asarray(X, dtype=np.float64))
            return
        rest = [b for b in ids if b >= self.dense]
        for b in ids:
            if b >= self.dense:
                break
            a = b * self.block_rows
            if not self.rows[b]:
                for _, X in self._draw([b]):
                    self.mem[a:a + len(X)] = X
                    self.rows[b] = len(X)
            yield a, self.mem[a:a + self.rows[b]]
        if not rest:
            return
        if self.fraction <= 0:
            yield from self._draw(rest)
            return
        # the frame pass, sieve to come: candidates of each block are its rows farther from the origin than
        # the fraction of the box radius (about the origin) of the rows drawn so far, the block's own too
        # (a check when the sieve is set sends back to the first pricing pass a block whose were too few)
        for s, X in self._draw(rest):
            X = np.asarray(X, dtype=np.float64)
            b = s // self.block_rows
            top, bottom = _columns(np.maximum, X), _columns(np.minimum, X)
            with self.lock:      # the box of every row drawn so far, on any thread
                self._box = (top, bottom) if self._box is None else (
                    np.maximum(self._box[0], top), np.minimum(self._box[1], bottom))
                hi, lo = self._box
            if b not in self.prov and self.fill < len(self.mem):
                r = float(np.minimum(hi, -lo).min())
                # 2% below: the sieve's radius comes from a box about the mean of more rows
                radius = 0.98 * self.fraction * r if np.isfinite(r) and r > 0 else 0.0
                loc = np.flatnonzero(~(np.einsum("ij,ij->i", X, X) < radius * radius)) if radius > 0 \
                    else np.arange(len(X))
                with self.lock:
                    at = self.fill if self.fill + loc.size <= len(self.mem) else -1
                    if at >= 0:
                        self.fill += loc.size
                if at >= 0:
                    self.mem[at:at + loc.size] = X[loc]
                    self.prov[b] = (at, self.mem[at:at + loc.size], loc, radius)
            yield s, X

    def generate_full(self, block_ids):
        """Every row of the blocks (the streaming engine's view): drawn again where the sieve holds them."""
        if self.sieve is None:
            yield from self.generate(block_ids)
            return
        ids = [int(b) for b in block_ids]
        drawn = self._draw([b for b in ids if b >= self.dense])
        for b in ids:
            if b < self.dense:
                a = b * self.block_rows
                yield a, self.mem[a:a + self.rows[b]]
            else:
                yield next(drawn)


class PrefixRows:
    """The first ``n`` rows of a point source and their frame: every pass one ``map_blocks`` over the source.

    In process, rows below ``n_mem`` (whole blocks) stay in memory once the frame pass has
    drawn them and the others are drawn again on every pass; a source spread over a cluster
    (``spread = True``: :class:`mc_hull.distributed.blocks.ActorSource`) keeps or regenerates its
    blocks on its holders, and each pass runs there, every holder on its own blocks.  Passes
    see raw blocks and translate them by ``c0`` (the mean of the n rows) themselves.

    Parameters
    ----------
    source : point source
        ``d``, ``n`` (>= ``n``), ``block_rows``, ``generate(block_ids)`` and ``map_blocks``
        (:class:`mc_hull.samplers.KeyedSource`, :class:`~.solvers.sources.ArraySource`, an actor source).
    n : int
        Rows served (the largest grid size).
    sizes : ndarray of int, shape (L,)
        Grid sizes (interval statistics are kept per grid interval).
    budget : int
        Bytes the in-memory part may take (in process).
    pool : ThreadPoolExecutor, optional
        Threads for the passes in process (each pass split into ``4 * threads`` runs of blocks).
    threads : int
        The pool's size.
    """

    def __init__(self, source, n: int, sizes: np.ndarray, budget: int, pool: ThreadPoolExecutor | None = None,
                 threads: int = 1, sieve: float = 0.0):
        self.pool, self.threads = pool, int(threads)
        self.n, self.d = int(n), int(source.d)
        self.block_rows = int(source.block_rows)
        self.n_blocks = -(-self.n // self.block_rows)
        if getattr(source, "spread", False):
            self.src, self.n_mem = source, 0
        else:
            keep = max(0, int(budget) // (8 * self.d)) // self.block_rows   # whole blocks (of the source)
            self.n_mem = min(self.n, keep * self.block_rows)
            self.src = _Held(source, -(-self.n_mem // self.block_rows) * self.block_rows
                             if self.n_mem == self.n else self.n_mem, sieve if self.n_mem < self.n else 0.0)
        self.passes = 0
        self.served = 0                # rows served to passes, over all passes
        L, d = len(sizes), self.d
        sums, maxs, mins = np.zeros((L, d)), np.full((L, d), -np.inf), np.full((L, d), np.inf)
        edges = np.concatenate([[0], np.asarray(sizes, dtype=np.int64)])
        for part in self.map(_frame_part, (edges, self.n)):
            for k, s, hi, lo in part:
                sums[k] += s
                np.maximum(maxs[k], hi, out=maxs[k])
                np.minimum(mins[k], lo, out=mins[k])
        self.c0 = sums.sum(axis=0) / self.n
        counts = np.diff(edges).astype(np.float64)[:, None]
        # Translated interval statistics: rounding is monotone, so max(x - c0) = max(x) - c0 exactly.
        self.stats = (sums - counts * self.c0, maxs - self.c0, mins - self.c0)

    @property
    def regenerated(self) -> int:
        """Rows drawn or read from the loader over all passes (an actor source: by its holders)."""
        return self.src.drawn

    def map(self, fn, context) -> list:
        """One pass: ``fn(context, blocks)`` over the source's blocks, partials in block order.

        ``fn`` returns ``(served_rows, partial)``; the partials are returned.
        """
        self.passes += 1
        out = []
        if self.pool is not None and not getattr(self.src, "spread", False):
            # runs of blocks on the threads, a few per thread for balance (passes stop early), in block order
            parts = self.src.map_blocks(fn, context, parts=4 * self.threads, map=self._thread_map)
        else:
            parts = self.src.map_blocks(fn, context, parts=1)
        for served, partial in parts:
            self.served += int(served)
            out.append(partial)
        progress.update("nested", passes=self.passes, blocks=-(-self.served // self.block_rows))
        return out

    def _thread_map(self, fn, units, context) -> list:
        return list(self.pool.map(lambda u: fn(context, u), units))

    def prefix(self, n: int) -> "_PrefixSource":
        """The first ``n`` translated rows as a point source (for the streaming engine)."""
        return _PrefixSource(self, int(n))


class _PrefixSource(PointSource):
    """Point-source view of ``PrefixRows`` rows ``0 .. n`` in translated coordinates; passes run where the rows are."""

    def __init__(self, rows: PrefixRows, n: int):
        self.rows, self.n, self.d, self.block_rows = rows, n, rows.d, rows.block_rows

    def generate(self, block_ids):
        ids = [b for b in block_ids if int(b) * self.block_rows < self.n]
        src = self.rows.src
        yield from _translated(getattr(src, "generate_full", src.generate)(ids), self.n, self.rows.c0)

    def map_blocks(self, fn, context, *, parts: int = 1, map=None) -> list:
        if not getattr(self.rows.src, "spread", False):
            return super().map_blocks(fn, context, parts=parts, map=map)
        # on the holders: each translates its own blocks below n; the partial of a holder past n is
        # fn over no blocks, so the partials stay in block order
        return [p for _, p in self.rows.src.map_blocks(_on_prefix, (fn, context, self.n, self.rows.c0))]


def _translated(blocks, n: int, c0: np.ndarray):
    for start, X in blocks:
        if start >= n:
            break
        yield int(start), np.asarray(X, dtype=np.float64)[:n - int(start)] - c0


def _on_prefix(context, blocks):
    fn, inner, n, c0 = context
    return 0, fn(inner, _translated(blocks, n, c0))


def _frame_part(context, blocks):
    """Frame pass over some blocks: per (block, grid interval) met, the column sums, maxima and minima."""
    edges, n = context
    out, served = [], 0
    for start, X in blocks:
        start = int(start)
        if start >= n:
            break
        X = np.asarray(X, dtype=np.float64)[:n - start]
        served += len(X)
        for k in _intervals(edges, start, start + len(X)):
            a, e = max(edges[k], start) - start, min(edges[k + 1], start + len(X)) - start
            out.append((k, X[a:e].sum(axis=0), _columns(np.maximum, X[a:e]), _columns(np.minimum, X[a:e])))
    return served, out


#: Rows folded side by side in :func:`_columns`.
_FOLD = 32


def _columns(op, X: np.ndarray) -> np.ndarray:
    """Column maxima (``op`` ``np.maximum``) or minima (``np.minimum``) of ``X``, shape (m, d) -> (d,).

    The same values as ``op.reduce(X, axis=0)`` (a maximum does not depend on the order it is taken
    in, NaN included), about 4x faster on narrow rows: reducing an (m, d) array over its rows costs a
    call per row of d elements, so :data:`_FOLD` rows are viewed as one of ``_FOLD * d``.
    """
    m, d = X.shape
    q = m // _FOLD
    if q < 2 or not X.flags.c_contiguous:
        return op.reduce(X, axis=0)
    out = op.reduce(op.reduce(X[:q * _FOLD].reshape(q, _FOLD * d), axis=0).reshape(_FOLD, d), axis=0)
    return out if q * _FOLD == m else op(out, op.reduce(X[q * _FOLD:], axis=0))


def sieve_floors(maxs: np.ndarray, mins: np.ndarray, fraction: float) -> np.ndarray:
    """Squared sieve radius per grid interval: ``fraction`` times the box radius of the prefix it ends.

    Parameters
    ----------
    maxs, mins : ndarray, shape (L, d)
        Per grid interval, the column maxima and minima of the translated rows.
    fraction : float
        Of the box radius (0: no sieve).

    Returns
    -------
    ndarray, shape (L,)
        ``(fraction * r_k)**2``, where ``r_k`` is the distance from the translation centre to the
        nearest face of the bounding box of the first g_k rows (0 where that box does not hold the centre).
    """
    hi = np.maximum.accumulate(maxs, axis=0)
    lo = np.minimum.accumulate(mins, axis=0)
    r = np.minimum(hi, -lo).min(axis=1)
    r = np.where(np.isfinite(r) & (r > 0), r, 0.0) * float(fraction)
    with np.errstate(over="ignore"):
        r2 = r * r
    # squared norms are compared with these: none near underflow (a norm that underflowed would pass
    # for 0) or overflow (such a prefix is priced whole)
    return np.where((r2 >= _TINY2) & np.isfinite(r2), r2, 0.0)


def _sieve(Y: np.ndarray, start: int, edges: np.ndarray, floor2: np.ndarray, idx: np.ndarray | None = None,
           end: int | None = None):
    """Rows of a translated block the sieve keeps, and what stands for the others.

    ``Y`` holds the block's rows ``start .. end`` (all of them, or only the candidates at global rows
    ``idx``, which must include every row the sieve keeps).  Returns ``keep`` (positions in ``Y``) and
    ``parts``: per grid interval with skipped rows, ``(k, squared sieve radius, count)`` -- the radius,
    not the largest skipped norm, so the bound is the same whichever rows were at hand.
    """
    end = start + len(Y) if end is None else int(end)
    ks = _intervals(edges, start, end)
    if not any(floor2[k] > 0 for k in ks):
        if idx is not None and idx.size != end - start:
            raise AssertionError("a block without a sieve needs all its rows")
        return np.arange(len(Y)), []
    r2 = np.einsum("ij,ij->i", Y, Y)
    pos = np.arange(start, end) if idx is None else idx
    keep, parts = [], []
    for k in ks:
        a, e = np.searchsorted(pos, edges[k]), np.searchsorted(pos, edges[k + 1])
        rows = min(int(edges[k + 1]), end) - max(int(edges[k]), start)
        kk = a + np.flatnonzero(~(r2[a:e] < floor2[k])) if floor2[k] > 0 else np.arange(a, e)
        if kk.size < rows:
            parts.append((k, float(floor2[k]), rows - kk.size))
        keep.append(kk)
    return np.concatenate(keep), parts


def _intervals(edges: np.ndarray, a: int, e: int) -> range:
    """Grid intervals ``k`` (rows ``edges[k] .. edges[k+1]``) meeting rows ``a .. e``."""
    k0 = int(np.searchsorted(edges, a, side="right")) - 1
    k1 = int(np.searchsorted(edges, e, side="left"))
    return range(max(k0, 0), min(k1, len(edges) - 1))


def streamed_entry_sizes(source, Q: np.ndarray, sizes, *, budget: int, solver="auto", tol: float = 1e-9,
                         rounds: int = 12, engine_budget: int | None = None, sieve: float | None = None,
                         threads: int | None = None) -> EntrySizes:
    """Locate every query's entry size on the grid with X served by passes (see the module docstring).

    Parameters
    ----------
    source : point source
        The replicate's training set (at least ``sizes[-1]`` rows); a
        :class:`mc_hull.samplers.KeyedSource` regenerates it from its keys.
    Q : ndarray, shape (K, d)
    sizes : sequence of int, length L
    budget : int
        Bytes of X that may stay in memory (the rest is regenerated every pass).
    solver : str
        Unused beyond the record (the streaming engine decides stuck probes); kept for
        the signature of :func:`mc_hull.nested.search.entry_sizes`.
    tol : float
    rounds : int
        Master/pricing rounds per probe before a query goes to the streaming engine.
    engine_budget : int, optional
        Working-set bytes of the streaming engine (default :func:`engine_bytes`).
    sieve : float, optional
        Fraction of the box radius below which rows are bounded rather than priced (see
        :data:`SIEVE`); default :data:`SIEVE` for an isotropic law (the source's ``isotropic``),
        0 otherwise.  The answers do not depend on it.
    threads : int, optional
        Threads each in-process pass runs on (default :func:`pass_threads`); same answers for any count.

    Returns
    -------
    EntrySizes
        As :func:`mc_hull.nested.search.entry_sizes` (``solves`` counts engine calls, as there), with
        ``passes``, ``regenerated`` (rows regenerated over all passes) and ``sieved`` (rows the
        pricing passes bounded instead of scoring) set as attributes.
    """
    if sieve is None:
        sieve = SIEVE if getattr(source, "isotropic", False) else 0.0
    if not (np.isfinite(sieve) and 0.0 <= sieve <= 1.0):
        raise ValueError(f"sieve: must be a fraction in [0, 1], got {sieve!r}")
    threads = pass_threads() if threads is None else int(threads)
    if threads < 1:
        raise ValueError(f"threads: must be >= 1, got {threads}")
    with ThreadPoolExecutor(threads) if threads > 1 else contextlib.nullcontext() as pool:
        search = _StreamSearch(source, Q, sizes, budget, tol, rounds, engine_budget, float(sieve), pool, threads)
        search.run()
    res = search.result()
    res.passes, res.regenerated, res.sieved = search.rows.passes, search.rows.regenerated, search.sieved
    return res


class _StreamSearch:
    """State of one streamed search: brackets, certificates, working sets and their cached rows."""

    _init_brackets = nested._Search._init_brackets
    set_inside = nested._Search.set_inside
    set_outside = nested._Search.set_outside
    result = nested._Search.result

    def __init__(self, source, Q, sizes, budget, tol, rounds, engine_budget, sieve=0.0, pool=None, threads=1):
        self.t0 = time.perf_counter()
        g = check_sizes(sizes)
        Q = np.asarray(Q, dtype=np.float64)
        if Q.ndim != 2 or Q.shape[1] != source.d:
            raise ValueError(f"Q (K, d) must have the source's d = {source.d}, got {Q.shape}")
        if g[-1] > source.n:
            raise ValueError(f"sizes: largest size {g[-1]} exceeds the {source.n} rows of the source")
        self.rows = PrefixRows(source, int(g[-1]), g, budget, pool, threads, sieve)
        self.Qc = Q - self.rows.c0
        self.g, self.tol, self.rounds = g, cert.check_tol(tol), int(rounds)
        L, (K, d) = len(g), Q.shape
        self.L, self.K, self.d = L, K, d
        self.tolerance = PrefixScales.from_stats(*self.rows.stats, g, tol, self.Qc)
        self.sieved = 0                # rows pricing passes bounded instead of scoring
        self.floor2 = sieve_floors(self.rows.stats[1], self.rows.stats[2], sieve)
        if isinstance(self.rows.src, _Held):
            self.rows.src.set_sieve(np.concatenate([[0], g]), self.floor2, self.rows.c0)
        self._init_brackets(K, L, d)
        self.S: list = [np.zeros(0, dtype=np.int64)] * K        # working sets (global rows)
        self.cache: dict[int, np.ndarray] = {}                    # row -> translated coordinates
        self.engine_budget = int(engine_budget or engine_bytes())
        self.depth = nested.search_tree_depths(L)

    # -- cached rows -------------------------------------------------------------------
    def _points(self, idx: np.ndarray) -> np.ndarray:
        return np.array([self.cache[int(i)] for i in idx]).reshape(len(idx), self.d)

    def _target(self, b: int) -> int:
        lo, hi = int(self.low[b]), int(self.high[b])
        return nested._probe(lo, hi, self.failed[b], self.depth) if hi - lo > 1 else -1

    def _inside_from(self, b: int, sup: np.ndarray, lam: np.ndarray, k: int) -> bool:
        """Check inside weights on rows ``sup`` (cached) at g_k; record the lowest grid size they hold from."""
        P = self._points(sup)
        x = self.Qc[b]
        loc = np.arange(sup.size)
        thr = self.tolerance.threshold(k, b, sup.size, inside=True)[0]
        r = cert.inside_residual(P, x, loc, lam)
        if not r <= thr:
            keep = loc[lam > 0] if np.any(lam > 0) else loc
            loc2, lam2 = cert.polish_inside(P, x, keep)
            r2 = cert.inside_residual(P, x, loc2, lam2)
            if not r2 <= self.tolerance.threshold(k, b, loc2.size, inside=True)[0]:
                return False
            sup, lam, r, loc = sup[loc2], lam2, r2, loc2
        k0 = int(np.searchsorted(self.g, int(np.max(sup)) + 1))
        kk = k
        if k0 < k:
            ks = np.arange(k0, k)
            ok = r <= self.tolerance.threshold(ks, b, sup.size, inside=True)[0]
            kk = k0 if ok.all() else int(ks[np.flatnonzero(~ok)[-1]]) + 1
        value = r / self.tolerance.threshold(kk, b, sup.size)[1]
        if kk < k:
            self.shortcuts[b] += k - kk
        self.set_inside(b, kk, sup, lam, float(value))
        self.S[b] = np.union1d(self.S[b], sup)     # earlier rows stay: they serve the lower probes next
        return True

    # -- the loop ----------------------------------------------------------------------
    def _direction(self, b: int, j: int, S: np.ndarray):
        """The master on rows ``S`` (cached, all below g_j) for query b at probe j.

        Returns ``"inside"`` (certified and recorded), ``None`` (no usable residual) or
        ``(w, bound)``: the ℓ1-normalised residual direction and the master's bound on its scores.
        """
        lam, _, R = master(self._points(S), self.Qc[b:b + 1], np.arange(S.size), np.array([S.size]),
                                  float(self.tolerance.scale[j]))
        pos = lam > 0
        if np.all(np.isfinite(R)) and pos.any():
            thr_in, s_in = self.tolerance.threshold(j, b, int(pos.sum()), inside=True)
            if np.max(np.abs(R)) <= 2 * thr_in + 1e-12 * s_in and self._inside_from(b, S[pos], lam[pos], j):
                return "inside"
        l1 = float(np.abs(R).sum())
        if not (np.isfinite(l1) and l1 > 0):
            return None
        w = R[0] / l1
        return w, float(w @ self.Qc[b]) - float(w @ R[0]) + 1e-13 * self.d * float(self.tolerance.scale[j])

    def run(self) -> None:
        K, d = self.K, self.d
        target = np.array([self._target(b) for b in range(K)], dtype=np.int64)
        spent = np.zeros(K, dtype=np.int64)          # pricing rounds at the current target
        seeded: list[set] = [set() for _ in range(K)]     # probes where the seed x - c_j was priced
        rows = self.rows
        progress.update("nested", inner=0.0, open=K, queries=K, passes=rows.passes)   # owns the share
        while True:
            if progress.due():
                progress.update("nested", inner=progress.bracket_share(self.low, self.high, self.L),
                                open=int(np.count_nonzero(target >= 0)), queries=K, passes=rows.passes,
                                blocks=-(-rows.served // rows.block_rows))
            # 1. cached rows only: masters, inside checks, new probes; collect directions to price.
            price_b, price_j, price_w, bounds, thin, spec = [], [], [], [], [], []
            stuck: dict[int, list[int]] = {}
            for b in np.flatnonzero(target >= 0).tolist():
                while target[b] >= 0:
                    j = int(target[b])
                    n = int(self.g[j])
                    if spent[b] >= self.rounds:
                        stuck.setdefault(j, []).append(b)
                        break
                    S = self.S[b][self.S[b] < n]
                    if S.size <= d and j not in seeded[b]:
                        seeded[b].add(j)
                        v = self.Qc[b] - self.tolerance.centre[j]
                        l1 = float(np.abs(v).sum())
                        if l1 > 0:
                            price_b.append(b), price_j.append(j), price_w.append(v / l1), bounds.append(-np.inf)
                            thin.append(True), spec.append(False)
                            break
                    if S.size == 0:
                        stuck.setdefault(j, []).append(b)
                        break
                    got = self._direction(b, j, S)
                    if got == "inside":
                        spent[b] = 0
                        target[b] = self._target(b)
                        continue
                    if got is None:
                        stuck.setdefault(j, []).append(b)
                        break
                    price_b.append(b), price_j.append(j), price_w.append(got[0]), bounds.append(got[1])
                    thin.append(False), spec.append(False)
                    break
            if not price_b and not stuck:
                break
            if SPECULATE:
                self._speculate(price_b, price_j, price_w, bounds, thin, spec)
            # 2. one pass prices every pending direction.
            if price_b:
                pb = np.array(price_b, dtype=np.int64)
                self._price(pb, np.array(price_w).reshape(-1, d), np.array(price_j, dtype=np.int64),
                            np.array(bounds), np.array(thin), spent, np.array(spec))
                for b in np.unique(pb).tolist():
                    t = self._target(b)
                    if t != target[b]:
                        spent[b] = 0
                    target[b] = t
            # 3. stuck probes: the streaming engine on that prefix, one call per probe.
            for j, bs in sorted(stuck.items()):
                self._engine(j, np.array(bs, dtype=np.int64))
                for b in bs:
                    spent[b] = 0
                    target[b] = self._target(b)

    def _speculate(self, price_b, price_j, price_w, bounds, thin, spec) -> None:
        """Append, for each query priced at probe j, the direction at its next probe if j is outside.

        That probe is the shallowest one above j in the query's bracket; its direction is the master's
        on the rows cached below it (an inside answer there is recorded at once; a set of at most d
        rows offers none).  Speculative: a failure there does not count as a round without progress.
        """
        for b, j in list(zip(price_b, price_j)):
            jr = nested._probe(j, int(self.high[b]), self.failed[b], self.depth)
            if jr < 0:
                continue
            S = self.S[b][self.S[b] < int(self.g[jr])]
            if S.size <= self.d:
                continue
            got = self._direction(b, jr, S)
            if got is None or got == "inside":
                continue
            price_b.append(b), price_j.append(jr), price_w.append(got[0]), bounds.append(got[1])
            thin.append(False), spec.append(True)

    def _price(self, pb, W, J, bound, thin, spent, spec=None) -> None:
        """One pass (:func:`_price_part` on every block run): interval maxima up to ``g[high - 1]`` and
        chunk winners below ``g_j`` for each direction; then the certificates and rows it gives."""
        g, d, L = self.g, self.d, self.L
        P = pb.size
        limit = g[np.clip(self.high[pb] - 1, 0, L - 1)]
        limit = np.maximum(limit, g[J])
        nj = g[J]
        p = np.where(thin, 2 * d + 2, WINNERS * (d + 1))
        p = np.minimum(p, nj)
        ks = np.broadcast_to(np.arange(L), (P, L))
        thr, s = self.tolerance.threshold(ks, np.broadcast_to(pb[:, None], (P, L)), d)
        a_q = np.einsum("bj,bj->b", W, self.Qc[pb])
        wn = np.sqrt(np.einsum("bj,bj->b", W, W))
        # directions of like reach share a group of the pass's products (a group is scored while any
        # of its directions is alive): sorted by how far they may be priced, then by probe size
        order = np.lexsort((nj, limit))
        ctx = dict(W=np.ascontiguousarray(W[order]), a_q=a_q[order], limit=limit[order], nj=nj[order],
                   clen=(-(-nj // p))[order], pmax=int(p.max()), edges=np.concatenate([[0], g]),
                   thr=np.ascontiguousarray(thr[order]), c0=self.rows.c0, rb=max(2048, _SLICE_ELEMS // P),
                   floor2=self.floor2, wn=wn[order])
        back = np.argsort(order)
        *priced, dn2, skipped = _merge_priced(self.rows.map(_price_part, ctx))
        self.sieved += int(skipped[0])
        imax, iarg, irow, tval, tidx, trow = (a[back] for a in priced)
        spent[pb] += 1
        # skipped rows: per interval, their largest norm times |w| bounds their scores
        cum = np.maximum.accumulate(np.maximum(imax, _bound(dn2, wn)), axis=1)
        margin = a_q[:, None] - cum                           # (P, L)
        k = np.arange(L)[None, :]
        inrange = (k < self.high[pb][:, None]) & (g[None, :] <= limit[:, None])
        # the first interval at or above the probe where the direction fails ends its use (the rule
        # of _price_part: every interval up to it was priced whole, whatever the split of blocks)
        fail = ~(margin > thr) & (k >= J[:, None]) & inrange
        first = np.where(fail.any(axis=1), fail.argmax(axis=1), L)
        usable = inrange & (k <= first[:, None])
        ok = (margin > thr) & usable & np.isfinite(cum)
        for i, b in enumerate(pb.tolist()):
            j = int(J[i])
            hits = np.flatnonzero(ok[i])
            kstar = int(hits[-1]) if hits.size else -1
            if kstar > self.low[b]:
                self.set_outside(b, kstar, W[i].copy(), float(margin[i, kstar] / s[i, kstar]))
                if kstar > j:
                    self.shortcuts[b] += kstar - j
            # rows to learn from: chunk winners above the master's bound (all of them for a seed), and
            # the best rows of the intervals beyond the certified size that the direction fails on
            new = []
            if kstar < j:
                sel = tidx[i] >= 0
                if not thin[i]:
                    sel &= tval[i] > bound[i]
                new.append(tidx[i][sel])
            if thin[i] or kstar < j:    # best rows of every interval priced: rows for later, lower probes
                over = np.flatnonzero(usable[i] & (iarg[i] >= 0) & ((np.arange(L) <= j) | ~ok[i]))
            else:
                over = np.flatnonzero((np.arange(L) > max(kstar, j)) & usable[i] & (iarg[i] >= 0)
                                      & ~ok[i])[:d + 1]
            new.append(iarg[i][over])
            for c in np.flatnonzero(tidx[i] >= 0).tolist():
                self.cache.setdefault(int(tidx[i, c]), trow[i, c])
            for k in over.tolist():
                self.cache.setdefault(int(iarg[i, k]), irow[i, k])
            add = np.concatenate(new)
            merged = np.union1d(self.S[b], add)
            if kstar < j and merged.size == self.S[b].size and not thin[i] and not (spec is not None and spec[i]):
                spent[b] = self.rounds                      # no progress: the engine decides this probe
            self.S[b] = merged

    def _engine(self, j: int, bs: np.ndarray) -> None:
        """The streaming engine on prefix g_j for queries ``bs``; checked answers, no reusable certificate."""
        engine = StreamSolver(budget=self.engine_budget, fallbacks=())
        dec = engine.decide(self.rows.prefix(int(self.g[j])), self.Qc[bs], tol=self.tol)
        self.solves[bs] += 1
        for i, b in enumerate(bs.tolist()):
            if dec.status[i] == INSIDE:
                self.set_inside(b, j, None, None, float(dec.certificate[i]))
            elif dec.status[i] == OUTSIDE:
                self.set_outside(b, j, None, float(dec.certificate[i]))
            else:
                self.failed[b].add(j)


def _price_part(ctx, blocks):
    """Pricing pass over some blocks (see :meth:`_StreamSearch._price`).

    Per direction: per grid interval the largest score, its row and the row's translated
    coordinates; per chunk below its probe size the same.  Rows below the sieve radius of
    their interval (``floor2``, :data:`SIEVE`) are not scored: per interval with such rows the squared
    sieve radius is returned instead (``dn2``), a bound on their scores for every direction.
    A direction stops at the end of the first grid interval (at or above its probe) on which its
    margin fails *on the rows seen* — a failure on some rows is a failure on all, so every
    interval up to the first failure over all rows is always priced whole, however the blocks
    are split, and the values returned for those intervals (the only ones :meth:`_price` reads)
    are the same.

    ``ctx["limit"]`` (rows each direction is priced up to) is cut in place when it is writeable:
    the parts of one pass running at once in this process share it, so a direction one part
    finds dead is not scored on the rows of the others (8 parts on 2 threads: 15% of the whole
    d = 18 run's CPU and wall time).  A read-only one (a holder's copy from the object store) is copied.
    Which rows a part skips then depends on the others' progress; the values read do not.
    """
    W, a_q, limit, nj, clen, pmax, edges, thr, c0, rb, floor2, wn = (ctx[k] for k in (
        "W", "a_q", "limit", "nj", "clen", "pmax", "edges", "thr", "c0", "rb", "floor2", "wn"))
    if not limit.flags.writeable:
        limit = limit.copy()
    P, d = W.shape
    L = len(edges) - 1
    imax = np.full((P, L), -np.inf)
    iarg = np.full((P, L), -1, dtype=np.int64)
    irow = np.zeros((P, L, d))
    tval = np.full((P, pmax), -np.inf)
    tidx = np.full((P, pmax), -1, dtype=np.int64)
    trow = np.zeros((P, pmax, d))
    dn2 = np.full(L, -np.inf)
    skipped = np.zeros(1, dtype=np.int64)
    stop = int(limit.max())
    served = 0
    for start, X in blocks:        # stops early (no more rows drawn) once no direction is alive
        start = int(start)
        act = np.flatnonzero(limit > start)
        if act.size == 0 or start >= stop:
            break
        if isinstance(X, _Sieved):        # held by the sieve (rows past ``stop`` cut; stop is a grid size)
            end = min(X.end, stop)
            cut = int(np.searchsorted(X.idx, end))
            Y, gidx = X.rows[:cut] - c0, X.idx[:cut]
            parts = [p for p in X.parts if edges[p[0]] < end]
        else:
            Y = np.asarray(X, dtype=np.float64)[:max(0, min(len(X), stop - start))] - c0
            end = start + len(Y)
            keep, parts = _sieve(Y, start, edges, floor2)
            if parts:
                Y, gidx = Y[keep], start + keep
            else:
                gidx = np.arange(start, end)
        for k, r2, nd in parts:
            dn2[k] = max(dn2[k], r2)
            skipped[0] += nd
        served += end - start
        m = len(Y)
        for a0 in range(0, max(m, 1), rb):
            e0 = min(m, a0 + rb)
            gs = gidx[a0:e0]                               # global rows of this slice
            lo = int(gs[0]) if e0 > a0 else start
            hi = int(gidx[e0]) if e0 < m else end         # rows below hi are priced (or bounded) after it
            alive = np.unique(act[limit[act] > lo] // _GROUP)
            if alive.size == 0:
                break
            # Scores in fixed groups of directions over fixed row slices: BLAS rounds a product
            # differently for different shapes, and these shapes depend on neither the alive set nor
            # the split of blocks, so every score is the same bits in any pass and on any holder.
            sub = (alive[:, None] * _GROUP + np.arange(_GROUP)).reshape(-1)
            sub = sub[sub < P]
            S = np.empty((sub.size, e0 - a0))
            Yt = Y[a0:e0].T
            for i, gr in enumerate(alive.tolist()):
                r0, r1 = i * _GROUP, min((i + 1) * _GROUP, sub.size)
                np.matmul(W[gr * _GROUP:gr * _GROUP + (r1 - r0)], Yt, out=S[r0:r1])
            ar = np.arange(sub.size)
            for k in _intervals(edges, lo, hi):
                a, e = np.searchsorted(gs, edges[k]), np.searchsorted(gs, edges[k + 1])
                if e <= a:
                    continue
                jj = S[:, a:e].argmax(axis=1)
                v = S[ar, a + jj]
                better = v > imax[sub, k]
                if better.any():
                    rows = sub[better]
                    imax[rows, k] = v[better]
                    iarg[rows, k] = gs[a + jj[better]]
                    irow[rows, k] = Y[a0 + a + jj[better]]
            # chunk winners below g_j: directions of one chunk length share their chunks
            for cl in np.unique(clen[sub[nj[sub] > lo]]).tolist():
                grp = np.flatnonzero((clen[sub] == cl) & (nj[sub] > lo))
                top = min(hi, int(nj[sub[grp]].max()))
                for c in range(lo // cl, -(-top // cl)):
                    a, e = np.searchsorted(gs, max(c * cl, lo)), np.searchsorted(gs, min((c + 1) * cl, top))
                    if e <= a:
                        continue
                    gi = grp[nj[sub[grp]] > c * cl]     # directions whose prefix holds chunk c
                    if gi.size == 0:
                        continue
                    # a direction's last chunk ends at its own g_j: mask the rows beyond it
                    e_i = np.minimum(e, np.searchsorted(gs, nj[sub[gi]]))
                    Sg = S[gi, a:e]
                    if (e_i < e).any():
                        Sg = np.where(np.arange(a, e)[None, :] < e_i[:, None], Sg, -np.inf)
                    jj = Sg.argmax(axis=1)
                    v = Sg[np.arange(gi.size), jj]
                    rows = sub[gi]
                    better = v > tval[rows, c]
                    if better.any():
                        rb_ = rows[better]
                        tval[rb_, c] = v[better]
                        tidx[rb_, c] = gs[a + jj[better]]
                        trow[rb_, c] = Y[a0 + a + jj[better]]
            # A direction whose probe prefix is priced and that no longer separates stops at the end of
            # this grid interval, as the in-memory extension stops at its first failure.
            past = sub[nj[sub] <= hi]
            if past.size:
                khi = int(np.searchsorted(edges, hi - 1, side="right")) - 1
                run = np.maximum(imax[past, :khi + 1].max(axis=1), _bound(dn2[:khi + 1].max(), wn[past]))
                dead = past[a_q[past] - run <= thr[past, khi]]
                limit[dead] = np.minimum(limit[dead], max(hi, int(edges[khi + 1])))
    return served, (imax, iarg, irow, tval, tidx, trow, dn2, skipped)


#: Smallest squared sieve radius used: far above the underflow of squared norms.
_TINY2 = 1e-250


def _bound(dn2, wn):
    """Upper bound on the scores of skipped rows of squared norm <= ``dn2`` for directions of 2-norm ``wn``.

    ``dn2`` is a float or (L,) array (-inf: no row skipped) and ``wn`` (P,); returns (P,) or (P, L).
    The relative 1e-9 covers the rounding of the computed squared norms (about d ulps) with room to
    spare, and the absolute 1e-290 a squared norm that underflowed (radii are above 1e-125).
    """
    dn2 = np.asarray(dn2, dtype=np.float64)
    r = np.sqrt(np.maximum(dn2, 0.0) * (1.0 + 1e-9) + 1e-290)
    out = np.multiply.outer(wn, r) if dn2.ndim else wn * r
    return np.where(dn2 > -np.inf, out, -np.inf)


def _merge_priced(parts):
    """Partials of :func:`_price_part` in block order -> one: the first row of the largest score wins."""
    imax, iarg, irow, tval, tidx, trow, dn2, skipped = (np.array(a) for a in parts[0])
    for p in parts[1:]:
        skipped += p[7]
        b = p[0] > imax
        imax[b], iarg[b], irow[b] = p[0][b], p[1][b], p[2][b]
        b = p[3] > tval
        tval[b], tidx[b], trow[b] = p[3][b], p[4][b], p[5][b]
        np.maximum(dn2, p[6], out=dn2)
    return imax, iarg, irow, tval, tidx, trow, dn2, skipped
