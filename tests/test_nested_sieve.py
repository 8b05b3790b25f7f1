"""The streamed nested search's sieve: rows near the mean bounded instead of priced, the same answers."""

from __future__ import annotations

import numpy as np
import pytest
from test_nested import CASES, _check_certificates, _data, _grid

from mc_hull import seeding
from mc_hull.nested import search as nested, stream as nested_stream
from mc_hull.samplers import get_sampler, keyed_source
from mc_hull.solvers.sources import ArraySource
from mc_hull.spec import Spec


def _heavy(rng, N, d):
    """i.i.d. Cauchy coordinates: extremes along the axes, so the box radius is far above the inradius."""
    X = rng.standard_cauchy((N, d))
    Q = rng.standard_cauchy((24, d)) * rng.uniform(0.5, 30.0, (24, 1))
    return X, np.concatenate([Q, X[rng.choice(N, 6, replace=False)]])


ADVERSARIAL = CASES + [("heavy", 4, 3000, 25, 11, None), ("heavy", 7, 2000, 20, 12, None),
                       ("gauss", 6, 5000, 30, 13, None)]


class CountingSource(ArraySource):
    """An array source that counts the rows it yields."""

    def __init__(self, X, block_rows):
        super().__init__(X, block_rows)
        self.yielded = 0

    def generate(self, block_ids):
        for start, X in super().generate(block_ids):
            self.yielded += len(X)
            yield start, X


@pytest.mark.parametrize("kind,d,N,L,seed,ref", ADVERSARIAL)
@pytest.mark.parametrize("sieve,held", [(0.85, 0.0), (1.0, 0.0), (0.85, 0.3), (1.0, 1.0)])
def test_a_forced_sieve_keeps_the_in_memory_brackets(kind, d, N, L, seed, ref, sieve, held):
    """Sieved on any data (flat, duplicated, offset, heavy-tailed): brackets and certificates unchanged.

    Where the box radius is far above the hull's inradius (flat or heavy-tailed data), rows that
    decide queries are skipped; the probes that need them go to the streaming engine on every row.
    """
    rng = np.random.default_rng(300 + seed)
    X, Q = _heavy(rng, N, d) if kind == "heavy" else _data(kind, rng, N, d)
    sizes = _grid(N, L)
    mem = nested.entry_sizes(X, Q, sizes)
    src = CountingSource(X, 97)
    res = nested_stream.streamed_entry_sizes(src, Q, sizes, budget=int(held * 8 * d * (N + 97)), sieve=sieve)
    assert np.array_equal(res.low, mem.low) and np.array_equal(res.high, mem.high), kind
    _check_certificates(X, Q, res)       # outside margins over every row of the prefix, skipped ones too
    assert src.yielded == res.regenerated >= N
    if held == 1.0 and res.solves.sum() == 0:   # all held: the frame pass draws X, nothing else does
        assert res.regenerated == N


def test_the_sieve_skips_rows_of_an_isotropic_law_and_changes_no_answer():
    """Gaussian keyed source: the default sieve skips most rows of the large prefixes; same brackets as none."""
    spec = Spec.from_dict(dict(distribution="gaussian", dims=(5,), sizes=(10, 60, 400, 3000, 20000, 120000),
                               trials=40, queries_per_set=40, seed=7, nested=True))
    src = keyed_source(spec, 5, 120000, 0, queries=40)
    assert src.isotropic
    Q, g = src.queries(), np.array(spec.sizes)
    off = nested_stream.streamed_entry_sizes(src, Q, g, budget=1 << 20, sieve=0.0)
    on = nested_stream.streamed_entry_sizes(src, Q, g, budget=1 << 20)
    assert off.sieved == 0 and on.sieved > 0.3 * off.regenerated / off.passes
    assert np.array_equal(on.low, off.low) and np.array_equal(on.high, off.high)
    assert on.located.all()
    X = src.training_set()
    _check_certificates(X, Q, on)


@pytest.mark.parametrize("dist,params", [("subspace", {}), ("manifold", {}), ("mixture", {}), ("cube", {}),
                                         ("sphere", {})])
def test_laws_that_are_not_isotropic_are_priced_whole(dist, params):
    """Flat, curved, clustered or boxed laws: the box radius says nothing of the hull, so no sieve by default."""
    spec = Spec.from_dict(dict(distribution=dist, dims=(4,), sizes=(50, 5000), trials=12, queries_per_set=12,
                               seed=3, nested=True, params=params))
    src = keyed_source(spec, 4, 5000, 0, queries=12)
    assert not src.isotropic and not get_sampler(dist, 4).isotropic
    res = nested_stream.streamed_entry_sizes(src, src.queries(), np.array(spec.sizes), budget=0)
    assert res.sieved == 0


