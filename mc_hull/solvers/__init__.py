"""Membership solvers behind one contract, looked up by name in a small registry."""

from __future__ import annotations

from importlib import import_module

from ..errors import SpecError
from .base import INSIDE, OUTSIDE, STATUS_NAMES, UNDECIDED, Candidates, Decisions, Solver

# name -> "module:Class"; modules are imported on first use so that e.g. cvxpy
# (slow to import) is only loaded when asked for.
_REGISTRY: dict[str, str] = {
    "lp": "mc_hull.solvers.lp:LPSolver",
    "lp-ipm": "mc_hull.solvers.lp:IPMSolver",
    "cvxpy": "mc_hull.solvers.cvx:CvxpySolver",
    "colgen": "mc_hull.solvers.colgen:ColGenSolver",
    "stream": "mc_hull.solvers.stream:StreamSolver",
}
# What ``solver="auto"`` means: the fastest certified engine available.
DEFAULT_SOLVER = "colgen"


def solver_names() -> list[str]:
    """Valid solver names, ``"auto"`` first."""
    return ["auto", *sorted(_REGISTRY)]


def check_solver_name(name: str) -> str:
    """Return the registry name for ``name`` (resolving ``"auto"``) or raise SpecError."""
    if name == "auto":
        return DEFAULT_SOLVER
    if name not in _REGISTRY:
        raise SpecError(f"solver: unknown solver {name!r}; valid: {', '.join(solver_names())}")
    return name


def get_solver(name: str = "auto", **options) -> Solver:
    """Instantiate the solver registered under ``name``."""
    module, cls = _REGISTRY[check_solver_name(name)].split(":")
    return getattr(import_module(module), cls)(**options)


__all__ = ["Candidates", "Decisions", "Solver", "STATUS_NAMES", "INSIDE", "OUTSIDE", "UNDECIDED",
           "get_solver", "solver_names", "check_solver_name", "DEFAULT_SOLVER"]
