"""One replicate of the Gaussian nested transition run, streamed in this process: passes, rows drawn, CPU.

The run's own grid (40 sizes for p from 0.02 to 0.95, ``auto_grid``), K from the spec's cost rule at
10^4 trials per size, replicate 0, X held up to ``held_bytes(d)`` of ``MC_HULL_MEMORY_BUDGET`` and the
rest regenerated from its keys on every pass.  Checks the cost model's per-replicate CPU
(``NestedJob.estimate`` over the run's replicates) against a measured replicate.

    python benchmarks/nested_replicate.py [--d 18]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, default=18)
    ap.add_argument("--sieve", type=float, nargs="+", default=[None],
                    help="sieve fractions to run in turn (default: the law's; 0 prices every row)")
    ap.add_argument("--replicate", type=int, default=0)
    args = ap.parse_args()
    from mc_hull.jobs.nested import NestedJob
    from mc_hull.nested import stream
    from mc_hull.runs.adaptive import auto_grid
    from mc_hull.samplers import keyed_source
    from mc_hull.spec import Spec

    d = args.d
    grid = auto_grid("gaussian", [d], points=40, p_range=(0.02, 0.95), max_n=10**13, log=io.StringIO())[d]
    n = int(grid[-1])
    spec = Spec.from_dict(dict(distribution="gaussian", dims=(d,), sizes=tuple(int(g) for g in grid), trials=10000,
                               nested=True, seed=2026))
    K, R = spec.k_for(d, n), spec.replicates_for(d, n)
    model = NestedJob(spec).estimate().cpu_seconds / R
    src = keyed_source(spec, d, n, args.replicate, queries=K)
    print(f"d = {d}, N up to {n:,}, K = {K}, {R} replicates; X held {stream.held_bytes(d) / 2**30:.1f} GiB of "
          f"{8 * n * d / 2**30:.1f} GiB; model {model:.0f} CPU-s per replicate; load {os.getloadavg()[0]:.1f}",
          flush=True)
    for sieve in args.sieve:
        t0, c0 = time.perf_counter(), time.process_time()
        res = stream.streamed_entry_sizes(src, src.queries(), grid, budget=stream.held_bytes(d), sieve=sieve)
        cpu = time.process_time() - c0
        print(f"sieve {stream.SIEVE if sieve is None else sieve}: passes {res.passes}, rows skipped {res.sieved / n:.2f} N, rows drawn "
              f"{res.regenerated / n:.2f} N, engine calls {int(res.solves.sum())}, "
              f"{time.perf_counter() - t0:.0f} s wall, {cpu:.0f} CPU-s ({cpu / model:.2f}x the model), "
              f"located {res.located.mean():.3f}, brackets {hashlib.sha1(res.low.tobytes() + res.high.tobytes()).hexdigest()[:10]}; "
              f"load {os.getloadavg()[0]:.1f}", flush=True)

if __name__ == "__main__":
    main()
