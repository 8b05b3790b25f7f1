"""``mc-hull plot DIR --out fig.png|svg|pdf``: p̂ against N and N½ against d as a static figure."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import InputError, StoreError
from .. import views
from .query import check_exists

FORMATS = (".png", ".svg", ".pdf")


def register(sub) -> None:
    p = sub.add_parser("plot", help="draw p(d, N) against N and N½ against d to a PNG, SVG or PDF file",
                       description="Static figure: p̂ against N (log) per d with 99%% intervals, exact curves "
                                   "and 2^(d/2)/d; N½ against d (log).")
    p.add_argument("out", metavar="DIR", help="results directory or URI")
    p.add_argument("--out", dest="figure", required=True, metavar="FIG",
                   help="output file; its suffix picks the format: .png, .svg or .pdf")
    p.add_argument("--distribution", help="distribution to draw (default: gaussian if present, else the first)")
    p.add_argument("--dims", help="comma-separated dimensions to draw (default: all)")
    p.add_argument("--run", dest="run_id", help="only this run id")
    p.add_argument("--dimension", choices=list(views.DIMENSIONS), default="ambient",
                   help="dimension that colours the curves and is the x axis of N½: ambient d (default), "
                        "intrinsic (of the data's manifold) or affine (of the smallest affine subspace)")
    p.add_argument("--dpi", type=int, default=150, help="resolution of a PNG (default 150)")
    p.set_defaults(func=main)


def check_figure_path(path: str) -> Path:
    """The output path, or InputError for an unknown suffix or a missing directory."""
    fig = Path(path)
    if fig.suffix.lower() not in FORMATS:
        raise InputError(f"--out: unsupported figure format {fig.suffix or '(none)'!r} in {path}; "
                         f"use one of {', '.join(FORMATS)}")
    parent = fig.parent if str(fig.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"--out: directory does not exist: {parent}")
    if fig.is_dir():
        raise InputError(f"--out: is a directory: {path}")
    return fig


def _dims(text: str | None) -> list[int]:
    if not text:
        return []
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--dims: must be comma-separated integers like 2,4,8, got {text!r}") from None


def main(args) -> int:
    fig_path = check_figure_path(args.figure)
    if not 10 <= args.dpi <= 2400:
        raise InputError(f"--dpi: must be in [10, 2400], got {args.dpi}")
    dims = _dims(args.dims)
    check_exists(args.out)
    cells = views.cell_table(args.out, args.run_id)
    if cells.num_rows == 0:
        raise StoreError(f"DIR: no results yet in {args.out} (no shard files)")
    present = sorted(set(cells["distribution"].to_pylist()))
    dist = args.distribution or ("gaussian" if "gaussian" in present else present[0])
    if dist not in present:
        raise InputError(f"--distribution: {dist!r} not in {args.out}; present: {', '.join(present)}")
    cells = views.select_cells(cells, views.Filters(distributions=[dist], dims=dims))
    if cells.num_rows == 0:
        raise InputError(f"--dims: none of {dims} present for {dist} in {args.out}")
    figure = draw(views.by_dimension(cells, args.dimension), dist,
                  fitted=views.fitted_n_half(args.out, args.run_id, cells), which=args.dimension)
    figure.savefig(fig_path, dpi=args.dpi, bbox_inches="tight")
    print(f"mc-hull: wrote {fig_path}", file=sys.stderr)
    return 0


def _gid(row: dict) -> str:
    """``d8`` for a curve without parameters, ``k=3-d8`` with them (SVG ids name the series)."""
    return f"{row['params'].replace(', ', '-')}-d{row['d']}" if row.get("params") else f"d{row['d']}"


def draw(cells, distribution: str, fitted=None, which: str = "ambient"):
    """A matplotlib Figure (Agg) with the two panels; artists carry SVG ids naming their series.

    ``cells`` come from :func:`mc_hull.views.by_dimension`: one line per ``curve``
    (parameters and ambient d), coloured by ``dim``, the chosen dimension.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import numpy as np

    plt.rcParams["svg.fonttype"] = "none"  # keep text as text in SVG
    if "dim" not in cells.column_names:
        cells = views.by_dimension(cells, which)
    rows = cells.to_pylist()
    exact = views.exact_curves(cells).to_pylist()
    n_half = views.n_half_table(cells, fitted).to_pylist()
    dim_of = {r["curve"]: r["dim"] for r in rows}
    dims = sorted(set(dim_of.values()))
    label = "d" if which == "ambient" else f"{which} dim"
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 5.2), constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colour = {dim: colors[i % len(colors)] for i, dim in enumerate(dims)}
    several = len(dim_of) > len(dims)  # curves sharing a dimension: name them in the legend
    for curve in dim_of:
        mine = [r for r in rows if r["curve"] == curve]
        col, gid = colour[dim_of[curve]], _gid(mine[0])
        n = np.array([r["n"] for r in mine], dtype=float)
        p, lo, hi = (np.array([np.nan if r[k] is None else r[k] for r in mine]) for k in ("p_hat", "ci_low", "ci_high"))
        ax1.fill_between(n, lo, hi, color=col, alpha=0.18, linewidth=0, gid=f"ci-{gid}")
        name = f"{label} = {dim_of[curve]}" + (f" ({curve})" if several or which != "ambient" else "")
        ax1.plot(n, p, "o-", color=col, ms=4, label=name, gid=f"monte-carlo-{gid}")
        ex = [e for e in exact if e["curve"] == curve]
        if ex:
            ax1.plot([e["n"] for e in ex], [e["p"] for e in ex], "--", color=col, lw=1.2,
                     gid=f"exact-{distribution}-{gid}")
    for d in sorted({r["d"] for r in rows}):  # the line is a function of the ambient d
        dims_here = {dim_of[r["curve"]] for r in rows if r["d"] == d}
        col = colour[min(dims_here)] if len(dims_here) == 1 else "gray"
        ax1.axvline(float(2 ** (d / 2) / d), color=col, ls=":", lw=1.2, gid=f"bf-threshold-d{d}")
    ax1.axhline(0.5, color="gray", lw=0.8, gid="p-half")
    ax1.set_xscale("log")
    ax1.set_ylim(-0.02, 1.02)
    ax1.set_xlabel("N (training-set size)")
    ax1.set_ylabel("p = P(x ∈ conv(X₁…X_N))")
    ax1.set_title(f"p̂ against N ({distribution}), 99% intervals")
    from matplotlib.lines import Line2D

    style = [Line2D([], [], color="k", marker="o", ms=4, label=views.MC_SERIES)]
    if exact:
        style.append(Line2D([], [], color="k", ls="--", label=f"{views.EXACT_SERIES} ({distribution})"))
    style += [Line2D([], [], color="k", ls=":", label=views.BF_SERIES),
              Line2D([], [], color="gray", lw=0.8, label=views.HALF_SERIES)]
    leg = ax1.legend(handles=ax1.get_legend_handles_labels()[0] + style, fontsize=8, loc="upper left",
                     bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    leg.set_gid("legend-p")

    d_arr = np.array([dim_of.get(r.get("curve"), r["d"]) for r in n_half], dtype=float)
    bf = views.bf_curve(min(dims), max(dims)).to_pydict()
    ax2.plot(bf["d"], bf["n"], ":", color="gray", label=views.BF_SERIES, gid="bf-threshold")
    # Both exact curves, the run's own in black (the Gaussian for a subspace against its affine
    # dimension): where the transition really is, against the line.
    ref = views.exact_reference(cells) or distribution
    for name in dict.fromkeys([ref, "gaussian", "ball"]):
        exact_half = views.exact_n_half_curve(name, min(dims), max(dims)).to_pydict()
        if exact_half["d"]:
            ax2.plot(exact_half["d"], exact_half["n"], "--", color="k" if name == ref else "#4c78a8",
                     label=f"{views.EXACT_HALF_SERIES} ({name})", gid=f"exact-n-half-{name}")
    est = np.array([np.nan if r["n_half"] is None else r["n_half"] for r in n_half], dtype=float)
    if np.isfinite(est).any():
        low = np.array([np.nan if r["n_half_low"] is None else r["n_half_low"] for r in n_half], dtype=float)
        high = np.array([np.nan if r["n_half_high"] is None else r["n_half_high"] for r in n_half], dtype=float)
        err = np.vstack([np.where(np.isfinite(low), est - low, 0), np.where(np.isfinite(high), high - est, 0)])
        ok = np.isfinite(est)
        ax2.errorbar(d_arr[ok], est[ok], yerr=np.clip(err[:, ok], 0, None), fmt="o", color="#e4572e",
                     capsize=3, label=views.EMPIRICAL_HALF_SERIES, gid="empirical-n-half")
    else:
        ax2.text(0.5, 0.5, "no measured curve crosses 1/2 yet", transform=ax2.transAxes, ha="center")
    ax2.set_yscale("log")
    ax2.set_xlabel("d" if which == "ambient" else f"{which} dimension")
    ax2.set_ylabel("N½: p(d, N½) = 1/2")
    ax2.set_title("N½ against d" if which == "ambient" else f"N½ against the {which} dimension")
    ax2.legend(fontsize=8, loc="upper left").set_gid("legend-n-half")
    return fig
