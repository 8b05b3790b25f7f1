"""Streaming column generation: the colgen master and pricing over a point source that never holds X whole.

A *point source* yields the training set block by block and fetches chosen rows
again (:class:`ArraySource` wraps an array; :class:`mc_hull.bigcell.KeyedSource`
regenerates blocks of a replicate from their seeds, in any order, on any worker).
:class:`StreamSolver` decides queries against a source with the same frame, the
same certificates and the same tolerance rule as every solver
(:mod:`~.certificates`), sharing :func:`~.colgen.master` and :func:`~.colgen.price`
with :class:`~.colgen.ColGenSolver`:

1. a *frame* pass gives the training set's centre and scale (min, max and sum per
   coordinate), so the frame is the one :class:`~.certificates.Frame` defines;
2. a *prefilter* pass prices ``w = x`` (frame coordinates) for every query: its best
   score per query and the best row of a few chunks of each block seed the working sets;
3. *rounds*: the NNLS master on each working set (rows fetched from the source) gives
   an inside candidate or a residual direction, and one pass prices every direction
   against all N rows, giving an outside candidate or violators that join the set;
4. every candidate is checked like any solver's: outside margins ``w.x - max_i w.X_i``
   over all N rows in one more pass, inside residuals on the fetched rows, both with
   the rounding bound; a training point within ``atol`` settles duplicates.

Memory is one block, its frame copy and one 16 MiB score block, plus the working
sets of a batch of queries, whose size is chosen to fit ``budget`` (bytes).  A pass
over block ranges can run on a ``map`` (``mc_hull.distributed.Pool.map``), since block
ranges are independent and only directions and a few rows per query travel.
"""

from __future__ import annotations

import math
import time
from typing import ClassVar

import numpy as np

from .. import progress
from . import certificates as cert
from .base import INSIDE, OUTSIDE, UNDECIDED, Candidates, Decisions, Solver, verify
from .colgen import master, price, record_inside

#: Rows per block of an :class:`ArraySource`.
ARRAY_BLOCK_ROWS = 1 << 16
#: Default bytes for the working sets of one batch of queries.
DEFAULT_BUDGET = 1 << 30
#: Rows per query kept in a batch, in units of d: seeds, support and violators (see StreamSolver._sizes).
ADD_ROWS = 6


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
        raise NotImplementedError


class ArraySource(PointSource):
    """A point source over an in-memory array ``X`` (N, d)."""

    def __init__(self, X: np.ndarray, block_rows: int = ARRAY_BLOCK_ROWS):
        self.X = np.asarray(X, dtype=np.float64)
        self.n, self.d = self.X.shape
        self.block_rows = int(block_rows)

    def generate(self, block_ids):
        """Yield ``(start, rows)`` for the given block ids."""
        for b in block_ids:
            start = int(b) * self.block_rows
            yield start, self.X[start:start + self.block_rows]

    def take(self, idx: np.ndarray) -> np.ndarray:
        """Rows ``idx`` (k,) of X, shape (k, d)."""
        return self.X[np.asarray(idx, dtype=np.intp)]


def take_rows(source, idx: np.ndarray) -> np.ndarray:
    """Rows ``idx`` of any source that can generate blocks: each needed block regenerated once."""
    idx = np.asarray(idx, dtype=np.intp)
    out = np.empty((idx.size, source.d))
    rows = source.block_rows
    blocks = idx // rows
    for b, (start, X) in zip(np.unique(blocks), source.generate(np.unique(blocks))):
        sel = np.flatnonzero(blocks == b)
        out[sel] = X[idx[sel] - start]
    return out


class StreamFrame:
    """The frame of :class:`~.certificates.Frame`, computed from a source in one pass (no copy of X)."""

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
        out = np.subtract(A, self.centre)
        return np.ldexp(out, -self.unit) if self.unit else out

    def map(self, A: np.ndarray) -> np.ndarray:
        """Frame coordinates of the rows of ``A`` (B, d)."""
        A = np.asarray(A, dtype=np.float64)
        with np.errstate(over="ignore"):
            return self.map_pre(np.ldexp(A, -self.pre) if self.pre else A)


