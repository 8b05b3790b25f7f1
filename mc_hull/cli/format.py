"""Render Arrow tables for the terminal (aligned text), CSV, JSON or JSON Lines."""

from __future__ import annotations

import csv
import io
import json
import math

import pyarrow as pa

FORMATS = ("table", "csv", "json", "jsonl")


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value == 0 or 1e-3 <= abs(value) < 1e6:
            return f"{value:.4f}".rstrip("0").rstrip(".") if abs(value) < 10 else f"{value:.4g}"
        return f"{value:.3g}"
    return str(value)


def _finite(row: dict) -> dict:
    """NaN and infinities as null: the output stays strict JSON (RFC 8259)."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}


def render(table: pa.Table, fmt: str = "table") -> str:
    """The table as aligned text, CSV, one JSON array of objects (``json``) or JSON Lines (``jsonl``)."""
    rows = table.to_pylist()
    cols = table.column_names
    if fmt == "json":
        return json.dumps([_finite(r) for r in rows], allow_nan=False, indent=1)
    if fmt == "jsonl":
        return "\n".join(json.dumps(_finite(r), allow_nan=False) for r in rows)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue().rstrip("\n")
    text = [[_cell(r[c]) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(t[i]) for t in text]) for i, c in enumerate(cols)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(t, widths)) for t in text]
    return "\n".join(lines)
