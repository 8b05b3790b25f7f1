"""The README's raw readers (DuckDB and pyarrow), run verbatim on every kind of directory mc-hull writes.

The snippet is taken from README.md itself, so the README cannot drift from what works: a
directory written by `run`, one written by `run` and `hull-test`, and one holding only
`hull-test` results (where a bare DuckDB glob over `distribution=*` finds no file and fails).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import numpy as np
import pytest

from mc_hull.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def snippet() -> str:
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    (block,) = [b for b in blocks if "import glob, duckdb" in b and "pyarrow.dataset" in b]
    return block


def write(kind: str, root: Path) -> None:
    out = str(root / "results")
    if kind in ("run", "both"):
        assert main(["run", "--serial", "--distribution", "gaussian", "--dims", "2,3", "--sizes", "5,20",
                     "--trials", "40", "--queries-per-set", "20", "--no-progress", "--out", out]) == 0
    if kind in ("hull-test", "both"):
        rng = np.random.default_rng(0)
        np.save(root / "tr.npy", rng.standard_normal((60, 3)))
        np.save(root / "te.npy", rng.standard_normal((15, 3)))
        assert main(["hull-test", "--train", str(root / "tr.npy"), "--test", str(root / "te.npy"), "--serial",
                     "--out", out]) == 0


@pytest.mark.parametrize("kind", ["run", "both", "hull-test"])
def test_the_readers_work_verbatim(kind, tmp_path, capsys, monkeypatch):
    write(kind, tmp_path)
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(snippet(), "README.md", "exec"), scope)
    table = scope["table"]
    if kind == "hull-test":
        assert scope["files"] == [] and table.num_rows == 0 and "trials" not in printed.getvalue()
    else:
        # 2 dims x 2 sizes x 40 trials, the hull-test files (.pq under _hulltest) never read
        assert table.num_rows == 160 and len(scope["files"]) >= 4
        assert "trials" in printed.getvalue() and "gaussian" in printed.getvalue()
        assert not any(os.sep + "_" in f for f in scope["files"])


def test_reproduce_the_paper_needs_only_the_quickstart_install():
    """`pip install -e .` (the Quickstart's first command) brings what `hull-test --preset paper-digits` imports."""
    import tomllib

    project = tomllib.loads((README.parent / "pyproject.toml").read_text())["project"]
    base = {re.split(r"[<>=\[ ;]", dep, maxsplit=1)[0].lower() for dep in project["dependencies"]}
    assert "scikit-learn" in base
    text = README.read_text()
    quick = text[text.index("## Quickstart"):text.index("## Reproduce the paper")]
    paper = text[text.index("## Reproduce the paper"):text.index("## Outside, but how far?")]
    assert "pip install -e ." in quick and "hull-test --preset paper-digits" in paper
    assert "mc-hull[data]" not in text