@pytest.mark.parametrize("dist", ["gaussian", "ball", "student-t", "beta"])
def test_isotropic_laws(dist):
    assert get_sampler(dist, 3).isotropic


def test_floors_are_the_prefix_box_radii():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((500, 3)) * [1.0, 2.0, 0.5] + [3.0, -1.0, 0.0]
    g = np.array([4, 30, 200, 500])
    edges = np.concatenate([[0], g])
    c0 = X.mean(axis=0)
    Y = X - c0
    maxs = np.array([Y[a:e].max(axis=0) for a, e in zip(edges[:-1], edges[1:])])
    mins = np.array([Y[a:e].min(axis=0) for a, e in zip(edges[:-1], edges[1:])])
    got = nested_stream.sieve_floors(maxs, mins, 0.85)
    for k, n in enumerate(g):
        r = min(Y[:n].max(axis=0).min(), (-Y[:n].min(axis=0)).min())
        assert got[k] == pytest.approx((0.85 * max(r, 0.0)) ** 2, rel=1e-15, abs=0)
    assert not nested_stream.sieve_floors(maxs, mins, 0.0).any()
    # a box that misses the centre, or radii near underflow or overflow: no sieve there
    assert not nested_stream.sieve_floors(np.full((2, 3), 1e-200), np.full((2, 3), -1e-200), 1.0).any()
    assert not nested_stream.sieve_floors(np.full((2, 3), 1e200), np.full((2, 3), -1e200), 1.0).any()
    assert not nested_stream.sieve_floors(-np.ones((2, 3)), -2 * np.ones((2, 3)), 1.0).any()


@pytest.mark.parametrize("scale", [1e-120, 1e120])
def test_tiny_and_huge_magnitudes(scale):
    """Far from 1 in both directions the bound stays sound (checked margins) and answers unchanged."""
    rng = np.random.default_rng(9)
    X, Q = _data("gauss", rng, 3000, 5)
    X, Q = X * scale, Q * scale
    g = _grid(3000, 20)
    mem = nested.entry_sizes(X, Q, g)
    res = nested_stream.streamed_entry_sizes(ArraySource(X, 97), Q, g, budget=0, sieve=1.0)
    assert np.array_equal(res.low, mem.low) and np.array_equal(res.high, mem.high)
    _check_certificates(X, Q, res)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), float("inf")])
def test_bad_sieve(bad):
    X = np.random.default_rng(0).standard_normal((50, 2))
    with pytest.raises(ValueError, match="sieve"):
        nested_stream.streamed_entry_sizes(ArraySource(X, 16), X[:3], [10, 50], budget=0, sieve=bad)


def test_block_rows_do_not_change_the_answers():
    """The same sieved search with blocks of other sizes (other slices and skips per block): same brackets."""
    rng = np.random.default_rng(21)
    X, Q = _data("gauss", rng, 4000, 6)
    g = _grid(4000, 25)
    ref = nested_stream.streamed_entry_sizes(ArraySource(X, seeding.block_rows(6)), Q, g, budget=0, sieve=0.9)
    for br in (7, 500, 4000):
        res = nested_stream.streamed_entry_sizes(ArraySource(X, br), Q, g, budget=0, sieve=0.9)
        assert np.array_equal(res.low, ref.low) and np.array_equal(res.high, ref.high), br


def _replicate_d10():
    """A Gaussian replicate at d = 10 (N = 2e6, K = 60, 14 sizes) and a budget of a third of its X.

    Returns the source, its queries, the grid, N and the budget (10 blocks).
    """
    d, n, K = 10, 2 * 10**6, 60
    sizes = tuple(int(x) for x in np.unique(np.geomspace(20, n, 14).astype(int)))
    spec = Spec.from_dict(dict(distribution="gaussian", dims=(d,), sizes=sizes, trials=K, queries_per_set=K,
                               seed=11, nested=True))
    src = keyed_source(spec, d, n, 0, queries=K)
    return src, src.queries(), np.array(spec.sizes), n, 8 * d * n // 3


def test_the_held_sieve_holds_more_rows_and_draws_fewer():
    """Within one budget the kept rows of many more blocks stay in memory: fewer rows drawn, same brackets."""
    src, Q, g, n, budget = _replicate_d10()     # 10 blocks held: 4 whole, the kept rows of the others
    off = nested_stream.streamed_entry_sizes(src, Q, g, budget=budget, sieve=0.0)
    on = nested_stream.streamed_entry_sizes(src, Q, g, budget=budget)
    assert np.array_equal(on.low, off.low) and np.array_equal(on.high, off.high) and on.located.all()
    assert off.regenerated > 3 * n and on.regenerated < 2 * n and on.sieved > 2 * n
    _check_certificates(src.training_set(), Q, on)


