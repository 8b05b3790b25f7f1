"""Split a spec into shards: contiguous ranges of replicates of one cell, each with a stable key."""

from __future__ import annotations

from dataclasses import dataclass

from .spec import Spec


@dataclass(frozen=True, order=True)
class Shard:
    """Replicates ``start .. stop-1`` of cell (distribution, d, n).

    Because every replicate's randomness comes from its own key, a shard's
    rows depend only on (spec, shard): any worker, any order, any retry.
    """

    distribution: str
    d: int
    n: int
    start: int
    stop: int

    @property
    def key(self) -> str:
        """Stable text key, also the stem of the shard's file name."""
        return f"{self.distribution}/d={self.d}/n={self.n}/r{self.start:07d}-{self.stop:07d}"

    @property
    def partition(self) -> str:
        """Hive partition directory of the cell."""
        return f"distribution={self.distribution}/d={self.d}/n={self.n}"

    def trials(self, spec: Spec) -> int:
        return sum(spec.queries_in(r) for r in range(self.start, self.stop))


def replicates_per_shard(spec: Spec) -> int:
    return max(1, spec.shard_trials // spec.queries_per_set)


def plan(spec: Spec, replicate_start: int = 0, replicate_stop: int | None = None) -> list[Shard]:
    """All shards of ``spec`` (cells in spec order), optionally for a range of replicates.

    Parameters
    ----------
    spec : Spec
    replicate_start, replicate_stop : int
        Replicate range per cell (default: all ``spec.replicates``); adaptive
        runs use later ranges to add shards to a cell.
    """
    stop_all = spec.replicates if replicate_stop is None else replicate_stop
    step = replicates_per_shard(spec)
    shards = []
    for d, n in spec.cells:
        for start in range(replicate_start, stop_all, step):
            shards.append(Shard(spec.distribution, d, n, start, min(start + step, stop_all)))
    return shards
