"""Point a fork at its own repository in one step: ``make fork URL=https://github.com/OWNER/NAME``.

1. Sets ``repository.url`` in ``_config.yml`` (the one setting; ``--branch`` sets
   ``repository.branch`` too).
2. Rewrites every link that names the old repository or its site in the hand-written text
   files (Markdown pages such as ``book/instructors.md``, ``pyproject.toml``'s URLs, ...):
   ``github.com/OLD``, Colab's ``github/OLD/``, Binder's ``gh/OLD/`` and ``OLD-OWNER.github.io/
   OLD-NAME``.
3. Regenerates what derives from it: ``binder/requirements.txt``, the Colab notebooks and
   badges, the README badges, ``html.baseurl`` (``scripts/make_notebooks.py``) and the
   assignments (``scripts/build_assignments.py``).

Afterwards ``make test`` passes as before; commit, push, and enable GitHub Pages (source:
GitHub Actions) to get the published site. Tag an edition with ``make release``.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = {".md", ".toml", ".txt", ".cfg", ".yml", ".yaml", ".py", ".json", ".html"}
# Generated (rewritten by the scripts below), vendored, or not ours to edit.
SKIP_PARTS = {".git", ".venv", "_build", "notebooks", "_extra", "node_modules", "stored"}
SKIP_FILES = {"CHANGELOG.md"}


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def replacements(old_url: str, new_url: str) -> list[tuple[str, str]]:
    """(old, new) pairs for every way a link names the repository or its site."""
    repoinfo = _script("repoinfo")
    (o_owner, o_name), (n_owner, n_name) = (repoinfo.parse_github_url(old_url),
                                            repoinfo.parse_github_url(new_url))
    o_slug, n_slug = f"{o_owner}/{o_name}", f"{n_owner}/{n_name}"
    pairs = [
        (repoinfo.site_url_for(old_url), repoinfo.site_url_for(new_url)),
        (repoinfo.site_url_for(old_url).rstrip("/"), repoinfo.site_url_for(new_url).rstrip("/")),
        (f"github.com/{o_slug}", f"github.com/{n_slug}"),
        (f"colab.research.google.com/github/{o_slug}/",
         f"colab.research.google.com/github/{n_slug}/"),
        (f"mybinder.org/v2/gh/{o_slug}/", f"mybinder.org/v2/gh/{n_slug}/"),
    ]
    return [(a, b) for a, b in pairs if a != b]


def text_files(root: Path) -> list[Path]:
    """Files that git tracks (or would track), outside generated and vendored folders."""
    try:
        listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=root,
                                check=True, capture_output=True, text=True).stdout.split("\n")
        paths = [root / p for p in listed if p]
    except (OSError, subprocess.CalledProcessError):
        paths = [p for p in root.rglob("*") if p.is_file()]
    return [p for p in paths
            if p.suffix in TEXT_SUFFIXES and p.is_file() and p.name not in SKIP_FILES
            and not SKIP_PARTS & set(p.relative_to(root).parts)
            and p.relative_to(root).parts[:2] != ("assignments", "student")
            and p.relative_to(root).parts[:2] != ("assignments", "instructor")]


def set_config(text: str, url: str, branch: str | None) -> str:
    """``_config.yml`` text with ``repository.url`` (and ``branch``) replaced."""
    block = re.search(r"^repository:\n((?:[ \t]+.*\n)+)", text, re.M)
    if block is None:
        raise ValueError("_config.yml has no repository: block")
    body = re.sub(r"^(\s+url:\s*).*$", lambda m: m.group(1) + url, block.group(1), flags=re.M)
    if branch is not None:
        body = re.sub(r"^(\s+branch:\s*).*$", lambda m: m.group(1) + branch, body, flags=re.M)
    return text[: block.start(1)] + body + text[block.end(1):]


def fork(url: str, branch: str | None = None, root: Path = ROOT) -> list[Path]:
    """Point ``root`` at ``url``; returns the hand-written files it changed."""
    repoinfo = _script("repoinfo")
    url = url.rstrip("/").removesuffix(".git")
    repoinfo.parse_github_url(url)
    old = repoinfo.repo_url(root)
    config = root / "_config.yml"
    config.write_text(set_config(config.read_text(), url, branch))
    changed = [config]
    pairs = replacements(old, url)
    for path in text_files(root):
        if path == config:
            continue
        text = path.read_text(errors="strict")
        new = text
        for a, b in pairs:
            new = new.replace(a, b)
        if new != text:
            path.write_text(new)
            changed.append(path)
    for script in ("deps.py", "make_notebooks.py", "build_assignments.py"):
        if (root / "scripts" / script).exists():
            subprocess.run([sys.executable, str(root / "scripts" / script)], cwd=root,
                           check=True, stdout=subprocess.DEVNULL)
    return changed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="https://github.com/OWNER/NAME of the fork")
    parser.add_argument("--branch", help="the branch the book is published from (default: "
                        "keep repository.branch)")
    args = parser.parse_args()
    try:
        changed = fork(args.url, args.branch)
    except (ValueError, TypeError) as exc:
        print(f"fork: {exc}", file=sys.stderr)
        return 1
    for path in changed:
        print(f"updated {path.relative_to(ROOT)}")
    print("regenerated notebooks, badges and assignments; next: make test, commit, push, "
          "and enable GitHub Pages (Settings > Pages > Source: GitHub Actions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
