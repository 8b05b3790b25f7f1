"""Benchmark: a hull-test of embedding-like float32 data, the in-memory float64 path against passes over X held in float32.

Usage::

    python benchmarks/embeddings.py DATA --n 100000 --d 1024 --test 10000     # once
    python benchmarks/hulltest_embeddings.py DATA [--points 128] [--reps 2] [--measure distance]

Each measurement runs in its own process (one BLAS thread, as a Ray worker), so each
reports its own peak RSS; the two paths alternate (old, new, old, new, ...) on the
same sample of test points, since the machine is shared and only ratios from
interleaved runs mean anything.  ``old`` is what ``mc-hull hull-test`` ran before
(``decide_points`` on X as a float64 array: the registry's solver, then
``distances``); ``new`` is :func:`mc_hull.jobs.hulltest.decide_points` on X held in
float64 frame coordinates (:class:`~mc_hull.solvers.sourced.MappedSource`, what a hull-test
holds when ``8 n d`` fits ``MC_HULL_MEMORY_BUDGET``) and ``new32`` on X held as float32
(:func:`~mc_hull.solvers.sourced.held_array`, mapped per pass), one batch of test points per pass.  The decisions of the two are compared point by point.
The load average is printed with each run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one(data: str, path: str, points: int, measure: str, offset: int) -> dict:
    """Run one path in this process; a JSON line with seconds per point, peak RSS and the answers."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    import resource

    import numpy as np

    sys.path.insert(0, str(ROOT))
    from mc_hull.runs.filesource import open_source
    from mc_hull.jobs.hulltest import decide_points
    from mc_hull.solvers.sourced import MappedSource, held_array

    src = open_source(os.path.join(data, "train"), validate=False)
    Q = np.load(os.path.join(data, "test.npy"), mmap_mode="r")[offset:offset + points].astype(np.float64)
    x_bytes = src.nbytes()
    if path == "old":
        X = src.load().astype(np.float64)     # what load_array gave the in-memory path
    elif path == "new":
        X = MappedSource(src)                 # what hull-test holds when 8 n d fits: mapped once, from the files
        src._cache.clear()
    else:
        X = held_array(src.load())            # "new32": held as float32, mapped per pass
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    out = decide_points(X, Q, tol=1e-9, solver="auto", measure=measure)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"path": path, "points": points, "ms_per_point": 1e3 * seconds / points, "peak_rss_mib": peak / 2**20,
            "rss_after_load_mib": base / 2**20, "x_float32_mib": x_bytes / 2**20,
            "status": out["status"].tolist(), "high": out.get("distance_high", np.zeros(0)).tolist(),
            "low": out.get("distance_low", np.zeros(0)).tolist(), "load": os.getloadavg()[0]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data")
    p.add_argument("--points", type=int, default=128)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--measure", choices=("membership", "distance"), default="distance")
    p.add_argument("--paths", default="old,new,new32")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--offset", type=int, default=0)
    a = p.parse_args(argv)
    if a.one:
        print(json.dumps(one(a.data, a.one, a.points, a.measure, a.offset)))
        return 0
    results = {}
    for rep in range(a.reps):
        for path in a.paths.split(","):
            proc = subprocess.run([sys.executable, __file__, a.data, "--one", path, "--points", str(a.points),
                                   "--measure", a.measure, "--offset", str(a.offset)],
                                  capture_output=True, text=True, check=True)
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            results.setdefault(path, []).append(r)
            print(f"rep {rep} {path:3s}: {r['ms_per_point']:7.1f} ms/point ({a.measure}, {a.points} points, one core), "
                  f"peak RSS {r['peak_rss_mib']:6.0f} MiB (X float32 {r['x_float32_mib']:.0f} MiB), "
                  f"load {r['load']:.1f}", flush=True)
    if "old" in results and "new" in results:
        for other in [p for p in results if p not in ("old", "new")]:
            print(f"{other} decisions equal new's: {results[other][-1]['status'] == results['new'][-1]['status']}")
        import numpy as np

        o, n = results["old"][-1], results["new"][-1]
        same = o["status"] == n["status"]
        ratio = np.median([x["ms_per_point"] for x in results["old"]]) / np.median(
            [x["ms_per_point"] for x in results["new"]])
        print(f"decisions identical: {same}; old/new time ratio (medians): {ratio:.2f}")
        if a.measure == "distance":
            lo, hi = np.array(n["low"]), np.array(n["high"])
            olo, ohi = np.array(o["low"]), np.array(o["high"])
            print(f"distance intervals overlap: {bool(np.all((lo <= ohi * (1 + 1e-12)) & (olo <= hi * (1 + 1e-12))))}")
        for path in results:
            ms = np.median([x["ms_per_point"] for x in results[path]])
            print(f"{path}: {ms:.1f} ms/point one core -> 10^4 points on 2 cores: {ms * 1e4 / 2 / 60e3:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
