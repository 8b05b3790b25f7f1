"""Benchmark: the batched ``colgen`` engine against linprog and cvxpy per query, on Gaussian cells.

Usage: ``python benchmarks/membership.py [--quick]``.  One process, one BLAS
thread (as in the Ray workers); all methods see the same training sets and
queries, so compare ratios within one run (the machine is shared).  Prints a
markdown table; ``linprog`` (solver ``"lp"``) is the judge for agreement.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import mc_hull  # noqa: E402

# (d, N, colgen queries, max linprog queries, max cvxpy queries); comment: expected p
CELLS = [
    (8, 80, 2000, 40, 20),          # p ~ 0.05
    (8, 1100, 2000, 40, 15),        # p ~ 1/2
    (10, 4000, 2000, 30, 10),       # p ~ 1/2
    (12, 14000, 2000, 15, 5),       # p ~ 1/2
    (16, 150000, 1000, 4, 2),       # p ~ 1/2
    (8, 100000, 1000, 5, 2),        # p ~ 0.95
]
QUICK = [(8, 80, 500, 15, 5), (8, 1100, 500, 15, 5), (10, 4000, 500, 10, 3), (8, 100000, 200, 2, 1)]
TOL = 1e-9
TIE = 100 * TOL        # |certificate| below this (relative) counts as a tie at tolerance
BUDGET_S = 45.0        # per peer method and cell: stop timing after this long (>= 1 query)


def per_query(X, Q, solver, n, budget=BUDGET_S):
    """Decide queries one at a time; return (median seconds, statuses, certificates, count)."""
    times, status, certs = [], [], []
    start = time.perf_counter()
    for q in Q[:n]:
        t = time.perf_counter()
        dec = mc_hull.decide(X, q, tol=TOL, solver=solver)
        times.append(time.perf_counter() - t)
        status.append(dec.status[0])
        certs.append(dec.certificate[0])
        if time.perf_counter() - start > budget:
            break
    return float(np.median(times)), np.array(status), np.array(certs), len(times)


def plain_peer(X, Q, kind, n, budget=BUDGET_S):
    """Median seconds of the uncertified feasibility check public reproductions run per query.

    ``kind="linprog"``: ``linprog(0, A_eq=[X.T; 1], b_eq=[x; 1], bounds=(0, None), method="highs")``;
    ``kind="cvxpy"``: the same feasibility problem in cvxpy with its default solver.
    """
    N, d = X.shape
    if kind == "linprog":
        from scipy.optimize import linprog

        A = np.vstack([X.T, np.ones(N)])

        def check(q):
            return linprog(np.zeros(N), A_eq=A, b_eq=np.append(q, 1.0), bounds=(0, None),
                           method="highs").status == 0
    else:
        import cvxpy as cp

        lam, x = cp.Variable(N, nonneg=True), cp.Parameter(d)
        prob = cp.Problem(cp.Minimize(0), [X.T @ lam == x, cp.sum(lam) == 1])

        def check(q):
            x.value = q
            prob.solve()
            return prob.status == "optimal"
    check(Q[-1])   # warm-up, untimed: cvxpy compiles the parametrised problem once (the peer's best case)
    times = []
    start = time.perf_counter()
    for q in Q[:n]:
        t = time.perf_counter()
        check(q)
        times.append(time.perf_counter() - t)
        if time.perf_counter() - start > budget:
            break
    return float(np.median(times)), len(times)


def floor_pass(X, Q, reps=3):
    """Median seconds of one product ``X @ w`` (the cost of looking at every point once)."""
    times = []
    for _ in range(reps):
        for q in Q[:30]:
            t = time.perf_counter()
            X @ q
            times.append(time.perf_counter() - t)
    return float(np.median(times))


def peak_mib(X, Q):
    """Peak traced allocations (MiB) of one colgen batch: (its own proposal, whole ``decide``).

    The whole ``decide`` adds the base class's verification of outside certificates.
    """
    from mc_hull.solvers import certificates, get_solver

    peaks = []
    frame = certificates.Frame.of(X)
    for run in (lambda: get_solver("colgen")._propose(frame.points, frame.map(Q), TOL * frame.scale),
                lambda: mc_hull.decide(X, Q, tol=TOL, solver="colgen")):
        tracemalloc.start()
        run()
        peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
        tracemalloc.stop()
    return tuple(peaks)


def compare(judge, judge_cert, other, other_cert):
    """(disagreements, ties, undecided) of ``other`` against the LP judge on common queries."""
    m = min(judge.size, other.size)
    j, o = judge[:m], other[:m]
    tie = np.zeros(m, dtype=bool)
    for s, c in ((j, judge_cert[:m]), (o, other_cert[:m])):
        tie |= (s == 0) & (c <= TIE)   # outside by a margin within 100 tol
    bad = (j != o) & (j >= 0) & (o >= 0)
    return int(np.sum(bad & ~tie)), int(np.sum(bad & tie)), int(np.sum(o < 0))


def run_cell(d, N, B, n_lp, n_cvx, seed=0):
    rng = np.random.default_rng([seed, d, N])
    X = rng.standard_normal((N, d))
    Q = rng.standard_normal((B, d))

    mc_hull.decide(X, Q[:10], tol=TOL, solver="colgen")   # warm caches and imports
    # Engine and floor alternate, so a burst of load from other tenants hits both of the ratio's terms.
    walls, floors = [], []
    for _ in range(5):
        t = time.perf_counter()
        dec = mc_hull.decide(X, Q, tol=TOL, solver="colgen")
        walls.append((time.perf_counter() - t) / B)
        floors.append(floor_pass(X, Q, reps=1))
    t_cg, t_floor = float(np.median(walls)), float(np.median(floors))

    t_lp, s_lp, c_lp, n_lp = per_query(X, Q, "lp", n_lp)
    t_cvx, s_cvx, c_cvx, n_cvx = per_query(X, Q, "cvxpy", n_cvx)
    t_plain_lp, n_plain_lp = plain_peer(X, Q, "linprog", n_lp)
    t_plain_cvx, n_plain_cvx = plain_peer(X, Q, "cvxpy", n_cvx)

    methods = dec.method.astype(str)
    frac = {k: float(np.mean(methods == f"colgen:{k}")) for k in ("prefilter", "inside", "outside")}
    frac["fallback"] = float(np.mean(~np.char.startswith(methods, "colgen") & (dec.status >= 0)))
    cg_bad, cg_tie, cg_und = compare(s_lp, c_lp, dec.status, dec.certificate)
    cv_bad, cv_tie, cv_und = compare(s_lp, c_lp, s_cvx, c_cvx)
    return dict(d=d, N=N, B=B, p=float(dec.inside.mean()), cg=t_cg, lp=t_lp, n_lp=n_lp, cvx=t_cvx,
                n_cvx=n_cvx, plain_lp=t_plain_lp, n_plain_lp=n_plain_lp, plain_cvx=t_plain_cvx,
                n_plain_cvx=n_plain_cvx, floor=t_floor, frac=frac, rounds=float(dec.rounds.mean()),
                peak=peak_mib(X, Q), undecided=int(np.sum(dec.status < 0)) + cg_und,
                bad=cg_bad + cv_bad, ties=cg_tie + cv_tie, cvx_undecided=cv_und)


def table(rows):
    head = ("| (d, N) | p | colgen µs/q (B) | linprog µs/q (n) | cvxpy µs/q (n) | × linprog | × cvxpy "
            "| certified LP / cvxpy µs/q | X·w floor µs | × floor | prefilter / inside / outside / LP fallback | rounds "
            "| peak MiB: propose / decide | disagree (ties) | undecided |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        f = r["frac"]
        lines.append(
            f"| ({r['d']}, {r['N']}) | {r['p']:.2f} | {r['cg'] * 1e6:.1f} ({r['B']}) "
            f"| {r['plain_lp'] * 1e6:.0f} ({r['n_plain_lp']}) | {r['plain_cvx'] * 1e6:.0f} ({r['n_plain_cvx']}) "
            f"| {r['plain_lp'] / r['cg']:.0f}× | {r['plain_cvx'] / r['cg']:.0f}× "
            f"| {r['lp'] * 1e6:.0f} / {r['cvx'] * 1e6:.0f} | {r['floor'] * 1e6:.1f} "
            f"| {r['cg'] / r['floor']:.1f}× | {f['prefilter']:.0%} / {f['inside']:.0%} / "
            f"{f['outside']:.0%} / {f['fallback']:.1%} | {r['rounds']:.2f} | {r['peak'][0]:.0f} / {r['peak'][1]:.0f} "
            f"| {r['bad']} ({r['ties']}) | {r['undecided']} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer cells and queries (~1 minute)")
    args = ap.parse_args(argv)
    rows = []
    t0 = time.perf_counter()
    for cell in QUICK if args.quick else CELLS:
        rows.append(run_cell(*cell))
        r = rows[-1]
        print(f"# ({r['d']}, {r['N']}) done at {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    print(table(rows))
    print(f"\ntol = {TOL:g}; ties = disagreements where an outside margin is below {TIE:g} (relative); "
          f"colgen time = median of 5 batch runs / B (certificates checked); linprog and cvxpy = "
          f"median per-query plain feasibility call as public reproductions make it (no certificate), "
          f"certified LP / cvxpy = mc_hull's own per-query solvers with verification, the LP being the "
          f"judge of agreement (at most {BUDGET_S:.0f} s each per cell); floor = median single X @ w, timed between the colgen runs; "
          f"OPENBLAS_NUM_THREADS=1; total {time.perf_counter() - t0:.0f} s.")


if __name__ == "__main__":
    main()
