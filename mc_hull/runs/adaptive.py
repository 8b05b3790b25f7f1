"""Trials where they matter: N grids around each d's transition, and adaptive stopping per cell.

``--sizes auto`` (:func:`auto_grid`, :func:`resolve_auto_sizes`)
    For each d, about ten sizes N log-spaced between the N at which p = 0.02
    and the N at which p = 0.98: from the exact curve where one is known
    (``theory.gaussian.n_at_probability`` for Gaussian data, bisection on the
    exact curve otherwise), else from a coarse pilot pass (100 trials per N at
    N = (d + 1) * 4^k, in a temporary directory, stopped once p_hat >= 0.98, or
    16x past the rung where p_hat first reached 1/2: :data:`PILOT_SPAN`).
    Sizes are capped at ``max_n`` (default :data:`AUTO_MAX_N`).  The grid is
    resolved into ``Spec.grid`` before the spec is hashed, so it is part of the
    run's identity and a re-run resumes it.

``--target-halfwidth h`` (:func:`run_adaptive`)
    Runs the spec's planned replicates, then adds replicates to every cell
    whose 99% cluster-robust interval (:func:`mc_hull.stats.intervals.clustered_interval`)
    has half-width >= h.  Stopping rule: a cell is checked only at the
    geometric checkpoints R0, 2 R0, 4 R0, ... replicates (R0 =
    ``ceil(trials / queries_per_set)``; the last checkpoint is the cap ``max_trials``), using
    only the replicates below the checkpoint; it stops at the first checkpoint
    where its half-width < h, or at the cap.  Few looks keep the optional-
    stopping effect on coverage small (``tests/test_adaptive.py`` measures it
    by simulation), and because each decision reads only replicates below its
    checkpoint, an interrupted run resumes to the same result.  Additional
    replicates use the same keyed seeding (``SeedSequence(seed, spawn_key=(dist,
    d, N, replicate, ...))``) and hold ``queries_per_set`` queries each.
"""

from __future__ import annotations

import io
import math
import sys
import tempfile
from dataclasses import dataclass, field

import numpy as np

from ..stats import intervals as stats
from .. import theory
from ..jobs.base import MonteCarloJob
from ..jobs.plan import replicate_trials
from ..query import cell_estimates, replicate_halfwidths
from .runner import execute
from ..spec import FIELDS, Spec


#: Largest N chosen by ``--sizes auto`` unless told otherwise (an X of 10^6 x d doubles per replicate).
AUTO_MAX_N = 10**6
#: p range spanned by an automatic grid, and its number of sizes per d.
AUTO_P_RANGE = (0.02, 0.98)
AUTO_POINTS = 10
#: Trials per N (and queries per training set) of the pilot pass for distributions without an exact curve.
PILOT_TRIALS, PILOT_QUERIES = 100, 20
#: The pilot's ladder of a d also stops at the first rung this many times the rung where p_hat first
#: reached 1/2 (two rungs of 4x), and the grid ends there: for a law whose p creeps up in log N the
#: upper end of the range lies orders of magnitude beyond N½ (the uniform cube in d = 12: p_hat = 0.51
#: at N = 2.1e5, 0.78 at 3.4e6, and 1 - p ~ (log N)^11 / N from there puts p = 0.95 near N = 2e8),
#: and each rung costs four times the last, in the pilot and again in the run.
PILOT_SPAN = 16
#: A nested run's automatic grid: 40 sizes per d (each extra size costs a few products), up to p = 0.95
#: (the upper tail beyond grows fast with d: N at p = 0.98 is 5x that at 0.95 at d = 16, and every size
#: costs the whole X), N not capped at memory (X beyond the budget is streamed; the plan line says which).
NESTED_AUTO = {"points": 40, "p_range": (0.02, 0.95), "max_n": 10**12}


