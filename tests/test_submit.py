"""`mc-hull submit/status/logs/stop` against a real single-node Ray head started here.

The head is `ray start --head --block` in its own process group, bound to
loopback for the dashboard/job API, with free ports everywhere; teardown kills
exactly its processes (never `ray stop`).  Token authentication stays on: the
client reads ~/.ray/auth_token like any other client.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import duckdb
import pytest

from mc_hull.cli import main
from mc_hull.runs.runner import execute
from mc_hull.spec import Spec
from mc_hull.distributed.submit import submission_id

pytestmark = pytest.mark.ray

REPO = Path(__file__).resolve().parents[1]
SPEC_TOML = """distribution = "cube"
dims = [2, 3]
sizes = [5, 40]
trials = 60
queries_per_set = 20
seed = 3
shard_trials = 40
solver = "lp"
"""
COLUMNS = "distribution, d, n, run_id, replicate, query, inside, status, method, certificate_value"


def free_ports(k: int) -> list[int]:
    socks = [socket.socket() for _ in range(k)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


@pytest.fixture(scope="module")
def head():
    """A Ray head on this machine; yields the job API URL; killed by process id at the end."""
    gcs, dash, agent, client = free_ports(4)
    temp = tempfile.mkdtemp(prefix="mcr", dir="/tmp")  # short: Unix socket paths are limited
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    cmd = ["ray", "start", "--head", "--block", "--port", str(gcs), "--dashboard-host", "127.0.0.1",
           "--dashboard-port", str(dash), "--dashboard-agent-listen-port", str(agent),
           "--ray-client-server-port", str(client), "--num-cpus", "2", "--temp-dir", temp,
           "--disable-usage-stats"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    url = f"http://127.0.0.1:{dash}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/version", timeout=2)
                break
            except urllib.error.HTTPError:  # 401: up, and token authentication is on
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the Ray head did not start")
                time.sleep(0.5)
        yield url
    finally:
        pids = descendants(proc.pid)
        for pid in [proc.pid, *pids]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(timeout=30)
        shutil.rmtree(temp, ignore_errors=True)


def rows(out):
    return duckdb.sql(f"""SELECT {COLUMNS} FROM read_parquet('{out}/**/*.parquet',
        hive_partitioning = true) ORDER BY d, n, replicate, query""").fetchall()


def test_job_api_requires_the_token_and_is_on_loopback(head):
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{head}/api/jobs/", timeout=5)
    assert err.value.code == 401


def test_submit_runs_to_completion_and_matches_a_local_run(head, tmp_path, capsys, monkeypatch):
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(SPEC_TOML)
    spec = Spec.from_dict(__import__("tomllib").loads(SPEC_TOML))
    out = tmp_path / "cluster-out"
    monkeypatch.chdir(REPO)  # the working directory uploaded with the job
    code = main(["submit", str(spec_file), "--address", head, "--out", str(out)])
    captured = capsys.readouterr()
    job = submission_id(spec, str(out))
    assert code == 0, captured.err
    assert captured.out.strip().endswith(job) and "SUCCEEDED" in captured.err
    local = tmp_path / "local"
    execute(spec, str(local), backend="serial", progress=False)
    assert rows(out) == rows(local) and len(rows(out)) == spec.planned_trials

    # Same spec, same --out: found, not submitted twice.
    assert main(["submit", str(spec_file), "--address", head, "--out", str(out), "--no-wait"]) == 0
    err = capsys.readouterr().err
    assert "already submitted" in err and "SUCCEEDED" in err
    assert main(["status", job, "--address", head]) == 0
    assert capsys.readouterr().out.startswith(f"{job}: SUCCEEDED")
    assert main(["logs", job, "--address", head]) == 0
    assert "done in" in capsys.readouterr().out
    assert main(["stop", job, "--address", head]) == 0
    assert "already ended" in capsys.readouterr().err
    assert main(["status", "mc-hull-nope", "--address", head]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no job mc-hull-nope" in err


def test_plain_ray_job_submit_works_too(head, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "spec.toml").write_text(SPEC_TOML.replace("seed = 3", "seed = 4"))
    out = tmp_path / "plain-out"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token"}
    proc = subprocess.run(
        ["ray", "job", "submit", "--address", head, "--working-dir", str(work), "--",
         "mc-hull", "run", "spec.toml", "--out", str(out), "--no-progress", "--format", "csv"],
        capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "succeeded" in (proc.stdout + proc.stderr).lower()
    assert len(rows(out)) == 4 * 60


def test_stop_then_retry_resumes_under_a_new_attempt_id(head, tmp_path, capsys, monkeypatch):
    toml = ('distribution = "gaussian"\ndims = [6]\nsizes = [300]\ntrials = 400\n'
            'queries_per_set = 25\nseed = 8\nsolver = "lp"\nshard_trials = 25\n')
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(toml)
    spec = Spec.from_dict(__import__("tomllib").loads(toml))
    out = tmp_path / "out"
    job = submission_id(spec, str(out))
    monkeypatch.chdir(tmp_path)  # a tiny working directory
    args = ["submit", str(spec_file), "--address", head, "--out", str(out)]
    assert main([*args, "--no-wait"]) == 0
    from mc_hull.distributed.submit import client

    cl = client(head)
    deadline = time.monotonic() + 120
    while not list(out.rglob("*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert main(["stop", job, "--address", head]) == 0
    deadline = time.monotonic() + 60
    while str(cl.get_job_status(job)) not in ("STOPPED", "FAILED", "SUCCEEDED") and time.monotonic() < deadline:
        time.sleep(0.5)
    status = str(cl.get_job_status(job))
    capsys.readouterr()
    # Without --retry the stopped job is only shown; with it a new attempt resumes.
    assert main([*args, "--no-wait"]) in (0, 1)
    assert "already submitted" in capsys.readouterr().err
    assert main([*args, "--retry"]) == 0
    captured = capsys.readouterr()
    if status == "STOPPED":
        assert captured.out.strip().splitlines()[-1] == f"{job}-2"
        assert "already committed" in captured.out + captured.err
    local = tmp_path / "local"
    execute(spec, str(local), backend="serial", progress=False)
    assert rows(out) == rows(local)


ADAPTIVE_TOML = """distribution = "gaussian"
dims = [2, 3]
trials = 60
queries_per_set = 20
seed = 11
solver = "lp"
shard_trials = 20
target_halfwidth = 0.2
max_trials = 240

