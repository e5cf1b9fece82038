"""Where the book lives, read from one setting: ``repository.url`` in ``_config.yml``.

Every link that names the repository or the published site is derived here: the Colab and
Binder links, the Colab setup cell's ``pip install``, ``html.baseurl`` (the GitHub Pages site of
the repository) and the README badges. ``python scripts/fork.py URL`` changes the setting and
regenerates everything that depends on it.

The ref scheme of the Colab setup cell and badges cannot point at a missing ref:

- a development version (``0.2.1.dev0``, what ``main`` carries) installs from the branch
  ``repository.branch`` of ``_config.yml``, which is where the notebook itself lives;
- a release version (``0.2.0``) installs from the tag ``v0.2.0``; ``scripts/release.py``
  writes that version, regenerates the notebooks and creates the tag on the same commit, and
  then moves ``main`` on to the next development version.

Usable as a module (``scripts/make_notebooks.py`` and ``scripts/fork.py`` import it; an
instructors page generator can call :func:`colab_url`, :func:`binder_url` and
:func:`github_url` for its links) and from the command line (``python scripts/repo.py ref``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
_RELEASE = re.compile(r"^\d+\.\d+\.\d+$")
_DEV = re.compile(r"^\d+\.\d+\.\d+\.dev\d+$")
_GITHUB = re.compile(r"^https://github\.com/([A-Za-z0-9][A-Za-z0-9-]*)/([A-Za-z0-9._-]+?)/?$")


def config(root: Path | None = None) -> dict:
    return yaml.safe_load(((root or ROOT) / "_config.yml").read_text())


def repo_url(root: Path | None = None) -> str:
    """``https://github.com/OWNER/NAME`` (no trailing slash)."""
    url = config(root)["repository"]["url"].rstrip("/")
    parse_github_url(url)
    return url


def parse_github_url(url: str) -> tuple[str, str]:
    """``(owner, name)`` of a GitHub repository URL; ValueError for anything else."""
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, got {type(url).__name__}")
    match = _GITHUB.match(url.removesuffix(".git"))
    if match is None:
        raise ValueError(f"url must look like https://github.com/OWNER/NAME, got {url!r}")
    return match.group(1), match.group(2)


def slug(root: Path | None = None) -> str:
    """``OWNER/NAME``."""
    return "/".join(parse_github_url(repo_url(root)))


def branch(root: Path | None = None) -> str:
    return config(root)["repository"].get("branch", "main")


def site_url_for(url: str) -> str:
    """The GitHub Pages address of the repository ``url``, with a trailing slash."""
    owner, name = parse_github_url(url)
    if name.lower() == f"{owner.lower()}.github.io":
        return f"https://{owner.lower()}.github.io/"
    return f"https://{owner.lower()}.github.io/{name}/"


def site_url(root: Path | None = None) -> str:
    return site_url_for(repo_url(root))


def package_version(root: Path | None = None) -> str:
    text = ((root or ROOT) / "pyproject.toml").read_text()
    match = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M)
    if match is None:
        raise RuntimeError("pyproject.toml has no version")
    return match.group(1)


def is_release(version: str) -> bool:
    """True for ``X.Y.Z``, False for ``X.Y.Z.devN``; ValueError for any other form."""
    if _RELEASE.match(version):
        return True
    if _DEV.match(version):
        return False
    raise ValueError(f"version must be X.Y.Z or X.Y.Z.devN, got {version!r}")


def ref(root: Path | None = None) -> str:
    """The git ref the Colab setup cell installs and the badges open: ``v<version>`` for a
    release, else the branch."""
    version = package_version(root)
    return f"v{version}" if is_release(version) else branch(root)


def install_spec(root: Path | None = None) -> str:
    return f"attnlab @ git+{repo_url(root)}@{ref(root)}"


def colab_url(path: str, root: Path | None = None) -> str:
    """Colab link of the notebook at ``path`` (relative to the repository root)."""
    return f"https://colab.research.google.com/github/{slug(root)}/blob/{ref(root)}/{path}"


def binder_url(path: str, root: Path | None = None) -> str:
    return f"https://mybinder.org/v2/gh/{slug(root)}/{ref(root)}?labpath={path}"


def github_url(path: str = "", root: Path | None = None, kind: str = "blob") -> str:
    """Link to ``path`` in the repository at the current ref (``kind``: blob or tree)."""
    if kind not in ("blob", "tree"):
        raise ValueError(f"kind must be 'blob' or 'tree', got {kind!r}")
    base = repo_url(root)
    return f"{base}/{kind}/{ref(root)}/{path}" if path else base


def main(argv: list[str]) -> int:
    commands = {"url": repo_url, "slug": slug, "branch": branch, "ref": ref,
                "site": site_url, "version": package_version, "install": install_spec}
    if len(argv) != 1 or argv[0] not in commands:
        print(f"usage: python scripts/repo.py {{{','.join(commands)}}}", file=sys.stderr)
        return 2
    print(commands[argv[0]]())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
