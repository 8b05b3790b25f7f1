"""Benchmark: peak memory of each block holder during a spread hull-test, against its share of X.

Usage::

    python benchmarks/embeddings.py DATA --n 100000 --d 1024 --test 10000     # once
    python benchmarks/holder_memory.py DATA [--points 512] [--workers 2] [--measure distance]

Runs ``mc-hull hull-test --train DATA/train --test T.npy --workers W`` (embedded Ray, X held
by ``W`` :class:`~mc_hull.distributed.blocks.BlockHolder` actors) in a subprocess, ``T.npy``
being the first ``--points`` test points of ``DATA/test.npy``, and samples every process of
that Ray instance (the subprocess's descendants) from ``/proc/PID/status`` every 50 ms:
``VmHWM`` (the kernel's peak RSS, so no peak falls between samples), and the largest
``RssAnon``, ``RssFile``, ``RssShmem`` and anon + file seen.  Then, in a fresh embedded Ray,
the baseline: an *empty holder* (a holder of the same file loader with no block, after a pass
over nothing: Ray's worker, numpy, pyarrow and mc_hull imported) and idle Ray workers.
Reports per holder its peak RSS, the holder's share of X (``n d itemsize / W``) and
``(peak - empty holder) / share``.  ``RssShmem`` is Ray's object store (the passes'
contexts and partial results), shared by the node's processes and budgeted by Ray apart from
the workers.  The load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))          # this checkout's mc_hull, here and (PYTHONPATH) in Ray's workers
os.environ["PYTHONPATH"] = str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
FIELDS = ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem")


def status(pid: int) -> dict | None:
    """The memory fields (bytes) of /proc/PID/status, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            text = fh.read()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in FIELDS:
            out[key] = int(rest.split()[0]) * 1024
    return out


