"""The four basic families: Gaussian, uniform ball, uniform cube, uniform sphere."""

from __future__ import annotations

import numpy as np

from .base import Range, Sampler, side_stream


class Gaussian(Sampler):
    """Standard normal N(0, I_d): the distribution of the exact Kabluchko–Zaporozhets curve."""

    name = "gaussian"
    isotropic = True

    def _random(self, n, rng):
        return rng.standard_normal((n, self.d))


class Ball(Sampler):
    """Uniform in the unit ball (the setting of the paper's v2 Theorem 1).

    A direction from ``rng`` times a radius U^(1/d), U from :func:`side_stream` so that the
    draws are prefix-stable in n.
    """

    name = "ball"
    isotropic = True
    draws = 2   # radii from the side stream (prefix-stable)

    def _random(self, n, rng):
        radius = side_stream(rng).random(n) ** (1.0 / self.d)
        g = rng.standard_normal((n, self.d))
        g /= np.linalg.norm(g, axis=1, keepdims=True)
        return g * radius[:, None]


class Cube(Sampler):
    """Uniform in the cube [-1, 1]^d."""

    name = "cube"

    def _random(self, n, rng):
        return rng.uniform(-1.0, 1.0, (n, self.d))


class Sphere(Sampler):
    """Uniform on the unit sphere: every point is extreme, so p = 0 for any N (a sanity check)."""

    name = "sphere"

    @property
    def dims(self):
        return {"ambient": self.d, "intrinsic": self.d - 1, "affine": self.d}

    def _random(self, n, rng):
        g = rng.standard_normal((n, self.d))
        return g / np.linalg.norm(g, axis=1, keepdims=True)


#: Range of the ``beta`` sampler's exponent: above -1 (integrable) and finite; at the ends
#: the draws stay finite (beta + 1 >= 1e-3 keeps the gamma variates away from underflow).
BETA_RANGE = (-0.999, 1e6)


class BetaBall(Sampler):
    """The beta law on the unit ball: density ∝ (1 - |x|²)^beta, beta > -1.

    ``beta = 0`` is the uniform ball, ``beta → -1`` concentrates on the sphere and large
    ``beta`` tends to a Gaussian of standard deviation 1/√(2 beta). Drawn as
    ``x = g / sqrt(|g|² + 2 Y)`` with g ~ N(0, I_d) from ``rng`` and Y ~ Gamma(beta + 1) from
    :func:`~.base.side_stream` (prefix-stable in n): |x|² is then Beta(d/2, beta + 1) and
    x/|x| uniform, which is this law. Its exact p(d, N) is the beta-polytope curve
    (:func:`mc_hull.theory.exact_inside_probability` with ``beta``).

    Dimensions: ambient d, intrinsic d, affine d.

    Parameters
    ----------
    beta : float, default 0
        Exponent in [-0.999, 1e6] (:data:`BETA_RANGE`; beta + 1 >= 1e-3 keeps the gamma
        variates from underflowing).
    """

    name = "beta"
    isotropic = True
    draws = 2   # gamma radii from the side stream (prefix-stable)
    params = {"beta": 0.0}
    ranges = {"beta": Range(*BETA_RANGE, why=" (density ∝ (1 - |x|²)^beta needs beta > -1)")}

    def _random(self, n, rng):
        side = side_stream(rng)            # before the coordinates: prefix-stable in n
        g = rng.standard_normal((n, self.d))
        y = side.standard_gamma(self.beta + 1.0, n)
        return g / np.sqrt(np.einsum("ij,ij->i", g, g) + 2.0 * y)[:, None]
