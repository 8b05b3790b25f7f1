"""Huge single cells: decide membership without ever holding the training set X in memory.

When ``N * d * 8`` bytes exceed a memory budget, X is never materialised.  Block
``b`` of replicate ``r`` is always drawn from ``SeedSequence(seed, spawn_key=(dist,
d, N, r, TRAIN, b))`` (:mod:`mc_hull.seeding`), so X can be regenerated block by
block, in any order, on any worker, with exactly the values the in-memory path
would hold.  Every pass over X streams those blocks; memory is O(block + B·d·m).

Method (per batch of B queries, all priced together in each pass):

1. *Prefilter* pass with ``w = x / ||x||_1``: gives the data scale ``s`` (largest
   |coordinate| of X and the queries), the margin ``w·x - max_i w·X_i`` (an outside
   certificate when it exceeds ``atol = tol * s``) and, per query, the m points of X
   most aligned with x: the first working set.
2. *Column generation*: on its working set S a query solves the NNLS master
   ``min ||[X_S^T; s 1^T] λ - [x; s]||`` (λ >= 0).  If the convex weights reproduce x
   to ``atol`` (ℓ∞), that is an inside certificate.  Otherwise the residual's first d
   components give a direction w separating x from conv(S) (NNLS optimality); one
   streamed pass prices w against all N points: if ``w·x - max_i w·X_i > atol`` that
   is an outside certificate, else the m most violating points join S.  Repeat.
3. Whatever is still open after ``max_rounds`` passes is *undecided* (never guessed).

Certificates follow :mod:`mc_hull.solvers.certificates` exactly: inside weights are
checked with ``certificates.inside_residual`` on the stored rows (identical to X's
rows), outside margins are computed over every one of the N points in the pass
that proposes them, with ℓ1-normalised w and the same ``atol``.

Pricing passes are embarrassingly parallel over blocks: :func:`decide` takes a
``map_blocks`` callable (serial by default; ``mc_hull.distributed.Pool.map_blocks``
prices block ranges on Ray actors), so k nodes divide the time of a pass by k.

Memory and reach (measured on this 2-core, 23 GiB machine shared with other jobs,
Gaussian data, 100 queries against one training set, one core):

* in memory, X alone takes ``N·d·8`` bytes and the solvers' products about as much
  again, so one 24 GiB machine stops near ``N·d ≈ 10^9`` (d = 20: N ≈ 5·10^7);
* streamed, d = 20, N = 10^7 (X would be 1.5 GiB): 32 s, peak RSS 451 MiB;
  d = 20, N = 10^8 (X would be 14.9 GiB): 260 s, peak RSS 451 MiB, 2.2 passes on
  average (at most 5), no undecided query.  Memory stays flat, so the limit is time:
  a pass costs about ``N·d`` draws (~25 ns each here) plus ``N·d·B`` multiply-adds,
  i.e. N = 10^9 at d = 20 is about 45 min per 100 queries on one core;
* k nodes of c cores divide a pass by up to k·c (block ranges are independent;
  only W and the m best rows per direction travel).  On this machine, 2 Ray CPUs
  gave 1.2x on d = 20, N = 2·10^6 (7.3 s -> 6.0 s) with other users' load, so
  treat the k·c scaling as the model, not a measurement.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

from . import seeding
from .solvers import INSIDE, OUTSIDE, STATUS_NAMES, UNDECIDED, Decisions
from .solvers import certificates as cert
from .plan import memory_budget, needs_streaming  # noqa: F401 - re-exported for callers
from .spec import Spec

#: Points added to a query's working set per pricing pass (times d, at least 8).
ADD_PER_ROUND = 2
#: Pricing passes after the prefilter before a query is left undecided.
MAX_ROUNDS = 40


def stream_bytes(d: int, queries: int) -> int:
    """Peak bytes of a streamed decision: one block, its products and the rows kept per query."""
    m = max(8, ADD_PER_ROUND * d)
    return 8 * (seeding.BLOCK_ROWS * (d + queries) * 2 + queries * m * (d + 2) * 2)


@dataclass(frozen=True)
class Source:
    """Where a training set comes from: enough to regenerate any of its blocks anywhere.

    Attributes
    ----------
    spec_json : str
        The spec (canonical JSON), for the seed, distribution and parameters.
    d, n, replicate : int
    """

    spec_json: str
    d: int
    n: int
    replicate: int

    @property
    def n_blocks(self) -> int:
        return -(-self.n // seeding.BLOCK_ROWS)

    def blocks(self):
        """``(block, start, stop)`` for every block, lazily (the same split as ``trial.training_set``)."""
        return seeding.train_blocks(self.n)

    def generate(self, block_ids) -> "iter":
        """Yield ``(start, X_block)`` for the given block ids, drawn from their keys."""
        spec = Spec.from_json(self.spec_json)
        key = seeding.replicate_key(spec.distribution, self.d, self.n, self.replicate)
        sampler = spec.sampler(self.d).bind(seeding.rng(spec.seed, key, seeding.STRUCTURE))
        for b in block_ids:
            start = int(b) * seeding.BLOCK_ROWS
            stop = min(start + seeding.BLOCK_ROWS, self.n)
            yield start, sampler.random(stop - start, seeding.rng(spec.seed, key, seeding.TRAIN, int(b)))

    def queries(self) -> np.ndarray:
        spec = Spec.from_json(self.spec_json)
        key = seeding.replicate_key(spec.distribution, self.d, self.n, self.replicate)
        sampler = spec.sampler(self.d).bind(seeding.rng(spec.seed, key, seeding.STRUCTURE))
        return sampler.random(spec.queries_in(self.replicate), seeding.rng(spec.seed, key, seeding.QUERY))


def price(source: Source, block_ids, W: np.ndarray, m: int) -> dict:
    """One pricing pass over some blocks: per direction the max of ``X_i·w`` and the m best rows.

    Parameters
    ----------
    source : Source
    block_ids : sequence of int
    W : ndarray, shape (B, d)
        Directions (already ℓ1-normalised by the caller).
    m : int
        Rows kept per direction.

    Returns
    -------
    dict with ``best`` (B,), ``idx`` (B, m) global row indices, ``rows`` (B, m, d),
    ``val`` (B, m) their products, ``absmax`` (float): largest |coordinate| seen.
    """
    B, d = W.shape
    best_val = np.full((B, m), -np.inf)
    best_idx = np.full((B, m), -1, dtype=np.int64)
    best_rows = np.zeros((B, m, d))
    absmax = 0.0
    for start, X in source.generate(block_ids):
        absmax = max(absmax, float(np.max(np.abs(X))) if X.size else 0.0)
        P = X @ W.T  # (rows, B)
        # Only rows beating a direction's current m-th best can enter its list: after the
        # first block these are few, so compare instead of partitioning the whole product.
        r, c = np.nonzero(P > best_val[:, -1][None, :])
        if r.size == 0:
            continue
        order = np.argsort(c, kind="stable")
        r, c = r[order], c[order]
        cols, first = np.unique(c, return_index=True)
        for j, rows_j in zip(cols, np.split(r, first[1:])):
            vals = P[rows_j, j]
            if rows_j.size > m:
                top = np.argpartition(vals, -m)[-m:]
                rows_j, vals = rows_j[top], vals[top]
            cand_val = np.concatenate([best_val[j], vals])
            keep = np.argsort(-cand_val)[:m]
            cand_idx = np.concatenate([best_idx[j], rows_j + start])
            cand_rows = np.concatenate([best_rows[j], X[rows_j]])
            best_val[j], best_idx[j], best_rows[j] = cand_val[keep], cand_idx[keep], cand_rows[keep]
    return {"best": best_val[:, 0].copy(), "idx": best_idx, "rows": best_rows, "val": best_val,
            "absmax": absmax}


def merge(parts: list[dict], m: int) -> dict:
    """Combine :func:`price` results of disjoint block ranges."""
    val = np.concatenate([p["val"] for p in parts], axis=1)
    idx = np.concatenate([p["idx"] for p in parts], axis=1)
    rows = np.concatenate([p["rows"] for p in parts], axis=1)
    keep = np.argsort(-val, axis=1)[:, :m]
    val = np.take_along_axis(val, keep, axis=1)
    return {"best": val[:, 0].copy(), "val": val, "idx": np.take_along_axis(idx, keep, axis=1),
            "rows": np.take_along_axis(rows, keep[:, :, None], axis=1),
            "absmax": max(p["absmax"] for p in parts)}


def price_range(context, block_range: tuple[int, int]) -> dict:
    """:func:`price` over blocks ``start .. stop-1``; ``context`` is ``(source, W, m)`` (a map's unit)."""
    source, W, m = context
    return price(source, range(*block_range), W, m)


def serial_map(source: Source, ranges, W: np.ndarray, m: int) -> list[dict]:
    """Default ``map_blocks``: price every block range ``(start, stop)`` in this process."""
    return [price_range((source, W, m), r) for r in ranges]


def _normalise(W: np.ndarray) -> np.ndarray:
    norms = np.abs(W).sum(axis=1, keepdims=True)
    return np.where(norms > 0, W / np.where(norms > 0, norms, 1.0), 0.0)


def _master(rows: np.ndarray, x: np.ndarray, s: float):
    """NNLS on the working set: convex weights, their ℓ∞ residual and the separating residual."""
    A = np.vstack([rows.T, np.full(rows.shape[0], s)])
    b = np.append(x, s)
    lam, _ = nnls(A, b, maxiter=50 * max(rows.shape[0], 1))
    rho = b - A @ lam
    return lam, rho[:-1]


def decide(source: Source, Q: np.ndarray | None = None, *, tol: float = 1e-9, map_blocks=None,
           ranges: int = 1, max_rounds: int = MAX_ROUNDS) -> Decisions:
    """Decide ``Q`` (default: the replicate's own queries) against the streamed training set.

    Parameters
    ----------
    source : Source
    Q : ndarray, shape (B, d), optional
    tol : float
        Relative tolerance (``atol = tol * s``), as everywhere in mc_hull.
    map_blocks : callable, optional
        ``map_blocks(source, ranges, W, m) -> list of price() results``; serial by default.
    ranges : int
        Number of block ranges per pass (the parallelism offered to ``map_blocks``).

    Returns
    -------
    Decisions
        ``method`` is ``bigcell:prefilter`` or ``bigcell:colgen``; ``rounds`` counts pricing passes.
    """
    t0 = time.perf_counter()
    Q = source.queries() if Q is None else np.asarray(Q, dtype=np.float64)
    B, d = Q.shape
    map_blocks = map_blocks or serial_map
    nb = source.n_blocks
    parts = max(1, min(ranges, nb))
    edges = [nb * i // parts for i in range(parts + 1)]
    split = [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]  # contiguous block ranges
    m = max(8, ADD_PER_ROUND * d)

    def pass_(W):
        return merge(map_blocks(source, split, W, m), m)

    status = np.full(B, UNDECIDED, dtype=np.int8)
    value = np.full(B, np.nan)
    method = np.full(B, "bigcell:colgen", dtype=object)
    rounds = np.zeros(B, dtype=np.int32)

    W = _normalise(Q)
    first = pass_(W)
    s = max(first["absmax"], float(np.max(np.abs(Q))) if Q.size else 0.0) or 1.0
    atol = tol * s
    margins = np.einsum("bj,bj->b", W, Q) - first["best"]
    ok = (np.abs(W).sum(axis=1) > 0) & (margins > atol)
    status[ok], value[ok], method[ok] = OUTSIDE, margins[ok] / s, "bigcell:prefilter"

    valid = first["idx"] >= 0  # fewer than m points in all: drop the empty slots
    support_idx = [[int(i) for i in first["idx"][b][valid[b]]] for b in range(B)]
    support_rows = [first["rows"][b][valid[b]] for b in range(B)]
    open_ = [b for b in range(B) if status[b] == UNDECIDED]
    for _ in range(max_rounds):
        if not open_:
            break
        dirs, still = [], []
        for b in open_:
            rows = support_rows[b]
            lam, u = _master(rows, Q[b], s)
            res = cert.inside_residual(rows, Q[b], np.arange(rows.shape[0]), lam)
            if res <= atol:
                status[b], value[b] = INSIDE, res / s
                continue
            dirs.append(u)
            still.append(b)
        if not still:
            break
        W = _normalise(np.array(dirs))
        priced = pass_(W)
        nxt = []
        for j, b in enumerate(still):
            rounds[b] += 1
            w = W[j]
            margin = float(w @ Q[b] - priced["best"][j])
            if np.abs(w).sum() > 0 and margin > atol:
                status[b], value[b] = OUTSIDE, margin / s
                continue
            have = set(support_idx[b])
            new = [i for i, gi in enumerate(priced["idx"][j]) if gi >= 0 and gi not in have]
            if not new:
                continue  # no progress possible: stays undecided, never guessed
            support_idx[b] += [int(priced["idx"][j][i]) for i in new]
            support_rows[b] = np.vstack([support_rows[b], priced["rows"][j][new]])
            nxt.append(b)
        open_ = nxt
    seconds = np.full(B, (time.perf_counter() - t0) / max(B, 1))
    return Decisions(status=status, certificate=value, method=method, seconds=seconds, rounds=rounds)


def run_shard(spec: Spec, shard, *, map_blocks=None, ranges: int = 1) -> dict[str, np.ndarray]:
    """Like :func:`mc_hull.trial.run_shard`, streaming each training set (same columns, same queries)."""
    from .trial import COLUMNS

    parts = []
    for r in range(shard.start, shard.stop):
        src = Source(spec.to_json(), shard.d, shard.n, r)
        dec = decide(src, tol=spec.tol, map_blocks=map_blocks, ranges=ranges)
        k = dec.status.shape[0]
        parts.append({
            "replicate": np.full(k, r, dtype=np.int32),
            "query": np.arange(k, dtype=np.int32),
            "inside": np.where(dec.status < 0, np.nan, dec.status.astype(np.float64)),
            "status": np.array([STATUS_NAMES[int(v)] for v in dec.status], dtype=object),
            "method": dec.method.astype(object),
            "certificate_value": dec.certificate.astype(np.float64),
            "solve_seconds": dec.seconds.astype(np.float64),
            "rounds": dec.rounds.astype(np.int32),
        })
    cols = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    cols["run_id"] = np.full(len(cols["query"]), spec.run_id, dtype=object)
    return {name: cols[name] for name in COLUMNS}
