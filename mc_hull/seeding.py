"""Random streams derived from keys with SeedSequence, never from execution order."""

from __future__ import annotations

import zlib

import numpy as np

#: Version of the draw scheme, recorded with every run: a sampler whose draws from the same key changed
#: sets ``Sampler.draws`` to the scheme that introduced them, and rows of runs recorded before it get
#: another trial identity (they name other points).  2: ball, student-t, mixture and beta draws became
#: prefix-stable in the number of points (issue 24).
DRAW_SCHEME = 2
# Stream tags inside one replicate's key.
TRAIN, QUERY, STRUCTURE = 0, 1, 2
# Rows of X drawn per block: block b of replicate r always comes from the same key,
# so X can be generated whole or streamed block by block with identical values.
BLOCK_ROWS = 1 << 16
# Most coordinates in one block (512 MiB of float64): above d = 1024 a block holds fewer rows,
# so one block of a streamed training set fits any reasonable memory budget at every d <= 4096.
BLOCK_ELEMS = 1 << 26


def name_key(name: str) -> int:
    """A stable 32-bit integer for a distribution name (CRC-32 of its UTF-8 bytes)."""
    return zlib.crc32(name.encode("utf-8"))


def replicate_key(distribution: str, d: int, n: int, replicate: int) -> tuple[int, ...]:
    """The spawn key of one replicate: (distribution, d, N, replicate)."""
    return (name_key(distribution), int(d), int(n), int(replicate))


def rng(root: int, key: tuple[int, ...], *tags: int) -> np.random.Generator:
    """A Generator from ``SeedSequence(root, spawn_key=key + tags)``."""
    return np.random.default_rng(np.random.SeedSequence(int(root), spawn_key=(*key, *tags)))


def block_rows(d: int) -> int:
    """Rows per block of a d-dimensional training set: 65,536, fewer above d = 1024 (at most 2^26 coordinates)."""
    return max(1, min(BLOCK_ROWS, BLOCK_ELEMS // max(1, int(d))))
