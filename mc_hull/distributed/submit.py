"""Submit a spec to a Ray cluster as a Ray job, and follow it: a thin layer over JobSubmissionClient.

The submission id is derived from the spec hash and the output location, so
submitting the same spec to the same ``--out`` twice finds the first job instead
of starting a second one.  The job's entrypoint is ``mc-hull run --spec-json JSON``
carrying the validated spec itself (grid, target_halfwidth and max_trials included),
so the job runs exactly the spec that was checked here, with the same run id and rows,
and does not depend on the spec file being inside the uploaded working directory.
The Ray job client itself lives in :mod:`mc_hull.distributed.pool` (the only module importing Ray).

Token authentication (on by default in Ray >= 2.60) is used as Ray resolves it:
``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from ..errors import McHullError
from ..spec import Spec
from ..store import is_uri, local_path

#: Default job API address: the dashboard on this machine (never a public interface).
DEFAULT_ADDRESS = "http://127.0.0.1:8265"
#: Paths never uploaded with the working directory.
EXCLUDES = [".git", ".venv", "venv", "__pycache__", "*.pyc", "results", "*.parquet",
            "node_modules", ".pytest_cache", ".mypy_cache", "*.egg-info"]
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
#: A runner's progress line (mc_hull.runs.runner.Progress): ``mc-hull: run ID: 1,200 of 8,000 trials (15%...``.
_PROGRESS_LINE = re.compile(r"mc-hull: .+: [\d,]+ of [\d,]+ \w+s \(\d+%")


class SubmitError(McHullError):
    """The job API cannot be reached, refuses the request, or the job does not exist."""


def submission_id(spec, out: str) -> str:
    """``mc-hull-<run_id>-<8 hex of the output location>``: one job per (spec, out).

    ``spec`` is a Spec, or a list of :class:`~mc_hull.spec.Panel` (a multi-panel file), whose id
    is a hash of its panels' run ids.
    """
    digest = hashlib.sha256(canonical_out(out).encode()).hexdigest()[:8]
    return f"mc-hull-{_run_id(spec)}-{digest}"


def _run_id(spec) -> str:
    if isinstance(spec, Spec):
        return spec.run_id
    return hashlib.sha256(" ".join(p.spec.run_id for p in spec).encode()).hexdigest()[:12]


def spec_document(spec) -> str:
    """The JSON document ``mc-hull run --spec-json`` runs: a spec, or ``{"panels": [...]}``."""
    if isinstance(spec, Spec):
        return spec.to_json()
    panels = [{"name": p.name, "title": p.title, **p.spec.to_dict()} for p in spec]
    return json.dumps({"panels": panels}, sort_keys=True, separators=(",", ":"))


def canonical_out(out: str) -> str:
    """A URI as given; a local path made absolute (the job runs in another directory)."""
    return str(out) if is_uri(out) else local_path(out)


def run_arguments(spec, out: str) -> list[str]:
    """``mc-hull run`` arguments that run exactly ``spec`` (or panels, as JSON) and write to ``out``."""
    return ["mc-hull", "run", "--spec-json", spec_document(spec), "--out", canonical_out(out)]


def entrypoint(spec, out: str) -> str:
    return shlex.join(run_arguments(spec, out))


def check_address(address: str | None) -> str:
    """The job API address (http[s]://host:port); warns when a token would cross the network in clear."""
    address = address or os.environ.get("RAY_API_SERVER_ADDRESS") or DEFAULT_ADDRESS
    parsed = urlparse(address)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise SubmitError(f"--address: expected the job API URL like http://HEAD:8265, got {address!r}")
    if parsed.scheme == "http" and parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
        print(f"mc-hull: warning: {address} is plain HTTP off this machine: the auth token is sent in "
              "clear; prefer an SSH tunnel or `kubectl port-forward` to 127.0.0.1", file=sys.stderr)
    return address


def _enable_token() -> None:
    """Send Ray's auth token when one is available locally (Ray reads it itself)."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or os.path.isfile(path):
        os.environ["RAY_AUTH_MODE"] = "token"


def _token() -> str | None:
    """The auth token as Ray resolves it (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token), if any."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"].strip()
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    try:
        return Path(path).read_text().strip() or None
    except OSError:
        return None


def _one_line(exc: Exception) -> str:
    text = str(exc).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    # Ray's HTTP errors embed a server traceback: keep its first and last meaningful lines.
    if len(lines) > 1:
        text = f"{lines[0].rstrip(':')}: {lines[-1].strip()}"
    return text[:400]


def client(address: str | None):
    """A JobSubmissionClient for ``address``; SubmitError (one line) if it cannot connect."""
    address = check_address(address)
    _enable_token()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from .pool import job_client

    try:
        return job_client(address, token=_token())
    except Exception as exc:  # ConnectionError, auth failures, version mismatch
        raise SubmitError(f"cannot reach the Ray job API at {address}: {_one_line(exc)}") from None


