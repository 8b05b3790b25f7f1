"""One training set across a Ray cluster: row blocks held by actors on the nodes, one pass serving every query.

:class:`ActorSource` is a :class:`~mc_hull.solvers.sources.PointSource` whose blocks live in
:class:`BlockHolder` actors spread over the cluster's nodes (``SPREAD`` scheduling).  It wraps a
*loader* — any picklable point source that can serve its blocks anywhere: regenerated from
their keys (:class:`mc_hull.samplers.KeyedSource`), read from shards, or an in-memory array —
and gives holder ``i`` the ``i``-th contiguous run of blocks.  Every pass of a solver
(:meth:`~mc_hull.solvers.sources.PointSource.map_blocks`: frame, screen, pricing, margins,
nearest point, rows) is sent to all holders at once with its context put into the object store
once; each holder runs it over its own blocks and returns a small partial result, and the
partials come back in block order, so the reductions give exactly the answers of an in-process
pass over the same blocks.  The driver keeps only the solver's small master.

Where X lives
-------------
* **held**: when X's bytes divided by the holders fit ``MC_HULL_MEMORY_BUDGET`` per holder, each
  holder draws or reads its blocks once, in its constructor, and keeps them in its dtype
  (float32 stays float32): one draw or read per run, not per pass;
* **partly held**: otherwise each holder keeps the first blocks of its run that its budget (and its
  node's share of half the node's memory) allow, and serves the rest from the loader on every pass;
* **regenerated**: with nothing held, a holder serves its blocks from the loader on every pass — in
  parallel on every holder, not on one core.

Replicates of one cell reuse the holders (:meth:`ActorSource.reload`): a new loader, the held part
drawn again, no new actors.

Faults
------
Holders are created without Ray restarts; the driver watches each pass.  A holder whose process
or node died (``RayActorError`` and kin) is replaced by a new holder for the same blocks,
placed wherever the cluster has room (``num_cpus=0`` for a replacement, so a cluster that lost a
node's CPUs still places it), which re-reads or regenerates them; the lost part of the pass is
recomputed there.  Partials are pure functions of (context, blocks), so answers are identical.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time

import numpy as np
import ray

from ..stats.design import memory_budget
from .pool import LOST, WORKER_ENV, connect
from ..errors import PlanError
from ..solvers.sources import PointSource, block_runs

#: Coordinates of rows asked of the holders at a time by :meth:`ActorSource.take` (2^20: 4 MiB of float32
#: rows), so a holder's partial (and its pages of the object store) stays bounded whatever is asked.
TAKE_ELEMS = 1 << 20
#: Attempts per holder and pass before the pass fails.
MAX_ATTEMPTS = 5
#: Seconds between checks of a pass's calls.
WAIT_SECONDS = 1.0
#: Seconds to wait for the holders to be placed and to load their blocks.
PLACE_SECONDS = float(os.environ.get("MC_HULL_PLACE_SECONDS", 3600))


@ray.remote(max_restarts=0, max_task_retries=0)
class BlockHolder:
    """Blocks ``first .. stop`` of a loader: the first ``keep`` held in memory, the others served from
    the loader on every pass."""

    def __init__(self, loader: PointSource, first: int, stop: int, keep: int):
        for key, value in WORKER_ENV.items():
            os.environ.setdefault(key, value)
        self.load(loader, first, stop, keep)

    def load(self, loader: PointSource, first: int, stop: int, keep: int) -> int:
        """(Re)load: a new loader for the same blocks (the next replicate), held part drawn now; rows drawn."""
        self.loader, self.ids = loader, range(int(first), int(stop))
        self.held = None
        self.held = [(int(s), np.ascontiguousarray(X)) for s, X in loader.generate(self.ids[:max(0, int(keep))])]
        _release(loader)
        # blocks read or drawn here are this process's own: the store's pages it touches are transport
        # (contexts, partials), dropped before each pass; blocks of an array shipped in the store are
        # read in place there, and dropping their pages would fault them in again on every pass
        self.drop = not any(_in_store(X) for _, X in self.held) and not _in_store(getattr(loader, "X", None))
        if self.drop:
            drop_store_pages()
        return sum(len(X) for _, X in self.held)

    def where(self) -> tuple[str, int, int]:
        """(node id, process id, bytes held)."""
        return ray.get_runtime_context().get_node_id(), os.getpid(), sum(X.nbytes for _, X in self.held)

    def run(self, fn, context):
        """``(fn(context, blocks), rows drawn from the loader)`` over this holder's blocks, in order."""
        drawn = [0]
        if self.drop:
            drop_store_pages()          # the store's pages touched by earlier calls (contexts, partials)

        def blocks():
            yield from self.held
            for s, X in self.loader.generate(self.ids[len(self.held):]):
                drawn[0] += len(X)
                yield s, X

        try:
            return fn(context, blocks()), drawn[0]
        finally:
            if drawn[0]:
                _release(self.loader)

    def traced(self, fn, context):
        """As :meth:`run`, with the pass's peak traced allocation and this process's memory.

        Returns ``(partial, rows drawn, peak, memory)``: ``peak`` the most bytes the pass had allocated
        at once beyond what it began with (:mod:`tracemalloc`: numpy's buffers included, the held
        blocks and the context's object-store buffers not), ``memory`` as :meth:`memory`.
        """
        import tracemalloc

        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            part, drawn = self.run(fn, context)
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
        return part, drawn, peak, self.memory()

    def memory(self) -> dict:
        """Bytes held, and this process's ``VmHWM`` (peak RSS), ``VmRSS``, ``RssAnon``, ``RssFile`` and
        ``RssShmem`` from ``/proc/self/status`` (bytes; empty where there is none)."""
        out = {"held": sum(X.nbytes for _, X in self.held)}
        with contextlib.suppress(OSError), open("/proc/self/status") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem"):
                    out[key] = int(rest.split()[0]) * 1024
        return out