def title(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def sample(root: int, seen: dict, stop: threading.Event) -> None:
    """Sample the descendants of ``root`` into ``seen[pid] = {title, max of each field, idle samples}``."""
    import psutil

    while not stop.is_set():
        try:
            kids = psutil.Process(root).children(recursive=True)
        except psutil.Error:
            return
        for p in kids:
            st = status(p.pid)
            if st is None:
                continue
            name = title(p.pid)
            rec = seen.setdefault(p.pid, {"titles": set(), "idle": []})
            rec["titles"].add(name.split()[0] if name else "")
            for key, value in st.items():
                rec[key] = max(rec.get(key, 0), value)
            rec["own"] = max(rec.get("own", 0), st.get("RssAnon", 0) + st.get("RssFile", 0))
            if name.startswith("ray::IDLE"):
                rec["idle"].append(st.get("VmRSS", 0))
        stop.wait(0.05)


def baselines(train_dir: str, settle: float = 5.0) -> dict:
    """RSS (bytes) of an idle Ray worker and of an empty holder, each in a fresh embedded Ray.

    The empty holder is a :class:`~mc_hull.distributed.blocks.BlockHolder` of the same file loader
    holding no block, after one pass over nothing (so every module a pass imports is imported): a
    holder's fixed cost, its share of X not included.
    """
    import psutil
    import ray

    from mc_hull.distributed.blocks import BlockHolder, _raw_rows_pass
    from mc_hull.runs.filesource import open_source

    import numpy as np

    ray.init(address="local", num_cpus=2, include_dashboard=False)     # one worker stays idle
    try:
        h = BlockHolder.options(num_cpus=0).remote(open_source(train_dir, validate=False), 0, 0, 0)
        ray.get(h.run.remote(_raw_rows_pass, np.zeros(0, dtype=np.intp)), timeout=300)
        time.sleep(settle)
        empty = ray.get(h.memory.remote(), timeout=60)
        idle = [status(p.pid)["VmRSS"] for p in psutil.Process().children(recursive=True)
                if title(p.pid).startswith("ray::IDLE") and status(p.pid)]
        ray.kill(h)
    finally:
        ray.shutdown()
    return {"empty": empty, "idle": idle}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", help="directory written by benchmarks/embeddings.py (train/, test.npy)")
    ap.add_argument("--points", type=int, default=512)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--measure", default="distance")
    ap.add_argument("--timeout", type=float, default=1800)
    args = ap.parse_args()

    import numpy as np

    from mc_hull.runs.filesource import open_source

    train = open_source(os.path.join(args.data, "train"), validate=False)
    share = train.nbytes() / args.workers
    with tempfile.TemporaryDirectory(prefix="holder-memory-") as tmp:
        test = np.load(os.path.join(args.data, "test.npy"), mmap_mode="r")[:args.points]
        np.save(os.path.join(tmp, "T.npy"), np.ascontiguousarray(test))
        del test
        cmd = [sys.executable, "-m", "mc_hull", "hull-test", "--train", os.path.join(args.data, "train"),
               "--test", os.path.join(tmp, "T.npy"), "--measure", args.measure, "--out", os.path.join(tmp, "out"),
               "--workers", str(args.workers)]
        env = dict(os.environ)
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        seen: dict = {}
        stop = threading.Event()
        th = threading.Thread(target=sample, args=(proc.pid, seen, stop), daemon=True)
        th.start()
        try:
            out, _ = proc.communicate(timeout=args.timeout)
        finally:
            stop.set()
            th.join()
        seconds = time.perf_counter() - t0
        load1 = os.getloadavg()
    base_run = baselines(os.path.join(args.data, "train"))
    holders = {pid: r for pid, r in seen.items() if any(t.startswith("ray::BlockHolder") for t in r["titles"])}
    idle = [v for r in seen.values() if r["idle"] for v in r["idle"]]
    base = statistics.median(idle) if idle else float("nan")
    mib = 2 ** 20
    print(out.strip().splitlines()[-1] if out.strip() else "(no output)")
    print(f"exit {proc.returncode}, {seconds:.0f} s, load average {load0[0]:.1f} -> {load1[0]:.1f}; "
          f"X {train.n} x {train.d} {train.dtype.name} = {train.nbytes() / mib:.0f} MiB, "
          f"{args.workers} holders, share {share / mib:.1f} MiB each; {args.points} test points, --measure {args.measure}")
    print(f"idle Ray worker RSS while the run started: median {base / mib:.0f} MiB "
          f"(min {min(idle) / mib if idle else float('nan'):.0f}, max {max(idle) / mib if idle else float('nan'):.0f}, "
          f"{len(idle)} samples); settled idle workers: "
          f"{', '.join(f'{v / mib:.0f}' for v in base_run['idle']) or 'none'} MiB")
    empty = base_run["empty"]
    base = empty["VmRSS"]
    print(f"empty holder (the holder's code and a file loader, no block, after a pass): RSS {base / mib:.0f} MiB "
          f"(anon {empty['RssAnon'] / mib:.0f}, file {empty['RssFile'] / mib:.0f}, shmem {empty['RssShmem'] / mib:.0f}) "
          "-- the baseline below")
    rows = []
    for pid, r in sorted(holders.items()):
        ratio = (r["VmHWM"] - base) / share
        own = r.get("own", 0)
        rows.append({"pid": pid, "peak_mib": r["VmHWM"] / mib, "max_anon_mib": r.get("RssAnon", 0) / mib,
                     "max_file_mib": r.get("RssFile", 0) / mib, "max_shmem_mib": r.get("RssShmem", 0) / mib,
                     "peak_own_mib": own / mib, "beyond_baseline_over_share": ratio,
                     "own_beyond_baseline_over_share": (own - base + empty["RssShmem"]) / share})
        print(f"holder {pid}: peak RSS {r['VmHWM'] / mib:.0f} MiB (largest anon {r.get('RssAnon', 0) / mib:.0f}, "
              f"file {r.get('RssFile', 0) / mib:.0f}, shmem {r.get('RssShmem', 0) / mib:.0f} MiB; "
              f"largest anon + file {own / mib:.0f} MiB); (peak - baseline) / share = {ratio:.2f}")
    print(json.dumps({"seconds": seconds, "share_mib": share / mib, "idle_start_mib": statistics.median(idle) / mib
                      if idle else None, "idle_settled_mib": [v / mib for v in base_run["idle"]],
                      "empty_holder": {k: v / mib for k, v in empty.items()}, "holders": rows,
                      "load": [load0[0], load1[0]]}))
    if proc.returncode:
        print(out[-4000:], file=sys.stderr)
        sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
