"""Coverage of N½ read as the median of the entry size T, against the exact Gaussian N½.

Usage: ``python benchmarks/median_t_coverage.py [--dims 2,3,4] [--seeds 100] [--trials 300]
[--queries-per-set 30] [--boot 400]``.

For each seed and d, a nested run's data (:func:`mc_hull.nested.search.replicate_data`, the keyed seeding
of ``mc-hull run --nested``) on a dense grid of sizes around the exact N½; every query's entry size
located by :func:`mc_hull.nested.search.entry_sizes`.  Two 99% brackets of N½ on the grid:

* *inversion* (what ``mc-hull query --thresholds`` reports for a nested run): the true N½ exceeds
  every size whose 99% clustered interval lies below 1/2 and is at most every size whose interval
  lies at or above 1/2 (:func:`mc_hull.stats.thresholds.median_interval`);
* *cluster bootstrap*: resample training sets (replicates) with replacement, take the grid median
  of T of each resample, and the 0.5% and 99.5% quantiles of those medians; the bracket is
  (the grid size below the lower quantile, the upper quantile].

The logistic fit that ``--thresholds`` uses for ordinary runs (:func:`mc_hull.stats.thresholds.fit_n_half`,
given the nested cells as if they were independent) is reported too, and so is the plain
(unclustered) Wilson inversion, which treats the K queries of a set as independent.

Reports per d how often the exact N½ (``mc_hull.theory``) falls outside each bracket, and the
median bracket width in grid steps (for the fit: grid sizes inside its interval).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mc_hull.nested import search as nested
from mc_hull.stats import intervals as stats, thresholds
from mc_hull import theory  # noqa: E402
from mc_hull.spec import Spec  # noqa: E402
from mc_hull.stats.thresholds import fit_n_half  # noqa: E402


def grid_for(d: int, points: int = 40) -> tuple[int, ...]:
    """Sizes from p ~ 0.1 to p ~ 0.9 of the exact curve, integer and distinct."""
    n = np.unique(np.round(np.geomspace(max(d + 1, 3), 6 * theory.exact_n_half("gaussian", d), points)))
    return tuple(int(v) for v in n)


def one(d: int, seed: int, trials: int, k: int, boot: int) -> dict:
    sizes = grid_for(d)
    spec = Spec(distribution="gaussian", dims=(d,), sizes=sizes, trials=trials, queries_per_set=k,
                seed=seed, nested=True)
    results = []
    for r in range(spec.replicates_for(d, max(sizes))):
        X, Q = nested.replicate_data(spec, d, np.array(sizes), r)
        results.append(nested.entry_sizes(X, Q, np.array(sizes)))
    est = nested.curve(results)
    n = np.asarray(sizes, dtype=float)
    exact = theory.exact_n_half("gaussian", d)
    out = {}
    _, lo, hi = thresholds.median_interval(est)
    out["inversion"] = (lo, hi)
    y, m = nested.cluster_counts(results)
    plain = {"n": n, "p_hat": est["p_hat"], "low": np.empty(len(n)), "high": np.empty(len(n))}
    for j in range(len(n)):
        plain["low"][j], plain["high"][j] = stats.wilson(y[:, j].sum(), m[:, j].sum())
    _, lo, hi = thresholds.median_interval(plain)
    out["plain Wilson"] = (lo, hi)
    deff = np.array([stats.clustered_interval(y[:, j], m[:, j])[2] if m[:, j].sum() else 1.0
                     for j in range(len(n))])
    fit = fit_n_half(n, y.sum(axis=0), m.sum(axis=0), deff, np.full(len(n), y.shape[0]))
    out["logistic fit"] = (fit["n_half_low"], fit["n_half_high"])
    rng = np.random.default_rng(seed)
    R = y.shape[0]
    meds = np.empty(boot)
    for b in range(boot):
        pick = rng.integers(0, R, R)
        p = y[pick].sum(axis=0) / np.maximum(m[pick].sum(axis=0), 1)
        reached = np.flatnonzero(p >= 0.5)
        meds[b] = n[reached[0]] if reached.size else np.inf
    qlo, qhi = np.quantile(meds, [0.005, 0.995], method="inverted_cdf")
    below = n[n < qlo]
    out["cluster bootstrap"] = (float(below[-1]) if below.size else 0.0, float(qhi))
    res = {}
    for name, (lo, hi) in out.items():
        steps = int(np.sum((n > lo) & (n <= hi))) if np.isfinite(hi) else len(n)
        if name == "logistic fit":
            steps = int(np.sum((n >= lo) & (n <= hi)))
        res[name] = (not (lo < exact <= hi), steps)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", default="2,3,4")
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--queries-per-set", type=int, default=30)
    ap.add_argument("--boot", type=int, default=400)
    args = ap.parse_args()
    t0 = time.perf_counter()
    for d in (int(v) for v in args.dims.split(",")):
        tally: dict = {}
        for seed in range(args.seeds):
            for name, (miss, steps) in one(d, seed, args.trials, args.queries_per_set, args.boot).items():
                tally.setdefault(name, []).append((miss, steps))
        for name, rows in tally.items():
            misses = sum(m for m, _ in rows)
            width = float(np.median([s for _, s in rows]))
            print(f"d = {d}: {name:18s} exact N½ outside in {misses:3d} of {len(rows)} runs, "
                  f"median bracket {width:.0f} grid steps (of {len(grid_for(d))})", flush=True)
    print(f"{time.perf_counter() - t0:.0f} s; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
