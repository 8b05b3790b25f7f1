"""mc_hull: certified Monte Carlo estimates of P(x in conv(X_1..X_N)) in dimension d."""

from .distance import hull_distance
from .membership import decide, in_hull
from .spec import Spec

__version__ = "0.1.0"
__all__ = ["in_hull", "decide", "hull_distance", "Spec", "__version__"]
