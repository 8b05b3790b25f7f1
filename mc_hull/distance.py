"""Public distance API: ``hull_distance``, certified bounds on dist_2(x, conv X), and the nearest-point distance."""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .errors import InputError
from .membership import as_points, as_queries
from .solvers import certificates as cert
from .solvers import distance as eng
from .solvers import get_solver
from .solvers.sourced import FramedStreamSolver, SourceRows

DISTANCE_SOLVERS = ("auto", "colgen", "qp")
GAP = 1e-6            # default target for high - low, relative to the training set's scale s
FAR = 2.0 ** 60       # queries farther than FAR * s from the centre get the ball bounds (float floor)
ONE_BATCH = 1 << 62   # a streamed solver's budget that keeps every query of a call in one batch
#: Queries whose distances are searched together over a point source: a pass serves them all in one
#: product per block, and their working sets (about 3 x 40 rows of d doubles each) stay small beside X.
SOURCE_BATCH = 256


class HullDistance(NamedTuple):
    """What :func:`hull_distance` returns: three float arrays of shape (B,)."""

    low: np.ndarray
    high: np.ndarray
    nn: np.ndarray


@dataclass
class DistanceResult:
    """Certified distance bounds for B queries, with how each was obtained.

    Attributes
    ----------
    low, high : ndarray, shape (B,)
        ``0 <= low <= dist_2(x, conv X) <= high``; both exactly 0 for a query
        certified inside by the membership rule at ``tol``.
    nn : ndarray, shape (B,)
        Distance to the nearest training point.
    status : ndarray of int8, shape (B,)
        1 inside, 0 outside (certified as in :func:`mc_hull.in_hull`), -1 undecided.
    converged : ndarray of bool, shape (B,)
        ``high - low <= gap * s``; False where a cap (rounds, float precision) was hit.
    rounds : ndarray of int, shape (B,)
    method : ndarray of str, shape (B,)
        ``colgen``, ``qp`` (HiGHS QP fallback or solver), ``far`` (ball bounds) or
        ``membership`` (status settled by the membership solver).
    scale : float
        The training set's scale s.
    seconds : float
        Wall time of the whole call.
    certificate : ndarray, shape (B,)
        The membership certificate behind ``status``, as :class:`~mc_hull.solvers.Decisions`'
        (residual or ℓ1 margin over s; NaN when undecided).
    """

    low: np.ndarray
    high: np.ndarray
    nn: np.ndarray
    status: np.ndarray
    converged: np.ndarray
    rounds: np.ndarray
    method: np.ndarray
    scale: float
    seconds: float
    certificate: np.ndarray | None = None

    @property
    def gap(self) -> np.ndarray:
        """``high - low`` (B,)."""
        return self.high - self.low


