"""Results on an object store: a real S3 API (moto's server on loopback), written by workers, read back."""

from __future__ import annotations

import os

import duckdb
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

from mc_hull.cli import main
from mc_hull.jobs.plan import plan
from mc_hull.query import cell_estimates
from mc_hull.runs.runner import execute
from mc_hull.spec import Spec
from mc_hull.store import ResultStore

CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
         "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on 127.0.0.1 (an ephemeral port) with an empty bucket; yields its endpoint."""
    from moto.server import ThreadedMotoServer

    saved = {k: os.environ.get(k) for k in CREDS}
    os.environ.update(CREDS)  # before any Ray starts, so embedded workers inherit them
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"{host}:{port}"
    fs = pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", region="us-east-1",
                           allow_bucket_creation=True)
    fs.create_dir("mchull")
    yield endpoint
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def uri(endpoint, prefix):
    return f"s3://mchull/{prefix}?endpoint_override={endpoint}&scheme=http&region=us-east-1"


SPEC = Spec(distribution="gaussian", dims=(2, 3), sizes=(6, 30), trials=40, queries_per_set=20,
            seed=11, shard_trials=20, solver="lp")


def table_rows(table):
    cols = ["distribution", "d", "n", "run_id", "replicate", "query", "inside", "status", "method",
            "certificate_value"]
    return sorted(zip(*(table.column(c).to_pylist() for c in cols)))


def test_serial_run_to_s3_reads_back_and_resumes(s3, tmp_path, capsys):
    out = uri(s3, "serial")
    first = execute(SPEC, out, backend="serial", progress=False)
    assert first.computed_shards == len(plan(SPEC)) == 8
    store = ResultStore(out)
    assert not store.backend.local and store.backend.root == "mchull/serial"
    table = store.trials()
    assert table.num_rows == SPEC.planned_trials
    # The same rows as a local run, read back through pyarrow's S3 filesystem.
    local = tmp_path / "local"
    execute(SPEC, str(local), backend="serial", progress=False)
    ref = ds.dataset(str(local), format="parquet", partitioning="hive").to_table()
    assert table_rows(table) == table_rows(ref)
    # DuckDB reads a registered pyarrow dataset: no httpfs extension involved.
    est = cell_estimates(out).to_pylist()
    assert [(r["d"], r["n"], r["trials"]) for r in est] == [(2, 6, 40), (2, 30, 40), (3, 6, 40), (3, 30, 40)]
    assert est == cell_estimates(str(local)).to_pylist()
    again = execute(SPEC, out, backend="serial", progress=False)
    assert again.skipped_shards == 8 and again.computed_shards == 0
    # No temporary or partial objects were left behind.
    names = [i.base_name for i in store.backend.fs.get_file_info(pafs.FileSelector("mchull/serial", recursive=True))]
    assert not [n for n in names if n.endswith(".tmp") or n.startswith(".")]
    assert main(["query", out, "--format", "csv"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 5


@pytest.mark.ray
def test_ray_workers_write_shards_directly_to_s3(s3, ray_local, tmp_path):
    out = uri(s3, "ray")
    report = execute(SPEC, out, backend="ray", progress=False)
    assert report.computed_shards == 8 and report.trials == SPEC.planned_trials
    got = ResultStore(out).trials()
    local = tmp_path / "local"
    execute(SPEC, str(local), backend="serial", progress=False)
    assert table_rows(got) == table_rows(ds.dataset(str(local), format="parquet", partitioning="hive").to_table())


def test_truncated_object_is_named_by_query_and_recomputed(s3, capsys):
    out = uri(s3, "damaged")
    execute(SPEC, out, backend="serial", progress=False)
    store = ResultStore(out)
    fs = store.backend.fs
    victim = store.backend.where(store.units()[2].location)
    with fs.open_input_stream(victim) as fh:
        body = fh.read()
    with fs.open_output_stream(victim) as fh:
        fh.write(body[: len(body) // 2])
    assert main(["query", out]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and victim in err
    report = execute(SPEC, out, backend="serial", progress=False)
    assert report.computed_shards == 1 and report.quarantined[0].startswith(f"{victim} (")
    moved = [i.path for i in fs.get_file_info(pafs.FileSelector("mchull/damaged/_quarantine", recursive=True))
             if i.is_file]
    assert len(moved) == 1 and moved[0].endswith(".corrupt")
    assert sum(r["trials"] for r in cell_estimates(out).to_pylist()) == SPEC.planned_trials


def test_missing_bucket_is_one_line_exit_2(s3, capsys):
    bad = f"s3://no-such-bucket/x?endpoint_override={s3}&scheme=http&region=us-east-1"
    code = main(["run", "--dims", "2", "--sizes", "5", "--trials", "4", "--serial", "--out", bad,
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--out" in err
