"""``mc-hull plot DIR --out fig.png|svg|pdf``: p̂ against N and N½ against d as a static figure."""

from __future__ import annotations

import sys
from pathlib import Path

from ..query import views
from ..errors import InputError, SpecError
from ..spec import MAX_D, parse_dims
from . import texts
from .args import _location
from .notes import reason_from_cells
from .query import check_exists, check_nonempty, check_run_id


FORMATS = (".png", ".svg", ".pdf")


def register(sub) -> None:
    p = sub.add_parser("plot", help="draw p(d, N) against N and N½ against d to a PNG, SVG or PDF file",
                       description="Static figure: p̂ against N (log) per d with 99% intervals, exact curves "
                                   "and labelled 2^(d/2)/d rules; N½ against d (log). A directory holding "
                                   "several distributions (e.g. the paper-fig1 preset) gives one p̂ panel "
                                   "per distribution unless --distribution picks one.")
    p.add_argument("out", metavar="DIR", type=_location("DIR"), help="results directory or URI")
    p.add_argument("--out", dest="figure", required=True, metavar="FIG",
                   help="output file; its suffix picks the format: .png, .svg or .pdf")
    p.add_argument("--distribution", metavar="NAME",
                   help="draw only this distribution (one of those in DIR; default: every distribution "
                        "in DIR, one panel each)")
    p.add_argument("--dims", metavar="DIMS",
                   help="dimensions to draw: a list 2,4,8 or a range 2..12 (default: all)")
    p.add_argument("--run", dest="run_id", metavar="RUN_ID", help=texts.RUN_ID)
    p.add_argument("--dimension", choices=list(views.DIMENSIONS), default="ambient",
                   help="dimension that colours the curves and is the x axis of N½: ambient d (default), "
                        "intrinsic (of the data's manifold) or affine (of the smallest affine subspace)")
    p.add_argument("--dpi", type=_dpi, default=150, metavar="DPI",
                   help="resolution of a PNG, in [10, 2400] (default 150)")
    p.set_defaults(func=main)


def _dpi(text: str) -> int:
    import argparse

    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer in [10, 2400], got {text!r}") from None


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
    if text is None:
        return []

    if not text.strip():
        raise InputError("--dims: empty (leave it out to plot every d)")
    try:
        dims = list(parse_dims(text))
    except SpecError as exc:
        raise InputError(f"--{exc}") from None
    bad = [d for d in dims if not 1 <= d <= MAX_D]
    if bad:
        raise InputError(f"--dims: must be in [1, {MAX_D}], got {bad[0]}")
    return dims


def main(args) -> int:
    fig_path = check_figure_path(args.figure)
    if not 10 <= args.dpi <= 2400:
        raise InputError(f"--dpi: must be in [10, 2400], got {args.dpi}")
    dims = _dims(args.dims)
    check_exists(args.out)
    check_run_id(args.out, args.run_id)
    cells = views.cell_table(args.out, args.run_id)
    check_nonempty(cells, args.out, args.run_id)
    present = sorted(set(cells["distribution"].to_pylist()), key=lambda n: (n != "gaussian", n))
    if args.distribution is not None and args.distribution not in present:
        raise InputError(f"--distribution: {args.distribution!r} not in {args.out}; present: {', '.join(present)}")
    chosen = [args.distribution] if args.distribution else present
    groups = []
    for dist in chosen:
        mine = views.select_cells(cells, views.Filters(distributions=[dist], dims=dims))
        if mine.num_rows:
            groups.append((dist, views.by_dimension(mine, args.dimension)))
    if not groups:
        raise InputError(f"--dims: none of {dims} present for {', '.join(chosen)} in {args.out}")
    fitted = views.fitted_n_half(args.out, args.run_id, cells)
    if len(groups) == 1:
        figure = draw(groups[0][1], groups[0][0], fitted=fitted, which=args.dimension)
    else:
        figure = draw_panels(groups, fitted=fitted, which=args.dimension)
    figure.savefig(fig_path, dpi=args.dpi, bbox_inches="tight")
    print(f"mc-hull: wrote {fig_path}", file=sys.stderr)
    return 0