# -- passes over block ranges (module level: a map may run them in other processes) ----------------
def _frame_pass(context, block_range):
    """Per coordinate min, max and sum of the rows of some blocks (raw coordinates)."""
    source = context
    d = source.d
    lo, hi, total = np.full(d, np.inf), np.full(d, -np.inf), np.zeros(d)
    for _, X in source.generate(range(*block_range)):
        if len(X):
            lo, hi = np.minimum(lo, X.min(axis=0)), np.maximum(hi, X.max(axis=0))
            total += X.sum(axis=0)
    return lo, hi, total


def _price_pass(context, block_range):
    """Per direction: the best frame score, and the ``k`` best chunk winners (score, row index, row).

    ``context`` is ``(source, frame, W, k, low, rows)``: directions ``W`` (B, d), winners kept per
    direction, lowest-scoring coarse-chunk rows kept (``low``), and whether rows are returned.
    """
    source, frame, W, k, low, rows = context
    B, d = W.shape
    best = np.full(B, -np.inf)
    top = (np.full((B, 0), -np.inf), np.zeros((B, 0), dtype=np.intp), np.zeros((B, 0, d if rows else 0)))
    bottom = (np.full((B, 0), np.inf), np.zeros((B, 0), dtype=np.intp), np.zeros((B, 0, d if rows else 0)))
    for start, X in source.generate(range(*block_range)):
        Y = frame.map(X)
        if low:
            b_best, t_idx, t_val, l_idx = price(Y, W, k, lowest=low)
            l_val = np.einsum("bkd,bd->bk", Y[l_idx], W)
            bottom = _keep(bottom, (-l_val, l_idx + start, Y[l_idx] if rows else bottom[2][:, :0]), low)
        else:
            b_best, t_idx, t_val = price(Y, W, k)
        np.maximum(best, b_best, out=best)
        top = _keep(top, (t_val, t_idx + start, Y[t_idx] if rows else top[2][:, :0]), k)
    return best, top, bottom


