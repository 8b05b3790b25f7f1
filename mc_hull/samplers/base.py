"""The sampler contract: ``random(n, rng)`` validates and calls the subclass hook ``_random``.

Two promises every sampler keeps (tests/test_sampler_ranges.py checks each one in the registry):

* **Declared ranges.**  Every parameter has a :class:`Range` in ``ranges``; values outside it are
  refused in one line (:class:`SpecError`) and inside it every draw is finite.  :meth:`Sampler.random`
  checks that too, so a non-finite draw can never reach a solver.
* **Prefix-stable draws.**  ``random(k, rng)`` equals the first k rows of ``random(K, rng)`` for the
  same generator state and any K >= k, so trial (replicate r, query q) names one point whatever the
  number of queries per set.  A family needing a second variate per point (a radius, a scale, a
  label) takes it from :func:`side_stream`, not from ``rng`` after the first n rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Callable, ClassVar

import numpy as np

from ..errors import SpecError


@dataclass(frozen=True)
class Range:
    """The values a sampler parameter may take: those for which every draw is finite.

    Parameters
    ----------
    low, high : float or callable(d) -> float, optional
        Bounds (inclusive unless ``open_low``); a callable gets the dimension d.
    integer : bool
        Integers only (bools refused).
    open_low : bool
        ``low`` itself is refused.
    why : str
        Why the bounds are there, appended to the refusal (e.g. ``" (k <= d)"``).
    """

    low: float | Callable[[int], float] | None = None
    high: float | Callable[[int], float] | None = None
    integer: bool = False
    open_low: bool = False
    why: str = ""

    def bounds(self, d: int) -> tuple[float | None, float | None]:
        """(low, high) in dimension d."""
        return tuple(b(d) if callable(b) else b for b in (self.low, self.high))

    def check(self, sampler: str, name: str, value, d: int):
        """``value`` as an int or float inside the range; SpecError naming the field and range otherwise."""
        low, high = self.bounds(d)
        if self.integer:
            ok = isinstance(value, Integral) and not isinstance(value, bool)
        else:
            try:
                ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
            except OverflowError:   # an int beyond float64 (10**400)
                ok = False
        if ok:
            ok = ((low is None or (value > low if self.open_low else value >= low))
                  and (high is None or value <= high))
        if not ok:
            fmt = (lambda b: f"{int(b)}") if self.integer else (lambda b: f"{b:g}")
            if self.integer and low is not None and high is not None and not self.open_low:
                allowed = f"an integer in [{fmt(low)}, {fmt(high)}]"
            else:
                parts = ([f"{'>' if self.open_low else '>='} {fmt(low)}"] if low is not None else []) + (
                    [f"<= {fmt(high)}"] if high is not None else [])
                allowed = ("an integer " if self.integer else "a finite number ") + " and ".join(parts)
            raise SpecError(f"params.{name}: {sampler} needs {allowed.strip()}{self.why}, got {value!r}")
        return int(value) if self.integer else float(value)


def side_stream(rng: np.random.Generator) -> np.random.Generator:
    """An independent generator derived from ``rng``'s current state, leaving ``rng`` untouched.

    For a second variate per point (a radius, a scale, a label): drawing it from ``rng`` after
    the n points' coordinates would make point i depend on n.  The side stream is the bit
    generator jumped ahead by 2^127 steps (far beyond any draw), so both streams stay prefix-stable.
    """
    return np.random.Generator(rng.bit_generator.jumped())


class Sampler:
    """A distribution of points in R^d.

    Subclasses set ``name``, optionally ``params`` (name -> default) with a
    :class:`Range` per parameter in ``ranges`` (checked before :meth:`_validate`;
    the value is set as an attribute of that name), and implement :meth:`_random`
    with prefix-stable draws (see the module docstring).  Distributions with per-replicate structure
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
    ranges: ClassVar[dict[str, Range]] = {}
    #: The draw scheme (:data:`mc_hull.seeding.DRAW_SCHEME`) since which this family draws as it does now;
    #: rows of runs recorded under an older scheme are kept apart from newer ones (other points).
    draws: ClassVar[int] = 1
    #: Full-dimensional and invariant under rotations about its centre (as the Gaussian): its hull of
    #: many points is close to a ball, so a streamed nested search may price only the rows far from
    #: the mean (:data:`mc_hull.nested.stream.SIEVE`).  An efficiency hint only: answers never depend on it.
    isotropic: ClassVar[bool] = False

    def __init__(self, d: int, **params):
        if not isinstance(d, (int, np.integer)) or isinstance(d, bool) or d < 1:
            raise SpecError(f"d: must be an integer >= 1, got {d!r}")
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            valid = ", ".join(sorted(self.params)) or "none"
            raise SpecError(f"params: {self.name} takes no parameter {unknown[0]!r}; valid: {valid}")
        self.d = int(d)
        self.options = {**self.params, **params}
        for pname in self.params:
            rule = self.ranges.get(pname)
            if rule is None:  # undeclared: left to _validate (tests/test_sampler_ranges.py fails on it)
                continue
            setattr(self, pname.replace("-", "_"), rule.check(self.name, pname, self.options[pname], self.d))
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
        """Draw ``n`` points (prefix-stable: the first k rows do not depend on n).

        Returns
        -------
        ndarray, shape (n, d), float64

        Raises
        ------
        SpecError
            A drawn coordinate is NaN or infinite (the parameters' declared ranges are
            meant to make that impossible; this is the last line of defence).
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        out = np.asarray(self._random(int(n), rng), dtype=np.float64)
        assert out.shape == (n, self.d), (out.shape, n, self.d)
        if not np.isfinite(out).all():
            row = int(np.flatnonzero(~np.isfinite(out).all(axis=1))[0])
            label = self.name + (f" ({self.describe()})" if self.options else "")
            raise SpecError(f"params: {label} drew a non-finite point (row {row} of {n}, d = {self.d}); "
                            "choose parameters farther from the edge of their range")
        return out

    def _random(self, n: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError
