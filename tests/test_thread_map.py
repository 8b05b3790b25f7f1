"""Units side by side in a driver's threads: at most `threads` in flight, results as they end, failures raised, progress per thread."""

from __future__ import annotations

import threading
import time

import pytest

from mc_hull import progress
from mc_hull.runs.runner import serial_map, thread_map


def test_two_units_run_at_once_and_no_more():
    barrier = threading.Barrier(2, timeout=10)      # breaks (and fails the test) unless two run together
    lock, now, peak = threading.Lock(), [0], [0]

    def fn(ctx, unit):
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        barrier.wait()
        time.sleep(0.01)
        with lock:
            now[0] -= 1
        return ctx * unit

    got = dict(thread_map(2)(fn, range(8), 3))
    assert got == {u: 3 * u for u in range(8)} and peak[0] == 2


def test_results_come_as_units_end():
    def fn(ctx, unit):
        time.sleep(0.3 if unit == 0 else 0.0)
        return unit

    order = [u for u, _ in thread_map(2)(fn, range(4))]
    assert sorted(order) == [0, 1, 2, 3] and order[-1] == 0      # the slow first unit ends last


def test_a_failure_is_raised_after_the_unit_in_flight_ends():
    ended = []

    def fn(ctx, unit):
        if unit == 1:
            raise ValueError("unit 1 failed")
        time.sleep(0.2)
        ended.append(unit)
        return unit

    with pytest.raises(ValueError, match="unit 1 failed"):
        list(thread_map(2)(fn, range(6)))
    assert 0 in ended            # the unit beside the failure was not abandoned mid-way
    assert len(ended) < 6        # and no new unit started after the failure was seen


def test_each_thread_reports_its_own_unit(monkeypatch):
    """Two units in two threads: each state names its own unit and carries that unit's own count."""
    states = []
    previous = progress.install(states.append)
    try:
        def fn(ctx, unit):
            with progress.unit(f"u{unit}", 10):
                for _ in range(3):
                    progress.update("stream", inner=0.5, open=unit, queries=10)
                    time.sleep(0.05)
            return unit

        monkeypatch.setattr(progress, "_every", 0.0)      # every update is sent
        assert sorted(u for u, _ in thread_map(2)(fn, range(4))) == [0, 1, 2, 3]
    finally:
        progress.install(previous)
    assert sorted(s["key"] for s in states if s.get("end")) == ["u0", "u1", "u2", "u3"]
    detailed = [s for s in states if s["detail"]]
    assert len(detailed) >= 12
    for s in detailed:
        assert s["detail"] == f"{s['key'][1:]} of 10 queries open", s
