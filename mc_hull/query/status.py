"""What a store holds, cheaply: its fingerprint, runs, per-run progress from the manifest and the runners' statistics."""

from __future__ import annotations

from ..errors import McHullError, StoreError
from ..store import ResultStore, probe
from .cells import cell_info, listed_units


def fingerprint(out) -> tuple:
    """A cheap value that changes when a unit, run record or run statistics land (``()`` if unreadable)."""
    try:
        return ResultStore(out).fingerprint()
    except (OSError, StoreError):
        return ()


def location_problem(out) -> str | None:
    """A friendly sentence when ``out`` holds nothing to show, else None."""
    try:
        kind = probe(out) if isinstance(out, str) else "directory"
    except (StoreError, OSError) as exc:
        return f"Cannot open the results location {out}: {exc}"
    if kind == "missing":
        return (f"No results directory at {out} yet. Start a run with "
                f"`mc-hull run --out {out}`; this page picks it up when the first shard lands.")
    if kind != "directory":
        return f"{out} is not a directory."
    if not listed_units(ResultStore(out)):
        return (f"{out} holds no shard files yet. Start a run with `mc-hull run --out {out}`; "
                "this page picks results up as shards land.")
    return None


def runs(out) -> dict[str, dict]:
    """run_id -> stored run record (``{"spec": ..., "hash": ...}``)."""
    return ResultStore(out).runs()


def run_progress(out) -> list[dict]:
    """Per run (recorded or with listed shards): shards done/planned, trials planned, the runner's statistics.

    ``shards_done`` counts manifest entries (not verified: the counts of
    trials come from the verified rows); ``stats`` is what the runner recorded
    at the end of its last pass (``trials``, ``seconds``, ``trials_per_s``,
    ``finished``), ``{}`` before that; ``last_commit`` is None (the manifest
    is not timed); ``progress`` is the runner's progress record (``_progress/<run>.json``:
    ``committed``, ``in_flight`` trials counted inside the units running, ``rate``, ``eta_s``,
    ``units``, ``updated``, ``finished``), ``{}`` if none.
    """
    from ..jobs.plan import plan
    from ..spec import Spec

    store = ResultStore(out)
    done: dict[str, int] = {}
    for entry in listed_units(store):
        done[entry.run_id] = done.get(entry.run_id, 0) + 1
    records, stats = store.runs(), store.run_stats()
    try:
        records_progress = store.backend.docs("progress")
    except (OSError, StoreError):
        records_progress = {}
    rows = []
    for run_id in sorted(set(records) | set(done)):
        try:
            spec = Spec.from_dict(records[run_id]["spec"]) if run_id in records else None
        except (McHullError, KeyError, TypeError):
            spec = None
        rows.append({"run_id": run_id, "spec": spec, "shards_done": done.get(run_id, 0),
                     "shards_planned": len(plan(spec)) if spec else None,
                     "trials_planned": spec.planned_trials if spec else None,
                     "stats": stats.get(run_id, {}), "progress": records_progress.get(run_id, {})})
    return rows


def run_ids(out) -> list[str]:
    """Ids of the runs with listed shards."""
    return sorted({e.run_id for e in listed_units(ResultStore(out))})


def shortfalls(out, table, run_id: str | None = None) -> list[dict]:
    """Cells that the store's recorded runs planned but that hold fewer trials than planned.

    A run still going or one that was interrupted leaves cells short; ``mc-hull query``
    notes each one and exits with status 3 (see :func:`mc_hull.cli.query.main`).

    Parameters
    ----------
    out : str or Store
    table : pyarrow.Table
        :func:`mc_hull.query.cell_estimates` of ``out`` (columns distribution, params, d, n, trials).
    run_id : str, optional
        Only this run's plan.

    Returns
    -------
    list of dict
        ``distribution``, ``params``, ``d``, ``n``, ``trials`` (counted, each trial once),
        ``planned`` and ``runs`` (the ids of the runs that planned the cell), in cell order.
    """
    from ..spec import Spec

    planned: dict = {}
    for rid, record in ResultStore(out).runs().items():
        if run_id is not None and rid != run_id:
            continue
        try:
            spec = Spec.from_dict(record["spec"])
        except (McHullError, KeyError, TypeError, ValueError):
            continue
        for d, n in spec.cells:
            params = cell_info(spec.distribution, dict(spec.params), d)["params"]
            key = (spec.distribution, params, int(d), int(n))
            want, runs = planned.get(key, (0, []))
            planned[key] = (max(want, spec.trials), runs + [rid])
    have = {(r["distribution"], r["params"], int(r["d"]), int(r["n"])): int(r["trials"])
            for r in table.select(["distribution", "params", "d", "n", "trials"]).to_pylist()}
    out_rows = []
    for key in sorted(planned):
        want, runs = planned[key]
        got = have.get(key, 0)
        if got < want:
            out_rows.append(dict(zip(("distribution", "params", "d", "n"), key), trials=got, planned=want,
                                 runs=sorted(runs)))
    return out_rows
