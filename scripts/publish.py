"""Assemble the published site: the latest book at the root, editions under ``/v<version>/``.

Usage:
    python scripts/publish.py assemble --html _build/html --site _build/publish
    python scripts/publish.py assemble --html _build/html --site SITE --edition 0.2.0

``SITE`` may already hold a published site (the workflow unpacks the ``gh-pages`` branch
there): without ``--edition`` everything but the ``v*/`` edition folders is replaced by the
book in ``--html``; with ``--edition X.Y.Z`` only ``vX.Y.Z/`` is. Both write ``editions.html``
(a plain list of the editions, linked from every page's footer), ``editions.json`` and
``.nojekyll`` (GitHub Pages must serve Sphinx's ``_static/`` folders as they are).

The result is a static folder any host serves. For GitHub Pages by hand:
``ghp-import -n -p -f _build/publish`` (this replaces the ``gh-pages`` branch with the folder).
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import sys
from pathlib import Path

EDITION = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")


def editions(site: Path) -> list[str]:
    """Edition folders ``vX.Y.Z`` of ``site``, newest first."""
    found = [p.name for p in site.iterdir() if p.is_dir() and EDITION.match(p.name)]
    return sorted(found, key=lambda n: tuple(int(x) for x in EDITION.match(n).groups()),
                  reverse=True)


def editions_page(names: list[str]) -> str:
    items = ['<li><a href="./">Latest</a> (follows the main branch)</li>']
    items += [f'<li><a href="{html.escape(n)}/">{html.escape(n)}</a></li>' for n in names]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">"
        "<title>Editions</title></head>\n<body>\n<h1>Editions</h1>\n"
        "<p>A course should link to an edition: it does not change during a term.</p>\n"
        "<ul>\n" + "\n".join(items) + "\n</ul>\n</body>\n</html>\n"
    )


def assemble(book: Path, site: Path, edition: str | None = None) -> list[str]:
    """Put the built ``book`` into ``site`` (see the module docstring); returns the editions."""
    book, site = Path(book), Path(site)
    if not (book / "index.html").exists():
        raise FileNotFoundError(f"{book}/index.html does not exist: build the book first")
    site.mkdir(parents=True, exist_ok=True)
    if edition is not None:
        if not EDITION.match(f"v{edition}"):
            raise ValueError(f"edition must be X.Y.Z, got {edition!r}")
        target = site / f"v{edition}"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(book, target)
    else:
        for path in site.iterdir():
            if path.is_dir() and EDITION.match(path.name):
                continue
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        for path in book.iterdir():
            dest = site / path.name
            shutil.copytree(path, dest) if path.is_dir() else shutil.copy2(path, dest)
    names = editions(site)
    (site / "editions.html").write_text(editions_page(names))
    (site / "editions.json").write_text(json.dumps({"latest": "./", "editions": names},
                                                   indent=1) + "\n")
    (site / ".nojekyll").write_text("")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    asm = sub.add_parser("assemble", help="put a built book into a site folder")
    asm.add_argument("--html", required=True, type=Path, help="the built book (_build/html)")
    asm.add_argument("--site", required=True, type=Path, help="the site folder to update")
    asm.add_argument("--edition", help="publish as the edition vX.Y.Z instead of the latest")
    args = parser.parse_args(argv)
    try:
        names = assemble(args.html, args.site, args.edition)
    except (FileNotFoundError, ValueError) as exc:
        print(f"publish: {exc}", file=sys.stderr)
        return 1
    where = f"{args.site}/v{args.edition}" if args.edition else str(args.site)
    print(f"site ready in {where} (editions: {', '.join(names) or 'none yet'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
