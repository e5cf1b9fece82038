"""Generate the Colab notebooks in notebooks/ from the book's MyST chapters.

Usage:
    python scripts/make_notebooks.py          # (re)write notebooks/ and the Colab badges
    python scripts/make_notebooks.py --check  # exit 1 if anything is stale (used by the tests)

Each chapter in _toc.yml that is a notebook (has a jupytext header) becomes
notebooks/<part>-<name>.ipynb, with a first cell that installs attnlab when it runs in Colab.
The repository URL comes from `repository.url` in _config.yml and the version from
pyproject.toml: a fork changes _config.yml and reruns this script.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import jupytext
import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
BADGE_MARK = "[![Open in Colab]("
# Pages that execute code but are reference material, not chapters to open in Colab.
NOT_CHAPTERS = {"book/api"}


def repo_url() -> str:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    return config["repository"]["url"].rstrip("/")


def repo_branch() -> str:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    return config["repository"].get("branch", "main")


def package_version() -> str:
    match = re.search(r'^version\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    if match is None:
        raise RuntimeError("pyproject.toml has no version")
    return match.group(1)


def toc_files() -> list[str]:
    """Every file listed in _toc.yml, in order (without extension)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries: list[dict]) -> None:
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections", []))

    for part in toc.get("parts", []):
        walk(part.get("chapters", []))
    walk(toc.get("chapters", []))
    return files


def chapters() -> list[Path]:
    """Chapter sources that are notebooks (MyST files with a jupytext header)."""
    out = []
    for name in toc_files():
        if name in NOT_CHAPTERS:
            continue
        path = ROOT / f"{name}.md"
        if path.exists() and path.read_text().startswith("---\njupytext:"):
            out.append(path)
    return out


def notebook_name(path: Path) -> str:
    rel = path.relative_to(ROOT / "book").with_suffix("")
    return "-".join(rel.parts) + ".ipynb"


def colab_url(path: Path) -> str:
    slug = repo_url().removeprefix("https://github.com/")
    return (
        f"https://colab.research.google.com/github/{slug}/blob/{repo_branch()}/"
        f"notebooks/{notebook_name(path)}"
    )


def badge_line(path: Path) -> str:
    return (
        f"{BADGE_MARK}https://colab.research.google.com/assets/colab-badge.svg)]"
        f"({colab_url(path)})"
    )


def with_badge(text: str, path: Path) -> str:
    """The chapter text with an up-to-date Colab badge line right after its title."""
    lines = text.split("\n")
    lines = [line for line in lines if not line.startswith(BADGE_MARK)]
    # Drop the blank line that followed a removed badge, so reruns are idempotent.
    title = next(i for i, line in enumerate(lines) if line.startswith("# "))
    if title + 2 < len(lines) and lines[title + 1] == "" and lines[title + 2] == "":
        del lines[title + 1]
    lines[title + 1 : title + 1] = ["", badge_line(path)]
    return "\n".join(lines)


def setup_source() -> str:
    spec = f"attnlab @ git+{repo_url()}@v{package_version()}"
    return (
        "# Colab setup: installs the attnlab helper package in Colab, does nothing elsewhere.\n"
        "import subprocess\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        f'    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "{spec}"], check=True)'
    )


def expected_files() -> dict[Path, str]:
    """Everything this script writes, with its expected content."""
    out: dict[Path, str] = {}
    for path in chapters():
        out[path] = with_badge(path.read_text(), path)
    for path in chapters():
        # Notebooks are built from the badged text, so they match after a rewrite.
        nb = jupytext.reads(out[path], fmt="md:myst")
        out[ROOT / "notebooks" / notebook_name(path)] = notebook_json(nb)
    return out


def notebook_json(nb: nbformat.NotebookNode) -> str:
    """The Colab notebook: setup cell first, no outputs, stable cell ids."""
    setup = nbformat.v4.new_code_cell(setup_source(), metadata={"tags": ["hide-output"]})
    nb.cells.insert(0, setup)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"
        if cell.cell_type == "code":
            cell["outputs"], cell["execution_count"] = [], None
    nb.metadata.pop("jupytext", None)
    nb.metadata["colab"] = {"provenance": []}
    nb.metadata["language_info"] = {"name": "python"}
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def stale_files() -> list[Path]:
    """Generated files that are missing or differ, plus notebooks no chapter produces."""
    return find_stale(expected_files(), [ROOT / "notebooks"])


def find_stale(expected: dict[Path, str], folders: list[Path]) -> list[Path]:
    """Files of ``expected`` that are missing or differ, plus ``*.ipynb`` in ``folders`` that
    ``expected`` does not produce (orphans)."""
    stale = [p for p, text in expected.items() if not p.exists() or p.read_text() != text]
    orphans = [p for f in folders for p in sorted(f.glob("*.ipynb")) if p not in expected]
    return stale + orphans


def sync(expected: dict[Path, str], folders: list[Path], *, check: bool, script: str) -> int:
    """Write ``expected`` and remove orphan notebooks from ``folders``; with ``check``, only
    report what is stale and return 1 if anything is. Shared by the generator scripts."""
    if check:
        stale = find_stale(expected, folders)
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)}")
        if stale:
            print(f"run `python scripts/{script}` to regenerate")
        return 1 if stale else 0
    for path, text in expected.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    for path in find_stale({}, folders):
        if path not in expected:
            path.unlink()
            print(f"removed {path.relative_to(ROOT)}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args()
    return sync(expected_files(), [ROOT / "notebooks"], check=args.check,
                script="make_notebooks.py")


if __name__ == "__main__":
    sys.exit(main())