#: ``madvise`` advice that drops a range's page-table entries (Linux); on a shared mapping the data stay.
MADV_DONTNEED = 4


def drop_store_pages() -> int:
    """Drop this process's resident pages of Ray's object store; returns the bytes of mapping advised.

    The store is a shared memory file (``/dev/shm/plasma…``) that every worker maps; the pages a worker
    has touched (contexts read, partial results written) count in its RSS although they are the
    store's, shared by the node and budgeted by Ray apart from the workers.  ``MADV_DONTNEED`` on a
    *shared* mapping removes only this process's page-table entries: the objects stay in the store,
    and a later read faults their pages back in.  A block holder whose blocks are its own (read from
    files or drawn from keys, not an array shipped in the store) calls this before each pass, so its
    RSS holds its blocks, its code and one pass's scratch and partials, not every page of the store it
    ever touched.  Elsewhere than Linux it does nothing.
    """
    if not sys.platform.startswith("linux"):
        return 0
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        with open("/proc/self/maps") as fh:
            lines = [line.split() for line in fh if "plasma" in line]
    except OSError:
        return 0
    done = 0
    for parts in lines:
        if len(parts) < 6 or not parts[1].endswith("s"):       # shared mappings only
            continue
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        if libc.madvise(ctypes.c_void_p(lo), ctypes.c_size_t(hi - lo), MADV_DONTNEED) == 0:
            done += hi - lo
    return done


def _in_store(X) -> bool:
    """Whether ``X`` is an array read in place from Ray's object store (Ray hands those out read-only)."""
    return isinstance(X, np.ndarray) and not X.flags.writeable


def _release(loader) -> None:
    """Let a loader drop what it keeps between reads (a file source's last row group)."""
    release = getattr(loader, "release", None)
    if callable(release):
        release()


