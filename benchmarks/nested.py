"""Benchmark: a whole Gaussian curve from nested prefixes against the same sizes as independent cells.

Usage: ``python benchmarks/nested.py [--d 8] [--sizes 40] [--n-min 10] [--n-max 1e5]
[--trials 2000] [--queries-per-set 100] [--quick]``.

Both methods use the same engine (``colgen``), the same keyed seeding as
``mc-hull run`` (training sets drawn block by block from their keys, time
included) and the same trials per size.  *Independent*: every size is a cell of
its own, ``trials / K`` training sets of that size with K queries each (today's
``mc-hull run``).  *Nested*: ``trials / K`` training sets of the largest size,
each with K queries whose entry sizes are located on the grid
(:func:`mc_hull.nested.search.entry_sizes`), which gives every size at once.  The two
are interleaved replicate by replicate (alternating which goes first), so load
bursts on this shared machine hit both; compare the ratio, not the seconds.

Reports the wall-time ratio, whether p-hat is monotone, how many sizes' 99%
clustered intervals hold the exact curve (``mc_hull.theory``), the design
effects, and the queries per set the cost rule would choose from the measured costs.

``--streamed`` instead compares, replicate by replicate (interleaved, order alternating), the
in-memory search with the streamed one (:mod:`mc_hull.nested.stream`, X regenerated from the
replicate's keys) holding all, half and none of X in memory, on the ``--sizes auto`` grid of d
cut at ``--n-max``: CPU seconds, passes, rows regenerated, and whether the brackets agree.
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
from mc_hull.stats import design, intervals as stats
from mc_hull.nested import search as nested  # noqa: E402
from mc_hull.solvers import get_solver  # noqa: E402
from mc_hull.spec import Spec  # noqa: E402
from mc_hull.theory.gaussian import gaussian_inside_probability  # noqa: E402
from mc_hull.samplers import keyed_source, replicate_data  # noqa: E402


def independent_replicate(spec, engine, d, grid, r):
    """One replicate of every independent cell: (inside counts (L,), decided (L,))."""
    y, m = np.zeros(len(grid)), np.zeros(len(grid))
    for j, n in enumerate(grid.tolist()):
        X, Q = replicate_data(spec, d, n, r)
        dec = engine.decide(X, Q, tol=spec.tol)
        y[j], m[j] = np.sum(dec.status == 1), np.sum(dec.status >= 0)
    return y, m


def summarise(name, y, m, exact):
    """Per-size clustered intervals against the exact curve."""
    L = y.shape[1]
    p = y.sum(0) / m.sum(0)
    low, high, deff = np.zeros(L), np.zeros(L), np.zeros(L)
    for j in range(L):
        low[j], high[j], deff[j] = stats.clustered_interval(y[:, j], m[:, j])
    covered = int(np.sum((low <= exact) & (exact <= high)))
    mono = bool(np.all(np.diff(p) >= 0))
    print(f"{name:12s} monotone p-hat: {mono}; sizes inside their 99% interval of the exact curve: "
          f"{covered}/{L}; mean 99% width {np.mean(high - low):.4f}; design effect median "
          f"{np.median(deff):.2f}, max {np.max(deff):.2f}")
    return p, low, high, deff


def _replicates_time(spec, engine, d, n, replicates):
    """Wall seconds to draw and decide ``replicates`` training sets of a cell (like ``mc-hull run``)."""
    t0 = time.perf_counter()
    out = []
    for r in range(replicates):
        X, Q = replicate_data(spec, d, n, r)
        dec = engine.decide(X, Q, tol=spec.tol)
        out.append((np.sum(dec.status == 1), np.sum(dec.status >= 0)))
    return time.perf_counter() - t0, np.array(out, dtype=float)


def design_effects(cells, trials, seed=0):
    """Per cell: costs, rho from K = 100, and deff, 99% width and efficiency at K = 100, min(50, trials // 30),
    the spec's default (mc_hull.stats.design's cost model) and the rule at this run's measured costs."""
    engine = get_solver("colgen")
    print(f"| cell (d, N) | set cost | per query | rho | K | deff | 99% width | trials/s | width^2 x time |")
    print("|---|---|---|---|---|---|---|---|---|")
    for d, n in cells:
        # cost model c(K) = a + b K per replicate, from K = 1 and K = 201 (medians of 5 interleaved runs)
        t1, t201 = [], []
        for rep in range(5):
            for k, bucket in ((1, t1), (201, t201)):
                sp = Spec(distribution="gaussian", dims=(d,), sizes=(n,), trials=20 * k, queries_per_set=k,
                          seed=seed + 1000 + rep, solver="colgen")
                bucket.append(_replicates_time(sp, engine, d, n, 20)[0] / 20)
        b = max((np.median(t201) - np.median(t1)) / 200, 1e-9)
        a = max(np.median(t1) - b, 0.0)
        rows = []
        model_k = Spec(distribution="gaussian", dims=(d,), sizes=(n,), trials=trials).k_for(d, n)
        for label, k in (("K = 100 (first default)", 100),
                         ("K = min(50, trials // 30)", design.default_queries_per_set(trials)),
                         ("K by the cost model (default now)", model_k), ("the rule at measured costs", None)):
            if k is None:
                k = design.efficient_queries_per_set(a, b, rho, trials=trials)
            sp = Spec(distribution="gaussian", dims=(d,), sizes=(n,), trials=trials, queries_per_set=k,
                      seed=seed, solver="colgen")
            secs, ym = _replicates_time(sp, engine, d, n, sp.replicates_for(d, n))
            lo, hi, deff = stats.clustered_interval(ym[:, 0], ym[:, 1])
            if k == 100:
                rho = design.rho_from_design_effect(deff, k)
            rows.append((label, k, deff, hi - lo, trials / secs, (hi - lo) ** 2 * secs))
        for label, k, deff, width, rate, eff in rows:
            print(f"| ({d}, {n}) {label} | {1e6 * a:.0f} us | {1e6 * b:.1f} us | {rho:.4f} | {k} | "
                  f"{deff:.2f} | {width:.4f} | {rate:.0f} | {eff:.2e} |", flush=True)


