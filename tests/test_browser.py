"""Read every page of the built book in a real browser, as a reader on a phone meets it.

Reuses the fast-mode build of ``test_book.py`` (the session fixture ``built_book``), serves
it on localhost and drives headless Chromium through the DevTools protocol at 390 px
width. MathJax and the widget manager come from the book itself (``_extra/vendor``), so
the test needs no network. Each page must have: no MathJax error, no JavaScript error or
failed resource load, every image loaded, no raw TeX (``$$``, ``\\(``) in its text, its
navigation or its title, no horizontal overflow, and a static figure after every widget.

Run alone against an existing build: ``ATTNLAB_BOOK_HTML=_build/fast/_build/html pytest
tests/test_browser.py``.
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
from pathlib import Path

import pytest

pytestmark = [pytest.mark.book, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Runs in the page after load: waits for MathJax and images, then measures.
CHECK = r"""
(async () => {
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  const views = document.querySelectorAll(
    'script[type="application/vnd.jupyter.widget-view+json"]');
  for (let i = 0; i < 40 && views.length &&
       !document.querySelector('.jupyter-widgets, .widget-container'); i++) await sleep(100);
  await Promise.all(Array.from(document.images).map(img => img.complete ? 0 :
    new Promise(r => { img.onload = img.onerror = r; setTimeout(r, 5000); })));
  await sleep(50);

  const strip = root => {
    const c = root.cloneNode(true);
    c.querySelectorAll('pre, code, script, style, textarea, mjx-container, .cell_input, '
      + '.highlight, .MathJax, .math').forEach(e => e.remove());
    return c.textContent;
  };
  const raw = s => ['$$', '\\(', '\\)', '\\[', '\\]'].filter(t => s.includes(t));
  const nav = Array.from(document.querySelectorAll(
    'nav, .bd-sidebar-primary, .bd-sidebar-secondary, .bd-toc, .prev-next-area'));
  const navText = nav.map(n => n.textContent).join(' ');

  const W = window.innerWidth;
  const wide = [];
  if (document.documentElement.scrollWidth > W + 1) {
    for (const el of document.querySelectorAll('body *')) {
      const r = el.getBoundingClientRect();
      if (r.right > W + 1 && r.width > 0 && wide.length < 5) {
        let p = el.parentElement, clipped = false;
        for (; p; p = p.parentElement) {
          const o = getComputedStyle(p).overflowX;
          if (o === 'auto' || o === 'scroll' || o === 'hidden') { clipped = true; break; }
        }
        if (!clipped) wide.push(el.tagName.toLowerCase() + '.' + String(el.className)
          .slice(0, 60) + ' right=' + Math.round(r.right));
      }
    }
  }

  const cells = Array.from(document.querySelectorAll('div.cell'));
  const noStatic = [];
  cells.forEach((cell, i) => {
    if (!cell.querySelector('script[type="application/vnd.jupyter.widget-view+json"]')) return;
    const after = cells.slice(i + 1, i + 4);
    if (!after.some(c => c.querySelector('img'))) noStatic.push(i);
  });

  return {
    title: document.title,
    mathErrors: Array.from(document.querySelectorAll('mjx-merror, .MathJax_Error'))
      .map(e => (e.getAttribute('data-mjx-error') || e.textContent).slice(0, 80)),
    typeset: document.querySelectorAll('mjx-container').length,
    brokenImages: Array.from(document.images)
      .filter(img => !img.complete || img.naturalWidth === 0).map(img => img.src),
    imagesWithoutAlt: Array.from(document.querySelectorAll('.cell_output img, figure img'))
      // a widget's own live plot is described by the captioned static figure beside it
      .filter(img => !img.closest('.jupyter-widgets, .widget-output'))
      .filter(img => !(img.alt || '').trim() || /\.(png|svg|jpg)$/.test(img.alt))
      .map(img => img.src.slice(0, 40) + '...' + img.src.slice(-40) + ' alt=' + img.alt),
    rawText: raw(strip(document.querySelector('main') || document.body)),
    rawNav: raw(navText).concat(raw(document.title)),
    overflow: document.documentElement.scrollWidth - W,
    wide: wide,
    widgets: views.length,
    widgetsWithoutStaticFigure: noStatic,
  };
})()
"""


def _pages(html: Path) -> list[Path]:
    skip = {"_static", "_sources", "_images", "vendor", "vega"}
    pages = [p for p in html.rglob("*.html")
             if not skip & set(p.relative_to(html).parts) and p.name != "search.html"]
    # index.html only redirects to the first chapter
    return sorted(p for p in pages
                  if 'http-equiv="refresh"' not in p.read_text()[:2000].lower())


@pytest.fixture(scope="module")
def site(request):
    """The built HTML folder, served on a free localhost port: (base URL, pages)."""
    import os

    given = os.environ.get("ATTNLAB_BOOK_HTML")
    if given:
        html = Path(given).resolve()
    else:
        rc, log, html = request.getfixturevalue("built_book")
        if not (html / "index.html").exists():
            pytest.fail("the book build wrote no HTML:\n" + log[-2000:])
    handler = functools.partial(_QuietHandler, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", html, _pages(html)
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest's output readable
        pass


@pytest.fixture(scope="module")
def report(site):
    """Load every page once at phone width; one measurement dict per page."""
    if CHROMIUM is None:
        pytest.skip("needs chromium (make test installs it: `make browser-test`)")
    from _cdp import Browser

    base, html, pages = site
    out = {}
    with Browser(CHROMIUM, width=390, height=844) as b:
        for page in pages:
            rel = page.relative_to(html).as_posix()
            b.goto(base + rel)
            result = b.evaluate(CHECK, timeout=60)
            # Only the book's own resources count: CI has no network, so a link to another
            # site (the Colab badge, say) cannot load there and is not the book's fault.
            # favicon.ico is the browser's own guess; the book has no icon.
            result["errors"] = [e for e in b.errors if not (e.startswith("network:") and (
                base not in e or e.endswith("/favicon.ico")))]
            result["brokenImages"] = [s for s in result["brokenImages"] if s.startswith(base)]
            out[rel] = result
    return out


def _failures(report: dict, key: str) -> dict:
    return {page: r[key] for page, r in report.items() if r[key]}


def test_pages_were_read(report, site):
    _, _, pages = site
    assert len(report) == len(pages) >= 20
    assert sum(r["typeset"] for r in report.values()) > 500, "MathJax typeset almost nothing"


def test_no_mathjax_errors(report):
    assert not _failures(report, "mathErrors")


def test_no_javascript_errors(report):
    assert not _failures(report, "errors"), json.dumps(_failures(report, "errors"), indent=1)


def test_every_image_loads_and_has_alt_text(report):
    assert not _failures(report, "brokenImages"), _failures(report, "brokenImages")
    no_alt = _failures(report, "imagesWithoutAlt")
    assert not no_alt, json.dumps(no_alt, indent=1)


def test_no_raw_tex_in_text_navigation_or_title(report):
    assert not _failures(report, "rawText")
    assert not _failures(report, "rawNav"), {p: report[p]["title"]
                                             for p in _failures(report, "rawNav")}


def test_no_horizontal_overflow_at_phone_width(report):
    over = {p: (r["overflow"], r["wide"]) for p, r in report.items() if r["overflow"] > 1}
    assert not over, json.dumps(over, indent=1)


def test_every_widget_has_a_static_figure(report):
    assert sum(r["widgets"] for r in report.values()) > 0, "no widget was found at all"
    assert not _failures(report, "widgetsWithoutStaticFigure")