def distances(points, queries, *, tol: float = 1e-9, gap: float = GAP, solver: str = "auto",
              max_rounds: int = 60) -> DistanceResult:
    """Certified bounds on the Euclidean distance from each query to ``conv(points)``.

    Parameters
    ----------
    points : array_like, shape (N, d)
    queries : array_like, shape (d,) or (B, d)
    tol : float
        Membership tolerance (the same rule as :func:`mc_hull.in_hull`): a query
        whose ℓ∞ distance to the hull is certified at most ``tol * s`` is inside,
        with ``low = high = 0``.
    gap : float
        Target ``high - low <= gap * s``.  Not reached only where a cap is hit:
        ``max_rounds``, or float precision for far queries (the rounding of the
        certificates grows like ``d u ||x - centre||``; beyond ``2^60 s`` the
        bounds are those of the ball around the centre holding X).
    solver : {"auto", "colgen", "qp"}
        ``colgen`` (the default): column generation on an NNLS master;
        ``qp``: HiGHS' QP solver per query (slow; a reference).
    max_rounds : int
        Cap on column-generation rounds per query.

    Returns
    -------
    DistanceResult
    """
    t0 = time.perf_counter()
    held = not hasattr(points, "generate")
    X = as_points(points) if held else points
    Q, _ = as_queries(queries, X.shape[1] if held else X.d)
    tol = cert.check_tol(tol)
    if not (isinstance(gap, (int, float, np.floating)) and np.isfinite(gap) and 0 < gap < 1):
        raise InputError(f"gap: must be a number in (0, 1), got {gap!r}")
    if solver not in DISTANCE_SOLVERS:
        raise InputError(f"solver: unknown distance solver {solver!r}; valid: {', '.join(DISTANCE_SOLVERS)}")
    if not (isinstance(max_rounds, (int, np.integer)) and max_rounds >= 1):
        raise InputError(f"max_rounds: must be an integer >= 1, got {max_rounds!r}")
    if not held and solver == "qp":
        raise InputError("solver: qp needs the training set held whole; a point source takes colgen")
    d, B = Q.shape[1], Q.shape[0]
    if held:
        fr = cert.Frame.of(X)                     # the membership rule's frame, bit for bit
        ops = eng.HeldRows(fr.points)
        expo = fr.unit + fr.pre                   # frame unit = 2**expo data units
        s_data = fr.data_scale()
    else:                                         # passes over blocks; the membership rule's frame

        streamer = source_solver(d)
        data = streamer._training(X)
        fr = data.frame
        ops = SourceRows(X, data)
        expo = fr.unit + fr.pre
        with np.errstate(over="ignore"):
            s_data = float(np.ldexp(fr.scale, expo))
    Qf = fr.map(Q)
    rel = fr.scale                                # s in frame units, in [1, 2)
    ax = ops.ax
    with np.errstate(over="ignore", invalid="ignore"):
        qinf = np.abs(Qf).max(axis=1)
    far = ~(qinf <= FAR * rel)
    near = np.flatnonzero(~far)

    low, high = np.zeros(B), np.zeros(B)
    nn = np.zeros(B)
    margin1 = np.full(B, -np.inf)
    state = np.full(B, eng.CAPPED, dtype=np.int8)
    rounds = np.zeros(B, dtype=np.int32)
    method = np.full(B, "colgen" if solver != "qp" else "qp", dtype=object)

    Qn = Qf[near]
    nnf, nn_idx = ops.nearest(Qn)
    qnorm = np.linalg.norm(Qn, axis=1)
    gap_f = np.maximum(gap * rel, 16.0 * eng._gamma(d + 4) * (qnorm + math.sqrt(d) * ax))
    if solver == "qp":
        res = _qp_bounds(fr.points, Qn, np.arange(near.size), tol * rel, rel, ax)
    else:
        step = near.size if held else SOURCE_BATCH      # a source's working sets: SOURCE_BATCH queries at a time
        parts = [eng.project(ops, Qn[a:a + step], atol=tol * rel, scale=rel, gap=gap_f[a:a + step],
                             max_rounds=max_rounds, nn_idx=nn_idx[a:a + step])
                 for a in range(0, near.size, max(step, 1))]
        res = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]} if len(parts) > 1 else \
            (parts[0] if parts else eng.project(ops, Qn, atol=tol * rel, scale=rel, gap=gap_f,
                                                max_rounds=max_rounds, nn_idx=nn_idx))
        redo = np.flatnonzero(res["state"] == eng.FAILED) if held else np.zeros(0, np.intp)
        if redo.size:                              # an NNLS master failed: HiGHS QP instead (held X)
            sub = _qp_bounds(fr.points, Qn[redo], np.arange(redo.size), tol * rel, rel, ax)
            for key in res:
                res[key][redo] = sub[key] if key != "low" else np.maximum(res["low"][redo], sub["low"])
            method[near[redo]] = "qp"
    hf = np.minimum(res["high"], nnf * (1.0 + 2.0 * (d + 3) * eng.U))   # the nearest point is in the hull
    inside = res["inside"]
    hf[inside] = 0.0
    # The frame's own rounding: X~ and x~ differ from the exact (X - c) / unit by <= u |.| per coordinate.
    eps = 1.01 * eng.U * (math.sqrt(d) * ax + qnorm) + 2.0 ** -1060
    lf = np.where(inside, 0.0, np.maximum(res["low"] - eps, 0.0))
    hf = np.where(inside, 0.0, hf + eps)
    low[near], high[near] = _unscale(lf, expo, -1), _unscale(hf, expo, +1)
    nn[near] = _direct_norms(X[nn_idx] if held else np.asarray(getattr(X, "raw", X).take(nn_idx), dtype=np.float64),
                             Q[near], fr.pre)
    margin1[near], state[near], rounds[near] = res["margin1"], res["state"], res["rounds"]
    margin1[near] -= eps
    certificate = np.full(B, np.nan)
    certificate[near] = np.where(res["inside"], res["residual"], margin1[near]) / rel
    if far.any():
        low[far], high[far], nn[far] = _far_bounds(X, Q[far], fr) if held else _far_bounds_source(ops, Q[far], fr)
        method[far] = "far"
        bounds = np.vstack([fr.points.min(axis=0), fr.points.max(axis=0)]) if held else fr.bounds
        with np.errstate(over="ignore"):
            certificate[far] = cert.far_margins(bounds, Qf[far])[1] / rel

    status = np.full(B, -1, dtype=np.int8)
    status[state == eng.INSIDE] = 1
    rho = np.full(B, np.inf)
    rho[near] = cert.rounding_bound(Qn, rel, d)       # the outside rule's rounding bound
    status[(status < 0) & ((margin1 - rho > tol * rel) | far)] = 0
    gray = np.flatnonzero(status < 0)
    if gray.size:                                  # not settled by the ℓ2 certificates: the membership rule's own solver
        dec = (get_solver("auto").decide_frame(fr.points, Qf[gray], rel, tol=tol) if held
               else streamer.decide(X, Q[gray], tol=tol))
        status[gray] = dec.status
        certificate[gray] = dec.certificate
        ins = gray[dec.status == 1]
        low[ins], high[ins] = 0.0, 0.0
        method[gray] = "membership"
    converged = (high - low <= gap * s_data) | (status == 1)
    certificate[status < 0] = np.nan
    return DistanceResult(low=low, high=high, nn=nn, status=status, converged=converged, rounds=rounds,
                          method=method, scale=s_data, seconds=time.perf_counter() - t0, certificate=certificate)


