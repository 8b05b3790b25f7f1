"""The embedded Ray of `mc-hull run` listens on loopback only: every listening socket of its process tree."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest

pytestmark = pytest.mark.ray

LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}  # the last: IPv4 loopback on a dual-stack socket
#: 16 shards of ~0.3 s (LP solver): a few seconds of work on 2 actors, long enough to look at the sockets.
RUN = ["run", "--distribution", "gaussian", "--dims", "6", "--sizes", "300", "--trials", "800",
       "--queries-per-set", "25", "--seed", "5", "--solver", "lp", "--shard-trials", "50",
       "--workers", "2", "--no-progress", "--format", "csv"]


def listening(root: psutil.Process) -> dict[tuple[str, int], str]:
    """(address, port) -> process name of every listening TCP socket and bound UDP socket in ``root``'s tree."""
    found = {}
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return found
    for proc in procs:
        try:
            conns = proc.net_connections(kind="inet")
            name = proc.name()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        for c in conns:
            tcp_listen = c.type == 1 and c.status == psutil.CONN_LISTEN  # SOCK_STREAM
            udp_bound = c.type == 2 and not c.raddr  # SOCK_DGRAM, not connected
            if (tcp_listen or udp_bound) and c.laddr:
                found[(c.laddr.ip, c.laddr.port)] = name
    return found


def test_embedded_ray_listens_on_loopback_only(tmp_path):
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "mc_hull", *RUN, "--out", str(tmp_path / "out")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    root = psutil.Process(proc.pid)
    seen: dict = {}
    names_seen: set[str] = set()
    try:
        while proc.poll() is None:
            seen.update(listening(root))
            try:
                names_seen |= {p.name() for p in root.children(recursive=True)}
            except psutil.Error:
                pass
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-3000:]
    assert "backend ray" in err.decode()
    assert "RAY_AUTH_MODE" not in err.decode()  # Ray's opt-out notice is not shown (token auth stays on)
    # The run did start Ray (its GCS and raylet were in the tree) and we saw their sockets.
    assert {"gcs_server", "raylet"} <= names_seen, names_seen
    assert len(seen) >= 3, seen
    public = {addr: name for addr, name in seen.items() if addr[0] not in LOOPBACK}
    assert not public, f"listening beyond loopback: {public}"
    sys.__stderr__.write(f"\n[network] {len(seen)} listening sockets, all on loopback: "
                         f"{sorted(set(seen.values()))}\n")
