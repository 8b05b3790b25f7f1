"""``mc-hull run``: run a spec (file, preset or flags) on embedded Ray or a cluster, then print estimates."""

from __future__ import annotations

import sys
import time

import pyarrow as pa

from ..jobs import plan as planning
from ..runs.adaptive import run_adaptive
from ..errors import PlanError, SpecError, StoreError
from ..jobs.base import MonteCarloJob
from ..jobs.nested import NestedJob, check_nested
from ..query import cell_estimates
from ..runs.runner import execute, open_run
from ..spec import Panel, Spec
from ..jobs.trial import check_measure
from . import one_line, texts
from .args import _int, _location
from .format import FORMATS
from .hull_test import run_preset
from .query import print_table
from .specs import add_spec_arguments, assemble, label


def register(sub) -> None:
    p = sub.add_parser(
        "run", help="run a Monte Carlo experiment",
        description="Estimate p(d, N) = P(x in conv(X_1..X_N)) on a grid of cells (d, N), every trial "
                    "certified, results appended to a Parquet dataset in --out; then print the table of "
                    "estimates. The spec comes from SPEC.toml, a --preset or flags; flags override the "
                    "file or preset. Re-running the same command resumes, never duplicates.")
    add_spec_arguments(p)
    p.add_argument("--out", default="results", metavar="DIR", type=_location("--out"),
                   help="results directory or URI, e.g. s3://bucket/prefix (default ./results)")
    p.add_argument("--address", help="Ray address (ray://HOST:10001 or HOST:6379); default: an "
                                     "embedded Ray for this process only")
    p.add_argument("--workers", type=_int("--workers"), metavar="W",
                   help="number of Ray actors (default: one per CPU)")
    p.add_argument("--serial", action="store_true",
                   help="run in this process, without Ray (same rows; the default when the plan's "
                        "estimated work is under a few seconds and neither --address nor --workers is given)")
    p.add_argument("--force-plan", action="store_true",
                   help="run a plan beyond this machine's limits (shard count, a worker's memory): for clusters")
    p.add_argument("--new-run", action="store_true",
                   help="allow a spec different from the one already in --out (both stay, as separate runs)")
    p.add_argument("--no-progress", action="store_true", help=texts.NO_PROGRESS)
    p.add_argument("--format", choices=FORMATS, default="table", help=texts.FORMAT)
    p.set_defaults(func=main)


def build_panels(args) -> list[Panel]:
    """Every panel (one for a plain spec) of ``args``: :func:`mc_hull.cli.specs.assemble`, whose pilot
    pass (``--sizes auto`` without an exact curve) runs on Ray when ``--address`` or ``--workers`` asks."""
    ray_asked = not args.serial and (args.address or args.workers)
    if ray_asked and args.address:  # the pilot pass joins the cluster: refuse it in one line first
        from ..distributed.pool import check_reachable

        check_reachable(args.address)
    return assemble(args, backend="ray" if ray_asked else "serial", address=args.address, workers=args.workers)


def _describe(spec: Spec) -> str:
    params = f" ({', '.join(f'{k}={v}' for k, v in spec.params)})" if spec.params else ""
    return (f"{spec.distribution}{params}, d in {list(spec.dims)}, N in {list(spec.sizes)}, "
            f"{spec.trials} trials per cell ({spec.planned_trials} planned), solver {spec.solver}")


def plan_estimate(spec: Spec, args, job=None):
    """Refuse a plan that cannot run (PlanError); return its estimate, calibrated by a short timing."""
    if args.workers is not None and args.workers < 1:
        raise PlanError(f"--workers: must be at least 1, got {args.workers}")
    if args.serial and (args.address or args.workers):
        raise SpecError("--serial runs without Ray; drop --address/--workers")
    if args.address and not args.serial:
        from ..distributed.pool import check_reachable

        check_reachable(args.address)  # one line now, not a minute of retries inside ray.init
    if job is None and spec.nested:
        check_nested(spec)
        job = NestedJob(spec)
    if spec.measure == "distance":
        check_measure(spec)
    est = (job or MonteCarloJob(spec)).estimate()
    planning.check(est, force=args.force_plan)
    est = est.scaled(planning.calibration(spec))    # the model's constants, corrected by a short timing
    planning.check(est, force=args.force_plan)
    return est


def describe_plan(spec: Spec, est, backend: str, why: str) -> str:
    """The line printed before a run: its cells, trials, shards, estimates and backend."""
    extra = ""
    if spec.target_halfwidth is not None:
        extra = f" (first round; adaptive up to {spec.max_trials:,} trials per cell)"
    return f"mc-hull: plan: {est.line()}{extra}; backend {backend} ({why})"


