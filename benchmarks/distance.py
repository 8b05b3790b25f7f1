"""Benchmark: certified hull distance per query against a general QP (Clarabel) and against in_hull.

Usage: ``python benchmarks/distance.py [--quick] [--reps R]``.  One process, one
BLAS thread (as in the Ray workers).  For each Gaussian cell the three methods
run interleaved on the same training set and queries: ``hull_distance`` on the
batch, ``mc_hull.decide`` (membership, the cost of ``in_hull``) on the same
batch, then Clarabel on a few queries, repeated R times; the table gives median
seconds per query and the ratios within that run (the machine is shared, so
only ratios from one run are meaningful).  Clarabel is also the judge: every
QP answer must lie in [low, high] up to its own accuracy (1e-9 s).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import mc_hull  # noqa: E402
from mc_hull.distance import distances  # noqa: E402

# (d, N, queries per batch); N near N_1/2 where p ~ 1/2, plus a small cell
CELLS = [(12, 3000, 1000), (8, 1100, 1000), (6, 300, 1000)]
QUICK = [(12, 3000, 200), (8, 1100, 200), (6, 300, 200)]
TOL = 1e-9


def clarabel_solver(X):
    """A per-query Clarabel QP for ``min ||X^T lam - x||``: ``min ||y||^2/2``, ``X^T lam - y = x``,
    ``sum lam = 1``, ``lam >= 0``, on centred data (the matrices are built once per X; only
    the right-hand side changes).  Returns ``solve(x) -> distance``."""
    import clarabel
    import scipy.sparse as sp

    N, d = X.shape
    c = X.mean(axis=0)
    s = float(np.max(np.abs(X - c))) or 1.0
    Xs = (X - c) / s
    P = sp.block_diag([sp.csc_matrix((N, N)), sp.eye(d)]).tocsc()
    A = sp.vstack([
        sp.hstack([sp.csc_matrix(Xs.T), -sp.eye(d)]),
        sp.hstack([sp.csc_matrix(np.ones((1, N))), sp.csc_matrix((1, d))]),
        sp.hstack([-sp.eye(N), sp.csc_matrix((N, d))]),
    ]).tocsc()
    cones = [clarabel.ZeroConeT(d + 1), clarabel.NonnegativeConeT(N)]
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = settings.tol_gap_rel = settings.tol_feas = 1e-12
    q = np.zeros(N + d)

    def solve(x):
        b = np.concatenate([(x - c) / s, [1.0], np.zeros(N)])
        sol = clarabel.DefaultSolver(P, q, A, b, cones, settings).solve()
        return float(np.linalg.norm(np.asarray(sol.x)[N:])) * s

    return solve


def run_cell(d, N, B, reps, qp_per_rep, seed=0):
    rng = np.random.default_rng([seed, d, N])
    X = rng.standard_normal((N, d))
    Q = rng.standard_normal((B, d))
    qp = clarabel_solver(X)
    distances(X, Q[:10], tol=TOL)
    mc_hull.decide(X, Q[:10], tol=TOL)
    qp(Q[0])
    t_dist, t_mem, t_qp, qp_vals, qp_idx = [], [], [], [], []
    j = 0
    for _ in range(reps):   # interleaved: a burst of load from other tenants hits every method
        t = time.perf_counter()
        res = distances(X, Q, tol=TOL)
        t_dist.append((time.perf_counter() - t) / B)
        t = time.perf_counter()
        mc_hull.decide(X, Q, tol=TOL)
        t_mem.append((time.perf_counter() - t) / B)
        for _ in range(qp_per_rep):
            t = time.perf_counter()
            qp_vals.append(qp(Q[j]))
            t_qp.append(time.perf_counter() - t)
            qp_idx.append(j)
            j += 1
    qv, qi = np.array(qp_vals), np.array(qp_idx)
    s = res.scale
    outside = res.status[qi] == 0
    agree = np.where(outside, (res.low[qi] <= qv + 1e-9 * s) & (qv <= res.high[qi] + 1e-9 * s),
                     qv <= 1e-8 * s)
    return dict(d=d, N=N, B=B, p=float(np.mean(res.status == 1)), dist=float(np.median(t_dist)),
                mem=float(np.median(t_mem)), qp=float(np.median(t_qp)), n_qp=len(t_qp),
                rounds=float(res.rounds.mean()), max_rounds=int(res.rounds.max()),
                gap=float(np.max(res.gap) / s), converged=float(np.mean(res.converged)),
                agree=int(agree.sum()), median_ratio=float(np.median(res.high[res.status == 0] /
                                                                    res.nn[res.status == 0])))


def table(rows):
    head = ("| (d, N) | p | hull_distance µs/q (B) | in_hull µs/q | Clarabel QP µs/q (n) | × faster than QP "
            "| × in_hull's cost | rounds mean / max | max gap / s | QP inside [low, high] | median dist/nn (outside) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(
            f"| ({r['d']}, {r['N']}) | {r['p']:.2f} | {r['dist'] * 1e6:.1f} ({r['B']}) | {r['mem'] * 1e6:.1f} "
            f"| {r['qp'] * 1e6:.0f} ({r['n_qp']}) | {r['qp'] / r['dist']:.0f}× | {r['dist'] / r['mem']:.2f}× "
            f"| {r['rounds']:.2f} / {r['max_rounds']} | {r['gap']:.1e} | {r['agree']} of {r['n_qp']} "
            f"| {r['median_ratio']:.3f} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200 queries per cell, 3 repetitions (~1 minute)")
    ap.add_argument("--reps", type=int, default=None, help="interleaved repetitions per cell (default 7, quick 3)")
    args = ap.parse_args(argv)
    reps = args.reps or (3 if args.quick else 7)
    rows = []
    t0 = time.perf_counter()
    for d, N, B in QUICK if args.quick else CELLS:
        rows.append(run_cell(d, N, B, reps, qp_per_rep=3 if args.quick else 5))
        print(f"# ({d}, {N}) done at {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    print(table(rows))
    print(f"\ntol = {TOL:g}, gap target 1e-6 s; per query = median over {reps} interleaved repetitions of "
          f"(hull_distance on the batch, mc_hull.decide on the same batch, Clarabel on the next few "
          f"queries one by one, matrices built once per training set); OPENBLAS_NUM_THREADS=1; "
          f"total {time.perf_counter() - t0:.0f} s.")


if __name__ == "__main__":
    main()
