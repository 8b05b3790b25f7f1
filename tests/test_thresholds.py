"""Empirical 50% points: bias and coverage by simulation, edge cases, and a real small run."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from mc_hull.stats import intervals as stats
from mc_hull.query import THRESHOLD_COLUMNS
from mc_hull.stats.thresholds import fit_n_half, isotonic


def simulate_fits(rng, curve, n_half, sizes, R=10, K=50, rho=0.05, sims=150):
    """Clustered draws (p_r ~ Beta with intra-set correlation rho) on a known curve; fit each."""
    p = np.clip(curve(sizes), 1e-9, 1 - 1e-9)
    s = 1 / rho - 1
    covered, logerr = 0, []
    for _ in range(sims):
        pr = rng.beta(p[:, None] * s, (1 - p[:, None]) * s, (len(sizes), R))
        y = rng.binomial(K, pr)
        m = np.full_like(y, K)
        deff = [stats.design_effect(a, b) for a, b in zip(y, m)]
        fit = fit_n_half(sizes, y.sum(1), m.sum(1), deff, [R] * len(sizes))
        covered += fit["n_half_low"] <= n_half <= fit["n_half_high"]
        logerr.append(math.log10(fit["n_half"] / n_half) if fit["n_half"] else math.nan)
    return covered / sims, float(np.nanmean(logerr)), float(np.nanstd(logerr))


def grid(inv):
    return np.unique(np.round(np.geomspace(inv(0.02), inv(0.98), 10)))


# skewed curves in log N: light upper tail (Weibull) and heavy upper tail (like the exact ones)
def weibull(N):
    return 1 - np.exp(-((N / 100) ** 0.6))


def weibull_inv(p):
    return 100 * (-np.log(1 - p)) ** (1 / 0.6)


def frechet(N):
    return np.exp(-((N / 100) ** -0.6))


def frechet_inv(p):
    return 100 * (-np.log(p)) ** (-1 / 0.6)


@pytest.mark.parametrize("curve, inv", [(weibull, weibull_inv), (frechet, frechet_inv)])
def test_n_half_interval_covers_on_skewed_curves(curve, inv):
    rng = np.random.default_rng(11)
    cov, bias, sd = simulate_fits(rng, curve, inv(0.5), grid(inv))
    print(f"{curve.__name__}: coverage {cov:.3f}, bias {bias:+.4f} decades, sd {sd:.4f}")
    assert cov >= 0.96 and abs(bias) < sd / 2


def test_n_half_interval_covers_on_the_exact_gaussian_curve():
    from mc_hull.theory.gaussian import gaussian_inside_probability, gaussian_n_half, n_at_probability

    rng = np.random.default_rng(12)
    d = 4
    sizes = np.unique(np.round(np.geomspace(n_at_probability(d, 0.02), n_at_probability(d, 0.98), 10)))
    cov, bias, sd = simulate_fits(rng, lambda n: gaussian_inside_probability(d, n), gaussian_n_half(d),
                                  sizes, R=20, K=25, rho=0.03)
    print(f"gaussian d=4: coverage {cov:.3f}, bias {bias:+.4f} decades, sd {sd:.4f}")
    assert cov >= 0.96 and abs(bias) < sd / 2


def test_isotonic_pools_violators():
    assert np.allclose(isotonic([0.1, 0.3, 0.2, 0.6], [1, 1, 1, 1]), [0.1, 0.25, 0.25, 0.6])
    assert np.allclose(isotonic([0.5, 0.1], [3, 1]), [0.4, 0.4])


def test_not_bracketed_gives_monotone_bounds():
    n = [10, 100, 1000]
    fit = fit_n_half(n, [0, 5, 20], [400, 400, 400])  # every p below 1/2
    assert fit["n_half"] is None and fit["method"] == "monotone"
    assert fit["n_half_low"] == 1000 and fit["n_half_high"] == math.inf
    fit = fit_n_half(n, [300, 390, 400], [400, 400, 400])  # every p above 1/2
    assert fit["n_half"] is None and fit["n_half_low"] == 0 and fit["n_half_high"] == 10


def test_two_cells_interpolate_with_a_finite_interval():
    fit = fit_n_half([10, 100], [100, 300], [400, 400])
    assert fit["method"] == "logistic" and 10 < fit["n_half"] < 100
    assert fit["n_half_low"] < fit["n_half"] < fit["n_half_high"]


@pytest.fixture(scope="module")
def auto_run(tmp_path_factory):
    """A real small run on the automatic Gaussian grid for d = 2, 3 (serial, default solver)."""
    from mc_hull.runs.adaptive import auto_grid
    from mc_hull.runs.runner import execute
    from mc_hull.spec import Spec

    grid = auto_grid("gaussian", [2, 3])
    spec = Spec.from_dict({"distribution": "gaussian", "dims": [2, 3], "grid": {str(d): v for d, v in grid.items()},
                           "trials": 300, "queries_per_set": 20, "seed": 3, "shard_trials": 300})
    out = tmp_path_factory.mktemp("thr") / "out"
    execute(spec, str(out), backend="serial", progress=False)
    return out


def test_thresholds_on_a_real_run(auto_run):
    from mc_hull.query import thresholds
    from mc_hull.query import empirical_n_half

    table = thresholds(str(auto_run))
    assert table.column_names[:len(THRESHOLD_COLUMNS)] == THRESHOLD_COLUMNS
    rows = table.to_pylist()
    assert [(r["distribution"], r["d"]) for r in rows] == [("gaussian", 2), ("gaussian", 3)]
    for r in rows:
        print(r)
        assert r["cells"] == 10 and r["method"].startswith("logistic")
        assert r["n_half_low"] <= r["exact_n_half"] <= r["n_half_high"]
        assert r["n_half_high"] / r["n_half_low"] < 2  # informative: within a factor 2
        assert r["bf_threshold"] == pytest.approx(2 ** (r["d"] / 2) / r["d"])
    assert empirical_n_half(str(auto_run))[0]["n_half"] == rows[0]["n_half"]


def test_query_cli_thresholds(auto_run):
    res = subprocess.run([sys.executable, "-m", "mc_hull", "query", str(auto_run), "--thresholds"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "n_half_low" in res.stdout and "exact_n_half" in res.stdout and "# n_half:" in res.stdout
    res = subprocess.run([sys.executable, "-m", "mc_hull", "query", str(auto_run), "--thresholds",
                          "--format", "json"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and len(json.loads(res.stdout)) == 2