def auto_options(nested: bool) -> dict:
    """``points``, ``p_range`` and ``max_n`` of an automatic grid: :data:`NESTED_AUTO` for nested runs."""
    return dict(NESTED_AUTO) if nested else {"points": AUTO_POINTS, "p_range": AUTO_P_RANGE, "max_n": AUTO_MAX_N}


# -- automatic grids -----------------------------------------------------------
def _n_at_exact(distribution: str, d: int, p: float, max_n: int, params: dict | None = None) -> float:
    """N at which the exact curve (of the law with ``params``) reaches p (inf if beyond max_n)."""
    params = dict(params or {})
    if distribution in ("beta", "student-t"):
        from ..theory.beta import n_at_probability

        try:
            return float(n_at_probability(distribution, d, p, **params))
        except (ValueError, OverflowError):
            return math.inf
    inverse = {"gaussian": ("gaussian", "n_at_probability"), "ball": ("ball", "ball_n_at_probability")}
    if distribution in inverse and (distribution != "ball" or d <= 40):
        from importlib import import_module

        module, name = inverse[distribution]
        try:
            return float(getattr(import_module(f"mc_hull.theory.{module}"), name)(d, p))
        except (ValueError, OverflowError):
            return math.inf
    f = lambda n: float(theory.exact_inside_probability(distribution, d, n, **params))  # noqa: E731
    lo, hi = 1.0, float(max_n)
    if f(hi) < p:
        return math.inf
    if f(lo) >= p:
        return lo
    for _ in range(200):  # bisection in log N (p is non-decreasing in N)
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if f(mid) < p else (lo, mid)
        if hi / lo < 1 + 1e-9:
            break
    return hi


def log_grid(n_lo: float, n_hi: float, points: int = AUTO_POINTS, max_n: int = AUTO_MAX_N,
             d: int = 0) -> list[int]:
    """``points`` distinct integers log-spaced from n_lo to min(n_hi, max_n) (all of them if fewer exist).

    Sizes start at d + 1 (for N <= d the hull has no interior and p = 0).  Where
    rounding merges neighbours (small N), the log spacing is refined until
    ``points`` distinct sizes remain, so a d with a short range still gets its
    ``points`` sizes.
    """
    n_lo = max(1.0, float(d + 1), float(n_lo))
    n_hi = min(float(n_hi), float(max_n))
    if n_hi <= n_lo:
        return [int(round(n_lo))]
    lo, hi = int(round(n_lo)), int(round(n_hi))
    if hi - lo + 1 <= points:
        return list(range(lo, hi + 1))
    k = points
    while True:
        sizes = sorted({int(round(v)) for v in np.geomspace(n_lo, n_hi, k)})
        if len(sizes) >= points:
            return sizes
        k += 1


def auto_grid(distribution: str, dims, *, points: int = AUTO_POINTS, p_range=AUTO_P_RANGE,
              max_n: int = AUTO_MAX_N, pilot=None, log=None, params: dict | None = None) -> dict[int, list[int]]:
    """Per-d sizes around the transition.

    Parameters
    ----------
    distribution : str
    dims : iterable of int
    points : int
        Sizes per d (fewer when rounding merges neighbours at small N).
    p_range : (float, float)
        p at the smallest and largest size.
    max_n : int
        Cap on N (the upper tail of the transition grows fast with d).
    pilot : callable, optional
        ``pilot(d_to_sizes) -> {(d, n): p_hat}`` for distributions without an
        exact curve (see :func:`pilot_runner`); required for them.
    log : file, optional
        Where to note capped grids.
    params : dict, optional
        The distribution's parameters (e.g. ``{"df": 1}``): laws whose exact curve depends on
        them (``student-t``, ``beta``) use it when they are inside its range.

    Returns
    -------
    dict of int -> list of int
    """
    dims = [int(d) for d in dims]
    params = dict(params or {})
    if all(theory.has_exact(distribution, d, **params) for d in dims):
        out = {}
        for d in dims:
            lo = _n_at_exact(distribution, d, p_range[0], max_n, params)
            hi = _n_at_exact(distribution, d, p_range[1], max_n, params)
            if not math.isfinite(lo):  # the whole transition lies beyond the cap
                lo = max_n / 10
            if log is not None and hi > max_n:
                print(f"mc-hull: --sizes auto: d = {d}: p reaches {p_range[1]} only at N = {hi:.3g}; "
                      f"grid capped at N = {max_n}", file=log)
            out[d] = log_grid(lo, hi, points, max_n, d)
        return out
    if pilot is None:
        raise ValueError(f"no exact curve for {distribution!r}: a pilot pass is needed")
    return pilot_grid(dims, pilot, points=points, p_range=p_range, max_n=max_n, log=log)


