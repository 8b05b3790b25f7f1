"""The timeline of one cold page load of the dashboard: server, script and browser on one clock.

    python benchmarks/dashboard_timeline.py DIR [--baseline] [--settle S]

Starts ``mc-hull dashboard DIR`` with ``$MC_HULL_TIMELINE`` set (``dashboards/serve.py`` and
``dashboards/app.py`` then append ``wall-clock CPU-seconds WHO WHAT`` lines at their steps), opens the
page in headless Chromium (as ``benchmarks/dashboard_speed.py``) with a script that records, on the
page's own clock (``performance.timeOrigin``), the resources it loads, every WebSocket message from
the server (size) and the moments chart elements appear and draw. Prints one merged timeline in
seconds from the command's start, the server's CPU seconds beside the server's steps.
``--baseline``: the same for the one-chart Streamlit app of ``dashboard_speed.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dashboard_speed as ds  # noqa: E402

#: Installed before the page's own scripts: WebSocket messages and chart elements, on the epoch clock.
PAGE_PROBE = """
(() => {
  const T = window.__timeline = [];
  const now = () => performance.timeOrigin + performance.now();
  const Native = window.WebSocket;
  window.WebSocket = function (...args) {
    const ws = new Native(...args);
    T.push([now(), 'browser', 'WebSocket opening']);
    ws.addEventListener('open', () => T.push([now(), 'browser', 'WebSocket open']));
    let n = 0;
    ws.addEventListener('message', (e) => {
      n += 1;
      const size = e.data.byteLength !== undefined ? e.data.byteLength : e.data.size !== undefined ? e.data.size : e.data.length;
      T.push([now(), 'browser', `message ${n} from server`, size]);
    });
    const send = ws.send.bind(ws);
    ws.send = (data) => { T.push([now(), 'browser', 'message to server (rerun request)']); send(data); };
    return ws;
  };
  window.WebSocket.prototype = Native.prototype;
  Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
  const seen = new Set();
  const check = () => {
    const charts = document.querySelectorAll('[data-testid="stVegaLiteChart"]:not(.st-key-mc-hull-vega-preload *)');
    charts.forEach((c, i) => {
      if (!seen.has('el' + i)) { seen.add('el' + i); T.push([now(), 'browser', `chart ${i + 1} element`]); }
      if (!seen.has('dr' + i) && c.querySelector('canvas, svg.marks')) {
        seen.add('dr' + i); T.push([now(), 'browser', `chart ${i + 1} drawn`]);
      }
    });
    if (!seen.has('app') && document.querySelector('[data-testid="stApp"]')) {
      seen.add('app'); T.push([now(), 'browser', 'stApp element']);
    }
  };
  new MutationObserver(check).observe(document, {subtree: true, childList: true});
})();
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--baseline", action="store_true", help="the one-chart Streamlit app instead")
    ap.add_argument("--settle", type=float, default=0.0, help="seconds between the server's answer and the page")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    log = os.path.join(tempfile.mkdtemp(), "timeline.txt")
    os.environ["MC_HULL_TIMELINE"] = log
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=ds.CHROMIUM, headless=True, args=ds.ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 6000})
        page.add_init_script(PAGE_PROBE)
        port = ds.free_port()
        t0 = time.time()
        proc = (ds.serve_baseline(port, os.path.join(tempfile.mkdtemp(), "baseline_app.py")) if args.baseline
                else ds.serve(args.out, port))
        events = [(t0, 0.0, "bench", "command start")]
        try:
            url = f"http://127.0.0.1:{port}"
            ds.wait_http(url + "/_stcore/health", proc)
            events.append((time.time(), ds.cpu(proc.pid), "bench", "health answers"))
            time.sleep(args.settle)
            events.append((time.time(), ds.cpu(proc.pid), "bench", "page.goto"))
            first, complete, charts, _, _ = ds.load(page, url, pid=proc.pid)
            events.append((time.time(), ds.cpu(proc.pid), "bench", f"complete ({charts} charts)"))
            for t, who, what, *size in page.evaluate("window.__timeline"):
                events.append((t / 1000, None, who, what, *size))
            for name, start, end in page.evaluate(
                    "performance.getEntriesByType('resource').map(e => [e.name, performance.timeOrigin + "
                    "e.startTime, performance.timeOrigin + e.responseEnd])"):
                if "/static/" in name or name.endswith(".js"):
                    events.append((end / 1000, None, "browser", f"loaded {name.rsplit('/', 1)[-1][:40]} "
                                                                 f"({(end - start) / 1000:.2f} s)"))
            nav = page.evaluate("(() => { const n = performance.getEntriesByType('navigation')[0]; return "
                                "[performance.timeOrigin + n.domContentLoadedEventEnd, performance.timeOrigin + "
                                "n.loadEventEnd]; })()")
            events.append((nav[0] / 1000, None, "browser", "DOMContentLoaded"))
            events.append((nav[1] / 1000, None, "browser", "load event"))
        finally:
            browser.close()
            proc.terminate()
            proc.wait(timeout=30)
    if os.path.exists(log):
        for line in open(log):
            t, c, who, what = line.rstrip("\n").split(" ", 3)
            events.append((float(t), float(c), who, what))
    events.sort(key=lambda e: e[0])
    print(f"load {os.getloadavg()[0]:.1f}; seconds from the command's start (CPU: the process's CPU seconds)")
    for t, c, who, what in merged(events):
        cpu = f"{c:6.2f}" if c is not None else "      "
        print(f"{t - t0:7.3f}  {cpu}  {who:7s} {what}")


def merged(events: list) -> list:
    """Runs of server messages less than 20 ms apart as one line (count, bytes, span); runs of
    loaded resources as one line too."""
    out, run = [], []

    def flush():
        if not run:
            return
        t, _, who, what = run[0][:4]
        if what.startswith("message"):
            size = sum(e[4] for e in run if len(e) > 4 and isinstance(e[4], (int, float)))
            what = (f"{len(run)} message(s) from server, {size / 1024:.1f} KiB, "
                    f"over {run[-1][0] - run[0][0]:.3f} s")
        elif len(run) > 1:
            what = f"loaded {len(run)} scripts/styles (last {run[-1][3][7:]})"
        out.append((t, None, who, what))
        run.clear()

    for e in events:
        kind = e[3].split(" ")[0] if e[2] == "browser" else None
        if run and (kind != run[-1][3].split(" ")[0] or e[0] - run[-1][0] > 0.02):
            flush()
        if kind in ("message", "loaded"):
            run.append(e)
        else:
            out.append(e[:4])
    flush()
    return sorted(out, key=lambda e: e[0])


if __name__ == "__main__":
    main()
