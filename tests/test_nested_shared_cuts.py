"""Parts of one pricing pass share their cuts: a direction one part finds dead is not scored by the others."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from mc_hull import seeding
from mc_hull.nested import stream as nested_stream
from mc_hull.samplers import keyed_source
from mc_hull.spec import Spec


def _search(src, Q, g, budget, pool=None, threads=1):
    s = nested_stream._StreamSearch(src, Q, g, budget, 1e-9, 12, None, nested_stream.SIEVE, pool, threads)
    s.run()
    return s


def _replicate(d, n, K, seed, points=12):
    sizes = tuple(int(x) for x in np.unique(np.geomspace(20, n, points).astype(int)))
    spec = Spec.from_dict(dict(distribution="gaussian", dims=(d,), sizes=sizes, trials=K, queries_per_set=K,
                               seed=seed, nested=True))
    src = keyed_source(spec, d, n, 0, queries=K)
    return src, src.queries(), np.array(spec.sizes)


def _frozen(ctx, blocks):
    """``_price_part`` on a holder's read-only copy of the context: never written, each part on its own."""
    ctx = dict(ctx)
    ctx["limit"] = ctx["limit"].copy()
    ctx["limit"].flags.writeable = False
    before = ctx["limit"].copy()
    out = _REAL(ctx, blocks)
    assert np.array_equal(ctx["limit"], before)
    return out


_REAL = nested_stream._price_part


@pytest.mark.parametrize("d,n,K,seed,held,fewer", [(8, 600_000, 40, 3, 1.0, True), (10, 900_000, 50, 17, 0.3, False),
                                                    (6, 200_000, 20, 5, 0.0, True)])
def test_parts_in_turn_price_no_more_than_one_part(d, n, K, seed, held, fewer, monkeypatch):
    """Eight parts of every pass run one after the other (a pool of one thread): each starts from the cuts
    of the parts before it, so at every row it knows what one part going through in order knows, and it
    scores and bounds no more rows (fewer: a later part also stops at the rows still needed when it
    starts).  Every answer is the same.  Parts on read-only copies (no shared cuts) price each
    direction until it fails on their own rows: more rows where directions die within a pass."""
    src, Q, g = _replicate(d, n, K, seed)
    budget = int(held * 8 * d * (n + seeding.block_rows(d)))
    one = _search(src, Q, g, budget)
    with ThreadPoolExecutor(1) as pool:
        parts = _search(src, Q, g, budget, pool=pool, threads=2)    # 4 * 2 runs of blocks per pass
        monkeypatch.setattr(nested_stream, "_price_part", _frozen)
        alone = _search(src, Q, g, budget, pool=pool, threads=2)
    for other in (parts, alone):
        for name in ("low", "high", "low_value", "high_value", "directions"):
            assert np.array_equal(getattr(one, name), getattr(other, name), equal_nan=True), name
        assert other.rows.passes == one.rows.passes
    assert parts.rows.served <= one.rows.served and parts.sieved <= one.sieved
    assert alone.rows.served >= parts.rows.served and alone.sieved >= parts.sieved
    if fewer:
        assert alone.rows.served > 1.05 * parts.rows.served
