"""Shared fixtures. Browser fixtures: a fresh JupyterLab server per test module
and headless Chromium driven by Playwright (see tests/test_browser.py)."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread for a module's tests: tiny networks gain nothing
    from a second thread, and on a shared 2-core machine two threads per
    process make every step several times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# Debian's Chromium; test tools never download a browser (`playwright install` is not used).
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]
SERVER_START_TIMEOUT = 90


@dataclass
class LabServer:
    url: str
    token: str
    root: Path
    log: Path
    process: subprocess.Popen

    def page_url(self, path: str) -> str:
        # ?reset: a fresh workspace, so notebooks opened by earlier tests are not restored beside this one.
        return f"{self.url}/lab/tree/{path}?reset&token={self.token}"

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _skip_or_fail(reason: str):
    """Skip on a developer's machine; in CI (CI=true) a browser test that
    cannot run is a failure, so a missing browser never turns a red widget green."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI must run the browser tests, but {reason}", pytrace=False)
    pytest.skip(reason)


def _playwright_importable() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


def _browser_available() -> bool:
    return _chromium() is not None and _playwright_importable()


BROWSER_RUNS_NOTEBOOK = "test_browser.py::test_darts_notebook_runs_with_its_dashboard"


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected
def pytest_collection_modifyitems(config, items):
    """Notebook 04 runs top to bottom, every cell checked for errors, in the
    browser test that reads its dashboard; where that test runs too, running
    it again with nbclient is the same work (a minute of the suite): skipped."""
    if not any(item.nodeid.endswith(BROWSER_RUNS_NOTEBOOK) for item in items) or not _browser_available():
        return
    for item in items:
        if item.nodeid.endswith("test_notebook_runs[04_softmax_relaxation_darts]"):
            item.add_marker(pytest.mark.skip(reason=f"run top to bottom by tests/{BROWSER_RUNS_NOTEBOOK}"))


@pytest.fixture(scope="module")
def chromium_path():
    path = _chromium()
    if path is None:
        _skip_or_fail("Chromium is not installed: the browser tests drive Debian's Chromium. "
                      "Install it with `sudo apt-get install chromium` (`make test` does this where it can).")
    if not _playwright_importable():
        _skip_or_fail("the playwright package is missing: pip install -e '.[dev]'")
    return path


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory, chromium_path):
    """A fresh `jupyter lab` on 127.0.0.1 with this environment, its own
    settings, workspaces and runtime dirs (so a notebook never re-attaches to
    an old kernel), a token and a free port; NASEDU_QUICK=1 reaches its kernels."""
    base = tmp_path_factory.mktemp("lab")
    root, settings, workspaces, runtime = (base / n for n in ("root", "settings", "workspaces", "runtime"))
    for d in (root, settings, workspaces, runtime):
        d.mkdir()
    # No "Jupyter news" toast over the notebook.
    notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # Every cell in the DOM: with JupyterLab 4's default windowing, cells out of view are
    # detached, so prompts and outputs below the fold could not be read.
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    token, port = secrets.token_hex(16), _free_port()
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(workspaces),
               JUPYTER_RUNTIME_DIR=str(runtime), NASEDU_QUICK="1", PYTHONUNBUFFERED="1",
               # Chromium shares the 2 cores: two torch threads would spin-wait on each other.
               OMP_NUM_THREADS="1")
    log = base / "jupyterlab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.allow_root=True"]
    with open(log, "wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root)
    server = LabServer(f"http://127.0.0.1:{port}", token, root, log, process)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyter lab exited with code {process.returncode}:\n{server.log_tail()}")
            try:
                with urllib.request.urlopen(f"{server.url}/api/status?token={token}", timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer within {SERVER_START_TIMEOUT} s:\n{server.log_tail()}")
            time.sleep(0.5)
        yield server
    finally:
        process.terminate()  # it shuts its kernels down
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 2200})
    p = context.new_page()
    p.set_default_timeout(60_000)
    try:
        yield p
    finally:
        context.close()
