"""Plain-language notes for the faces: how N½ was read (fit or median of T) and why a curve has none."""

from __future__ import annotations

import math

from ..query import MEDIAN_T, MEDIAN_T_NOTE, THRESHOLDS_NOTE


def _fmt(n: float) -> str:
    return f"{n:,.0f}" if n < 1e6 else f"{n:.3g}"


def no_n_half_reason(row: dict, cells: list[dict] | None = None) -> str | None:
    """Why ``row`` (a thresholds or N½ row: ``n_half``, ``n_half_low``, ``n_half_high``) has no N½.

    None when it has one.  Every statement is one the 99% intervals support: the bounds
    follow from the monotonicity of p in N and the cells whose interval lies wholly below
    (above) 1/2; a cell whose interval holds 1/2 places N½ on neither side of it.  ``cells``
    (the curve's ``n``, ``p_hat``, ``ci_low``, ``ci_high`` rows) add what lies between the
    bounds; without them and without an informative bound, None (nothing to say).
    """
    if row.get("n_half") is not None and math.isfinite(row["n_half"]):
        return None
    low, high = row.get("n_half_low"), row.get("n_half_high")
    low = low if low is not None and math.isfinite(low) and low > 0 else None
    high = high if high is not None and math.isfinite(high) else None
    if cells is None:
        if low is None and high is None:
            return None
        cells = []
    return _interval_reason(cells, low, high)


def _side(cell: dict) -> str | None:
    """``"below"`` / ``"above"`` when the cell's 99% interval lies wholly below / above 1/2,
    ``"holds"`` when it holds 1/2, None when the cell has no decided trial or no interval."""
    lo, hi = cell.get("ci_low"), cell.get("ci_high")
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    return "below" if hi < 0.5 else "above" if lo > 0.5 else "holds"


def _ns(values: list[float]) -> str:
    values = sorted(values)
    shown = [_fmt(v) for v in values[:4]] + (["..."] if len(values) > 4 else [])
    return ", ".join(shown)


def _interval_reason(cells: list[dict], low: float | None, high: float | None) -> str:
    """The no-N½ note from the cells' 99% intervals and the monotone bounds ``low``/``high``."""
    sides = [(c["n"], _side(c), c) for c in cells]
    sides = [(n, side, c) for n, side, c in sides if side is not None]
    below = [n for n, side, _ in sides if side == "below"]
    above = [n for n, side, _ in sides if side == "above"]
    if below:
        low = max(max(below), low or 0)
    if above:
        high = min(min(above), high if high is not None else math.inf)
    if not sides and low is None and high is None:
        if any(c.get("p_hat") is not None and math.isfinite(c["p_hat"]) for c in cells):
            return "the cells carry no 99% interval, so N½ cannot be placed"
        return "no decided trials yet"
    # cells that place N½ on neither side: their intervals hold 1/2, between the bounds
    open_ = [n for n, side, _ in sides if side == "holds" and (low is None or n > low)
             and (high is None or n < high)]
    if low is None and high is None:
        if len(open_) == 1:
            c = next(c for n, side, c in sides if n == open_[0])
            return (f"the 99% interval at the only N measured ({_fmt(open_[0])}: p̂ = {c['p_hat']:.3f}, "
                    f"[{c['ci_low']:.3f}, {c['ci_high']:.3f}]) holds 1/2, so N½ may lie on either side of it; "
                    "add trials there, or sizes on both sides")
        return (f"the 99% interval holds 1/2 at every N measured ({_ns(open_)}): the data place N½ "
                "neither below nor above any of them; add trials, or sizes on both sides")
    if high is None:
        tail = (f"; the intervals at larger N ({_ns(open_)}) hold 1/2" if open_ else
                " and no larger N was measured")
        return (f"p is below 1/2 up to N = {_fmt(low)} (99% intervals wholly below 1/2){tail}: N½ is above "
                f"{_fmt(low)}, if p reaches 1/2 at all; add " + ("trials there or " if open_ else "") + "larger N")
    if low is None:
        tail = (f"; the intervals at smaller N ({_ns(open_)}) hold 1/2" if open_ else
                " and no smaller N was measured")
        return (f"p is above 1/2 from N = {_fmt(high)} on (99% intervals wholly above 1/2){tail}: N½ is at "
                f"most {_fmt(high)}; add " + ("trials there or " if open_ else "") + "smaller N")
    if low >= high:
        return (f"the 99% intervals contradict a p that grows with N: wholly below 1/2 at N = {_fmt(low)} but "
                f"wholly above it at N = {_fmt(high)}; check the runs mixed in this curve, or add trials")
    between = (f"the intervals between ({_ns(open_)}) hold 1/2" if open_ else "no N between them was measured")
    return (f"p is below 1/2 up to N = {_fmt(low)} and above it from N = {_fmt(high)} (99% intervals), "
            f"{between}: N½ lies in ({_fmt(low)}, {_fmt(high)}]; add trials or sizes there")


def label(row: dict) -> str:
    """``manifold d = 3`` or ``subspace (k=4) d = 5``."""
    params = f" ({row['params']})" if row.get("params") else ""
    return f"{row['distribution']}{params} d = {row['d']}"


def reason_from_cells(rows: list[dict]) -> str:
    """Why the cells of one curve (``n``, ``p_hat``, ``ci_low``, ``ci_high`` rows) give no empirical N½.

    Only what their 99% intervals support: see :func:`no_n_half_reason`.
    """
    return _interval_reason(rows, None, None)


def thresholds_notes(rows: list[dict]) -> list[str]:
    """The notes printed under a thresholds table: how each method reads N½ (the fit always,
    the median of T when a nested curve is in ``rows``), one line each."""
    methods = {r.get("method") for r in rows}
    lines = [THRESHOLDS_NOTE] if methods - {MEDIAN_T} or not methods else []
    if MEDIAN_T in methods:
        lines.append(MEDIAN_T_NOTE)
    return lines
