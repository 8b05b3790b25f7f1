"""Progress from inside a unit of work: what the unit running in this process has finished, reported cheaply.

Units and solvers say what they have done through the functions below; by default (no unit
running, or progress switched off) every call returns at once and nothing is recorded.  A
runner installs a *sink* (``install``): a callable taking one small dict, the unit's state.
In one process the sink is the runner's meter; on a Ray worker it is a channel to the driver
(installed by :mod:`mc_hull.distributed.pool`, the only module that knows Ray).  States are sent
at most once per :func:`interval` seconds, so a unit may report as often as it likes.

A unit's state::

    {"key": unit key, "size": trials or points of the unit, "share": 0..1 done inside the unit,
     "detail": "replicate 3 of 6, pass 9, 41 of 333 queries open", "t": time.time(),
     "pid": the worker's process id, "end": True on the unit's last state}

The share is ``(replicates done + inner) / replicates``; ``inner`` (0..1, the current
replicate's share) and the detail fields belong to the first *source* that reports after a
replicate starts (the outermost loop: a nested search, not the engine it calls), so an engine
called inside a search cannot overwrite the search's share.  Any report, owned or not, counts as
a sign of life.

Progress is not data: nothing here touches the draws, the solvers' arithmetic or the rows.
``MC_HULL_PROGRESS=0`` switches reporting off (every function returns at once).

Pure: imports neither ray nor pyarrow.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time

#: Seconds between two states sent by one process (the driver also draws its lines on its own clock).
REPORT_SECONDS = float(os.environ.get("MC_HULL_REPORT_SECONDS", 1.0))
#: Reports per second the driver should receive at most, whatever the number of workers.
MAX_REPORTS_PER_SECOND = 4.0


def enabled() -> bool:
    """False when ``MC_HULL_PROGRESS`` is ``0``, ``off``, ``false`` or ``no``."""
    return os.environ.get("MC_HULL_PROGRESS", "1").strip().lower() not in ("0", "off", "false", "no")


def interval(workers: int = 1) -> float:
    """Seconds between reports of one process when ``workers`` processes report to one driver."""
    return max(REPORT_SECONDS, float(workers) / MAX_REPORTS_PER_SECOND)


class _Unit:
    """The state of the unit running in this process."""

    __slots__ = ("key", "size", "what", "replicates", "replicate", "inner", "owner", "fields", "last", "every",
                 "sink", "engine", "engine_fields", "began")

    def __init__(self, key: str, size: int, sink, every: float, what: str = "queries"):
        self.key, self.size, self.sink, self.every, self.what = key, int(size), sink, every, what
        self.replicates, self.replicate, self.inner, self.owner = 1, 0, 0.0, None
        self.fields: dict = {}
        self.engine, self.engine_fields = None, {}    # the latest other source reporting (an engine called)
        self.last = 0.0
        self.began = time.monotonic()     # when the current replicate started

    def share(self) -> float:
        inner = min(1.0, max(0.0, self.inner))
        return min(1.0, (self.replicate + inner) / max(self.replicates, 1))

    def detail(self) -> str:
        parts = [f"replicate {self.replicate + 1} of {self.replicates}"] if self.replicates > 1 else []
        parts += self._fields(self.fields)
        text = ", ".join(parts)
        if self.engine is not None and self.engine_fields:
            text += f"; {self.engine}: " + ", ".join(self._fields(self.engine_fields))
        return text

    def _fields(self, f: dict) -> list[str]:
        parts = []
        if "passes" in f:
            parts.append(f"pass {f['passes']}")
        if "round" in f:
            parts.append(f"round {f['round']}")
        if "open" in f and "queries" in f:
            parts.append(f"{f['open']:,} of {f['queries']:,} {self.what} open")
        if "blocks" in f:
            parts.append(f"{f['blocks']:,} blocks read or drawn")
        return parts

    def send(self, end: bool = False) -> None:
        self.last = time.monotonic()
        state = {"key": self.key, "size": self.size, "share": 1.0 if end else self.share(),
                 "detail": self.detail(), "t": time.time(), "pid": os.getpid()}
        if end:
            state["end"] = True
        try:
            self.sink(state)
        except Exception:  # noqa: BLE001 - progress never fails the work
            pass


_sink = None            # where states go (None: nowhere)
_every = REPORT_SECONDS
_local = threading.local()   # .unit: the unit running in this thread (a driver may run two side by side)


def _current() -> "_Unit | None":
    return getattr(_local, "unit", None)


def install(sink, workers: int = 1):
    """Send this process's unit states to ``sink`` (None: nowhere); returns the previous sink.

    Parameters
    ----------
    sink : callable or None
        ``sink(state)`` for each state (a dict, see the module docstring); must not block.
    workers : int
        Processes reporting to the same driver (sets :func:`interval`).
    """
    global _sink, _every
    previous, _sink, _every = _sink, sink, interval(workers)
    return previous


def installed():
    """The sink states go to now (None if none)."""
    return _sink


@contextlib.contextmanager
def unit(key: str, size: int, what: str = "queries"):
    """Mark the unit ``key`` (of ``size`` trials or points) as running in this thread while inside.

    ``what`` names the things a solver's open count counts (``"queries"``, ``"points"``).

    Its first and last states are always sent; states in between at most every :func:`interval` s.
    """
    if _sink is None or not enabled():
        yield
        return
    outer = _current()
    mine = _local.unit = _Unit(str(key), size, _sink, _every, what)
    mine.send()
    try:
        yield
    finally:
        mine.send(end=True)
        _local.unit = outer


def due() -> bool:
    """True when a unit is running and a state would be sent now (callers may skip costly summaries)."""
    u = _current()
    return u is not None and time.monotonic() - u.last >= u.every


def replicate(done: int, total: int) -> None:
    """``done`` of ``total`` replicates of the running unit are finished; the next one starts."""
    u = _current()
    if u is None:
        return
    u.replicate, u.replicates, u.inner, u.owner = int(done), max(1, int(total)), 0.0, None
    u.fields, u.engine, u.engine_fields = {}, None, {}
    now = time.monotonic()
    # A replicate that took a report interval or more: say at once that the next one started, or the
    # line shows the last one's final pass until the next one first reports (a d = 18 replicate's frame
    # pass, about 30 s). At most one such state per interval, since each follows a replicate that long.
    slow, u.began = now - u.began >= u.every, now
    if slow or now - u.last >= u.every:
        u.send()


def update(source: str, inner: float | None = None, **fields) -> None:
    """Progress inside the current replicate (or the whole unit), from ``source``.

    Parameters
    ----------
    source : str
        Who reports (``"nested"``, ``"colgen"``, ``"stream"``); the first source after a replicate
        starts owns the share and the fields until the next one.
    inner : float, optional
        Share (0..1) of the current replicate done.
    **fields
        ``passes`` (over X), ``round``, ``open`` and ``queries`` (of the batch), ``blocks`` (read
        or drawn so far): what the in-flight line shows.
    """
    u = _current()
    if u is None:
        return
    if u.owner is None:
        u.owner = source
    if u.owner == source:
        if inner is not None:
            u.inner = float(inner)
        u.fields.update(fields)
    else:
        if u.engine != source:
            u.engine, u.engine_fields = source, {}
        u.engine_fields.update(fields)
    if time.monotonic() - u.last >= u.every:
        u.send()


def bracket_share(low, high, sizes: int) -> float:
    """Mean share of a bisection done over queries with grid brackets ``low < T <= high``.

    Parameters
    ----------
    low, high : ndarray of int, shape (K,)
        Bracket ends on grid indices: ``-1 .. L-1`` and ``0 .. L`` (``L = sizes``); a bracket is
        closed when ``high - low <= 1``.
    sizes : int
        Grid sizes L.

    Returns
    -------
    float
        ``1 - mean(log2(high - low) / log2(L + 1))``: 0 with every bracket open, 1 when all are closed.
    """
    import numpy as np

    width = np.maximum(np.asarray(high, dtype=np.float64) - np.asarray(low, dtype=np.float64), 1.0)
    if width.size == 0:
        return 1.0
    return float(1.0 - np.mean(np.log2(width)) / math.log2(int(sizes) + 1))
