"""Build the student and instructor notebooks of the course assignments from one source each.

Usage:
    python scripts/build_assignments.py          # (re)write assignments/{student,instructor}/
    python scripts/build_assignments.py --check  # exit 1 if anything is stale (used by the tests)

Sources are the MyST notebooks ``assignments/a*.md``. Solutions are marked in the source:

- code cells: lines between ``# BEGIN SOLUTION`` and ``# END SOLUTION``; the student version
  gets ``raise NotImplementedError  # TODO`` at the indentation of the marker;
- markdown cells: lines between ``% BEGIN SOLUTION`` and ``% END SOLUTION``; the student
  version gets *Write your answer here.*

The instructor version keeps the solutions and drops the marker lines. Both notebooks start
with the same Colab setup cell as the chapter notebooks (imported from make_notebooks.py)
and carry ``metadata.attnlab = {"assignment": "A1", "version": ...}`` for the bulk grader.
Output is deterministic: no outputs, stable cell ids, sorted JSON keys.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parents[1]
VERSIONS = ("student", "instructor")
STUDENT_STUB = "raise NotImplementedError  # TODO"
STUDENT_ANSWER = "_Write your answer here._"
_MARK = {
    "code": (re.compile(r"^(\s*)# BEGIN SOLUTION\s*$"), re.compile(r"^\s*# END SOLUTION\s*$")),
    "markdown": (re.compile(r"^(\s*)% BEGIN SOLUTION\s*$"), re.compile(r"^\s*% END SOLUTION\s*$")),
}


def _make_notebooks():
    """scripts/make_notebooks.py as a module (its Colab setup cell and notebook writer)."""
    spec = importlib.util.spec_from_file_location("make_notebooks",
                                                  ROOT / "scripts/make_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.ROOT = ROOT
    return module


def sources() -> list[Path]:
    """Assignment sources: ``assignments/a*.md`` with a jupytext header."""
    return sorted(p for p in (ROOT / "assignments").glob("a*.md")
                  if p.read_text().startswith("---\njupytext:"))


def strip_cell(source: str, cell_type: str, version: str, where: str = "") -> str:
    """The cell's source for ``version``: solutions kept (instructor) or replaced (student).

    Raises ValueError on unbalanced or nested markers (``where`` names the cell).
    """
    if cell_type not in _MARK:
        return source
    begin, end = _MARK[cell_type]
    out: list[str] = []
    inside = False
    for line in source.split("\n"):
        m = begin.match(line)
        if m:
            if inside:
                raise ValueError(f"{where}: nested BEGIN SOLUTION")
            inside = True
            if version == "student":
                indent = m.group(1)
                out.append(indent + (STUDENT_STUB if cell_type == "code" else STUDENT_ANSWER))
            continue
        if end.match(line):
            if not inside:
                raise ValueError(f"{where}: END SOLUTION without BEGIN SOLUTION")
            inside = False
            continue
        if not inside or version == "instructor":
            out.append(line)
    if inside:
        raise ValueError(f"{where}: BEGIN SOLUTION without END SOLUTION")
    return "\n".join(out)


def assignment_key(path: Path) -> str:
    """``"A1"`` for ``assignments/a1_....md`` (checked against attnlab.checks)."""
    from attnlab.checks import ASSIGNMENTS

    for key, spec in ASSIGNMENTS.items():
        if spec.slug == path.stem:
            return key
    raise ValueError(f"{path.name}: no assignment in attnlab.checks has the slug {path.stem!r}")


def build(path: Path, version: str) -> str:
    """The JSON text of the ``version`` notebook built from the source ``path``."""
    nb = jupytext.reads(path.read_text(), fmt="md:myst")
    for i, cell in enumerate(nb.cells):
        cell.source = strip_cell(cell.source, cell.cell_type, version,
                                 where=f"{path.name} cell {i + 1}")
    nb.metadata["attnlab"] = {"assignment": assignment_key(path), "version": version}
    return _make_notebooks().notebook_json(nb)


def expected_files() -> dict[Path, str]:
    """Everything this script writes, with its expected content."""
    out: dict[Path, str] = {}
    for path in sources():
        for version in VERSIONS:
            out[ROOT / "assignments" / version / f"{path.stem}.ipynb"] = build(path, version)
    return out


def stale_files() -> list[Path]:
    """Generated files that are missing or differ, plus notebooks no source produces."""
    return _make_notebooks().find_stale(expected_files(), _folders())


def _folders() -> list[Path]:
    return [ROOT / "assignments" / v for v in VERSIONS]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args()
    return _make_notebooks().sync(expected_files(), _folders(), check=args.check,
                                  script="build_assignments.py")


if __name__ == "__main__":
    sys.exit(main())
