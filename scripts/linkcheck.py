"""Check the links of a built book: a small crawler over the HTML files of ``_build/html``.

Internal links (relative ``href``/``src``) must name a file of the build and, with a
``#fragment``, an element with that id (or name) in it. External links are checked only on
request (``--external``), since they need a network: a 404 or 410 is broken, while time-outs,
rate limits (429) and refusals (403) are not counted, as they say nothing about the link.

Usage:
    python scripts/linkcheck.py _build/html              # internal links
    python scripts/linkcheck.py _build/html --external   # and external ones
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

_ATTRS = {"a": "href", "link": "href", "img": "src", "script": "src", "iframe": "src",
          "source": "src"}
_SKIP_SCHEMES = ("mailto", "javascript", "data", "tel")
# Theme templates copied as they are (their links are Jinja expressions), and page sources.
_NOT_PAGES = ("_static", "_sources")


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for key in ("id", "name"):
            if found.get(key):
                self.ids.add(found[key])
        attr = _ATTRS.get(tag)
        if attr and found.get(attr):
            self.links.append(found[attr])


@cache
def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(errors="replace"))
    return page


def _target(root: Path, page: Path, link: str) -> tuple[Path, str]:
    parts = urlsplit(link)
    rel = unquote(parts.path)
    base = root if rel.startswith("/") else page.parent
    target = (base / rel.lstrip("/")).resolve() if rel else page
    if target.is_dir():
        target = target / "index.html"
    return target, unquote(parts.fragment)


def pages(root: Path) -> list[Path]:
    """The HTML pages of the site (theme templates and sources aside)."""
    return [p for p in sorted(root.rglob("*.html"))
            if not set(p.relative_to(root).parts[:-1]) & set(_NOT_PAGES)]


def internal_problems(root: Path) -> list[str]:
    """``"page: link (why)"`` for each broken internal link under ``root``."""
    root = Path(root).resolve()
    out: list[str] = []
    for page in pages(root):
        for link in _parse(page).links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(_SKIP_SCHEMES):
                continue
            target, fragment = _target(root, page, link)
            where = f"{page.relative_to(root)}: {link}"
            if not target.is_relative_to(root):
                out.append(f"{where} (outside the site)")
            elif not target.exists():
                out.append(f"{where} (no such file)")
            elif fragment and target.suffix == ".html" and fragment not in _parse(target).ids:
                out.append(f"{where} (no element with id {fragment!r})")
    return out


def external_links(root: Path) -> dict[str, list[str]]:
    """``{url: [pages]}`` of the http(s) links under ``root`` (fragments dropped)."""
    root = Path(root).resolve()
    found: dict[str, list[str]] = {}
    for page in pages(root):
        for link in _parse(page).links:
            if urlsplit(link).scheme in ("http", "https"):
                found.setdefault(link.split("#")[0], []).append(str(page.relative_to(root)))
    return found


def status(url: str, timeout: float = 10.0) -> int | None:
    """HTTP status of ``url`` (HEAD, then GET when HEAD is refused); None when unreachable."""
    for method in ("HEAD", "GET"):
        request = urllib.request.Request(url, method=method,
                                         headers={"User-Agent": "attnlab-linkcheck"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            if method == "HEAD" and exc.code in (403, 405, 501):
                continue
            return exc.code
        except (urllib.error.URLError, TimeoutError, OSError):
            return None
    return None


def external_problems(root: Path, ignore: tuple[str, ...] = ()) -> list[str]:
    """Broken external links (404/410) under ``root``; ``ignore``: URL prefixes to skip (the
    book's own site and repository, not published yet when the book is built)."""
    from concurrent.futures import ThreadPoolExecutor

    links = {u: p for u, p in external_links(root).items() if not u.startswith(ignore)}
    with ThreadPoolExecutor(max_workers=16) as pool:
        codes = dict(zip(links, pool.map(status, links), strict=True))
    return [f"{links[u][0]}: {u} (HTTP {c})" for u, c in codes.items() if c in (404, 410)]


def network_available(url: str = "https://github.com", timeout: float = 5.0) -> bool:
    code = status(url, timeout)
    return code is not None and code < 400


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print("usage: python scripts/linkcheck.py HTML_DIR [--external]", file=sys.stderr)
        return 2
    root = Path(argv[0])
    problems = internal_problems(root)
    if "--external" in argv[1:]:
        problems += external_problems(root)
    for line in problems:
        print(line)
    print(f"{len(problems)} broken link(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