def pilot_grid(dims, pilot, *, points=AUTO_POINTS, p_range=AUTO_P_RANGE, max_n=AUTO_MAX_N,
               log=None, span: float = PILOT_SPAN) -> dict[int, list[int]]:
    """Grid from a coarse pilot: p_hat at N = (d + 1) * 4^k until p_hat >= p_range[1], max_n, or
    ``span`` times the rung where p_hat first reached 1/2 (:data:`PILOT_SPAN`), whichever comes first.

    Parameters
    ----------
    dims : iterable of int
    pilot : callable
        ``pilot({d: n}) -> {(d, n): p_hat}`` (:func:`pilot_runner`).
    points, p_range, max_n :
        As in :func:`auto_grid`.
    log : file, optional
        Where to say which d stopped short of ``p_range[1]`` and why.
    span : float
        A ladder that has passed p_hat = 1/2 at rung N1 stops at the first rung >= span * N1, the
        grid's upper end then (``inf``: only p_range and max_n stop it).

    Returns
    -------
    dict of int -> list of int
    """
    seen: dict[int, list[tuple[int, float]]] = {d: [] for d in dims}
    crossed: dict[int, int] = {}
    active = list(dims)
    k = 0
    while active:
        ladder = {d: min(max_n, (d + 1) * 4**k) for d in active}
        p_hat = pilot(ladder)
        for d in list(active):
            n, p = ladder[d], p_hat[(d, ladder[d])]
            seen[d].append((n, p))
            if p >= 0.5:
                crossed.setdefault(d, n)
            if p >= p_range[1] or n >= max_n or (d in crossed and n >= span * crossed[d]):
                active.remove(d)
        k += 1
    out = {}
    for d, pts in seen.items():
        ns = np.array([n for n, _ in pts], dtype=float)
        ps = np.maximum.accumulate(np.array([p for _, p in pts], dtype=float))
        out[d] = log_grid(_interpolate_n(ns, ps, p_range[0]), _interpolate_n(ns, ps, p_range[1]),
                          points, max_n, d)
        if log is None or ps[-1] >= p_range[1]:
            continue
        if ns[-1] >= max_n:
            print(f"mc-hull: --sizes auto: d = {d}: pilot p_hat = {ps[-1]:.2f} at the cap "
                  f"N = {max_n}; grid capped there", file=log)
        else:
            print(f"mc-hull: --sizes auto: d = {d}: pilot p_hat = {ps[-1]:.2f} at N = {int(ns[-1])}, "
                  f"{span:g}x the N where it reached 1/2 ({crossed[d]}); grid ends there, short of "
                  f"p = {p_range[1]}", file=log)
    return out


def _interpolate_n(ns, ps, p):
    """N at which a non-decreasing pilot curve reaches p: linear in (logit p, log N) between points."""
    if ps[0] >= p:
        return ns[0] / 4 if ps[0] > p else ns[0]
    if ps[-1] < p:
        return ns[-1]
    j = int(np.nonzero(ps >= p)[0][0])
    logit = lambda v: math.log(min(max(v, 1e-3), 1 - 1e-3) / (1 - min(max(v, 1e-3), 1 - 1e-3)))  # noqa: E731
    a, b = logit(ps[j - 1]), logit(ps[j])
    w = 0.5 if b == a else (logit(p) - a) / (b - a)
    return math.exp(math.log(ns[j - 1]) + w * (math.log(ns[j]) - math.log(ns[j - 1])))


