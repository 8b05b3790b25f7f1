"""Benchmark: what progress from inside units costs (interleaved runs with progress on and off).

Usage: ``python benchmarks/progress_overhead.py [--pairs 6] [--dims 10] [--trials 200] [--budget 16M]
[--nmax 1e6] [--queries-per-set 10] [--shard-trials 40]``

Runs the same nested spec (30 sizes from 100 to ``--nmax``) serially (``mc_hull.runs.runner.execute``, one process) into fresh
directories, alternating ``MC_HULL_PROGRESS=1`` (reports from inside units, the meter's clock
thread printing lines to a non-terminal log, the progress record) and ``MC_HULL_PROGRESS=0``
(none of it), the order flipped in every pair so that load bursts on this shared machine hit
both.  Reports per pair the wall and CPU seconds (CPU: this process, all threads) and the
median ratio on/off, and checks that the rows are identical (all columns but ``solve_seconds``).
On a loaded machine the ratios are noisy (a few %), so the machinery's cost is also accounted
directly: the time spent inside every reporting call the units make (``progress.update``,
``replicate``, ``due``, the state sent included) and the CPU time of the meter's clock thread
(lines, record writes), against the wall time of the runs with progress on.
``--budget`` sets ``MC_HULL_MEMORY_BUDGET`` (the streamed search when X exceeds it); ``--budget 0``
keeps X in memory.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import io  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mc_hull import progress
from mc_hull.runs import runner  # noqa: E402
from mc_hull.jobs.nested import NestedJob  # noqa: E402
from mc_hull.spec import Spec  # noqa: E402
from mc_hull.store import ResultStore  # noqa: E402


#: Seconds spent inside the reporting calls of the units, and the meter's clock thread CPU seconds.
SPENT = {"calls": 0.0, "n": 0, "clock": 0.0}


def _timed(fn):
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SPENT["calls"] += time.perf_counter() - t0
            SPENT["n"] += 1
    return wrapper


def account() -> None:
    """Time every reporting call the units make, and keep the clock thread's CPU time."""
    for name in ("update", "replicate", "due"):
        setattr(progress, name, _timed(getattr(progress, name)))
    close = runner.Progress.close

    def closing(self, *args, **kwargs):
        close(self, *args, **kwargs)
        SPENT["clock"] += self.clock_cpu

    runner.Progress.close = closing


def one(spec: Spec, out: str, on: bool) -> tuple[float, float, str]:
    os.environ["MC_HULL_PROGRESS"] = "1" if on else "0"
    log = io.StringIO()        # not a terminal: lines, as in a log file
    w0, c0 = time.perf_counter(), time.process_time()
    runner.execute(spec, out, backend="serial", job=NestedJob(spec), log=log)
    return time.perf_counter() - w0, time.process_time() - c0, log.getvalue()


def rows(out: str, run_id: str) -> dict:
    t = ResultStore(out).trials(run_id).drop(["solve_seconds"]).sort_by(
        [("n", "ascending"), ("replicate", "ascending"), ("query", "ascending")])
    return t.to_pydict()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--pairs", type=int, default=6)
    p.add_argument("--dims", type=int, default=10)
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--budget", default="16M")
    p.add_argument("--nmax", type=float, default=1e6)
    p.add_argument("--queries-per-set", type=int, default=10)
    p.add_argument("--shard-trials", type=int, default=40)
    p.add_argument("--seconds", type=float, default=10.0, help="MC_HULL_PROGRESS_SECONDS (default 10)")
    args = p.parse_args()
    if args.budget != "0":
        os.environ["MC_HULL_MEMORY_BUDGET"] = args.budget
    runner.PROGRESS_SECONDS = args.seconds
    sizes = sorted({int(round(n)) for n in np.geomspace(100, args.nmax, 30)})
    spec = Spec.from_dict({"distribution": "gaussian", "dims": [args.dims], "sizes": sizes, "trials": args.trials,
                           "queries_per_set": args.queries_per_set, "seed": 1, "nested": True,
                           "shard_trials": args.shard_trials})
    ratios_w, ratios_c = [], []
    reference = None
    account()
    wall_on = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.pairs):
            order = (True, False) if i % 2 == 0 else (False, True)
            got = {}
            for on in order:
                out = f"{tmp}/{i}-{'on' if on else 'off'}"
                got[on] = one(spec, out, on)
                r = rows(out, spec.run_id)
                reference = reference or r
                assert r == reference, "rows differ between runs"
            (w1, c1, log), (w0, c0, _) = got[True], got[False]
            wall_on += w1
            ratios_w.append(w1 / w0)
            ratios_c.append(c1 / c0)
            print(f"pair {i}: on {w1:.2f} s wall {c1:.2f} s CPU | off {w0:.2f} s wall {c0:.2f} s CPU | "
                  f"{len(log.splitlines())} log lines", flush=True)
    print(f"median ratio on/off: wall {statistics.median(ratios_w):.4f}, CPU {statistics.median(ratios_c):.4f} "
          f"({args.pairs} pairs; rows identical)")
    print(f"accounted: {SPENT['n']:,} reporting calls took {SPENT['calls']:.4f} s and the meter's clock "
          f"{SPENT['clock']:.4f} s CPU, {100 * (SPENT['calls'] + SPENT['clock']) / wall_on:.3f}% of the "
          f"{wall_on:.1f} s wall of the runs with progress on")
    return 0


if __name__ == "__main__":
    sys.exit(main())
