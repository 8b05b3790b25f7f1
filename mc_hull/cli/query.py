"""``mc-hull query DIR``: per-cell estimates with intervals, 2^(d/2)/d and exact values."""

from __future__ import annotations

import sys

from ..errors import StoreError
from ..query import INTERVAL_NOTE, agreement, cell_estimates
from ..store import probe
from .format import FORMATS, render


def register(sub) -> None:
    p = sub.add_parser("query", help="estimate p(d, N) per cell from a results directory",
                       description="One row per (distribution, d, n, params) with a 99%% interval; "
                                   "d_intrinsic and d_affine beside the ambient d.")
    p.add_argument("out", metavar="DIR", help="results directory or URI")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--run", dest="run_id", help="only this run id")
    p.add_argument("--thresholds", action="store_true",
                   help="instead of cells: the empirical 50%% point N_half per (distribution, d) with "
                        "a 99%% interval, beside the exact N_half and 2^(d/2)/d")
    p.set_defaults(func=main)


def check_exists(out: str) -> None:
    """Raise StoreError unless ``out`` is an existing results location."""
    kind = probe(out)
    if kind == "missing":
        raise StoreError(f"DIR: no such results directory: {out}")
    if kind != "directory":
        raise StoreError(f"DIR: not a directory: {out}")


def main(args) -> int:
    check_exists(args.out)
    if args.thresholds:
        from ..query import THRESHOLDS_NOTE, thresholds

        table = thresholds(args.out, run_id=args.run_id)
        if table.num_rows == 0:
            print("no results yet: the directory holds no shard files", file=sys.stderr)
            return 0
        print(render(table, args.format))
        if args.format == "table":
            print(f"# {THRESHOLDS_NOTE}")
        return 0
    table = cell_estimates(args.out, run_id=args.run_id)
    print_table(table, args.format)
    return 0


def print_table(table, fmt: str = "table", file=None) -> None:
    """Print cell estimates; with the text format add the interval note and agreement line."""
    file = file or sys.stdout
    if table.num_rows == 0:
        print("no results yet: the directory holds no shard files", file=sys.stderr)
        return
    print(render(table, fmt), file=file)
    if fmt == "table":
        print(f"# {INTERVAL_NOTE}", file=file)
        cells, outside = agreement(table)
        if cells:
            print(f"# exact agreement: {outside} of {cells} cells with an exact curve lie outside "
                  f"their 99% interval", file=file)
