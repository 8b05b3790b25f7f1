"""Entry sizes on a grid of nested prefixes: the whole p(d, N) curve from one training set per replicate.

Membership is monotone in N: if x lies in conv(X_1..X_n) it lies in conv(X_1..X_m)
for every m >= n.  So one training set X of the largest size of a grid, read as
nested prefixes X[:n], gives every smaller size at once: for each query its
*entry size* ``T(x) = min{n : x in conv(X[:n])}`` and ``P(T <= N) = p(d, N)``.

:func:`entry_sizes` locates each query's T on the grid ``g_0 < ... < g_{L-1}``
with a certificate at both ends: a checked outside certificate (a separating
direction) at the last grid size below T and a checked inside certificate (convex
weights) at T.  The search is a bisection over grid indices, batched across
queries (one call of the batched engine ``Solver.decide`` on ``X[:g_j]`` per
distinct probe ``j``), with two shortcuts that reuse what each answer proves:

* an inside answer with support rows ``< m`` holds on every prefix of ``m``
  rows or more, so the upper bracket drops to the first grid size ``>= m``
  (often far below the probe);
* an outside direction ``w`` certified at ``g_j`` is priced against the rows
  added after ``g_j`` only (``w @ x - max`` over the new rows); it keeps
  certifying every larger grid size until a new row crosses it, which often
  settles several sizes, sometimes all the way to T, without a solve.

The per-size estimate ``#{T <= g_j} / K`` is therefore monotone in N by
construction.  Trials of one replicate share X, so intervals must be clustered by
replicate (:func:`curve` uses :func:`mc_hull.stats.intervals.clustered_interval`).

How many queries per training set is efficient is a trade between the cost of
drawing X (and starting a replicate) and the correlation of the queries that
share it: :func:`efficient_queries_per_set` gives the rule.

Pure: imports neither ray nor pyarrow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .. import progress, samplers
from ..stats import intervals as stats
from ..solvers import INSIDE, OUTSIDE, get_solver
from ..solvers import certificates as cert
from ..solvers.master import master

# Scores held at once when pricing outside directions against new rows (16 MiB of doubles).
_BLOCK_ELEMS = 1 << 21
#: Cost of one standard normal draw on the reference machine (seconds), NOTES.md.
DRAW_SECONDS = 8e-9


def check_sizes(sizes) -> np.ndarray:
    """The grid as a strictly increasing int64 array of sizes >= 1 (ValueError otherwise)."""
    g = np.asarray(sizes, dtype=np.int64).ravel()
    if g.size == 0 or np.any(g < 1) or np.any(np.diff(g) <= 0):
        raise ValueError(f"sizes: must be strictly increasing integers >= 1, got {list(np.ravel(sizes))}")
    return g


# -- tolerance on prefixes -----------------------------------------------------
class PrefixScales:
    """The certificate threshold of every grid prefix, computed the way the solvers do.

    With the frame rule (``certificates.Frame``) the scale of ``X[:n]`` is
    ``s = max_ij |X_ij - c_j|`` with ``c`` the prefix mean (``max(||c||_inf, 1)``
    when all rows coincide) and a margin must beat ``tol * s`` plus the rounding
    bound ``rho``; under the older rule the scale is the largest absolute
    coordinate of the prefix and the query.  Both need only column sums, maxima
    and minima at the grid sizes: O(N d) once.

    Parameters
    ----------
    X : ndarray, shape (N, d)
    sizes : ndarray of int, shape (L,)
        Grid sizes, each <= N.
    tol : float
    Q : ndarray, shape (K, d)
        The queries (their distance to each prefix centre enters the rounding bound).
    """

    def __init__(self, X: np.ndarray, sizes: np.ndarray, tol: float, Q: np.ndarray):
        L, d = len(sizes), X.shape[1]
        sums, maxs, mins = np.zeros((L, d)), np.full((L, d), -np.inf), np.full((L, d), np.inf)
        start = 0
        for j, n in enumerate(np.asarray(sizes).tolist()):
            block = X[start:n]
            if block.shape[0]:
                sums[j], maxs[j], mins[j] = block.sum(axis=0), block.max(axis=0), block.min(axis=0)
            start = n
        self._build(sums, maxs, mins, sizes, tol, Q)

    @classmethod
    def from_stats(cls, sums: np.ndarray, maxs: np.ndarray, mins: np.ndarray, sizes: np.ndarray, tol: float,
                   Q: np.ndarray) -> "PrefixScales":
        """The same thresholds from per-interval statistics (a streamed X never held whole).

        ``sums``, ``maxs``, ``mins`` : ndarray, shape (L, d): column sums, maxima and minima of
        the rows ``sizes[j-1] .. sizes[j]`` (from 0 for j = 0).
        """
        self = cls.__new__(cls)
        self._build(np.asarray(sums), np.asarray(maxs), np.asarray(mins), sizes, tol, Q)
        return self

    def _build(self, sums, maxs, mins, sizes, tol, Q):
        self.tol = float(tol)
        self.frame = hasattr(cert, "Frame")
        L, d = sums.shape
        self.centre = np.empty((L, d))
        self.scale = np.empty(L)
        csum, cmax, cmin = np.zeros(d), np.full(d, -np.inf), np.full(d, np.inf)
        for j, n in enumerate(np.asarray(sizes).tolist()):
            csum += sums[j]
            np.maximum(cmax, maxs[j], out=cmax)
            np.minimum(cmin, mins[j], out=cmin)
            c = csum / n
            self.centre[j] = c
            if self.frame:
                s = max(float(np.max(cmax - c)), float(np.max(c - cmin)))
                self.scale[j] = s if s > 0 else max(float(np.max(np.abs(c))), 1.0)
            else:
                self.scale[j] = max(float(np.max(cmax)), float(-np.min(cmin)))
        if self.frame:   # |x - c_j|_inf for every query and prefix: (K, L)
            self.qdist = np.max(np.abs(Q[:, None, :] - self.centre[None, :, :]), axis=2)
        else:
            self.qmax = np.max(np.abs(Q), axis=1) if Q.size else np.zeros(len(Q))

    def threshold(self, j, b, terms, inside: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Certificate threshold and scale for queries ``b`` (indices) on prefix ``j``.

        ``j`` and ``b`` are ints or int arrays of one shape; ``terms`` is the length
        of the checked sums (d for a margin, the support size for a residual).
        Returns ``(thr, s)``: an outside margin must exceed ``thr``; with
        ``inside=True`` an inside residual must not exceed it (the rounding bound
        counts against the certificate both ways).
        """
        j, b = np.asarray(j), np.asarray(b)
        s = self.scale[j] if j.shape == b.shape else np.broadcast_to(self.scale[j], np.broadcast(j, b).shape)
        if self.frame:
            rho = 2.0 * (np.asarray(terms, dtype=np.float64) + 3.0) * 2.0 ** -53 * (self.qdist[b, j] + s)
            return self.tol * s + (-rho if inside else rho), s
        s = np.maximum(s, self.qmax[b])
        s = np.where(s > 0, s, 1.0)
        return self.tol * s, s


