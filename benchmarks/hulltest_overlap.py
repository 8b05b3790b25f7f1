"""A hull-test over blocks held by actors: one unit at a time on the driver against two side by side.

    python benchmarks/embeddings.py DATA --n 100000 --d 1024 --test 10000     # once
    python benchmarks/hulltest_overlap.py DATA [--points 2048] [--pairs 2] [--measure distance]

Each run is a fresh ``mc-hull hull-test --train DATA/train --test T --out R`` on embedded Ray
(X held by the holders), in its own process, with ``mc_hull.runs.hulltest.UNITS_IN_FLIGHT`` set
to 1 or 2; the two alternate (1, 2, 2, 1, ...) so load bursts hit both.  Printed per run: wall
seconds of the whole command, the load average, and whether the stored rows equal the first
run's (every column, bit for bit).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = ("import sys; import mc_hull.runs.hulltest as H; H.UNITS_IN_FLIGHT = int(sys.argv[1]); "
         "from mc_hull.cli import main; sys.exit(main(sys.argv[2:]))")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--points", type=int, default=2048)
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--measure", default="distance")
    args = ap.parse_args()
    import numpy as np

    tmp = tempfile.mkdtemp(prefix="overlap-")
    test = os.path.join(tmp, "test.npy")
    np.save(test, np.load(os.path.join(args.data, "test.npy"), mmap_mode="r")[:args.points])
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    first = None
    order = [k for r in range(args.pairs) for k in ((1, 2) if r % 2 == 0 else (2, 1))]
    for i, k in enumerate(order):
        out = os.path.join(tmp, f"r{i}")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", CHILD, str(k), "hull-test", "--train", os.path.join(args.data, "train"),
                        "--test", test, "--measure", args.measure, "--out", out],
                       env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        import pyarrow as pa
        import pyarrow.parquet as pq
        got = pa.concat_tables([pq.read_table(f) for f in sorted(Path(out).rglob("points-*.pq"))])
        same = "-" if first is None else bool(got.equals(first))
        first = got if first is None else first
        print(f"units in flight {k}: {wall:6.1f} s wall, load {os.getloadavg()[0]:.1f}, rows equal the first run's: "
              f"{same}", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
