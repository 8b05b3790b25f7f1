"""--sizes auto and --target-halfwidth: grids, checkpoints, coverage under the stopping rule, real runs."""

from __future__ import annotations

import numpy as np
import pytest

from mc_hull.stats import intervals as stats
from mc_hull.runs.adaptive import auto_grid, checkpoints, log_grid, max_replicates, pilot_grid, run_adaptive
from mc_hull.errors import SpecError
from mc_hull.jobs.plan import plan
from mc_hull.spec import Spec


def test_checkpoints_are_geometric_and_capped():
    spec = Spec(dims=(2,), sizes=(10,), trials=100, queries_per_set=20, target_halfwidth=0.05,
                max_trials=1000)
    assert spec.replicates_for(2, 10) == 5 and max_replicates(spec) == 50  # 5 + (1000 - 100) // 20
    assert checkpoints(spec) == [5, 10, 20, 40, 50]
    assert Spec(target_halfwidth=0.1).max_trials == 16 * 1000  # default cap


def test_extra_replicates_hold_k_queries_and_plan_as_shards():
    spec = Spec(dims=(2,), sizes=(10,), trials=250, queries_per_set=100, shard_trials=200,
                target_halfwidth=0.05)
    assert [spec.queries_in(r, 2, 10) for r in range(5)] == [100, 100, 50, 100, 100]  # r < 3 unchanged
    shards = plan(spec, 3, 7)
    assert [(s.start, s.stop) for s in shards] == [(3, 5), (5, 7)]
    assert sum(s.trials(spec) for s in shards) == 400


def test_spec_fields_validate_and_keep_old_hashes():
    base = Spec()
    assert "grid" not in base.to_dict() and "target_halfwidth" not in base.to_dict()
    assert set(base.to_dict()) == {"distribution", "dims", "sizes", "trials", "queries_per_set", "seed",
                                   "solver", "tol", "shard_trials", "params"}  # hash as before
    with pytest.raises(SpecError, match="target_halfwidth"):
        Spec(target_halfwidth=0.7)
    with pytest.raises(SpecError, match="max_trials"):
        Spec(target_halfwidth=0.1, max_trials=10)
    with pytest.raises(SpecError, match="grid"):
        Spec.from_dict({"dims": [2, 3], "grid": {"2": [5]}})
    with pytest.raises(SpecError, match="grid"):
        Spec.from_dict({"dims": [2], "grid": {"2": [5, 5]}})
    with pytest.raises(SpecError, match="grid"):
        Spec.from_dict({"dims": [2], "grid": {"two": [5]}})
    g = Spec.from_dict({"dims": [3, 2], "grid": {"2": [4, 10], "3": [5]}})
    assert g.cells == [(3, 5), (2, 4), (2, 10)] and g.sizes == (4, 5, 10)
    assert Spec.from_json(g.to_json()) == g and g.hash != Spec(dims=(3, 2), sizes=(4, 5, 10)).hash
    assert g.with_overrides(sizes="7").grid == ()  # explicit sizes replace the grid


def test_auto_grid_from_exact_curve():
    from mc_hull.theory.gaussian import gaussian_inside_probability

    grid = auto_grid("gaussian", [3, 6])
    for d, sizes in grid.items():
        assert 8 <= len(sizes) <= 10 and sizes == sorted(sizes)
        p = gaussian_inside_probability(d, np.array(sizes, dtype=float))
        assert p[0] < 0.05 and p[-1] > 0.95
    assert log_grid(5, 1e9, 10, max_n=1000)[-1] == 1000


def test_log_grid_keeps_its_points_where_rounding_merges_small_sizes():
    """d = 2 spans N = 3..193 from p = 0.02 to 0.95: 40 log points round to 36 distinct sizes, now 40."""
    for lo, hi, points in [(3, 193, 40), (3.2, 60, 40), (11, 5829, 40), (5, 40, 10), (2.6, 9.4, 10)]:
        sizes = log_grid(lo, hi, points)
        assert sizes == sorted(set(sizes)) and sizes[0] == round(max(lo, 1)) and sizes[-1] == round(hi)
        assert len(sizes) >= min(points, round(hi) - round(lo) + 1)
    assert log_grid(3, 9, 40) == list(range(3, 10))            # fewer integers than points: all of them
    assert log_grid(3, 193, 40, d=5)[0] == 6                   # N <= d is never in a grid
    grid = auto_grid("gaussian", [2, 3], points=40, p_range=(0.02, 0.95), max_n=10**12)
    assert [len(grid[2]), len(grid[3])] == [40, 40]