def streamed(d, n_max, k, replicates, seed=0):
    """In-memory against streamed nested searches on one grid (see the module docstring)."""
    from mc_hull.nested import stream as nested_stream
    from mc_hull.runs.adaptive import auto_grid

    grid = np.array([n for n in auto_grid("gaussian", [d], points=40, max_n=10**12, p_range=(0.02, 0.95))[d]
                     if n <= n_max])
    spec = Spec(distribution="gaussian", dims=(d,), sizes=(int(grid[-1]),), trials=k * replicates,
                queries_per_set=k, seed=seed, solver="colgen")
    full = 8 * int(grid[-1]) * d
    ways = {"in memory": None, "streamed, all held": 2 * full, "streamed, half held": full // 2,
            "streamed, none held": 0}
    cpu = dict.fromkeys(ways, 0.0)
    print(f"d = {d}, {len(grid)} sizes to N = {grid[-1]:,}, K = {k}, {replicates} replicates; one BLAS thread; "
          f"load average {os.getloadavg()[0]:.1f}; CPU seconds (draw included)")
    for r in range(replicates):
        names = list(ways) if r % 2 == 0 else list(ways)[::-1]
        res = {}
        for name in names:
            t0 = time.process_time()
            if ways[name] is None:
                X, Q = nested.replicate_data(spec, d, grid, r)
                res[name] = nested.entry_sizes(X, Q, grid, overwrite=True)
                del X
            else:
                src = keyed_source(spec, d, int(grid[-1]), r)
                res[name] = nested_stream.streamed_entry_sizes(src, src.queries(), grid, budget=ways[name])
            cpu[name] += time.process_time() - t0
        ref = res["in memory"]
        parts = []
        for name in ways:
            part = f"{name} {cpu[name]:.1f} s"
            if ways[name] is not None:
                same = np.array_equal(res[name].low, ref.low) and np.array_equal(res[name].high, ref.high)
                part += (f" ({res[name].passes} passes, {res[name].regenerated / grid[-1]:.1f} N rows drawn, "
                         f"brackets {'equal' if same else 'DIFFER'})")
            parts.append(part)
        line = "; ".join(parts)
        print(f"  replicate {r + 1}/{replicates}: {line}", flush=True)
    base = cpu["in memory"]
    print("ratios to in memory: " + ", ".join(f"{name} {cpu[name] / base:.2f}x" for name in ways))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, default=8)
    ap.add_argument("--sizes", type=int, default=40)
    ap.add_argument("--n-min", type=float, default=10)
    ap.add_argument("--n-max", type=float, default=1e5)
    ap.add_argument("--trials", type=int, default=2000)
    ap.add_argument("--queries-per-set", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="d = 6, N to 1e4, 400 trials")
    ap.add_argument("--streamed", action="store_true",
                    help="instead: in-memory against streamed searches (--d, --n-max, --queries-per-set, "
                         "--trials / K replicates)")
    ap.add_argument("--design-effects", action="store_true",
                    help="instead: design effects at K = 100, the new default and the rule's K for a few cells")
    a = ap.parse_args(argv)
    if a.streamed:
        streamed(a.d, a.n_max, a.queries_per_set, max(1, a.trials // a.queries_per_set), a.seed)
        return
    if a.design_effects:
        design_effects([(3, 27), (4, 62), (8, 1100), (8, 80)], 6000 if not a.quick else 1200, a.seed)
        return
    if a.quick:
        a.d, a.n_max, a.trials = 6, 1e4, 400
    grid = np.unique(np.round(np.geomspace(a.n_min, a.n_max, a.sizes)).astype(int))
    spec = Spec(distribution="gaussian", dims=(a.d,), sizes=tuple(int(n) for n in grid), trials=a.trials,
                queries_per_set=a.queries_per_set, seed=a.seed, solver="colgen")
    engine = get_solver("colgen")
    R = spec.replicates_for(a.d, int(grid[-1]))
    print(f"d = {a.d}, {len(grid)} sizes from {grid[0]} to {grid[-1]}, {a.trials} trials per size, "
          f"K = {a.queries_per_set} queries per training set ({R} replicates); one BLAS thread; "
          f"shared machine (load average {os.getloadavg()[0]:.1f}): compare the ratio")
    t_nested = t_indep = 0.0
    yn, mn, yi, mi = [], [], [], []
    draw = 0.0
    for r in range(R):
        order = ("nested", "indep") if r % 2 == 0 else ("indep", "nested")
        for which in order:
            t0 = time.perf_counter()
            if which == "nested":
                X, Q = nested.replicate_data(spec, a.d, grid, r)
                t1 = time.perf_counter()
                res = nested.entry_sizes(X, Q, grid, solver=engine, tol=spec.tol)
                t_nested += time.perf_counter() - t0
                draw += t1 - t0
                y, m = nested.cluster_counts([res])
                yn.append(y[0]), mn.append(m[0])
            else:
                y, m = independent_replicate(spec, engine, a.d, grid, r)
                t_indep += time.perf_counter() - t0
                yi.append(y), mi.append(m)
        print(f"  replicate {r + 1}/{R}: nested {t_nested:.1f} s, independent {t_indep:.1f} s "
              f"(ratio so far {t_indep / t_nested:.2f}x)", flush=True)
    exact = gaussian_inside_probability(a.d, grid)
    print(f"\nwall time: nested {t_nested:.2f} s, independent cells {t_indep:.2f} s: "
          f"{t_indep / t_nested:.2f}x less with nested prefixes")
    summarise("nested", np.array(yn), np.array(mn), exact)
    summarise("independent", np.array(yi), np.array(mi), exact)
    # The queries-per-set rule from what this run measured.
    set_s = draw / R
    query_s = (t_nested - draw) / (R * a.queries_per_set)
    yN, mN = np.array(yn), np.array(mn)
    rhos = [design.rho_from_design_effect(stats.design_effect(yN[:, j], mN[:, j]), a.queries_per_set)
            for j in range(len(grid))]
    rho = design.pooled_rho(rhos, yN.sum(0) / mN.sum(0))
    k = design.efficient_queries_per_set(set_s, query_s, rho, trials=a.trials)
    print(f"nested costs: {1e3 * set_s:.1f} ms to draw X and Q per replicate, {1e6 * query_s:.0f} us "
          f"per query located; pooled intra-replicate correlation {rho:.4f}: the rule's K = {k} "
          f"(at most trials / {design.MIN_REPLICATES})")


if __name__ == "__main__":
    main()
