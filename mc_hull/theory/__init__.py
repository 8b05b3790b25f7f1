"""Exact finite-d curves p(d, N) and the Bárány–Füredi line: pure functions.

Laws with an exact curve (the samplers' names and parameter names):

=============  ==========================  ============================================
distribution   parameters                  range
=============  ==========================  ============================================
gaussian       none                        d = 1..64, N <= 1e12
ball           none                        d = 1..64, N <= 1e40
beta           ``beta`` (default 0)        beta in [-0.95, 1e4], d = 1..64, N <= 1e40
student-t      ``df`` (default 3)          df in [0.5, 1e4], d = 1..64, N <= 1e40
=============  ==========================  ============================================

Outside its range a known law raises :class:`~mc_hull.errors.InputError` with one line;
an unknown distribution has no curve (``has_exact`` False, the functions return None).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from ..errors import InputError
from .bf import bf_threshold

EXACT_LAWS = ("gaussian", "ball", "beta", "student-t")
_BETA_LAWS = ("beta", "student-t")


def _check(distribution: str, d, params: dict) -> None:
    """Raise InputError when (d, params) is outside the range of ``distribution``'s curve."""
    from . import beta

    if distribution == "gaussian" or distribution == "ball":
        if params:
            raise InputError(f"{distribution} takes no parameter {sorted(params)[0]!r}")
        beta._check_d(d)
        return
    beta.law_alpha(distribution, beta._check_d(d), **params)


def has_exact(distribution: str, d: int | None = None, **params) -> bool:
    """Whether an exact curve is known for ``distribution`` (in dimension ``d`` with ``params``, if given)."""
    if distribution not in EXACT_LAWS:
        return False
    if d is None and not params:
        return True
    try:
        _check(distribution, 1 if d is None else d, params)
    except InputError:
        return False
    return True


def exact_inside_probability(distribution: str, d: int, n, **params):
    """Exact p(d, N) for a law with a known curve, else None.

    Parameters
    ----------
    distribution : str
        ``gaussian``, ``ball``, ``beta`` or ``student-t`` (others: None).
    d : int
        Dimension, 1..64.
    n : float or array_like
        N (see the table in this module's docstring for the range).
    **params
        The sampler's parameters: ``beta`` for ``beta``, ``df`` for ``student-t``.

    Returns
    -------
    float, ndarray or None

    Raises
    ------
    InputError
        d, N or a parameter outside the curve's range (one line).
    """
    if distribution not in EXACT_LAWS:
        return None
    _check(distribution, d, params)
    if distribution == "gaussian":
        from .gaussian import gaussian_inside_probability

        try:
            return gaussian_inside_probability(d, n)
        except ValueError as exc:
            raise InputError(str(exc)) from None
    if distribution == "ball" and int(d) <= 40:
        from .ball import ball_inside_probability

        try:
            return ball_inside_probability(int(d), n)
        except ValueError as exc:
            raise InputError(str(exc)) from None
    from .beta import inside_probability

    return inside_probability(distribution, d, n, **params)


def exact_n_half(distribution: str, d: int, **params):
    """Exact N at which p = 1/2, else None (also when it lies beyond the curve's range of N).

    Raises
    ------
    InputError
        d or a parameter outside the curve's range (one line).
    """
    if distribution not in EXACT_LAWS:
        return None
    _check(distribution, d, params)
    if not params and distribution in _TABLED:
        try:
            known = _family_table().get((distribution, int(d)))
        except (OSError, ValueError):   # a damaged table: computed instead
            known = None
        if known is not None:   # the bits computed_n_half gives (a root search per d, ~40 ms each)
            return known
    return computed_n_half(distribution, d, **params)


#: Laws whose N½ is read from ``data/n_half_families.csv`` when it lists d: written by
#: ``docs/make_transition.py`` from :func:`computed_n_half` as ``repr`` (the same 64 bits;
#: ``tests/test_reader_cpu.py`` checks every d against a fresh computation).
_TABLED = ("gaussian", "ball")


def computed_n_half(distribution: str, d: int, **params):
    """:func:`exact_n_half` computed (the root search), never read from the shipped table."""
    if distribution not in EXACT_LAWS:
        return None
    _check(distribution, d, params)
    try:
        if distribution == "gaussian":
            from .gaussian import gaussian_n_half

            return gaussian_n_half(d)
        if distribution == "ball" and int(d) <= 40:
            from .ball import ball_n_half

            return ball_n_half(int(d))
        from .beta import n_half

        return n_half(distribution, d, **params)
    except ValueError as exc:  # e.g. Gaussian d >= 45: N_half above 1e12
        if isinstance(exc, InputError) and "needs N >" not in str(exc):
            raise
        return None


@lru_cache(maxsize=1)
def _family_table() -> dict:
    path = Path(__file__).resolve().parent / "data" / "n_half_families.csv"
    out: dict = {}
    if path.exists():
        for line in path.read_text().splitlines()[1:]:
            law, d, value = line.rsplit(",", 2)
            out[(law, int(d))] = float(value) if value else None
    return out


#: The measured N½ of the family comparison (no exact curve): the uniform cube's nested run, written by
#: ``docs/make_transition.py --cube DIR`` as ``d,n_half,n_half_low,n_half_high`` (median of T, 99% bracket).
CUBE_N_HALF_CSV = Path(__file__).resolve().parent / "data" / "n_half_cube.csv"


def cube_n_half_table(path=None) -> dict:
    """d -> (N½, low, high) of the uniform cube measured by nested Monte Carlo (None where a bound is
    missing); empty when the shipped table (:data:`CUBE_N_HALF_CSV`) is absent. N½ lies in (low, high]."""
    path = Path(path) if path is not None else CUBE_N_HALF_CSV
    out: dict = {}
    if path.exists():
        for line in path.read_text().splitlines()[1:]:
            d, *values = line.split(",")
            out[int(d)] = tuple(float(v) if v else None for v in values)
    return out


def family_n_half_table() -> dict:
    """(law label, d) -> exact N½ (None: above the curve's N range) from ``data/n_half_families.csv``
    (written by ``docs/make_transition.py``; empty when absent). Labels as
    :func:`mc_hull.query.views.law_label`: ``gaussian``, ``ball``, ``beta beta=-0.5``, ``student-t df=3``..."""
    return dict(_family_table())


__all__ = ["bf_threshold", "cube_n_half_table", "family_n_half_table", "has_exact", "exact_inside_probability", "exact_n_half", "EXACT_LAWS"]
