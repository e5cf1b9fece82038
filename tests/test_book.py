"""Build the whole book in fast mode, exactly as CI does, and check what it wrote.

The build itself is the session fixture ``built_book`` (conftest.py), which
``test_browser.py`` reuses to read the pages in a browser.

The build executes every chapter (`-W` turns a failing cell into an error), so this test is
also the notebook test. It takes a few minutes; skip it with `pytest -m "not book"`.
"""

from __future__ import annotations

import re
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


# ipykernel's shutdown race: the control channel's last "idle" status is sent after the
# kernel's IOPub thread closed its socket. The kernel logs it to stderr as it exits, after
# every cell has run; it says nothing about the book. Only this exact traceback is dropped.
KERNEL_EXIT_RACE = re.compile(
    r"ERROR:tornado\.general:Uncaught exception in ZMQStream callback\n"
    r"Traceback \(most recent call last\):\n(?:[ \t].*\n)+"
    r"zmq\.error\.ZMQError: Socket operation on non-socket\n")


def build_warnings(log: str) -> list[str]:
    """The WARNING/ERROR lines of a build log, less the kernel-exit race above."""
    log = KERNEL_EXIT_RACE.sub("", log)
    return [line for line in log.splitlines() if "WARNING:" in line or "ERROR:" in line]


def test_kernel_exit_race_alone_is_dropped():
    race = ("ERROR:tornado.general:Uncaught exception in ZMQStream callback\n"
            "Traceback (most recent call last):\n"
            '  File "zmqstream.py", line 585, in _log_error\n    f.result()\n'
            "zmq.error.ZMQError: Socket operation on non-socket\n")
    assert build_warnings("ok\n" + race + "done\n") == []
    other = race.replace("Socket operation on non-socket", "Address already in use")
    assert build_warnings(other) == ["ERROR:tornado.general:Uncaught exception in ZMQStream "
                                     "callback"]
    assert build_warnings("x.md:3: WARNING: undefined label\n") == [
        "x.md:3: WARNING: undefined label"]


def test_build_succeeds_without_warnings(built_book):
    rc, log, _ = built_book
    warnings = build_warnings(log)
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


def _linkcheck():
    sys.path.insert(0, str(Path(__file__).parent))
    from _scripts import load_script

    return load_script("linkcheck"), load_script("repoinfo")


def test_internal_links_resolve(built_book):
    """Every relative link and #fragment of the built site names something that exists."""
    rc, _, html = built_book
    assert rc == 0 and (html / "index.html").exists(), "the book did not build"
    lc, _ = _linkcheck()
    problems = lc.internal_problems(html)
    assert not problems, f"{len(problems)} broken internal links:\n" + "\n".join(problems[:40])


def test_external_links_resolve(built_book):
    """External links answer (no 404/410); only where a network is present."""
    _, _, html = built_book
    lc, ri = _linkcheck()
    if not lc.network_available():
        pytest.skip("no network: external links are checked in CI only")
    slug = ri.slug()
    own = (ri.repo_url(), ri.site_url(), f"https://colab.research.google.com/github/{slug}/",
           f"https://mybinder.org/v2/gh/{slug}/")  # exist only once the repository is published
    problems = lc.external_problems(html, ignore=own)
    assert not problems, "\n".join(problems)
