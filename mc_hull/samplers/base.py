"""The sampler contract: ``random(n, rng)`` validates and calls the subclass hook ``_random``."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..errors import SpecError


class Sampler:
    """A distribution of points in R^d.

    Subclasses set ``name``, optionally ``params`` (name -> default) and
    implement :meth:`_random`.  Distributions with per-replicate structure
    (e.g. a random embedding shared by training points and queries) override
    :meth:`bind`.

    Parameters
    ----------
    d : int
        Ambient dimension, >= 1.
    **params
        Distribution parameters; unknown names raise :class:`SpecError`.
    """

    name: ClassVar[str] = "base"
    params: ClassVar[dict[str, Any]] = {}

    def __init__(self, d: int, **params):
        if not isinstance(d, (int, np.integer)) or isinstance(d, bool) or d < 1:
            raise SpecError(f"d: must be an integer >= 1, got {d!r}")
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            valid = ", ".join(sorted(self.params)) or "none"
            raise SpecError(f"params: {self.name} takes no parameter {unknown[0]!r}; valid: {valid}")
        self.d = int(d)
        self.options = {**self.params, **params}
        self._validate()

    def _validate(self) -> None:
        """Check ``self.options`` against ``self.d``; raise SpecError naming the field."""

    def bind(self, rng: np.random.Generator) -> "Sampler":
        """Draw per-replicate structure from ``rng``; returns the sampler to draw from."""
        return self

    @property
    def dims(self) -> dict[str, int]:
        """Ambient, intrinsic and affine-hull dimensions of the distribution."""
        return {"ambient": self.d, "intrinsic": self.d, "affine": self.d}

    @property
    def exact_as(self) -> tuple[str, int]:
        """(distribution, dimension) whose exact curve, if any, gives this sampler's p(d, N).

        Itself by default; a distribution that is an affine image of another
        (e.g. a flat k-dimensional Gaussian in R^d) names that one.
        """
        return (self.name, self.d)

    @property
    def exact_params(self) -> dict[str, Any]:
        """The parameters of the :attr:`exact_as` law (this sampler's own by default)."""
        return dict(self.options)

    def describe(self) -> str:
        """The parameters with defaults filled in, as a compact string like ``"k=3"`` ("" if none)."""
        return ",".join(f"{k}={v}" for k, v in sorted(self.options.items()))

    def random(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``n`` points.

        Returns
        -------
        ndarray, shape (n, d), float64
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        out = np.asarray(self._random(int(n), rng), dtype=np.float64)
        assert out.shape == (n, self.d), (out.shape, n, self.d)
        return out

    def _random(self, n: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError
