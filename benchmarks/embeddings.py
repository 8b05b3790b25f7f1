"""Embedding-like float32 data: clusters on a decaying spectrum, written as ``.npy`` shards or Parquet.

Usage::

    python benchmarks/embeddings.py OUT --n 100000 --d 1024 [--test 10000] [--shards 8]
        [--format npy|parquet] [--seed 0]

writes ``OUT/train/part-00000.npy ...`` (or one Parquet dataset with a fixed-size-list
column ``embedding``, one row group per shard) and ``OUT/test.npy``.

The model: ``C`` cluster centres and per-point offsets drawn in a latent space
with variances ``j^-alpha`` (j = 1..d, a decaying spectrum like that of real
sentence/image embeddings), then rotated by one random orthogonal matrix so that
no coordinate is special, and stored as float32.  Training and test points are
independent draws of the same mixture (test points come from other keys).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: Clusters, spectrum exponent, centre spread relative to the within-cluster spread.
CLUSTERS, ALPHA, SPREAD = 64, 1.0, 2.0


def model(d: int, seed: int):
    """(centres (C, d), spectrum (d,), rotation (d, d)) of the mixture, from ``seed``."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    spectrum = np.arange(1, d + 1, dtype=np.float64) ** (-ALPHA / 2)     # standard deviations
    centres = SPREAD * rng.standard_normal((CLUSTERS, d)) * spectrum
    rot, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return centres, spectrum, rot


def draw(n: int, d: int, seed: int, key: int, parts=None) -> np.ndarray:
    """``n`` float32 points (n, d) of the mixture, drawn from ``SeedSequence(seed, spawn_key=(1, key))``."""
    centres, spectrum, rot = parts or model(d, seed)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, key)))
    c = rng.integers(0, CLUSTERS, n)
    z = centres[c] + rng.standard_normal((n, d)) * spectrum
    return (z @ rot).astype(np.float32)


def write(out: str, n: int, d: int, test: int, shards: int, fmt: str, seed: int) -> None:
    parts = model(d, seed)
    os.makedirs(os.path.join(out, "train"), exist_ok=True)
    edges = np.linspace(0, n, shards + 1).astype(int)
    writer = None
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        X = draw(b - a, d, seed, 1000 + i, parts)
        if fmt == "npy":
            np.save(os.path.join(out, "train", f"part-{i:05d}.npy"), X)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            col = pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), d)
            table = pa.table({"embedding": col})
            if writer is None:
                writer = pq.ParquetWriter(os.path.join(out, "train", "part-0.parquet"), table.schema)
            writer.write_table(table, row_group_size=len(X))
    if writer is not None:
        writer.close()
    if test:
        np.save(os.path.join(out, "test.npy"), draw(test, d, seed, 0, parts))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--d", type=int, default=1024)
    p.add_argument("--test", type=int, default=10_000)
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("--format", choices=("npy", "parquet"), default="npy")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    write(a.out, a.n, a.d, a.test, a.shards, a.format, a.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