def source_solver(d: int, budget: int | None = None):
    """The streamed membership solver for a point source of dimension ``d``: working sets capped like the
    distance engine's (``K0_MAX`` seeds, ``K_MAX`` winners per round), since a master's cost grows with
    its columns (d = 1024: 2 d + 2 seeds made a query 7x slower than 32).

    Without ``budget`` every query of a call is one batch (a pass prices them all in one product per
    block), so answers do not depend on ``MC_HULL_MEMORY_BUDGET``; callers bound a call's queries
    (a hull-test shard holds at most ``SHARD_POINTS``)."""
    return FramedStreamSolver(k0=min(2 * d + 2, eng.K0_MAX), k=min(d + 1, eng.K_MAX), budget=budget or ONE_BATCH)


def _far_bounds_source(ops, Q, fr):
    """:func:`_far_bounds` over a point source: the ball's radius from one pass; ``nn`` in frame units
    (inf where the query's frame coordinates overflow)."""
    d = Q.shape[1]
    radius = ops.radius() * (1.0 + 4.0 * (d + 2) * eng.U)
    radius = math.ldexp(radius + 2.0 * math.sqrt(d) * eng.U, fr.unit)    # prescaled units
    A = np.ldexp(Q, -fr.pre)
    big = np.maximum(np.abs(A).max(axis=1), float(np.max(np.abs(fr.centre))))
    g = np.frexp(big)[1]
    low, high = np.empty(len(Q)), np.empty(len(Q))
    for j, gj in enumerate(g.tolist()):
        v = np.ldexp(A[j], -gj) - np.ldexp(fr.centre, -gj)
        nv = float(np.linalg.norm(v))
        slack = 4.0 * (d + 3) * eng.U * nv + 2.0 * math.sqrt(d) * eng.U
        r = math.ldexp(radius, -gj)
        low[j] = float(np.ldexp(max(nv - slack - r, 0.0), gj + fr.pre))
        high[j] = float(np.ldexp(nv + slack + r, gj + fr.pre))
    Qf = fr.map(Q)
    ok = np.isfinite(Qf).all(axis=1)
    nn = np.full(len(Q), np.inf)
    if ok.any():
        with np.errstate(over="ignore"):
            nn[ok] = np.ldexp(ops.nearest(Qf[ok])[0], fr.unit + fr.pre)
    with np.errstate(over="ignore"):
        return np.nextafter(np.minimum(low, np.finfo(np.float64).max), 0.0), np.nextafter(high, np.inf), nn