# -- the batched engine, keeping its certificates ----------------------------
def _decide_keep(solver, points: np.ndarray, queries: np.ndarray, tol: float):
    """``solver.decide`` plus the accepted certificates of the queries the solver itself settled.

    The candidates the solver proposed are recorded on the way through
    :meth:`Solver.decide` (which checks them); for a query it accepted, the
    candidate is the certificate (inside weights are re-polished here, as the
    check does, when the raw ones miss).  Queries settled by a fallback solver keep
    their checked status and value but no reusable certificate.

    Returns
    -------
    dec : Decisions
    directions : ndarray, shape (B, d)
        The outside direction (ℓ1-normalised) where one is kept, else zeros.
    support : list of ndarray or None, length B
        Rows of ``points`` carrying the inside weights, where kept.
    weights : list of ndarray or None, length B
    """
    recorded = []
    propose = solver._propose

    def recording(*args, **kwargs):
        cand = propose(*args, **kwargs)
        recorded.append(cand)
        return cand

    solver._propose = recording
    try:
        dec = solver.decide(points, queries, tol=tol)
    finally:
        del solver._propose
    B, d = queries.shape
    directions = np.zeros((B, d))
    support, weights = [None] * B, [None] * B
    own = np.array([str(m).split(":")[0] == solver.name for m in dec.method], dtype=bool)
    if not recorded:
        return dec, directions, support, weights
    cand = recorded[0]
    if len(cand.kind) != B:   # the engine proposed for a subset: no alignment, no reuse
        return dec, directions, support, weights
    # Keep a candidate only where the accepted answer is visibly this candidate (same kind, same stage).
    own &= np.array([dec.method[b] in (solver.name, f"{solver.name}:{cand.method[b]}")
                     for b in range(B)], dtype=bool)
    out = np.flatnonzero(own & (dec.status == OUTSIDE) & (cand.kind == OUTSIDE))
    if out.size:
        W = cand.directions[out]
        directions[out] = W / np.abs(W).sum(axis=1, keepdims=True)
    for b in np.flatnonzero(own & (dec.status == INSIDE) & (cand.kind == INSIDE)).tolist():
        sup = np.asarray(cand.support[b], dtype=np.intp)
        lam = np.asarray(cand.weights[b], dtype=np.float64)
        if sup.size == 0:
            continue
        support[b], weights[b] = sup, lam
    return dec, directions, support, weights


