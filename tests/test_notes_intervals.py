"""Every no-N½ note states only what the cells' 99% intervals support.

A claim "N½ is above X" needs a cell at N = X whose interval lies wholly below 1/2; "N½ is at
most Y" a cell at Y whose interval lies wholly above 1/2 (p grows with N, so these bound N½).
A cell whose interval holds 1/2 places N½ on neither side of it, whatever its p̂.  The notes
are checked by parsing their claims back, on hand-made curves, on simulated curves from a known
p(N) (where the claims must also hold for the true N½ at about the 99% rate), and on a real run
read by `mc-hull query --thresholds`.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from mc_hull.stats import intervals as stats
from mc_hull.cli import main
from mc_hull.cli.notes import no_n_half_reason, reason_from_cells
from mc_hull.stats.thresholds import fit_n_half

NUM = r"([0-9][0-9,.]*(?:e[+-]?[0-9]+)?)"


def num(text: str) -> float:
    return float(text.replace(",", ""))


def claims(note: str) -> tuple[float | None, float | None]:
    """(lower, upper) bound on N½ that ``note`` asserts (None: no such claim)."""
    m = re.search(rf"N½ lies in \({NUM}, {NUM}\]", note)
    if m:
        return num(m.group(1)), num(m.group(2))
    low = re.search(rf"N½ is above {NUM}", note)
    high = re.search(rf"N½ is at most {NUM}", note)
    return (num(low.group(1)) if low else None), (num(high.group(1)) if high else None)


def side(cell) -> str | None:
    lo, hi = cell.get("ci_low"), cell.get("ci_high")
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    return "below" if hi < 0.5 else "above" if lo > 0.5 else "holds"


def close(a: float, b: float) -> bool:
    return abs(a - b) <= max(0.5, 5e-3 * abs(b))  # notes round to 3 significant digits from 1e6


def check_note(note: str, cells: list[dict]) -> tuple[float | None, float | None]:
    """Assert that ``note``'s claims are supported by ``cells`` and that it misses none."""
    low, high = claims(note)
    below = [c["n"] for c in cells if side(c) == "below"]
    above = [c["n"] for c in cells if side(c) == "above"]
    for word in ("p̂ stays below", "p̂ is above", "already at the smallest"):
        assert word not in note, note  # point estimates are never evidence
    if low is not None:
        assert any(close(low, n) for n in below), (note, cells)
        assert close(low, max(below)), (note, cells)
    else:
        assert not below or (above and max(below) >= min(above)), (note, cells)
    if high is not None:
        assert any(close(high, n) for n in above), (note, cells)
        assert close(high, min(above)), (note, cells)
    else:
        assert not above or (below and max(below) >= min(above)), (note, cells)
    if below and above and max(below) >= min(above):
        assert "contradict" in note, note
    return low, high


def cell(n, p_hat, lo, hi):
    return {"n": n, "p_hat": p_hat, "ci_low": lo, "ci_high": hi}


HAND = {
    "one cell, p̂ above 1/2, interval holds it": [cell(277, 0.505, 0.473, 0.537)],
    "one cell, p̂ below 1/2, interval holds it": [cell(62, 0.495, 0.442, 0.549)],
    "one cell exactly at 1/2": [cell(10, 0.5, 0.4, 0.6)],
    "one cell wholly above": [cell(24971, 0.56, 0.52, 0.60)],
    "one cell wholly below": [cell(300, 0.2, 0.15, 0.25)],
    "all holding": [cell(100, 0.47, 0.40, 0.54), cell(200, 0.53, 0.46, 0.60)],
    "below then holding": [cell(10, 0.1, 0.05, 0.2), cell(100, 0.48, 0.40, 0.56), cell(200, 0.49, 0.41, 0.57)],
    "holding then above": [cell(10, 0.52, 0.45, 0.6), cell(100, 0.8, 0.7, 0.9)],
    "below, holding, above": [cell(10, 0.1, 0.05, 0.2), cell(50, 0.51, 0.4, 0.6), cell(500, 0.9, 0.8, 0.95)],
    "below then above, nothing between": [cell(10, 0.1, 0.05, 0.2), cell(500, 0.9, 0.8, 0.95)],
    "all below": [cell(10, 0.0, 0.0, 0.01), cell(20, 0.3, 0.2, 0.4)],
    "all above": [cell(10, 0.7, 0.6, 0.8), cell(20, 0.9, 0.8, 0.95)],
    "contradicting monotonicity": [cell(10, 0.8, 0.7, 0.9), cell(500, 0.2, 0.1, 0.3)],
    "touching 1/2 from below": [cell(10, 0.4, 0.3, 0.5)],
    "touching 1/2 from above": [cell(10, 0.6, 0.5, 0.7)],
    "large N (3 significant digits)": [cell(1.23456e7, 0.2, 0.1, 0.3), cell(4.5e9, 0.52, 0.45, 0.6)],
    "undecided cells among others": [cell(10, None, None, None), cell(20, 0.3, 0.2, 0.4)],
    "no interval (NaN)": [cell(10, 0.4, math.nan, math.nan), cell(30, 0.55, 0.45, 0.65)],
}


@pytest.mark.parametrize("name", list(HAND))
def test_hand_made_curves(name):
    cells = HAND[name]
    note = reason_from_cells(cells)
    check_note(note, cells)
    # the same note through the thresholds row's monotone bounds plus the cells
    decided = [c for c in cells if side(c) is not None]
    below = [c["n"] for c in decided if side(c) == "below"]
    above = [c["n"] for c in decided if side(c) == "above"]
    row = {"n_half": None, "n_half_low": max(below, default=0.0), "n_half_high": min(above, default=math.inf)}
    assert no_n_half_reason(row, cells) == note


