"""The hull-test job: every point of a test set against its training set's hull, in ranges of test points.

:class:`HullTestSpec` is everything a hull test's rows depend on (data digests, reduction, seed,
solver, tolerance, measure, engine), validated once and frozen; :class:`HullTestJob` splits the
test set into :class:`PointRange` units and computes each one's rows (:func:`decide_points`, the
one row builder).  Where X lives and how a test is run are the runs' (:mod:`mc_hull.runs.hulltest`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace

import numpy as np

from ..distance import distances, source_solver
from ..errors import InputError
from ..membership import decide
from ..solvers import check_solver_name
from ..solvers.certificates import check_tol
from ..spec import MEASURES
from . import trial


#: Test points per shard (one Parquet file, one Ray task).
SHARD_POINTS = 512


#: How a hull test decides its points (:attr:`HullTestSpec.engine`).
ENGINES = ("memory", "source")


def decide_points(X, Q: np.ndarray, *, tol: float, solver: str, measure: str = "membership",
                  budget: int | None = None) -> dict[str, np.ndarray]:
    """Certified decisions for one shard of test points (and their distances with ``measure="distance"``).

    Parameters
    ----------
    X : ndarray, shape (N, d), or a point source
        The training set held whole, or a point source (:class:`mc_hull.runs.filesource.FileSource`)
        decided by passes over its blocks (:class:`~mc_hull.solvers.stream.StreamSolver`), all
        the shard's open queries priced in one product per block.  With ``measure="distance"`` the
        distance engine's certificates decide membership too (its ℓ1 margins and inside residuals
        follow the membership rule; what they leave goes to the streamed membership solver), so X
        is not priced twice; method ``distance:<how>``.
    Q : ndarray, shape (B, d)
    budget : int, optional
        Bytes for a streamed batch's working sets; by default the shard is one batch, so its rows
        do not depend on ``MC_HULL_MEMORY_BUDGET`` (working sets: about ``B (2 d + 8) d`` doubles).

    Returns
    -------
    dict
        ``status`` int8 (B,) 1/0/-1, ``certificate_value`` float (B,) (residual or
        margin over the data scale, NaN if undecided), ``method`` str (B,); with
        ``measure="distance"`` also ``distance_low``, ``distance_high``, ``nn_distance``
        (B,) from :func:`mc_hull.distance.distances`.
    """
    if hasattr(X, "generate") and measure == "distance":   # the distance engine settles membership too

        res = distances(X, Q, tol=tol)
        out = trial.rows(res.status, res.certificate, [f"distance:{m}" for m in res.method], 0.0,
                         np.zeros(len(Q), dtype=np.int32))
        return {**out, "distance_low": res.low, "distance_high": res.high, "nn_distance": res.nn}
    if hasattr(X, "generate"):
        dec = source_solver(X.d, budget).decide(X, Q, tol=tol)
    else:
        dec = decide(X, Q, tol=tol, solver=solver)
    out = trial.decision_rows(dec)     # the one row builder (int8 status, guarded)
    if measure == "distance":
        out.update(trial.distance_columns(X, Q, tol))
    return out


def shard_ranges(n: int, size: int | None = None) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``0..n`` in pieces of at most ``size`` (default :data:`SHARD_POINTS`)."""
    size = size or SHARD_POINTS
    return [(s, min(s + size, n)) for s in range(0, n, size)]


@dataclass(frozen=True, order=True)
class PointRange:
    """Test points ``start .. stop-1`` of one hull test: a unit of a :class:`HullTestJob`."""

    test_id: str
    start: int
    stop: int

    @property
    def key(self) -> str:
        return f"{self.test_id}/{self.start}-{self.stop}"