def pilot_runner(fields, *, backend: str = "ray", address=None, workers=None, directory=None):
    """A ``pilot`` callable for :func:`auto_grid`: runs small cells of a spec's distribution.

    ``fields`` is a Spec or its validated fields (distribution, params, seed, solver, tol).
    The pilot results go to a temporary directory (removed afterwards) and use the spec's
    seed, so the resolved grid is reproducible.
    """
    f = _fields(fields)

    def pilot(ladder: dict[int, int]) -> dict[tuple[int, int], float]:
        grid = {str(d): [n] for d, n in ladder.items()}
        pspec = Spec.from_dict({"distribution": f["distribution"], "dims": sorted(ladder), "grid": grid,
                                "trials": PILOT_TRIALS, "queries_per_set": PILOT_QUERIES,
                                "seed": f["seed"], "solver": f["solver"], "tol": f["tol"],
                                "shard_trials": PILOT_TRIALS, "params": dict(f["params"])})
        with tempfile.TemporaryDirectory(prefix="mc-hull-pilot-", dir=directory) as tmp:
            execute(pspec, tmp, backend=backend, address=address, workers=workers, progress=False,
                    new_run=True, log=io.StringIO())
            rows = cell_estimates(tmp).to_pylist()
        return {(r["d"], r["n"]): (r["p_hat"] if r["p_hat"] == r["p_hat"] else 0.0) for r in rows}

    return pilot


def _fields(spec) -> dict:
    return {name: getattr(spec, name) for name in FIELDS} if isinstance(spec, Spec) else spec


def auto_sizes(*, backend: str = "serial", address=None, workers=None, log=None, **options):
    """The resolver of ``sizes = "auto"`` (:func:`mc_hull.spec.normalise`): validated fields -> per-d sizes.

    Every face assembles its spec with this one resolver, so ``mc-hull run`` and ``mc-hull submit``
    give the same grid: :func:`auto_grid` with :func:`auto_options` (a nested run's 40 sizes) unless
    ``options`` (``points``, ``p_range``, ``max_n``) say otherwise; a pilot pass on ``backend``
    for distributions without an exact curve.
    """
    def resolve(fields) -> dict[str, list[int]]:
        f = _fields(fields)
        out = sys.stderr if log is None else log
        pilot = None
        params = dict(f.get("params") or {})
        if not all(theory.has_exact(f["distribution"], d, **params) for d in f["dims"]):
            print(f"mc-hull: --sizes auto: pilot pass for {f['distribution']} "
                  f"({PILOT_TRIALS} trials per N)", file=out)
            pilot = pilot_runner(f, backend=backend, address=address, workers=workers)
        opts = {**auto_options(bool(f["nested"])), **options}
        grid = auto_grid(f["distribution"], f["dims"], pilot=pilot, log=out, params=params, **opts)
        return {str(d): ns for d, ns in grid.items()}

    return resolve


def resolve_auto_sizes(spec: Spec, *, backend: str = "ray", address=None, workers=None, log=None,
                       **options) -> Spec:
    """``spec`` with ``grid`` set by :func:`auto_sizes` (runs a pilot pass if there is no exact curve)."""
    resolver = auto_sizes(backend=backend, address=address, workers=workers, log=log, **options)
    return spec.with_overrides(grid=resolver(spec))


# -- adaptive stopping ---------------------------------------------------------
def _k(spec: Spec) -> int:
    """The one K of an adaptive spec (its checkpoints are shared by every cell)."""
    k = spec.uniform_k
    if k is None:
        raise ValueError("adaptive runs need one queries_per_set for every cell")
    return k


def initial_replicates(spec: Spec) -> int:
    """R0: the replicates every cell of an adaptive spec starts with."""
    return math.ceil(spec.trials / _k(spec))