def test_pilot_grid_interpolates_a_monotone_pilot():
    truth = lambda d, n: 1 - np.exp(-max(0, n - d) / (20.0 * d))  # noqa: E731
    calls = []

    def pilot(ladder):
        calls.append(dict(ladder))
        return {(d, n): float(truth(d, n)) for d, n in ladder.items()}

    grid = pilot_grid([2, 4], pilot)
    for d, sizes in grid.items():
        assert sizes[0] >= d + 1 and truth(d, sizes[0]) < 0.06 and truth(d, sizes[-1]) > 0.9
    assert all(len(c) >= 1 for c in calls) and len(calls) <= 6


def simulate_adaptive(rng, cells, r0, r_max, K, rho, h):
    """The run_adaptive stopping rule on beta-binomial cells: coverage and stopping replicates."""
    s = 1 / rho - 1
    marks = [r0]
    while marks[-1] < r_max:
        marks.append(min(2 * marks[-1], r_max))
    covered, stops = 0, []
    for p in rng.uniform(0.03, 0.97, cells):
        y = rng.binomial(K, rng.beta(p * s, (1 - p) * s, r_max))
        for mark in marks:  # checked only at the checkpoints, on replicates < mark
            if stats.halfwidth(y[:mark], np.full(mark, K)) < h:
                break
        low, high, _ = stats.clustered_interval(y[:mark], np.full(mark, K))
        covered += low <= p <= high
        stops.append(mark)
    return covered / cells, stops


@pytest.mark.parametrize("rho", [0.05, 0.2])
def test_coverage_stays_right_under_the_stopping_rule(rho):
    rng = np.random.default_rng(int(rho * 100))
    cov, stops = simulate_adaptive(rng, 400, r0=5, r_max=160, K=20, rho=rho, h=0.04)
    print(f"rho={rho}: coverage {cov:.4f} with adaptive stopping; stops at {sorted(set(stops))}")
    assert cov >= 0.98
    assert len(set(stops)) > 1  # the rule did stop cells at different checkpoints


def test_run_adaptive_reaches_target_and_is_reproducible(tmp_path):
    from mc_hull.query import cell_estimates

    spec = Spec.from_dict({"distribution": "gaussian", "dims": [2], "sizes": [3, 10, 300], "trials": 40,
                           "queries_per_set": 10, "seed": 1, "shard_trials": 20,
                           "target_halfwidth": 0.1, "max_trials": 400})
    rep = run_adaptive(spec, str(tmp_path / "a"), backend="serial", progress=False)
    rows = {r["n"]: r for r in cell_estimates(str(tmp_path / "a")).to_pylist()}
    for (d, n), info in rep.cells.items():
        assert rows[n]["trials"] == info["trials"] and rows[n]["replicates"] == info["replicates"]
        half = (rows[n]["ci_high"] - rows[n]["ci_low"]) / 2
        assert (half < 0.1) == info["reached"]
        assert info["reached"] or info["trials"] == 400
    assert len({v["replicates"] for v in rep.cells.values()}) > 1  # cells stopped at different points
    again = run_adaptive(spec, str(tmp_path / "a"), backend="serial", progress=False)
    assert again.computed_shards == 0 and again.cells == rep.cells  # resume: nothing to do
    fresh = run_adaptive(spec, str(tmp_path / "b"), backend="serial", progress=False)
    assert fresh.cells == rep.cells  # same keyed seeding, same decisions


def test_cli_sizes_auto_with_pilot_and_target(tmp_path, capsys):
    from mc_hull.cli import main

    out = tmp_path / "cube"
    assert main(["run", "--distribution", "cube", "--dims", "2", "--sizes", "auto", "--trials", "40",
                 "--queries-per-set", "10", "--serial", "--no-progress", "--out", str(out),
                 "--target-halfwidth", "0.15", "--max-trials", "160", "--format", "csv"]) == 0
    captured = capsys.readouterr()
    assert "pilot pass" in captured.err and "sizes per d: d = 2:" in captured.err
    lines = captured.out.strip().splitlines()
    assert len(lines) >= 6  # header + about ten auto sizes
    assert main(["run", "--dims", "2", "--sizes", "auto", "--max-trials", "10", "--serial",
                 "--out", str(tmp_path / "x")]) == 2  # max_trials without a target
