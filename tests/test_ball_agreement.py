"""A small uniform-ball grid run through the whole pipeline agrees with the exact ball curve."""

from mc_hull.query import agreement, cell_estimates
from mc_hull.runs.runner import execute
from mc_hull.spec import Spec
from mc_hull.theory.ball import ball_n_at_probability


def test_ball_grid_inside_exact_intervals(tmp_path):
    # N where the exact ball p is about 0.1, 0.3, 0.5, 0.7, 0.9 for d = 2 and 3.
    grid = tuple((d, tuple(sorted({max(d + 1, round(ball_n_at_probability(d, p))) for p in
                                   (0.1, 0.3, 0.5, 0.7, 0.9)}))) for d in (2, 3))
    spec = Spec(distribution="ball", dims=(2, 3), sizes=grid[1][1], grid=grid, trials=400,
                queries_per_set=20, seed=8, shard_trials=400)
    out = tmp_path / "ball"
    execute(spec, str(out), backend="serial", progress=False)
    table = cell_estimates(str(out))
    rows = table.to_pylist()
    assert len(rows) >= 9 and all(r["exact"] is not None for r in rows)
    ps = [r["exact"] for r in rows]
    assert min(ps) < 0.15 and max(ps) > 0.85
    cells, outside = agreement(table)
    assert cells == len(rows) and outside == 0, [(r["d"], r["n"], r["p_hat"], r["exact"]) for r in rows]