# -- the result ----------------------------------------------------------------
@dataclass
class EntrySizes:
    """Bracketed entry sizes of K queries on a grid of L nested prefixes.

    Attributes
    ----------
    sizes : ndarray of int, shape (L,)
    low : ndarray of int, shape (K,)
        Index of the largest grid size at which the query is certified outside
        (-1: none, i.e. inside already at ``sizes[0]`` or undecided there).
    high : ndarray of int, shape (K,)
        Index of the smallest grid size at which it is certified inside
        (L: none, i.e. outside at ``sizes[-1]`` or undecided).
        ``high == low + 1`` for every located query.
    low_value, high_value : ndarray, shape (K,)
        Certificate values (margin / scale, residual / scale) at those sizes; NaN for none.
    directions : ndarray, shape (K, d)
        The ℓ1-normalised outside direction certified at ``sizes[low]``; NaN rows where
        the certificate came from a fallback solver (its value is still checked).
    support, weights : list of ndarray or None, length K
        Inside certificate at ``sizes[high]``: rows of X and convex weights; None
        where the certificate came from a fallback solver.
    solves : ndarray of int, shape (K,)
        Solver calls spent on each query (one per probed prefix).
    shortcuts : ndarray of int, shape (K,)
        Grid sizes settled without a solve (reused certificates).
    seconds : float
        Wall time of the whole search.
    """

    sizes: np.ndarray
    low: np.ndarray
    high: np.ndarray
    low_value: np.ndarray
    high_value: np.ndarray
    directions: np.ndarray
    support: list
    weights: list
    solves: np.ndarray
    shortcuts: np.ndarray
    seconds: float = 0.0

    @property
    def located(self) -> np.ndarray:
        """Boolean (K,): the entry size is bracketed to one grid step (or beyond the grid)."""
        return self.high == self.low + 1

    @property
    def t_low(self) -> np.ndarray:
        """Largest grid size certified outside (0 when none), int64 (K,)."""
        return np.where(self.low >= 0, self.sizes[np.clip(self.low, 0, None)], 0)

    @property
    def t_high(self) -> np.ndarray:
        """Smallest grid size certified inside (-1 when none: outside at the largest size), int64 (K,)."""
        L = len(self.sizes)
        return np.where(self.high < L, self.sizes[np.clip(self.high, None, L - 1)], -1)

    def inside_table(self) -> np.ndarray:
        """(K, L) float: 1 inside, 0 outside, NaN undecided at each grid size (monotone in each row)."""
        j = np.arange(len(self.sizes))[None, :]
        table = np.full((len(self.low), len(self.sizes)), np.nan)
        table[j <= self.low[:, None]] = 0.0
        table[j >= self.high[:, None]] = 1.0
        return table


# -- the search ----------------------------------------------------------------
def entry_sizes(X: np.ndarray, Q: np.ndarray, sizes, *, solver="auto", tol: float = 1e-9,
                rounds: int = 12, method: str = "warm", overwrite: bool = False) -> EntrySizes:
    """Locate every query's entry size on the grid of prefixes ``X[:sizes[j]]``.

    Parameters
    ----------
    X : ndarray, shape (N, d)
        The training set; only its first ``sizes[-1]`` rows are read.
    Q : ndarray, shape (K, d)
        Queries.
    sizes : sequence of int, length L
        Strictly increasing grid sizes, the last at most N.
    solver : str or Solver
        The batched engine (a registry name or an instance).
    tol : float
        Relative tolerance of the certificates (:mod:`mc_hull.solvers.certificates`).
    rounds : int
        Warm column-generation rounds per probe before a query is handed to the engine.
    method : {"warm", "engine"}
        How a probe at ``X[:g_j]`` is decided.  ``"warm"`` (default): from the
        query's working set, the rows of its earlier certificates below ``g_j``
        (its inside support, its outside direction's best rows and master
        support): the engine's NNLS master on that set, then the residual
        direction priced against the whole prefix in one batched product (an
        outside certificate if its margin clears the threshold, else its best rows
        join the set), at most ``rounds`` times; whatever stays open goes to the
        engine.  ``"engine"``: every probe is one engine call (the reference).
    overwrite : bool
        Translate X in place instead of copying it, when X is a column-major float64
        array holding exactly ``sizes[-1]`` rows (as :func:`replicate_data` returns):
        the search then holds no copy of X.  X's contents are then the translated
        rows (``X - X.mean(axis=0)``) afterwards.  Same results either way.

    Returns
    -------
    EntrySizes
    """
    if method not in ("warm", "engine"):
        raise ValueError(f"method: must be 'warm' or 'engine', got {method!r}")
    search = _Search(X, Q, sizes, solver, tol, rounds if method == "warm" else 0, overwrite)
    search.bisect()
    return search.result()


