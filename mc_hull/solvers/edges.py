"""The edge stage of the solver template: certificates for queries left undecided near faces and flats.

:func:`edge_candidates` proposes, for what the prefilter and the engine left open, the best
coordinate direction, then the distance engine's Euclidean projection (:func:`~.distance.project`)
and the ℓ∞ rule's own direction from small separation LPs (:func:`linf_direction`) or its
projection's weights (:func:`linf_weights`); the template (:mod:`.base`) verifies every candidate
with :mod:`.certificates`.  It imports the distance engine and the master, which import no template,
so the solvers import each other in one direction only.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog, nnls

from .certificates import (FACE_ROWS, coordinate_margins, face_directions, inside_residual, outside_margins,
                           rounding_bound)
from .distance import project
from .master import master


def edge_candidates(points: np.ndarray, queries: np.ndarray, scale: float, atol: float):
    """Certificates for queries left undecided near lower-dimensional faces and flats.

    In order, for each frame query: the best coordinate direction
    (:func:`coordinate_margins`: constant columns, axis-aligned faces); then the
    distance engine's Euclidean projection (:func:`~.distance.project`, with its
    face-normal correction), whose convex weights are an inside candidate within the
    Euclidean distance and whose best direction, with :func:`face_directions`' variants,
    an outside candidate.  Nothing here is trusted: the caller checks every candidate
    (:func:`~.base.verify`).

    Parameters
    ----------
    points : ndarray, shape (N, d)
        The training set in frame coordinates.
    queries : ndarray, shape (B, d)
        Frame queries (finite, within ``FAR``).
    scale, atol : float
        The frame's scale and the absolute tolerance.

    Returns
    -------
    kind : ndarray of int8, shape (B,)
        1 inside (weights given), 0 outside (direction given), -1 no candidate.
    directions : ndarray, shape (B, d)
    support, weights : lists of B arrays (or None)
    method : ndarray of str, shape (B,)
        ``"coordinate"``, ``"face"`` or ``"projection"``.
    """
    B, d = queries.shape
    kind = np.full(B, -1, dtype=np.int8)
    method = np.full(B, "face", dtype=object)
    support, weights = [None] * B, [None] * B
    W, margins = coordinate_margins(points, queries)
    rho = rounding_bound(queries, scale, d)
    kind[margins - rho > atol] = 0
    method[kind == 0] = "coordinate"
    rest = np.flatnonzero(kind < 0)
    if rest.size == 0:
        return kind, W, support, weights, method
    res = project(points, queries[rest], atol=atol, scale=scale, gap=np.inf, certificates=True)
    for n, b in enumerate(rest.tolist()):
        if res["inside"][n]:
            kind[b], support[b], weights[b], method[b] = 1, res["support"][n], res["weights"][n], "projection"
            continue
        cands = [W[b:b + 1]]
        if np.any(res["direction"][n]):
            cands.append(face_directions(points, queries[b], res["direction"][n]))
        C = np.vstack(cands)
        m = outside_margins(points, np.broadcast_to(queries[b], C.shape), C)
        k = int(np.argmax(m))
        W[b], kind[b] = C[k], 0
        if not m[k] - rho[b] > atol:      # the ℓ∞ optimum itself, on a small working set
            w, mw = linf_direction(points, queries[b], C[k], res["support"][n])
            if mw > m[k]:
                W[b], method[b] = w, "linf"
            if not mw - rho[b] > atol:    # within the tolerance in ℓ∞ but not in ℓ2: the ℓ∞ projection
                sup, lam = linf_weights(points, queries[b], W[b])
                if sup.size and inside_residual(points, queries[b], sup, lam) + \
                        rounding_bound(queries[b:b + 1], scale, sup.size)[0] <= atol:
                    kind[b], support[b], weights[b], method[b] = 1, sup, lam, "linf"
    return kind, W, support, weights, method


def linf_weights(points: np.ndarray, x: np.ndarray, w: np.ndarray):
    """Convex weights of the ℓ∞ projection of x, from an optimal ℓ∞ direction ``w``.

    At the optimum the projection lies in the face ``F = argmax_i w.X_i`` and differs
    from x by ``t sign(w_j)`` on the coordinates J where ``w_j != 0`` (complementary
    slackness), so ``X_F[:, J].T lam + t sign(w_J) = x_J``, ``sum(lam) = 1``, ``lam, t >= 0``,
    solved by NNLS (exact up to rounding when the system is consistent).  Settles the
    queries whose ℓ∞ distance is within the tolerance while their Euclidean one is not.

    Returns
    -------
    support : int ndarray, shape (k,)
    weights : ndarray, shape (k,)
        Empty when nothing usable was found.
    """
    d = points.shape[1]
    none = (np.zeros(0, dtype=np.intp), np.zeros(0))
    if not np.all(np.isfinite(w)) or not np.any(w):
        return none
    scores = points @ w
    order = np.argsort(-scores, kind="stable")
    span = float(np.abs(w).sum() * (np.max(np.abs(points)) + np.max(np.abs(x))))
    J = np.flatnonzero(w)
    best, best_r = none, np.inf
    for eta in (1e-13, 1e-10):
        F = order[:int(np.searchsorted(-scores[order], -(scores[order[0]] - eta * span), side="right"))]
        F = F[:FACE_ROWS * d]
        A = np.zeros((J.size + 1, F.size + 1))
        A[:J.size, :F.size] = points[F][:, J].T
        A[:J.size, F.size] = np.sign(w[J])
        A[J.size, :F.size] = 1.0
        try:
            z, _ = nnls(A, np.append(x[J], 1.0), maxiter=50 * (F.size + 1))
        except RuntimeError:
            continue
        lam = z[:F.size]
        keep = lam > 0
        if not keep.any():
            continue
        r = inside_residual(points, x, F[keep], lam[keep])
        if r < best_r:
            best, best_r = (F[keep], lam[keep] / lam[keep].sum()), r
    return best


def linf_direction(points: np.ndarray, x: np.ndarray, w: np.ndarray, seed=None, rounds: int = 6):
    """The ℓ∞ rule's own separating direction by column generation on small separation LPs.

    The working set S starts with the rows that score highest along ``w`` (and ``seed``).
    Each round solves two small LPs over ``||w||_1 <= 1`` (HiGHS dual simplex on ``|S|``
    rows): the separation LP ``max w.x - max_{i in S} w.X_i`` (centred on x), and its
    local form at the Euclidean projection p of x onto conv(X_S), ``max w.r^`` subject
    to ``w.(X_i - p) <= 0`` (``r^ = (x - p) / ||x - p||_inf``; near p every normal of the
    hull is a normal at p, so this finds the optimum when the distance is far below the
    LP's own tolerances, e.g. 1e-12 s).  Each optimum is made exact with
    :func:`face_directions`, priced against every row, and the rows that beat S join it.
    Its margin is then the ℓ∞ distance itself up to rounding, where the Euclidean normal
    only gives ``dist_2 / ||n||_1 >= dist_inf / sqrt(d)``.

    Returns
    -------
    direction : ndarray, shape (d,)
    margin : float
        Its margin over all rows (:func:`outside_margins`), -inf if no LP succeeded.
    """
    N, d = points.shape
    best_w, best_m = w, -np.inf
    S = np.argsort(-(points @ w), kind="stable")[:2 * d + 2]
    if seed is not None:
        S = np.union1d(S, np.asarray(seed, dtype=np.intp))
    S = np.unique(S)
    box = [(0, None)] * (2 * d)
    for _ in range(rounds):
        lam, _, R = master(points, x[None, :], S, np.array([S.size]), 1.0)
        r = R[0]
        found = []
        Y = points[S] - x                               # the separation LP, centred on x
        lp = linprog(np.r_[np.zeros(2 * d), 1.0], A_ub=np.vstack([np.hstack([Y, -Y, -np.ones((S.size, 1))]),
                                                                  np.r_[np.ones(2 * d), 0.0]]),
                     b_ub=np.r_[np.zeros(S.size), 1.0], bounds=box + [(None, None)], method="highs-ds")
        if lp.status == 0 and lp.x is not None:
            found.append(lp.x[:d] - lp.x[d:2 * d])
        rmax = float(np.max(np.abs(r))) if np.all(np.isfinite(r)) else 0.0
        if rmax > 0:                                    # the local LP at the projection p = x - r
            Z = points[S] - (x - r)
            rh = r / rmax
            lp = linprog(np.r_[-rh, rh], A_ub=np.vstack([np.hstack([Z, -Z]), np.ones(2 * d)]),
                         b_ub=np.r_[np.zeros(S.size), 1.0], bounds=box, method="highs-ds")
            if lp.status == 0 and lp.x is not None:
                found.append(lp.x[:d] - lp.x[d:])
        if not found:
            break
        C = np.vstack([face_directions(points[S], x, v) for v in found])
        m = outside_margins(points, np.broadcast_to(x, C.shape), C)
        k = int(np.argmax(m))
        if m[k] > best_m:
            best_w, best_m = C[k], float(m[k])
        scores = points @ C[k]
        viol = np.flatnonzero(scores > float(np.max(scores[S])))
        if viol.size == 0:
            break
        add = viol[np.argsort(-scores[viol], kind="stable")[:d + 1]]
        S = np.union1d(S, add)
    return best_w, best_m
