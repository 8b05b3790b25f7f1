"""The four basic families: Gaussian, uniform ball, uniform cube, uniform sphere."""

from __future__ import annotations

import numpy as np

from .base import Sampler, side_stream


class Gaussian(Sampler):
    """Standard normal N(0, I_d): the distribution of the exact Kabluchko–Zaporozhets curve."""

    name = "gaussian"

    def _random(self, n, rng):
        return rng.standard_normal((n, self.d))


class Ball(Sampler):
    """Uniform in the unit ball (the setting of the paper's v2 Theorem 1).

    A direction from ``rng`` times a radius U^(1/d), U from :func:`side_stream` so that the
    draws are prefix-stable in n.
    """

    name = "ball"

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
