"""The solver contract: propose certificates for a batch of queries; the base class checks them.

A solver subclass implements one hook, :meth:`Solver._propose`, which returns
*candidate* certificates (:class:`Candidates`).  :meth:`Solver.decide` moves the
data into the training set's frame (``certificates.Frame``), settles queries far
beyond the data by a coordinate direction, verifies every candidate
independently (``certificates.py``), polishes inside weights with NNLS when the
raw ones miss the tolerance, tries the nearest training point for what is left,
then the certificates of faces and flats (``edges.edge_candidates``: coordinate
directions, the distance engine's projection, ℓ∞ optima; the undecided band), then
re-tries the queries that still fail with the solver's ``fallbacks`` and marks
whatever remains *undecided*.  No answer leaves a solver without a checked certificate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from . import certificates as cert
from . import edges
from .sources import InMemory, Streamed, Training, is_source

INSIDE, OUTSIDE, UNDECIDED = 1, 0, -1
STATUS_NAMES = {INSIDE: "inside", OUTSIDE: "outside", UNDECIDED: "undecided"}


@dataclass
class Candidates:
    """Unverified answers for B queries, as returned by :meth:`Solver._propose`.

    Attributes
    ----------
    kind : ndarray of int8, shape (B,)
        ``INSIDE`` (weights given), ``OUTSIDE`` (direction given) or ``UNDECIDED``.
    directions : ndarray, shape (B, d)
        Separating directions; rows are read where ``kind == OUTSIDE``.
    support, weights : list of ndarray or None, length B
        Row indices into X and convex weights; read where ``kind == INSIDE``.
    method : ndarray of str, shape (B,)
        Which stage proposed each answer (e.g. ``"lp"``, ``"prefilter"``).
    rounds : ndarray of int, shape (B,)
        Pricing rounds spent (0 for a single LP).
    """

    kind: np.ndarray
    directions: np.ndarray
    support: list
    weights: list
    method: np.ndarray
    rounds: np.ndarray

    @classmethod
    def empty(cls, B: int, d: int, method: str) -> "Candidates":
        return cls(kind=np.full(B, UNDECIDED, dtype=np.int8),
                   directions=np.zeros((B, d)),
                   support=[None] * B, weights=[None] * B,
                   method=np.full(B, method, dtype=object),
                   rounds=np.zeros(B, dtype=np.int32))

    def subset(self, sel: np.ndarray) -> "Candidates":
        """The candidates of queries ``sel`` (indices), in that order."""
        sel = np.asarray(sel, dtype=np.intp)
        return Candidates(kind=self.kind[sel], directions=self.directions[sel],
                          support=[self.support[i] for i in sel], weights=[self.weights[i] for i in sel],
                          method=self.method[sel], rounds=self.rounds[sel])


@dataclass
class Decisions:
    """Verified answers for B queries.

    Attributes
    ----------
    status : ndarray of int8, shape (B,)
        1 inside, 0 outside, -1 undecided.
    certificate : ndarray, shape (B,)
        Inside: the ℓ∞ residual; outside: the margin; both divided by the training
        set's scale ``s`` (:mod:`.certificates`), so they compare directly with ``tol``.
        NaN when undecided; may be inf for a query beyond the float range of the frame.
    method : ndarray of str, shape (B,)
        The stage whose certificate was accepted (``"<solver>:<stage>"``).
    seconds : ndarray, shape (B,)
        Wall time attributed to each query (batch time shared evenly, plus
        any per-query fallback time).
    rounds : ndarray of int, shape (B,)
        Pricing rounds (0 for LP-type solvers).
    """

    status: np.ndarray
    certificate: np.ndarray
    method: np.ndarray
    seconds: np.ndarray
    rounds: np.ndarray = field(default=None)

    @property
    def inside(self) -> np.ndarray:
        """Boolean (B,) array, True where certified inside."""
        return self.status == INSIDE

    def settle(self, todo: np.ndarray, sub: "Decisions",
               attrs=("status", "certificate", "method", "rounds")) -> np.ndarray:
        """Take ``sub``'s decided answers for queries ``todo`` (indices into self); the still undecided.

        ``sub`` holds the answers of ``todo``, in its order (a later stage run on them).
        """
        done = sub.status != UNDECIDED
        for attr in attrs:
            getattr(self, attr)[todo[done]] = getattr(sub, attr)[done]
        return todo[~done]


class Solver:
    """Base class of membership solvers; subclasses implement :meth:`_propose`.

    Parameters
    ----------
    fallbacks : tuple of str, optional
        Registry names tried, in order, on queries whose certificate failed; each
        brings its own fallbacks after it (:meth:`fallback_chain`).
    """

    name: ClassVar[str] = "base"
    default_fallbacks: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, fallbacks: tuple[str, ...] | None = None):
        self.fallbacks = self.default_fallbacks if fallbacks is None else tuple(fallbacks)

    def _propose(self, points: np.ndarray, queries: np.ndarray, atol: float) -> Candidates:
        """Return candidate certificates for ``queries`` (B, d) against ``points`` (N, d).

        Both arrays are in frame coordinates (:class:`~.certificates.Frame`): the training
        set is centred at its mean with largest absolute coordinate in ``[1, 2)``, and no
        query lies farther than ``certificates.FAR`` from the centre.
        """
        raise NotImplementedError

    def fallback_chain(self) -> list["Solver"]:
        """The fallback solvers in the order they are tried: each fallback, then its own fallbacks.

        Depth first, each name once, never this solver itself: with ``colgen -> lp`` and
        ``lp -> lp-ipm`` the chain of colgen is ``[lp, lp-ipm]``.
        """
        from . import get_solver  # registry imports solver modules lazily

        chain, seen = [], {self.name}

        def visit(names):
            for name in names:
                if name not in seen:
                    seen.add(name)
                    solver = get_solver(name)
                    chain.append(solver)
                    visit(solver.fallbacks)

        visit(self.fallbacks)
        return chain

    # -- hooks (the streaming solver overrides them; array solvers implement only _propose) -----------
    #: True for a solver whose ``_propose`` takes a :class:`~.sources.Training` (rows served by passes)
    #: rather than the framed array.
    streams: ClassVar[bool] = False

    def _training(self, source) -> Training:
        """The :class:`~.sources.Streamed` view of a point source (one frame pass)."""
        return Streamed(source)

    def _screen(self, data: Training, queries: np.ndarray, atol: float) -> Candidates | None:
        """Cheap outside candidates for every near query before batching (None: no screening)."""
        return None

    def _batches(self, data: Training, d: int, count: int) -> list[slice]:
        """Slices of the near queries proposed and verified together (all at once by default)."""
        return [slice(0, count)]

    # -- the template ------------------------------------------------------------------------------
    def decide(self, points, queries: np.ndarray, *, tol: float = 1e-9) -> Decisions:
        """Decide membership of each query in ``conv(points)`` with checked certificates.

        Parameters
        ----------
        points : ndarray, shape (N, d), or point source
            Finite training points (validated by the caller), or a
            :class:`~.sources.PointSource` serving them block by block (streaming solvers).
        queries : ndarray, shape (B, d)
            Finite float64 query points.
        tol : float
            Relative tolerance in ``[TOL_MIN, TOL_MAX]``; see :mod:`mc_hull.solvers.certificates`.

        Returns
        -------
        Decisions
            Each answer depends only on ``points`` and its own query, never on the batch.
        """
        tol = cert.check_tol(tol)
        if is_source(points):
            data = self._training(points)
            return self.decide_frame(data, data.frame.map(queries), data.scale, tol=tol)
        frame = cert.Frame.of(points)
        return self.decide_frame(frame.points, frame.map(queries), frame.scale, tol=tol)

    def decide_frame(self, points, queries: np.ndarray, scale: float, *, tol: float) -> Decisions:
        """:meth:`decide` on data already in frame coordinates (:class:`~.certificates.Frame`).

        The one sequence every solver runs: far queries settled by a coordinate direction;
        the solver's candidates (screened, then proposed batch by batch), each verified;
        the nearest training point for what is left; the edge stage near faces and flats
        (:func:`~.edges.edge_candidates`) and the fallback chain (rows in memory only).

        Parameters
        ----------
        points : ndarray, shape (N, d), or Training
            The training set in frame coordinates, or a :class:`~.sources.Training` view of it.
        queries : ndarray, shape (B, d)
            Queries in the same frame (may hold inf for points beyond the float range).
        scale : float
            The frame's tolerance scale ``s``; ``atol = tol * s``.
        tol : float
            Relative tolerance (already checked).
        """
        data = points if isinstance(points, Training) else InMemory(points, scale)
        if data.points is None and not self.streams:
            raise ValueError(f"solver {self.name!r} needs the training set in memory; "
                             "'stream' decides against a point source")
        atol = tol * scale
        B, d = queries.shape
        t0 = time.perf_counter()
        far = cert.far_queries(queries, scale)
        dec = Decisions(status=np.full(B, UNDECIDED, dtype=np.int8), certificate=np.full(B, np.nan),
                        method=np.full(B, self.name, dtype=object), seconds=np.zeros(B),
                        rounds=np.zeros(B, dtype=np.int32))
        if far.any():
            _, margins = cert.far_margins(data.bounds, queries[far])   # per-coordinate extremes only
            dec.status[far] = OUTSIDE
            with np.errstate(over="ignore"):
                dec.certificate[far] = margins / scale
            dec.method[far] = f"{self.name}:far"
        near = np.flatnonzero(~far)
        own = data if self.streams else data.points
        if near.size:
            screened = self._screen(data, queries[near], atol)
            if screened is not None and (screened.kind == OUTSIDE).any():
                out = np.flatnonzero(screened.kind == OUTSIDE)
                sub = verify(data, queries[near[out]], screened.subset(out), atol, scale, prefix=self.name)
                _assign(dec, near[out], sub)
                near = np.setdiff1d(near, near[out][sub.status == OUTSIDE])
            for part in self._batches(data, d, near.size):
                idx = near[part]
                sub = verify(data, queries[idx], self._propose(own, queries[idx], atol), atol, scale,
                             prefix=self.name)
                _assign(dec, idx, sub)
                data.forget()
        dec.seconds[:] = (time.perf_counter() - t0) / max(B, 1)
        todo = np.flatnonzero(dec.status == UNDECIDED)
        if todo.size:   # a training point within atol: duplicates, and X's own points at tight tol
            t1 = time.perf_counter()
            _, _, rows = data.nearest(queries[todo])
            cand = Candidates.empty(todo.size, d, "point")
            cand.kind[:] = INSIDE
            cand.support = [np.array([i]) for i in range(todo.size)]
            cand.weights = [np.ones(1)] * todo.size
            sub = verify(rows, queries[todo], cand, atol, scale, prefix=self.name)
            dec.seconds[todo] += (time.perf_counter() - t1) / todo.size
            todo = dec.settle(todo, sub, ("status", "certificate", "method"))
        if todo.size:   # near faces and flats: coordinate directions, projections, ℓ∞ optima
            todo = self._edge_stage(dec, todo, data, queries, atol, scale)
        for solver in self.fallback_chain() if data.points is not None else ():
            if todo.size == 0:
                break
            t1 = time.perf_counter()
            sub = verify(data, queries[todo], solver._propose(data.points, queries[todo], atol),
                         atol, scale, prefix=solver.name)
            dec.seconds[todo] += (time.perf_counter() - t1) / todo.size
            todo = dec.settle(todo, sub)
        return dec

    def _edge_stage(self, dec: "Decisions", todo: np.ndarray, data: Training, queries: np.ndarray,
                    atol: float, scale: float) -> np.ndarray:
        """Settle what it can of ``todo`` with :func:`~.edges.edge_candidates`; the still undecided.

        A streamed training set (rows not in memory) gets the coordinate directions alone, from
        its per-coordinate extremes (``data.bounds``).
        """
        t1 = time.perf_counter()
        cand = Candidates.empty(todo.size, queries.shape[1], "edge")
        if data.points is not None:
            cand.kind, cand.directions, cand.support, cand.weights, kinds = edges.edge_candidates(
                data.points, queries[todo], scale, atol)
            cand.method = np.array([f"edge-{k}" for k in kinds], dtype=object)
        else:
            cand.directions, _ = cert.coordinate_margins(data.bounds, queries[todo])
            cand.kind[:] = OUTSIDE
            cand.method[:] = "edge-coordinate"
        sub = verify(data, queries[todo], cand, atol, scale, prefix=self.name)
        dec.seconds[todo] += (time.perf_counter() - t1) / todo.size
        return dec.settle(todo, sub, ("status", "certificate", "method"))


def _assign(dec: Decisions, where: np.ndarray, sub: Decisions) -> None:
    for attr in ("status", "certificate", "method", "rounds"):
        getattr(dec, attr)[where] = getattr(sub, attr)


def verify(points, queries: np.ndarray, cand: Candidates, atol: float,
           scale: float, prefix: str) -> Decisions:
    """Check candidate certificates in frame coordinates; accepted ones become decisions, the rest undecided.

    An outside margin must exceed ``atol`` plus the rounding bound of its own
    arithmetic, and an inside residual plus its bound must stay within ``atol``
    (:func:`~.certificates.rounding_bound`).  ``points`` is the framed array (N, d) or a
    :class:`~.sources.Training`: margins are taken over all N rows (one pass when streamed),
    residuals on the support rows alone.
    """
    data = points if isinstance(points, Training) else InMemory(points, scale)
    B, d = queries.shape
    status = np.full(B, UNDECIDED, dtype=np.int8)
    value = np.full(B, np.nan)
    method = np.array([f"{prefix}:{m}" if m != prefix else prefix for m in cand.method], dtype=object)

    out = np.flatnonzero(cand.kind == OUTSIDE)
    if out.size:
        margins = data.margins(queries[out], cand.directions[out])
        ok = margins - cert.rounding_bound(queries[out], scale, d) > atol
        status[out[ok]] = OUTSIDE
        value[out[ok]] = margins[ok] / scale

    inside = np.flatnonzero(cand.kind == INSIDE)
    supports = [np.asarray(cand.support[b], dtype=np.intp).reshape(-1) if cand.support[b] is not None
                else np.zeros(0, dtype=np.intp) for b in inside]
    used = np.unique(np.concatenate(supports)) if supports else np.zeros(0, dtype=np.intp)
    R = data.take(used) if used.size else np.zeros((0, d))
    local = [np.searchsorted(used, s) for s in supports]
    residuals = cert.inside_residuals(R, queries[inside], local, [cand.weights[b] for b in inside])
    sizes = np.array([s.size for s in local], dtype=np.intp)
    bound = cert.rounding_bound(queries[inside], scale, sizes)
    for j in np.flatnonzero(~(residuals + bound <= atol)):      # polish the few that miss, one by one
        b = inside[j]
        support = local[j]
        weights = cand.weights[b]
        if 0 < support.size <= 4 * d + 8:
            keep = support[np.asarray(weights) > 0] if np.size(weights) == support.size else support
            support, weights = cert.polish_inside(R, queries[b], keep if keep.size else support)
            residuals[j] = cert.inside_residual(R, queries[b], support, weights)
            bound[j] = cert.rounding_bound(queries[b:b + 1], scale, support.size)[0]
    ok = residuals + bound <= atol
    status[inside[ok]] = INSIDE
    value[inside[ok]] = residuals[ok] / scale
    return Decisions(status=status, certificate=value, method=method,
                     seconds=np.zeros(B), rounds=np.asarray(cand.rounds, dtype=np.int32).copy())