def _gid(row: dict) -> str:
    """``d8`` for a curve without parameters, ``k=3-d8`` with them (SVG ids name the series)."""
    return f"{row['params'].replace(', ', '-')}-d{row['d']}" if row.get("params") else f"d{row['d']}"


def dim_colours(dims) -> dict:
    """A distinct colour per dimension: matplotlib's ten-colour cycle up to 10, a sampled
    perceptual scale (viridis, dark to light) beyond, so no two dimensions share a colour."""
    import matplotlib

    dims = sorted(set(dims))
    if len(dims) <= 10:
        cycle = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
        return {dim: cycle[i % len(cycle)] for i, dim in enumerate(dims)}
    cmap = matplotlib.colormaps["viridis"]
    return {dim: matplotlib.colors.to_hex(cmap(0.92 * i / (len(dims) - 1))) for i, dim in enumerate(dims)}


def rule_groups(ds, spread: float = 1.3) -> list[list[int]]:
    """Dimensions grouped so that their 2^(d/2)/d rules, within a factor ``spread`` of the group's
    first, are drawn as one labelled rule (at d <= 16 they all fall between 0.94 and 16)."""
    groups: list[list[int]] = []
    for d in sorted(set(ds), key=lambda d: (2 ** (d / 2) / d, d)):
        x = 2 ** (d / 2) / d
        if groups and x <= spread * (2 ** (groups[-1][0] / 2) / groups[-1][0]):
            groups[-1].append(d)
        else:
            groups.append([d])
    return groups


def _dlist(ds) -> str:
    ds = sorted(ds)
    if len(ds) > 2 and ds == list(range(ds[0], ds[-1] + 1)):
        return f"{ds[0]}–{ds[-1]}"
    return ", ".join(map(str, ds))


def _medians(cells, fitted) -> dict:
    """curve -> its N½ row read as the median of T (nested curves only)."""
    if fitted is None or not fitted.num_rows:
        return {}
    return {r["curve"]: r for r in views.n_half_table(cells, fitted).to_pylist()
            if r["source"] == views.MEDIAN_T_SOURCE}


def _p_panel(ax, cells, distribution: str, which: str, colour: dict, *, prefix: str = "", title: str = "",
             medians: dict | None = None):
    """p̂ against N on ``ax``: one line per curve with its interval band, exact curves, labelled
    2^(d/2)/d rules and the line at 1/2; for a nested curve (``medians``: curve -> its
    :func:`_medians` row) N½ = the median of T marked on the line at 1/2 with its bracket.
    Returns whether an exact curve was drawn."""
    import numpy as np

    rows = cells.to_pylist()
    n_lo, n_hi = min(r["n"] for r in rows), max(r["n"] for r in rows)
    exact = views.exact_curves(cells).to_pylist()
    dim_of = {r["curve"]: r["dim"] for r in rows}
    label = "d" if which == "ambient" else f"{which} dim"
    several = len(dim_of) > len(set(dim_of.values()))  # curves sharing a dimension: name them
    for curve in dim_of:
        mine = [r for r in rows if r["curve"] == curve]
        col, gid = colour[dim_of[curve]], prefix + _gid(mine[0])
        n = np.array([r["n"] for r in mine], dtype=float)
        p, lo, hi = (np.array([np.nan if r[k] is None else r[k] for r in mine]) for k in ("p_hat", "ci_low", "ci_high"))
        ax.fill_between(n, lo, hi, color=col, alpha=0.18, linewidth=0, gid=f"ci-{gid}")
        name = f"{label} = {dim_of[curve]}" + (f" ({curve})" if several or which != "ambient" else "")
        ax.plot(n, p, "o-", color=col, ms=4, label=name, gid=f"monte-carlo-{gid}")
        near = [np.nan if r.get("p_near_10pct") is None else r["p_near_10pct"] for r in mine]
        if not np.all(np.isnan(near)):   # a --measure distance run: P(distance <= 0.1 nn) beside p
            ax.plot(n, near, "^-.", color=col, ms=3, lw=1.0, gid=f"near-10pct-{gid}")
        med = (medians or {}).get(curve)
        if med is not None:   # nested: N½ read off the median of T, its bracket along p = 1/2
            lo_b = med["n_half_low"] or n_lo
            hi_b = med["n_half_high"] or n_hi
            at = med["n_half"]
            ax.plot([lo_b, hi_b], [0.5, 0.5], "-", color=col, lw=3.5, alpha=0.55, solid_capstyle="butt",
                    gid=f"median-t-bracket-{gid}")
            if at is not None:
                ax.plot([at], [0.5], "D", color=col, mec="k", mew=0.6, ms=6, gid=f"median-t-{gid}")
        ex = [e for e in exact if e["curve"] == curve]
        if ex:
            ax.plot([e["n"] for e in ex], [e["p"] for e in ex], "--", color=col, lw=1.2,
                    gid=f"exact-{distribution}-{gid}")
    # the line is a function of the ambient d; rules closer than a factor 1.3 share one labelled rule
    for group in rule_groups({r["d"] for r in rows}):
        xs = [2 ** (d / 2) / d for d in group]
        dims_here = {dim_of[r["curve"]] for r in rows if r["d"] in group}
        col = colour[min(dims_here)] if len(dims_here) == 1 else "gray"
        x = float(np.exp(np.mean(np.log(xs))))
        ax.axvline(x, color=col, ls=":", lw=1.2, gid=f"bf-threshold-{prefix}{'-'.join(f'd{d}' for d in group)}")
        ax.text(x, 0.02, f"d = {_dlist(group)} ", rotation=90, va="bottom", ha="right", fontsize=7,
                color=col, transform=ax.get_xaxis_transform())
    ax.axhline(0.5, color="gray", lw=0.8, gid=f"{prefix}p-half")
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("N (training-set size)")
    ax.set_ylabel("p = P(x ∈ conv(X₁…X_N))")
    ax.set_title(title or f"p̂ against N ({distribution}), 99% intervals")
    return bool(exact)


