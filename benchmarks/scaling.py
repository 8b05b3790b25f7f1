"""Benchmark: trial throughput with 1 and 2 Ray actors (and in-process serial) on one embedded Ray.

Usage: ``python benchmarks/scaling.py [--dims 10] [--n 47129] [--trials 144000] [--rounds 2]``.

All timings come from one process and one Ray instance, in the order
serial, then ABBA rounds of (1 actor, 2 actors, 2 actors, 1 actor), each into a
fresh results directory, so the ratio 2-actor / 1-actor throughput is compared
under the same machine conditions.  Each timing covers creating the actors,
running every shard and committing every Parquet file (what ``mc-hull run``
pays after Ray has started); the steady rate leaves out actor start-up.  Prints a
markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mc_hull.runs import runner  # noqa: E402
from mc_hull.spec import Spec  # noqa: E402


def timed(spec: Spec, backend: str, workers: int | None) -> tuple[float, float]:
    """A full run of ``spec`` into a fresh directory.

    Returns
    -------
    seconds : float
        Wall time of the whole run (actor start-up included).
    steady : float
        Trials per second between the first and the last shard completion
        (Ray runs only; NaN for the serial backend): the throughput once actors are up.
    """
    from mc_hull.distributed import pool as distributed

    with tempfile.TemporaryDirectory(prefix="mc-hull-scaling-") as out:
        t0 = time.perf_counter()
        report = runner.execute(spec, out, backend=backend, workers=workers, progress=False,
                                log=open(os.devnull, "w"))
        seconds = time.perf_counter() - t0
    assert report.trials == spec.trials * len(spec.dims) * len(spec.sizes), report
    done = [t for t, kind, _ in distributed.LAST_EVENTS if kind == "done"] if backend == "ray" else []
    per_shard = spec.shard_trials
    steady = (len(done) - 1) * per_shard / (done[-1] - done[0]) if len(done) > 1 else float("nan")
    return seconds, steady


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", type=int, default=10)
    ap.add_argument("--n", type=int, default=47129, help="training-set size (default: p ~ 0.8 at d = 10)")
    ap.add_argument("--trials", type=int, default=144000)
    ap.add_argument("--shard-trials", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=2, help="ABBA rounds of (1, 2, 2, 1) actors")
    args = ap.parse_args(argv)

    import ray

    from mc_hull.distributed.pool import WORKER_ENV

    os.environ.update(WORKER_ENV)  # the serial baseline gets one BLAS thread too
    spec = Spec(distribution="gaussian", dims=(args.dims,), sizes=(args.n,), trials=args.trials,
                queries_per_set=100, seed=2026, shard_trials=args.shard_trials)
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="warning",
             log_to_driver=False, runtime_env={"env_vars": dict(WORKER_ENV)})
    try:
        times = {"serial": [timed(spec, "serial", None)], 1: [], 2: []}
        for _ in range(args.rounds):
            for w in (1, 2, 2, 1):
                times[w].append(timed(spec, "ray", w))
                print(f"# {w} actor(s): {times[w][-1][0]:.1f} s", file=sys.stderr)
    finally:
        ray.shutdown()

    print(f"cell: gaussian d={args.dims} N={args.n}, {args.trials} trials in "
          f"{-(-args.trials // args.shard_trials)} shards; {os.cpu_count()} CPUs\n")
    print("| backend | runs | median wall s | trials/s (wall) | vs 1 actor | steady trials/s | vs 1 actor |")
    print("|---|---|---|---|---|---|---|")
    base = statistics.median(t for t, _ in times[1])
    base_steady = statistics.median(r for _, r in times[1])
    for key, label in (("serial", "serial (in process)"), (1, "Ray, 1 actor"), (2, "Ray, 2 actors")):
        med = statistics.median(t for t, _ in times[key])
        steady = statistics.median(r for _, r in times[key])
        ratio = "" if steady != steady else f"{steady / base_steady:.2f}x"
        print(f"| {label} | {len(times[key])} | {med:.1f} | {args.trials / med:,.0f} | {base / med:.2f}x "
              f"| {'' if steady != steady else f'{steady:,.0f}'} | {ratio} |")
    print("\nsteady = trials/s between the first and the last shard completion (actors already up).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
