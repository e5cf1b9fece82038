"""Repository-level checks: pins, generated notebooks in sync, lint."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _scripts import load_script

ROOT = Path(__file__).resolve().parents[1]


def load_make_notebooks(root: Path):
    return load_script("make_notebooks", root)


def test_requirements_pins():
    text = (ROOT / "requirements.txt").read_text()
    assert re.search(r"^jupyter-book>=1\.0\.4\.post1,<2$", text, re.M), "jupyter-book must stay <2"
    assert re.search(r"^torch==2\.13\.0$", text, re.M), "torch must be pinned exactly"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"torch>=2.2"' in pyproject, "the package keeps a loose torch range for Colab"


def test_generated_notebooks_are_in_sync():
    mk = load_make_notebooks(ROOT)
    stale = mk.stale_files()
    assert not stale, f"stale generated files (run `make notebooks`): {stale}"
    assert mk.chapters(), "no chapter notebooks found"


def test_sync_check_detects_a_stale_notebook(tmp_path):
    for name in ["_config.yml", "_toc.yml", "pyproject.toml", "README.md"]:
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "book", tmp_path / "book")
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    mk = load_make_notebooks(tmp_path)
    assert mk.stale_files() == []
    chapter = mk.chapters()[0]
    chapter.write_text(chapter.read_text() + "\n```{code-cell} ipython3\nprint('new')\n```\n")
    assert (tmp_path / "notebooks" / mk.notebook_name(chapter)) in mk.stale_files()


def test_colab_setup_cell_uses_config_url_and_version():
    mk = load_make_notebooks(ROOT)
    chapter = mk.chapters()[0]
    nb = json.loads((ROOT / "notebooks" / mk.notebook_name(chapter)).read_text())
    first = "".join(nb["cells"][0]["source"])
    assert "google.colab" in first
    # the ref scheme: the branch for a development version, the tag for a release
    assert f"git+{mk.repo_url()}@{mk.ref()}\"" in first
    assert mk.ref() in (mk.repo_branch(), f"v{mk.package_version()}")
    assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")
    # Colab badge of the chapter points at that notebook
    assert mk.colab_url(chapter) in chapter.read_text()


def test_every_toc_entry_exists():
    mk = load_make_notebooks(ROOT)
    for name in mk.toc_files():
        assert (ROOT / f"{name}.md").exists() or (ROOT / f"{name}.ipynb").exists(), name


@pytest.mark.skipif(
    shutil.which("ruff") is None and not (ROOT / ".venv/bin/ruff").exists(),
    reason="ruff not installed",
)
def test_ruff_clean():
    ruff = shutil.which("ruff") or str(ROOT / ".venv/bin/ruff")
    proc = subprocess.run(
        [ruff, "check", "src", "tests", "benchmarks", "scripts"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_unfinished_text_in_book():
    for path in (ROOT / "book").rglob("*.md"):
        text = path.read_text()
        for word in ["TODO", "FIXME", "lorem ipsum", "placeholder"]:
            assert word not in text, f"{path.relative_to(ROOT)} contains {word!r}"


def test_python_is_supported():
    assert sys.version_info >= (3, 10)


def test_code_cells_are_short():
    """Cells call, plot and assert; the argument is in the prose (at most 18 non-blank lines,
    the cell's metadata block not counted)."""
    import jupytext  # reads the chapters as make_notebooks does: cell metadata stays out

    long = []
    for md in sorted((ROOT / "book").rglob("*.md")):
        cells = [c for c in jupytext.read(md).cells if c.cell_type == "code"]
        for i, cell in enumerate(cells, 1):
            n = sum(1 for line in cell.source.splitlines() if line.strip())
            if n > 18:
                long.append(f"{md.relative_to(ROOT)}: code cell {i} ({n} lines)")
    assert not long, "code cells longer than 18 lines: " + ", ".join(long)
