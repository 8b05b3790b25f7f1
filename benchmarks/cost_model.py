"""The cluster cost model: measured constants here, predictions for 16-, 64- and 512-core clusters.

Two kinds of work, two models:

* **One training set over the cluster** (a hull-test against a huge X, or a huge Monte Carlo cell):
  the streaming solver's work is ``N d`` multiply-adds per *priced query-row* — a direction priced,
  a margin checked or a nearest point sought over all N rows — and a run prices about ``m`` of
  them per test point (measured here: ``Streamed.priced / queries``).  Wall time on ``c`` cores
  is ``N d m n_test t_mac / (c e)`` plus, when X cannot be held, the reading or drawing of X on
  every pass, with ``t_mac`` the per-core time of one multiply-add in these blocked products and
  ``e`` the efficiency of a distributed pass per core (both measured here: ``e`` from one and two
  holders against the in-process pass, interleaved).
* **Nested curves** (`--sizes auto --nested`): the project's plan estimate
  (:meth:`mc_hull.jobs.nested.NestedJob.estimate`, constants measured in ``mc_hull.stats.design``) gives
  the CPU seconds; a replicate is one unit, so ``c`` cores finish in ``max(cpu / c, cpu / R)``
  with ``R`` replicates (a nested replicate is not spread over holders yet: cores beyond ``R`` idle).

    python benchmarks/cost_model.py [--n 200000] [--d 128] [--queries 400] [--rounds 3]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

CORES = (16, 64, 512)
#: Memory per core assumed for the predicted clusters (a common 4 vCPU / 16 GiB node shape).
GIB_PER_CORE = 4


def embeddings(n: int, d: int, seed: int = 0, dtype=np.float32) -> np.ndarray:
    """Embedding-like rows: 50 clusters on a decaying spectrum (as benchmarks/embeddings.py)."""
    rng = np.random.default_rng(seed)
    spectrum = 1.0 / np.sqrt(1.0 + np.arange(d))
    centres = rng.standard_normal((50, d)) * spectrum * 2.0
    X = centres[rng.integers(0, 50, n)] + rng.standard_normal((n, d)) * spectrum
    return X.astype(dtype)


def measure(args):
    import ray

    from mc_hull.distributed.blocks import ActorSource
    from mc_hull.solvers.sources import ArraySource
    from mc_hull.solvers.stream import StreamSolver

    X = embeddings(args.n + args.queries, args.d)
    Q, X = X[:args.queries].astype(np.float64), X[args.queries:]
    src = ArraySource(X, 1 << 14)
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="warning")
    ways = {"in-process": (src, 1), "actors-1": (ActorSource(src, holders=1, hold=True, cpus=0), 1),
            "actors-2": (ActorSource(src, holders=2, hold=True, cpus=0), 2)}
    times = {name: [] for name in ways}
    priced = {}
    for _ in range(args.rounds):
        for name, (source, _) in ways.items():
            solver = StreamSolver(fallbacks=())
            t0 = time.perf_counter()
            dec = solver.decide(source, Q)
            times[name].append(time.perf_counter() - t0)
            priced[name] = solver.data.priced
    for name, (source, _) in ways.items():
        if name != "in-process":
            source.close()
    ray.shutdown()
    local = statistics.median(times["in-process"])
    m = priced["in-process"] / args.queries
    t_mac = local / (args.n * args.d * priced["in-process"])
    eff = {name: local / (statistics.median(t) * cores) for name, (t, (_, cores)) in
           ((n, (times[n], ways[n])) for n in ways)}
    print(f"measured: N = {args.n:,}, d = {args.d}, {args.queries} queries (float32 X, embedding-like), "
          f"load {os.getloadavg()[0]:.1f}; decided {np.mean(dec.status != -1):.3f}")
    for name in ways:
        print(f"  {name:10s} median {statistics.median(times[name]):7.2f} s over {args.rounds} "
              f"(min {min(times[name]):.2f}), per-core efficiency e = {eff[name]:.2f}")
    print(f"  priced query-rows per query m = {m:.1f}; t_mac = {t_mac * 1e9:.3f} ns per multiply-add per core")
    return t_mac, m, min(eff["actors-1"], eff["actors-2"] if eff["actors-2"] > 0 else 1.0)


def predict_hulltest(t_mac, m, e, n=10**7, d=768, n_test=10**4):
    x_bytes = n * d * 4
    print(f"\nhull-test: N = {n:,} x d = {d} (float32 X: {x_bytes / 2**30:.1f} GiB), {n_test:,} test points, "
          f"m = {m:.1f}, e = {e:.2f}")
    work = n * d * m * n_test * t_mac
    for c in CORES:
        held = x_bytes <= c * GIB_PER_CORE * 2**30 / 2
        print(f"  {c:4d} cores ({c * GIB_PER_CORE} GiB): X {'held' if held else 'read every pass'}; "
              f"predicted {work / (c * e) / 3600:6.2f} h")


def predict_nested():
    from mc_hull.runs.adaptive import auto_grid
    from mc_hull.jobs.nested import NestedJob
    from mc_hull.spec import Spec
    from mc_hull.distributed.blocks import DRAW_SHARE, EFFICIENCY, MASTER_SHARE, spread_plan

    print("\nnested Gaussian transitions, 10^4 trials per size, p = 0.02 .. 0.95 (40 sizes):")
    for d in (16, 18, 20, 24):
        grid = auto_grid("gaussian", [d], points=40, p_range=(0.02, 0.95), max_n=10**13, log=io.StringIO())[d]
        spec = Spec(distribution="gaussian", dims=(d,), sizes=tuple(grid), trials=10000, nested=True, seed=0)
        est = NestedJob(spec).estimate()
        reps = spec.replicates_for(d, grid[-1])
        cpu = est.cpu_seconds
        walls = ", ".join(f"{c} cores {max(cpu / c, cpu / reps) / 3600:.1f} h" for c in (2, *CORES))
        print(f"  d = {d}: N up to {grid[-1]:.3g} (X {grid[-1] * d * 8 / 2**30:.0f} GiB per replicate), "
              f"{reps} replicates, {cpu / 3600:.1f} CPU-h: {walls}")
        spread = []
        for c in CORES:    # the runner's choice (spread_plan) of replicates at once and holders for each
            u, h = spread_plan(reps, c, int(grid[-1]) * d * 8, c * GIB_PER_CORE * 2**30)
            one = 1.0 if h == 0 else MASTER_SHARE + (1 - MASTER_SHARE - DRAW_SHARE) / (h * EFFICIENCY) + (
                0 if u * int(grid[-1]) * d * 8 <= c * GIB_PER_CORE * 2**29 else DRAW_SHARE / (h * EFFICIENCY))
            spread.append(f"{c} cores {-(-reps // u) * one * cpu / reps / 3600:.2f} h ({u} x {h} holders)")
        print("    spread as the runner would: " + ", ".join(spread))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--queries", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    t_mac, m, e = measure(args)
    predict_hulltest(t_mac, m, e)
    predict_nested()


if __name__ == "__main__":
    main()
