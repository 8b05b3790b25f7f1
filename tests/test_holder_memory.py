"""A block holder's memory: its blocks, its code and one bounded scratch per pass (issue 21).

Measured in the holders themselves (``BlockHolder.traced``: :mod:`tracemalloc` around a pass, and
``/proc/self/status``), on blocks large enough that the old passes (each block mapped to float64
whole) would exceed the bound; the partials stay bit for bit those of the in-process pass.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from mc_hull.solvers import sources
from mc_hull.solvers.pricing import price
from mc_hull.solvers.sourced import _nearest_pass, _price_pass, _radius_pass, block_price
from mc_hull.solvers.sources import ArraySource, Streamed, frame_pass, margin_pass, nearest_pass, price_pass, sliced_price

MiB = 2 ** 20


def _equal(a, b):
    if isinstance(a, (tuple, list)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            _equal(x, y)
    else:
        assert np.array_equal(np.asarray(a), np.asarray(b)), (a, b)


@pytest.mark.ray
def test_a_holders_pass_scratch_is_bounded_whatever_the_block_size(ray_local):
    """Blocks of 2^22 coordinates (32 MiB in float64): every pass a hull-test sends to a holder allocates at
    most two slices' worth (2 x 8 MiB) plus small results, and returns the in-process partials bit for bit."""
    import ray

    from mc_hull.distributed.blocks import ActorSource

    rng = np.random.default_rng(21)
    d, rows = 32, 1 << 17                     # one block: 4 Mi coordinates, 16 MiB float32, 32 MiB mapped
    X = (rng.standard_normal((2 * rows, d)) * 3 + 7).astype(np.float32)
    src = ArraySource(X, block_rows=rows)
    frame = Streamed(src).frame
    Qf = frame.map(rng.standard_normal((64, d)) * 3 + 7)
    W = rng.standard_normal((64, d))
    bound = 2 * 8 * sources.PASS_ELEMS + 2 * MiB
    assert rows * d * 8 > bound                # a block mapped whole would not fit: the bound can fail
    passes = [(frame_pass, d), (_price_pass, (frame, W, 32, 2)), (_nearest_pass, (frame, Qf)),
              (_radius_pass, frame), (price_pass, (frame, W, 16, 2, True)), (margin_pass, (frame, Qf, W)),
              (nearest_pass, (frame, Qf))]
    with ActorSource(src, holders=2, hold=True) as actors:
        for fn, ctx in passes:
            got = ray.get([h.traced.remote(fn, ctx) for h in actors.holders], timeout=600)
            for (a, b), (part, drawn, peak, memory) in zip(actors.runs, got):
                assert drawn == 0 and memory["held"] == (b - a) * rows * d * 4
                assert peak <= bound, (fn.__name__, peak / MiB)
                _equal(part, fn(ctx, src.generate(range(a, b))))


@pytest.mark.ray
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and madvise: Linux")
def test_a_holder_keeps_no_object_store_pages_from_earlier_passes(ray_local, tmp_path):
    """A pass that reads a 48 MiB context touches 48 MiB of the object store in a holder of file blocks; the
    next pass starts by dropping them (the objects stay in the store), so they leave the holder's RSS.  A
    holder of an array shipped in the store reads its blocks in place there and keeps their pages."""
    import ray

    from mc_hull.distributed.blocks import ActorSource
    from mc_hull.runs.filesource import open_source

    def _touch_pass(context, blocks):         # a local function: shipped by value to the holder
        for _ in blocks:
            pass
        return float(np.sum(context))

    rng = np.random.default_rng(5)
    X = rng.standard_normal((40000, 100))     # 32 MiB
    (tmp_path / "train").mkdir()
    np.save(tmp_path / "train" / "part-0.npy", X)
    big = np.ones(6 << 20)                    # 48 MiB, read whole by the pass
    for loader in (open_source(str(tmp_path / "train")), ArraySource(X, block_rows=10000)):
        with ActorSource(loader, holders=1, hold=True) as actors:
            h = actors.holders[0]
            frame = Streamed(loader).frame
            part, _, _, during = ray.get(h.traced.remote(_touch_pass, big), timeout=300)
            assert part == big.size
            assert during["RssShmem"] >= 40 * MiB              # the context's pages were in the holder's RSS
            _, _, _, after = ray.get(h.traced.remote(_radius_pass, frame), timeout=300)
            if isinstance(loader, ArraySource):               # its blocks are store pages, read in place
                assert after["RssShmem"] >= X.nbytes and after["held"] == X.nbytes
            else:
                assert after["RssShmem"] <= 8 * MiB, after["RssShmem"] / MiB
                assert after["RssAnon"] >= X.nbytes            # its blocks are its own memory
            assert ray.get(h.run.remote(_touch_pass, big), timeout=300)[0] == big.size    # still readable


