"""Make an edition: ``python scripts/release.py X.Y.Z`` (``make release VERSION=X.Y.Z``).

1. Checks: a clean work tree, ``X.Y.Z`` newer than the current version, no tag ``vX.Y.Z`` yet,
   and entries under ``## Unreleased`` in ``CHANGELOG.md``.
2. Writes version ``X.Y.Z`` into ``pyproject.toml``, turns ``## Unreleased`` into
   ``## X.Y.Z (date)``, regenerates the notebooks and assignments (their Colab setup cell now
   installs ``vX.Y.Z``, their badges open ``vX.Y.Z``), commits and tags ``vX.Y.Z``.
3. Moves on: version ``X.Y.(Z+1).dev0``, an empty ``## Unreleased`` section, notebooks that
   install from the branch again; commits.

So the tag is the one commit whose notebooks install the tag, and ``main`` never installs a
frozen edition. Push both with ``git push --follow-tags``; the workflow publishes the edition
under ``/vX.Y.Z/`` beside the latest book.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UNRELEASED = "## Unreleased"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout.strip()


def _key(version: str) -> tuple:
    nums = tuple(int(x) for x in re.findall(r"\d+", version)[:3])
    dev = re.search(r"\.dev(\d+)$", version)
    return nums + ((0, int(dev.group(1))) if dev else (1, 0))


def set_version(version: str) -> None:
    path = ROOT / "pyproject.toml"
    text, n = re.subn(r'^version\s*=\s*"[^"]+"', f'version = "{version}"', path.read_text(),
                      count=1, flags=re.M)
    if n != 1:
        raise RuntimeError("pyproject.toml has no version line")
    path.write_text(text)


def changelog_release(text: str, version: str, date: str) -> str:
    """``text`` with ``## Unreleased`` renamed to the release; ValueError if it is empty."""
    if UNRELEASED not in text:
        raise ValueError(f"CHANGELOG.md has no '{UNRELEASED}' section")
    head, rest = text.split(UNRELEASED, 1)
    body = rest.split("\n## ", 1)[0]
    if not body.strip():
        raise ValueError(f"CHANGELOG.md: the '{UNRELEASED}' section is empty")
    return head + f"## {version} ({date})" + rest


def changelog_reopen(text: str) -> str:
    """``text`` with an empty ``## Unreleased`` section above the newest release."""
    i = text.index("\n## ") + 1
    return text[:i] + f"{UNRELEASED}\n\n" + text[i:]


def regenerate() -> None:
    for script in ("deps.py", "make_notebooks.py", "build_assignments.py"):
        path = ROOT / "scripts" / script
        if path.exists():
            subprocess.run([sys.executable, str(path)], cwd=ROOT, check=True,
                           stdout=subprocess.DEVNULL)


def release(version: str, today: str | None = None) -> None:
    repoinfo = _script("repoinfo")
    if not repoinfo.is_release(version):
        raise ValueError(f"VERSION must be X.Y.Z, got {version!r}")
    current = repoinfo.package_version(ROOT)
    if _key(version) <= _key(current):
        raise ValueError(f"VERSION {version} must be newer than the current {current}")
    if _git("status", "--porcelain"):
        raise RuntimeError("the work tree has uncommitted changes: commit or stash them first")
    if _git("tag", "-l", f"v{version}"):
        raise RuntimeError(f"the tag v{version} exists already")
    today = today or dt.date.today().isoformat()
    changelog = ROOT / "CHANGELOG.md"
    changelog.write_text(changelog_release(changelog.read_text(), version, today))
    set_version(version)
    regenerate()
    _git("add", "-A")
    _git("commit", "-q", "-m", f"Release {version}")
    _git("tag", "-a", f"v{version}", "-m", f"Edition {version}")
    major, minor, patch = (int(x) for x in version.split("."))
    nxt = f"{major}.{minor}.{patch + 1}.dev0"
    changelog.write_text(changelog_reopen(changelog.read_text()))
    set_version(nxt)
    regenerate()
    _git("add", "-A")
    _git("commit", "-q", "-m", f"Start {nxt}")
    print(f"tagged v{version}; main is now at {nxt}. Publish: git push --follow-tags")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version", help="the edition's version, X.Y.Z")
    args = parser.parse_args()
    try:
        release(args.version)
    except (ValueError, RuntimeError) as exc:
        print(f"release: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