def _call(fn, *args, job: str | None = None, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        text = str(exc)
        if job and ("does not exist" in text or "404" in text):
            raise SubmitError(f"no job {job} at this address") from None
        raise SubmitError(_one_line(exc)) from None


def describe(cl, job: str) -> str:
    """``<id>: <STATUS> (<message>)`` for one job."""
    info = _call(cl.get_job_info, job, job=job)
    status = getattr(info.status, "value", str(info.status))
    message = f" ({info.message})" if getattr(info, "message", None) else ""
    return f"{job}: {status}{message}"


def _exists(cl, job: str):
    try:
        return cl.get_job_info(job)
    except Exception as exc:  # noqa: BLE001 - only "does not exist" means free
        if "does not exist" in str(exc) or "404" in str(exc):
            return None
        raise SubmitError(_one_line(exc)) from None


def submit(spec, out: str, *, address: str | None = None, working_dir: str | None = ".",
           wait: bool = True, retry: bool = False, log=None, cl=None) -> tuple[str, str]:
    """Submit ``spec`` (a Spec, or a list of Panels) as a Ray job writing to ``out``.

    Returns (submission id, final or current status).

    If a job with the same id exists it is not submitted again: its status is
    shown (and followed when ``wait``).  ``retry`` submits a new attempt
    (``<id>-2``, ``-3``, ...) when the existing one failed or was stopped; the
    new attempt resumes from the shards already committed in ``out``.
    """
    log = log or sys.stderr
    cl = cl or client(address)      # ``cl``: a client the caller already made (one connection, one warning)
    base = submission_id(spec, out)
    job, attempt = base, 1
    while True:
        info = _exists(cl, job)
        if info is None:
            break
        status = getattr(info.status, "value", str(info.status))
        if retry and status in ("FAILED", "STOPPED"):
            attempt += 1
            job = f"{base}-{attempt}"
            continue
        print(f"mc-hull: job {job} was already submitted for this spec and --out; not submitting "
              f"again: {describe(cl, job)}", file=log)
        return job, (follow(cl, job, log=log) if wait else status)
    if working_dir is not None and not os.path.isdir(working_dir):
        raise SubmitError(f"--working-dir: not a directory: {working_dir}")
    runtime_env = {"env_vars": dict(_worker_env())}
    if working_dir is not None:
        runtime_env.update(working_dir=working_dir, excludes=EXCLUDES)
    command = entrypoint(spec, out)
    _call(cl.submit_job, entrypoint=command, submission_id=job, runtime_env=runtime_env,
          metadata={"mc_hull_run_id": _run_id(spec),
                    "mc_hull_spec_hash": hashlib.sha256(spec_document(spec).encode()).hexdigest()})
    print(f"mc-hull: submitted job {job}: {command}", file=log)
    if not wait:
        at = f" --address {shlex.quote(address)}" if address else ""
        print(f"mc-hull: follow it with `mc-hull status {job}{at}` / `mc-hull logs {job}{at}`", file=log)
        return job, "PENDING"
    return job, follow(cl, job, log=log)


def _worker_env() -> dict:
    """Worker settings, plus this shell's ``MC_HULL_*`` settings (memory budget, progress interval)."""
    from .pool import WORKER_ENV

    return {**WORKER_ENV, **{k: v for k, v in os.environ.items() if k.startswith("MC_HULL_")}}


def follow(cl, job: str, *, log=None, out=None, poll: float = 1.0, timeout: float | None = None) -> str:
    """Print the job's log as it grows until the job ends; returns its final status."""
    log = log or sys.stderr
    out = out or sys.stdout
    shown = 0
    end = None if timeout is None else time.monotonic() + timeout
    while True:
        info = _call(cl.get_job_info, job, job=job)
        status = getattr(info.status, "value", str(info.status))
        text = _call(cl.get_job_logs, job, job=job)
        if len(text) > shown:
            out.write(text[shown:])
            out.flush()
            shown = len(text)
        if status in TERMINAL:
            print(f"mc-hull: {describe(cl, job)}", file=log)
            return status
        if end is not None and time.monotonic() > end:
            return status
        time.sleep(poll)


def status(job: str, address: str | None = None) -> str:
    """``<id>: <STATUS>``, then, while the job runs, its latest progress lines (from its log)."""
    cl = client(address)
    text = describe(cl, job)
    if text.split(": ", 1)[-1].startswith("RUNNING"):
        lines = last_progress(_call(cl.get_job_logs, job, job=job))
        if lines:
            text += "\n" + "\n".join(lines)
    return text


def last_progress(log: str) -> list[str]:
    """The last progress line of a run's log and the in-flight unit and warning lines after it."""
    lines = log.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if _PROGRESS_LINE.match(lines[i]):
            tail = [ln for ln in lines[i + 1:] if ln.startswith(("mc-hull:   unit ", "mc-hull: warning: unit "))]
            return [lines[i], *tail]
    return []


def logs(job: str, address: str | None = None) -> str:
    return _call(client(address).get_job_logs, job, job=job)


def stop(job: str, address: str | None = None) -> bool:
    """Ask the job to stop; False when it had already ended."""
    return bool(_call(client(address).stop_job, job, job=job))
