"""Certified Euclidean distance to conv(X): Wolfe-style column generation on colgen's NNLS master."""

from __future__ import annotations

import math

import numpy as np

from .. import progress
from .certificates import rounding_bound
from .master import master
from .pricing import _BLOCK_ELEMS, price

U = 2.0 ** -53          # unit roundoff of float64

# Outcome codes of :func:`project` (``state``).
CONVERGED, INSIDE, CAPPED, FAILED = 0, 1, 2, 3
STATE_NAMES = {CONVERGED: "converged", INSIDE: "inside", CAPPED: "capped", FAILED: "failed"}
# Caps on seed chunks and chunks priced per round: a projection's support has at most
# (affine dimension + 1) rows, and the NNLS master's cost grows with its columns, so
# 2d + 2 seeds at d = 784 (1,570 columns) cost far more than the extra rounds they save
# (d = 784, N = 3000: 480 ms per query uncapped, about 12-35 ms capped; d <= 15 is unaffected).
K0_MAX, K_MAX = 32, 16


def _gamma(n: int) -> float:
    """Higham's gamma_n = n u / (1 - n u): the relative error bound of an n-term dot product."""
    return n * U / (1.0 - n * U)


def nearest(points: np.ndarray, queries: np.ndarray):
    """Distance from each query to its nearest row of ``points``, certified, in blocks.

    Scores ``|X_i|^2 - 2 x.X_i`` pre-rank the rows (one product per block of at most
    ``_BLOCK_ELEMS`` scores, so B x N never materialises).  Their rounding error is at
    most ``e = 2 gamma_{d+3} (M^2 + 2 |x| M)`` (``M = max_i |X_i|``) for every row, so
    the true nearest row scores within ``2 e`` of the lowest computed score: every row
    that does is re-measured directly as ``||x - X_i||_2``, free of the cancellation of
    the expanded form, and the least such distance is returned.  Near a tight cluster
    far from the origin (spread far below ``sqrt(e)``) the whole cluster is re-measured;
    elsewhere a handful of rows.

    Parameters
    ----------
    points : ndarray, shape (N, d)
    queries : ndarray, shape (B, d)

    Returns
    -------
    dist : ndarray, shape (B,)
        ``||x - X_j||_2`` for the returned row j, computed directly: within a relative
        ``gamma_{d+2}`` of the exact nearest-row distance (both ways).
    idx : ndarray of int, shape (B,)
        The returned row (the lowest index among rows at the same computed distance).
    """
    N, d = points.shape
    B = queries.shape[0]
    sq = np.einsum("ij,ij->i", points, points)
    big = math.sqrt(float(sq.max())) if N else 0.0
    qn = np.linalg.norm(queries, axis=1)
    err2 = 4.0 * _gamma(d + 3) * (big * big + 2.0 * qn * big)    # 2 e: the band of possible winners
    low = np.full(B, np.inf)          # lowest computed score so far
    best = np.full(B, np.inf)         # lowest directly computed squared distance so far
    arg = np.zeros(B, dtype=np.intp)
    qb = max(1, min(B, _BLOCK_ELEMS // 1024))
    pair_rows = max(1, _BLOCK_ELEMS // max(d, 1))
    for q0 in range(0, B, qb):
        W = queries[q0:q0 + qb]
        rows = max(1024, _BLOCK_ELEMS // max(W.shape[0], 1))
        lo, val, ind, e2 = low[q0:q0 + qb], best[q0:q0 + qb], arg[q0:q0 + qb], err2[q0:q0 + qb]
        for start in range(0, N, rows):
            stop = min(N, start + rows)
            S = W @ points[start:stop].T
            S *= -2.0
            S += sq[start:stop]                                     # (qb, rows)
            np.minimum(lo, S.min(axis=1), out=lo)
            qi, ri = np.divmod(np.flatnonzero(S <= (lo + e2)[:, None]), stop - start)   # grouped by query
            for a in range(0, qi.size, pair_rows):                  # re-measure the candidates directly
                qa, ra = qi[a:a + pair_rows], ri[a:a + pair_rows]
                D = W[qa] - points[start + ra]
                d2 = np.einsum("ij,ij->i", D, D)
                order = np.lexsort((ra, d2, qa))                    # per query: least d2, then lowest row
                qa, ra, d2 = qa[order], ra[order], d2[order]
                first = np.ones(qa.size, dtype=bool)
                first[1:] = qa[1:] != qa[:-1]
                qa, ra, d2 = qa[first], ra[first], d2[first]
                better = d2 < val[qa]
                val[qa[better]] = d2[better]
                ind[qa[better]] = ra[better] + start
    return np.sqrt(best), arg


def checked_high(points, queries, idx, lam, offs, ax):
    """Upper bounds ``||X_S^T lam - x||_2`` for convex weights, rounding errors included.

    Parameters
    ----------
    points : ndarray, shape (N, d)
    queries : ndarray, shape (B, d)
    idx : int ndarray, shape (K,)
        Support rows, concatenated per query; ``offs`` (B + 1,) delimits them.
    lam : ndarray, shape (K,)
        Candidate weights; clipped at zero and normalised here.
    ax : float
        ``max |points|`` (bounds the rounding of the weighted sums).

    Returns
    -------
    high : ndarray, shape (B,)
        Bound on the exact distance from x to the convex combination (inf if the
        weights are unusable).
    r : ndarray, shape (B, d)
        The residuals ``x - p`` as computed (the next pricing direction).
    res_inf : ndarray, shape (B,)
        ``max_j |x_j - p_j|`` as computed (the membership rule's inside test).
    p : ndarray, shape (B, d)
        The convex combinations as computed.
    """
    B, d = queries.shape
    sizes = np.diff(offs)
    lam = np.clip(lam, 0.0, None)
    total = np.add.reduceat(lam, offs[:-1]) if B else np.zeros(0)
    good = np.isfinite(total) & (total > 0)
    P = np.add.reduceat(points[idx] * lam[:, None], offs[:-1], axis=0) if B else np.zeros((0, d))
    P /= np.where(good, total, 1.0)[:, None]
    R = queries - P
    h = np.linalg.norm(R, axis=1)
    # |p_j - exact combination_j| <= (2 gamma_k + u) ax per coordinate (sum, total, division).
    err = 2.0 * (d + 4) * U * h + 2.0 * math.sqrt(d) * (2.0 * sizes + 3.0) * U * ax
    high = np.where(good & np.isfinite(h), h + err, np.inf)
    return high, R, np.abs(R).max(axis=1) if d else np.zeros(B), P


def checked_low(queries, directions, best, ax):
    """Lower bounds from directions w: ``(w.x - max_i w.X_i) / ||w||_2``, rounding errors subtracted.

    Parameters
    ----------
    queries, directions : ndarray, shape (B, d)
    best : ndarray, shape (B,)
        ``max_i w.X_i`` as computed (:func:`~.pricing.price`).
    ax : float
        ``max |points|``.

    Returns
    -------
    low : ndarray, shape (B,)
        Valid lower bounds on the distance (may be negative: no information).
    margin1 : ndarray, shape (B,)
        The same margin per unit ℓ1 norm of w (the membership rule's outside test).
    """
    B, d = queries.shape
    raw = np.einsum("bj,bj->b", directions, queries) - best
    n2 = np.linalg.norm(directions, axis=1)
    n1 = np.abs(directions).sum(axis=1)
    qn = np.linalg.norm(queries, axis=1)
    # |fl(w.y) - w.y| <= gamma_d ||w||_2 ||y||_2 for y = x and every X_i (||X_i||_2 <= sqrt(d) ax).
    slack = 2.0 * _gamma(d + 2) * n2 * (qn + math.sqrt(d) * ax) + 2.0 * U * np.abs(raw)
    m = raw - slack
    with np.errstate(divide="ignore", invalid="ignore"):
        low = np.where(m > 0, m / (n2 * (1.0 + 2.0 * (d + 2) * U)), m / np.maximum(n2, 1e-300))
        margin1 = m / (n1 * (1.0 + 2.0 * (d + 2) * U))
    bad = ~(np.isfinite(low) & (n2 > 0))
    low[bad] = -np.inf
    margin1[bad] = -np.inf
    return low, margin1


def face_normals(points, idx, lam, offs, R, rows):
    """Residuals with their component along the master's face removed, for near-boundary queries.

    When x is within ~1e-9 of conv(X_S), ``r = x - p`` carries an absolute rounding
    error of a few u, a relative one of ~1e-7: too coarse a direction to certify a
    margin of 1e-9.  The true residual is orthogonal to the affine hull of the
    support F, so ``r - P_F r`` (P_F the projector on ``span{X_i - X_j}``, from an SVD
    of the support's differences) removes the error inside aff(F); on a facet this
    is the facet's normal, free of x's cancellation.

    Parameters
    ----------
    points : ndarray, shape (N, d)
    idx, lam, offs : the master's concatenated sets and weights (:func:`~.master.master`)
    R : ndarray, shape (B, d)
        The residuals.
    rows : int ndarray
        The queries to treat.

    Returns
    -------
    ndarray, shape (rows.size, d)
    """
    d = points.shape[1]
    out = R[rows].copy()
    for n, j in enumerate(rows.tolist()):
        a, e = offs[j], offs[j + 1]
        S = idx[a:e][lam[a:e] > 0]
        if S.size < 2:
            continue
        D = points[S[1:]] - points[S[0]]
        _, sv, Vt = np.linalg.svd(D, full_matrices=False)
        V = Vt[sv > sv[0] * 64 * d * U]
        for _ in range(2):                 # twice: re-orthogonalise
            out[n] -= V.T @ (V @ out[n])
    return out


class HeldRows:
    """The training set held whole, behind the operations :func:`project` uses (a streamed source has the same).

    ``shape`` (N, d); ``ax = max |points|``; ``price(W, k, lowest)`` as :func:`~.pricing.price`;
    ``nearest(Q)`` as :func:`nearest`; ``rows(idx)`` the rows ``idx`` (k, d).
    """

    def __init__(self, points: np.ndarray):
        self.points = points
        self.shape = points.shape
        self.ax = float(np.max(np.abs(points))) if points.size else 0.0

    def price(self, directions, k, lowest=None):
        return price(self.points, directions, k, lowest=lowest)

    def nearest(self, queries):
        return nearest(self.points, queries)

    def rows(self, idx):
        return self.points[idx]


def project(points, queries, *, atol: float, scale: float, gap, max_rounds: int = 60,
            k0: int | None = None, k: int | None = None, n_low: int = 2, n_near: bool = True,
            nn_idx: np.ndarray | None = None, certificates: bool = False):
    """Certified bounds on the Euclidean distance from each query to ``conv(points)``.

    Works best in frame coordinates (centred, scaled to about unit size).  Round 0
    prices ``w = x`` (a first lower bound) and seeds each working set S with the
    best row of each of ``k0`` chunks along x, the lowest rows of ``n_low`` coarse
    chunks and the nearest row.  Each round projects x onto conv(X_S)
    (colgen's NNLS :func:`master`), bounds the distance above by that point
    (:func:`checked_high`) and below by pricing every row along the residual
    ``r = x - p`` (:func:`checked_low`; at the true projection the two meet), then
    keeps the master's support plus the best row of each of ``k`` chunks that
    beats ``r.p``.  A query stops when ``high - low <= gap`` and it is certified
    outside (a small distance closes the gap with ``low = 0``: such queries go on
    until the ℓ1 margin of r settles them, or the gap reaches the rounding floor),
    when ``max_j |r_j| + rho <= atol``
    (inside by the membership rule, rounding bound included: both bounds become 0)
    or after ``max_rounds`` (capped: its gap is returned as it is).

    Parameters
    ----------
    points : ndarray, shape (N, d), or rows behind :class:`HeldRows`' operations
        (:class:`mc_hull.solvers.sourced.SourceRows`: passes over a point source).
    queries : ndarray, shape (B, d)
    atol : float
        Membership tolerance (ℓ∞ residual) in the units of ``points``.
    scale : float
        The frame's scale s (for the membership rule's rounding bound).
    gap : float or ndarray, shape (B,)
        Target ``high - low`` in the same units.
    max_rounds : int
        Master/pricing rounds after round 0.
    k0, k : int or None
        Seed chunks and chunks priced per round; default ``2 d + 2`` and ``d + 1``,
        capped at ``K0_MAX`` and ``K_MAX``.
    n_low : int
        Seeds from behind x.
    n_near : bool
        Whether the nearest row seeds S too.
    nn_idx : int ndarray, shape (B,), optional
        Nearest rows from :func:`nearest`, if already known.
    certificates : bool
        Also return the membership certificates behind ``margin1`` and ``inside`` (for
        :func:`~.edges.edge_candidates`).

    Returns
    -------
    dict of ndarray, each shape (B,)
        ``low``, ``high`` (0 and 0 for inside), ``margin1`` (best ℓ1 margin seen,
        -inf if none), ``inside`` (bool), ``state`` (CONVERGED, INSIDE, CAPPED or
        FAILED), ``rounds``, ``residual`` (the ℓ∞ residual that certified inside, inf otherwise); with
        ``certificates``, also ``direction`` (B, d), the direction of ``margin1`` (zero where none), and
        ``support``, ``weights``: lists of B arrays, the master's convex weights where ``inside`` (None
        elsewhere).
    """
    ops = points if hasattr(points, "rows") else HeldRows(points)
    N, d = ops.shape
    B = queries.shape[0]
    ax = ops.ax
    k0 = k0 or min(2 * d + 2, K0_MAX)
    k = k or min(d + 1, K_MAX)
    low = np.full(B, -np.inf)
    high = np.full(B, np.inf)
    margin1 = np.full(B, -np.inf)
    state = np.full(B, CAPPED, dtype=np.int8)
    rounds = np.zeros(B, dtype=np.int32)
    residual = np.full(B, np.inf)
    gap = np.broadcast_to(np.asarray(gap, dtype=np.float64), (B,))
    # Below this gap rounding dominates: nothing more to learn (a few d u of the sizes involved).
    floor = 16.0 * _gamma(d + 4) * (np.linalg.norm(queries, axis=1) + math.sqrt(d) * ax)
    direction = np.zeros((B, d)) if certificates else None
    support, weights = [None] * B, [None] * B
    if B == 0:
        return _result(low, high, margin1, state, rounds, residual, direction, support, weights)

    # Round 0: price along x itself (good for far queries), seed the working sets.
    best, top_idx, _, low_idx = ops.price(queries, k0, lowest=n_low)
    l0, m0 = checked_low(queries, queries, best, ax)
    low = np.maximum(low, l0)
    _better(margin1, direction, np.arange(B), m0, queries)
    parts = [top_idx, low_idx]
    if n_near:
        if nn_idx is None:
            nn_idx = ops.nearest(queries)[1]
        parts.append(nn_idx[:, None])
    seeds = np.sort(np.hstack(parts), axis=1)
    fresh = np.ones(seeds.shape, dtype=bool)
    fresh[:, 1:] = seeds[:, 1:] != seeds[:, :-1]
    active = np.arange(B)
    idx, sizes = seeds[fresh], fresh.sum(axis=1)

    for rnd in range(1, max_rounds + 1):
        if active.size == 0:
            break
        progress.update("distance", inner=1.0 - active.size / B, round=rnd, open=int(active.size), queries=B)
        Qa = queries[active]
        uniq, pos = np.unique(idx, return_inverse=True)  # each working-set row fetched once
        S, pos = ops.rows(uniq), pos.reshape(-1).astype(np.intp)
        lam, offs, W = master(S, Qa, pos, sizes, 1.0)
        rounds[active] = rnd
        failed = ~np.isfinite(W).all(axis=1)
        h, R, res_inf, P = checked_high(S, Qa, pos, lam, offs, ax)
        high[active] = np.minimum(high[active], h)
        n_pos = np.add.reduceat((lam > 0).astype(np.intp), offs[:-1])
        inside = (res_inf + rounding_bound(Qa, scale, n_pos) <= atol) & ~failed
        state[active[inside]] = INSIDE
        if certificates:
            for j in np.flatnonzero(inside).tolist():
                a, e = offs[j], offs[j + 1]
                kept = lam[a:e] > 0
                support[active[j]], weights[active[j]] = idx[a:e][kept], lam[a:e][kept]
        residual[active[inside]] = res_inf[inside]
        best, top_idx, top_val = ops.price(np.where(failed[:, None], 0.0, R), k)
        lo, m1 = checked_low(Qa, R, best, ax)
        lo[failed], m1[failed] = -np.inf, -np.inf
        low[active] = np.maximum(low[active], lo)
        _better(margin1, direction, active, m1, R)
        closed = high[active] - np.maximum(low[active], 0.0) <= gap[active]
        # A small distance closes the gap with low = 0 at once; go on until the membership rule
        # is settled too (outside certified), so that near-boundary queries get a real low.
        rho_out = rounding_bound(Qa, scale, d)
        settled = margin1[active] - rho_out > atol
        near_face = np.flatnonzero(closed & ~settled & ~inside & ~failed)
        if near_face.size:    # r = x - p lost its direction to cancellation: take it off the face instead
            Rr = face_normals(S, pos, lam, offs, R, near_face)
            lo, m1 = checked_low(Qa[near_face], Rr, ops.price(Rr, 1)[0], ax)
            sel = active[near_face]
            low[sel] = np.maximum(low[sel], lo)
            _better(margin1, direction, sel, m1, Rr)
            settled[near_face] = margin1[sel] - rho_out[near_face] > atol
        done = closed & (settled | (high[active] - np.maximum(low[active], 0.0) <= floor[active]))
        state[active[done & ~inside]] = CONVERGED
        state[active[failed & ~inside & ~done]] = FAILED
        # Violators: rows scoring above r.p by more than rounding; the master's support stays.
        thr = np.einsum("bj,bj->b", R, P)
        n2 = np.linalg.norm(R, axis=1)
        slack = 4.0 * _gamma(d + 2) * n2 * (np.linalg.norm(P, axis=1) + math.sqrt(d) * ax)
        viol = top_val > (thr + slack)[:, None]
        grow = ~inside & ~done & ~failed & viol.any(axis=1)
        stuck = ~inside & ~done & ~failed & ~grow      # no violator beyond rounding: nothing to add
        state[active[stuck]] = np.where(closed[stuck], CONVERGED, CAPPED)
        row = np.repeat(np.arange(active.size), sizes)
        keep = (lam > 0) & grow[row]
        new_row = np.cumsum(grow) - 1
        v_row, v_col = np.nonzero(viol & grow[:, None])
        rows_ = np.concatenate([new_row[row[keep]], new_row[v_row]])
        cat = np.concatenate([idx[keep], top_idx[v_row, v_col]])
        order = np.lexsort((cat, rows_))
        rows_, cat = rows_[order], cat[order]
        uniq = np.ones(cat.size, dtype=bool)      # a violator can already be in the support
        uniq[1:] = (cat[1:] != cat[:-1]) | (rows_[1:] != rows_[:-1])
        idx = cat[uniq]
        active = active[grow]
        sizes = np.bincount(rows_[uniq], minlength=active.size)
    return _result(low, high, margin1, state, rounds, residual, direction, support, weights)


def _better(margin1, direction, rows, m1, W):
    """``margin1[rows] = max(margin1[rows], m1)``, keeping the direction (a row of W) where it grew."""
    if direction is not None:
        up = m1 > margin1[rows]
        direction[rows[up]] = W[up]
    margin1[rows] = np.maximum(margin1[rows], m1)


def _result(low, high, margin1, state, rounds, residual, direction, support, weights):
    inside = state == INSIDE
    low[inside], high[inside] = 0.0, 0.0
    out = dict(low=np.maximum(low, 0.0), high=high, margin1=margin1, inside=inside, state=state,
               rounds=rounds, residual=residual)
    if direction is not None:
        out.update(direction=direction, support=support, weights=weights)
    return out


def qp_weights(points: np.ndarray, x: np.ndarray):
    """Convex weights of the projection of x onto conv(points) from HiGHS' QP solver.

    Solves ``min ||y||^2 / 2`` subject to ``X^T lam - y = x``, ``sum(lam) = 1``,
    ``lam >= 0`` (the Hessian acts on y only).  A fallback and a reference: its
    weights are only a proposal, bounded by :func:`checked_high` like the engine's.

    Parameters
    ----------
    points : ndarray, shape (N, d)
    x : ndarray, shape (d,)

    Returns
    -------
    support : int ndarray, shape (k,)
    weights : ndarray, shape (k,)
        Empty when HiGHS reports anything but optimal.
    """
    import highspy

    N, d = points.shape
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = N + d, d + 1
    lp.col_cost_ = np.zeros(N + d)
    lp.col_lower_ = np.concatenate([np.zeros(N), np.full(d, -highspy.kHighsInf)])
    lp.col_upper_ = np.full(N + d, highspy.kHighsInf)
    rhs = np.append(x, 1.0)
    lp.row_lower_, lp.row_upper_ = rhs, rhs.copy()
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    starts = np.concatenate([np.arange(0, (d + 1) * N + 1, d + 1), (d + 1) * N + 1 + np.arange(d)])
    index = np.concatenate([np.tile(np.arange(d + 1), N), np.arange(d)])
    value = np.concatenate([np.hstack([points, np.ones((N, 1))]).ravel(), -np.ones(d)])
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = starts, index, value
    hess = highspy.HighsHessian()
    hess.dim_, hess.format_ = N + d, highspy.HessianFormat.kTriangular
    hess.start_ = np.concatenate([np.zeros(N, dtype=np.int64), np.arange(d + 1)])
    hess.index_, hess.value_ = np.arange(N, N + d), np.ones(d)
    model = highspy.HighsModel()
    model.lp_, model.hessian_ = lp, hess
    h.passModel(model)
    # HiGHS regularises the QP by default (1e-7), which leaves residuals of ~1e-8 at
    # interior points; unregularised first, the default if that fails.
    for reg in (0.0, None):
        if reg is not None:
            h.setOptionValue("qp_regularization_value", reg)
        else:
            h.resetOptions()
            h.setOptionValue("output_flag", False)
            h.clearSolver()
        h.run()
        if h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
            break
    else:
        return np.zeros(0, dtype=np.intp), np.zeros(0)
    lam = np.asarray(h.getSolution().col_value[:N])
    support = np.flatnonzero(lam > 0)
    return support, lam[support]
