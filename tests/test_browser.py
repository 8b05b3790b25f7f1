"""The dashboard in a real Chromium: `mc-hull dashboard` served on loopback, driven by Playwright."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWS = ["1 · p̂ against N", "2 · p̂ over (d, log N)", "3 · N½ against d", "4 · Run status"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"dashboard exited early with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"dashboard did not answer at {url} within {timeout} s")


def open_dashboard(page, url: str, charts: int, timeout_ms: int = 60_000) -> float:
    """Load ``url``; wait until ``charts`` Vega charts have drawn and the app stopped running.

    Returns the seconds from navigation to that point (first paint of every chart).
    """
    t0 = time.perf_counter()
    page.goto(url, wait_until="domcontentloaded", timeout=timeout_ms)
    wait_ready(page, charts, timeout_ms)
    return time.perf_counter() - t0


def wait_ready(page, charts: int, timeout_ms: int = 60_000) -> None:
    """Wait for ``charts`` drawn Vega charts, the last element, and the app to stop running."""
    page.wait_for_function(
        """(n) => document.querySelectorAll('[data-testid="stVegaLiteChart"]:not(.st-key-mc-hull-vega-preload *) canvas, '
                 + '[data-testid="stVegaLiteChart"]:not(.st-key-mc-hull-vega-preload *) svg.marks').length >= n""",
        arg=charts, timeout=timeout_ms)
    # the last element of the page, then the status widget ("Running...") gone
    page.wait_for_function(
        """() => document.querySelectorAll('[data-testid="stDownloadButton"]').length >= 2""",
        timeout=timeout_ms)
    page.wait_for_function(
        """() => !document.querySelector('[data-testid="stStatusWidget"]')
                 || !/running/i.test(document.querySelector('[data-testid="stStatusWidget"]').innerText)""",
        timeout=timeout_ms)
    page.wait_for_timeout(500)  # let Vega finish its last frame


def serve(out: str, port: int, log=subprocess.DEVNULL) -> subprocess.Popen:
    exe = shutil.which("mc-hull")
    cmd = [exe] if exe else [sys.executable, "-m", "mc_hull"]
    return subprocess.Popen(cmd + ["dashboard", out, "--port", str(port), "--host", "127.0.0.1"],
                            stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))


@contextlib.contextmanager
def dashboard_page(out, log=subprocess.DEVNULL):
    """``(page, url)`` of ``mc-hull dashboard out`` served on loopback, in headless Chromium; closed after."""
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), "Debian chromium is required (apt-get install -y chromium)"
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    proc = serve(str(out), port, log)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/_stcore/health", proc)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                yield browser.new_page(viewport={"width": 1400, "height": 4000}), url
            finally:
                browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def assert_no_error(page) -> str:
    """The page's text, after checking it shows no traceback and no Streamlit exception."""
    text = page.inner_text("body")
    assert "Traceback" not in text and page.locator('[data-testid="stException"]').count() == 0
    return text


@pytest.mark.browser
def test_dashboard_in_chromium(tmp_path, small_spec):
    """Serve a half-finished run, check status, finish the run, Refresh, then check every view."""
    from mc_hull.jobs.plan import plan
    from mc_hull.runs.runner import execute

    out = tmp_path / "results"
    shards = plan(small_spec)
    half = len(shards) // 2
    execute(small_spec, str(out), backend="serial", progress=False, shards=shards[:half])
    with open(tmp_path / "dashboard.log", "wb") as log, dashboard_page(out, log) as (page, url):
        seconds = open_dashboard(page, url, charts=6)
        assert f"{half} / {len(shards)}" in page.inner_text("body")
        # the rest of the run lands; Refresh picks it up (the cache key changes)
        execute(small_spec, str(out), backend="serial", progress=False)
        page.get_by_role("button", name="Refresh").click()
        page.wait_for_function(
            "(t) => document.body.innerText.includes(t)", arg=f"{len(shards)} / {len(shards)}",
            timeout=60_000)
        wait_ready(page, charts=6)
        text = assert_no_error(page)
        assert f"{len(shards)} / {len(shards)}" in text
        for view in VIEWS:
            assert view in text, f"view {view!r} missing"
        assert "5 · Trial audit" in text and "Download the cell table (CSV)" in text
        assert page.locator('[data-testid="stVegaLiteChart"]:not(.st-key-mc-hull-vega-preload *)').count() >= 6
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"))
        print(f"first paint of all charts: {seconds:.2f} s")
        check_digits_page(page, url, out)


