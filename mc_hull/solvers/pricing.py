"""Pricing: the best rows ``X[i] @ w`` of a training set for many directions, in blocked products.

Shared by column generation (:mod:`.colgen`) and every pass over a point source (:mod:`.sources`).
"""

from __future__ import annotations

import numpy as np

# Elements of one (queries x rows) score block in the pricing products:
# 2**21 doubles = 16 MiB, so B x N never materialises however large N is.
_BLOCK_ELEMS = 1 << 21


def price(points: np.ndarray, directions: np.ndarray, k: int, lowest: int | None = None):
    """Best scores ``X[i] @ w`` overall and in each of ``k`` contiguous chunks of rows.

    Parameters
    ----------
    points : ndarray, shape (N, d)
    directions : ndarray, shape (B, d)
    k : int
        Number of row chunks (capped at N); each gives its best row, so the
        candidates are spread over the data rather than clustered at one extreme.
    lowest : int or None
        If given, also return the row of the lowest score in each of ``lowest``
        coarser chunks (capped at ``k``; 0 gives an empty array); coarse chunk
        ``lc`` is the union of the chunks ``c`` with ``c * lowest // k == lc``.

    Returns
    -------
    best : ndarray, shape (B,)
        Largest score per direction.
    top_idx, top_val : ndarray, shape (B, min(k, N))
        Row index of the best score in each chunk, and that score.
    low_idx : ndarray, shape (B, min(lowest, k, N))
        Only when ``lowest`` is given: row index of the lowest score in each coarse chunk.

    Notes
    -----
    Products run on blocks of at most ``_BLOCK_ELEMS`` scores (16 MiB), so
    the peak extra memory is 16 MiB plus O(B k), whatever N is.
    """
    N = points.shape[0]
    B = directions.shape[0]
    k = max(1, min(k, N))
    n_low = 0 if lowest is None else min(lowest, k)
    L = -(-N // k)
    if k * L <= _BLOCK_ELEMS // 64:   # small X: whole score rows, chunks of equal length
        res = _price_small(points, directions, k, L, n_low)
        return res if lowest is not None else res[:3]
    edges = np.linspace(0, N, k + 1).astype(np.intp)
    top_idx = np.zeros((B, k), dtype=np.intp)
    top_val = np.full((B, k), -np.inf)
    low_idx = np.zeros((B, n_low), dtype=np.intp)
    low_val = np.full((B, n_low), np.inf)
    qb = max(1, min(B, _BLOCK_ELEMS // 1024))
    for q0 in range(0, B, qb):
        W = directions[q0:q0 + qb]
        rows = max(1024, _BLOCK_ELEMS // W.shape[0])
        ar = np.arange(W.shape[0])
        val, idx = top_val[q0:q0 + qb], top_idx[q0:q0 + qb]
        lval, lidx = low_val[q0:q0 + qb], low_idx[q0:q0 + qb]
        for c in range(k):
            for start in range(edges[c], edges[c + 1], rows):
                S = W @ points[start:min(edges[c + 1], start + rows)].T   # (qb, rows)
                j = S.argmax(axis=1)
                v = S[ar, j]
                better = v > val[:, c]
                val[better, c] = v[better]
                idx[better, c] = j[better] + start
                if n_low:
                    lc = c * n_low // k
                    j = S.argmin(axis=1)
                    v = S[ar, j]
                    better = v < lval[:, lc]
                    lval[better, lc] = v[better]
                    lidx[better, lc] = j[better] + start
    best = top_val.max(axis=1)
    return (best, top_idx, top_val, low_idx) if lowest is not None else (best, top_idx, top_val)


def _price_small(points, directions, k, L, n_low):
    """:func:`price` for ``k * L <= _BLOCK_ELEMS / 64`` rows: one product per query block.

    The rows are padded to ``k * L`` with copies of the last row (a copy ties with
    the row it copies and maps back to it), so the chunks are the rows of a
    reshaped (block, k, L) score array and each best row is one ``argmax``.
    """
    N = points.shape[0]
    B = directions.shape[0]
    pad = np.minimum(np.arange(k * L), N - 1)               # padded position -> row of X
    Xp = points[pad]
    top_idx = np.empty((B, k), dtype=np.intp)
    top_val = np.empty((B, k))
    low_idx = np.empty((B, n_low), dtype=np.intp)
    # Coarse chunk lc starts at chunk ceil(lc k / n_low), the first c with c * n_low // k == lc.
    edges = [-(-lc * k // n_low) * L for lc in range(n_low + 1)] if n_low else []
    qb = max(1, _BLOCK_ELEMS // (k * L))
    base = np.arange(k) * L
    for q0 in range(0, B, qb):
        flat = directions[q0:q0 + qb] @ Xp.T                # (qb, k * L)
        S = flat.reshape(-1, k, L)
        j = S.argmax(axis=2)
        top_idx[q0:q0 + qb] = pad[base + j]
        top_val[q0:q0 + qb] = np.take_along_axis(S, j[:, :, None], axis=2)[:, :, 0]
        for lc in range(n_low):   # long rows: one argmin each is cheaper than per-chunk argmins
            a, e = edges[lc], edges[lc + 1]
            low_idx[q0:q0 + qb, lc] = pad[a + flat[:, a:e].argmin(axis=1)]
    return top_val.max(axis=1), top_idx, top_val, low_idx
