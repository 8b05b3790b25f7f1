"""One streamed nested replicate in process against the same replicate over Ray block holders.

The Monte Carlo replicate of a nested run whose X exceeds the memory budget: K queries located on
a grid of 40 sizes up to N by :func:`mc_hull.nested.stream.streamed_entry_sizes`.  Two ways,
interleaved pair by pair so load bursts hit both:

* ``process``: in this process, one core; the first rows within ``--budget`` held, the rest
  regenerated from their keys on every pass;
* ``actors``: an :class:`~mc_hull.distributed.blocks.ActorSource` of ``--holders`` actors over the
  same keyed source: X held by them when it fits their budgets (drawn once, in parallel), else
  partly held and the rest regenerated on every pass by every holder on its own blocks.

Printed per run: wall seconds, CPU seconds (this process plus the holders' processes), passes, rows
drawn (in units of N) and whether the answers are identical.  Cost per core = CPU seconds.

    python benchmarks/nested_actors.py [--d 16] [--n 4.57e7] [--k 333] [--pairs 2] [--budget 4G]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def cpu_of(pids) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, default=16)
    ap.add_argument("--n", type=float, default=4.57e7)
    ap.add_argument("--k", type=int, default=333)
    ap.add_argument("--sizes", type=int, default=40)
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--holders", type=int, default=2)
    ap.add_argument("--budget", default="4G", help="MC_HULL_MEMORY_BUDGET: in-process held part, and per holder")
    args = ap.parse_args()
    os.environ["MC_HULL_MEMORY_BUDGET"] = args.budget

    import ray

    from mc_hull.nested import stream as nested_stream
    from mc_hull.stats.design import memory_budget
    from mc_hull.distributed.pool import WORKER_ENV
    from mc_hull.distributed.blocks import Placer
    from mc_hull.samplers import keyed_source
    from mc_hull.spec import Spec

    d, n = args.d, int(args.n)
    sizes = np.unique(np.geomspace(2 * d, n, args.sizes).astype(np.int64))
    spec = Spec.from_dict(dict(distribution="gaussian", dims=(d,), sizes=(n,), trials=args.k,
                               queries_per_set=args.k, seed=2026))
    ray.init(address="local", num_cpus=args.holders, include_dashboard=False, logging_level="warning",
             runtime_env={"env_vars": {**WORKER_ENV, "MC_HULL_MEMORY_BUDGET": args.budget}})
    place = Placer(holders=args.holders)
    me = [os.getpid()]
    print(f"d = {d}, N = {n:,} (X {8 * n * d / 2**30:.2f} GiB), K = {args.k}, {len(sizes)} sizes, "
          f"budget {memory_budget() / 2**30:.1f} GiB per process / holder, {args.holders} holders")
    results = {}
    for r in range(args.pairs):
        src = keyed_source(spec, d, n, r, queries=args.k)
        Q = src.queries()
        for way in ("process", "actors") if r % 2 == 0 else ("actors", "process"):
            if way == "process":
                c0, t0 = cpu_of(me), time.perf_counter()
                res = nested_stream.streamed_entry_sizes(src, Q, sizes, budget=nested_stream.held_bytes(d))
                wall, cpu, where = time.perf_counter() - t0, cpu_of(me) - c0, "in process"
            else:
                t0 = time.perf_counter()
                with place(src) as actors:
                    pids = me + [p for _, p, _ in actors.placement]
                    c0 = cpu_of(pids)
                    t1 = time.perf_counter()
                    res = nested_stream.streamed_entry_sizes(actors, Q, sizes, budget=0)
                    wall, cpu = time.perf_counter() - t0, cpu_of(pids) - c0
                    where = f"{actors.describe()}; placement {t1 - t0:.1f} s"
            results[(r, way)] = res
            print(f"replicate {r} {way:8s}: {wall:7.1f} s wall, {cpu:7.1f} s CPU, {res.passes} passes, "
                  f"{res.regenerated / n:5.2f} N drawn  ({where})", flush=True)
        a, b = results[(r, "process")], results[(r, "actors")]
        same = all(np.array_equal(getattr(a, f), getattr(b, f), equal_nan=True)
                   for f in ("low", "high", "low_value", "high_value", "directions"))
        print(f"replicate {r}: answers identical: {same}", flush=True)
    place.close()
    ray.shutdown()


if __name__ == "__main__":
    main()
