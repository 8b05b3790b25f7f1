"""Passes per streamed nested replicate with and without speculation on the next probe up the tree.

One replicate of a Gaussian nested run (K queries located on a grid of 40 sizes up to N) by
:func:`mc_hull.nested.stream.streamed_entry_sizes`, in this process on one core, with
``SPECULATE`` off and on alternately (so load bursts hit both), with X held in memory (a budget
larger than X) and regenerated from its keys on every pass (budget 0).  Printed per run: passes,
rows drawn (units of N), wall and CPU seconds of the search, and whether the brackets of the two
ways agree.

    python benchmarks/nested_passes.py [--d 14] [--n 4e6] [--k 333] [--replicates 3]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, default=14)
    ap.add_argument("--n", type=float, default=4e6)
    ap.add_argument("--k", type=int, default=333)
    ap.add_argument("--replicates", type=int, default=3)
    args = ap.parse_args()

    from mc_hull import seeding
    from mc_hull.nested import stream
    from mc_hull.samplers import keyed_source
    from mc_hull.spec import Spec

    d, n = args.d, int(args.n)
    sizes = np.unique(np.geomspace(2 * d, n, 40).astype(np.int64))
    spec = Spec.from_dict(dict(distribution="gaussian", dims=(d,), sizes=(n,), trials=args.k,
                               queries_per_set=args.k, seed=2026))
    print(f"d = {d}, N = {n:,}, K = {args.k}, {len(sizes)} sizes; load average {os.getloadavg()[0]:.1f}")
    for r in range(args.replicates):
        src = keyed_source(spec, d, n, r, queries=args.k)
        Q = src.queries()
        for budget, where in ((8 * d * (n + seeding.block_rows(d)), "held"), (0, "regenerated")):
            got = {}
            for on in ((False, True) if r % 2 == 0 else (True, False)):
                stream.SPECULATE = on
                c0, t0 = time.process_time(), time.perf_counter()
                res = stream.streamed_entry_sizes(src, Q, sizes, budget=budget)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                got[on] = res
                print(f"replicate {r} X {where:11s} speculate {'on ' if on else 'off'}: {res.passes:3d} passes, "
                      f"{res.regenerated / n:5.1f} N drawn, {wall:6.1f} s wall, {cpu:6.1f} s CPU", flush=True)
            same = np.array_equal(got[False].low, got[True].low) and np.array_equal(got[False].high, got[True].high)
            print(f"replicate {r} X {where}: brackets agree: {same}", flush=True)


if __name__ == "__main__":
    main()
