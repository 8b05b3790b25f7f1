"""Keyed randomness: shards are pure functions of (spec, shard), independent of order and sharding."""

import numpy as np

from mc_hull import seeding
from mc_hull.jobs.plan import Shard, plan
from mc_hull.spec import Spec
from mc_hull.samplers import KeyedSource, replicate_data
from mc_hull.jobs.trial import run_shard


def training_set(sampler, root, key, n):
    return KeyedSource(sampler, root, key, n, 0).training_set()


def test_same_key_same_stream_different_key_different_stream():
    key = seeding.replicate_key("gaussian", 4, 100, 3)
    a = seeding.rng(1, key, seeding.TRAIN, 0).random(5)
    b = seeding.rng(1, key, seeding.TRAIN, 0).random(5)
    assert np.array_equal(a, b)
    for other in (seeding.rng(2, key, seeding.TRAIN, 0),
                  seeding.rng(1, seeding.replicate_key("gaussian", 4, 100, 4), seeding.TRAIN, 0),
                  seeding.rng(1, seeding.replicate_key("ball", 4, 100, 3), seeding.TRAIN, 0),
                  seeding.rng(1, key, seeding.QUERY)):
        assert not np.array_equal(a, other.random(5))


def test_training_set_is_block_keyed(monkeypatch):
    spec = Spec(dims=(3,), sizes=(50,))
    key = seeding.replicate_key("gaussian", 3, 50, 0)
    whole = training_set(spec.sampler(3), 0, key, 50)
    monkeypatch.setattr(seeding, "BLOCK_ROWS", 50)
    assert np.array_equal(training_set(spec.sampler(3), 0, key, 50), whole)
    # The first block's rows do not depend on how many rows follow.
    assert np.array_equal(training_set(spec.sampler(3), 0, key, 20), whole[:20])


def test_rows_do_not_depend_on_shard_size_or_order():
    spec_a = Spec(dims=(3,), sizes=(20,), trials=40, queries_per_set=10, shard_trials=10)
    spec_b = Spec(dims=(3,), sizes=(20,), trials=40, queries_per_set=10, shard_trials=40)
    rows_a = [run_shard(spec_a, s) for s in reversed(plan(spec_a))]
    rows_b = run_shard(spec_b, plan(spec_b)[0])
    status_a = np.concatenate([r["status"] for r in reversed(rows_a)])
    assert status_a.dtype == np.int8 and np.array_equal(status_a, rows_b["status"])
    X1, Q1 = replicate_data(spec_a, 3, 20, 2)
    X2, Q2 = replicate_data(spec_b, 3, 20, 2)
    assert np.array_equal(X1, X2) and np.array_equal(Q1, Q2)


def test_plan_covers_every_trial_once():
    spec = Spec(dims=(2, 5), sizes=(7, 70), trials=1234, queries_per_set=100, shard_trials=300)
    shards = plan(spec)
    assert len({s.key for s in shards}) == len(shards)
    assert sum(s.trials(spec) for s in shards) == spec.planned_trials
    assert isinstance(shards[0], Shard)
