"""Find the submitted notebooks in a folder and tell whose each one is.

Recognized layouts (mixed freely):

- **flat**: ``alice_a1.ipynb`` -> student ``alice_a1`` (the file name);
- **Canvas** (*Download submissions*): ``smithalice_123456_7890123_a1.ipynb`` and
  ``smithalice_LATE_123456_7890123_a1.ipynb`` -> student ``123456`` (the Canvas user id),
  late when marked ``LATE``;
- **Moodle** (*Download all submissions*, one folder per student):
  ``Alice Smith_4242_assignsubmission_file_/a1.ipynb`` -> student ``4242``, name
  ``Alice Smith``;
- **GitHub Classroom** (one repository per student, named ``<assignment>-<username>``):
  ``a1-convex-alice/a1_convex_attention.ipynb`` -> student ``alice`` (the part after the
  prefix the folders share);
- any other **per-student folder**: ``alice/a1.ipynb`` -> student ``alice``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Submission", "find_submissions"]

_MOODLE = re.compile(r"^(?P<name>.+?)_(?P<id>\d+)_assignsubmission_[a-z]+_?$")
_CANVAS = re.compile(r"^(?P<name>[a-z0-9-]+?)_(?:(?P<late>LATE)_)?(?P<id>\d+)_(?P<sub>\d+)_"
                     r"(?P<rest>.+)$")
_SKIP = (".ipynb_checkpoints", "__MACOSX")


@dataclass(frozen=True)
class Submission:
    """One submitted file.

    Attributes:
        path: the file. rel: its path relative to the folder (unique, shown in the CSV).
        student: the student's id (see the module docstring). name: a display name, if the
        layout gives one. late: True when the LMS marked it late (Canvas), else None.
        layout: ``flat``, ``canvas``, ``moodle``, ``classroom`` or ``folder``.
    """

    path: Path
    rel: str
    student: str
    name: str = ""
    late: bool | None = None
    layout: str = "flat"


def _common_prefix(names: list[str]) -> str:
    if len(names) < 2:
        return ""
    prefix = os.path.commonprefix(names)
    cut = prefix.rfind("-")
    return prefix[: cut + 1] if cut > 0 else ""


def find_submissions(folder: str | Path, pattern: str = "*.ipynb") -> list[Submission]:
    """Every file matching ``pattern`` in ``folder`` and its subfolders (hidden files and
    checkpoints skipped), sorted by relative path, with the student each belongs to."""
    root = Path(folder)
    paths = sorted(p for p in root.rglob(pattern)
                   if p.is_file() and not any(part.startswith(".") or part in _SKIP
                                              for part in p.relative_to(root).parts))
    tops = sorted({p.relative_to(root).parts[0] for p in paths
                   if len(p.relative_to(root).parts) > 1})
    gh_prefix = _common_prefix([t for t in tops if not _MOODLE.match(t)])
    out = []
    for p in paths:
        rel = p.relative_to(root)
        if len(rel.parts) == 1:
            m = _CANVAS.match(p.name)
            if m:
                out.append(Submission(p, rel.as_posix(), m["id"], m["name"],
                                      True if m["late"] else None, "canvas"))
            else:
                out.append(Submission(p, rel.as_posix(), p.stem))
            continue
        top = rel.parts[0]
        m = _MOODLE.match(top)
        if m:
            out.append(Submission(p, rel.as_posix(), m["id"], m["name"], None, "moodle"))
        elif gh_prefix and top.startswith(gh_prefix) and len(top) > len(gh_prefix):
            out.append(Submission(p, rel.as_posix(), top[len(gh_prefix):], "", None,
                                  "classroom"))
        else:
            out.append(Submission(p, rel.as_posix(), top, "", None, "folder"))
    return out