def max_replicates(spec: Spec) -> int:
    """Replicates per cell allowed by ``spec.max_trials`` (at least R0)."""
    cap = spec.max_trials if spec.max_trials is not None else spec.trials
    return initial_replicates(spec) + max(0, cap - spec.trials) // _k(spec)


def checkpoints(spec: Spec) -> list[int]:
    """Replicate counts at which cells are checked: R0, 2 R0, 4 R0, ..., capped at the maximum."""
    r0, r_max = initial_replicates(spec), max_replicates(spec)
    out = [r0]
    while out[-1] < r_max:
        out.append(min(2 * out[-1], r_max))
    return out


def cell_trials(spec: Spec, replicates: int, d: int, n: int) -> int:
    """Trials of cell (d, N) holding replicates 0 .. replicates-1."""
    return replicate_trials(spec, 0, replicates, d, n)


@dataclass
class AdaptiveReport:
    """What an adaptive run did: per cell (d, n) its final replicates and half-width."""

    run_id: str
    rounds: int = 0
    computed_shards: int = 0
    skipped_shards: int = 0
    trials: int = 0
    undecided: int = 0
    seconds: float = 0.0
    cells: dict = field(default_factory=dict)  # (d, n) -> {"replicates", "halfwidth", "reached"}

    @property
    def capped(self) -> list:
        return [c for c, v in self.cells.items() if not v["reached"]]


def _halfwidths(out: str, spec: Spec, below: int, level: float) -> dict:
    """Half-width per cell from replicates < ``below`` of this run ({} when no rows yet)."""
    return replicate_halfwidths(out, spec.run_id, spec.distribution, below, level)


def run_adaptive(spec: Spec, out: str, *, backend: str = "ray", address=None, workers=None,
                 new_run: bool = False, progress: bool = True, level: float = stats.LEVEL,
                 log=None) -> AdaptiveReport:
    """Run ``spec``, then add replicates to each cell until its interval half-width < target.

    See the module docstring for the stopping rule.  Each batch of new shards
    (replicate ranges between consecutive checkpoints, only for cells still
    running) goes through :func:`mc_hull.runs.runner.execute`, so committed shards
    are skipped on a re-run and the Ray/serial paths give the same rows.
    """
    import time


    log = sys.stderr if log is None else log
    if spec.target_halfwidth is None:
        raise ValueError("run_adaptive needs a spec with target_halfwidth")
    t0 = time.perf_counter()
    report = AdaptiveReport(run_id=spec.run_id)
    marks = checkpoints(spec)
    active = list(spec.cells)
    job = MonteCarloJob(spec)
    pool = None
    if backend == "ray":
        from ..distributed.pool import Pool  # one Ray connection and one set of actors for every round

        pool = Pool(address, workers)
    try:
        for k, mark in enumerate(marks):
            if job is not None:
                r = execute(spec, out, backend=backend, new_run=new_run, progress=progress, job=job,
                            pool=pool, log=log)
                report.rounds += 1
                report.computed_shards += r.computed_shards
                report.skipped_shards += r.skipped_shards
                report.trials += r.trials
                report.undecided += r.undecided
            hw = _halfwidths(out, spec, mark, level)
            still = []
            for cell in active:
                h = hw.get(cell, math.inf)
                reached = h < spec.target_halfwidth
                report.cells[cell] = {"replicates": mark, "trials": cell_trials(spec, mark, *cell),
                                      "halfwidth": h, "reached": reached}
                if not reached:
                    still.append(cell)
            active = still
            if not active or k + 1 == len(marks):
                break
            nxt = marks[k + 1]
            print(f"mc-hull: adaptive: {len(active)} of {len(spec.cells)} cells have 99% half-width >= "
                  f"{spec.target_halfwidth:g}; adding replicates {mark}..{nxt - 1}", file=log)
            job = MonteCarloJob(spec, mark, nxt, cells=tuple(active))
    finally:
        if pool is not None:
            pool.close()
    report.seconds = time.perf_counter() - t0
    return report
