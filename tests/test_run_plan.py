"""The store reads a run's plan from its recorded spec without the spec module (store.results.RunPlan):
for every preset and for grids, K tables, adaptive and nested specs it agrees with Spec on every cell,
K and replicate; a record that is not a canonical spec gives no plan."""

from __future__ import annotations

import numpy as np
import pytest

from mc_hull.spec import Spec, load_panels, load_preset, preset_names
from mc_hull.store.results import RunPlan


def _specs():
    for name in preset_names():
        for panel in load_panels(load_preset(name)):
            yield panel.spec
    yield Spec.from_dict({"dims": [2, 5], "sizes": [3, 40, 7], "trials": 7, "queries_per_set": 3})
    yield Spec.from_dict({"dims": [3, 4], "grid": {"3": [5, 9], "4": [11]}, "trials": 1000})   # the cost rule's K table
    yield Spec.from_dict({"dims": [2], "sizes": [10, 100], "trials": 61, "queries_per_set": 61})
    yield Spec.from_dict({"dims": [2, 6], "sizes": [10, 30], "trials": 100, "queries_per_set": 7,
                          "target_halfwidth": 0.05})
    yield Spec.from_dict({"dims": [2, 3], "grid": {"2": [4, 8, 16], "3": [5, 10]}, "trials": 50, "nested": True})
    rng = np.random.default_rng(7)
    for _ in range(20):
        dims = sorted({int(d) for d in rng.integers(1, 40, size=rng.integers(1, 4))})
        sizes = sorted({int(n) for n in rng.integers(1, 10**6, size=rng.integers(1, 5))})
        trials = int(rng.integers(1, 5000))
        q = int(rng.integers(1, trials + 1)) if rng.random() < 0.5 else None
        yield Spec.from_dict({"dims": dims, "sizes": sizes, "trials": trials, "queries_per_set": q,
                              "distribution": str(rng.choice(["gaussian", "cube", "ball"]))})


@pytest.mark.parametrize("spec", list(_specs()), ids=lambda s: s.run_id)
def test_the_recorded_plan_agrees_with_the_spec(spec):
    plan = RunPlan.from_record(spec.to_dict())
    assert plan is not None
    assert plan.distribution == spec.distribution and plan.trials == spec.trials
    assert list(plan.cells) == list(spec.cells)
    for d, n in spec.cells:
        assert plan.k_for(d, n) == spec.k_for(d, n)
        last = spec.replicates_for(d, n)
        for r in {0, 1, last - 2, last - 1, last, last + 3} - {-1, -2}:
            assert plan.queries_in(r, d, n) == spec.queries_in(r, d, n), (d, n, r)
    d, n = spec.cells[-1]
    assert (d, n + 1) not in plan.cell_set
    assert plan.k_for(d, n + 1) == (spec.queries_per_set if isinstance(spec.queries_per_set, int) else None)


@pytest.mark.parametrize("damage", [
    lambda r: r.pop("dims"), lambda r: r.update(trials=0), lambda r: r.update(trials=True),
    lambda r: r.update(trials=10.0), lambda r: r.update(queries_per_set=-3), lambda r: r.update(sizes="100"),
    lambda r: r.update(queries_per_set={"2": {"10": 5}}), lambda r: r.update(dims=[2, None]),
    lambda r: r.update(grid={"2": [10], "99": [5]}), lambda r: r.clear(),
])
def test_a_record_that_is_not_a_canonical_spec_gives_no_plan(damage):
    record = Spec.from_dict({"dims": [2, 3], "sizes": [10, 20], "trials": 30, "queries_per_set": 4}).to_dict()
    damage(record)
    assert RunPlan.from_record(record) is None
    assert RunPlan.from_record(None) is None and RunPlan.from_record(["dims"]) is None
