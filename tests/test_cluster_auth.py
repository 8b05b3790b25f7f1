"""`mc-hull run --address HOST:PORT` against a real Ray head with token authentication.

The head is `ray start --head --block --node-ip-address 127.0.0.1` in its own process group,
every port given explicitly, token mode on with a token file of its own (RAY_AUTH_TOKEN_PATH),
so neither ~/.ray/auth_token nor another test's cluster is involved; teardown kills exactly
its process tree (never `ray stop`).  Every client runs with HOME pointing at an empty
directory, so the only token it can find is the one the test gives it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pytest

pytestmark = pytest.mark.ray

REPO = Path(__file__).resolve().parents[1]
RUN = ["--distribution", "cube", "--dims", "2", "--sizes", "5,12", "--trials", "40",
       "--queries-per-set", "20", "--shard-trials", "20", "--seed", "11", "--solver", "lp",
       "--no-progress", "--format", "csv"]


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


def wait_for_gcs(address: str, token: str, proc, seconds: float = 90) -> None:
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    deadline = time.monotonic() + seconds
    while True:
        with grpc.insecure_channel(address) as channel:
            try:
                gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel).GetClusterId(
                    gcs_service_pb2.GetClusterIdRequest(), timeout=2,
                    metadata=[("authorization", f"Bearer {token}")])
                return
            except grpc.RpcError:
                pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("the Ray head did not start")
        time.sleep(0.5)


def wait_for_http(url: str, proc, seconds: float = 90) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:  # 401: up, token authentication on
            return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the Ray head's dashboard did not start")
            time.sleep(0.5)


@pytest.fixture(scope="module")
def cluster():
    """(GCS address, token file, dashboard port) of a token-authenticated loopback head."""
    gcs, dash, agent, client, metrics = free_ports(5)
    temp = tempfile.mkdtemp(prefix="mca", dir="/tmp")  # short: Unix socket paths are limited
    token_file = Path(temp) / "cluster_token"
    token = secrets.token_hex(32)
    token_file.write_text(token)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN_PATH": str(token_file), "PYTHONPATH": str(REPO)}
    env.pop("RAY_AUTH_TOKEN", None)
    cmd = ["ray", "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(gcs),
           "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash),
           "--dashboard-agent-listen-port", str(agent), "--ray-client-server-port", str(client),
           "--metrics-export-port", str(metrics), "--num-cpus", "1", "--temp-dir", temp,
           "--disable-usage-stats"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_for_gcs(f"127.0.0.1:{gcs}", token, proc)
        wait_for_http(f"http://127.0.0.1:{dash}/api/version", proc)  # the head has finished starting
        yield f"127.0.0.1:{gcs}", token_file, dash
    finally:
        for pid in [proc.pid, *descendants(proc.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(timeout=30)
        shutil.rmtree(temp, ignore_errors=True)


def client_env(tmp_path: Path, **extra: str) -> dict:
    """A client environment that can find no token but what ``extra`` gives it."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")}
    env.update(HOME=str(home), PYTHONPATH=str(REPO), RAY_USAGE_STATS_ENABLED="0", **extra)
    return env


def mc_hull(args: list[str], env: dict, timeout: float = 240):
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "mc_hull", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)
    return proc, time.monotonic() - t0


_STARTUP: list[float] = []


def startup_seconds() -> float:
    """Seconds of a refusal that needs no network (a malformed --address): the CLI's own start-up."""
    if not _STARTUP:
        env = client_env(Path(tempfile.mkdtemp(prefix="mcs")))
        times = [mc_hull(["run", "--address", "no-port", *RUN, "--out", "/tmp/unused-mc-hull-out"], env)[1]
                 for _ in range(2)]
        _STARTUP.append(max(times))
    return _STARTUP[0]


def assert_refused(proc, seconds: float, out: Path, *words: str) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "InvalidAuthToken" not in proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    # Starting Python and importing the package takes 1.5-2 s on an idle machine and several times
    # that on a loaded one: what the refusal adds to it must stay under 5 s (ray.init retried for
    # 22 s before); test_the_check_itself_takes_well_under_a_second times the check alone.
    extra = seconds - startup_seconds()
    assert extra < 5, f"refused {extra:.1f} s after an immediate refusal (startup {startup_seconds():.1f} s)"
    assert not out.exists() or not any(out.iterdir()), sorted(p.name for p in out.iterdir())
    return lines[0]


