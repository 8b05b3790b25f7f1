"""``mc-hull dashboard DIR``: serve the Streamlit dashboard (loopback by default)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import InputError, StoreError
from ..locations import is_uri, local_path
from .args import _location


def register(sub) -> None:
    p = sub.add_parser("dashboard", help="serve the interactive dashboard for a results directory",
                       description="Serve dashboards/app.py with Streamlit on loopback: p against N, the heatmap, "
                                   "N½ against d, run status, a trial audit and the digits sweeps. It "
                                   "refreshes as shards land; Ctrl-C stops it.")
    p.add_argument("out", metavar="DIR", type=_location("DIR"), help="results directory or URI")
    p.add_argument("--port", type=_port, default=8501, help="TCP port in [1, 65535] (default 8501)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1, loopback only; 0.0.0.0 exposes it)")
    p.set_defaults(func=main)


def _port(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer in [1, 65535], got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be an integer in [1, 65535], got {value}")
    return value


def check_host(host: str, port: int) -> None:
    """InputError (one line) unless ``host`` is an address this machine can listen on."""
    import socket

    if not host.strip():
        raise InputError("--host: must not be empty")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError, ValueError) as exc:
        raise InputError(f"--host: not an address or host name to listen on: {host!r} ({exc})") from None
    for family, kind, proto, _, addr in infos:   # an address of another machine cannot be listened on
        with socket.socket(family, kind, proto) as probe_socket:
            try:
                probe_socket.bind((addr[0], 0, *addr[2:]))
                return
            except OSError as exc:
                why = exc.strerror or str(exc)
    raise InputError(f"--host: cannot listen on {host!r} here ({why}); use an address of this machine, "
                     "e.g. 127.0.0.1 or 0.0.0.0")


def app_path() -> Path:
    """dashboards/app.py of this source tree."""
    path = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"
    if not path.is_file():
        raise InputError(f"dashboard app not found at {path} (install mc_hull from a source checkout: pip install -e .)")
    return path


def command(out: str, port: int, host: str) -> list[str]:
    """The ``streamlit run`` command line for DIR, port and host (through ``dashboards/serve.py``, which
    starts the first page's imports and verified read while the server starts)."""
    return [sys.executable, str(app_path().with_name("serve.py")), "run", str(app_path()),
            "--server.address", host, "--server.port", str(port), "--server.headless", "true",
            "--browser.gatherUsageStats", "false", "--server.runOnSave", "false",
            "--client.toolbarMode", "viewer",  # no Deploy button or developer menu
            "--server.fileWatcherType", "none",  # a served page: no watching of the app's source
            "--runner.magicEnabled", "false",    # the app writes explicitly: no rewriting of its source
            "--", out]


def main(args) -> int:
    if is_uri(args.out):
        # an object store: checked through Arrow's filesystems (a local directory needs only os:
        # the server then starts ~0.2 s sooner, without NumPy and Arrow loaded first)
        from ..store import probe, resolve

        resolve(args.out)
        if probe(args.out) == "file":
            raise StoreError(f"DIR: not a directory: {args.out}")
        out = args.out
    else:
        out = local_path(args.out)
        if os.path.exists(out) and not os.path.isdir(out):
            raise StoreError(f"DIR: not a directory: {args.out}")
    check_host(args.host, args.port)
    argv = command(out, args.port, args.host)
    env = dict(os.environ, MC_HULL_RESULTS=out)
    shown = f"[{args.host}]" if ":" in args.host else args.host   # an IPv6 literal in a URL
    print(f"mc-hull: dashboard for {out} at http://{shown}:{args.port} (Ctrl-C stops it)", file=sys.stderr)
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)  # replace this process: signals reach Streamlit directly
    return 0  # pragma: no cover
