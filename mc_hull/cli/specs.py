"""The one way a face assembles a spec: SPEC.toml, --preset, --spec-json or flags, validated once.

``mc-hull run`` and ``mc-hull submit`` register the same spec arguments (:func:`add_spec_arguments`)
and build their panels with :func:`assemble`: the flags are merged into the file's fields, and
``sizes = "auto"`` is resolved inside the one validation of each panel by
:func:`mc_hull.runs.adaptive.auto_sizes` (a nested run's 40 sizes included), so both faces give the
same specs, run ids and rows.
"""

from __future__ import annotations

import json

from ..runs.adaptive import auto_sizes
from ..errors import SpecError
from ..spec import MAX_D, Panel, load_panels, load_preset, load_toml, preset_names, unique_json_keys
from . import texts
from .args import _float, _int

#: Flags naming what a panel is; a multi-panel file or preset keeps its own.
PANEL_FLAGS = {"distribution": "--distribution", "dims": "--dims", "params": "--param"}


def add_spec_arguments(p) -> None:
    """The arguments that say what to run: SPEC.toml, --preset, --spec-json and the spec's fields."""
    p.add_argument("spec", nargs="?", metavar="SPEC.toml",
                   help="experiment spec (TOML; see the README's 'Running experiments'), or a "
                        "multi-panel file with [[panels]] tables")
    p.add_argument("--preset", metavar="NAME",
                   help=f"a built-in spec: {', '.join(preset_names())} (mc_hull/presets/NAME.toml; "
                        "paper-fig1 runs the paper's Fig. 1, three panels into one --out), or "
                        "paper-digits (the sweep of mc-hull hull-test --preset paper-digits)")
    p.add_argument("--spec-json", metavar="JSON", help="the spec as one JSON document (what mc-hull submit "
                   "ships to a Ray job)")
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


def label(args) -> str:
    """Where the spec comes from, for messages: the file, ``preset NAME``, ``--spec-json`` or ``flags``."""
    if args.spec_json:
        return "--spec-json"
    return args.spec or (f"preset {args.preset}" if args.preset else "flags")


def source(args) -> dict:
    """The mapping of SPEC.toml, --preset or --spec-json (empty without any)."""
    for flag, value in (("SPEC.toml", args.spec), ("--preset", args.preset), ("--spec-json", args.spec_json)):
        if value is not None and not value.strip():   # '' is not "no spec": it names nothing
            raise SpecError(f"{flag}: empty")
    if sum(bool(v) for v in (args.spec, args.preset, args.spec_json)) > 1:
        raise SpecError("give one of SPEC.toml, --preset or --spec-json")
    if args.spec_json:
        return _json_spec(args.spec_json)
    if args.spec:
        return load_toml(args.spec)
    if args.preset:
        return load_preset(args.preset)
    return {}


def _json_spec(text: str) -> dict:
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
        tol=args.tol, shard_trials=args.shard_trials, target_halfwidth=args.target_halfwidth,
        max_trials=args.max_trials, nested=args.nested, measure=args.measure)


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


def assemble(args, *, backend: str = "serial", address: str | None = None,
             workers: int | None = None) -> list[Panel]:
    """Every panel (one for a plain spec) of the file, preset, JSON or flags in ``args``, validated once.

    ``sizes = "auto"`` (in the file or as ``--sizes auto``) is resolved inside that validation by
    :func:`mc_hull.runs.adaptive.auto_sizes`; a pilot pass, for distributions without an exact curve,
    runs on ``backend`` (``address``, ``workers``: a Ray address and actors).
    """
    base = source(args)
    if isinstance(base, dict) and "panels" in base:
        top = merge({k: v for k, v in base.items() if k != "panels"}, args, panels=True)
        data = {**top, "panels": base["panels"]}
    else:
        data = merge(base, args)
    return load_panels(data, auto=auto_sizes(backend=backend, address=address, workers=workers))


def is_multi_panel(panels: list[Panel]) -> bool:
    """Whether ``panels`` come from a file with ``[[panels]]`` tables (a plain spec's one panel is unnamed)."""
    return bool(panels[0].name)