@pytest.mark.parametrize("sizes", ["5,12", "auto"])
def test_no_token_is_refused_at_once_in_one_line_writing_nothing(cluster, tmp_path, sizes):
    address, _, _ = cluster
    out = tmp_path / "out"
    out.mkdir()  # an existing, empty --out stays empty
    args = ["run", "--address", address, *RUN, "--out", str(out)]
    args[args.index("5,12")] = sizes
    proc, seconds = mc_hull(args, client_env(tmp_path))
    line = assert_refused(proc, seconds, out, "token authentication", "no token was found",
                          "auth_token", "RAY_AUTH_TOKEN")
    assert str(tmp_path / "home" / ".ray" / "auth_token") in line  # where it looked


def test_the_check_itself_takes_well_under_a_second(cluster, tmp_path, monkeypatch):
    from mc_hull.distributed import pool as distributed
    from mc_hull.errors import PlanError

    address, _, _ = cluster
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "none"))
    distributed._probe(address, None)  # imports grpc and Ray's generated stubs once
    t0 = time.perf_counter()
    with pytest.raises(PlanError, match="requires token authentication and no token was found"):
        distributed.check_reachable(address)
    assert time.perf_counter() - t0 < 1
    assert "RAY_AUTH_MODE" not in os.environ  # nothing switched on by a refusal


def test_a_wrong_token_is_refused_naming_where_it_came_from(cluster, tmp_path):
    address, _, _ = cluster
    wrong = tmp_path / "wrong_token"
    wrong.write_text(secrets.token_hex(32))
    out = tmp_path / "out"
    proc, seconds = mc_hull(["run", "--address", address, *RUN, "--out", str(out)],
                            client_env(tmp_path, RAY_AUTH_TOKEN_PATH=str(wrong)))
    assert_refused(proc, seconds, out, "token authentication", "refused", str(wrong))


def test_auth_mode_disabled_by_the_user_is_refused_not_retried(cluster, tmp_path):
    address, token_file, _ = cluster
    out = tmp_path / "out"
    proc, seconds = mc_hull(["run", "--address", address, *RUN, "--out", str(out)],
                            client_env(tmp_path, RAY_AUTH_MODE="disabled",
                                       RAY_AUTH_TOKEN_PATH=str(token_file)))
    assert_refused(proc, seconds, out, "token authentication", "RAY_AUTH_MODE=disabled")


def test_a_port_that_is_not_the_gcs_is_refused(cluster, tmp_path):
    _, token_file, dash = cluster
    out = tmp_path / "out"
    proc, seconds = mc_hull(["run", "--address", f"127.0.0.1:{dash}", *RUN, "--out", str(out)],
                            client_env(tmp_path, RAY_AUTH_TOKEN_PATH=str(token_file)))
    assert_refused(proc, seconds, out, "does not answer as a Ray cluster's GCS")


def test_hull_test_with_no_token_is_refused_the_same_way(cluster, tmp_path):
    address, _, _ = cluster
    import numpy as np

    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.normal(size=(30, 3)))
    np.save(tmp_path / "q.npy", rng.normal(size=(5, 3)))
    out = tmp_path / "out"
    proc, seconds = mc_hull(["hull-test", "--train", str(tmp_path / "x.npy"), "--test",
                             str(tmp_path / "q.npy"), "--address", address, "--out", str(out)],
                            client_env(tmp_path))
    assert_refused(proc, seconds, out, "token authentication", "no token was found")


def rows(out: Path):
    return duckdb.sql(f"""SELECT d, n, replicate, query, inside, status FROM read_parquet(
        '{out}/**/*.parquet', hive_partitioning = true) ORDER BY d, n, replicate, query""").fetchall()


@pytest.mark.parametrize("how", ["path", "env"])
def test_the_token_is_found_like_submit_finds_it_and_the_run_joins_the_cluster(cluster, tmp_path, how):
    """RAY_AUTH_MODE unset: the token (file or RAY_AUTH_TOKEN) switches token mode on by itself."""
    address, token_file, _ = cluster
    if how == "path":
        extra = {"RAY_AUTH_TOKEN_PATH": str(token_file)}
    else:
        extra = {"RAY_AUTH_TOKEN": token_file.read_text()}
    out = tmp_path / "out"
    proc, _ = mc_hull(["run", "--address", address, "--workers", "1", *RUN, "--out", str(out)],
                      client_env(tmp_path, **extra))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "backend ray" in proc.stderr and "InvalidAuthToken" not in proc.stderr
    serial = tmp_path / "serial"
    proc, _ = mc_hull(["run", "--serial", *RUN, "--out", str(serial)], client_env(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = rows(out)
    assert len(got) == 2 * 40 and got == rows(serial)
