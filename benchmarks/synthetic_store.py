"""A nested Gaussian store of millions of rows in a minute, for timing the readers (dashboard, query).

    python benchmarks/synthetic_store.py OUT [--dims 2..12] [--trials 11400]

It has the shape of ``mc-hull run --dims 2..12 --sizes auto --nested --trials T --out OUT``
(the same spec: auto grid of 40 sizes per d, the cost rule's K), written through the store's own
publish path (manifest entries, SHA-256, page checksums, run record and statistics), so every
reader verifies it exactly as it verifies a computed run.  Only the rows are drawn instead of
computed: each trial's entry size T from the exact Gaussian curve, P(T <= N) = p(d, N), and
``inside`` = N >= T at every grid size, so the curves, thresholds and entry-size panels look
like the real run's.  Computing that run takes minutes to hours on 2 busy cores; timing the
readers does not need it.  With ``--trials 11400`` it holds 11 x 40 x 11,400 = 5,016,000 rows.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--dims", default="2..12")
    ap.add_argument("--trials", type=int, default=11400)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from mc_hull import theory
    from mc_hull.jobs.nested import NestedJob
    from mc_hull.store import ResultStore

    t0 = time.perf_counter()
    # the CLI's path for --sizes auto --nested: validate without sizes, then resolve the grid
    from argparse import Namespace

    from mc_hull.cli.run import build_panels

    ns = Namespace(spec=None, preset=None, spec_json=None, distribution="gaussian", dims=args.dims, sizes="auto",
                   trials=args.trials, queries_per_set=None, seed=args.seed, solver=None, tol=None,
                   shard_trials=None, target_halfwidth=None, max_trials=None, nested=True, measure=None,
                   param=[], serial=True, address=None, workers=None)
    (panel,) = build_panels(ns)
    spec = panel.spec
    job = NestedJob(spec)
    store = ResultStore(args.out)
    store.claim_run(spec)
    rng = np.random.default_rng(args.seed)
    rows = 0
    curves = {}
    for unit in job.units():
        sizes = np.array(sorted(spec.sizes_for(unit.d)), dtype=np.int64)
        if unit.d not in curves:
            curves[unit.d] = np.array([float(theory.exact_inside_probability("gaussian", unit.d, int(n)))
                                       for n in sizes])
        cdf = np.maximum.accumulate(curves[unit.d])
        parts = []
        for r in range(unit.start, unit.stop):
            k = spec.queries_in(r, unit.d, int(sizes[-1]))
            u = rng.random(k)
            entry = np.searchsorted(cdf, u, side="left")          # index of the first size with p >= u
            inside = (np.arange(len(sizes))[:, None] >= entry[None, :]).astype(np.float64)  # (L, K)
            flat = inside.ravel()
            L = len(sizes)
            parts.append({
                "n": np.repeat(sizes, k), "replicate": np.full(L * k, r, dtype=np.int32),
                "query": np.tile(np.arange(k, dtype=np.int32), L), "inside": flat,
                "status": (flat == 1).astype(np.int8),   # 1 inside, 0 outside (mc_hull.jobs.trial.rows)
                "method": np.full(L * k, f"nested:{spec.solver}", dtype=object),
                "certificate_value": np.where(flat == 1, 1e-15, 1.0) * rng.lognormal(0, 2, L * k),
                "solve_seconds": np.full(L * k, 2e-4), "rounds": rng.integers(1, 5, L * k).astype(np.int32),
                "run_id": np.full(L * k, spec.run_id, dtype=object)})
        cols = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
        order = np.lexsort((cols["query"], cols["replicate"], cols["n"]))
        cols = {name: col[order] for name, col in cols.items()}
        job.publish(store, unit, cols)
        rows += len(cols["n"])
    seconds = time.perf_counter() - t0
    store.record_stats(spec.run_id, {"trials": rows, "seconds": seconds, "trials_per_s": rows / seconds,
                                     "finished": time.time()})
    print(f"{args.out}: run {spec.run_id}, {rows:,} rows in {job.count()} units x sizes, {seconds:.0f} s")


if __name__ == "__main__":
    main()