@pytest.mark.parametrize("threads,held", [(2, 0.0), (3, 0.5), (2, 1.0)])
def test_threads_give_the_same_bits(threads, held):
    """Passes split over threads (runs of blocks merged in block order): every value identical."""
    spec = Spec.from_dict(dict(distribution="gaussian", dims=(6,), sizes=(30, 300, 3000, 30000, 300000),
                               trials=40, queries_per_set=40, seed=5, nested=True))
    src = keyed_source(spec, 6, 300000, 0, queries=40)
    Q, g = src.queries(), np.array(spec.sizes)
    budget = int(held * 8 * 6 * (300000 + seeding.block_rows(6)))
    one = nested_stream.streamed_entry_sizes(src, Q, g, budget=budget, threads=1)
    many = nested_stream.streamed_entry_sizes(src, Q, g, budget=budget, threads=threads)
    for name in ("low", "high", "low_value", "high_value"):
        assert np.array_equal(getattr(one, name), getattr(many, name), equal_nan=True), name
    # parts share their cuts (a part skips what another has seen is dead): never fewer rows bounded than
    # one part going through in order, which has seen every row before the one it is on
    assert one.passes == many.passes and many.sieved >= one.sieved > 0
    assert np.array_equal(one.directions, many.directions, equal_nan=True)


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5", "5000"])
def test_bad_thread_count_is_one_line(bad, monkeypatch):
    from mc_hull.errors import PlanError
    monkeypatch.setenv("MC_HULL_THREADS", bad)
    with pytest.raises(PlanError, match="MC_HULL_THREADS"):
        nested_stream.pass_threads()


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_the_frame_pass_keeps_the_candidates_and_x_is_drawn_about_once(threads, monkeypatch):
    """The frame pass holds the rows any sieve it can set may keep: X drawn about once, the same bits as
    when the first pricing pass draws them again (PROVISIONAL off), on any number of threads."""
    src, Q, g, n, budget = _replicate_d10()
    monkeypatch.setattr(nested_stream, "PROVISIONAL", False)
    ref = nested_stream.streamed_entry_sizes(src, Q, g, budget=budget, threads=1)
    monkeypatch.setattr(nested_stream, "PROVISIONAL", True)
    got = nested_stream.streamed_entry_sizes(src, Q, g, budget=budget, threads=threads)
    for name in ("low", "high", "low_value", "high_value", "directions"):
        assert np.array_equal(getattr(ref, name), getattr(got, name), equal_nan=True), name
    assert ref.regenerated > 1.5 * n and got.regenerated <= n + 2 * seeding.block_rows(src.d)


def test_candidates_that_miss_kept_rows_are_drawn_again():
    """Data far from the origin: the frame pass's candidates (about the origin) cannot serve the sieve
    (about the mean); those blocks are drawn again and the answers are those of the unsieved search."""
    rng = np.random.default_rng(31)
    X = 50.0 + rng.standard_normal((6000, 4))
    Q = 50.0 + rng.standard_normal((20, 4)) * 1.5
    g = _grid(6000, 20)
    mem = nested.entry_sizes(X, Q, g)
    res = nested_stream.streamed_entry_sizes(CountingSource(X, 97), Q, g, budget=8 * 4 * 3000, sieve=0.85)
    assert np.array_equal(res.low, mem.low) and np.array_equal(res.high, mem.high)
    _check_certificates(X, Q, res)


@pytest.mark.parametrize("m, d", [(0, 3), (1, 1), (63, 18), (64, 18), (65, 18), (1000, 7), (116_508, 18)])
def test_folded_column_extremes_equal_numpy(m, d):
    """The frame pass's column maxima and minima (rows folded side by side) are numpy's, value for value:
    NaN rows, infinities, signed zeros and Fortran-ordered blocks included."""
    rng = np.random.default_rng(m * 31 + d)
    X = rng.standard_normal((m, d)) * 10.0 ** rng.integers(-300, 300, size=(m, d))
    if m > 40:
        X[rng.integers(m, size=3), rng.integers(d, size=3)] = [np.inf, -np.inf, np.nan]
        X[7] = -0.0
    for A in (X, np.asfortranarray(X), X[1:], X[::2]):
        for op in (np.maximum, np.minimum):
            if len(A) == 0:
                continue
            got, want = nested_stream._columns(op, A), op.reduce(A, axis=0)
            np.testing.assert_array_equal(got, want)
            assert np.array_equal(np.signbit(got), np.signbit(want))
