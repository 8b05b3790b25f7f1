"""Sampler families behind a name -> class registry."""

from __future__ import annotations

from ..errors import SpecError
from .base import Sampler
from .paper import Manifold, Mixture, StudentT, Subspace
from .simple import Ball, BetaBall, Cube, Gaussian, Sphere

SAMPLERS: dict[str, type[Sampler]] = {
    cls.name: cls for cls in (Gaussian, Ball, Cube, Sphere, Manifold, Subspace, StudentT, Mixture,
                              BetaBall)}


def register(cls: type[Sampler]) -> type[Sampler]:
    """Add a sampler class to the registry (usable as a decorator)."""
    SAMPLERS[cls.name] = cls
    return cls


def sampler_names() -> list[str]:
    """Valid distribution names."""
    return sorted(SAMPLERS)


def get_sampler(name: str, d: int, **params) -> Sampler:
    """Instantiate the sampler ``name`` in dimension ``d``; unknown names list the valid ones."""
    try:
        cls = SAMPLERS[name]
    except (KeyError, TypeError):
        raise SpecError(f"distribution: unknown {name!r}; valid: {', '.join(sampler_names())}") from None
    return cls(d, **params)


#: Names defined in :mod:`.keyed`, imported on first use (PEP 562): it pulls in the solvers and SciPy's
#: optimizers, which a reader of results (the query layer asks a sampler only what it describes) never needs.
_KEYED = ("KeyedSource", "keyed_source", "replicate_data")


def __getattr__(name):
    if name in _KEYED:
        from . import keyed

        return getattr(keyed, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Sampler", "SAMPLERS", "get_sampler", "sampler_names", "register", "KeyedSource", "keyed_source",
           "replicate_data"]