def _raw_rows_pass(idx, blocks):
    """The raw rows ``idx`` (sorted) that lie in some blocks: (indices found (sorted), rows in the blocks' dtype)."""
    found, out, m = [], None, 0
    for start, X in blocks:
        lo, hi = np.searchsorted(idx, [start, start + len(X)])
        if hi > lo:
            if out is None:      # room for every row asked for; only the pages of rows found are touched
                out = np.empty((len(idx) - lo, X.shape[1]), dtype=X.dtype)
            found.append(idx[lo:hi])
            out[m:m + hi - lo] = X[idx[lo:hi] - start]       # the rows only, in the block's dtype
            m += hi - lo
    if not found:
        return np.zeros(0, dtype=np.intp), np.zeros((0, 0))
    return np.concatenate(found), out[:m]


class ActorSource(PointSource):
    """A loader's blocks spread over ``holders`` actors (see the module docstring).

    Parameters
    ----------
    loader : PointSource
        Picklable; serves any block anywhere (keys, shards, an array shipped once).
    cpus : float, optional
        CPUs each holder reserves (default: one, shared out when there are more holders than free CPUs).
    holders : int, optional
        Actors (default: the cluster's CPUs, at most one per block).
    budget : int, optional
        Bytes one holder may keep (default ``MC_HULL_MEMORY_BUDGET`` or 4 GiB); when X does not fit
        ``holders * budget`` the blocks are served from the loader on every pass instead.
    hold : bool, optional
        Force holding all blocks (True) or none (False); default by the budget (all, or the first
        blocks of each holder's run that fit).
    address : str, optional
        Ray address to join when Ray is not initialised yet (None: embedded, on loopback).
    """

    #: Passes run where the blocks are (every holder on its own): no copy of X on the driver.
    spread = True

    def __init__(self, loader: PointSource, *, holders: int | None = None, budget: int | None = None,
                 hold: bool | None = None, address: str | None = None, cpus: float | None = None,
                 share: int = 1):
        self.loader = loader
        self.n, self.d, self.block_rows = int(loader.n), int(loader.d), int(loader.block_rows)
        self.isotropic = bool(getattr(loader, "isotropic", False))     # the loader's law, for the nested sieve
        self._started = connect(address, None) if not ray.is_initialized() else False
        total = max(1, int(ray.cluster_resources().get("CPU", 1)))
        k = max(1, min(int(holders or total), self.n_blocks))
        self.runs = block_runs(self.n_blocks, k)
        itemsize = np.dtype(getattr(loader, "dtype", np.float64)).itemsize
        self.keep = _keep(self.runs, self.block_rows, self.n, self.d * itemsize, budget, hold, share)
        self.hold = all(k >= b - a for k, (a, b) in zip(self.keep, self.runs))
        self.replaced = 0
        self._lock = threading.Lock()
        self.drawn = 0          # rows drawn or read from the current loader by the holders (placement, passes)
        self.events: list[tuple[float, str, str]] = []
        # more holders than free CPUs share them (none free: they reserve none, so placing never waits
        # on CPUs that other actors hold); cpus=0 beside a pool whose idle actors hold the CPUs
        if cpus is None:
            free = float(ray.available_resources().get("CPU", 0.0))
            cpus = min(1.0, free / len(self.runs)) if free >= 0.01 * len(self.runs) else 0.0
        self.cpus = float(cpus)
        self.holders = [self._holder(i, self.cpus) for i in range(len(self.runs))]
        self.placement = self._where(timeout=PLACE_SECONDS)
        self.drawn += self._held_rows()

    def _held_rows(self) -> int:
        return sum(min(k * self.block_rows, self.n - a * self.block_rows) for k, (a, _) in zip(self.keep, self.runs))

    def reload(self, loader: PointSource) -> "ActorSource":
        """The same holders for another loader of the same shape (the next replicate): no new actors."""
        if (int(loader.n), int(loader.d), int(loader.block_rows)) != (self.n, self.d, self.block_rows):
            raise ValueError("reload: the loader's shape differs from the placed one")
        self.loader = loader
        calls = {h.load.remote(loader, a, b, k): i for i, (h, (a, b), k) in
                 enumerate(zip(self.holders, self.runs, self.keep))}
        for ref, i in calls.items():
            try:
                ray.get(ref, timeout=PLACE_SECONDS)
            except LOST as exc:
                self._replace(i, type(exc).__name__)
        self.placement = self._where(timeout=PLACE_SECONDS)
        self.drawn = self._held_rows()        # rows drawn for this loader (its held part, so far)
        return self

    def _holder(self, i, cpus):
        opts = dict(scheduling_strategy="SPREAD", num_cpus=cpus)
        return BlockHolder.options(**opts).remote(self.loader, self.runs[i][0], self.runs[i][1], self.keep[i])

    def _where(self, timeout: float | None = None):
        return ray.get([h.where.remote() for h in self.holders], timeout=timeout)

    def describe(self) -> str:
        """Where X lives, in words (for the plan line)."""
        nodes = len({node for node, _, _ in self.placement})
        gib = sum(b for _, _, b in self.placement) / 2 ** 30
        if self.hold:
            return f"X held by {len(self.holders)} actors on {nodes} node(s) ({gib:.2f} GiB)"
        if gib > 0:
            share = self._held_rows() / self.n
            return (f"X partly held by {len(self.holders)} actors on {nodes} node(s) ({gib:.2f} GiB, "
                    f"{share:.0%} of the rows; the rest served from its loader on every pass)")
        return f"X served from its loader on every pass by {len(self.holders)} actors on {nodes} node(s)"

    def generate(self, block_ids):
        """Blocks from the loader (the holders serve passes; this serves odd rows)."""
        return self.loader.generate(block_ids)

    def take(self, idx: np.ndarray) -> np.ndarray:
        """Rows ``idx`` (k,) in raw coordinates (k, d), float64: each holder returns those it has, in calls of
        at most :data:`TAKE_ELEMS` coordinates."""
        idx = np.asarray(idx, dtype=np.intp).reshape(-1)
        out = np.empty((idx.size, self.d))
        if idx.size == 0:
            return out
        wanted = np.unique(idx)
        step = max(1, TAKE_ELEMS // max(self.d, 1))      # a holder's partial: at most TAKE_ELEMS coordinates
        for c0 in range(0, wanted.size, step):
            for found, rows in self.map_blocks(_raw_rows_pass, wanted[c0:c0 + step]):
                if found.size:
                    sel = np.isin(idx, found)
                    out[sel] = rows[np.searchsorted(found, idx[sel])]
        return out

    def map_blocks(self, fn, context, *, parts: int = 1, map=None) -> list:
        """``fn(context, blocks)`` on every holder at once; partials in block order.

        ``parts`` and ``map`` are ignored: the holders are the parts.  A holder lost mid-pass is
        replaced (its blocks re-read or regenerated) and its part recomputed.
        """
        ctx = ray.put(context)
        results: list = [None] * len(self.holders)
        drawn = [0] * len(self.holders)
        attempts = [0] * len(self.holders)
        used = list(self.holders)               # passes may run side by side (threads of one driver)
        pending = {used[i].run.remote(fn, ctx): i for i in range(len(used))}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_SECONDS)
            for ref in ready:
                i = pending.pop(ref)
                try:
                    results[i], drawn[i] = ray.get(ref)
                except LOST as exc:
                    attempts[i] += 1
                    if attempts[i] >= MAX_ATTEMPTS:
                        raise PlanError(f"block holder {i} lost {attempts[i]} times in one pass: "
                                        f"{type(exc).__name__}") from None
                    with self._lock:            # replaced once, whichever pass saw it lost first
                        if self.holders[i] is used[i]:
                            self._replace(i, type(exc).__name__)
                        used[i] = self.holders[i]
                    pending[used[i].run.remote(fn, ctx)] = i
        with self._lock:
            self.drawn += sum(drawn)
        return results

    def _replace(self, i: int, why: str) -> None:
        try:
            ray.kill(self.holders[i], no_restart=True)
        except Exception:  # noqa: BLE001 - it is already gone
            pass
        self.holders[i] = self._holder(i, 0)
        self.drawn += min(self.keep[i] * self.block_rows, self.n - self.runs[i][0] * self.block_rows)
        self.replaced += 1
        self.events.append((time.perf_counter(), "replaced", f"holder {i} ({why})"))

    def close(self) -> None:
        """Kill the holders; shut Ray down if this source started it."""
        for h in self.holders:
            try:
                ray.kill(h, no_restart=True)
            except Exception:  # noqa: BLE001 - best effort cleanup
                pass
        self.holders = []
        if self._started:
            ray.shutdown()

    def __enter__(self) -> "ActorSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __reduce__(self):
        raise TypeError("an ActorSource lives on the driver; ship its loader instead")


