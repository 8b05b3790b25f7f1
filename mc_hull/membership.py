"""Public membership API: ``in_hull`` and ``decide`` with input validation."""

from __future__ import annotations

import numpy as np

from .errors import InputError, UndecidedError
from .solvers import Decisions, get_solver
from .solvers.certificates import check_tol


def _real_array(values, name: str, shape: str) -> np.ndarray:
    """``values`` as float64; complex and non-numeric input is refused, never truncated."""
    try:
        A = np.asarray(values)
    except (TypeError, ValueError):
        raise InputError(f"{name}: must be a numeric array of shape {shape}") from None
    if np.iscomplexobj(A):
        raise InputError(f"{name}: complex values are not points (dtype {A.dtype}); pass real coordinates")
    if A.dtype.kind not in "biufO":
        raise InputError(f"{name}: must be a numeric array of shape {shape}, got dtype {A.dtype}")
    try:
        return np.asarray(A, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{name}: must be a numeric array of shape {shape}") from None


def as_points(points, name: str = "points") -> np.ndarray:
    """Validate a training set: a finite real (N, d) array with N, d >= 1 -> float64."""
    X = _real_array(points, name, "(N, d)")
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise InputError(f"{name}: must have shape (N, d) with N >= 1 and d >= 1, got {X.shape}")
    if not np.all(np.isfinite(X)):
        bad = int(np.flatnonzero(~np.all(np.isfinite(X), axis=1))[0])
        raise InputError(f"{name}: contains NaN or inf (first in row {bad})")
    return X


def as_queries(queries, d: int, name: str = "queries") -> tuple[np.ndarray, bool]:
    """Validate queries of shape (d,) or (B, d); return a float64 (B, d) array and ``single``."""
    Q = _real_array(queries, name, "(d,) or (B, d)")
    single = Q.ndim == 1
    if single:
        Q = Q[None, :]
    if Q.ndim != 2 or Q.shape[1] != d:
        raise InputError(f"{name}: expected shape ({d},) or (B, {d}) to match points, got {np.shape(queries)}")
    if not np.all(np.isfinite(Q)):
        raise InputError(f"{name}: contains NaN or inf")
    return Q, single


def decide(points, queries, *, tol: float = 1e-9, solver: str = "auto") -> Decisions:
    """Certified membership decisions with their certificates.

    Parameters
    ----------
    points : array_like, shape (N, d)
    queries : array_like, shape (d,) or (B, d)
    tol : float
        Relative tolerance in [1e-12, 1e-2] (see :mod:`mc_hull.solvers.certificates`).
    solver : str
        A registry name (:func:`mc_hull.solvers.solver_names`).

    Returns
    -------
    Decisions
        Arrays of length B; ``status`` is 1 inside, 0 outside, -1 undecided.
    """
    X = as_points(points)
    Q, _ = as_queries(queries, X.shape[1])
    return get_solver(solver).decide(X, Q, tol=check_tol(tol))


def in_hull(points, queries, *, tol: float = 1e-9, solver: str = "auto"):
    """Whether each query lies in the convex hull of ``points``, every answer certified.

    Parameters
    ----------
    points : array_like, shape (N, d)
        Training points.
    queries : array_like, shape (d,) or (B, d)
        Query points.
    tol : float, default 1e-9
        Relative tolerance in [1e-12, 1e-2]: a query whose ℓ∞ distance to the hull
        is at most ``tol * s`` counts as inside (vertices, boundary points and
        duplicates are inside), with ``s`` the training set's largest coordinate
        distance from its own mean, so the answer is independent of the other
        queries and of where the origin is.
    solver : str, default "auto"

    Returns
    -------
    bool or ndarray of bool, shape (B,)
        A bool for a single (d,) query.

    Raises
    ------
    InputError
        Malformed, non-finite or mismatched arrays.
    UndecidedError
        A query could not be certified by any method (never guessed).
    """
    Q, single = as_queries(queries, as_points(points).shape[1])
    dec = decide(points, Q, tol=tol, solver=solver)
    undecided = int(np.sum(dec.status < 0))
    if undecided:
        raise UndecidedError(f"{undecided} of {len(dec.status)} queries could not be certified")
    inside = dec.status == 1
    return bool(inside[0]) if single else inside
