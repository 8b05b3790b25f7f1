"""Constructions with an exactly known ℓ∞ distance to the hull, and a tally of undecided answers.

Each class builds a training set X, a face point p of conv(X) (a convex combination
of the face's rows) and a vector n in the normal cone of conv(X) at p; the query
``x = p + t sign(n)`` then lies at ℓ∞ distance exactly ``t`` from conv(X) (``n``
gives the lower bound ``n.(x - p) / ||n||_1 = t``, the point p the upper one), and
at Euclidean distance at most ``t sqrt(nnz(n))``.  Queries on the face (t = 0) and
inside it (towards the centroid) complete the set.  Classes: ``flat`` (a random
k-flat), ``constant`` (constant columns), ``duplicates`` (a polytope with repeated
rows, shuffled), ``cube`` (lattice points on the edges of a cube), ``facet`` (a
full-dimensional random polytope), each also scaled by powers of two near the float
limits and translated (``magnitude``).

Usage: ``python benchmarks/undecided_band.py [--solvers auto,lp] [--sets 40]`` prints,
per class and solver, queries tried / wrong / refused / undecided, undecided beyond
the band (:data:`mc_hull.solvers.certificates.BAND_IN` and ``BAND_OUT``), and how many decided/undecided
answers changed under row and column permutations of X.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from scipy.spatial import ConvexHull  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: Multiples of atol used as ℓ∞ offsets outside a face (exact distances).
OUT_MULTIPLES = (0.1, 0.25, 0.5, 0.9, 1.1, 1.5, 2.5, 4.0, 8.0, 15.0, 60.0, 1e3)
CLASSES = ("flat", "constant", "duplicates", "cube", "facet", "magnitude")


def frame_scale(X: np.ndarray) -> float:
    """The tolerance scale s of :class:`mc_hull.solvers.certificates.Frame`, in data units."""
    from mc_hull.solvers.certificates import Frame
    return Frame.of(X).data_scale()


def _sign(n):
    return np.sign(n) * (np.abs(n) > 1e-12 * np.max(np.abs(n)))


def _facets(X, rng, count):
    """(p, n, face rows) for ``count`` random facets of conv(X) (full-dimensional X)."""
    hull = ConvexHull(X)
    out = []
    for f in rng.choice(len(hull.simplices), size=min(count, len(hull.simplices)), replace=False):
        rows = hull.simplices[f]
        lam = rng.dirichlet(np.ones(rows.size))
        out.append((lam @ X[rows], hull.equations[f, :-1].copy(), rows))
    return out


def build(kind: str, rng: np.random.Generator):
    """One training set with face points: ``(X, faces)``, faces a list of (p, n) pairs."""
    if kind == "flat":
        d = int(rng.integers(2, 9))
        k = int(rng.integers(1, d))
        A = np.linalg.qr(rng.standard_normal((d, k)))[0].T          # (k, d) orthonormal rows
        N = int(rng.integers(2, 40))
        o = rng.standard_normal(d)
        X = o + rng.standard_normal((N, k)) @ A
        faces = []
        for _ in range(4):
            n = rng.standard_normal(d)
            n -= A.T @ (A @ n)
            lam = rng.dirichlet(np.ones(N) * 0.5)
            faces.append((lam @ X, n))
        return X, faces
    if kind == "constant":
        d = int(rng.integers(2, 9))
        N = int(rng.integers(3, 60))
        X = rng.standard_normal((N, d))
        C = rng.choice(d, size=int(rng.integers(1, max(2, d))), replace=False)
        X[:, C] = rng.choice([0.0, 1.0, -3.5, 1e3], size=C.size)
        faces = []
        for _ in range(4):
            n = np.zeros(d)
            sub = rng.choice(C, size=int(rng.integers(1, C.size + 1)), replace=False)
            n[sub] = rng.choice([-1.0, 1.0], size=sub.size) * rng.uniform(0.1, 1.0, sub.size)
            lam = rng.dirichlet(np.ones(N) * 0.5)
            faces.append((lam @ X, n))
        return X, faces
    if kind == "duplicates":
        d = int(rng.integers(2, 5))
        X0 = rng.standard_normal((int(rng.integers(d + 2, 25)), d))
        faces = [(p, n) for p, n, _ in _facets(X0, rng, 4)]
        X = np.repeat(X0, rng.integers(1, 5, size=len(X0)), axis=0)
        return X[rng.permutation(len(X))], faces
    if kind == "cube":
        d = int(rng.integers(2, 5))
        L = int(rng.integers(1, 6))
        grid = np.array(np.meshgrid(*[np.arange(L + 1)] * d, indexing="ij")).reshape(d, -1).T.astype(float)
        on_edge = (np.sum((grid == 0) | (grid == L), axis=1) >= d - 1)
        X = grid[on_edge]
        faces = []
        for _ in range(4):
            free = int(rng.integers(d))
            corner = rng.choice([0.0, float(L)], size=d)
            p = corner.copy()
            p[free] = rng.choice([rng.uniform(0, L), float(rng.integers(0, L + 1))])
            n = np.where(corner > 0, 1.0, -1.0) * rng.uniform(0, 1, d) * (rng.random(d) < 0.7)
            n[free] = 0.0
            if p[free] in (0.0, float(L)) and rng.random() < 0.5:      # at a vertex: the free axis may lean out
                n[free] = (1.0 if p[free] > 0 else -1.0) * rng.uniform(0, 1)
            if not np.any(n):
                n[(free + 1) % d] = 1.0 if corner[(free + 1) % d] > 0 else -1.0
            faces.append((p, n))
        scale = 2.0 ** int(rng.integers(-3, 4))
        return X * scale, [(p * scale, n) for p, n in faces]
    if kind == "facet":
        d = int(rng.integers(2, 7))
        X = rng.standard_normal((int(rng.integers(d + 2, 200)), d))
        return X, [(p, n) for p, n, _ in _facets(X, rng, 4)]
    if kind == "magnitude":
        X, faces = build(str(rng.choice(CLASSES[:-1])), rng)
        e = int(rng.choice([-1000, -900, -400, 0, 400, 900, 1000]))
        shift = rng.choice([0.0, 2.0 ** 8, -2.0 ** 5]) * np.round(rng.standard_normal(X.shape[1]) * 8) / 8
        return np.ldexp(X + shift, e), [(np.ldexp(p + shift, e), n) for p, n in faces]
    raise ValueError(kind)


def queries(X, faces, tol, rng):
    """Queries with their exact ℓ∞ distance and a Euclidean upper bound, both relative to s.

    Returns ``Q`` (B, d), ``t_inf`` (B,), ``t2_max`` (B,) and ``slop`` (B,), distances divided by s;
    ``slop`` bounds the rounding of the construction itself (p is a rounded convex combination).
    """
    s = frame_scale(X)
    c = X.mean(axis=0)
    Q, t_inf, t2 = [], [], []
    for p, n in faces:
        sg = _sign(n)
        for m in OUT_MULTIPLES:
            t = m * tol * s
            Q.append(p + t * sg)
            t_inf.append(m * tol)
            t2.append(m * tol * np.sqrt(np.count_nonzero(sg)))
        for tau in (0.0, 1e-3 * tol, 0.5 * tol, 1e-6, 0.3):       # on the face, then into the hull
            Q.append(p + tau * (c - p))
            t_inf.append(0.0)
            t2.append(0.0)
    Q = np.array(Q)
    big = np.maximum(np.max(np.abs(X)), np.max(np.abs(Q), axis=1))
    slop = 64 * 2.0 ** -53 * (big / s) + 1e-3 * tol + 2.0 ** -1070 / s     # subnormal offsets: absolute
    return Q, np.array(t_inf), np.array(t2), slop


def judge(status, t_inf, t2, slop, tol, band):
    """Masks: wrong (decided across tol by more than the construction's slop) and beyond the band.

    ``beyond`` marks queries that must be decided: ℓ∞ distance above ``band[1] tol`` (outside),
    or Euclidean distance at most ``band[0] tol`` (inside), both with the slop.
    """
    wrong = ((status == 1) & (t_inf > tol + slop)) | ((status == 0) & (t_inf < tol - slop))
    beyond = (t_inf - slop > band[1] * tol) | (t2 + slop <= band[0] * tol)
    return wrong, beyond


def run(classes, solvers, sets, seed, tols, permute=True):
    """Tally per (class, solver): tried, wrong, refused, undecided, beyond (undecided beyond the
    band), flips (decided/undecided changed by a row and column permutation of X), flips_beyond
    (such changes beyond the band, or any change of a decided answer), compared, seconds."""
    import mc_hull
    from mc_hull.solvers import certificates as cert
    band = (getattr(cert, "BAND_IN", 0.5), getattr(cert, "BAND_OUT", 2.0))
    rows = []
    for kind in classes:
        for solver in solvers:
            tally = dict(tried=0, wrong=0, refused=0, undecided=0, beyond=0, flips=0, flips_beyond=0,
                         compared=0)
            t0 = time.perf_counter()
            for i in range(sets):
                rng = np.random.default_rng([seed, CLASSES.index(kind), i])
                X, faces = build(kind, rng)
                tol = float(rng.choice(tols))
                Q, t_inf, t2, slop = queries(X, faces, tol, rng)
                try:
                    st = mc_hull.decide(X, Q, tol=tol, solver=solver).status
                except Exception:  # noqa: BLE001 - a refusal is counted, not hidden
                    tally["refused"] += len(Q)
                    continue
                wrong, beyond = judge(st, t_inf, t2, slop, tol, band)
                tally["tried"] += len(Q)
                tally["wrong"] += int(wrong.sum())
                tally["beyond"] += int(np.sum(beyond & (st == -1)))
                tally["undecided"] += int(np.sum(st == -1))
                if permute:
                    r, cperm = rng.permutation(len(X)), rng.permutation(X.shape[1])
                    st2 = mc_hull.decide(X[r][:, cperm], Q[:, cperm], tol=tol, solver=solver).status
                    flip = (st == -1) != (st2 == -1)
                    tally["flips"] += int(flip.sum())
                    changed = (st != st2) & (st >= 0) & (st2 >= 0)
                    tally["flips_beyond"] += int(np.sum(flip & beyond) + changed.sum())
                    tally["compared"] += len(Q)
            tally["seconds"] = time.perf_counter() - t0
            rows.append((kind, solver, tally))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--solvers", default="auto,lp")
    ap.add_argument("--classes", default=",".join(CLASSES))
    ap.add_argument("--sets", type=int, default=40)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--tols", default="1e-9,1e-12,1e-6")
    a = ap.parse_args(argv)
    rows = run(a.classes.split(","), a.solvers.split(","), a.sets, a.seed,
               [float(t) for t in a.tols.split(",")])
    print("| class | solver | tried | wrong | refused | undecided | undecided beyond band | "
          "decided/undecided flips under permutation (beyond band) | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind, solver, t in rows:
        print(f"| {kind} | {solver} | {t['tried']} | {t['wrong']} | {t['refused']} | {t['undecided']} | "
              f"{t['beyond']} | {t['flips']} ({t['flips_beyond']}) / {t['compared']} | {t['seconds']:.1f} |")


if __name__ == "__main__":
    main()