def hull_distance(points, queries, *, tol: float = 1e-9, solver: str = "auto", gap: float = GAP,
                  max_rounds: int = 60) -> HullDistance:
    """Certified Euclidean distance from each query to the convex hull of ``points``.

    Parameters
    ----------
    points : array_like, shape (N, d)
        Training points.
    queries : array_like, shape (d,) or (B, d)
        Query points.
    tol : float, default 1e-9
        Membership tolerance, as in :func:`mc_hull.in_hull`: a query certified
        inside at ``tol`` gets ``low = high = 0`` (its Euclidean distance is then at
        most ``sqrt(d) * tol * s``).
    solver : {"auto", "colgen", "qp"}
    gap : float, default 1e-6
        Target ``high - low <= gap * s`` (s the training set's scale).
    max_rounds : int, default 60
        Cap on column-generation rounds; a query that hits it keeps its wider,
        still certified interval (a RuntimeWarning says how many).

    Returns
    -------
    HullDistance
        ``(low, high, nn)``, float arrays of shape (B,) (B = 1 for a (d,) query):
        ``0 <= low <= dist_2(x, conv X) <= high`` and ``nn = min_i ||x - X_i||_2``: the
        directly measured distance to a row that is nearest up to the frame's rounding,
        so ``nn* (1 - g) <= nn <= (nn* + 2 e) (1 + g)`` with ``nn*`` the exact value,
        ``g = (d + 2) u`` and ``e = 2 sqrt(d) u (||x - c||_inf + s)`` (u = 2^-53; c, s the
        training set's centre and scale): exact to a few ulps unless two rows are
        within ``e`` of the same distance.

    Raises
    ------
    InputError
        Malformed, non-finite or mismatched arrays, or a bad option.
    """
    res = distances(points, queries, tol=tol, gap=gap, solver=solver, max_rounds=max_rounds)
    capped = int(np.sum(~res.converged))
    if capped:
        warnings.warn(f"hull_distance: {capped} of {res.low.size} queries hit a cap; their gap "
                      f"high - low exceeds {gap:g} * s (largest {np.max(res.gap) / res.scale:.3g} * s)",
                      RuntimeWarning, stacklevel=2)
    return HullDistance(res.low, res.high, res.nn)


def _unscale(v: np.ndarray, expo: int, direction: int) -> np.ndarray:
    """``v * 2**expo`` (exact unless it under- or overflows), moved one ulp outwards where nonzero."""
    with np.errstate(over="ignore"):
        out = np.ldexp(v, expo)
    if direction:
        nz = out != 0
        out[nz] = np.nextafter(out[nz], np.inf if direction > 0 else 0.0)
    if direction < 0:
        out = np.minimum(out, np.finfo(np.float64).max)
    return out


def _direct_norms(A: np.ndarray, B: np.ndarray, pre: int) -> np.ndarray:
    """``||A_b - B_b||_2`` per row, measured on the data divided by ``2**pre`` (exact) and not centred.

    The frame's centring rounds each coordinate by up to ``u (|x - c| + s)``, which is all
    of a distance within a tight cluster far from the centre; the difference of the
    data's own coordinates is exact for close rows (relative error ``gamma_{d+2}``).  Each
    row is scaled by a power of two before squaring, so nothing over- or underflows.
    """
    D = np.ldexp(A, -pre) - np.ldexp(B, -pre) if pre else A - B
    big = np.abs(D).max(axis=1) if D.shape[1] else np.zeros(len(D))
    e = np.where(big > 0, np.frexp(big)[1], 0)
    with np.errstate(over="ignore"):
        return np.ldexp(np.linalg.norm(np.ldexp(D, -e[:, None]), axis=1), e + pre)


