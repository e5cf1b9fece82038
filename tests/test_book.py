"""Build the whole book in fast mode, exactly as CI does, and check what it wrote.

The build executes every chapter (`-W` turns a failing cell into an error), so this test is
also the notebook test. It takes a few minutes; skip it with `pytest -m "not book"`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.book


def toc_pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc.get("parts", []):
        pages += [c["file"] for c in part.get("chapters", [])]
    return pages


@pytest.fixture(scope="module")
def built_book(tmp_path_factory):
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


def test_build_succeeds_without_warnings(built_book):
    rc, log, _ = built_book
    warnings = [line for line in log.splitlines() if "WARNING:" in line or "ERROR:" in line]
    assert rc == 0, "book build failed:\n" + "\n".join(warnings[-30:]) + "\n" + log[-3000:]
    assert not warnings, "\n".join(warnings)


def test_every_page_was_written(built_book):
    _, _, html = built_book
    assert (html / "index.html").exists(), "no _build/html/index.html"
    for page in toc_pages():
        assert (html / f"{page}.html").exists(), f"missing page {page}.html"


def test_no_executed_cell_raised(built_book):
    _, log, html = built_book
    assert "CellExecutionError" not in log
    for page in html.rglob("*.html"):
        text = page.read_text(errors="replace")
        assert "Traceback (most recent call last)" not in text, f"traceback in {page.name}"
        assert not re.search(r'class="output (error|traceback)', text), (
            f"error output in {page.name}"
        )


def test_chapters_show_executed_figures(built_book):
    _, _, html = built_book
    page = (html / "book" / "kernel_smoother.html").read_text()
    assert page.count("<img") >= 2, "the kernel smoother chapter should show its figures"
    assert 'id="eq-nw"' in page or "eq-nw" in page
    assert "proof" in page  # sphinx-proof boxes rendered