@pytest.mark.parametrize("pass_elems, case", [(1, "ties"), (7, "ties"), (64, "ties"), (1 << 20, "ties"),
                                               (1, "random"), (64, "random"), (1 << 20, "random"),
                                               (4096, "long"), (1 << 20, "long")])
def test_sliced_pricing_is_pricing_on_the_whole_block(monkeypatch, pass_elems, case):
    """Scores in row slices give exactly the chunks, winners, ties (the earlier row) and losers of one product
    over the block: :func:`~mc_hull.solvers.pricing.price` (both its paths) and the padded chunks of
    ``block_price``."""
    monkeypatch.setattr(sources, "PASS_ELEMS", pass_elems)
    rng = np.random.default_rng({"ties": 1, "random": 2, "long": 3}[case])
    for _ in range(4 if case == "long" else 25):
        N = int(rng.integers(40000, 60000)) if case == "long" else int(rng.integers(1, 700))
        d, B, k = int(rng.integers(1, 6)), int(rng.integers(1, 9)), int(rng.integers(1, 50))
        # values with few bits: every score exact whatever the product's shape (BLAS rounds products of
        # other shapes differently; that is what the fixed slices are for), so only the chunks are compared
        span = 2 if case == "ties" else 2 ** 20   # "ties": many equal scores, the earlier row must win
        X = rng.integers(-span, span + 1, (N, d)) / 1024.0
        W = rng.integers(-span, span + 1, (B, d)) / 1024.0
        for low in (None, 0, 1, 3):
            _equal(sliced_price(X, W, k, lowest=low), price(X, W, k, lowest=low))
        S = W @ X.T                               # the padded chunks of one product over the block
        kk = max(1, min(k, N))
        L = -(-N // kk)
        pad = np.minimum(np.arange(kk * L), N - 1)
        top = pad[np.arange(kk) * L + S[:, pad].reshape(B, kk, L).argmax(axis=2)]
        best, t_idx, t_val, l_idx, l_val = block_price(X, W, k, 2)
        _equal(t_idx, top)
        _equal(t_val, np.take_along_axis(S, top, axis=1))
        _equal(best, S.max(axis=1))
        _equal(l_val, np.take_along_axis(S, l_idx, axis=1))


def test_file_blocks_are_read_without_a_mapping(tmp_path):
    """Local ``.npy`` shards are read straight into the block (converted where the dtype differs); no
    mapping of a shard outlives the read, so a holder keeps no file pages beyond its rows."""
    from mc_hull.runs.filesource import open_source

    rng = np.random.default_rng(8)
    parts = [rng.standard_normal((n, 5)) for n in (300, 1, 257)]
    (tmp_path / "train").mkdir()
    for i, (p, dtype) in enumerate(zip(parts, (np.float32, np.float16, np.int16))):
        np.save(tmp_path / "train" / f"part-{i}.npy", (p * 100 if dtype == np.int16 else p).astype(dtype))
    src = open_source(str(tmp_path / "train"), block_elems=5 * 64)
    want = np.vstack([np.load(tmp_path / "train" / f"part-{i}.npy").astype(np.float64) for i in range(3)])
    got = np.vstack([X for _, X in src.generate(range(src.n_blocks))])
    assert got.dtype == np.float64 and np.array_equal(got, want)
    with open("/proc/self/maps") as fh:
        assert str(tmp_path / "train") not in fh.read()


@pytest.mark.ray
@pytest.mark.parametrize("take_elems", [1, 3 * 4, 1 << 20])
def test_take_asks_the_holders_in_bounded_calls(ray_local, monkeypatch, take_elems):
    """Rows asked of the holders in calls of at most ``TAKE_ELEMS`` coordinates: the same rows (duplicates,
    any order, across holders and blocks), in float64, whatever the size of a call."""
    from mc_hull.distributed import blocks
    from mc_hull.distributed.blocks import ActorSource

    monkeypatch.setattr(blocks, "TAKE_ELEMS", take_elems)
    rng = np.random.default_rng(13)
    X = (rng.standard_normal((3000, 4)) * 1e3).astype(np.float32)
    idx = np.concatenate([rng.integers(0, 3000, 40), [2999, 0, 0, 127, 128]])
    with ActorSource(ArraySource(X, 128), holders=3) as actors:
        got = actors.take(idx)
    assert got.dtype == np.float64 and np.array_equal(got, X[idx].astype(np.float64))
