"""The distance engine over a point source: the same decisions and overlapping certified intervals as held X."""

from __future__ import annotations

import numpy as np
import pytest

from mc_hull.distance import distances
from mc_hull.solvers.sourced import SourceRows, block_price, held_array
from mc_hull.solvers.sources import ArraySource, Streamed
from mc_hull.solvers.pricing import price


def cases():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((300, 4)) * [1, 3, 0.1, 2] + 1e3              # offset, anisotropic
    yield "offset", X, np.vstack([X[:5], X.mean(0) + rng.standard_normal((30, 4)) * [1, 3, 0.1, 2] * 1.2])
    flat = np.hstack([rng.standard_normal((200, 3)), np.zeros((200, 2))])  # rank-deficient
    yield "flat", flat, np.vstack([flat[:3] * 0.5, rng.standard_normal((20, 5)) * 0.3])
    dup = np.repeat(rng.standard_normal((40, 6)), 3, axis=0)               # duplicates
    yield "dup", dup, np.vstack([dup[:4], rng.standard_normal((20, 6)) * 2])
    f32 = (rng.standard_normal((500, 12)) * np.arange(1, 13) ** -0.5 + 5).astype(np.float32)
    yield "float32", f32, np.vstack([f32[:5].astype(np.float64), 5 + rng.standard_normal((25, 12)) * 0.7,
                                     [[5e17] * 12], [[-3e30] + [0] * 11]])     # and far queries
    tiny = rng.standard_normal((80, 3)) * 1e-200
    yield "tiny", tiny, np.vstack([tiny[:2], rng.standard_normal((10, 3)) * 2e-200])


@pytest.mark.parametrize("name, X, Q", list(cases()), ids=[c[0] for c in cases()])
@pytest.mark.parametrize("block_rows", [7, 64, None])
def test_source_distances_agree_with_held_x(name, X, Q, block_rows):
    ref = distances(X.astype(np.float64), Q)
    got = distances(held_array(X) if block_rows is None else ArraySource(X, block_rows=block_rows), Q)
    assert np.array_equal(got.status, ref.status), name
    assert (got.status >= 0).all()
    tol = 1e-12 * np.maximum(ref.high, 1e-300)
    assert np.all(got.low <= ref.high + tol) and np.all(ref.low <= got.high + tol), name
    assert np.all(got.low <= got.high) and np.all(got.low >= 0)
    np.testing.assert_allclose(got.nn, ref.nn, rtol=1e-12, atol=0)
    inside = ref.status == 1
    assert np.all(got.high[inside] == 0) and np.all(got.low[inside] == 0)
    assert got.converged[~np.isinf(got.high)].mean() >= 0.9
    assert got.scale == pytest.approx(ref.scale, rel=1e-15)
    for res in (ref, got):   # the membership certificate behind each status, on the membership rule's scale
        ins, out = res.status == 1, res.status == 0
        assert np.all(res.certificate[ins] <= 1e-9) and np.all(res.certificate[ins] >= 0)
        assert np.all(res.certificate[out] > 1e-9)


def test_rows_depend_on_blocks_only_not_on_the_dtype_holding_them():
    rng = np.random.default_rng(9)
    X = (rng.standard_normal((333, 8)) + 2).astype(np.float32)
    Q = rng.standard_normal((40, 8)) * 1.5 + 2
    a = distances(ArraySource(X, block_rows=50), Q)
    b = distances(ArraySource(X.astype(np.float64), block_rows=50), Q)
    for f in ("low", "high", "nn", "status", "rounds"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f


def test_block_price_is_colgen_price_on_the_block():
    rng = np.random.default_rng(2)
    for R, k, low in [(100, 7, 2), (64, 8, None), (5, 9, 2), (1, 3, 1), (4096, 34, 2)]:
        Y, W = rng.standard_normal((R, 6)), rng.standard_normal((11, 6))
        a, b = price(Y, W, k, lowest=low), block_price(Y, W, k, low)
        assert np.allclose(a[0], b[0]) and np.array_equal(a[1], b[1]) and np.allclose(a[2], b[2])
        if low:
            assert np.array_equal(a[3], b[3])


def test_source_rows_price_and_nearest_match_the_whole_array():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((257, 5)) * 4 - 2
    src = ArraySource(X, block_rows=16)
    data = Streamed(src)
    frame = data.frame
    ops = SourceRows(src, data)
    Y = frame.map(X)
    W = rng.standard_normal((9, 5))
    best, top_idx, top_val, low_idx = ops.price(W, 4, lowest=2)
    S = W @ Y.T
    np.testing.assert_allclose(best, S.max(axis=1), rtol=1e-14)
    assert np.array_equal(top_idx[:, 0], S.argmax(axis=1))                 # the best row is a winner
    np.testing.assert_allclose(top_val, np.take_along_axis(S, top_idx, 1), rtol=1e-14)
    assert np.array_equal(low_idx[:, 0], S.argmin(axis=1))
    Qf = frame.map(rng.standard_normal((12, 5)))
    dist, idx = ops.nearest(Qf)
    full = np.linalg.norm(Qf[:, None, :] - Y[None], axis=2)
    assert np.array_equal(idx, full.argmin(axis=1))
    np.testing.assert_allclose(dist, full.min(axis=1), rtol=1e-14)
    assert np.array_equal(ops.rows([5, 256, 5]), Y[[5, 256, 5]])
    assert ops.ax == np.max(np.abs(Y))
    assert ops.radius() == pytest.approx(np.max(np.linalg.norm(Y, axis=1)), rel=1e-15)


def test_x_mapped_once_gives_the_passes_of_x_mapped_per_pass():
    from mc_hull.jobs.hulltest import decide_points
    from mc_hull.solvers.sourced import MappedSource

    rng = np.random.default_rng(12)
    X = (rng.standard_normal((700, 9)) * 2 + 30).astype(np.float32)
    Q = np.vstack([X[:3].astype(np.float64), 30 + rng.standard_normal((40, 9)) * 2.2])
    raw = ArraySource(X, block_rows=64)
    mapped = MappedSource(raw)
    assert mapped.Y.dtype == np.float64 and mapped.block_rows == 64
    for measure in ("membership", "distance"):
        a = decide_points(raw, Q, tol=1e-9, solver="auto", measure=measure)
        b = decide_points(mapped, Q, tol=1e-9, solver="auto", measure=measure)
        assert a.keys() == b.keys()
        for key in set(a) - {"solve_seconds", "seconds"}:      # timings differ from run to run
            assert np.array_equal(a[key], b[key], equal_nan=key != "method"), (measure, key)
