"""Start Streamlit on the dashboard with its first page's work under way: ``python serve.py run app.py ... -- DIR``.

``mc-hull dashboard`` runs this instead of ``python -m streamlit``.  While Streamlit's server starts,
a background thread imports what the app imports (Altair, pandas, mc_hull) and reads the store's
verified units into this process's cache of verified reads (:func:`mc_hull.query.cells.verified_statuses`,
kept per state of the store's files): the first page then finds them there, or waits for the read in
progress instead of starting another.  Nothing is shown from the warm-up itself; a store that does not
verify raises on the page, as without it.
"""

from __future__ import annotations

import os
import sys
import threading


def warm(out: str | None) -> None:
    """Import the app's modules and compute the first view's tables (errors are left to the page)."""
    try:
        import altair  # noqa: F401
        import pandas  # noqa: F401

        from mc_hull.query import views

        if out and views.location_problem(out) is None:
            views.cell_table(out)   # the first chart's table (the rest of the page reads from the same units)
    except Exception:   # the page reports whatever the store holds or lacks, in one line
        pass


def main() -> None:
    out = os.environ.get("MC_HULL_RESULTS")
    if "--" in sys.argv:
        rest = sys.argv[sys.argv.index("--") + 1:]
        out = rest[0] if rest else out
    threading.Thread(target=warm, args=(out,), name="mc-hull-warm", daemon=True).start()
    from streamlit.web.cli import main as streamlit_main

    sys.argv = ["streamlit", *sys.argv[1:]]
    sys.exit(streamlit_main())


if __name__ == "__main__":
    main()
