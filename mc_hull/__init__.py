"""mc_hull: certified Monte Carlo estimates of P(x in conv(X_1..X_N)) in dimension d."""

import os as _os

# One BLAS thread per process unless told otherwise (set before numpy loads): the solvers' many
# small products stall with more threads on few cores; an in-process 2-cell d = 8 run took
# 10-21 s with one thread and 21-31 s with OpenBLAS's default on 2 loaded cores.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    _os.environ.setdefault(_name, "1")

from .distance import hull_distance  # noqa: E402
from .membership import decide, in_hull  # noqa: E402
from .spec import Spec  # noqa: E402

__version__ = "0.1.0"
__all__ = ["in_hull", "decide", "hull_distance", "Spec", "__version__"]