def check_digits_page(page, url: str, out) -> None:
    """The digits-sweep page (dashboards/pages/digits.py) draws a stored sweep table."""
    import pyarrow as pa

    from mc_hull.store import SWEEP_SCHEMA, HullTestStore

    rows = [{"reduction": red, "K": k, "dims": k, "n_train": 100, "n_test": 50, "inside": 50 // k,
             "undecided": 0, "fraction": (50 // k) / 50, "ci_low": 0.0, "ci_high": 1.0, "seconds": 0.1,
             "test_id": f"{i:016x}"} for i, (red, k) in enumerate([("crop", 1), ("crop", 4), ("pca", 2)])]
    HullTestStore(str(out)).write_sweep("00000000000000ab", pa.Table.from_pylist(rows, schema=SWEEP_SCHEMA),
                                        {"name": "paper-digits", "finished": "2025-01-01T00:00:00Z"})
    page.goto(url + "/digits", wait_until="domcontentloaded", timeout=60_000)
    page.wait_for_function(
        """() => document.querySelectorAll('[data-testid="stVegaLiteChart"]:not(.st-key-mc-hull-vega-preload *) canvas, '
                 + '[data-testid="stVegaLiteChart"]:not(.st-key-mc-hull-vega-preload *) svg.marks').length >= 1
                 && document.querySelectorAll('[data-testid="stDownloadButton"]').length >= 1""",
        timeout=60_000)
    text = assert_no_error(page)
    assert "Test images inside the training hull" in text and "kept dimensions K" in text
    page.screenshot(path=str(ARTIFACTS / "dashboard-digits.png"))


@pytest.mark.browser
def test_distance_panels_in_chromium(tmp_path):
    """A run with ``measure = "distance"``: the faceted distance panels draw beside the six views."""
    from mc_hull.runs.runner import execute
    from mc_hull.spec import Spec

    out = tmp_path / "results"
    execute(Spec(distribution="gaussian", dims=(2, 3), sizes=(10, 30), trials=100, queries_per_set=20, seed=5,
                 shard_trials=100, measure="distance"), str(out), backend="serial", progress=False)
    with dashboard_page(out) as (page, url):
        open_dashboard(page, url, charts=8)   # the six views' charts and the two distance panels
        text = assert_no_error(page)
        assert "How far outside?" in text and "distance / nn" in text
        page.screenshot(path=str(ARTIFACTS / "dashboard-distance.png"))


@pytest.mark.browser
def test_nested_run_in_chromium(tmp_path):
    """A nested run: the entry-size panel (faceted per d) draws beside the six views, N½ read as the median of T."""
    from mc_hull.jobs.nested import NestedJob
    from mc_hull.runs.runner import execute
    from mc_hull.spec import Spec

    out = tmp_path / "results"
    spec = Spec(distribution="gaussian", dims=(2, 3), sizes=(4, 6, 8, 10, 12, 16, 20, 27, 35, 50, 80), trials=200,
                seed=5, nested=True)
    execute(spec, str(out), backend="serial", progress=False, job=NestedJob(spec))
    with dashboard_page(out) as (page, url):
        open_dashboard(page, url, charts=7)   # the six views' charts and the entry-size panel
        text = assert_no_error(page)
        assert "Nested runs: N½ as the median of the entry size T" in text and "median of T" in text
        page.screenshot(path=str(ARTIFACTS / "dashboard-nested.png"))
