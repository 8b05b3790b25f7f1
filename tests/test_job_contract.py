"""The job contract, held by every job: the Monte Carlo, nested and hull-test jobs.

A job is keyed units and a pure ``compute(unit)`` (:class:`mc_hull.jobs.base.Job`).  So:
serial rows equal mapped rows (out of order, and on real Ray actors); a resume skips the
committed units and ends with every row once; the sizes of the units add up to the total, and
to the rows the store holds; compute is pure and its status is the one int8 encoding.
"""

from __future__ import annotations

import numpy as np
import pytest

from mc_hull.runs.datasets import ArrayData, Reduction
from mc_hull.jobs.hulltest import HullTestJob, HullTestSpec
from mc_hull.jobs.base import Job, MonteCarloJob
from mc_hull.jobs.nested import NestedJob
from mc_hull.runs.runner import open_run, run, serial_map
from mc_hull.spec import Spec
from mc_hull.store import HullTestStore, ResultStore

TIMINGS = {"solve_seconds", "seconds"}


class Stop(Exception):
    """Raised by :func:`stopping_map` to interrupt a run after some units."""


def reversed_map(fn, units, context=None, hint=None):
    """Every unit, last first: a map that finishes units in another order than the plan's."""
    for unit in reversed(list(units)):
        yield unit, fn(context, unit)


def stopping_map(limit: int):
    def m(fn, units, context=None, hint=None):
        for i, unit in enumerate(units):
            if i == limit:
                raise Stop
            yield unit, fn(context, unit)
    return m


class JobContract:
    """Subclasses build one job (:meth:`make`) and read its stored rows back (:meth:`rows`)."""

    def make(self, out) -> Job:
        raise NotImplementedError

    def rows(self, job, out) -> list[tuple]:
        raise NotImplementedError

    @staticmethod
    def _sorted(table) -> list[tuple]:
        names = sorted(c for c in table.column_names if c not in TIMINGS)
        return sorted(tuple(repr(v) for v in row) for row in zip(*(table.column(c).to_pylist() for c in names)))

    def test_the_job_satisfies_the_protocol_and_its_sizes_add_up(self, tmp_path):
        job = self.make(tmp_path / "o")
        assert isinstance(job, Job)
        units = list(job.units())
        assert len(units) == job.count() >= 3
        assert len({u.key for u in units}) == len(units) == len(set(units))
        assert sum(job.size(u) for u in units) == job.total()
        rep = run(job, str(tmp_path / "o"), progress=False)
        assert rep.computed == job.count() and rep.size == job.total() == len(self.rows(job, tmp_path / "o"))

    def test_compute_is_pure_with_the_one_status_encoding(self, tmp_path):
        job = self.make(tmp_path / "o")
        unit = next(iter(job.units()))
        a, b = job.compute(unit), job.compute(unit)
        assert a["status"].dtype == np.int8 and set(np.unique(a["status"])) <= {-1, 0, 1}
        assert len(a["status"]) == job.size(unit)
        for name in a:
            if name not in TIMINGS:
                assert np.array_equal(a[name], b[name], equal_nan=a[name].dtype.kind == "f"), name

    def test_serial_rows_equal_mapped_rows(self, tmp_path):
        serial, mapped = tmp_path / "serial", tmp_path / "mapped"
        run(self.make(serial), str(serial), map=serial_map, progress=False)
        job = self.make(mapped)
        run(job, str(mapped), map=reversed_map, progress=False)
        assert self.rows(job, serial) == self.rows(job, mapped)

    def test_a_resume_skips_committed_units(self, tmp_path):
        ref, out = tmp_path / "ref", tmp_path / "out"
        run(self.make(ref), str(ref), progress=False)
        job = self.make(out)
        with pytest.raises(Stop):
            run(job, str(out), map=stopping_map(2), progress=False)
        rep = run(job, str(out), progress=False)
        assert (rep.skipped, rep.computed) == (2, job.count() - 2)
        assert rep.size == job.total() - sum(job.size(u) for u in list(job.units())[:2])
        again = run(job, str(out), progress=False)
        assert (again.skipped, again.computed) == (job.count(), 0)
        assert self.rows(job, out) == self.rows(job, ref)      # every row once

    @pytest.mark.ray
    def test_rows_on_ray_actors_equal_serial_rows(self, tmp_path, ray_local):
        from mc_hull.distributed.pool import Pool

        serial, mapped = tmp_path / "serial", tmp_path / "ray"
        run(self.make(serial), str(serial), progress=False)
        job = self.make(mapped)
        with Pool() as pool:
            run(job, str(mapped), map=pool.map_unordered, progress=False)
        assert self.rows(job, serial) == self.rows(job, mapped)


class _StoredTrials(JobContract):
    spec: Spec

    def rows(self, job, out):
        return self._sorted(ResultStore(str(out)).trials(job.spec.run_id))


class TestMonteCarloJob(_StoredTrials):
    spec = Spec(distribution="gaussian", dims=(2, 3), sizes=(4, 30), trials=60, queries_per_set=20,
                shard_trials=40, seed=5, solver="colgen")

    def make(self, out):
        open_run(self.spec, str(out))
        return MonteCarloJob(self.spec)


class TestMonteCarloJobStreamed(TestMonteCarloJob):
    """Cells whose X exceeds the memory budget: regenerated from the keyed source on every pass."""

    spec = Spec(distribution="gaussian", dims=(3,), sizes=(20, 3000), trials=60, queries_per_set=20,
                shard_trials=20, seed=8, solver="colgen")

    @pytest.fixture(autouse=True)
    def _small_budget(self, monkeypatch):
        monkeypatch.setenv("MC_HULL_MEMORY_BUDGET", "100K")     # X of (3, 3000) is 72 KB, twice 144 KB

    def test_the_large_cell_is_streamed(self, tmp_path):
        job = self.make(tmp_path / "o")
        big = next(u for u in job.units() if u.n == 3000)
        assert job.spread(big) and not job.spread(next(u for u in job.units() if u.n == 20))
        assert all(m.startswith("stream") for m in job.compute(big)["method"])

    # the Ray workers of ray_local do not see this test's budget; placement over actors is
    # tests/test_actor_source.py's
    test_rows_on_ray_actors_equal_serial_rows = None


class TestNestedJob(_StoredTrials):
    spec = Spec(distribution="cube", dims=(2, 3), sizes=(3, 8, 20, 50), trials=60, queries_per_set=15,
                shard_trials=30, seed=2, nested=True)

    def make(self, out):
        open_run(self.spec, str(out))
        return NestedJob(self.spec)


class TestHullTestJob(JobContract):
    def make(self, out):
        rng = np.random.default_rng(4)
        X = rng.standard_normal((200, 4))
        Q = np.vstack([1.2 * rng.standard_normal((1100, 4)), X[:3]])      # vertices and points outside
        spec = HullTestSpec(tol=1e-9, solver="auto").bind(ArrayData(X, None, "train"), ArrayData(Q, None, "test"),
                                                          Reduction("none"))
        return HullTestJob(spec, X, Q)

    def rows(self, job, out):
        return self._sorted(HullTestStore(str(out)).points(job.test_id))
