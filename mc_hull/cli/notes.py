"""Plain-language notes for the faces: how N½ was read (fit or median of T) and why a curve has none."""

from __future__ import annotations

import math

from ..query import MEDIAN_T, MEDIAN_T_NOTE, THRESHOLDS_NOTE


def _fmt(n: float) -> str:
    return f"{n:,.0f}" if n < 1e6 else f"{n:.3g}"


def no_n_half_reason(row: dict) -> str | None:
    """Why ``row`` (a thresholds or N½ row: ``n_half``, ``n_half_low``, ``n_half_high``) has no N½.

    None when it has one, or when neither bound is informative (then
    :func:`reason_from_cells` explains from the cells).  The bounds follow from the
    monotonicity of p in N: cells whose interval lies wholly below (above) 1/2.
    """
    if row.get("n_half") is not None and math.isfinite(row["n_half"]):
        return None
    low, high = row.get("n_half_low"), row.get("n_half_high")
    low = low if low is not None and math.isfinite(low) and low > 0 else None
    high = high if high is not None and math.isfinite(high) else None
    if low is not None and high is None:
        return (f"p is below 1/2 up to N = {_fmt(low)} (its interval lies wholly below 1/2 there) and no "
                f"larger N brackets the crossing: N½ is above {_fmt(low)}, if p reaches 1/2 at all; add larger N")
    if high is not None and low is None:
        return (f"p is above 1/2 from N = {_fmt(high)} on and no smaller N brackets the crossing: "
                f"N½ is below {_fmt(high)}; add smaller N")
    if low is not None and high is not None:
        return (f"the cells near 1/2 do not pin the crossing down: N½ lies in [{_fmt(low)}, {_fmt(high)}]; "
                "add trials or sizes there")
    return None


def label(row: dict) -> str:
    """``manifold d = 3`` or ``subspace (k=4) d = 5``."""
    params = f" ({row['params']})" if row.get("params") else ""
    return f"{row['distribution']}{params} d = {row['d']}"


def reason_from_cells(rows: list[dict]) -> str:
    """Why the cells of one curve (``n``, ``p_hat`` rows) give no empirical N½."""
    rows = [r for r in rows if r.get("p_hat") is not None and math.isfinite(r["p_hat"])]
    if not rows:
        return "no decided trials yet"
    top = max(rows, key=lambda r: r["p_hat"])
    n_max = max(r["n"] for r in rows)
    n_min = min(r["n"] for r in rows)
    if top["p_hat"] < 0.5:
        return (f"p̂ stays below 1/2 at every N measured (up to N = {_fmt(n_max)}): N½ is above it, "
                "if p reaches 1/2 at all; add larger N")
    if min(r["p_hat"] for r in rows) > 0.5:
        return f"p̂ is above 1/2 already at the smallest N ({_fmt(n_min)}): N½ is below it; add smaller N"
    return "p̂ crosses 1/2 but the intervals there do not pin the crossing down; add trials near it"


def thresholds_notes(rows: list[dict]) -> list[str]:
    """The notes printed under a thresholds table: how each method reads N½ (the fit always,
    the median of T when a nested curve is in ``rows``), one line each."""
    methods = {r.get("method") for r in rows}
    lines = [THRESHOLDS_NOTE] if methods - {MEDIAN_T} or not methods else []
    if MEDIAN_T in methods:
        lines.append(MEDIAN_T_NOTE)
    return lines
