"""What makes the readers start fast without changing what they show (issue 24, item 11).

`mc-hull query` and the dashboard's server import only what reading a store needs; the dashboard's
launcher answers before it warms up, skips Streamlit's scan for components, and its charts give
Altair channel objects instead of shorthand strings.  Each test asserts behaviour (the same results,
the same specs, the modules left unloaded), never a timing.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def python(code: str) -> str:
    """Run ``code`` in a fresh interpreter on this checkout; its stdout."""
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout


HEAVY = ("scipy.stats", "mc_hull.runs.adaptive", "mc_hull.solvers", "mc_hull.membership", "ray", "streamlit")


def test_reading_a_store_loads_neither_the_solvers_nor_scipy_stats(tmp_path):
    from mc_hull.runs.runner import execute
    from mc_hull.spec import Spec

    execute(Spec(distribution="gaussian", dims=[2, 3], sizes=[6, 12], trials=40, queries_per_set=10, seed=3),
            str(tmp_path), backend="serial", progress=False)
    got = json.loads(python(f"""
import json, sys
from mc_hull.query import views
cells = views.cell_table({str(tmp_path)!r})
views.filter_options({str(tmp_path)!r}, cells)
print(json.dumps({{"rows": cells.num_rows, "loaded": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""))
    assert got == {"rows": 4, "loaded": []}


def test_a_subcommand_imports_only_its_own_module():
    got = json.loads(python("""
import json, sys
from mc_hull.cli import build_parser
build_parser(["query", "somewhere"])
one = sorted(m for m in sys.modules if m.startswith("mc_hull.cli."))
print(json.dumps({"one": one, "heavy": [m for m in ("mc_hull.runs.adaptive", "scipy.stats") if m in sys.modules]}))
"""))
    assert "mc_hull.cli.query" in got["one"]
    assert not {"mc_hull.cli.run", "mc_hull.cli.submit", "mc_hull.cli.hull_test"} & set(got["one"])
    assert got["heavy"] == []


@pytest.mark.parametrize("argv", [[], ["--help"], ["querx"], ["--version"]])
def test_without_a_known_subcommand_every_command_is_registered(argv):
    from mc_hull.cli import build_parser

    sub = next(a for a in build_parser(argv)._actions if a.dest == "command")
    assert {"run", "query", "dashboard", "plot", "submit", "status", "logs", "stop", "hull-test"} <= set(sub.choices)


@pytest.mark.parametrize("name", ["status", "logs", "stop", "hull-test", "plot", "dashboard", "run"])
def test_each_subcommand_parses_when_named_alone(name):
    from mc_hull.cli import build_parser

    sub = next(a for a in build_parser([name])._actions if a.dest == "command")
    assert name in sub.choices


def test_the_public_names_still_resolve():
    import mc_hull

    assert callable(mc_hull.in_hull) and callable(mc_hull.decide) and callable(mc_hull.hull_distance)
    assert mc_hull.Spec.__name__ == "Spec" and set(mc_hull.__all__) <= set(dir(mc_hull))
    from mc_hull import Spec, in_hull  # noqa: F401
    from mc_hull.samplers import KeyedSource, keyed_source, replicate_data  # noqa: F401
    with pytest.raises(AttributeError):
        mc_hull.no_such_name  # noqa: B018


@pytest.mark.parametrize("level", [0.5, 0.9, 0.95, 0.99, 0.999, 1 - 1e-9])
def test_interval_quantiles_equal_scipy_stats(level):
    from scipy.stats import norm, t

    from mc_hull.stats import intervals

    intervals.z_value.cache_clear()
    assert intervals.z_value(level) == pytest.approx(norm.ppf(0.5 + level / 2), rel=1e-14)
    for df in (0.5, 1.0, 2.0, 3.5, 9.0, 99.0, 1e4, 1e9):
        assert intervals.t_value(level, df) == pytest.approx(t.ppf(0.5 + level / 2, df), rel=1e-12)
    assert intervals.t_value(level, np.inf) == intervals.z_value(level)


def test_map_chunked_keeps_order_and_raises_what_a_call_raises():
    from mc_hull.store import base

    items = list(range(103))
    for threads in (1, 2, 8, 200):
        assert base.map_chunked(lambda x: x * x, items, threads) == [x * x for x in items]
    assert base.map_chunked(str, []) == []

    def fail(x):
        if x == 57:
            raise KeyError(x)
        return x

    with pytest.raises(KeyError):
        base.map_chunked(fail, items, 4)


def test_replicate_table_equals_a_sum_per_unit(tmp_path):
    """The one-pass table against a sum per unit and replicate, on units of uneven replicates."""
    from mc_hull.query.cells import replicate_table
    from mc_hull.runs.runner import execute
    from mc_hull.spec import Spec
    from mc_hull.store import ResultStore

    execute(Spec(distribution="ball", dims=[2, 4], sizes=[5, 9, 30], trials=53, queries_per_set=7, seed=11,
                 shard_trials=21), str(tmp_path), backend="serial", progress=False)
    _, units = ResultStore(str(tmp_path)).statuses()
    assert len(units) > 6
    got = {(r["run_id"], r["d"], r["n"], r["replicate"]): (r["trials"], r["inside"], r["undecided"])
           for r in replicate_table(units).to_pylist()}
    want = {}
    for u in units:
        rep = u.replicate
        for r in np.unique(rep):
            s = u.status[rep == r]
            want[(u.entry.run_id, int(u.entry.partition["d"]), int(u.entry.partition["n"]), int(r))] = (
                len(s), int((s == 1).sum()), int((s < 0).sum()))
    assert got == want
    assert replicate_table([]).num_rows == 0


def test_the_manifest_listing_follows_new_and_removed_entries(tmp_path):
    from mc_hull.query import run_ids
    from mc_hull.query.status import location_problem
    from mc_hull.runs.runner import execute
    from mc_hull.spec import Spec

    assert "no shard files" in location_problem(str(tmp_path))
    spec = Spec(distribution="gaussian", dims=[2], sizes=[6], trials=20, queries_per_set=10, seed=1)
    execute(spec, str(tmp_path), backend="serial", progress=False)
    assert location_problem(str(tmp_path)) is None and run_ids(str(tmp_path)) == [spec.run_id]
    for entry in (tmp_path / "_manifest").rglob("*.json"):
        entry.unlink()
    assert "no shard files" in location_problem(str(tmp_path)) and run_ids(str(tmp_path)) == []


def test_typed_channels_give_altairs_own_spec():
    pd = pytest.importorskip("pandas")
    alt = pytest.importorskip("altair")
    sys.path.insert(0, str(ROOT / "dashboards"))
    src = (ROOT / "dashboards" / "app.py").read_text()
    ns: dict = {"__name__": "app_under_test"}
    exec(compile(src[:src.index("def df(table)")], "app.py", "exec"), ns)   # imports, CHANNELS, typed, Chart
    data = pd.DataFrame({"n": [1, 2, 3], "p": [0.1, 0.5, 0.9], "lo": [0.0, 0.4, 0.8], "hi": [0.2, 0.6, 1.0],
                         "d": ["2", "2", "3"]})

    def build(chart):
        x = alt.X("n:Q", scale=alt.Scale(type="log"))
        return alt.layer(
            chart(data).mark_line().encode(x=x, y="p:Q", color="d:N", detail="d:N",
                                           tooltip=["n", "d", alt.Tooltip("p:Q", format=".3f")]),
            chart(data).mark_area().encode(x=x, y="lo:Q", y2="hi:Q", strokeDash="d:N", opacity=alt.value(0.3)),
            chart(data).mark_rule().encode(y=alt.datum(0.5), x2="hi:Q"))

    assert build(ns["Chart"]).to_dict() == build(alt.Chart).to_dict()


def test_the_launcher_waits_for_the_server_and_skips_the_component_scan():
    sys.path.insert(0, str(ROOT / "dashboards"))
    import serve

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        wait = serve.listening(["run", "app.py", "--server.address", "127.0.0.1", "--server.port", str(port)],
                               timeout=10)
        done = threading.Event()
        threading.Thread(target=lambda: (wait(), done.set()), daemon=True).start()
        time.sleep(0.3)
        assert not done.is_set()          # nothing listens yet
        s.listen()
        assert done.wait(5)               # answers once the port accepts connections
    t0 = time.monotonic()
    serve.listening(["--server.port", str(port)], timeout=0.3)()   # never listens: gives up after its timeout
    assert 0.25 < time.monotonic() - t0 < 5
    assert serve.page_open() is False     # no Streamlit runtime in this process

    from streamlit.components.v2.component_manager import BidiComponentManager

    original = BidiComponentManager.discover_and_register_components
    try:
        serve.skip_component_scan()
        assert BidiComponentManager.discover_and_register_components(object()) is None
    finally:
        BidiComponentManager.discover_and_register_components = original


def test_the_served_command_keeps_loopback_and_drops_watchers(tmp_path):
    from mc_hull.cli.dashboard import command

    argv = command(str(tmp_path), 8765, "127.0.0.1")
    joined = " ".join(argv)
    assert argv[1].endswith("serve.py") and argv[-2:] == ["--", str(tmp_path)]
    assert "--server.address 127.0.0.1" in joined and "--server.fileWatcherType none" in joined
    assert "--runner.magicEnabled false" in joined


def sql_entry_sizes(out, run_id=None, d=None):
    """The per-trial bounds in SQL over every decoded row (the query layer's row view), the reference."""
    from mc_hull.query import entry

    con = entry._bounds(str(out), run_id, d)
    table = con.sql("SELECT * FROM bounds ORDER BY distribution, params, d, run_id, replicate, query")
    return table.to_arrow_table().cast(entry._entry_schema())


@pytest.fixture(scope="module")
def nested_store(tmp_path_factory):
    """Two nested runs (Gaussian, seeds 5 and 6; a ball run of uneven K) and an ordinary run in one store."""
    from mc_hull.jobs.nested import NestedJob
    from mc_hull.runs.runner import execute
    from mc_hull.spec import Spec

    out = tmp_path_factory.mktemp("entry") / "out"
    specs = [Spec(distribution="gaussian", dims=(2, 3), sizes=tuple(range(3, 30, 2)), trials=70, queries_per_set=9,
                  seed=5, nested=True),
             Spec(distribution="gaussian", dims=(3,), sizes=(4, 6, 9, 14, 22, 40), trials=50, queries_per_set=20,
                  seed=6, nested=True, shard_trials=20),
             Spec(distribution="ball", dims=(4,), sizes=(5, 8, 13, 21, 34, 60), trials=45, queries_per_set=8,
                  seed=7, nested=True),
             Spec(distribution="gaussian", dims=(2,), sizes=(5, 9), trials=30, queries_per_set=10, seed=8)]
    for spec in specs:
        execute(spec, str(out), backend="serial", progress=False, new_run=True,
                job=NestedJob(spec) if spec.nested else None)
    return out, specs


@pytest.mark.parametrize("digests", [True, False])
def test_entry_sizes_from_statuses_equal_the_sql_over_every_row(nested_store, digests, tmp_path):
    import shutil

    from mc_hull import query
    from mc_hull.query import cells as cells_module

    out, specs = nested_store
    if not digests:   # a store written before digests: every unit decoded
        out = Path(shutil.copytree(out, tmp_path / "copy"))
        for path in (out / "_manifest" / "trials").rglob("*.json"):
            body = json.loads(path.read_text())
            body.pop("digest", None)
            path.write_text(json.dumps(body, sort_keys=True))
    cells_module._LAST_READ.clear()
    got = query.entry_sizes(str(out))
    assert got.num_rows == sum(s.trials * len(s.dims) for s in specs if s.nested)
    assert got.equals(sql_entry_sizes(out))
    assert got["t_high"].null_count > 0 and min(got["t_low"].to_pylist()) == 0
    for run_id, d in ((specs[1].run_id, None), (None, 3), (specs[0].run_id, [2]), (None, [4, 2])):
        assert query.entry_sizes(str(out), run_id=run_id, d=d).equals(sql_entry_sizes(out, run_id, d))
    assert query.entry_sizes(str(out), d=7).num_rows == 0
    with pytest.raises(Exception, match="not a nested run"):
        query.entry_sizes(str(out), run_id=specs[3].run_id)


def test_entry_sizes_refuse_a_damaged_unit(nested_store, tmp_path):
    import shutil

    from mc_hull import query
    from mc_hull.errors import StoreError

    out = Path(shutil.copytree(nested_store[0], tmp_path / "copy"))
    shard = sorted(out.glob("distribution=ball/**/*.parquet"))[0]
    shard.write_bytes(shard.read_bytes()[:-7] + b"\0" * 7)
    with pytest.raises(StoreError, match="SHA-256|bytes"):
        query.entry_sizes(str(out))
