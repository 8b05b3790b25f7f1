"""The frozen hull-test spec: validated once at construction, the id of the rows, no **options."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from mc_hull.runs.datasets import ArrayData, Reduction
from mc_hull.errors import McHullError
from mc_hull.jobs import hulltest as hulltest_job
from mc_hull.jobs.hulltest import SHARD_POINTS, HullTestSpec


@pytest.mark.parametrize("kwargs, needle", [
    (dict(tol=1e-13), "--tol: must be in [1e-12, 0.01]"),
    (dict(tol="1e-9"), "--tol: must be a number"),
    (dict(tol=float("nan")), "--tol: must be in"),
    (dict(measure="volume"), "--measure: must be one of membership, distance"),
    (dict(solver="simplex-ish"), "simplex-ish"),
    (dict(seed=-1), "--seed: must be an integer >= 0"),
    (dict(seed=True), "--seed: must be an integer >= 0"),
    (dict(seed=1.5), "--seed: must be an integer >= 0"),
])
def test_bad_options_are_refused_when_the_spec_is_built(kwargs, needle):
    with pytest.raises(McHullError) as err:
        HullTestSpec(**kwargs)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_frozen_normalised_and_bound_to_its_data():
    spec = HullTestSpec(seed=np.int64(3), tol=1e-9, solver="auto")
    assert type(spec.seed) is int and spec.solver_name != "auto"
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.tol = 1e-6
    with pytest.raises(ValueError, match="unbound"):
        spec.test_id
    X = ArrayData(np.arange(12.0).reshape(4, 3), None, "x")
    Q = ArrayData(np.ones((2, 3)), None, "q")
    bound = spec.bind(X, Q, Reduction("none"))
    assert bound.train == X.content_sha256 and bound.test == Q.content_sha256 and bound.reduction == "none"
    assert bound.test_id == spec.bind(X, Q, Reduction("none")).test_id
    # what the rows depend on changes the id; the seed only for random projections
    assert HullTestSpec(seed=4).bind(X, Q, Reduction("none")).test_id == bound.test_id
    assert HullTestSpec(seed=4).bind(X, Q, Reduction("random-projection", 2)).test_id != \
        bound.bind(X, Q, Reduction("random-projection", 2)).test_id
    for other in (HullTestSpec(seed=3, tol=1e-8), HullTestSpec(seed=3, measure="distance")):
        assert other.bind(X, Q, Reduction("none")).test_id != bound.test_id
    assert spec.bind(X, Q, Reduction("none"), engine="source").test_id != bound.test_id
    with pytest.raises(ValueError, match="engine"):
        HullTestSpec(engine="gpu")


def test_membership_ids_are_the_ids_stores_already_hold():
    """The key of a membership test on the memory engine is the pre-spec key, so old stores resume."""
    X = ArrayData(np.random.default_rng(0).normal(size=(30, 4)), None, "x")
    Q = ArrayData(np.random.default_rng(1).normal(size=(7, 4)), None, "q")
    old = {"train": X.content_sha256, "test": Q.content_sha256, "reduce": "pca:2", "image_shape": None,
           "solver": HullTestSpec().solver_name, "tol": 1e-9, "shard_points": SHARD_POINTS, "seed": None}
    want = hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:16]
    assert hulltest_job.test_key(X, Q, Reduction("pca", 2), seed=0, solver="auto", tol=1e-9) == want
