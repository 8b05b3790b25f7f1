"""Cost per core of a pass over one training set spread over Ray actors, against an in-process pass.

One pass = pricing B directions against all N rows (the solvers' dominant pass: one blocked
product per block, the k best chunk winners per direction kept).  Three ways, interleaved
round by round so load bursts hit all of them:

* ``local``: :class:`~mc_hull.solvers.sources.Streamed` over an in-memory :class:`ArraySource`
  (one core);
* ``actors-1``, ``actors-2``: :class:`~mc_hull.distributed.blocks.ActorSource` with 1 and 2 holders
  (X held by them), the driver only reducing partials.

Cost per core = wall seconds x cores used; the ratio to ``local`` is the overhead of distribution
(object store round trips, pickling partials, the driver's reduction).  Also prints a whole
``StreamSolver.decide`` (several passes) both ways, with its passes and the answers compared.

    python benchmarks/actor_source.py [--n 2000000] [--d 16] [--queries 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2_000_000)
    ap.add_argument("--d", type=int, default=16)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--block-rows", type=int, default=1 << 17)
    args = ap.parse_args()

    import ray

    from mc_hull.distributed.blocks import ActorSource
    from mc_hull.solvers.sources import ArraySource, Streamed
    from mc_hull.solvers.stream import StreamSolver

    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.n, args.d))
    Q = rng.standard_normal((args.queries, args.d))
    src = ArraySource(X, args.block_rows)
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="warning")
    ways = {"local": (src, 1)}
    actors = {k: ActorSource(src, holders=k, hold=True) for k in (1, 2)}
    for k, a in actors.items():
        ways[f"actors-{k}"] = (a, k)
    views = {name: Streamed(s) for name, (s, _) in ways.items()}
    W = views["local"].frame.map(Q)
    k = args.d + 1
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.rounds):
        for name, view in views.items():
            t0 = time.perf_counter()
            view.price(W, k)
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["local"])
    print(f"N = {args.n:,}, d = {args.d}, {args.queries} directions, k = {k}, X = {X.nbytes / 2**30:.2f} GiB, "
          f"load {os.getloadavg()[0]:.1f}")
    for name, (_, cores) in ways.items():
        med = statistics.median(times[name])
        print(f"  {name:9s} pass {med:7.3f} s (min {min(times[name]):.3f}), cores {cores}, "
              f"cost per core {med * cores / base:.2f}x local")
    decided = {}
    for name in ("local", "actors-2"):
        solver = StreamSolver(fallbacks=())
        t0 = time.perf_counter()
        decided[name] = solver.decide(ways[name][0], Q[:100] * 0.8)
        print(f"  decide 100 queries, {name}: {time.perf_counter() - t0:.2f} s, {solver.passes} passes")
    same = np.array_equal(decided["local"].status, decided["actors-2"].status) and np.array_equal(
        decided["local"].certificate, decided["actors-2"].certificate, equal_nan=True)
    print(f"  answers identical: {same}")
    for a in actors.values():
        a.close()
    ray.shutdown()


if __name__ == "__main__":
    main()
