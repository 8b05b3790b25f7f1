"""Fuzz every subcommand's options with bad values: each case must end in one line and exit status 2
(or succeed), never a traceback, a hang or a write outside its own scratch directory.

Used by tests/test_cli_fuzz.py (a sample) and runnable whole: ``python tests/cli_fuzz.py [--all]``.
Each case runs in a forked child of one process (the package imported once), with an alarm.
"""

from __future__ import annotations

import io
import itertools
import os
import signal
import sys
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

#: Values that are wrong for (nearly) every option; FILE, DIR, UNWRITABLE, MISSING are replaced by paths.
BAD = ["-1", "0", "-0", "1e400", "-1e400", "nan", "inf", "-inf", "", " ", "abc", "1.5", "2.5e-324",
       "99999999999999999999999", "0x10", "1,,2", "..", "FILE", "DIR", "UNWRITABLE", "MISSING", "-", "ñ" * 3,
       "x" * 5000]

#: subcommand -> (base argv that is valid and fast, options with values to fuzz, positional slot or None)
def commands(tmp: Path, results: Path) -> dict:
    tr, te = tmp / "tr.npy", tmp / "te.npy"
    return {
        "run": (["run", "--dims", "2", "--sizes", "5", "--trials", "4", "--serial", "--no-progress", "--out", "OUT"],
                ["--preset", "--distribution", "--param", "--dims", "--sizes", "--trials", "--queries-per-set",
                 "--seed", "--solver", "--tol", "--shard-trials", "--target-halfwidth", "--max-trials", "--measure",
                 "--out", "--workers", "--spec-json", "--format"], "SPEC"),
        "hull-test": (["hull-test", "--train", str(tr), "--test", str(te), "--serial", "--out", "OUT"],
                      ["--train", "--test", "--dataset", "--preset", "--reduce", "--image-shape", "--out", "--solver",
                       "--tol", "--seed", "--workers", "--measure", "--format"], None),
        "query": (["query", str(results)], ["--format", "--run"], "DIR"),
        "plot": (["plot", str(results), "--out", "FIG"], ["--out", "--distribution", "--dims", "--run", "--dimension",
                                                       "--dpi"], "DIR"),
        "dashboard": (["dashboard", str(results), "--port", "1"], ["--port", "--host"], "DIR"),
        "submit": (["submit", "--address", "http://127.0.0.1:9", "--no-wait", "--out", "OUT"],
                   ["--preset", "--address", "--out", "--working-dir"], "SPEC"),
        "status": (["status", "--address", "http://127.0.0.1:9", "raysubmit_x"], ["--address"], "ID"),
    }


def setup(tmp: Path) -> Path:
    """Input files and a small results directory; returns the results directory."""
    import numpy as np

    from mc_hull.runs.runner import execute
    from mc_hull.spec import Spec

    rng = np.random.default_rng(0)
    np.save(tmp / "tr.npy", rng.standard_normal((30, 3)))
    np.save(tmp / "te.npy", rng.standard_normal((5, 3)))
    (tmp / "file.txt").write_text("not a directory\n")
    (tmp / "dir").mkdir()
    results = tmp / "results"
    execute(Spec(dims=(2,), sizes=(5, 10), trials=20, queries_per_set=10, seed=1), str(results),
            backend="serial", progress=False)
    return results


def cases(tmp: Path, results: Path, sample: int | None = None):
    """(name, argv) per case: each option of each subcommand with each bad value, and each positional."""
    subs = {"FILE": str(tmp / "file.txt"), "DIR": str(tmp / "dir"), "UNWRITABLE": "/proc/mc-hull-fuzz/x",
            "MISSING": str(tmp / "missing" / "deeper")}
    out = []
    for cmd, (base, options, positional) in commands(tmp, results).items():
        for opt, value in itertools.product(options, BAD):
            argv = list(base)
            v = subs.get(value, value)
            if opt in argv:
                argv[argv.index(opt) + 1] = v
            else:
                argv += [opt, v]
            out.append((f"{cmd} {opt} {value[:12]!r}", argv))
        if positional:
            for value in BAD:
                v = subs.get(value, value)
                argv = list(base)
                if positional == "DIR":
                    argv[1] = v
                elif positional == "ID":
                    argv[-1] = v
                else:
                    argv.append(v)
                out.append((f"{cmd} {positional} {value[:12]!r}", argv))
    if sample:
        import random

        random.Random(0).shuffle(out)
        out = out[:sample]
    return out


def run_case(argv: list[str], scratch: Path, timeout: int = 60) -> tuple[int, str]:
    """Exit status and stderr of ``mc-hull argv`` in a forked child (status -9: timed out, -1: crashed)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        signal.alarm(timeout)
        err = io.StringIO()
        code = -1
        try:
            os.chdir(scratch)
            from mc_hull.cli import main

            argv = [str(scratch / "out") if a == "OUT" else str(scratch / "fig.png") if a == "FIG" else a
                    for a in argv]
            with redirect_stdout(io.StringIO()), redirect_stderr(err):
                try:
                    code = main(argv)
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else 2
        except BaseException:  # noqa: BLE001 - a traceback is what we look for
            import traceback

            err.write("Traceback (escaped main)\n" + traceback.format_exc())
        os.write(w, f"{code}\n{err.getvalue()}".encode("utf-8", "replace"))
        os._exit(0)
    os.close(w)
    chunks = []
    while True:
        chunk = os.read(r, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    text = b"".join(chunks).decode("utf-8", "replace")
    if not text:
        return (-9 if os.WIFSIGNALED(status) else -1), ""
    code, _, err = text.partition("\n")
    return int(code), err


#: Seconds a dashboard case may run: a valid one serves until stopped ("served").
SERVE_SECONDS = 6


def verdict(code: int, err: str, argv=()) -> str:
    """"ok" (exit 0 or 3), "refused" (exit 2 in one line), "served" (a dashboard still serving), or what is wrong."""
    lines = [line for line in err.strip().splitlines() if line.strip()]
    if "Traceback" in err:
        return "traceback"
    if code == -9 and argv and argv[0] == "dashboard":
        return "served"
    if code in (0, 3):
        return "ok"
    if code == 2 and len(lines) == 1:
        return "refused"
    if code == -9:
        return "hang"
    return f"exit {code}, {len(lines)} lines"


def main(argv=None) -> int:
    import json

    argv = list(sys.argv[1:] if argv is None else argv)
    sample = None if "--all" in argv else 150
    first = int(argv[argv.index("--from") + 1]) if "--from" in argv else 0   # resume a long pass at case FIRST
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        results = setup(tmp)
        tally: dict[str, int] = {}
        bad = []
        for i, (name, args) in enumerate(cases(tmp, results, sample)):
            if i < first:
                continue
            scratch = tmp / f"case{i}"
            scratch.mkdir()
            code, err = run_case(args, scratch, SERVE_SECONDS if args[0] == "dashboard" else 60)
            v = verdict(code, err, args)
            tally[v] = tally.get(v, 0) + 1
            row = {"case": name, "verdict": v, "stderr": err.strip().splitlines()[-2:]}
            if v not in ("ok", "refused", "served"):
                bad.append(row)
            print(json.dumps(row), flush=True)
        print(json.dumps({"tally": tally, "wrong": bad}))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
