"""Independent checks of membership certificates, in a frame set by the training set alone.

Tolerance rule (used everywhere in mc_hull)
-------------------------------------------
The training set ``X`` (N, d) alone fixes a *frame*: its centre ``c = mean(X)``
and its scale ``s = max_ij |X_ij - c_j|`` (for a training set of identical
points, ``s = ||c||_inf``, or 1 at the origin: the only case that is not translation
invariant).  Queries never enter the frame, so a query's answer cannot depend
on the other queries of a batch, and it is unchanged by translating the data or
scaling it by a common power of two.  Every solver works on frame coordinates
``(X - c) / 2^k`` with ``2^k`` the power of two at or below ``s`` (the data are
first divided by a power of two near their largest coordinate, which is exact,
so that nothing overflows near the float64 limits).  With ``atol = tol * s``:

* **inside** when weights ``lam >= 0``, ``sum(lam) == 1`` satisfy
  ``max_j |(X.T @ lam - x)_j| + rho <= atol``;
* **outside** when a direction ``w`` with ``||w||_1 = 1`` satisfies
  ``w @ x - max_i w @ X[i] - rho > atol``;

where ``rho = 2 (m + 3) u (||x - c||_inf + s)`` bounds the rounding error of that
arithmetic in float64 (``u = 2**-53``, ``m`` the length of the sums: ``d`` for a
margin, the support size for a residual), including the rounding of the frame
itself.  A point of the training set is therefore never certified outside its
own hull.  By LP duality the ℓ∞ distance ``delta`` from ``x`` to ``conv(X)``
equals ``max_{||w||_1 <= 1} (w @ x - max_i w @ X[i])``, so at most one of the
two certificates can verify; a query for which neither does is *undecided*,
never counted either way.

``tol`` must lie in ``[TOL_MIN, TOL_MAX]`` = ``[1e-12, 1e-2]``: below 1e-12 the
tolerance approaches the rounding error of the sums themselves (a few ``d u``),
above 1e-2 it stops being a membership test.  The certificate value recorded
with each answer is the residual (inside) or the margin (outside) divided by
``s``, so it compares directly with ``tol``.

A query more than ``2^40 s`` from the centre (or beyond the float range in frame
units) is decided outside directly by the coordinate direction of its largest
frame coordinate (method ``far``), so no solver sees magnitudes it cannot square.

The undecided band
------------------
Let ``delta`` be a query's ℓ∞ distance to conv(X) (the rule's own) and ``delta_2``
its Euclidean distance (``delta <= delta_2 <= sqrt(d) delta``).  Whatever the solver,
a query is left undecided only inside the band

    ``BAND_IN atol < delta_2 + rho``  and  ``delta <= BAND_OUT atol + rho``,
    with ``BAND_IN = 1/2`` and ``BAND_OUT = 2``:

every query with ``delta_2 + rho <= atol / 2`` (every point of the hull among them,
and every query with ``delta <= atol / (2 sqrt(d))``) is decided inside, and every
query with ``delta > 2 atol + rho`` is decided outside.  After a solver's own
certificates and the nearest training point, the base class's last stage before the
fallbacks (:func:`~.edges.edge_candidates`) proposes, for what is still open, the best
coordinate direction (constant columns, axis-aligned faces: one exact subtraction),
then the Euclidean projection of the distance engine (:func:`~.distance.project`, with
its face-normal correction), whose weights leave an ℓ∞ residual of at most
``delta_2``, and, where that direction's margin falls short, the ℓ∞ optimum itself
from small separation LPs made exact on their face (:func:`~.edges.linf_direction`,
:func:`face_directions`): its margin is ``delta`` up to rounding.  The same tools
give ``hull_distance`` its bounds.  Decided answers never disagree (at most one
certificate can verify), so beyond the band the answer is the same for any row or
column order of X; inside the band, whether a query is decided can depend on the
rounding of its sums, hence on that order.  Tested on exact constructions (flats,
constant columns, duplicated rows, lattice cube edges, facets, magnitudes near the
float limits; ``tests/test_undecided_band.py``, ``benchmarks/undecided_band.py``) and
against Clarabel's Euclidean distance.  (A training set streamed from a point source,
whose rows are not in memory, gets the coordinate directions alone: the band holds
there for constant columns and axis-aligned faces, not yet for other faces.)
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

from ..errors import InputError

#: Smallest and largest relative tolerance accepted by the API, specs and hull-tests.
TOL_MIN, TOL_MAX = 1e-12, 1e-2
#: Unit roundoff of float64.
UNIT_ROUNDOFF = 2.0 ** -53
#: Queries farther than this many frame units from the centre are decided by a coordinate direction.
FAR = 2.0 ** 40
# Rows of X processed per block when projecting onto many directions at once,
# so that the (block, B) product stays small (8192 x 256 doubles = 16 MiB).
_BLOCK_ROWS = 8192
# Data whose largest coordinate lies in [2^-_SAFE_EXP, 2^_SAFE_EXP] is centred without a prescaling pass.
_SAFE_EXP = 400


def check_tol(tol, name: str = "tol") -> float:
    """Return ``tol`` as a float, or raise InputError (one line) unless TOL_MIN <= tol <= TOL_MAX.

    Accepts real numbers only: bools, strings, None and complex values are refused.
    """
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real):
        raise InputError(f"{name}: must be a number in [{TOL_MIN:g}, {TOL_MAX:g}], got {tol!r}")
    value = float(tol)
    if not (math.isfinite(value) and TOL_MIN <= value <= TOL_MAX):
        raise InputError(f"{name}: must be in [{TOL_MIN:g}, {TOL_MAX:g}] (float64 cannot resolve a "
                         f"tighter relative tolerance), got {tol!r}" if value < TOL_MIN else
                         f"{name}: must be in [{TOL_MIN:g}, {TOL_MAX:g}], got {tol!r}")
    return value


def _exponent(x: float) -> int:
    """``k`` with ``2**k <= x < 2**(k + 1)`` (x > 0 and finite, subnormals included)."""
    return math.frexp(x)[1] - 1


@dataclass(frozen=True)
class Frame:
    """Coordinates fixed by the training set alone: centred at its mean, scaled by powers of two.

    Frame coordinates of a point ``a`` are ``(a 2^-pre - centre) 2^-unit`` (``np.ldexp``:
    exact, subnormals and huge values included), so the only rounding is the
    subtraction of the centre.

    Attributes
    ----------
    points : ndarray, shape (N, d)
        The training set in frame coordinates (largest absolute coordinate ``scale``).
    scale : float
        The tolerance scale ``s`` in frame units, in ``[1, 2)``.
    centre : ndarray, shape (d,)
        The mean of the prescaled training set.
    pre, unit : int
        Exponents of the prescaling and of the frame unit.
    """

    points: np.ndarray
    scale: float
    centre: np.ndarray
    pre: int
    unit: int

    @classmethod
    def of(cls, points: np.ndarray) -> "Frame":
        """The frame of a finite training set ``points`` (N, d), N >= 1."""
        X = np.asarray(points, dtype=np.float64)
        lo, hi = X.min(axis=0), X.max(axis=0)
        big = max(float(np.max(np.abs(lo))), float(np.max(np.abs(hi))))
        pre = 0
        if big > 0.0 and not (2.0 ** -_SAFE_EXP <= big <= 2.0 ** _SAFE_EXP):
            pre = _exponent(big)           # near the float limits: bring the data to ~1 first (exact)
            X = np.ldexp(X, -pre)
            lo, hi = np.ldexp(lo, -pre), np.ldexp(hi, -pre)
        centre = X.mean(axis=0)
        s = max(float(np.max(hi - centre)), float(np.max(centre - lo)))
        if not s > 0.0:                       # identical points: a relative scale from their position
            s = float(np.max(np.abs(centre))) or 1.0
        unit = _exponent(s)
        Y = np.subtract(X, centre)
        if unit:
            Y = np.ldexp(Y, -unit)
        return cls(points=Y, scale=math.ldexp(s, -unit), centre=centre, pre=pre, unit=unit)

    def map(self, A: np.ndarray) -> np.ndarray:
        """Frame coordinates of the rows of ``A`` (B, d); may hold inf for points far beyond the data."""
        A = np.asarray(A, dtype=np.float64)
        with np.errstate(over="ignore"):
            if self.pre:
                A = np.ldexp(A, -self.pre)
            out = np.subtract(A, self.centre)
            return np.ldexp(out, -self.unit) if self.unit else out

    def data_scale(self) -> float:
        """``s`` in the data's own units (may be inf for data spanning the whole float range)."""
        with np.errstate(over="ignore"):
            return float(np.ldexp(self.scale, self.unit + self.pre))


