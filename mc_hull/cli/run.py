"""``mc-hull run``: run a spec (file, preset or flags) on embedded Ray or a cluster, then print estimates."""

from __future__ import annotations

import argparse
import sys

from ..errors import SpecError
from ..query import cell_estimates
from ..spec import Spec, load_preset, load_toml, preset_names
from .args import _float, _int
from .query import print_table


def register(sub) -> None:
    p = sub.add_parser("run", help="run a Monte Carlo experiment",
                       description="Run a spec; flags override the spec file or preset.")
    p.add_argument("spec", nargs="?", metavar="SPEC.toml", help="experiment spec (TOML)")
    p.add_argument("--preset", help=f"a built-in spec ({', '.join(preset_names())}), or paper-digits "
                   "(the sweep of mc-hull hull-test --preset paper-digits)")
    p.add_argument("--distribution")
    p.add_argument("--dims", help="comma-separated dimensions, e.g. 2,4,8")
    p.add_argument("--sizes", help="comma-separated training-set sizes, e.g. 10,100,1e3, or 'auto': "
                   "~10 sizes per d around the transition (exact curve, else a pilot pass)")
    p.add_argument("--trials", type=_int("--trials"), help="trials (queries) per cell")
    p.add_argument("--queries-per-set", type=_int("--queries-per-set"),
                   help="queries tested against each training set")
    p.add_argument("--seed", type=_int("--seed"))
    p.add_argument("--solver")
    p.add_argument("--tol", type=_float("--tol"))
    p.add_argument("--shard-trials", type=_int("--shard-trials"), help="target trials per shard")
    p.add_argument("--target-halfwidth", type=_float("--target-halfwidth"), metavar="H",
                   help="add replicates to each cell until its 99%% interval half-width < H")
    p.add_argument("--max-trials", type=_int("--max-trials"),
                   help="cap on trials per cell with --target-halfwidth (default 16 x --trials)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="distribution parameter (repeatable)")
    p.add_argument("--out", default="results", help="results directory or URI (default ./results)")
    p.add_argument("--address", help="Ray address; default: an embedded local Ray")
    p.add_argument("--workers", type=_int("--workers"), help="number of Ray actors")
    p.add_argument("--serial", action="store_true", help="run in this process, without Ray (default "
                   "when the plan's estimated work is under a few seconds)")
    p.add_argument("--force-plan", action="store_true",
                   help="run a plan beyond this machine's limits (shard count, a worker's memory): for clusters")
    p.add_argument("--spec-json", metavar="JSON", help="the spec as one JSON document (what mc-hull submit "
                   "ships to a Ray job)")
    p.add_argument("--new-run", action="store_true",
                   help="allow a spec different from the one already in --out")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
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


def build_spec(args) -> Spec:
    """The spec from the file or preset, with flags applied; validated."""
    if sum(bool(v) for v in (args.spec, args.preset, getattr(args, "spec_json", None))) > 1:
        raise SpecError("give one of SPEC.toml, --preset or --spec-json")
    if getattr(args, "spec_json", None):
        base = _json_spec(args.spec_json)
    else:
        base = load_toml(args.spec) if args.spec else load_preset(args.preset) if args.preset else {}
    auto = isinstance(args.sizes, str) and args.sizes.strip().lower() == "auto"
    flags = dict(
        distribution=args.distribution, dims=args.dims, sizes=None if auto else args.sizes,
        trials=args.trials, queries_per_set=args.queries_per_set, seed=args.seed, solver=args.solver,
        tol=args.tol, shard_trials=args.shard_trials,
        target_halfwidth=getattr(args, "target_halfwidth", None),
        max_trials=getattr(args, "max_trials", None))
    # Flags are merged into the file's fields before anything is validated, so a file that is
    # only valid with the flags applied (e.g. subspace k=3 with --dims 4,8) is accepted.
    merged = {**base, **{k: v for k, v in flags.items() if v is not None}}
    if flags["sizes"] is not None:
        merged.pop("grid", None)  # explicit sizes replace a per-d grid
    params = _params(args.param)  # each --param overrides one parameter of the file or preset
    if params is not None:
        file_params = base.get("params", {})
        merged["params"] = {**file_params, **params} if isinstance(file_params, dict) else file_params
    spec = Spec.from_dict(merged)
    if auto:  # resolved into spec.grid before the spec is hashed
        from ..adaptive import resolve_auto_sizes

        ray_asked = not args.serial and (args.address or args.workers)
        spec = resolve_auto_sizes(spec, backend="ray" if ray_asked else "serial",
                                  address=args.address, workers=args.workers)
    return spec


def _json_spec(text: str) -> dict:
    import json

    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SpecError(f"--spec-json: not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError("--spec-json: must be a JSON object of spec fields")
    return data


def plan_and_backend(spec: Spec, args, job=None):
    """Refuse a plan that cannot run (PlanError); return the backend name and the plan line to print."""
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
    est = (job or MonteCarloJob(spec)).estimate()
    planning.check(est, force=args.force_plan)
    backend, why = planning.choose_backend(est.cpu_seconds, serial=args.serial, address=args.address,
                                           workers=args.workers)
    extra = ""
    if spec.target_halfwidth is not None:
        extra = f" (first round; adaptive up to {spec.max_trials:,} trials per cell)"
    return backend, f"mc-hull: plan: {est.line()}{extra}; backend {backend} ({why})"


def main(args) -> int:
    from ..runner import execute, open_run

    if args.preset == "paper-digits" and not args.spec:  # a hull-test sweep, not a Monte Carlo spec
        from .hull_test import run_preset

        return run_preset(args)

    from ..runner import bounded_out

    args.out = bounded_out(args.out)
    spec = build_spec(args)  # all validation happens before anything is written
    backend, plan_line = plan_and_backend(spec, args)  # refuses, writing nothing, a plan that cannot run
    # An unusable --out or a changed spec is refused in one line, before the header: the run is
    # claimed here (atomically), so of two writers started together the loser prints only its refusal.
    open_run(spec, args.out, new_run=args.new_run)
    print(f"mc-hull: run {spec.run_id}: {spec.distribution}, d in {list(spec.dims)}, "
          f"N in {list(spec.sizes)}, {spec.trials} trials per cell "
          f"({spec.planned_trials} planned), solver {spec.solver} -> {args.out}", file=sys.stderr)
    print(plan_line, file=sys.stderr)
    if spec.grid:
        print(f"mc-hull: sizes per d: {', '.join(f'd = {d}: {list(ns)}' for d, ns in spec.grid)}",
              file=sys.stderr)
    if spec.target_halfwidth is not None:
        from ..adaptive import run_adaptive

        report = run_adaptive(spec, args.out, backend=backend,
                              address=args.address, workers=args.workers, new_run=args.new_run,
                              progress=not args.no_progress)
        if report.capped:
            print(f"mc-hull: adaptive: {len(report.capped)} cells stopped at --max-trials "
                  f"{spec.max_trials} above half-width {spec.target_halfwidth:g}", file=sys.stderr)
    else:
        report = execute(spec, args.out, backend=backend,
                         address=args.address, workers=args.workers, new_run=args.new_run,
                         progress=not args.no_progress)
    print(f"mc-hull: run {report.run_id} done in {report.seconds:.1f} s: "
          f"{report.computed_shards} shards computed, {report.skipped_shards} skipped as committed, "
          f"{report.undecided} undecided", file=sys.stderr)
    print_table(cell_estimates(args.out, run_id=spec.run_id), args.format)
    return 0