class _Search:
    """State of one entry-size search: brackets, certificates, working sets."""

    def __init__(self, X, Q, sizes, solver, tol, rounds, overwrite=False):
        self.t0 = time.perf_counter()
        g = check_sizes(sizes)
        Q = np.asarray(Q, dtype=np.float64)
        if np.ndim(X) != 2 or Q.ndim != 2 or Q.shape[1] != np.shape(X)[1]:
            raise ValueError(f"X (N, d) and Q (K, d) must agree in d, got {np.shape(X)} and {Q.shape}")
        if g[-1] > np.shape(X)[0]:
            raise ValueError(f"sizes: largest size {g[-1]} exceeds the {np.shape(X)[0]} rows of X")
        # One translated, column-major copy of X is all the search holds.  Translated: margins and
        # residuals are translation invariant, and centred coordinates keep their rounding relative
        # to the spread, not to an offset (the engine's frame does the same; the rounding of this
        # shift is of the order its bound covers).  Column-major: every prefix is then d contiguous
        # columns, so per-prefix reductions (means, extremes, centring in the engine's frame) run
        # 10-20x faster at small d than on row-major data.
        own = (overwrite and isinstance(X, np.ndarray) and X.dtype == np.float64 and X.flags.f_contiguous
               and X.flags.writeable and X.shape[0] == int(g[-1]))
        X = np.asarray(X, dtype=np.float64)[:int(g[-1])]
        self.c0 = X.mean(axis=0) if X.flags.f_contiguous else np.ones(X.shape[0]) @ X / X.shape[0]
        self.Xc = X if own else np.empty(X.shape, order="F")
        np.subtract(X, self.c0, out=self.Xc)
        self.Qc = Q - self.c0
        self.X, self.Q = self.Xc, self.Qc     # everything below works in the translated coordinates
        self.g, self.tol, self.rounds = g, float(tol), int(rounds)
        self.engine = get_solver(solver) if isinstance(solver, str) else solver
        L, (K, d) = len(g), Q.shape
        self.L, self.K, self.d = L, K, d
        self.tolerance = PrefixScales(self.Xc, g, tol, self.Qc)
        self._init_brackets(K, L, d)

    def _init_brackets(self, K: int, L: int, d: int) -> None:
        """Open brackets (nothing certified) for K queries on L sizes in dimension d."""
        self.low = np.full(K, -1, dtype=np.int64)
        self.high = np.full(K, L, dtype=np.int64)
        self.low_value, self.high_value = np.full(K, np.nan), np.full(K, np.nan)
        self.directions = np.full((K, d), np.nan)
        self.support, self.weights = [None] * K, [None] * K
        self.solves = np.zeros(K, dtype=np.int64)
        self.shortcuts = np.zeros(K, dtype=np.int64)
        self.failed: list[set] = [set() for _ in range(K)]   # probes that came back undecided

    def result(self) -> EntrySizes:
        return EntrySizes(sizes=self.g, low=self.low, high=self.high, low_value=self.low_value,
                          high_value=self.high_value, directions=self.directions,
                          support=self.support, weights=self.weights, solves=self.solves,
                          shortcuts=self.shortcuts, seconds=time.perf_counter() - self.t0)

    # -- certificates ----------------------------------------------------------
    def set_inside(self, b: int, k: int, sup, lam, value: float) -> None:
        if k < self.high[b]:
            self.high[b], self.high_value[b] = k, value
            self.support[b] = None if sup is None else np.asarray(sup, dtype=np.intp)
            self.weights[b] = None if lam is None else np.asarray(lam) / np.sum(lam)

    def set_outside(self, b: int, k: int, w, value: float) -> None:
        if k > self.low[b]:
            self.low[b], self.low_value[b] = k, value
            self.directions[b] = np.nan if w is None else w

    def engine_probe(self, j: int, batch: np.ndarray):
        """One call of the engine on ``X[:g_j]`` for ``batch``; returns (status, directions)."""
        X, Q, tolerance = self.Xc, self.Qc, self.tolerance
        n = int(self.g[j])
        dec, dirs, sup, wts = _decide_keep(self.engine, self.X[:n], self.Q[batch], self.tol)
        self.solves[batch] += 1
        st = dec.status
        for i in np.flatnonzero(st == INSIDE).tolist():
            b, k = int(batch[i]), j
            if sup[i] is not None:   # raw weights the check had to polish: polish them the same way
                sup[i], wts[i] = _checked_weights(X[:n], Q[b], b, sup[i], wts[i], tolerance, j)
            if sup[i] is not None:   # the same weights hold on every prefix holding the support
                k = _lowest_inside(X, Q[b], b, sup[i], wts[i], self.g, tolerance, j)
            value = dec.certificate[i]
            if k < j:
                self.shortcuts[b] += j - k
                r = cert.inside_residual(X, Q[b], sup[i], wts[i])
                value = r / tolerance.threshold(k, b, sup[i].size)[1]
            self.set_inside(b, k, sup[i], wts[i], value)
        for i in np.flatnonzero(st == OUTSIDE).tolist():
            self.set_outside(int(batch[i]), j, dirs[i] if np.any(dirs[i]) else None, dec.certificate[i])
        for i in np.flatnonzero((st != INSIDE) & (st != OUTSIDE)).tolist():
            self.failed[int(batch[i])].add(j)
        return st, dirs, dec.certificate

    def _warm(self, k: int, batch: np.ndarray):
        """Decide ``batch`` at g_k from their working sets (rows below g_k).

        Each round projects x onto conv(X_S) with the engine's NNLS master: a
        residual within the threshold is an inside certificate; otherwise the
        residual is a direction, priced against the whole prefix in one batched
        product: a margin above the threshold is an outside certificate, else the
        rows beating the master's bound join S.  A query with an empty set, a
        failed master, no progress or ``rounds`` spent is left to the engine.

        Returns
        -------
        engine : ndarray of int
            Queries still open.
        out, W, margin : ndarrays
            Queries certified outside at g_k, their directions (ℓ1 = 1) and margins.
        """
        n, d, Qc = int(self.g[k]), self.d, self.Qc
        s_k = float(self.tolerance.scale[k])
        S = self.S
        for b in batch.tolist():
            S[b] = S[b][S[b] < n]
        sizes_all = np.array([S[b].size for b in batch.tolist()], dtype=np.intp)
        thin = batch[sizes_all <= d]
        if thin.size:   # seed thin sets like the engine's round 0: the best rows along x - centre
            V = Qc[thin] - self.tolerance.centre[k]
            l1 = np.abs(V).sum(axis=1, keepdims=True)
            V = np.where(l1 > 0, V / np.where(l1 > 0, l1, 1.0), 0.0)
            _, top, _ = _chunk_scores(V, self.Xc[:n], 2 * d + 2)
            for b, merged in zip(thin.tolist(), _merge([S[b] for b in thin.tolist()], list(top))):
                S[b] = merged
        todo, engine = batch, []
        outs, out_w, out_m = [], [], []
        for _ in range(self.rounds):
            if todo.size == 0:
                break
            sets = [S[b] for b in todo.tolist()]
            sizes = np.array([x.size for x in sets], dtype=np.intp)
            idx = np.concatenate(sets)
            lam, offs, R = master(self.Xc, Qc[todo], idx, sizes, s_k)
            bounds = offs.tolist()
            pos = lam > 0
            sups = [idx[a:e][pos[a:e]] for a, e in zip(bounds[:-1], bounds[1:])]
            lams = [lam[a:e][pos[a:e]] for a, e in zip(bounds[:-1], bounds[1:])]
            nsup = np.array([x.size for x in sups])
            thr_in, s_in = self.tolerance.threshold(k, todo, nsup, inside=True)
            # The master's residual is the candidate's; check the near ones exactly, on X itself.
            inside = np.zeros(todo.size, dtype=bool)
            near = np.flatnonzero(np.max(np.abs(R), axis=1) <= 2 * thr_in + 1e-12 * s_in)
            if near.size:
                res = cert.inside_residuals(self.Xc, Qc[todo[near]], [sups[i] for i in near],
                                            [lams[i] for i in near])
                ok = res <= thr_in[near]
                inside[near[ok]] = True
                for i, r in zip(near[ok].tolist(), res[ok].tolist()):
                    b = int(todo[i])
                    kk = _lowest_inside(self.Xc, Qc[b], b, sups[i], lams[i], self.g, self.tolerance, k)
                    value = r / s_in[i]
                    if kk < k:
                        self.shortcuts[b] += k - kk
                        value = r / self.tolerance.threshold(kk, b, sups[i].size)[1]
                    self.set_inside(b, kk, sups[i], lams[i], value)
                    S[b] = sups[i]
            l1 = np.abs(R).sum(axis=1)
            usable = np.isfinite(l1) & (l1 > 0)
            engine += todo[~inside & ~usable].tolist()
            go = np.flatnonzero(~inside & usable)
            if go.size == 0:
                todo = go
                continue
            R = R[go]
            W = R / l1[go, None]
            best, top_idx, top_val = _chunk_scores(W, self.Xc[:n], d + 1)
            a = np.einsum("bj,bj->b", W, Qc[todo[go]])
            margin = a - best
            thr_out, s_out = self.tolerance.threshold(k, todo[go], d)
            # The master's bound w . p (p = x - r, the projection): rows above it improve the master.
            bound = a - np.einsum("bj,bj->b", W, R) + 1e-13 * d * s_k
            out = margin > thr_out
            viol = top_val > bound[:, None]
            grow = ~out & viol.any(axis=1)
            engine += todo[go[~out & ~grow]].tolist()
            for i in np.flatnonzero(out).tolist():
                b = int(todo[go[i]])
                self.set_outside(b, k, W[i].copy(), margin[i] / s_out[i])
                outs.append(b), out_w.append(W[i]), out_m.append(margin[i])
            keep = np.flatnonzero(out | grow)
            extra = [top_idx[i] if out[i] else top_idx[i][viol[i]] for i in keep.tolist()]
            for i, merged in zip(keep.tolist(), _merge([sups[go[i]] for i in keep.tolist()], extra)):
                S[int(todo[go[i]])] = merged
            todo = todo[go[grow]]
        engine += todo.tolist()
        return (np.array(sorted(engine), dtype=np.intp), np.array(outs, dtype=np.intp),
                np.array(out_w).reshape(-1, d), np.array(out_m))

    def _extend(self, j: int, batch: np.ndarray, W: np.ndarray, margin: np.ndarray) -> None:
        """Price outside directions certified at ``g[j]`` against the rows added after it.

        A direction keeps certifying the next grid size while its margin over the
        new rows and its carried margin both beat that size's threshold; the rows of
        the chunk where it fails (its best scores there) join the working set.
        """
        g, d = self.g, self.d
        a = np.einsum("bj,bj->b", W, self.Qc[batch])
        alive = np.ones(batch.size, dtype=bool)
        for k in range(j + 1, self.L):
            alive &= self.high[batch] > k          # sizes known inside need no outside certificate
            if not alive.any():
                break
            idx = np.flatnonzero(alive)
            start = int(g[k - 1])
            best, top, _ = _chunk_scores(W[idx], self.Xc[start:int(g[k])], d + 1)
            margin[idx] = np.minimum(margin[idx], a[idx] - best)
            thr, s = self.tolerance.threshold(k, batch[idx], d)
            ok = margin[idx] > thr
            for i in np.flatnonzero(ok).tolist():
                b = int(batch[idx[i]])
                self.set_outside(b, k, W[idx[i]].copy(), margin[idx[i]] / s[i])
                self.shortcuts[b] += 1
            for i in np.flatnonzero(~ok).tolist():
                b = int(batch[idx[i]])
                self.S[b] = np.union1d(self.S[b], top[i] + start)
            alive[idx[~ok]] = False

    # -- bisection ---------------------------------------------------------------
    def bisect(self) -> None:
        """Bisection over grid indices for every query whose bracket is still open."""
        K = self.K
        self.S: list = [np.zeros(0, dtype=np.intp)] * K   # working sets (rows of X)
        depth = search_tree_depths(self.L)
        low, high, failed = self.low, self.high, self.failed
        target = np.full(K, -1, dtype=np.int64)

        def retarget(bs):
            for b in bs.tolist():
                target[b] = _probe(int(low[b]), int(high[b]), failed[b], depth) if high[b] - low[b] > 1 else -1

        retarget(np.arange(K))
        progress.update("nested", inner=0.0, open=K, queries=K)   # this search owns the replicate's share
        # Smallest probe first: a query waiting at a large prefix waits until every cheaper probe is
        # done, so queries that climb there by different paths meet in one batched call.
        while True:
            waiting = np.flatnonzero(target >= 0)
            if waiting.size == 0:
                break
            if progress.due():
                progress.update("nested", inner=progress.bracket_share(low, high, self.L), open=int(waiting.size),
                                queries=K)
            j = int(target[waiting].min())
            batch = waiting[target[waiting] == j]
            rest = batch
            if self.rounds:
                rest, out, W, margin = self._warm(j, batch)
                if out.size:
                    self._extend(j, out, W, margin)
            if rest.size:
                st, dirs, values = self.engine_probe(j, rest)
                for i in np.flatnonzero(st == INSIDE).tolist():
                    b = int(rest[i])
                    if self.support[b] is not None:
                        self.S[b] = self.support[b]
                out = np.flatnonzero((st == OUTSIDE) & np.any(dirs != 0, axis=1))
                if out.size:
                    _, s = self.tolerance.threshold(j, rest[out], self.d)
                    self._extend(j, rest[out], dirs[out], values[out] * s)
            retarget(batch)


