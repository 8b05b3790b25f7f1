"""The four basic families: Gaussian, uniform ball, uniform cube, uniform sphere."""

from __future__ import annotations

import numpy as np

from .base import Sampler


class Gaussian(Sampler):
    """Standard normal N(0, I_d): the distribution of the exact Kabluchko–Zaporozhets curve."""

    name = "gaussian"

    def _random(self, n, rng):
        return rng.standard_normal((n, self.d))


class Ball(Sampler):
    """Uniform in the unit ball (the setting of the paper's v2 Theorem 1)."""

    name = "ball"

    def _random(self, n, rng):
        g = rng.standard_normal((n, self.d))
        g /= np.linalg.norm(g, axis=1, keepdims=True)
        return g * rng.random(n)[:, None] ** (1.0 / self.d)


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