def _has_near(cells) -> bool:
    """Whether a cell table carries a distance run's P(distance <= 0.1 nn)."""
    return "p_near_10pct" in cells.column_names and any(v is not None for v in cells["p_near_10pct"].to_pylist())


def _style_handles(distribution: str | None, exact: bool, near: bool = False, median: bool = False):
    from matplotlib.lines import Line2D

    style = [Line2D([], [], color="k", marker="o", ms=4, label=views.MC_SERIES)]
    if median:
        style.append(Line2D([], [], color="k", marker="D", ms=5, lw=3.5, alpha=0.6, label=views.MEDIAN_T_SERIES))
    if near:
        style.append(Line2D([], [], color="k", marker="^", ms=3, ls="-.", lw=1.0,
                            label="P(distance to the hull <= 0.1 nn)"))
    if exact:
        what = f" ({distribution})" if distribution else ""
        style.append(Line2D([], [], color="k", ls="--", label=f"{views.EXACT_SERIES}{what}"))
    return style + [Line2D([], [], color="k", ls=":", label=views.BF_SERIES),
                    Line2D([], [], color="gray", lw=0.8, label=views.HALF_SERIES)]


def _no_n_half_note(n_half: list[dict], cells: list[dict]) -> str:
    """One line per reason, naming the dimensions without an empirical N½."""
    by_reason: dict[str, list[str]] = {}
    for r in n_half:
        if r["n_half"] is None:
            why = reason_from_cells([c for c in cells if c["curve"] == r["curve"]])
            key = f"{r['distribution']}" + (f" ({r['params']})" if r.get("params") else "")
            by_reason.setdefault(why, []).append((key, r["d"]))
    lines = []
    for why, items in by_reason.items():
        names = sorted({k for k, _ in items})
        lines.append(f"no N½ for {', '.join(names)} d = {_dlist([d for _, d in items])}: {why}")
    return "\n".join(lines)


_FAMILY_COLOURS = ["#4c78a8", "#72b7b2", "#54a24b", "#b279a2", "#f58518", "#e45756", "#9d755d"]


def _slug(label: str) -> str:
    """An SVG id fragment for a law label: ``student-t df=3`` -> ``student-t-df3``."""
    return "-".join(label.replace("=", "").replace("^", "").split()).lower()