def _keep(old, new, k):
    """The ``k`` largest scores per row among ``old`` and ``new`` (score, index, rows) triples.

    Lowest rows are kept with this too, as negated scores.
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


def _margin_pass(context, block_range):
    """``min`` over some blocks of :func:`~.certificates.outside_margins` (= the margin over their rows)."""
    source, frame, Q, W = context
    margins = np.full(Q.shape[0], np.inf)
    for _, X in source.generate(range(*block_range)):
        np.minimum(margins, cert.outside_margins(frame.map(X), Q, W), out=margins)
    return margins


def _nearest_pass(context, block_range):
    """Nearest row (ℓ∞) of some blocks to each query: (index, distance, row)."""
    source, frame, Q = context
    B = Q.shape[0]
    index, dist, rows = np.zeros(B, dtype=np.intp), np.full(B, np.inf), np.zeros_like(Q)
    for start, X in source.generate(range(*block_range)):
        Y = frame.map(X)
        i, dd = cert.nearest_points(Y, Q)
        better = dd < dist
        index[better], dist[better], rows[better] = i[better] + start, dd[better], Y[i[better]]
    return index, dist, rows


class StreamSolver(Solver):
    """Column generation over a point source (see the module docstring); ``decide`` takes an array too.

    Parameters
    ----------
    max_rounds : int
        Master/pricing rounds after the prefilter.
    k0, k : int or None
        Seeding winners and winners priced per round; default ``2 d + 2`` and ``d + 1``
        (capped so that a batch fits ``budget``).
    n_low : int
        Seeds from behind x (lowest rows of coarse chunks).
    budget : int, optional
        Bytes for working sets and returned rows of one batch (default 1 GiB).
    map : callable, optional
        ``map(fn, block_ranges, context) -> list`` in order (``mc_hull.distributed.Pool.map``);
        serial by default.
    ranges : int
        Block ranges per pass offered to ``map``.
    fallbacks : tuple of str, optional
        Used only for an in-memory array (default ``("lp",)``); a streamed source leaves the
        rest undecided, never guessed.
    """

    name: ClassVar[str] = "stream"
    default_fallbacks: ClassVar[tuple[str, ...]] = ("lp",)

    def __init__(self, *, max_rounds: int = 40, k0: int | None = None, k: int | None = None, n_low: int = 2,
                 budget: int | None = None, map=None, ranges: int = 1, fallbacks: tuple[str, ...] | None = None):
        super().__init__(fallbacks=fallbacks)
        self.max_rounds, self.k0, self.k, self.n_low = max_rounds, k0, k, n_low
        self.budget = int(budget or DEFAULT_BUDGET)
        self.map, self.ranges = map, max(1, int(ranges))
        self.passes = 0

    # -- passes ----------------------------------------------------------------------------------
    def _pass(self, fn, source, context):
        nb = source.n_blocks
        parts = max(1, min(self.ranges, nb))
        edges = [nb * i // parts for i in range(parts + 1)]
        split = [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]
        self.passes += 1
        progress.update("stream", passes=self.passes, blocks=self.passes * nb)   # one report per pass
        if self.map is not None:
            return self.map(fn, split, context)
        return [fn(context, r) for r in split]

    def frame(self, source) -> StreamFrame:
        parts = self._pass(_frame_pass, source, source)
        lo = np.min([p[0] for p in parts], axis=0)
        hi = np.max([p[1] for p in parts], axis=0)
        return StreamFrame(lo, hi, np.sum([p[2] for p in parts], axis=0), source.n)

    def _price(self, source, frame, W, k, low=0, rows=True):
        parts = self._pass(_price_pass, source, (source, frame, W, k, low, rows))
        best = np.max([p[0] for p in parts], axis=0)
        top, bottom = parts[0][1], parts[0][2]
        for p in parts[1:]:
            top = _keep(top, p[1], k)
            bottom = _keep(bottom, p[2], low) if low else bottom
        return best, top, bottom

    def _margins(self, source, frame, Q, W):
        return np.min(self._pass(_margin_pass, source, (source, frame, Q, W)), axis=0)

    # -- the contract ----------------------------------------------------------------------------
    def decide(self, points, queries: np.ndarray, *, tol: float = 1e-9) -> Decisions:
        """Decide ``queries`` (B, d) against ``points``: an array (N, d) or a point source."""
        tol = cert.check_tol(tol)
        source = points if hasattr(points, "generate") else ArraySource(points)
        t0 = time.perf_counter()
        self.passes = 0
        Q = np.asarray(queries, dtype=np.float64)
        B, d = Q.shape
        frame = self.frame(source)
        Qf, scale = frame.map(Q), frame.scale
        atol = tol * scale
        dec = Decisions(status=np.full(B, UNDECIDED, dtype=np.int8), certificate=np.full(B, np.nan),
                        method=np.full(B, self.name, dtype=object), seconds=np.zeros(B),
                        rounds=np.zeros(B, dtype=np.int32))
        far = cert.far_queries(Qf, scale)
        if far.any():
            _, margins = cert.far_margins(frame.bounds, Qf[far])  # only the per-coordinate extremes are read
            dec.status[far] = OUTSIDE
            with np.errstate(over="ignore"):
                dec.certificate[far] = margins / scale
            dec.method[far] = f"{self.name}:far"
        near = np.flatnonzero(~far)
        k0, k, batch = self._sizes(d, near.size)
        if near.size:
            if near.size > batch:   # one cheap pass settles what the prefilter can, for every query
                best, _, _ = self._price(source, frame, Qf[near], 1, rows=False)
                l1 = np.abs(Qf[near]).sum(axis=1)
                cand = Candidates.empty(near.size, d, "prefilter")
                out = (np.einsum("bj,bj->b", Qf[near], Qf[near]) - best > atol * l1) & (l1 > 0)
                cand.kind[out], cand.directions[out] = OUTSIDE, Qf[near][out]
                self._settle(dec, near[out], self._verify(source, frame, Qf[near[out]],
                                                          _subset(cand, out), {}, atol, scale))
                near = near[~out]
            for a in range(0, near.size, batch):
                part = near[a:a + batch]
                cand, cache = self._propose_stream(source, frame, Qf[part], atol, k0, k)
                self._settle(dec, part, self._verify(source, frame, Qf[part], cand, cache, atol, scale))
        todo = np.flatnonzero(dec.status == UNDECIDED)
        if todo.size:   # a training point within atol: duplicates, X's own points at tight tol
            parts = self._pass(_nearest_pass, source, (source, frame, Qf[todo]))
            dist = np.array([p[1] for p in parts])
            pick = np.argmin(dist, axis=0)
            rows = np.array([p[2] for p in parts])[pick, np.arange(todo.size)]
            cand = Candidates.empty(todo.size, d, "point")
            cand.kind[:] = INSIDE
            cand.support = [np.array([i]) for i in range(todo.size)]
            cand.weights = [np.ones(1)] * todo.size
            sub = verify(rows, Qf[todo], cand, atol, scale, prefix=self.name)
            todo = dec.settle(todo, sub, ("status", "certificate", "method"))
        dec.seconds[:] = (time.perf_counter() - t0) / max(B, 1)
        if todo.size and isinstance(source, ArraySource):
            for solver in self.fallback_chain():
                if todo.size == 0:
                    break
                t1 = time.perf_counter()
                sub = solver.decide(source.X, Q[todo], tol=tol)
                dec.seconds[todo] += (time.perf_counter() - t1) / todo.size
                todo = dec.settle(todo, sub)
        return dec

    def _sizes(self, d: int, B: int) -> tuple[int, int, int]:
        """Seeding winners, winners per round, and queries per batch that fit the budget."""
        k0, k = self.k0 or 2 * d + 2, self.k or d + 1
        per_query = lambda k0, k: 8 * d * (k0 + self.n_low + 2 * (k + d + 1)) * 2  # noqa: E731
        while per_query(k0, k) > self.budget and (k0 > 8 or k > 8):
            k0, k = max(8, k0 // 2), max(8, k // 2)
        return k0, k, max(1, min(max(B, 1), self.budget // per_query(k0, k)))

    @staticmethod
    def _settle(dec: Decisions, where: np.ndarray, sub: Decisions) -> None:
        for attr in ("status", "certificate", "method", "rounds"):
            getattr(dec, attr)[where] = getattr(sub, attr)

    def _propose_stream(self, source, frame, Q, atol, k0, k):
        """Candidates for frame queries ``Q`` (B, d), and the rows seen: {global index: frame row}."""
        B, d = Q.shape
        s = frame.scale
        cand = Candidates.empty(B, d, "stream")
        cache: dict[int, np.ndarray] = {}
        best, top, bottom = self._price(source, frame, Q, k0, low=self.n_low)
        l1 = np.abs(Q).sum(axis=1)
        out = (np.einsum("bj,bj->b", Q, Q) - best > atol * l1) & (l1 > 0)
        cand.kind[out], cand.directions[out], cand.method[out] = OUTSIDE, Q[out], "prefilter"
        active = np.flatnonzero(~out)
        _remember(cache, top[1][active], top[2][active])
        _remember(cache, bottom[1][active], bottom[2][active])
        seeds = np.sort(np.hstack([top[1][active], bottom[1][active]]), axis=1)
        fresh = np.ones(seeds.shape, dtype=bool)
        fresh[:, 1:] = seeds[:, 1:] != seeds[:, :-1]
        idx, sizes = seeds[fresh], fresh.sum(axis=1)
        for rnd in range(1, self.max_rounds + 1):
            if active.size == 0:
                break
            uniq, local = np.unique(idx, return_inverse=True)
            R = np.array([cache[int(i)] for i in uniq]).reshape(len(uniq), d)
            lam, offs, W = master(R, Q[active], local.astype(np.intp), sizes, s)
            cand.rounds[active] = rnd
            pending, positive = record_inside(cand, active, idx, lam, offs, W, atol)
            row = np.repeat(np.arange(active.size), sizes)
            keep = positive & pending[row]
            sup_idx, sup_row = idx[keep], (np.cumsum(pending) - 1)[row[keep]]
            thr = np.einsum("bj,bj->b", W, Q[active] - W)
            active, W, thr = active[pending], W[pending], thr[pending]
            if active.size == 0:
                break
            best, (top_val, top_idx, top_rows), _ = self._price(source, frame, W, k)
            l1 = np.abs(W).sum(axis=1)
            out = np.einsum("bj,bj->b", W, Q[active]) - best > atol * l1
            cand.kind[active[out]], cand.directions[active[out]] = OUTSIDE, W[out]
            cand.method[active[out]] = "outside"
            viol = top_val > (thr + 1e-13 * d * s * l1)[:, None]
            grow = ~out & viol.any(axis=1)
            new_row = np.cumsum(grow) - 1
            v_row, v_col = np.nonzero(viol & grow[:, None])
            _remember(cache, top_idx[v_row, v_col][:, None], top_rows[v_row, v_col][:, None])
            from_sup = grow[sup_row]
            rows = np.concatenate([new_row[sup_row[from_sup]], new_row[v_row]])
            order = np.argsort(rows, kind="stable")
            idx = np.concatenate([sup_idx[from_sup], top_idx[v_row, v_col]])[order]
            active = active[grow]
            sizes = np.bincount(rows, minlength=active.size)
        return cand, cache

    def _verify(self, source, frame, Q, cand, cache, atol, scale) -> Decisions:
        """Check candidates like :func:`~.base.verify`: margins over all N rows, residuals on the rows used."""
        B, d = Q.shape
        inside = np.flatnonzero(cand.kind == INSIDE)
        out = np.flatnonzero(cand.kind == OUTSIDE)
        local = Candidates.empty(B, d, self.name)
        local.method, local.rounds = cand.method, cand.rounds
        used = np.unique(np.concatenate([np.asarray(cand.support[b], dtype=np.intp) for b in inside])) \
            if inside.size else np.zeros(0, dtype=np.intp)
        R = np.array([cache[int(i)] for i in used]).reshape(len(used), d)
        for b in inside:
            local.kind[b] = INSIDE
            local.support[b] = np.searchsorted(used, np.asarray(cand.support[b], dtype=np.intp))
            local.weights[b] = cand.weights[b]
        dec = verify(R if len(R) else np.zeros((1, d)), Q, local, atol, scale, prefix=self.name)
        if out.size:
            margins = self._margins(source, frame, Q[out], cand.directions[out])
            ok = margins - cert.rounding_bound(Q[out], scale, d) > atol
            dec.status[out[ok]] = OUTSIDE
            dec.certificate[out[ok]] = margins[ok] / scale
        return dec


def _remember(cache: dict, idx: np.ndarray, rows: np.ndarray) -> None:
    for i, r in zip(idx.reshape(-1).tolist(), rows.reshape(-1, rows.shape[-1])):
        cache.setdefault(i, r)


def _subset(cand: Candidates, mask: np.ndarray) -> Candidates:
    sel = np.flatnonzero(mask)
    return Candidates(kind=cand.kind[sel], directions=cand.directions[sel],
                      support=[cand.support[i] for i in sel], weights=[cand.weights[i] for i in sel],
                      method=cand.method[sel], rounds=cand.rounds[sel])
