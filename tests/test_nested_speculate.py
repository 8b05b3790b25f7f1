"""The streamed nested search prices each query's next probe up the tree in the same pass: fewer passes, same answers."""

from __future__ import annotations

import numpy as np
import pytest
from test_nested import _check_certificates, _grid

from mc_hull.nested import search as nested, stream as nested_stream
from mc_hull.solvers.sources import ArraySource


@pytest.mark.parametrize("d,N,K,seed", [(5, 60000, 80, 1), (7, 40000, 60, 2), (4, 30000, 100, 3)])
def test_speculation_cuts_passes_and_keeps_every_bracket(d, N, K, seed, monkeypatch):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, d)) * rng.uniform(0.5, 2, d) + 3.0      # offset, unequal scales
    Q = rng.standard_normal((K, d)) * rng.uniform(0.5, 2, d) + 3.0
    sizes = _grid(N, 30)
    mem = nested.entry_sizes(X, Q, sizes)
    got = {}
    for on in (False, True):
        monkeypatch.setattr(nested_stream, "SPECULATE", on)
        res = nested_stream.streamed_entry_sizes(ArraySource(X, 997), Q, sizes, budget=0)
        assert np.array_equal(res.low, mem.low) and np.array_equal(res.high, mem.high)
        _check_certificates(X, Q, res)
        got[on] = res.passes
    assert got[True] < got[False], got
