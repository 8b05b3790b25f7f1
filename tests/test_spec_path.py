"""One spec path for every face: `mc-hull run` and `mc-hull submit` assemble the same specs.

`submit` is exercised through the job it would ship (:func:`mc_hull.distributed.submit.run_arguments`: the
entrypoint `mc-hull run --spec-json JSON --out URI`), which is parsed and run here like the job
would run it on a cluster; a real job server is in tests/test_submit.py.
"""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

import mc_hull.spec as spec_module
from mc_hull.cli import build_parser, main
from mc_hull.cli.run import build_panels
from mc_hull.cli.submit import load_spec
from mc_hull.errors import SpecError
from mc_hull.spec import Panel, Spec, preset_names
from mc_hull.distributed.submit import run_arguments

NESTED_AUTO = """distribution = "gaussian"
dims = [4]
sizes = "auto"
nested = true
trials = 600
"""


def _panels_run(argv):
    return build_panels(build_parser().parse_args(["run", *argv]))


def _panels_submit(argv, out="/tmp/never-written"):
    """The specs of the job ``mc-hull submit ARGV`` ships, as the job's `mc-hull run` assembles them."""
    shipped = load_spec(build_parser().parse_args(["submit", *argv]))
    job_argv = run_arguments(shipped, out)[2:]          # drop "mc-hull run"
    job = _panels_run(job_argv)
    direct = shipped if isinstance(shipped, list) else [Panel("", "", shipped)]
    assert [p.spec.to_json() for p in job] == [p.spec.to_json() for p in direct]
    return job


def _same(a, b):
    assert [(p.name, p.title, p.spec.run_id) for p in a] == [(p.name, p.title, p.spec.run_id) for p in b]
    assert [p.spec.to_json() for p in a] == [p.spec.to_json() for p in b]


@pytest.mark.parametrize("preset", [p for p in preset_names()])
def test_every_preset_gives_one_experiment_through_run_and_submit(preset):
    _same(_panels_run(["--preset", preset]), _panels_submit(["--preset", preset]))


@pytest.mark.parametrize("flags", [[], ["--trials", "90", "--dims", "2,3"], ["--sizes", "auto", "--dims", "3"],
                                   ["--nested", "--sizes", "auto", "--dims", "2", "--trials", "60"]])
def test_flags_give_one_experiment_through_run_and_submit(flags):
    _same(_panels_run(flags), _panels_submit(flags))


def test_a_nested_auto_spec_file_gives_the_same_forty_sizes_run_id_and_rows(tmp_path):
    path = tmp_path / "nested.toml"
    path.write_text(NESTED_AUTO)
    run, sub = _panels_run([str(path)]), _panels_submit([str(path)])
    _same(run, sub)
    spec = run[0].spec
    assert spec.nested and len(spec.sizes_for(4)) == 40 and max(spec.sizes) < 10**4   # up to p = 0.95
    # the rows: the file run locally, and the job submit ships, run to two directories
    small = tmp_path / "small.toml"
    small.write_text(NESTED_AUTO.replace("trials = 600", "trials = 40"))
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["run", str(small), "--serial", "--no-progress", "--out", str(a)]) == 0
    shipped = load_spec(build_parser().parse_args(["submit", str(small)]))
    assert main(["run", *run_arguments(shipped, str(b))[2:], "--serial", "--no-progress"]) == 0
    ra, rb = _rows(a), _rows(b)
    assert len(ra) == 40 * 40 and ra == rb


def test_a_pilot_pass_grid_is_the_same_through_both_faces(tmp_path):
    """A distribution without an exact curve resolves auto sizes by a pilot pass: keyed, so identical."""
    flags = ["--distribution", "cube", "--dims", "2", "--sizes", "auto", "--trials", "50"]
    run, sub = _panels_run(flags), _panels_submit(flags)
    _same(run, sub)
    assert len(run[0].spec.sizes) >= 8


def test_a_multi_panel_file_with_auto_panels(tmp_path):
    path = tmp_path / "panels.toml"
    path.write_text('trials = 60\nsizes = "auto"\n[[panels]]\nname = "g"\ndims = [2, 3]\n'
                    '[[panels]]\nname = "n"\ndims = [3]\nnested = true\n'
                    '[[panels]]\nname = "fixed"\ndims = [2]\nsizes = [5, 9]\n')
    run, sub = _panels_run([str(path)]), _panels_submit([str(path)])
    _same(run, sub)
    g, n, fixed = (p.spec for p in run)
    assert len(n.sizes_for(3)) == 40 > len(g.sizes_for(3)) and fixed.sizes == (5, 9)


def test_the_spec_is_validated_once_per_panel(monkeypatch, tmp_path):
    calls = []
    real = spec_module.normalise
    monkeypatch.setattr(spec_module, "normalise", lambda data, auto=None: calls.append(1) or real(data, auto))
    path = tmp_path / "nested.toml"
    path.write_text(NESTED_AUTO)
    _panels_run([str(path)])
    assert len(calls) == 1
    calls.clear()
    _panels_run(["--preset", "paper-fig1"])
    assert len(calls) == 3       # three panels, each validated once


def test_auto_sizes_need_a_resolver_and_a_bad_field_is_named_before_any_pilot_pass():
    with pytest.raises(SpecError, match="sizes: 'auto' is resolved"):
        Spec.from_dict({"sizes": "auto"})
    called = []
    with pytest.raises(SpecError, match="^trials"):
        Spec.from_dict({"sizes": "auto", "trials": 0}, auto=lambda f: called.append(f) or {})
    with pytest.raises(SpecError, match="distribution"):
        Spec.from_dict({"sizes": "auto", "distribution": "nope"}, auto=lambda f: called.append(f) or {})
    assert not called
    # the resolver's grid replaces a grid given beside "auto"; K follows the resolved cells
    spec = Spec.from_dict({"sizes": "auto", "dims": [2], "grid": {"2": [3]}}, auto=lambda f: {"2": [5, 50]})
    assert spec.grid == ((2, (5, 50)),) and spec == Spec.from_json(spec.to_json())


def _rows(out):
    rows = []
    for path in sorted(out.rglob("*.parquet")):
        if any(part.startswith((".", "_")) for part in path.relative_to(out).parts):
            continue
        t = pq.read_table(path)
        n = next(int(p[2:]) for p in path.relative_to(out).parts if p.startswith("n="))
        for r in t.drop_columns(["solve_seconds"]).to_pylist():
            rows.append((n, *(repr(r[k]) for k in sorted(r))))
    return sorted(rows)
