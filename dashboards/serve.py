"""Start Streamlit on the dashboard with its first page's work under way: ``python serve.py run app.py ... -- DIR``.

``mc-hull dashboard`` runs this instead of ``python -m streamlit``.  Streamlit's server starts first and
answers at once; as soon as it listens, a background thread imports what the app imports (Altair,
pandas, mc_hull) and computes the page's tables into this process's caches of verified reads
(:func:`mc_hull.query.cells.verified_statuses` and the cell table, entry sizes and audit counts built
on it, kept per state of the store's files), while the browser loads Streamlit's page: the first
page then finds them there, or waits for the read in progress instead of starting another.  Nothing
is shown from the warm-up itself; a store that does not verify raises on the page, as without it.

Streamlit's start scans the metadata of every installed package for "v2 components" (about 0.5 s
of CPU before the server answers, 173 packages here); the dashboard uses none, so the scan is
skipped in this process.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time

#: Seconds the warm-up waits for the server to listen before it starts anyway.
SERVER_WAIT_S = 30.0


def mark(what: str) -> None:
    """Append ``wall-clock CPU-seconds serve WHAT`` to the file ``$MC_HULL_TIMELINE`` names, if any."""
    path = os.environ.get("MC_HULL_TIMELINE")
    if path:
        with open(path, "a") as fh:
            fh.write(f"{time.time():.4f} {time.process_time():.3f} serve {what}\n")


def warm(out: str | None, ready=None) -> None:
    """Import the app's modules and compute the page's tables (errors are left to the page).

    ``ready``: called first (blocks until the server listens), so the warm-up runs beside the
    browser's loading of the page rather than before the server's first answer.
    """
    try:
        if ready is not None:
            ready()
        mark("warm-up: server listens")
        import altair as alt
        import pandas as pd

        from mc_hull.query import views

        mark("warm-up: imports done")
        # Altair reads and compiles its Vega-Lite schema on the first chart: do it here
        alt.Chart(pd.DataFrame({"x": [1.0]})).mark_point().encode(x="x:Q").to_dict()
        mark("warm-up: Altair schema")
        if out and views.location_problem(out) is None:
            views.cell_table(out)        # the first chart's table (the rest of the page reads from the same units)
            mark("warm-up: cell table")
            if not page_open():          # no page yet: the tables of the page's later sections too
                views.entry_ecdf(out, None, None, [])   # every nested curve's entry-size bounds (if any)
                views.audit_overview(out)    # the audit's counts, from the same verified units' digests
                mark("warm-up: later tables")
    except Exception:   # the page reports whatever the store holds or lacks, in one line
        pass


def page_open() -> bool:
    """Whether a browser session is connected: then the page computes its later sections itself, in
    the order it shows them, and a warm-up beside it would only slow its first chart (one GIL)."""
    try:
        from streamlit.runtime import Runtime
        from streamlit.runtime.runtime import RuntimeState

        return Runtime.exists() and Runtime.instance().state == RuntimeState.ONE_OR_MORE_SESSIONS_CONNECTED
    except Exception:   # another Streamlit, or none running (a test calling warm directly)
        return False


def listening(argv: list[str], timeout: float = SERVER_WAIT_S):
    """A function that returns once Streamlit's server accepts connections (or after ``timeout``)."""
    def option(name: str, default: str) -> str:
        for i, arg in enumerate(argv):
            if arg == name and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
        return default

    host, port = option("--server.address", "127.0.0.1"), option("--server.port", "8501")
    host = "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host

    def wait() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((host, int(port)), timeout=0.5):
                    return
            except (OSError, ValueError):
                time.sleep(0.05)

    return wait


def skip_component_scan() -> None:
    """Leave out Streamlit's scan of installed packages for v2 components (the dashboard uses none)."""
    try:
        from streamlit.components.v2 import component_manager
    except ImportError:     # another Streamlit: nothing to skip
        return
    manager = getattr(component_manager, "BidiComponentManager", None)
    if manager is not None and hasattr(manager, "discover_and_register_components"):
        manager.discover_and_register_components = lambda self, **kwargs: None


def main() -> None:
    mark("serve.py main")
    out = os.environ.get("MC_HULL_RESULTS")
    if "--" in sys.argv:
        rest = sys.argv[sys.argv.index("--") + 1:]
        out = rest[0] if rest else out
    threading.Thread(target=warm, args=(out, listening(sys.argv)), name="mc-hull-warm", daemon=True).start()
    from streamlit.web.cli import main as streamlit_main

    skip_component_scan()
    sys.argv = ["streamlit", *sys.argv[1:]]
    sys.exit(streamlit_main())


if __name__ == "__main__":
    main()