def rounding_bound(queries: np.ndarray, scale: float, terms) -> np.ndarray:
    """``rho = 2 (m + 3) u (||x||_inf + s)`` per frame query: the bound on rounding in a checked sum.

    Parameters
    ----------
    queries : ndarray, shape (B, d)
        Queries in frame coordinates.
    scale : float
        The frame's tolerance scale.
    terms : int or ndarray of int, shape (B,)
        Length ``m`` of the sums (``d`` for margins, the support size for residuals).
    """
    qmax = np.max(np.abs(queries), axis=1) if queries.size else np.zeros(queries.shape[0])
    return 2.0 * (np.asarray(terms, dtype=np.float64) + 3.0) * UNIT_ROUNDOFF * (qmax + scale)


def far_queries(queries: np.ndarray, scale: float) -> np.ndarray:
    """Boolean (B,): frame queries farther than ``FAR * scale`` from the centre (or non-finite)."""
    return ~(np.max(np.abs(queries), axis=1) <= FAR * scale) if queries.size else np.zeros(len(queries), bool)


def far_margins(points: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinate-direction certificates for far frame queries.

    For each query the direction is ``sign(x_j) e_j`` on its largest coordinate
    ``j``; the margin ``|x_j| - max_i sign(x_j) X_ij`` needs one subtraction, no sum.

    Returns
    -------
    directions : ndarray, shape (B, d)
    margins : ndarray, shape (B,)
        May be inf when the query's frame coordinate overflowed.
    """
    B, d = queries.shape
    j = np.argmax(np.abs(queries), axis=1)
    sign = np.where(queries[np.arange(B), j] >= 0, 1.0, -1.0)
    W = np.zeros((B, d))
    W[np.arange(B), j] = sign
    hi, lo = points.max(axis=0), points.min(axis=0)
    top = np.where(sign > 0, hi[j], -lo[j])
    return W, np.abs(queries[np.arange(B), j]) - top


def nearest_points(points: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row of ``points`` nearest to each query in ℓ∞, and that distance.

    A training point within ``atol`` of a query is an inside certificate with a
    single weight; it settles duplicates and the training points themselves
    when rounding leaves no other convex combination within a tight tolerance.

    Parameters
    ----------
    points : ndarray, shape (N, d)
    queries : ndarray, shape (B, d)

    Returns
    -------
    index : ndarray of int, shape (B,)
    distance : ndarray, shape (B,)
    """
    B = queries.shape[0]
    index = np.zeros(B, dtype=np.intp)
    distance = np.full(B, np.inf)
    for start in range(0, points.shape[0], _BLOCK_ROWS):
        block = points[start:start + _BLOCK_ROWS]
        for b in range(B):
            dist = np.max(np.abs(block - queries[b]), axis=1)
            j = int(np.argmin(dist))
            if dist[j] < distance[b]:
                distance[b], index[b] = dist[j], start + j
    return index, distance


def inside_residual(points: np.ndarray, x: np.ndarray, support: np.ndarray,
                    weights: np.ndarray) -> float:
    """ℓ∞ residual ``max_j |X[support].T @ lam - x|`` after making ``lam`` convex.

    Parameters
    ----------
    points : ndarray, shape (N, d)
    x : ndarray, shape (d,)
    support : ndarray of int, shape (k,)
        Row indices of ``points`` carrying weight.
    weights : ndarray, shape (k,)
        Candidate weights; negatives are clipped to zero and the rest are
        renormalised to sum to one before the residual is measured.

    Returns
    -------
    float
        The residual, or ``inf`` when the weights cannot be made convex.
    """
    lam = np.clip(np.asarray(weights, dtype=np.float64), 0.0, None)
    total = lam.sum()
    if not np.isfinite(total) or total <= 0.0 or lam.shape != np.shape(support):
        return float("inf")
    lam = lam / total
    r = points[support].T @ lam - x
    return float(np.max(np.abs(r)))


def inside_residuals(points: np.ndarray, queries: np.ndarray, supports: list,
                     weights: list) -> np.ndarray:
    """:func:`inside_residual` for many queries at once, in a few array operations.

    Parameters
    ----------
    points : ndarray, shape (N, d)
    queries : ndarray, shape (B, d)
    supports, weights : lists of B int and float ndarrays
        Each query's support rows and candidate weights (as in :func:`inside_residual`).

    Returns
    -------
    ndarray, shape (B,)
        The residuals; ``inf`` where the weights cannot be made convex.
    """
    B = queries.shape[0]
    out = np.full(B, np.inf)
    sizes = np.array([np.size(s) for s in supports], dtype=np.intp)
    shaped = np.array([np.shape(w) == np.shape(s) for s, w in zip(supports, weights)], dtype=bool)
    use = np.flatnonzero(shaped & (sizes > 0))
    if use.size == 0:
        return out
    idx = np.concatenate([np.asarray(supports[b], dtype=np.intp) for b in use])
    lam = np.clip(np.concatenate([np.asarray(weights[b], dtype=np.float64) for b in use]), 0.0, None)
    offs = np.concatenate([[0], np.cumsum(sizes[use])[:-1]])
    total = np.add.reduceat(lam, offs)
    good = np.isfinite(total) & (total > 0.0)
    lam = lam / np.repeat(np.where(good, total, 1.0), sizes[use])
    r = np.add.reduceat(points[idx] * lam[:, None], offs, axis=0) - queries[use]
    out[use[good]] = np.max(np.abs(r[good]), axis=1)
    return out


def polish_inside(points: np.ndarray, x: np.ndarray, support: np.ndarray):
    """Re-solve the weights on a small support with NNLS: ``[X_S.T; 1] lam ≈ [x; 1]``.

    Solvers stop at their own tolerances (1e-7 to 1e-9); this step recovers
    weights accurate to machine precision when the support is right.

    Returns
    -------
    support, weights : ndarray, ndarray
    """
    support = np.asarray(support, dtype=np.intp)
    A = np.vstack([points[support].T, np.ones(support.size)])
    b = np.append(x, 1.0)
    # Scale the sum-to-one row like the coordinates so both count equally.
    s = max(float(np.max(np.abs(A[:-1]))) if A.shape[1] else 1.0, 1.0)
    A[-1] *= s
    b[-1] *= s
    lam, _ = nnls(A, b, maxiter=50 * max(support.size, 1))
    return support, lam


def outside_margins(points: np.ndarray, queries: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Margins ``w @ x - max_i w @ X[i]`` for ℓ1-normalised directions, one per query.

    Parameters
    ----------
    points : ndarray, shape (N, d)
    queries : ndarray, shape (B, d)
    directions : ndarray, shape (B, d)
        Candidate separating directions (any scale; normalised here).

    Returns
    -------
    ndarray, shape (B,)
        The margins; ``-inf`` where a direction is zero or not finite.
    """
    W = np.asarray(directions, dtype=np.float64)
    norms = np.abs(W).sum(axis=1)
    good = np.isfinite(norms) & (norms > 0)
    W = np.where(good[:, None], W / np.where(good, norms, 1.0)[:, None], 0.0)
    best = np.full(W.shape[0], -np.inf)
    for start in range(0, points.shape[0], _BLOCK_ROWS):
        block = points[start:start + _BLOCK_ROWS] @ W.T  # (rows, B)
        np.maximum(best, block.max(axis=0), out=best)
    margins = np.einsum("bj,bj->b", W, queries) - best
    margins[~good] = -np.inf
    return margins


# -- certificates near faces and flats: the stage after the solvers and the nearest point ---------
#: Undecided only within this band (multiples of atol) around the tolerance; see the module docstring.
BAND_IN, BAND_OUT = 0.5, 2.0
# Face rows used to find a face's affine span (highest scores first), in units of d.
FACE_ROWS = 64


def coordinate_margins(points: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The best coordinate direction ``±e_j`` for each query, from the per-coordinate extremes of X.

    Its margin ``x_j - max_i X_ij`` (or ``min_i X_ij - x_j``) needs one subtraction: exact
    but for one rounding, whatever the offset of a constant column or an axis-aligned face.

    Returns
    -------
    directions : ndarray, shape (B, d)
    margins : ndarray, shape (B,)
    """
    B, d = queries.shape
    lo, hi = points.min(axis=0), points.max(axis=0)
    up, down = queries - hi, lo - queries
    best = np.maximum(up, down)
    j = np.argmax(best, axis=1)
    rows = np.arange(B)
    W = np.zeros((B, d))
    W[rows, j] = np.where(up[rows, j] >= down[rows, j], 1.0, -1.0)
    return W, best[rows, j]


def face_directions(points: np.ndarray, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Directions near ``w`` with the rounding noise along the face it supports removed.

    A separating direction computed from ``x - p`` (or by an LP solver with its own
    tolerances) carries errors of ~1e-7 relative to its size when the margin is ~1e-9:
    enough to lose the margin on a long face.  The exact optimum is orthogonal to the
    affine span of the face ``F = argmax_i w.X_i`` (and, for the ℓ∞ rule's optimum, zero
    off its active coordinates J), and those spans are differences of training rows,
    free of x's cancellation.  For a few thresholds on F and J this projects ``w`` onto
    the orthogonal complement of ``span{X_i - X_f : i in F}`` within the coordinates J
    (SVD of the differences); :func:`outside_margins` picks the best.

    Parameters
    ----------
    points : ndarray, shape (N, d)
    x : ndarray, shape (d,)
    w : ndarray, shape (d,)

    Returns
    -------
    ndarray, shape (k, d)
        Candidate directions (``w`` itself first).
    """
    d = points.shape[1]
    out = [w]
    if not np.all(np.isfinite(w)) or not np.any(w):
        return np.array(out)
    scores = points @ w
    order = np.argsort(-scores, kind="stable")
    top = scores[order[0]]
    span = float(np.abs(w).sum() * (np.max(np.abs(points)) + np.max(np.abs(x))))
    wmax = float(np.max(np.abs(w)))
    for eta in (1e-13, 1e-10, 1e-7):
        F = order[:int(np.searchsorted(-scores[order], -(top - eta * span), side="right"))]
        F = F[:FACE_ROWS * d]
        if F.size < 2:
            continue
        for J in (np.arange(d), np.flatnonzero(np.abs(w) > eta * wmax)):
            if J.size == 0:
                continue
            D = points[F[1:]][:, J] - points[F[0], J]
            _, sv, Vt = np.linalg.svd(D, full_matrices=False)
            V = Vt[sv > sv[0] * 64 * d * UNIT_ROUNDOFF] if sv.size and sv[0] > 0 else Vt[:0]
            v = w[J].copy()
            for _ in range(2):                  # twice: re-orthogonalise
                v -= V.T @ (V @ v)
            cand = np.zeros(d)
            cand[J] = v
            out.append(cand)
    return np.array(out)