def _n_half_panel(ax, groups, fitted, which: str, reference: str | None):
    """N½ against the chosen dimension: empirical points (one colour per group when several),
    exact curves, 2^(d/2)/d, and a note for each dimension without an empirical N½."""
    import numpy as np

    all_dims = [d for _, cells in groups for d in cells["dim"].to_pylist()]
    lo_d, hi_d = min(all_dims), max(all_dims)
    bf = views.bf_curve(lo_d, hi_d).to_pydict()
    ax.plot(bf["d"], bf["n"], ":", color="gray", label=views.BF_SERIES, gid="bf-threshold")
    import pyarrow as pa

    # the cells' own reference (e.g. the Gaussian of R^k for a k-dimensional subspace), black
    ref = views.reference_n_half(pa.concat_tables([c for _, c in groups], promote_options="default"), lo_d, hi_d)
    drawn = set()
    for series in dict.fromkeys(ref["series"].to_pylist()):
        rows = [r for r in ref.to_pylist() if r["series"] == series]
        label = series[len(views.EXACT_HALF_SERIES) + 2:-1]
        drawn.add(label)
        ax.plot([r["d"] for r in rows], [r["n"] for r in rows], "--", color="k", marker="x" if len(rows) < 3 else None,
                label=series, gid=f"exact-n-half-{_slug(label)}")
    # the family comparison (README table), thin
    fam = views.family_n_half(lo_d, hi_d, skip=tuple(drawn))
    for i, series in enumerate(dict.fromkeys(fam["series"].to_pylist())):
        rows = [r for r in fam.to_pylist() if r["series"] == series]
        label = series[len(views.EXACT_HALF_SERIES) + 2:-1]
        ax.plot([r["d"] for r in rows], [r["n"] for r in rows], "-.", lw=0.9, color=_FAMILY_COLOURS[i % len(_FAMILY_COLOURS)],
                label=series, gid=f"exact-n-half-{_slug(label)}")
    # the uniform cube measured (no exact curve; README table), unless the cube's own points are drawn
    if all(dist != "cube" for dist, _ in groups):
        cube = views.family_measured_n_half(lo_d, hi_d).to_pylist()
        if cube:
            est = np.array([r["n"] for r in cube])
            err = np.array([[r["n"] - r["n_low"] if r["n_low"] is not None else 0 for r in cube],
                            [r["n_high"] - r["n"] if r["n_high"] is not None else 0 for r in cube]])
            ax.errorbar([r["d"] for r in cube], est, yerr=np.clip(err, 0, None), fmt="d", ms=4, lw=0.9,
                        color="#6a3d9a", capsize=2, label=views.CUBE_SERIES, gid="measured-n-half-cube")
    markers = "osD^vP"
    palette = ["#e4572e", "#2e86ab", "#7a9e3a", "#a23b72", "#f1a208", "#3b1f2b"]
    any_point, notes = False, []
    for i, (dist, cells) in enumerate(groups):
        n_half = views.n_half_table(cells, fitted).to_pylist()
        notes.append(_no_n_half_note(n_half, cells.to_pylist()))
        dim_of = {r["curve"]: r["dim"] for r in cells.to_pylist()}
        d_arr = np.array([dim_of.get(r.get("curve"), r["d"]) for r in n_half], dtype=float)
        est = np.array([np.nan if r["n_half"] is None else r["n_half"] for r in n_half], dtype=float)
        if not np.isfinite(est).any():
            continue
        any_point = True
        low = np.array([np.nan if r["n_half_low"] is None else r["n_half_low"] for r in n_half], dtype=float)
        high = np.array([np.nan if r["n_half_high"] is None else r["n_half_high"] for r in n_half], dtype=float)
        err = np.vstack([np.where(np.isfinite(low), est - low, 0), np.where(np.isfinite(high), high - est, 0)])
        median = np.array([r["source"] == views.MEDIAN_T_SOURCE for r in n_half])
        tail = f" ({dist})" if len(groups) > 1 else ""
        for which_rows, series, name, fmt in ((~median, views.EMPIRICAL_HALF_SERIES, "empirical-n-half",
                                               markers[i % 6]),
                                              (median, views.MEDIAN_T_SERIES, "median-t-n-half", "D")):
            ok = np.isfinite(est) & which_rows
            if ok.any():
                ax.errorbar(d_arr[ok], est[ok], yerr=np.clip(err[:, ok], 0, None), fmt=fmt,
                            color=palette[i % 6], capsize=3, label=series + tail,
                            gid=name + (f"-{dist}" if len(groups) > 1 else ""))
    if not any_point:
        ax.text(0.5, 0.5, "no measured curve crosses 1/2 yet", transform=ax.transAxes, ha="center")
    note = "\n".join(n for n in notes if n)
    if note:
        import textwrap

        wrapped = "\n".join(textwrap.fill(line, 90) for line in note.splitlines())
        ax.text(0.0, -0.16, wrapped, transform=ax.transAxes, ha="left", va="top", fontsize=7,
                color="#555555", gid="no-n-half-note")
    ax.set_yscale("log")
    ax.set_xlabel("d" if which == "ambient" else f"{which} dimension")
    ax.set_ylabel("N½: p(d, N½) = 1/2")
    ax.set_title("N½ against d" if which == "ambient" else f"N½ against the {which} dimension")
    ax.legend(fontsize=8, loc="upper left").set_gid("legend-n-half")


