"""Samplers for the paper's synthetic panels: a curve, a flat subspace, heavy tails, clusters."""

from __future__ import annotations

import numpy as np

from .base import Range, Sampler, side_stream


#: Largest mixture separation: beyond it the clusters' unit spread is below what the
#: membership tolerance resolves against the centres' scale (and 1e308 overflows).
MAX_SEPARATION = 1e6
#: Largest components x d of a mixture: its centres are drawn for every training set.
MAX_CENTRE_VALUES = 10**7
#: Smallest Student-t degrees of freedom.  A point's scale is sqrt(chi2_df / df), and chi2_df
#: underflows to 0 (an infinite point) with probability about exp(-745 df / 2): 7e-4 at df = 0.02,
#: 6e-21 at df = 1/8.  Above it every draw is finite (the largest about 1e160).
MIN_DF = 0.125
#: Largest Student-t degrees of freedom: beyond it the draw equals the Gaussian's to float precision
#: (and near 1e308 chi2_df overflows, which would turn every point into 0).
MAX_DF = 1e12


class Manifold(Sampler):
    """A closed 1-D trigonometric curve in R^d whose affine hull is all of R^d.

    With t ~ U[0, 2π), the point is ``x_j = sin(j t)`` for j = 1..d.  The
    functions 1, sin t, ..., sin(d t) are linearly independent, so d + 1 points
    at distinct t are affinely independent almost surely: the data have
    intrinsic dimension 1 but span R^d affinely, and p behaves like that of a
    d-dimensional distribution (the paper's Fig. 1b), not a 1-dimensional one.
    Unlike the moment curve or the trigonometric moment curve (cos/sin pairs,
    which lies on a sphere) a hyperplane can cut this curve up to 2d times,
    so samples are not all vertices of their hull and p > 0 for large N.

    Dimensions: ambient d, intrinsic 1, affine d.  No parameters.
    """

    name = "manifold"

    @property
    def dims(self):
        return {"ambient": self.d, "intrinsic": 1, "affine": self.d}

    def _random(self, n, rng):
        t = rng.uniform(0.0, 2.0 * np.pi, n)
        return np.sin(np.outer(t, np.arange(1, self.d + 1)))


class Subspace(Sampler):
    """A standard Gaussian in R^k placed in R^d by a random affine map of full rank k.

    Per replicate (:meth:`bind`, from the structure stream) a d × d matrix
    A with i.i.d. N(0, 1) entries (invertible almost surely) and an offset
    b ~ N(0, I_d) are drawn; a point is ``A (z, 0) + b = A[:, :k] z + b``
    with z ~ N(0, I_k).  The training set and the queries of one replicate
    share the map.  Since membership in a hull is invariant under invertible
    affine maps, p(d, N) equals the Gaussian p(k, N) exactly for every d >= k
    (the paper's Fig. 1c), which :attr:`exact_as` exposes.

    Dimensions: ambient d, intrinsic k, affine k.

    Parameters
    ----------
    k : int, default 2
        Dimension of the subspace, 1 <= k <= d.
    """

    name = "subspace"
    params = {"k": 2}
    ranges = {"k": Range(1, lambda d: d, integer=True, why=" (k <= d)")}

    def _validate(self):
        self.basis = None  # (d, k) columns of A; set by bind
        self.offset = None  # (d,)

    @property
    def dims(self):
        return {"ambient": self.d, "intrinsic": self.k, "affine": self.k}

    @property
    def exact_as(self):
        return ("gaussian", self.k)

    @property
    def exact_params(self):
        return {}

    def bind(self, rng):
        bound = Subspace(self.d, **self.options)
        bound.basis = rng.standard_normal((self.d, self.d))[:, :self.k]
        bound.offset = rng.standard_normal(self.d)
        return bound

    def _random(self, n, rng):
        if self.basis is None:
            raise RuntimeError("subspace: call bind(rng) first to draw the embedding")
        return rng.standard_normal((n, self.k)) @ self.basis.T + self.offset


class StudentT(Sampler):
    """Multivariate Student t with ``df`` degrees of freedom: z / sqrt(chi2_df / df), z ~ N(0, I_d).

    One chi-square scale per point makes the tails heavy in every direction
    at once (radially symmetric, like the Gaussian it tends to as df → ∞).

    Dimensions: ambient d, intrinsic d, affine d.

    Parameters
    ----------
    df : float, default 3
        Degrees of freedom in [:data:`MIN_DF`, :data:`MAX_DF`] (variance is infinite
        for df <= 2); below 1/8 some draws would be infinite.

    The chi-square scales come from :func:`~.base.side_stream`, so draws are prefix-stable in n.
    """

    name = "student-t"
    isotropic = True
    draws = 2   # scales from the side stream (prefix-stable)
    params = {"df": 3}
    ranges = {"df": Range(MIN_DF, MAX_DF, why=" (below 0.125 some draws are infinite)")}

    def _random(self, n, rng):
        scale = np.sqrt(side_stream(rng).chisquare(self.df, n) / self.df)
        z = rng.standard_normal((n, self.d))
        return z / scale[:, None]


class Mixture(Sampler):
    """An equal-weight mixture of unit-variance Gaussians around random centres (clustered data).

    Per replicate (:meth:`bind`, from the structure stream) the centres are
    drawn as ``separation * N(0, I_d)``; training points and queries of that
    replicate share them, so p averages over centre configurations too.
    ``separation = 0`` is the standard Gaussian.

    Dimensions: ambient d, intrinsic d, affine d.

    Parameters
    ----------
    components : int, default 3
        Number of clusters, >= 1.
    separation : float, default 4
        Standard deviation of the centres per coordinate, >= 0 (in units of
        the clusters' standard deviation).
    """

    name = "mixture"
    draws = 2   # labels from the side stream (prefix-stable)
    params = {"components": 3, "separation": 4.0}
    # the centres, components x d floats, are drawn for every training set
    ranges = {"components": Range(1, lambda d: max(1, MAX_CENTRE_VALUES // d), integer=True,
                                  why=f" (components x d <= {MAX_CENTRE_VALUES:.0e})"),
              "separation": Range(0.0, MAX_SEPARATION)}

    def _validate(self):
        self.centres = None  # (components, d); set by bind

    def bind(self, rng):
        bound = Mixture(self.d, **self.options)
        bound.centres = self.separation * rng.standard_normal((self.components, self.d))
        return bound

    def _random(self, n, rng):
        if self.centres is None:
            raise RuntimeError("mixture: call bind(rng) first to draw the centres")
        label = side_stream(rng).integers(0, self.components, n)   # prefix-stable in n
        return self.centres[label] + rng.standard_normal((n, self.d))
