"""Time the dashboard in a real browser: first chart and complete page, cold and warm.

    python benchmarks/dashboard_speed.py DIR [--cold 2] [--warm 2] [--width 1400] [--settle S] [--baseline]

Each cold round starts a fresh ``mc-hull dashboard DIR`` server (nothing cached) and opens
it in headless Debian Chromium (Playwright, ``apt-get install -y chromium``); each warm
round reloads the page on the last server.  "first chart": navigation until the first Vega
chart has drawn; "complete": until the last element (the download buttons) is there, every
chart has drawn and the app stopped running.  Also printed: the store's row count, the
widest chart against its column (facet rows that need sideways scrolling) and the entries
of each chart's legends.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
CHART = '[data-testid="stVegaLiteChart"]:not(.st-key-mc-hull-vega-preload *)'
DRAWN = f"{CHART} canvas, {CHART} svg.marks"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: A one-chart Streamlit app (``--baseline``): what Streamlit and Chromium take on this machine before any
#: of the dashboard's own work, served with the same flags.
BASELINE_APP = """import altair as alt
import pandas as pd
import streamlit as st

st.altair_chart(alt.Chart(pd.DataFrame({"x": [1, 2, 3], "y": [1, 4, 9]})).mark_line().encode(x="x:Q", y="y:Q"))
st.download_button("a", b"a")
st.download_button("b", b"b")
"""


def serve_baseline(port: int, path: str) -> subprocess.Popen:
    with open(path, "w") as fh:
        fh.write(BASELINE_APP)
    return subprocess.Popen([sys.executable, "-m", "streamlit", "run", path, "--server.address", "127.0.0.1",
                             "--server.port", str(port), "--server.headless", "true",
                             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def serve(out: str, port: int) -> subprocess.Popen:
    exe = shutil.which("mc-hull")
    cmd = [exe] if exe and not os.environ.get("PYTHONPATH") else [sys.executable, "-m", "mc_hull"]
    return subprocess.Popen(cmd + ["dashboard", out, "--port", str(port), "--host", "127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))


def wait_http(url: str, proc, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"dashboard exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"no answer at {url}")


def cpu(pid: int) -> float:
    """CPU seconds (user + system, every thread) of process ``pid`` and its children so far."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    tick = os.sysconf("SC_CLK_TCK")
    return sum(int(v) for v in fields[11:15]) / tick


def load(page, url: str | None, timeout_ms: int = 300_000, pid: int | None = None) -> tuple:
    """(seconds to the first drawn chart, seconds to the complete page, charts drawn, and the server's
    CPU seconds spent by then: on a loaded machine these compare runs better than wall time)."""
    c0 = cpu(pid) if pid else float("nan")
    t0 = time.perf_counter()
    if url is None:
        page.reload(wait_until="domcontentloaded", timeout=timeout_ms)
    else:
        page.goto(url, wait_until="domcontentloaded", timeout=timeout_ms)
    page.wait_for_function(f"() => document.querySelectorAll('{DRAWN}').length >= 1", timeout=timeout_ms)
    first = time.perf_counter() - t0
    c_first = cpu(pid) - c0 if pid else float("nan")
    page.wait_for_function("""() => document.querySelectorAll('[data-testid="stDownloadButton"]').length >= 2""",
                           timeout=timeout_ms)
    page.wait_for_function(
        """() => { const w = document.querySelector('[data-testid="stStatusWidget"]');
                   if (w && /running/i.test(w.innerText)) return false;
                   const charts = document.querySelectorAll('[data-testid="stVegaLiteChart"]:not(.st-key-mc-hull-vega-preload *)');
                   return [...charts].every(c => c.querySelector('canvas, svg.marks')); }""",
        timeout=timeout_ms)
    complete = time.perf_counter() - t0
    return first, complete, page.locator(CHART).count(), c_first, (cpu(pid) - c0 if pid else float("nan"))


def layout(page) -> list[dict]:
    """Per chart: its drawn width, its container's width and the entries of its legends."""
    return page.evaluate(f"""() => [...document.querySelectorAll('{CHART}')].map(c => {{
        const drawn = c.querySelector('canvas, svg.marks');
        const legends = [...c.querySelectorAll('g.role-legend')].map(
            g => [...g.querySelectorAll('g.role-legend-label text')].map(t => t.textContent));
        return {{width: drawn ? drawn.getBoundingClientRect().width : 0,
                 column: c.parentElement.getBoundingClientRect().width,
                 scroll: c.scrollWidth, legends}}; }})""")


def rows(out: str) -> int:
    sys.path.insert(0, os.getcwd())
    from mc_hull.store import ResultStore

    return sum(e.rows for e in ResultStore(out).units(None)) if hasattr(ResultStore(out), "units") else -1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--cold", type=int, default=2)
    ap.add_argument("--warm", type=int, default=2)
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--screenshot")
    ap.add_argument("--settle", type=float, default=0.0,
                    help="seconds to wait after the server answers before opening the page (cold rounds)")
    ap.add_argument("--baseline", action="store_true",
                    help="time a one-chart Streamlit app instead of the dashboard (DIR is not read)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    if not args.baseline:
        try:
            print(f"rows: {rows(args.out):,}")
        except Exception as exc:  # the count is informative only
            print(f"rows: ? ({exc})")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        proc = None
        try:
            for i in range(args.cold):
                if proc is not None:
                    proc.terminate()
                    proc.wait(timeout=30)
                port = free_port()
                t_start = time.perf_counter()
                proc = (serve_baseline(port, os.path.join(tempfile.mkdtemp(), "baseline_app.py")) if args.baseline
                        else serve(args.out, port))
                url = f"http://127.0.0.1:{port}"
                wait_http(url + "/_stcore/health", proc)
                time.sleep(args.settle)
                started = time.perf_counter() - t_start
                page = browser.new_page(viewport={"width": args.width, "height": 6000})
                c_up = cpu(proc.pid)
                first, complete, charts, c1, c2 = load(page, url, pid=proc.pid)
                print(f"cold {i + 1}: server up {started:.1f} s; first chart {first:.2f} s, complete {complete:.2f} s "
                      f"({charts} charts); server CPU {c1:.2f} s / {c2:.2f} s; load {os.getloadavg()[0]:.1f}; "
                      f"from the command's start: first chart {started + first:.2f} s, complete "
                      f"{started + complete:.2f} s, server CPU {c_up + c1:.2f} s / {c_up + c2:.2f} s", flush=True)
            for i in range(args.warm):
                first, complete, charts, c1, c2 = load(page, None, pid=proc.pid)
                print(f"warm {i + 1}: first chart {first:.2f} s, complete {complete:.2f} s ({charts} charts); "
                      f"server CPU {c1:.2f} s / {c2:.2f} s; load {os.getloadavg()[0]:.1f}", flush=True)
            for j, c in enumerate(layout(page)):
                legends = "; ".join(f"{len(g)} entries ({', '.join(g[:2])} ... {g[-1] if g else ''})"
                                    for g in c["legends"] if g)
                print(f"chart {j + 1}: drawn {c['width']:.0f} px in a {c['column']:.0f} px column "
                      f"(scroll width {c['scroll']:.0f}); legends: {legends or '-'}")
            if args.screenshot:
                page.screenshot(path=args.screenshot)
        finally:
            browser.close()
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)


if __name__ == "__main__":
    main()
