"""Streaming column generation: the colgen master and pricing over a training set that is never held whole.

:class:`StreamSolver` implements only the solver hooks (:class:`~.base.Solver`): its
candidates come from the same master (:func:`~.master.master`) and pricing as
:class:`~.colgen.ColGenSolver`, but every product over all N rows goes through a
:class:`~.sources.Training` — the framed array, or a point source served by passes
(:mod:`.sources`: in-process, regenerated from keys, read from shards, or held by
Ray actors over a cluster).  The base template does the rest, as for every solver:
far queries, verification of every candidate (outside margins over all N rows in one
pass, inside residuals on the support rows), the nearest training point.

1. the source's *frame* pass gives the training set's centre and scale, so the frame is
   the one :class:`~.certificates.Frame` defines;
2. a *screen* (when the queries exceed one batch) prices ``w = x`` for every query in one
   pass: clear outside answers leave before batching;
3. per batch, a *seeding* pass prices ``w = x`` again with the best rows of ``k0`` chunks of
   each block and the lowest of ``n_low`` coarse chunks, which seed the working sets;
4. *rounds*: the NNLS master on each working set (rows remembered from the passes) gives an
   inside candidate or a residual direction, and one pass prices every direction against
   all N rows, giving an outside candidate or violators that join the set.

Memory is one block, its frame copy and one 16 MiB score block, plus the working sets of
a batch of queries, whose size is chosen to fit ``budget`` (bytes).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .base import OUTSIDE, Candidates, Solver
from .colgen import record_inside
from .master import master
from .sources import Streamed

#: Default bytes for the working sets of one batch of queries.
DEFAULT_BUDGET = 1 << 30
#: Rows per query kept in a batch, in units of d: seeds, support and violators (see StreamSolver._sizes).
ADD_ROWS = 6


class StreamSolver(Solver):
    """Column generation over a point source (see the module docstring); ``decide`` takes an array too.

    Parameters
    ----------
    max_rounds : int
        Master/pricing rounds after the seeding pass.
    k0, k : int or None
        Seeding winners and winners priced per round; default ``2 d + 2`` and ``d + 1``
        (capped so that a batch fits ``budget``).
    n_low : int
        Seeds from behind x (lowest rows of coarse chunks).
    budget : int, optional
        Bytes for working sets and returned rows of one batch (default 1 GiB).
    map : callable, optional
        ``map(fn, block_runs, context) -> list`` in order (``mc_hull.distributed.pool.Pool.map``) for
        sources that do not place their own blocks; serial by default.
    ranges : int
        Runs of blocks per pass offered to ``map``.
    fallbacks : tuple of str, optional
        Used only when the rows are in memory (default ``("lp",)``); a streamed source leaves the
        rest undecided, never guessed.
    """

    name: ClassVar[str] = "stream"
    default_fallbacks: ClassVar[tuple[str, ...]] = ("lp",)
    streams: ClassVar[bool] = True

    def __init__(self, *, max_rounds: int = 40, k0: int | None = None, k: int | None = None, n_low: int = 2,
                 budget: int | None = None, map=None, ranges: int = 1, fallbacks: tuple[str, ...] | None = None):
        super().__init__(fallbacks=fallbacks)
        self.max_rounds, self.k0, self.k, self.n_low = max_rounds, k0, k, n_low
        self.budget = int(budget or DEFAULT_BUDGET)
        self.map, self.ranges = map, max(1, int(ranges))
        self.passes = 0

    def _training(self, source) -> Streamed:
        self.data = Streamed(source, map=self.map, parts=self.ranges)
        return self.data

    def decide(self, points, queries, *, tol: float = 1e-9):
        """Decide ``queries`` (B, d) against ``points``: an array (N, d) or a point source.

        After a streamed call, ``passes`` counts the passes over the source (frame included).
        """
        self.data = None
        dec = super().decide(points, queries, tol=tol)
        self.passes = self.data.passes if self.data is not None else 0
        return dec

    def _sizes(self, d: int, B: int) -> tuple[int, int, int]:
        """Seeding winners, winners per round, and queries per batch that fit the budget."""
        k0, k = self.k0 or 2 * d + 2, self.k or d + 1
        per_query = lambda k0, k: 8 * d * (k0 + self.n_low + 2 * (k + d + 1)) * 2  # noqa: E731
        while per_query(k0, k) > self.budget and (k0 > 8 or k > 8):
            k0, k = max(8, k0 // 2), max(8, k // 2)
        return k0, k, max(1, min(max(B, 1), self.budget // per_query(k0, k)))

    def _batches(self, data, d, count):
        _, _, batch = self._sizes(d, count)
        return [slice(a, a + batch) for a in range(0, count, batch)]

    def _screen(self, data, Q, atol):
        """Queries beyond one batch: one cheap pass (``w = x``) settles what it can for all of them."""
        B, d = Q.shape
        if B <= self._sizes(d, B)[2]:
            return None
        best, _, _ = data.price(Q, 1, rows=False)
        l1 = np.abs(Q).sum(axis=1)
        cand = Candidates.empty(B, d, "prefilter")
        out = (np.einsum("bj,bj->b", Q, Q) - best > atol * l1) & (l1 > 0)
        cand.kind[out], cand.directions[out] = OUTSIDE, Q[out]
        return cand

    def _propose(self, data, Q, atol):
        """Candidates for frame queries ``Q`` (B, d) of one batch; rows met are remembered by ``data``."""
        B, d = Q.shape
        k0, k, _ = self._sizes(d, B)
        s = data.scale
        cand = Candidates.empty(B, d, "stream")
        best, top, bottom = data.price(Q, k0, low=self.n_low)
        l1 = np.abs(Q).sum(axis=1)
        out = (np.einsum("bj,bj->b", Q, Q) - best > atol * l1) & (l1 > 0)
        cand.kind[out], cand.directions[out], cand.method[out] = OUTSIDE, Q[out], "prefilter"
        active = np.flatnonzero(~out)
        data.remember(top[1][active], top[2][active])
        data.remember(bottom[1][active], bottom[2][active])
        seeds = np.sort(np.hstack([top[1][active], bottom[1][active]]), axis=1)
        fresh = np.ones(seeds.shape, dtype=bool)
        fresh[:, 1:] = seeds[:, 1:] != seeds[:, :-1]
        idx, sizes = seeds[fresh], fresh.sum(axis=1)
        for rnd in range(1, self.max_rounds + 1):
            if active.size == 0:
                break
            uniq, local = np.unique(idx, return_inverse=True)
            R = data.take(uniq)
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
            best, (top_val, top_idx, top_rows), _ = data.price(W, k)
            l1 = np.abs(W).sum(axis=1)
            out = np.einsum("bj,bj->b", W, Q[active]) - best > atol * l1
            cand.kind[active[out]], cand.directions[active[out]] = OUTSIDE, W[out]
            cand.method[active[out]] = "outside"
            viol = top_val > (thr + 1e-13 * d * s * l1)[:, None]
            grow = ~out & viol.any(axis=1)
            new_row = np.cumsum(grow) - 1
            v_row, v_col = np.nonzero(viol & grow[:, None])
            data.remember(top_idx[v_row, v_col], top_rows[v_row, v_col])
            from_sup = grow[sup_row]
            rows = np.concatenate([new_row[sup_row[from_sup]], new_row[v_row]])
            order = np.argsort(rows, kind="stable")
            idx = np.concatenate([sup_idx[from_sup], top_idx[v_row, v_col]])[order]
            active = active[grow]
            sizes = np.bincount(rows, minlength=active.size)
        return cand
