"""Generate beta_angles.csv: internal-angle sums J_m(α) of beta and beta' simplices for common laws.

The values come from :func:`mc_hull.theory.beta_angles.angle_sums` (mpmath; see its module
docstring for the recursion and the quadrature). :mod:`mc_hull.theory.beta` reads this table
and computes (and caches in memory) any other (family, α) on first use, which takes seconds to
tens of seconds at d = 64; this table makes the laws of the README's N½ table instant.

Rows: ``family,alpha,m,J`` with family ``beta`` (α = 2β + d, m = 1..d) or ``betap``
(Student-t with ν = α degrees of freedom, m = 1..64), 25 significant digits. Every law with
m up to 64 is also computed with a finer rule (panel width 0.15 instead of 0.25, 128 instead of 96 nodes per
panel, 8 more digits); the largest relative difference is printed and recorded in the header.

Run: ``python mc_hull/theory/data/make_beta.py [--processes 2]`` (about half an hour on 2 cores).
"""

from __future__ import annotations

import argparse
from multiprocessing import Pool
from pathlib import Path

import mpmath as mp

from mc_hull.theory.beta_angles import angle_sums

HERE = Path(__file__).resolve().parent
STUDENT_DF = (0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 100.0, 1000.0, 10000.0)
BETAS = (-0.5, 0.0, 1.0)
D_MAX = 64
BALL_D_MAX = 40


def _job(args):
    family, alpha, m_max, check = args
    main = angle_sums(family, alpha, m_max)
    worst = 0.0
    if check and m_max == D_MAX:  # a finer rule at d = 64, where the recursion cancels most
        fine = angle_sums(family, alpha, m_max, width=0.15, n_gl=128, digits=25)
        with mp.workdps(40):
            worst = float(max(abs(main[m] / fine[m] - 1) for m in main))
    return family, alpha, {m: mp.nstr(v, 25) for m, v in main.items()}, worst


def jobs() -> list[tuple[str, float, int]]:
    out = [("betap", df, D_MAX) for df in STUDENT_DF]
    for beta in BETAS:
        # beta = 0 up to d = 40 is the ball, whose table ball_angles.csv already holds
        out += [("beta", 2.0 * beta + d, d) for d in range(1, D_MAX + 1) if beta != 0.0 or d > BALL_D_MAX]
    # alpha collisions (e.g. beta = -0.5 at d + 1 and beta = 0 at d): keep the largest m_max
    best: dict[tuple[str, float], int] = {}
    for family, alpha, m in out:
        best[(family, alpha)] = max(m, best.get((family, alpha), 0))
    return sorted(((f, a, m) for (f, a), m in best.items()), key=lambda j: -j[2])


def _read_rows(path: Path) -> dict:
    """(family, alpha) -> ({m: J string}, worst) from a table or a .partial file."""
    out: dict = {}
    for line in path.read_text().splitlines():
        if not line or line.startswith("#") or line.startswith("family,"):
            continue
        family, alpha, m, value, *rest = line.split(",")
        table, worst = out.setdefault((family, float(alpha)), ({}, 0.0))
        table[int(m)] = value
        if rest:
            out[(family, float(alpha))] = (table, max(worst, float(rest[0])))
    return out


def _ball_rows():
    """beta = 0 for d <= 40 (alpha = d) from the ball's table, which make_ball.py generated."""
    rows = {}
    for line in (HERE / "ball_angles.csv").read_text().splitlines():
        if line and line[0].isdigit():
            d, m, value = line.split(",")
            if int(d) <= BALL_D_MAX:
                rows.setdefault(float(d), {})[int(m)] = value
    # (only m of d's parity: the recursion never mixes parities, and a d-dimensional law needs
    # only m = d, d - 2, ...)
    out = [("beta", alpha, table, 0.0) for alpha, table in rows.items()]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "beta_angles.csv")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--min-m", type=int, default=1,
                    help="recompute only laws with m_max >= this; keep the other rows of --out")
    ap.add_argument("--family", choices=("beta", "betap"), help="recompute only this family")
    ap.add_argument("--no-check", action="store_true", help="skip the finer-rule check at d = 64")
    a = ap.parse_args()
    # every finished law is appended to OUT.partial at once, so an interrupted run resumes
    partial = a.out.with_suffix(".partial")
    done = _read_rows(partial) if partial.exists() else {}
    todo = [(f, al, m, not a.no_check) for f, al, m in jobs()
            if m >= a.min_m and a.family in (None, f) and (f, al) not in done]
    with Pool(a.processes) as pool, partial.open("a") as log:
        for family, alpha, table, worst in pool.imap_unordered(_job, todo, chunksize=1):
            log.write("".join(f"{family},{alpha!r},{m},{v},{worst:.3g}\n" for m, v in sorted(table.items())))
            log.flush()
    # merge at the level of single entries: the old table, then the ball's, then the fresh rows
    merged: dict = {}
    worst_of: dict = {}
    sources = [(_read_rows(a.out) if a.out.exists() else {}),
               {(f, al): (t, w) for f, al, t, w in _ball_rows()}, _read_rows(partial)]
    for rows in sources:
        for key, (table, worst) in rows.items():
            merged.setdefault(key, {}).update(table)
            worst_of[key] = max(worst, worst_of.get(key, 0.0))
    results = [(f, al, merged[(f, al)], worst_of[(f, al)]) for f, al in merged]
    worst = max(r[3] for r in results)
    lines = ["# J_m(alpha) = m * E internal angle at a vertex of a beta (alpha = 2 beta + d) or beta' "
             "(alpha = 2 beta - d = Student-t df) simplex of m points in R^(m-1);",
             f"# generated by make_beta.py; max relative difference vs finer rule: "
             + ("not checked (--no-check)" if a.no_check else f"{worst:.3g}"),
             "family,alpha,m,J"]
    for family, alpha, table, _ in sorted(results, key=lambda r: (r[0], r[1])):
        for m in sorted(table):
            lines.append(f"{family},{alpha!r},{m},{table[m]}")
    a.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out}: {len(results)} laws; max relative difference vs finer rule {worst:.3g}")


if __name__ == "__main__":
    main()