def _merge(first: list, second: list) -> list:
    """Row sets ``first[i] | second[i]`` as sorted int arrays, in one vectorised ``unique``."""
    if not first:
        return []
    sizes = np.array([a.size + b.size for a, b in zip(first, second)], dtype=np.int64)
    rows = np.concatenate([np.concatenate([a, b]) for a, b in zip(first, second)]).astype(np.int64)
    span = int(rows.max()) + 1 if rows.size else 1
    key = np.unique(np.repeat(np.arange(len(first), dtype=np.int64), sizes) * span + rows)
    cut = np.searchsorted(key // span, np.arange(1, len(first)))
    return [part.astype(np.intp) for part in np.split(key % span, cut)]


def _chunk_scores(W: np.ndarray, rows: np.ndarray, p: int):
    """Per direction the largest score ``W[b] @ rows[i]`` and the best row of each of ``p`` chunks.

    The rows are split into ``p`` contiguous chunks of ``ceil(r / p)`` rows (so the
    candidates are spread over the data rather than clustered at one extreme); each
    chunk's best row is the first ``argmax`` of its scores.  Products run on blocks of
    at most ``_BLOCK_ELEMS`` scores over both directions and rows, so each block of
    rows is read once for a whole block of directions, however many rows there are
    (blocking over directions alone fell to one direction per product, and one read
    of the rows per direction, beyond 2^21 rows).

    Returns
    -------
    best : ndarray, shape (B,)
    top : ndarray of int, shape (B, min(p, len(rows)))
        Local row indices of the chunk winners.
    top_val : ndarray, shape (B, min(p, len(rows)))
        Their scores.
    """
    B, r = W.shape[0], rows.shape[0]
    p = max(1, min(p, r))
    L = -(-r // p)                                  # chunk length; the last chunk may be shorter
    top = np.zeros((B, p), dtype=np.intp)
    top_val = np.full((B, p), -np.inf)
    if B * r <= _BLOCK_ELEMS:                       # one product holds every score
        _chunk_block(W @ rows.T, 0, L, top, top_val)
        return top_val.max(axis=1), top, top_val
    # Row blocks of about _BLOCK_ELEMS / qb rows: whole chunks when chunks are short, else
    # pieces of one chunk whose winners are merged in row order (first maximum kept, as argmax).
    qb = min(B, max(1, _BLOCK_ELEMS // _MIN_BLOCK_ROWS))
    rb = max(_MIN_BLOCK_ROWS, _BLOCK_ELEMS // qb)
    if L <= rb:
        step = (rb // L) * L
        spans = [(a, min(a + step, r)) for a in range(0, r, step)]
    else:
        spans = [(a, min(a + rb, (c + 1) * L, r)) for c in range(p) for a in range(c * L, min((c + 1) * L, r), rb)]
    for q0 in range(0, B, qb):
        Wq = W[q0:q0 + qb]
        tq, vq = top[q0:q0 + qb], top_val[q0:q0 + qb]
        for a, e in spans:
            S = Wq @ rows[a:e].T                    # (qb, e - a)
            if L <= rb:
                _chunk_block(S, a, L, tq, vq)
            else:
                c = a // L if a // L < r // L else p - 1   # the short last chunk: last column
                j = S.argmax(axis=1)
                v = S[np.arange(S.shape[0]), j]
                better = v > vq[:, c]
                vq[better, c] = v[better]
                tq[better, c] = a + j[better]
    return top_val.max(axis=1), top, top_val


#: Fewest rows in one block of scores of :func:`_chunk_scores` (so products stay matrix products).
_MIN_BLOCK_ROWS = 4096


def _chunk_block(S: np.ndarray, a: int, L: int, top: np.ndarray, top_val: np.ndarray) -> None:
    """Winners of the chunks in scores ``S`` (nb, m) of rows ``a .. a + m``.

    ``a`` is a multiple of ``L``; only the block ending at the last row may end in a short chunk,
    which goes to the last column of ``top`` (columns beyond ``ceil(r / L)`` chunks stay unset).
    """
    nb, m = S.shape
    c0, full = a // L, (m // L) * L
    if full:   # a strided view of the full chunks of each row (no copy)
        C = np.lib.stride_tricks.as_strided(S, (nb, full // L, L), (S.strides[0], L * S.strides[1], S.strides[1]),
                                            writeable=False)
        j = C.argmax(axis=2)
        top[:, c0:c0 + full // L] = j + np.arange(full // L) * L + a
        top_val[:, c0:c0 + full // L] = np.take_along_axis(C, j[:, :, None], axis=2)[:, :, 0]
    if full < m:
        j = S[:, full:].argmax(axis=1)
        top[:, -1] = a + full + j                  # the short last chunk: last column, as before
        top_val[:, -1] = S[np.arange(nb), full + j]


def search_tree_depths(L: int) -> np.ndarray:
    """Depth of each grid index in the balanced binary search tree over indices 0..L-1.

    A bracket's probe is the shallowest index inside it (unique in a search tree),
    so queries whose brackets differ still share probes, and each probe is one
    batched call instead of many small ones.

    Returns
    -------
    ndarray of int, shape (L,)
    """
    depth = np.zeros(L, dtype=np.int64)
    stack = [(-1, L, 0)]
    while stack:
        lo, hi, level = stack.pop()
        if hi - lo <= 1:
            continue
        mid = (lo + hi) // 2
        depth[mid] = level
        stack += [(lo, mid, level + 1), (mid, hi, level + 1)]
    return depth


def _probe(lo: int, hi: int, failed: set, depth: np.ndarray) -> int:
    """The shallowest grid index strictly between ``lo`` and ``hi`` not yet failed (-1 if none)."""
    choices = [j for j in range(lo + 1, hi) if j not in failed]
    if not choices:
        return -1
    return min(choices, key=lambda j: (depth[j], j))


def _checked_weights(Xn, x, b, sup, wts, tolerance, j):
    """Inside weights that verify on prefix j: the raw ones, else NNLS-polished on their support, else None."""
    thr = tolerance.threshold(j, b, sup.size, inside=True)[0]
    if cert.inside_residual(Xn, x, sup, wts) <= thr:
        return sup, wts
    keep = sup[wts > 0] if np.any(wts > 0) else sup
    sup2, lam = cert.polish_inside(Xn, x, keep)
    if cert.inside_residual(Xn, x, sup2, lam) <= tolerance.threshold(j, b, sup2.size, inside=True)[0]:
        return sup2, lam
    return None, None


def _lowest_inside(X, x, b, sup, wts, g, tolerance, j) -> int:
    """Smallest grid index k <= j from which the inside weights (rows ``sup``) verify on every prefix up to j."""
    need = int(np.max(sup)) + 1
    k0 = int(np.searchsorted(g, need))          # first grid size holding every support row
    if k0 >= j:
        return j
    r = cert.inside_residual(X, x, sup, wts)
    ks = np.arange(k0, j)
    thr, _ = tolerance.threshold(ks, b, sup.size, inside=True)
    ok = r <= thr
    if ok.all():
        return k0
    return int(ks[np.flatnonzero(~ok)[-1]]) + 1


# -- data of one replicate -------------------------------------------------------
def replicate_data(spec, d: int, sizes, replicate: int, queries: int | None = None, out: np.ndarray | None = None):
    """Training set of the largest grid size and the queries of one nested replicate.

    The keyed draw of :func:`mc_hull.samplers.replicate_data` with N = ``N_max`` (the key holds the
    size of the replicate's training set), so its prefixes are the smaller training sets and any of
    them can be regenerated block by block (the streamed path).  ``out``, an F-ordered float64 array
    of shape (N_max, d), receives X (a unit's replicates reuse one buffer).

    Returns
    -------
    X : ndarray, shape (N_max, d), column-major
    Q : ndarray, shape (K, d)
    """
    n_max = int(check_sizes(sizes)[-1])
    if out is None or out.shape != (n_max, d) or out.dtype != np.float64 or not out.flags.f_contiguous:
        out = np.empty((n_max, d), order="F")     # column-major: see entry_sizes
    return samplers.replicate_data(spec, d, n_max, replicate, queries, out=out)


# -- estimates -----------------------------------------------------------------
def cluster_counts(results: list[EntrySizes]) -> tuple[np.ndarray, np.ndarray]:
    """Per replicate and grid size: inside counts y (R, L) and decided trials m (R, L)."""
    tables = [r.inside_table() for r in results]
    y = np.array([np.nansum(t, axis=0) for t in tables])
    m = np.array([np.sum(~np.isnan(t), axis=0) for t in tables])
    return y, m


def curve(results: list[EntrySizes], level: float = stats.LEVEL) -> dict:
    """The per-size estimate from R replicates (one :class:`EntrySizes` each), clustered by replicate.

    Returns
    -------
    dict of ndarray, shape (L,)
        ``n``, ``trials`` (decided), ``inside``, ``p_hat``, ``low``, ``high`` (the
        :func:`mc_hull.stats.intervals.clustered_interval` at ``level``) and ``deff``.
        ``p_hat`` is non-decreasing in N whenever every query was located.
    """
    y, m = cluster_counts(results)
    L = y.shape[1]
    out = {"n": results[0].sizes.copy(), "trials": m.sum(axis=0), "inside": y.sum(axis=0),
           "p_hat": np.full(L, np.nan), "low": np.full(L, np.nan), "high": np.full(L, np.nan),
           "deff": np.ones(L)}
    for j in range(L):
        if m[:, j].sum() > 0:
            out["p_hat"][j] = y[:, j].sum() / m[:, j].sum()
            out["low"][j], out["high"][j], out["deff"][j] = stats.clustered_interval(y[:, j], m[:, j], level)
    return out


