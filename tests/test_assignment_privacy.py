"""Solutions stay with the instructor: the built wheel and the book's sources contain none.

The wheel is built from a copy of the package (``pip wheel --no-deps``) and searched for the
reference solutions of the assignment sources, region by region: a solution region whose
distinctive lines (long, not comments) appear in the wheel more than once would be a shipped
solution. One shared line is allowed: idioms such as
``step = 1.0 / np.linalg.eigvalsh(A.T @ A)[-1]`` also appear in the package's own code.
"""

from __future__ import annotations

import glob
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_NAMES = ("fista_variant", "gd_reference", "threshold_reference",
                   "group_soft_threshold_ref", "gradient_reference", "hull_reference",
                   "speed_problem(")


def solution_regions(source: str) -> list[list[str]]:
    """The distinctive lines of each ``BEGIN SOLUTION`` region of an assignment source."""
    regions, current = [], None
    for line in source.splitlines():
        s = line.strip()
        if s in ("# BEGIN SOLUTION", "% BEGIN SOLUTION"):
            current = []
        elif s in ("# END SOLUTION", "% END SOLUTION"):
            regions.append(current)
            current = None
        elif current is not None and len(s) > 25 and not s.startswith(("#", "%")):
            current.append(s)
    return [r for r in regions if r]


def regions_found(text: str) -> list[list[str]]:
    found = []
    for src in sorted((ROOT / "assignments").glob("a*.md")):
        for region in solution_regions(src.read_text()):
            hits = [ln for ln in region if ln in text]
            if len(hits) > 1:
                found.append(hits)
    return found


@pytest.fixture(scope="module")
def wheel_text(tmp_path_factory) -> tuple[list[str], str]:
    tmp = tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, tmp / name)
    shutil.copytree(ROOT / "src", tmp / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                        "--no-build-isolation", "-q", "-w", str(tmp / "out"), str(tmp)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    (whl,) = glob.glob(str(tmp / "out" / "*.whl"))
    with zipfile.ZipFile(whl) as z:
        names = z.namelist()
        text = "\n".join(z.read(n).decode("utf-8", "replace") for n in names
                         if n.endswith((".py", ".json", ".md", ".txt")))
    return names, text


def test_the_wheel_ships_no_solution(wheel_text):
    names, text = wheel_text
    assert "attnlab/checks/a1.py" in names and "attnlab/checks/data/a1_speed.json" in names
    assert not [n for n in names if "assignments" in n or "instructor" in n]
    assert not [k for k in REFERENCE_NAMES if k in text]
    assert not regions_found(text)


def test_the_search_would_find_a_shipped_solution():
    """The region search is not vacuous: the instructor notebook itself is caught."""
    text = (ROOT / "assignments/instructor/a1_convex_attention.ipynb").read_text()
    text = text.replace('\\"', '"')
    assert len(regions_found(text)) >= 5


def test_the_book_has_no_solution_and_excludes_the_assignments():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert "assignments/*" in config["exclude_patterns"]
    book = "\n".join(p.read_text() for p in (ROOT / "book").rglob("*.md"))
    assert not regions_found(book)
