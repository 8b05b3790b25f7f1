"""mc_hull: certified Monte Carlo estimates of P(x in conv(X_1..X_N)) in dimension d."""

import os as _os

# One BLAS thread per process unless told otherwise (set before numpy loads): the solvers' many
# small products stall with more threads on few cores; an in-process 2-cell d = 8 run took
# 10-21 s with one thread and 21-31 s with OpenBLAS's default on 2 loaded cores.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    _os.environ.setdefault(_name, "1")

__version__ = "0.1.0"
__all__ = ["in_hull", "decide", "hull_distance", "Spec", "__version__"]

#: The public names and the modules that define them, imported on first use (PEP 562): a reader of
#: results (``mc-hull query``, the dashboard) never loads the solvers and SciPy's optimizers.
_LAZY = {"in_hull": "membership", "decide": "membership", "hull_distance": "distance", "Spec": "spec"}


def __getattr__(name):
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