def _setup():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams["svg.fonttype"] = "none"  # keep text as text in SVG
    return plt


def draw(cells, distribution: str, fitted=None, which: str = "ambient"):
    """A matplotlib Figure (Agg) with the two panels; artists carry SVG ids naming their series.

    ``cells`` come from :func:`mc_hull.query.views.by_dimension`: one line per ``curve``
    (parameters and ambient d), coloured by ``dim``, the chosen dimension.
    """
    plt = _setup()
    if "dim" not in cells.column_names:
        cells = views.by_dimension(cells, which)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 5.2), constrained_layout=True)
    colour = dim_colours(cells["dim"].to_pylist())
    medians = _medians(cells, fitted)
    exact = _p_panel(ax1, cells, distribution, which, colour, medians=medians)
    leg = ax1.legend(handles=ax1.get_legend_handles_labels()[0] + _style_handles(distribution, exact,
                                                                                 _has_near(cells), bool(medians)),
                     fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    leg.set_gid("legend-p")
    _n_half_panel(ax2, [(distribution, cells)], fitted, which, views.exact_reference(cells) or distribution)
    return fig


def draw_panels(groups, fitted=None, which: str = "ambient"):
    """One p̂ panel per (distribution, cells) in ``groups``, then N½ against d for all of them.

    Colours follow the chosen dimension across every panel, so d = 5 has one colour throughout;
    SVG ids are prefixed with the distribution (``monte-carlo-manifold-d3``).
    """
    plt = _setup()
    n = len(groups) + 1
    ncols = 2 if n == 4 else min(n, 3)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 4.6 * nrows), constrained_layout=True,
                             squeeze=False)
    flat = list(axes.ravel())
    colour = dim_colours([d for _, cells in groups for d in cells["dim"].to_pylist()])
    any_exact = any_median = False
    for i, (dist, cells) in enumerate(groups):
        params = sorted({p for p in cells["params"].to_pylist() if p})
        what = dist + (f" ({'; '.join(params)})" if params else "")
        medians = _medians(cells, fitted)
        any_median |= bool(medians)
        any_exact |= _p_panel(flat[i], cells, dist, which, colour, prefix=f"{dist}-",
                              title=f"({chr(ord('a') + i)}) {what}", medians=medians)
        flat[i].legend(fontsize=7, loc="upper left").set_gid(f"legend-p-{dist}")
    flat[len(groups) - 1].legend(
        handles=flat[len(groups) - 1].get_legend_handles_labels()[0] + _style_handles(
            None, any_exact, any(_has_near(cells) for _, cells in groups), any_median),
        fontsize=7, loc="upper left").set_gid(f"legend-p-{groups[-1][0]}")
    _n_half_panel(flat[len(groups)], groups, fitted, which, None)
    for ax in flat[n:]:
        ax.set_visible(False)
    fig.suptitle("p̂ against N with 99% intervals, per distribution; N½ against d", fontsize=11)
    return fig