[grid]
2 = [5, 20]
3 = [8]
"""


def test_submit_ships_the_spec_itself_grid_and_adaptive_fields(head, tmp_path, capsys, monkeypatch):
    """A spec using grid, target_halfwidth and max_trials submits as it is; same rows as `mc-hull run SPEC`."""
    spec_file = tmp_path / "adaptive.toml"
    spec_file.write_text(ADAPTIVE_TOML)
    out, local = tmp_path / "job-out", tmp_path / "local"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MC_HULL_PROGRESS_SECONDS", "0.05")  # forwarded to the job: progress lines in its log
    assert main(["submit", str(spec_file), "--address", head, "--out", str(out), "--no-wait"]) == 0
    captured = capsys.readouterr()
    job = captured.out.strip().splitlines()[-1]
    assert f"mc-hull status {job} --address {head}" in captured.err  # the hint keeps --address
    from mc_hull.distributed.submit import client, follow

    assert follow(client(head), job, log=open(os.devnull, "w"), out=open(os.devnull, "w"),
                  timeout=240) == "SUCCEEDED"
    capsys.readouterr()
    assert main(["logs", job, "--address", head]) == 0
    text = capsys.readouterr().out
    assert "adaptive:" in text and "done in" in text
    assert re.search(r"mc-hull: run \w+: [\d,]+ of [\d,]+ trials \(\d+%[^)]*\), [\d,.]+ trials/s, ETA", text), text
    assert main(["run", str(spec_file), "--serial", "--no-progress", "--out", str(local), "--format", "csv"]) == 0
    assert rows(out) == rows(local) and len(rows(out)) > 3 * 60


PANELS_TOML = """trials = 60
queries_per_set = 20
seed = 11
shard_trials = 60
[[panels]]
name = "a"
distribution = "gaussian"
dims = "2..3"
sizes = [5, 20]
[[panels]]
name = "b"
title = "ball"
distribution = "ball"
dims = [2]
sizes = [8]
"""


def test_a_multi_panel_file_submits_like_it_runs(head, tmp_path, capsys, monkeypatch):
    """Everything `mc-hull run SPEC` accepts can be submitted: a [[panels]] file (like paper-fig1) too."""
    spec_file = tmp_path / "panels.toml"
    spec_file.write_text(PANELS_TOML)
    out, local = tmp_path / "job-out", tmp_path / "local"
    monkeypatch.chdir(tmp_path)
    assert main(["submit", str(spec_file), "--address", head, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "SUCCEEDED" in captured.err and "2 panels" in captured.out + captured.err
    assert main(["run", str(spec_file), "--serial", "--no-progress", "--out", str(local), "--format", "csv"]) == 0
    assert rows(out) == rows(local) and len(rows(out)) == 2 * 2 * 60 + 60