def describe_queries(spec: Spec) -> str:
    """The line saying how many queries each training set gets (K), and why."""
    k = spec.uniform_k
    if isinstance(spec.queries_per_set, int):
        return f"mc-hull: queries per training set: K = {k} for every cell (given)"
    per_d = {}
    for (d, _), kk in spec.queries_per_set:
        per_d.setdefault(d, set()).add(kk)
    parts = [f"d = {d}: {min(ks)}" if len(ks) == 1 else f"d = {d}: {min(ks)}-{max(ks)}"
             for d, ks in sorted(per_d.items())]
    return ("mc-hull: queries per training set K (cost rule, mc_hull.stats.design: drawing X against a query and "
            f"the queries' correlation; --queries-per-set sets one K): {', '.join(parts)}")


def run_one(spec: Spec, args, backend: str, plan_line: str, *, new_run: bool, pool=None) -> None:
    """Run (or resume) one spec into ``args.out`` on ``backend`` and print its summary line."""
    print(f"mc-hull: run {spec.run_id}: {_describe(spec)} -> {args.out}", file=sys.stderr)
    print(plan_line, file=sys.stderr)
    if spec.grid:
        print(f"mc-hull: sizes per d: {', '.join(f'd = {d}: {list(ns)}' for d, ns in spec.grid)}",
              file=sys.stderr)
    print(describe_queries(spec), file=sys.stderr)
    if spec.target_halfwidth is not None:
        report = run_adaptive(spec, args.out, backend=backend, address=args.address, workers=args.workers,
                              new_run=new_run, progress=not args.no_progress)
        if report.capped:
            print(f"mc-hull: adaptive: {len(report.capped)} cells stopped at --max-trials "
                  f"{spec.max_trials} above half-width {spec.target_halfwidth:g}", file=sys.stderr)
    else:
        job = None
        if spec.nested:
            job = NestedJob(spec)
        report = execute(spec, args.out, backend=backend, job=job, address=args.address, workers=args.workers,
                         new_run=new_run, progress=not args.no_progress, pool=pool)
    print(f"mc-hull: run {report.run_id} done in {report.seconds:.1f} s: "
          f"{report.computed_shards} shards computed, {report.skipped_shards} skipped as committed, "
          f"{report.undecided} undecided", file=sys.stderr)


def main(args) -> int:
    if args.preset == "paper-digits" and not args.spec:  # a hull-test sweep, not a Monte Carlo spec
        return run_preset(args)

    panels = build_panels(args)  # all validation happens before anything is written
    # refuses, writing nothing, a plan that cannot run
    estimates = [plan_estimate(panel.spec, args) for panel in panels]
    backend, why = planning.choose_backend(sum(e.cpu_seconds for e in estimates), serial=args.serial,
                                           address=args.address, workers=args.workers)
    if len(panels) > 1 and backend == "ray" and why.startswith("estimated"):
        why += " for all panels"
    plans = [(backend, describe_plan(p.spec, e, backend, why)) for p, e in zip(panels, estimates)]
    # An unusable --out or a changed spec is refused in one line, before the header: each run is
    # claimed here (atomically), so of two writers started together the loser prints only its
    # refusal. The panels of one file run in order, so a directory holding the first panel's run is that file's.
    for i, panel in enumerate(panels):
        try:
            open_run(panel.spec, args.out, new_run=args.new_run or i > 0)
        except OSError as exc:  # an object store or file system that cannot be reached
            raise StoreError(f"--out: cannot use {args.out}: {one_line(exc)}") from None
    if len(panels) > 1:
        t0 = time.perf_counter()
        names = "; ".join(f"({p.name}) {p.title or p.spec.distribution}" for p in panels)
        print(f"mc-hull: {label(args)}: {len(panels)} panels, one run each -> {args.out}: {names}",
              file=sys.stderr)
    pool = None
    if len(panels) > 1 and backend == "ray":  # one Ray and one set of actors for every panel
        from ..distributed.pool import Pool

        pool = Pool(args.address, args.workers)
    try:
        for i, (panel, (backend, plan_line)) in enumerate(zip(panels, plans)):
            run_one(panel.spec, args, backend, plan_line, new_run=args.new_run or i > 0, pool=pool)
    finally:
        if pool is not None:
            pool.close()
    if len(panels) > 1:
        print(f"mc-hull: {len(panels)} panels done in {time.perf_counter() - t0:.1f} s; "
              f"`mc-hull plot {args.out} --out fig.png` draws them", file=sys.stderr)
    tables = [cell_estimates(args.out, run_id=p.spec.run_id) for p in panels]
    if len(tables) == 1:
        print_table(tables[0], args.format)
    else:
        print_table(pa.concat_tables(tables), args.format)
    return 0
