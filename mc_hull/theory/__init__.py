"""Exact finite-d curves p(d, N) and the Bárány–Füredi line: pure functions."""

from __future__ import annotations

from importlib import import_module

from .bf import bf_threshold

# distribution -> (module, probability function, 50%-point function)
_EXACT = {
    "gaussian": ("gaussian", "gaussian_inside_probability", "gaussian_n_half"),
    "ball": ("ball", "ball_inside_probability", "ball_n_half"),
}


def has_exact(distribution: str, d: int | None = None) -> bool:
    """Whether an exact curve is known for ``distribution`` (in dimension ``d``, if given)."""
    if distribution not in _EXACT:
        return False
    if d is None:
        return True
    module = import_module(f"{__name__}.{_EXACT[distribution][0]}")
    return 1 <= int(d) <= module.D_MAX


def _function(distribution: str, index: int):
    module, *names = _EXACT[distribution]
    return getattr(import_module(f"{__name__}.{module}"), names[index - 1])


def exact_inside_probability(distribution: str, d: int, n):
    """Exact p(d, N) for a distribution with a known curve, else None."""
    return _function(distribution, 1)(d, n) if has_exact(distribution, d) else None


def exact_n_half(distribution: str, d: int):
    """Exact N at which p = 1/2, else None (also when it lies beyond the curve's range of N)."""
    if not has_exact(distribution, d):
        return None
    try:
        return _function(distribution, 2)(d)
    except ValueError:  # e.g. Gaussian d >= 45: N_half above 1e12
        return None


__all__ = ["bf_threshold", "has_exact", "exact_inside_probability", "exact_n_half"]
