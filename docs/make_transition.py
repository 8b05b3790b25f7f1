"""Where p(d, N) crosses 1/2, family by family: the exact N½ against d = 2..64 beside 2^(d/2)/d.

Writes
  * ``mc_hull/theory/data/n_half_families.csv`` (law, d, N½; empty N½: above the curve's range
    of N), which ``mc_hull.query.views.family_n_half`` (plot's and the dashboard's N½ panels) reads;
  * ``docs/transition-by-family.png``;
  * the README's markdown table on stdout.

The uniform cube has no exact curve: with ``--cube OUT`` (a store written by
``mc-hull run --distribution cube --dims 2..12 --sizes auto --nested``) its measured N½, the
median of the entry size T with its 99% bracket, is drawn too.

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


def n_half_rows():
    rows = []
    for name, params in FAMILY_LAWS:
        label = law_label(name, params)
        for d in DIMS:
            rows.append((label, d, theory.exact_n_half(name, d, **params)))
    return rows


def cube_points(out: str):
    from mc_hull.query import empirical_n_half

    return sorted((r["d"], r["n_half"], r["n_half_low"], r["n_half_high"])
                  for r in empirical_n_half(out) if r["distribution"] == "cube")


def fmt(v):
    if v is None:
        return "—"
    if v < 1e4:
        return f"{v:.3g}" if v < 100 else f"{v:.0f}"
    e = math.floor(math.log10(v))
    return f"{v / 10 ** e:.2f}·10^{e}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cube", help="store of a nested cube run (d = 2..12)")
    a = ap.parse_args()
    rows = n_half_rows()
    CSV.write_text("law,d,n_half\n" + "".join(f"{law},{d},{'' if v is None else repr(float(v))}\n"
                                              for law, d, v in rows))
    table = {(law, d): v for law, d, v in rows}
    labels = [law_label(n, p) for n, p in FAMILY_LAWS]
    cube = cube_points(a.cube) if a.cube else []
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

    fig, ax = plt.subplots(figsize=(8.5, 5.6), constrained_layout=True)
    colours = ["black", "#4c78a8", "#72b7b2", "#54a24b", "#e45756", "#f58518", "#b279a2"]
    for label, colour in zip(labels, colours):
        pts = [(d, table[(label, d)]) for d in DIMS if table[(label, d)] is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "-", color=colour, lw=1.6, label=f"exact N½: {label}")
    ax.plot(list(DIMS), [theory.bf_threshold(d) for d in DIMS], ":", color="gray", lw=2, label="2^(d/2)/d")
    if cube:
        ds = [d for d, n, lo, hi in cube if n is not None]
        ns = [n for d, n, lo, hi in cube if n is not None]
        lo = [n - (l or n) for d, n, l, h in cube if n is not None]
        hi = [(h if h and math.isfinite(h) else n) - n for d, n, l, h in cube if n is not None]
        ax.errorbar(ds, ns, yerr=[lo, hi], fmt="D", ms=4, color="#9c27b0", capsize=2,
                    label="uniform cube: nested Monte Carlo, median of T, 99% bracket")
    ax.set_yscale("log")
    ax.set_ylim(1, 1e40)
    ax.set_xlabel("d")
    ax.set_ylabel("N½: p(d, N½) = 1/2")
    ax.set_title("Where a new point becomes as likely inside the hull as outside, family by family")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3, which="major")
    fig.savefig(PNG, dpi=130)
    print(f"\nwrote {CSV.relative_to(ROOT)} and {PNG.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
