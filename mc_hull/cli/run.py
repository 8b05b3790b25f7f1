"""``mc-hull run``: run a spec (file, preset or flags) on embedded Ray or a cluster, then print estimates."""

from __future__ import annotations

import sys

from ..errors import SpecError, StoreError
from ..query import cell_estimates
from ..spec import (MAX_D, Panel, Spec, is_auto, load_panels, load_preset, load_toml, preset_names,
                    unique_json_keys)
from . import texts
from .args import _float, _int, _location
from .format import FORMATS
from .query import print_table

#: Flags naming what a panel is; a multi-panel file or preset keeps its own.
PANEL_FLAGS = {"distribution": "--distribution", "dims": "--dims", "params": "--param"}


def register(sub) -> None:
    p = sub.add_parser(
        "run", help="run a Monte Carlo experiment",
        description="Estimate p(d, N) = P(x in conv(X_1..X_N)) on a grid of cells (d, N), every trial "
                    "certified, results appended to a Parquet dataset in --out; then print the table of "
                    "estimates. The spec comes from SPEC.toml, a --preset or flags; flags override the "
                    "file or preset. Re-running the same command resumes, never duplicates.")
    p.add_argument("spec", nargs="?", metavar="SPEC.toml",
                   help="experiment spec (TOML; see the README's 'Running experiments'), or a "
                        "multi-panel file with [[panels]] tables")
    p.add_argument("--preset", metavar="NAME",
                   help=f"a built-in spec: {', '.join(preset_names())} (mc_hull/presets/NAME.toml; "
                        "paper-fig1 runs the paper's Fig. 1, three panels into one --out), or "
                        "paper-digits (the sweep of mc-hull hull-test --preset paper-digits)")
    p.add_argument("--distribution", metavar="NAME", help=texts.distribution_help())
    p.add_argument("--dims", metavar="DIMS",
                   help=f"dimensions d in [1, {MAX_D}]: a list 2,4,8, a range 2..12 (both ends "
                        "included), a stepped range 2..12..2, or a mix like 2..5,8")
    p.add_argument("--sizes", metavar="SIZES",
                   help="comma-separated training-set sizes N in [1, 1e12], e.g. 10,100,1e3, or 'auto': "
                        "~10 sizes per d around the transition (exact curve, else a pilot pass)")
    p.add_argument("--trials", type=_int("--trials"), metavar="N", help="trials (queries) per cell")
    p.add_argument("--queries-per-set", type=_int("--queries-per-set"), metavar="K",
                   help="queries tested against each training set (a cell draws ceil(trials / K) sets)")
    p.add_argument("--seed", type=_int("--seed"), metavar="S", help=texts.SEED)
    p.add_argument("--solver", metavar="NAME", help=texts.solver_help())
    p.add_argument("--tol", type=_float("--tol"), metavar="T", help=texts.tol_help())
    p.add_argument("--shard-trials", type=_int("--shard-trials"), metavar="N",
                   help="target trials per shard, the unit of work and of output files (default 2000)")
    p.add_argument("--target-halfwidth", type=_float("--target-halfwidth"), metavar="H",
                   help="add replicates to each cell until its 99%% interval half-width < H, H in (0, 0.5]")
    p.add_argument("--max-trials", type=_int("--max-trials"), metavar="N",
                   help="cap on trials per cell with --target-halfwidth (default 16 x --trials)")
    p.add_argument("--nested", action="store_true", default=None,
                   help="one training set of each d's largest size per replicate, its prefixes the smaller "
                   "sizes: every query's entry size located on the grid gives all sizes at once "
                   "(spec field nested = true); with --sizes auto, 40 sizes per d and no cap at 1e6")
    p.add_argument("--measure", choices=("membership", "distance"), default=None,
                   help="distance: also record each trial's certified Euclidean distance to the hull and to "
                   "the nearest training point (spec field measure; default membership)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="distribution parameter, repeatable (k for subspace, df for student-t, "
                        "components and separation for mixture)")
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
    p.add_argument("--spec-json", metavar="JSON", help="the spec as one JSON document (what mc-hull submit "
                   "ships to a Ray job)")
    p.add_argument("--new-run", action="store_true",
                   help="allow a spec different from the one already in --out (both stay, as separate runs)")
    p.add_argument("--no-progress", action="store_true", help=texts.NO_PROGRESS)
    p.add_argument("--format", choices=FORMATS, default="table", help=texts.FORMAT)
    p.set_defaults(func=main)


def _params(items: list[str]) -> dict | None:
    if not items:
        return None
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SpecError(f"--param: expected NAME=VALUE, got {item!r}")
        try:
            out[name] = int(value)
        except ValueError:
            try:
                out[name] = float(value)
            except ValueError:
                out[name] = value
    return out


def source(args) -> tuple[dict, str]:
    """The mapping of SPEC.toml, --preset or --spec-json (empty without any) and a label for messages."""
    spec_json = getattr(args, "spec_json", None)
    for flag, value in (("SPEC.toml", args.spec), ("--preset", args.preset), ("--spec-json", spec_json)):
        if value is not None and not value.strip():   # '' is not "no spec": it names nothing
            raise SpecError(f"{flag}: empty")
    if sum(bool(v) for v in (args.spec, args.preset, spec_json)) > 1:
        raise SpecError("give one of SPEC.toml, --preset or --spec-json")
    if spec_json:
        return _json_spec(spec_json), "--spec-json"
    if args.spec:
        return load_toml(args.spec), args.spec
    if args.preset:
        return load_preset(args.preset), f"preset {args.preset}"
    return {}, "flags"


def _json_spec(text: str) -> dict:
    import json

    try:
        data = json.loads(text, object_pairs_hook=unique_json_keys("--spec-json"))
    except SpecError:
        raise
    except (ValueError, RecursionError) as exc:
        raise SpecError(f"--spec-json: not JSON: {' '.join(str(exc).split())[:200]}") from None
    if not isinstance(data, dict):
        raise SpecError("--spec-json: must be a JSON object of spec fields")
    return data


def _flags(args) -> dict:
    return dict(
        distribution=args.distribution, dims=args.dims, sizes=args.sizes,
        trials=args.trials, queries_per_set=args.queries_per_set, seed=args.seed, solver=args.solver,
        tol=args.tol, shard_trials=args.shard_trials,
        target_halfwidth=getattr(args, "target_halfwidth", None),
        max_trials=getattr(args, "max_trials", None), nested=getattr(args, "nested", None),
        measure=getattr(args, "measure", None))


def merge(base: dict, args, *, panels: bool = False) -> dict:
    """``base`` (a file's fields, or a multi-panel file's top level) with the flags applied."""
    flags = {k: v for k, v in _flags(args).items() if v is not None}
    params = _params(args.param)
    if panels:
        given = [flag for key, flag in PANEL_FLAGS.items() if key in flags or (key == "params" and params)]
        if given:
            raise SpecError(f"{given[0]}: each panel of a multi-panel spec sets its own; copy the file "
                            "and edit its [[panels]] instead")
    # Flags are merged into the file's fields before anything is validated, so a file that is
    # only valid with the flags applied (e.g. subspace k=3 with --dims 4,8) is accepted.
    merged = {**base, **flags}
    if "sizes" in flags:
        merged.pop("grid", None)  # explicit sizes replace a per-d grid
    if params is not None:
        file_params = base.get("params", {})
        merged["params"] = {**file_params, **params} if isinstance(file_params, dict) else file_params
    return merged


def build_panels(args) -> list[Panel]:
    """Every panel (one for a plain spec) from the file or preset with the flags applied; validated.

    ``sizes = "auto"`` (in the file or as ``--sizes auto``) is resolved into a per-d grid
    before the spec is hashed.
    """
    base, _ = source(args)
    many = isinstance(base, dict) and "panels" in base
    if many:
        top = merge({k: v for k, v in base.items() if k != "panels"}, args, panels=True)
        data = {**top, "panels": base["panels"]}
    else:
        data = merge(base, args)
    from ..spec import panel_mappings

    auto_names = {name for name, _, m in panel_mappings(data) if is_auto(m.get("sizes"))}
    if not auto_names:
        return load_panels(data)
    # validate everything but the sizes first, then resolve the sizes panel by panel
    stripped = _without_auto(data)
    out = []
    from ..adaptive import resolve_auto_sizes

    ray_asked = not args.serial and (args.address or args.workers)
    if ray_asked and args.address:  # the pilot pass joins the cluster: refuse it in one line first
        from ..distributed import check_reachable

        check_reachable(args.address)
    for panel in load_panels(stripped):
        spec = panel.spec
        if panel.name in auto_names or (not many and auto_names):
            extra = {}
            if spec.nested:  # more sizes cost almost nothing; the cap is what X may take in memory
                from ..nested_job import auto_options

                extra = auto_options(spec)
            spec = resolve_auto_sizes(spec, backend="ray" if ray_asked else "serial",
                                      address=args.address, workers=args.workers, **extra)
        out.append(Panel(panel.name, panel.title, spec))
    return out


def _without_auto(data: dict) -> dict:
    """``data`` with every ``sizes = "auto"`` (and the grid it replaces) dropped."""
    def strip(m: dict) -> dict:
        return {k: v for k, v in m.items() if k not in ("sizes", "grid")} if is_auto(m.get("sizes")) else m
    if "panels" not in data:
        return strip(data)
    top = data if not is_auto(data.get("sizes")) else {k: v for k, v in data.items() if k not in ("sizes", "grid")}
    panels = [strip(p) if isinstance(p, dict) else p for p in data["panels"]]
    return {**top, "panels": panels}


def build_spec(args) -> Spec:
    """The single spec of a plain spec file, preset or flags (SpecError for a multi-panel one)."""
    panels = build_panels(args)
    if len(panels) != 1:
        raise SpecError(f"spec: {source(args)[1]} has {len(panels)} panels; run it with mc-hull run")
    return panels[0].spec


def _describe(spec: Spec) -> str:
    params = f" ({', '.join(f'{k}={v}' for k, v in spec.params)})" if spec.params else ""
    return (f"{spec.distribution}{params}, d in {list(spec.dims)}, N in {list(spec.sizes)}, "
            f"{spec.trials} trials per cell ({spec.planned_trials} planned), solver {spec.solver}")


def plan_estimate(spec: Spec, args, job=None):
    """Refuse a plan that cannot run (PlanError); return its estimate, calibrated by a short timing."""
    from .. import plan as planning
    from ..jobs import MonteCarloJob

    if args.workers is not None and args.workers < 1:
        from ..errors import PlanError

        raise PlanError(f"--workers: must be at least 1, got {args.workers}")
    if args.serial and (args.address or args.workers):
        raise SpecError("--serial runs without Ray; drop --address/--workers")
    if args.address and not args.serial:
        from ..distributed import check_reachable

        check_reachable(args.address)  # one line now, not a minute of retries inside ray.init
    if job is None and spec.nested:
        from ..nested_job import NestedJob, check_nested

        check_nested(spec)
        job = NestedJob(spec)
    if spec.measure == "distance":
        from ..trial import check_measure

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
    return ("mc-hull: queries per training set K (cost rule, mc_hull.design: drawing X against a query and "
            f"the queries' correlation; --queries-per-set sets one K): {', '.join(parts)}")


def run_one(spec: Spec, args, backend: str, plan_line: str, *, new_run: bool, pool=None) -> None:
    """Run (or resume) one spec into ``args.out`` on ``backend`` and print its summary line."""
    from ..runner import execute

    print(f"mc-hull: run {spec.run_id}: {_describe(spec)} -> {args.out}", file=sys.stderr)
    print(plan_line, file=sys.stderr)
    if spec.grid:
        print(f"mc-hull: sizes per d: {', '.join(f'd = {d}: {list(ns)}' for d, ns in spec.grid)}",
              file=sys.stderr)
    print(describe_queries(spec), file=sys.stderr)
    if spec.target_halfwidth is not None:
        from ..adaptive import run_adaptive

        report = run_adaptive(spec, args.out, backend=backend, address=args.address, workers=args.workers,
                              new_run=new_run, progress=not args.no_progress)
        if report.capped:
            print(f"mc-hull: adaptive: {len(report.capped)} cells stopped at --max-trials "
                  f"{spec.max_trials} above half-width {spec.target_halfwidth:g}", file=sys.stderr)
    else:
        job = None
        if spec.nested:
            from ..nested_job import NestedJob

            job = NestedJob(spec)
        report = execute(spec, args.out, backend=backend, job=job, address=args.address, workers=args.workers,
                         new_run=new_run, progress=not args.no_progress, pool=pool)
    print(f"mc-hull: run {report.run_id} done in {report.seconds:.1f} s: "
          f"{report.computed_shards} shards computed, {report.skipped_shards} skipped as committed, "
          f"{report.undecided} undecided", file=sys.stderr)


def main(args) -> int:
    from ..runner import open_run

    if args.preset == "paper-digits" and not args.spec:  # a hull-test sweep, not a Monte Carlo spec
        from .hull_test import run_preset

        return run_preset(args)

    from ..runner import bounded_out

    args.out = bounded_out(args.out)
    panels = build_panels(args)  # all validation happens before anything is written
    # refuses, writing nothing, a plan that cannot run
    estimates = [plan_estimate(panel.spec, args) for panel in panels]
    from .. import plan as planning

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
            from . import one_line

            raise StoreError(f"--out: cannot use {args.out}: {one_line(exc)}") from None
    if len(panels) > 1:
        import time

        t0 = time.perf_counter()
        names = "; ".join(f"({p.name}) {p.title or p.spec.distribution}" for p in panels)
        print(f"mc-hull: {source(args)[1]}: {len(panels)} panels, one run each -> {args.out}: {names}",
              file=sys.stderr)
    pool = None
    if len(panels) > 1 and backend == "ray":  # one Ray and one set of actors for every panel
        from ..distributed import Pool

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
        import pyarrow as pa

        print_table(pa.concat_tables(tables), args.format)
    return 0