def _keep(runs, block_rows: int, n: int, row_bytes: int, budget: int | None, hold: bool | None,
          share: int = 1) -> list[int]:
    """Blocks each holder keeps (the first of its run): all when X fits (:func:`fits`), none with
    ``hold=False``, else as many as the holder's budget and its node's share of half the node's memory
    allow (``share``: sources placed at once, each with as many holders)."""
    sizes = [b - a for a, b in runs]
    largest = max(min(b * block_rows, n) - a * block_rows for a, b in runs) * row_bytes
    if hold is True or (hold is None and fits(largest, n * row_bytes * max(1, share), budget)):
        return sizes
    if hold is False:
        return [0] * len(runs)
    budget = memory_budget() if budget is None else int(budget)
    nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("memory")]
    cap = budget
    if nodes:     # the holders spread evenly: each node keeps its share within half its memory
        per_node = -(-len(runs) * max(1, share) // len(nodes))
        cap = min(cap, int(min(n["Resources"]["memory"] for n in nodes) / 2 / per_node))
    return [min(k, max(0, cap) // (block_rows * row_bytes)) for k in sizes]


def fits(share: int, total: int, budget: int | None = None) -> bool:
    """Whether holders can keep X: each holder's ``share`` within ``budget`` (default
    ``MC_HULL_MEMORY_BUDGET``), and each node's part of the ``total`` bytes (spread evenly over the
    alive nodes) within half the memory Ray reports for the smallest node."""
    budget = memory_budget() if budget is None else int(budget)
    nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("memory")]
    if nodes:
        smallest = min(n["Resources"]["memory"] for n in nodes)
        if total / len(nodes) > smallest / 2:
            return False
    return share <= budget


def placer(holders: int | None = None, budget: int | None = None, log=None) -> "Placer":
    """A :class:`Placer` for the runner (holders reserve no CPUs; see there)."""
    return Placer(holders, budget, log)


#: The cost model of a spread replicate (shares of its in-process CPU time, measured on a streamed
#: d = 14 replicate: drawing X 0.46, the driver's masters 0.09, the rest pricing), and the per-core
#: efficiency of a pass over one holder and over several (benchmarks/actor_source.py: 0.96 and 0.72).
DRAW_SHARE, MASTER_SHARE, EFFICIENCY_ONE, EFFICIENCY = 0.46, 0.09, 0.96, 0.72


def spread_plan(units: int, cpus: int, x_bytes: int, memory: float) -> tuple[int, int]:
    """``(concurrent, holders)``: how many spread units to run at once and holders for each.

    Chooses the split of ``cpus`` that the cost model above predicts to finish ``units`` units first,
    in units of one replicate's in-process time: ``ceil(units / u)`` rounds of ``MASTER_SHARE +
    (1 - MASTER_SHARE - DRAW_SHARE) / (h e)``, plus ``DRAW_SHARE / (h e)`` when the ``u`` replicates' X
    do not all fit half of the cluster's ``memory`` (then they are drawn again on every pass), with
    ``h = cpus // u`` holders each; or, ``holders = 0``, no holders at all: ``min(units, cpus)`` units
    at once in process, ``ceil(units / u)`` rounds of 1.
    """
    units, cpus = max(1, int(units)), max(1, int(cpus))
    farm = min(units, cpus)
    best = (-(-units // farm) * 1.0, farm, 0)
    for u in range(1, min(units, cpus) + 1):
        h = cpus // u
        if u > 1 and h < 2:       # one holder beside each unit's master: the farm, with more processes
            continue
        held = u * x_bytes <= memory / 2
        e = EFFICIENCY_ONE if h == 1 else EFFICIENCY
        one = MASTER_SHARE + (1 - MASTER_SHARE - DRAW_SHARE + (0 if held else DRAW_SHARE)) / (h * e)
        wall = -(-units // u) * one
        if wall < best[0] - 1e-12:
            best = (wall, u, h)
    return best[1], best[2]


class Placer:
    """``place(loader)``: a context manager over an :class:`ActorSource` of ``loader`` (for the runner).

    Holders reserve no CPUs (``cpus=0``): they run beside a pool whose actors are idle while the
    spread units are computed.  :meth:`plan` decides how many spread units run at once (one here, on
    the driver, with all holders; or several on the pool's actors, each with its own share of holders
    and of the nodes' memory: :meth:`for_workers`).  Consecutive placements of the same shape (the
    replicates of one cell) reuse the holders (:meth:`ActorSource.reload`); :meth:`close` ends them.
    Each placement is described (where X lives) on ``log`` for the first (d, N) and kept for
    :meth:`take`; the runner gathers the descriptions into :data:`PLACED`.
    """

    def __init__(self, holders: int | None = None, budget: int | None = None, log=None, share: int = 1):
        self.holders, self.budget, self.log, self.share = holders, budget, log, int(share)
        self.current: ActorSource | None = None
        self.said: set = set()
        self.placed: list[str] = []
        self.reused = 0
        self.per_unit = False
        self.holders_each: int | None = None      # set by plan

    def plan(self, x_bytes: int, units: int) -> int:
        """Set holders per unit for ``units`` spread units of at most ``x_bytes`` of X; returns how many run
        at once (``holders_each`` 0: none spread, each computed in process on a pool actor)."""
        cpus = int(self.holders or max(1, int(ray.cluster_resources().get("CPU", 1))))
        memory = sum(n["Resources"].get("memory", 0) for n in ray.nodes() if n.get("Alive"))
        concurrent, self.holders_each = spread_plan(units, cpus, x_bytes, memory)
        return concurrent

    def for_workers(self) -> "Placer":
        """A copy for the pool's actors: each runs one unit at a time over its own holders."""
        each = getattr(self, "holders_each", None) or self.holders
        cpus = int(self.holders or max(1, int(ray.cluster_resources().get("CPU", 1))))
        other = Placer(each, self.budget, None, share=max(1, cpus // max(1, int(each or 1))))
        other.per_unit = True
        return other

    @contextlib.contextmanager
    def __call__(self, loader):
        t0 = time.perf_counter()
        shape = (int(loader.n), int(loader.d), int(loader.block_rows))
        if self.current is not None and (self.current.n, self.current.d, self.current.block_rows) == shape:
            src = self.current.reload(loader)
            self.reused += 1
        else:
            self.close()
            holders = getattr(self, "holders_each", None) or self.holders
            src = self.current = ActorSource(loader, holders=holders, budget=self.budget, cpus=0, share=self.share)
        self.placed.append(src.describe())
        if (loader.d, loader.n) not in self.said:
            self.said.add((loader.d, loader.n))
            print(f"mc-hull: d = {loader.d}, N = {loader.n:,}: {src.describe()}, placed in "
                  f"{time.perf_counter() - t0:.1f} s", file=self.log or sys.stderr)
        try:
            yield src
        except BaseException:
            self.close()          # a failed unit leaves no holders behind
            raise

    def take(self) -> list[str]:
        """The placements described since the last call."""
        out, self.placed = self.placed, []
        return out

    @staticmethod
    def record(descriptions) -> None:
        """Keep placements (made here or on a worker) in :data:`PLACED`."""
        PLACED.extend(descriptions)

    def close(self) -> None:
        """End the holders of the last placement."""
        if self.current is not None:
            self.current.close()
            self.current = None

    def __getstate__(self):
        state = dict(self.__dict__, current=None, log=None, said=set(), placed=[])
        return state


#: What each placement of this process said (:meth:`ActorSource.describe`), for tests and reports.
PLACED: list[str] = []