class HullTestJob:
    """The test points of one hull test, in ranges of :data:`SHARD_POINTS`, against one training set.

    Parameters
    ----------
    spec : HullTestSpec
        Bound (its test id names the rows).
    X : ndarray, shape (N, d), or a point source
        Training set after the reduction, held or streamed (:func:`decide_points`).
    Q : ndarray, shape (B, d)
        Test set after the reduction.

    Attributes
    ----------
    Progress from inside a range goes through :mod:`mc_hull.progress` (the engines' passes and rounds).
    """

    unit_name = "point"
    store_kind = "hulltest"

    def __init__(self, spec: HullTestSpec, X, Q: np.ndarray):
        self.spec, self.X, self.Q = spec, X, Q
        self.test_id = spec.test_id

    @property
    def name(self) -> str:
        return f"hull-test {self.test_id}"

    def units(self):
        return (PointRange(self.test_id, a, b) for a, b in shard_ranges(len(self.Q)))

    def count(self) -> int:
        return -(-len(self.Q) // SHARD_POINTS)

    def total(self) -> int:
        return len(self.Q)

    def size(self, unit: PointRange) -> int:
        return unit.stop - unit.start

    def compute(self, unit: PointRange) -> dict[str, np.ndarray]:
        return decide_points(self.X, self.Q[unit.start:unit.stop], tol=self.spec.tol, solver=self.spec.solver,
                             measure=self.spec.measure)

    def committed(self, store, units) -> tuple[set, list[str]]:
        units = list(units)
        done = store.committed_points(self.test_id, [(u.start, u.stop) for u in units])
        return {u for u in units if (u.start, u.stop) in done}, []

    def publish(self, store, unit: PointRange, columns: dict[str, np.ndarray]) -> None:
        store.write_points(self.test_id, unit.start, unit.stop, columns)


@dataclass(frozen=True)
class HullTestSpec:
    """Everything the rows of one hull test depend on, validated once, frozen.

    Attributes
    ----------
    seed : int
        Seed of ``random-projection`` (and of the digits split); integer >= 0.
    solver : str
        A registry name or ``"auto"``.
    tol : float
        Relative tolerance in ``[TOL_MIN, TOL_MAX]``.
    measure : {"membership", "distance"}
    train, test : str or None
        Content digests of the data (``ArrayData.content_sha256``, or a file source's
        streamed digest); None in an unbound spec (options only, before data are read).
    reduction : str
        The reduction's label (``none``, ``pca:8`` ...).
    image_shape : tuple of int or None
    engine : {"memory", "source"}
        ``memory``: the registry's solver on X held in float64 (small training sets);
        ``source``: the streamed engines' passes over X's blocks, held in its own dtype or
        read from its files (:func:`placement`); held and streamed give the same rows.

    Raises
    ------
    InputError
        On construction: unknown solver or measure, tolerance out of range, bad seed.
    """

    seed: int = 0
    solver: str = "auto"
    tol: float = 1e-9
    measure: str = "membership"
    train: str | None = None
    test: str | None = None
    reduction: str = "none"
    image_shape: tuple | None = None
    engine: str = "memory"
    solver_name: str = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise InputError(f"--seed: must be an integer >= 0, got {self.seed!r}")
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "tol", check_tol(self.tol, "--tol"))
        if self.measure not in MEASURES:
            raise InputError(f"--measure: must be one of {', '.join(MEASURES)}, got {self.measure!r}")
        if self.engine not in ENGINES:
            raise ValueError(f"engine: one of {', '.join(ENGINES)}, got {self.engine!r}")
        object.__setattr__(self, "solver_name", check_solver_name(self.solver))

    def bind(self, train, test, reduction, *, engine: str = "memory") -> "HullTestSpec":
        """This spec for one data pair and reduction (digests read from ``train`` and ``test``; the
        reduction's ``label``, :class:`mc_hull.runs.datasets.Reduction`)."""
        shape = getattr(train, "image_shape", None)
        return replace(self, train=train.content_sha256, test=test.content_sha256, reduction=reduction.label,
                       image_shape=tuple(shape) if shape else None, engine=engine)

    def key(self, reduction_kind: str | None = None) -> dict:
        """The fields that name the rows (``measure`` and ``engine`` only when not the defaults, so older ids hold)."""
        kind = reduction_kind or self.reduction.split(":")[0]
        key = {"train": self.train, "test": self.test, "reduce": self.reduction,
               "image_shape": self.image_shape, "solver": self.solver_name, "tol": float(self.tol),
               "shard_points": SHARD_POINTS, "seed": self.seed if kind == "random-projection" else None}
        if self.measure != "membership":
            key["measure"] = self.measure
        if self.engine != "memory":
            key["engine"] = self.engine
        return key

    @property
    def test_id(self) -> str:
        """The 16-hex-digit id of the hull test: a hash of :meth:`key`."""
        if self.train is None or self.test is None:
            raise ValueError("an unbound HullTestSpec has no test id: call bind(train, test, reduction)")
        return hashlib.sha256(json.dumps(self.key(), sort_keys=True).encode()).hexdigest()[:16]


def test_key(train, test, reduction, *, seed: int, solver: str, tol: float,
             measure: str = "membership") -> str:
    """The id of a hull test (:attr:`HullTestSpec.test_id` of the bound spec)."""
    return HullTestSpec(seed=seed, solver=solver, tol=tol, measure=measure).bind(train, test, reduction).test_id
