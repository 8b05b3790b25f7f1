"""Huge cells: a training set regenerated block by block from its seeds, decided by the streaming solver.

When ``N * d * 8`` bytes exceed the memory budget (:func:`mc_hull.plan.needs_streaming`), X is
never materialised.  Block ``b`` of replicate ``r`` is always drawn from ``SeedSequence(seed,
spawn_key=(dist, d, N, r, TRAIN, b))`` (:mod:`mc_hull.seeding`), so :class:`KeyedSource` yields
exactly the rows the in-memory path would hold, in any order, on any worker, and
:class:`mc_hull.solvers.stream.StreamSolver` decides the replicate's queries against it with the
same frame and certificates as every solver.  Memory is one block (at most 2^26 coordinates,
512 MiB) and its frame copy, plus the working sets of a batch of queries sized to a quarter of
``MC_HULL_MEMORY_BUDGET``.

Reach (measured on this 2-core machine, other jobs running; Gaussian data, 100 queries per
training set, one core): see the README's Performance section for the figures at
d = 20, N = 10^7 .. 10^9 and d = 4096, N = 70,000.  A pass costs about ``N d`` draws plus
``N d B`` multiply-adds; block ranges of a pass are independent, so a ``map`` over Ray actors
(``mc_hull.distributed.Pool.map``) divides a pass by the CPUs it has.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import seeding
from .plan import memory_budget, needs_streaming  # noqa: F401 - re-exported for callers
from .solvers import STATUS_NAMES
from .solvers.stream import ADD_ROWS, PointSource, StreamSolver
from .spec import Spec


def stream_bytes(d: int, queries: int) -> int:
    """Peak bytes of a streamed decision beyond the interpreter: a block, its frame copy, scores, working sets."""
    block = seeding.block_rows(d) * d * 8
    return 3 * block + (16 << 20) + min(memory_budget() // 4, 8 * queries * d * ADD_ROWS * (d + 1))


@dataclass(frozen=True)
class KeyedSource(PointSource):
    """A replicate's training set as a point source: any block regenerated from its key.

    Attributes
    ----------
    spec_json : str
        The spec (canonical JSON), for the seed, distribution and parameters.
    d, n, replicate : int
    """

    spec_json: str
    d: int
    n: int
    replicate: int

    @property
    def block_rows(self) -> int:
        return seeding.block_rows(self.d)

    def blocks(self):
        """``(block, start, stop)`` for every block, lazily (the split of ``trial.training_set``)."""
        return seeding.train_blocks(self.n, self.block_rows)

    def _sampler(self):
        spec = Spec.from_json(self.spec_json)
        key = seeding.replicate_key(spec.distribution, self.d, self.n, self.replicate)
        return spec, key, spec.sampler(self.d).bind(seeding.rng(spec.seed, key, seeding.STRUCTURE))

    def generate(self, block_ids):
        """Yield ``(start, X_block)`` for the given block ids, drawn from their keys."""
        spec, key, sampler = self._sampler()
        rows = self.block_rows
        for b in block_ids:
            start = int(b) * rows
            stop = min(start + rows, self.n)
            yield start, sampler.random(stop - start, seeding.rng(spec.seed, key, seeding.TRAIN, int(b)))

    def queries(self) -> np.ndarray:
        """The replicate's queries (K_r, d), the same as the in-memory path's."""
        spec, key, sampler = self._sampler()
        k = spec.queries_in(self.replicate, self.d, self.n)
        return sampler.random(k, seeding.rng(spec.seed, key, seeding.QUERY))


#: The name older code and tests use.
Source = KeyedSource


def solver(map=None, ranges: int = 1) -> StreamSolver:
    """The streaming solver with a quarter of the memory budget for its working sets."""
    return StreamSolver(budget=memory_budget() // 4, map=map, ranges=ranges, fallbacks=())


def run_shard(spec: Spec, shard, *, map=None, ranges: int = 1, place=None) -> dict[str, np.ndarray]:
    """Like :func:`mc_hull.trial.run_shard`, streaming each training set (same columns, same queries).

    ``place``, when given, turns a replicate's :class:`KeyedSource` into a context manager over a
    placed source (``mc_hull.distributed_blocks.placer``: its blocks held by actors over the
    cluster); the answers are the same.
    """
    from .trial import COLUMNS, guard_rows

    parts = []
    for r in range(shard.start, shard.stop):
        src = KeyedSource(spec.to_json(), shard.d, shard.n, r)
        if place is None:
            dec = solver(map, ranges).decide(src, src.queries(), tol=spec.tol)
        else:
            with place(src) as placed:
                dec = solver().decide(placed, src.queries(), tol=spec.tol)
        k = dec.status.shape[0]
        parts.append({
            "replicate": np.full(k, r, dtype=np.int32),
            "query": np.arange(k, dtype=np.int32),
            "inside": np.where(dec.status < 0, np.nan, dec.status.astype(np.float64)),
            "status": np.array([STATUS_NAMES[int(v)] for v in dec.status], dtype=object),
            "method": np.asarray(dec.method, dtype=object),
            "certificate_value": dec.certificate.astype(np.float64),
            "solve_seconds": dec.seconds.astype(np.float64),
            "rounds": dec.rounds.astype(np.int32),
        })
    cols = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    cols["run_id"] = np.full(len(cols["query"]), spec.run_id, dtype=object)
    return guard_rows({name: cols[name] for name in COLUMNS})
