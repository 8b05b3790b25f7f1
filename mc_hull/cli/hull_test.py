"""``mc-hull hull-test``: what fraction of a test set lies inside its training set's convex hull."""

from __future__ import annotations

import sys

from ..runs.datasets import DATASETS, ArrayData, digits_split, load_array, parse_reduce
from ..errors import InputError
from ..runs.filesource import is_dataset, open_source
from ..runs.hulltest import PRESETS, paper_digits, run_hull_test
from ..jobs.hulltest import HullTestSpec
from ..store import sweep_schema
from . import texts
from .args import _float, _int, _location, _seed
from .format import FORMATS, render

def register(sub) -> None:
    p = sub.add_parser(
        "hull-test", help="test every test point against the convex hull of a training set",
        description="Load TRAIN and TEST arrays (.npy, .npz[:NAME], Parquet/Arrow/Feather[:COL,COL]), "
                    "reduce them (fitted on TRAIN only), decide every test point with a certificate and "
                    "print the fraction inside with a 99% Wilson interval; per-point rows go to "
                    "DIR/_hulltest as Parquet. Bad input is one line and exit status 2.")
    p.add_argument("--train", metavar="FILE[:NAME]|DIR|URI",
                   help="training samples, one per row: .npy, .npz[:NAME], Parquet/Arrow/Feather[:COL,COL] "
                        "(real numbers; complex, NaN or inf values are refused); or a sharded dataset: a "
                        "directory or URI (s3://, gs://, ...) of .npy shards (rows in file-name order) or of "
                        "Parquet files (one list column of rows, or numeric columns); a training set larger "
                        "than MC_HULL_MEMORY_BUDGET is streamed from its files")
    p.add_argument("--test", metavar="FILE[:NAME]|DIR|URI",
                   help="test samples, one per row, same formats as --train (always loaded)")
    p.add_argument("--dataset", metavar="NAME", help="a built-in data set instead of --train/--test; one of: "
                   "digits (scikit-learn's 8x8 digits, a fixed split by --seed)")
    p.add_argument("--preset", metavar="NAME", help="a built-in sweep; one of: paper-digits (fraction inside "
                   "against kept dimensions for centre crops, subsampling and PCA of the digits)")
    p.add_argument("--reduce", default="none", metavar="SPEC",
                   help="dimension reduction fitted on TRAIN: none | pca:K | crop:K | subsample:K | "
                        "random-projection:K (default none)")
    p.add_argument("--image-shape", metavar="H,W[,C]", help="image shape of flat rows for crop/subsample "
                   "(default: the array's own shape, else a square)")
    p.add_argument("--out", default="results", metavar="DIR", type=_location("--out"),
                   help="output directory or URI (default ./results)")
    p.add_argument("--solver", default="auto", metavar="NAME", help=texts.solver_help())
    p.add_argument("--tol", type=_float("--tol"), default=1e-9, metavar="T", help=texts.tol_help())
    p.add_argument("--seed", type=_seed("--seed"), default=0, metavar="S",
                   help="seed of random-projection and of the digits split (integer >= 0, default 0)")
    p.add_argument("--address", help="Ray address; default: embedded Ray for large test sets, "
                                     "in-process otherwise")
    p.add_argument("--workers", type=_int("--workers"), metavar="W", help="Ray workers (implies Ray)")
    p.add_argument("--serial", action="store_true", help="run in this process, without Ray")
    p.add_argument("--measure", choices=("membership", "distance"), default="membership",
                   help="distance: also record each test point's certified Euclidean distance to the hull "
                   "and to the nearest training point, and print quantiles of distance/nn")
    p.add_argument("--format", choices=FORMATS, default="table", help=texts.FORMAT)
    p.set_defaults(func=main)


