"""Measure how a run speaks: the longest silence in its log after the plan line, and its ETA's accuracy.

Usage: ``python benchmarks/log_gaps.py [--log FILE] -- COMMAND ...`` or ``python benchmarks/log_gaps.py --read FILE``

Runs COMMAND (e.g. ``python -m mc_hull run ...``) with stdout and stderr merged into a pipe (not a
terminal, as in a log file or a Ray job's log), stamps every line with its arrival time, and reports

* the longest gap between consecutive lines after the plan line (``mc-hull: plan:``), counting
  the gap from the last line to the command's end;
* the ETA printed by the first progress line at or beyond 25% of the run, against the real
  remaining time (from that line to the command's end), as a ratio.

``--log FILE`` keeps the stamped lines (seconds since start, then the line); ``--read FILE``
analyses such a file again.

Measured (2026-12-06, 2 cores shared with other jobs, load 16-27): ``MC_HULL_MEMORY_BUDGET=64M
mc-hull run --dims 14 --sizes auto --nested --trials 40 --shard-trials 20`` (40 sizes to N = 1.05e7,
streamed beyond 393,216 rows, K = 1, two units of 20 replicates, each unit 4-10 min):

======================  =========  ================  ==============================
run                     wall       longest silence   ETA at >= 25% / real remaining
======================  =========  ================  ==============================
before, ``--serial``    933 s      485 s             no line before 50%
after, ``--serial``     846 s      10.4 s            1,030 s / 507 s (x 1.98)
before, Ray (2 actors)  1,560 s    1,010 s           no line before 50%
after, Ray (2 actors)   881 s      12.6 s            852 s / 543 s (x 1.57)
======================  =========  ================  ==============================

(Before, Ray ran the two units one after the other on one actor; after, both at once.)
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time

ETA = re.compile(r"\((\d+(?:\.\d+)?)%[^)]*\).*ETA ([\d.]+) (s|min|h|days)")
UNITS = {"s": 1, "min": 60, "h": 3600, "days": 86400}


def stamped(command: list[str]) -> tuple[list[tuple[float, str]], float, int]:
    """``[(seconds since start, line)]``, the command's total seconds and its exit status."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines = []
    for line in proc.stdout:
        lines.append((time.perf_counter() - t0, line.rstrip("\n")))
    rc = proc.wait()
    return lines, time.perf_counter() - t0, rc


def analyse(lines: list[tuple[float, str]], end: float) -> dict:
    """Longest gap after the plan line; ETA at 25% against the real remaining time."""
    start = next((i for i, (_, text) in enumerate(lines) if "mc-hull: plan:" in text), 0)
    times = [t for t, _ in lines[start:]] + [end]
    gaps = [(b - a, i) for i, (a, b) in enumerate(zip(times[:-1], times[1:]))]
    gap, at = max(gaps) if gaps else (0.0, 0)
    out = {"lines": len(lines), "seconds": end, "max_gap_s": gap,
           "max_gap_after": lines[start + at][1][:160] if lines else "", "eta_ratio": None}
    for t, text in lines[start:]:
        m = ETA.search(text)
        if m and float(m.group(1)) >= 25:
            eta = float(m.group(2)) * UNITS[m.group(3)]
            out.update(eta_at_pct=float(m.group(1)), eta_printed_s=eta, eta_real_s=end - t,
                       eta_ratio=eta / max(end - t, 1e-9))
            break
    return out


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--read"]:
        lines = []
        for raw in open(argv[1]):
            t, _, text = raw.strip("\n").lstrip().partition(" ")
            lines.append((float(t), text))
        end = lines.pop()[0]
        for k, v in analyse(lines, end).items():
            print(f"{k}: {v:.3g}" if isinstance(v, float) else f"{k}: {v}")
        return 0
    if "--" not in argv:
        print(__doc__, file=sys.stderr)
        return 2
    cut = argv.index("--")
    p = argparse.ArgumentParser()
    p.add_argument("--log")
    args = p.parse_args(argv[:cut])
    lines, end, rc = stamped(argv[cut + 1:])
    if args.log:
        with open(args.log, "w") as fh:
            for t, text in lines:
                fh.write(f"{t:9.2f} {text}\n")
            fh.write(f"{end:9.2f} <end rc={rc}>\n")
    res = analyse(lines, end)
    for k, v in res.items():
        print(f"{k}: {v:.3g}" if isinstance(v, float) else f"{k}: {v}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
