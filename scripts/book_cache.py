"""Clear the book's execution cache when the helper package changed since the last build.

Jupyter Book caches executed chapters keyed on their code cells only; a change in
``src/attnlab`` alone would leave old results in the book. This script hashes every file of
``src/attnlab`` (``__pycache__`` aside) and compares it with the stamp written beside the
cache at the last build: when they differ, the cache ``<build>/.jupyter_cache`` is removed (all
chapters re-execute) and the new stamp is written.

Usage (the Makefile's ``book`` and ``book-fast`` call it before building):
    python scripts/book_cache.py _build
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ".jupyter_cache"
STAMP = ".attnlab-package-hash"


def package_hash(package: Path) -> str:
    """SHA-256 over the relative paths and contents of every file of ``package``."""
    digest = hashlib.sha256()
    for path in sorted(p for p in package.rglob("*") if p.is_file()):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def refresh(build: Path, package: Path) -> bool:
    """Remove ``build/.jupyter_cache`` unless its stamp matches ``package``; write the stamp.

    Returns True when the cache was cleared (or there was no stamp yet).
    """
    build = Path(build)
    current = package_hash(Path(package))
    stamp = build / STAMP
    if stamp.exists() and stamp.read_text().strip() == current:
        return False
    shutil.rmtree(build / CACHE, ignore_errors=True)
    build.mkdir(parents=True, exist_ok=True)
    stamp.write_text(current + "\n")
    return True


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python scripts/book_cache.py BUILD_DIR", file=sys.stderr)
        return 2
    if refresh(Path(argv[0]), ROOT / "src" / "attnlab"):
        print(f"src/attnlab changed since the last build: cleared {argv[0]}/{CACHE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
