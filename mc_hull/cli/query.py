"""``mc-hull query DIR``: per-cell estimates with intervals, 2^(d/2)/d and exact values."""

from __future__ import annotations

import sys

from ..query import views
from ..errors import InputError, StoreError
from ..query import ENTRY_NOTE, INTERVAL_NOTE, agreement, cell_estimates, entry_sizes, thresholds
from ..query.distances import DISTANCE_NOTE
from ..query.status import shortfalls
from ..store import probe
from . import one_line, texts
from .args import _location
from .format import FORMATS, render
from .notes import label, no_n_half_reason, thresholds_notes


def register(sub) -> None:
    p = sub.add_parser("query", help="estimate p(d, N) per cell from a results directory",
                       description="One row per (distribution, d, n, params): trials, inside, undecided, "
                                   "p_hat with a 99% cluster-robust interval, the plain Wilson interval, "
                                   "2^(d/2)/d and the exact p where known; d_intrinsic and d_affine beside "
                                   "the ambient d. Exit status 2 when DIR holds no results; exit status 3 "
                                   "when a cell holds fewer trials than its run planned (a run still going "
                                   "or interrupted): the table is printed, with a note per such cell.")
    p.add_argument("out", metavar="DIR", type=_location("DIR"), help="results directory or URI (s3://bucket/prefix)")
    p.add_argument("--format", choices=FORMATS, default="table", help=texts.FORMAT)
    p.add_argument("--run", dest="run_id", metavar="RUN_ID", help=texts.RUN_ID)
    p.add_argument("--thresholds", action="store_true",
                   help="instead of cells: the empirical 50%% point N_half per (distribution, d) with "
                        "a 99%% interval, beside the exact N_half and 2^(d/2)/d; a d without N_half "
                        "gets a note saying why; for a nested run (--nested) N_half is the median of the "
                        "entry size T with a 99%% bracket, method 'median of T'")
    p.add_argument("--entry-sizes", action="store_true",
                   help="instead of cells: one row per trial of a nested run (mc-hull run --nested), the "
                        "bounds (t_low, t_high] on its entry size T = min{N : x in conv(X_1..X_N)}; "
                        "exit status 2 when DIR (or --run) holds no nested run")
    p.set_defaults(func=main)


def check_exists(out: str) -> None:
    """Raise StoreError unless ``out`` is an existing results location."""
    try:
        kind = probe(out)
    except OSError as exc:  # an object store that cannot be reached, a path that cannot be read

        raise StoreError(f"DIR: cannot read {out}: {one_line(exc)}") from None
    if kind == "missing":
        raise StoreError(f"DIR: no such results directory: {out}")
    if kind != "directory":
        raise StoreError(f"DIR: not a directory: {out}")


def check_run_id(out: str, run_id: str | None) -> None:
    """StoreError (exit 2) naming ``run_id`` and listing the known ones unless ``out`` records it."""
    if run_id is None:
        return

    known = sorted(views.runs(out))
    if run_id not in known:
        listed = ", ".join(known) if known else "none"
        raise StoreError(f"--run: unknown run id {run_id!r} in {out}; known run ids: {listed}")


def check_nonempty(table, out: str, run_id: str | None) -> None:
    """StoreError (exit 2) when ``table`` is empty: name an unknown run id, else say DIR is empty."""
    if table.num_rows:
        return
    if run_id is not None:
        check_run_id(out, run_id)
        raise StoreError(f"--run: run {run_id} has no committed shards yet in {out}")
    raise StoreError(f"DIR: no results yet in {out} (no committed shards); run `mc-hull run --out {out}` first")


def main(args) -> int:
    check_exists(args.out)
    check_run_id(args.out, args.run_id)
    if args.thresholds and args.entry_sizes:
        raise InputError("--thresholds and --entry-sizes: choose one")
    if args.entry_sizes:
        table = entry_sizes(args.out, run_id=args.run_id)
        print(render(table, args.format))
        if args.format == "table":
            print(f"# {ENTRY_NOTE}")
        return 0
    if args.thresholds:
        table = thresholds(args.out, run_id=args.run_id)
        check_nonempty(table, args.out, args.run_id)
        print(render(table, args.format))
        if args.format == "table":
            for note in thresholds_notes(table.to_pylist()):
                print(f"# {note}")
            missing = [r for r in table.to_pylist() if r["n_half"] is None]
            cells = cell_estimates(args.out, run_id=args.run_id).to_pylist() if missing else []
            for row in missing:
                why = no_n_half_reason(row, [c for c in cells if (c["distribution"], c["params"], c["d"]) ==
                                             (row["distribution"], row["params"], row["d"])])
                print(f"# no N_half for {label(row)}: {why}")
        return 0
    table = cell_estimates(args.out, run_id=args.run_id)
    check_nonempty(table, args.out, args.run_id)
    print_table(table, args.format)
    return report_shortfalls(args.out, table, args.run_id, args.format)


#: Exit status of ``mc-hull query`` when a cell holds fewer trials than planned.
INCOMPLETE = 3


def report_shortfalls(out: str, table, run_id: str | None, fmt: str) -> int:
    """Note every cell short of its planned trials; :data:`INCOMPLETE` if any, else 0.

    With the text format one ``# incomplete:`` line per cell follows the table; whatever the
    format, one line on stderr says how many cells are short and how to complete them.
    """
    short = shortfalls(out, table, run_id)
    if not short:
        return 0
    if fmt == "table":
        for row in short:
            params = f" ({row['params']})" if row["params"] else ""
            print(f"# incomplete: {row['distribution']}{params} d = {row['d']}, N = {row['n']}: "
                  f"{row['trials']:,} of {row['planned']:,} planned trials (run {', '.join(row['runs'])})")
    runs = sorted({r for row in short for r in row["runs"]})
    print(f"mc-hull: note: {len(short)} cell(s) hold fewer trials than planned (run {', '.join(runs)} "
          f"not finished); re-run the same `mc-hull run` command with --out {out} to complete them "
          f"(exit status {INCOMPLETE})", file=sys.stderr)
    return INCOMPLETE


def print_table(table, fmt: str = "table", file=None) -> None:
    """Print cell estimates; with the text format add the interval note and agreement line."""
    file = file or sys.stdout
    if table.num_rows == 0:
        print("mc-hull: no results yet: no committed shards", file=sys.stderr)
        return
    print(render(table, fmt), file=file)
    if fmt == "table":
        print(f"# {INTERVAL_NOTE}", file=file)
        if "dist_nn_median" in table.column_names:
            print(f"# {DISTANCE_NOTE}", file=file)
        cells, outside = agreement(table)
        if cells:
            print(f"# exact agreement: {outside} of {cells} cells with an exact curve lie outside "
                  f"their 99% interval", file=file)