def parse_image_shape(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise InputError(f"--image-shape: expected H,W or H,W,C with positive integers, got {text!r}")
    return shape


def backend(args) -> str:
    return "serial" if args.serial else "auto"


def hull_test_spec(args):
    """The frozen :class:`~mc_hull.jobs.hulltest.HullTestSpec` of the flags (seed, solver, tol, measure), validated once.

    ``mc-hull run --preset paper-digits`` leaves unset flags as None: they take the defaults.
    """
    return HullTestSpec(seed=args.seed or 0, solver=args.solver or "auto",
                        tol=1e-9 if args.tol is None else args.tol,
                        measure=getattr(args, "measure", None) or "membership")


def options(args) -> dict:
    """Where a single test or a sweep runs: backend, address, workers (checked)."""
    if args.serial and (args.address or args.workers):
        raise InputError("--serial runs without Ray; drop --address/--workers")
    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers: must be at least 1, got {args.workers}")
    if args.address and not args.serial:
        from ..distributed.pool import check_reachable

        check_reachable(args.address)
    return dict(backend=backend(args), address=args.address, workers=args.workers)


def run_preset(args) -> int:
    """``--preset paper-digits`` (also reached from ``mc-hull run --preset paper-digits``)."""
    if args.preset not in PRESETS:
        raise InputError(f"--preset: unknown preset {args.preset!r}; valid: {', '.join(PRESETS)}")
    print(f"mc-hull: preset {args.preset}: digits, centre crops, subsampling and PCA -> {args.out}",
          file=sys.stderr)
    spec = hull_test_spec(args)
    table, sweep_id, seconds = paper_digits(args.out, spec, **options(args))
    print(render(table.drop_columns(["seconds", "test_id"]), args.format))
    print(f"mc-hull: sweep {sweep_id}: {table.num_rows} hull tests in {seconds:.1f} s", file=sys.stderr)
    return 0


def load_data(text: str, name: str):
    """A sharded dataset (a directory or URI: :func:`mc_hull.runs.filesource.open_source`) or one array file."""
    return open_source(text, name) if is_dataset(text) else load_array(text, name)


def load_inputs(args):
    if args.dataset is not None:
        if args.train or args.test:
            raise InputError("give either --dataset or --train/--test, not both")
        if args.dataset not in DATASETS:
            raise InputError(f"--dataset: unknown data set {args.dataset!r}; valid: {', '.join(DATASETS)}")
        return digits_split(args.seed)
    if not args.train or not args.test:
        raise InputError("give --train FILE and --test FILE (or --dataset digits, or --preset paper-digits)")
    return load_data(args.train, "--train"), load_data(args.test, "--test")


def main(args) -> int:
    from dataclasses import replace


    if args.preset is not None:
        if args.train or args.test or args.dataset or args.reduce != "none":
            raise InputError("--preset runs its own data and reductions; drop --train/--test/--dataset/--reduce")
        return run_preset(args)
    reduction = parse_reduce(args.reduce)
    shape = parse_image_shape(args.image_shape)
    spec = hull_test_spec(args)
    opts = options(args)
    train, test = load_inputs(args)
    if shape is not None:
        if not (isinstance(train, ArrayData) and isinstance(test, ArrayData)):
            raise InputError("--image-shape applies to array files; a sharded dataset has flat rows")
        train, test = replace(train, image_shape=shape), replace(test, image_shape=shape)
    res = run_hull_test(train, test, reduction, args.out, spec, **opts)
    import pyarrow as pa

    print(f"mc-hull: hull-test {res.test_id}: {res.n_test} test points against {res.n_train} training "
          f"points in {res.dims} dims ({res.reduction}), {res.computed_shards} shards computed, "
          f"{res.skipped_shards} skipped as committed ({res.backend}), {res.seconds:.1f} s", file=sys.stderr)
    schema = sweep_schema(spec.measure)
    table = pa.Table.from_pylist([res.row()], schema=schema).drop_columns(["seconds"])
    print(render(table, args.format))
    if args.format == "table":
        print(f"# inside: {res.inside} of {res.n_test - res.undecided} decided test points, fraction "
              f"{res.fraction:.4f}, 99% Wilson interval [{res.ci_low:.4f}, {res.ci_high:.4f}]; "
              f"{res.undecided} undecided")
        if res.distance is not None:
            q = res.distance
            print(f"# distance/nn over {q['outside_measured']} outside points: 10% {q['dist_nn_q10']:.4g}, "
                  f"25% {q['dist_nn_q25']:.4g}, median {q['dist_nn_q50']:.4g}, 75% {q['dist_nn_q75']:.4g}, "
                  f"90% {q['dist_nn_q90']:.4g}; within 0.01 nn: {q['p_near_1pct']:.4f}, "
                  f"within 0.1 nn: {q['p_near_10pct']:.4f} (inside points count as distance 0)")
    return 0
