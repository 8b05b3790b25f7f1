"""The keyed draw: the only code turning (spec, d, N, replicate) into a training set X and its queries.

Replicate ``r`` of cell (d, N) has the spawn key ``(distribution, d, N, r)``
(:func:`mc_hull.seeding.replicate_key`).  Its per-replicate structure (a random embedding, mixture
centres, ...) is drawn from tag ``STRUCTURE``, block ``b`` of X from tags ``(TRAIN, b)`` and the
queries from tag ``QUERY`` of that key, so X is the same drawn whole, into a reused buffer, or
block by block on any worker, and its prefixes are the smaller training sets of a nested run.

Pure: numpy and the seeding tags only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import seeding
from ..solvers.sources import PointSource
from .base import Sampler


@dataclass(frozen=True)
class KeyedSource(PointSource):
    """One replicate's training set as a point source: any block regenerated from its key.

    Attributes
    ----------
    sampler : Sampler
        The distribution in dimension d, bound to the replicate's structure.
    root : int
        The spec's seed.
    key : tuple of int
        The replicate's spawn key.
    n : int
        Rows of X.
    k : int
        Queries of the replicate.
    """

    sampler: Sampler
    root: int
    key: tuple
    n: int
    k: int

    @property
    def d(self) -> int:
        return self.sampler.d

    @property
    def isotropic(self) -> bool:
        """Whether the law is full-dimensional and rotation-invariant (:attr:`Sampler.isotropic`)."""
        return bool(self.sampler.isotropic)

    @property
    def block_rows(self) -> int:
        return seeding.block_rows(self.d)

    def generate(self, block_ids):
        """Yield ``(start, X_block)`` for the given block ids, drawn from their keys."""
        rows = self.block_rows
        for b in block_ids:
            start = int(b) * rows
            stop = min(start + rows, self.n)
            yield start, self.sampler.random(stop - start, seeding.rng(self.root, self.key, seeding.TRAIN, int(b)))

    def training_set(self, out: np.ndarray | None = None) -> np.ndarray:
        """X whole, block by block (the split every path uses).

        ``out``, a float64 array of shape (n, d), receives X (a unit's replicates reuse one buffer:
        first touching the pages of a fresh array of 2.8e7 doubles cost 0.4 s of page faults here,
        more than drawing them); C order unless ``out`` says otherwise.

        Returns
        -------
        ndarray, shape (n, d)
        """
        if out is None or out.shape != (self.n, self.d) or out.dtype != np.float64:
            out = np.empty((self.n, self.d))
        for start, block in self.generate(range(self.n_blocks)):
            out[start:start + len(block)] = block
        return out

    def queries(self) -> np.ndarray:
        """The replicate's queries, shape (k, d)."""
        return self.sampler.random(self.k, seeding.rng(self.root, self.key, seeding.QUERY))


def keyed_source(spec, d: int, n: int, replicate: int, queries: int | None = None) -> KeyedSource:
    """Replicate ``replicate`` of cell (d, N) of ``spec`` (a Spec: distribution, params, seed, K per replicate).

    ``queries`` overrides the spec's K for the replicate (:meth:`mc_hull.spec.Spec.queries_in`).
    """
    key = seeding.replicate_key(spec.distribution, d, n, replicate)
    sampler = spec.sampler(d).bind(seeding.rng(spec.seed, key, seeding.STRUCTURE))
    k = spec.queries_in(replicate, d, n) if queries is None else int(queries)
    return KeyedSource(sampler, int(spec.seed), key, int(n), k)


def replicate_data(spec, d: int, n: int, replicate: int, queries: int | None = None,
                   out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Training set X (n, d) and queries Q (K_r, d) of one replicate, reproducible from its key.

    ``out`` receives X (see :meth:`KeyedSource.training_set`).
    """
    src = keyed_source(spec, d, n, replicate, queries)
    return src.training_set(out), src.queries()
