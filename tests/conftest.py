"""Shared fixtures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from attnlab._threads import limit_threads


@pytest.fixture
def one_thread():
    """Run a test on one torch thread (tiny models: extra threads only add overhead);
    the previous setting is restored afterwards."""
    with limit_threads(1):
        yield


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def built_book(tmp_path_factory):
    """Build the whole book in fast mode, as CI does, once per session: (rc, log, html)."""
    out = tmp_path_factory.mktemp("book")
    exe = Path(sys.executable).parent / "jupyter-book"
    cmd = [
        str(exe) if exe.exists() else shutil.which("jupyter-book"),
        "build",
        str(ROOT),
        "-W",
        "-n",
        "--keep-going",
        "--path-output",
        str(out),
    ]
    env = {**os.environ, "ATTNLAB_FAST": "1", "PYTHONHASHSEED": "0"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    log = proc.stdout + proc.stderr
    (ROOT / "_build").mkdir(exist_ok=True)
    (ROOT / "_build" / "test-book.log").write_text(log)
    return proc.returncode, log, out / "_build" / "html"