def _qp_bounds(Xf, Qf, rows, atol, scale, ax):
    """Bounds as :func:`engine.project` returns them, from HiGHS QP weights priced once."""
    B, d = Qf.shape
    sup, wts = zip(*(eng.qp_weights(Xf, Qf[j]) for j in rows)) if B else ((), ())
    sizes = np.array([max(s.size, 1) for s in sup], dtype=np.intp)
    idx = np.concatenate([s if s.size else np.zeros(1, np.intp) for s in sup]) if B else np.zeros(0, np.intp)
    lam = np.concatenate([w if w.size else np.zeros(1) for w in wts]) if B else np.zeros(0)
    offs = np.concatenate([[0], np.cumsum(sizes)])
    high, R, res_inf, _ = eng.checked_high(Xf, Qf, idx, lam, offs, ax)
    # QP solvers stop at ~1e-9: re-solve on the QP's support with the NNLS master, keep the better.
    lam2, _, W = eng.master(Xf, Qf, idx, sizes, 1.0) if B else (lam, offs, R)
    high2, R2, res_inf2, _ = eng.checked_high(Xf, Qf, idx, lam2, offs, ax)
    better = (high2 < high) & np.isfinite(W).all(axis=1)
    high[better], R[better], res_inf[better] = high2[better], R2[better], res_inf2[better]
    best = eng.price(Xf, R, 1)[0] if B else np.zeros(0)
    low, margin1 = eng.checked_low(Qf, R, best, ax)
    inside = res_inf + cert.rounding_bound(Qf, scale, sizes) <= atol
    state = np.where(inside, eng.INSIDE, np.where(np.isfinite(high), eng.CONVERGED, eng.FAILED)).astype(np.int8)
    low = np.where(inside, 0.0, np.maximum(low, 0.0))
    high = np.where(inside, 0.0, high)
    return dict(low=low, high=high, margin1=margin1, inside=inside, state=state,
                rounds=np.ones(B, dtype=np.int32), residual=np.where(inside, res_inf, np.inf))


def _far_bounds(X, Q, fr):
    """Ball bounds for queries beyond ``FAR * s``: ``||x - c|| -+ max_i ||X_i - c||``, computed scaled.

    Works in the frame's prescaled units (``2**-pre`` times the data, exact), with a
    power of two per query so that nothing overflows.
    """
    d = X.shape[1]
    radius = float(np.max(np.linalg.norm(fr.points, axis=1))) * (1.0 + 4.0 * (d + 2) * eng.U)
    radius = math.ldexp(radius + 2.0 * math.sqrt(d) * eng.U, fr.unit)    # prescaled units
    A, Xp = np.ldexp(Q, -fr.pre), np.ldexp(X, -fr.pre)
    big = np.maximum(np.abs(A).max(axis=1), float(np.max(np.abs(fr.centre))))
    g = np.frexp(big)[1]
    low, high, nn = np.empty(len(Q)), np.empty(len(Q)), np.empty(len(Q))
    for j, gj in enumerate(g.tolist()):
        c = np.ldexp(fr.centre, -gj)
        v = np.ldexp(A[j], -gj) - c
        nv = float(np.linalg.norm(v))
        slack = 4.0 * (d + 3) * eng.U * nv + 2.0 * math.sqrt(d) * eng.U
        r = math.ldexp(radius, -gj)
        low[j] = max(nv - slack - r, 0.0)
        high[j] = nv + slack + r
        nn[j] = eng.nearest(np.ldexp(Xp, -gj), np.ldexp(A[j:j + 1], -gj))[0][0]
        low[j], high[j], nn[j] = (float(np.ldexp(low[j], gj + fr.pre)), float(np.ldexp(high[j], gj + fr.pre)),
                                  float(np.ldexp(nn[j], gj + fr.pre)))
    with np.errstate(over="ignore"):
        return np.nextafter(np.minimum(low, np.finfo(np.float64).max), 0.0), np.nextafter(high, np.inf), nn