def test_the_issue_example_says_either_side():
    note = reason_from_cells([cell(277, 0.505, 0.473, 0.537)])
    assert claims(note) == (None, None)
    assert "277" in note and "either side" in note and "0.473" in note


def test_no_cells_and_no_bounds():
    assert reason_from_cells([]) == "no decided trials yet"
    assert reason_from_cells([cell(10, None, None, None)]) == "no decided trials yet"
    assert "no 99% interval" in reason_from_cells([cell(10, 0.4, None, None)])
    assert no_n_half_reason({"n_half": None, "n_half_low": 0.0, "n_half_high": math.inf}) is None
    assert no_n_half_reason({"n_half": 120.0, "n_half_low": 100.0, "n_half_high": 150.0}, []) is None


def test_bounds_alone_are_stated_without_cells():
    low, high = claims(no_n_half_reason({"n_half": None, "n_half_low": 40.0, "n_half_high": math.inf}))
    assert (low, high) == (40.0, None)
    low, high = claims(no_n_half_reason({"n_half": None, "n_half_low": 0.0, "n_half_high": 900.0}))
    assert (low, high) == (None, 900.0)


def simulate(rng, n_grid, n_half_true, slope, sets, k):
    """Cells of one curve from p(N) = logistic(slope * ln(N / n_half_true)), clustered by set."""
    cells = []
    for n in n_grid:
        p = 1 / (1 + math.exp(-slope * math.log(n / n_half_true)))
        # per-set probabilities vary around p (queries sharing a training set are correlated)
        per_set = rng.beta(p * 8 + 1e-9, (1 - p) * 8 + 1e-9, size=sets)
        y = rng.binomial(k, per_set)
        m = np.full(sets, k)
        lo, hi, deff = stats.clustered_interval(y, m)
        cells.append({"n": float(n), "p_hat": float(y.sum() / m.sum()), "ci_low": float(lo),
                      "ci_high": float(hi), "y": int(y.sum()), "m": int(m.sum()), "deff": float(deff),
                      "reps": sets})
    return cells


def test_simulated_curves_claims_are_supported_and_hold_for_the_true_n_half():
    rng = np.random.default_rng(20261206)
    checked = wrong = claimed = 0
    for case in range(400):
        n_half_true = float(10 ** rng.uniform(1, 5))
        shape = case % 4
        if shape == 0:    # one size near the true N½ (like the distance-gaussian preset)
            grid = [round(n_half_true * 10 ** rng.uniform(-0.05, 0.05))]
        elif shape == 1:  # sizes all below
            grid = sorted(round(n_half_true * 10 ** -rng.uniform(0, 1.5)) for _ in range(3))
        elif shape == 2:  # sizes all above
            grid = sorted(round(n_half_true * 10 ** rng.uniform(0, 1.5)) for _ in range(3))
        else:             # two sizes around it, close
            grid = sorted({round(n_half_true * 10 ** rng.uniform(-0.2, 0.2)) for _ in range(2)})
        grid = [max(2, g) for g in grid]
        cells = simulate(rng, grid, n_half_true, slope=float(rng.uniform(0.8, 3)), sets=int(rng.integers(4, 30)),
                         k=int(rng.integers(5, 60)))
        fit = fit_n_half([c["n"] for c in cells], [c["y"] for c in cells], [c["m"] for c in cells],
                         [c["deff"] for c in cells], [c["reps"] for c in cells])
        if fit["n_half"] is not None:
            continue
        note = no_n_half_reason({"n_half": None, "n_half_low": fit["n_half_low"],
                                 "n_half_high": fit["n_half_high"]}, cells)
        low, high = check_note(note, cells)
        checked += 1
        if low is not None or high is not None:
            claimed += 1
            if (low is not None and not n_half_true > low * (1 - 5e-3)) or \
                    (high is not None and not n_half_true <= high * (1 + 5e-3)):
                wrong += 1
    print(f"simulated: {checked} curves without a fitted N½, {claimed} with a claim, {wrong} wrong")
    assert checked >= 200 and claimed >= 100
    assert wrong <= max(3, 0.03 * claimed), (wrong, claimed)


def test_a_real_run_read_by_query_thresholds(tmp_path, capsys):
    """Gaussian d = 3 at its exact N½ (27.3) and just above; d = 6 far below its N½ (277): both notes checked."""
    out = str(tmp_path / "res")
    assert main(["run", "--serial", "--distribution", "gaussian", "--dims", "3,6", "--sizes", "27,30",
                 "--trials", "300", "--queries-per-set", "30", "--seed", "5", "--no-progress",
                 "--out", out]) == 0
    capsys.readouterr()
    assert main(["query", out, "--format", "csv"]) == 0
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    cells = {}
    for r in rows:
        cells.setdefault(int(r["d"]), []).append(
            cell(float(r["n"]), float(r["p_hat"]), float(r["ci_low"]), float(r["ci_high"])))
    assert main(["query", out, "--thresholds"]) == 0
    notes = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("# no N_half for")]
    assert len(notes) == 2, notes
    for line in notes:
        d = int(re.search(r"d = (\d+):", line).group(1))
        check_note(line.split(": ", 1)[1], cells[d])
