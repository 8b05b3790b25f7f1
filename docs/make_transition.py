"""Where p(d, N) crosses 1/2, family by family: the exact N½ against d = 2..64 beside 2^(d/2)/d.

Writes
  * ``mc_hull/theory/data/n_half_families.csv`` (law, d, N½; empty N½: above the curve's range
    of N), which ``mc_hull.query.views.family_n_half`` (plot's and the dashboard's N½ panels) reads;
  * ``docs/transition-by-family.png``;
  * the README's markdown table on stdout.

The uniform cube has no exact curve: its measured N½, the median of the entry size T with its 99%
bracket, is drawn from ``mc_hull/theory/data/n_half_cube.csv`` (``d,n_half,n_half_low,n_half_high``,
also read by the N½ panels). ``--cube OUT`` (a store written by ``mc-hull run --distribution cube
--dims 2..12 --sizes auto --nested``) rewrites that table from the run first; an OUT that holds no
cube run says so in one line and the shipped table is used.

Run: ``python docs/make_transition.py [--cube OUT]`` (about a minute once the angle tables are
cached; laws outside the shipped table compute theirs first).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from mc_hull import theory
from mc_hull.query.views import FAMILY_LAWS, law_label

ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT / "mc_hull" / "theory" / "data" / "n_half_families.csv"
PNG = ROOT / "docs" / "transition-by-family.png"
DIMS = range(2, 65)
TABLE_DIMS = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
ZOOM_D = 12  # the right panel: d = 2..ZOOM_D, where the cube is measured


def n_half_rows():
    rows = []
    for name, params in FAMILY_LAWS:
        label = law_label(name, params)
        for d in DIMS:
            rows.append((label, d, theory.computed_n_half(name, d, **params)))
    return rows


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def cube_points(out: str | None):
    """[(d, N½, low, high)] of the uniform cube: from the nested run in ``out`` (and written to
    :data:`theory.CUBE_N_HALF_CSV`) when it holds one, else from that shipped table."""
    import sys

    if out is not None:
        rows = []
        if Path(out).exists():
            from mc_hull.query import empirical_n_half

            rows = sorted((r["d"], r["n_half"], r["n_half_low"], r["n_half_high"])
                          for r in empirical_n_half(out) if r["distribution"] == "cube")
        if rows:
            theory.CUBE_N_HALF_CSV.write_text("d,n_half,n_half_low,n_half_high\n" + "".join(
                ",".join([str(d)] + ["" if v is None or not math.isfinite(v) else repr(float(v)) for v in vals]) + "\n"
                for d, *vals in rows))
            return rows
        print(f"make_transition: no cube run in {out}; the cube's N½ from the shipped "
              f"{_rel(theory.CUBE_N_HALF_CSV)}", file=sys.stderr)
    return [(d, *vals) for d, vals in sorted(theory.cube_n_half_table().items())]


def fmt(v):
    if v is None:
        return "—"
    if v < 1e4:
        return f"{v:.3g}" if v < 100 else f"{v:.0f}"
    e = math.floor(math.log10(v))
    return f"{v / 10 ** e:.2f}·10^{e}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cube", help="store of a nested cube run (d = 2..12): rewrites the shipped cube table")
    a = ap.parse_args()
    rows = n_half_rows()
    CSV.write_text("law,d,n_half\n" + "".join(f"{law},{d},{'' if v is None else repr(float(v))}\n"
                                              for law, d, v in rows))
    table = {(law, d): v for law, d, v in rows}
    labels = [law_label(n, p) for n, p in FAMILY_LAWS]
    cube = cube_points(a.cube)
    head = "| d | " + " | ".join(labels) + (" | cube (nested MC) |" if cube else " |") + " 2^(d/2)/d |"
    print(head)
    print("|" + "---|" * (len(labels) + 2 + bool(cube)))
    cube_by_d = {d: (n, lo, hi) for d, n, lo, hi in cube}
    for d in TABLE_DIMS:
        cells = [fmt(table[(law, d)]) for law in labels]
        if cube:
            c = cube_by_d.get(d)
            cells.append("—" if c is None or c[0] is None else f"{fmt(c[0])} ({fmt(c[1])}, {fmt(c[2])}]")
        print(f"| {d} | " + " | ".join(cells) + f" | {fmt(theory.bf_threshold(d))} |")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, zoom) = plt.subplots(1, 2, figsize=(13, 5.6), width_ratios=(1.5, 1), constrained_layout=True)
    colours = ["black", "#4c78a8", "#72b7b2", "#54a24b", "#e45756", "#f58518", "#b279a2"]
    for axis, dims in ((ax, list(DIMS)), (zoom, [d for d in DIMS if d <= ZOOM_D])):
        for label, colour in zip(labels, colours):
            pts = [(d, table[(label, d)]) for d in dims if table[(label, d)] is not None]
            axis.plot([p[0] for p in pts], [p[1] for p in pts], "-", color=colour, lw=1.6, label=f"exact N½: {label}")
        axis.plot(dims, [theory.bf_threshold(d) for d in dims], ":", color="gray", lw=2, label="2^(d/2)/d")
        if cube:
            rows = [(d, n, lo, hi) for d, n, lo, hi in cube if n is not None]
            err = [[n - lo if lo else 0 for d, n, lo, hi in rows],
                   [hi - n if hi and math.isfinite(hi) else 0 for d, n, lo, hi in rows]]
            axis.errorbar([r[0] for r in rows], [r[1] for r in rows], yerr=err, fmt="D", ms=4, color="#9c27b0",
                          capsize=3, label="uniform cube: nested Monte Carlo, median of T, 99% bracket")
        axis.set_yscale("log")
        axis.set_xlabel("d")
        axis.grid(alpha=0.3, which="major")
    ax.set_ylim(1, 1e40)
    ax.set_ylabel("N½: p(d, N½) = 1/2")
    ax.set_title("Where a new point becomes as likely inside the hull as outside, family by family", fontsize=11)
    ax.legend(fontsize=8, loc="upper left")
    zoom.set_xlim(1.5, ZOOM_D + 0.5)
    zoom.set_ylim(0.5, 1e9)
    zoom.set_title(f"d = 2…{ZOOM_D}: the cube's brackets", fontsize=11)
    fig.savefig(PNG, dpi=130)
    print(f"\nwrote {CSV.relative_to(ROOT)} and {PNG.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
