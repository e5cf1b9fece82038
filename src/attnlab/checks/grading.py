"""Grade the functions defined in a notebook's namespace (used by the bulk grader).

The bulk grader appends one cell to each submitted notebook; that cell reloads the check
modules (undoing accidental changes to them) and calls :func:`write_results`, which runs every
check of the assignment on the functions found by name, with the grader's own seed, and
writes the results as JSON. Check cells in the student's notebook only print a note in a
grading run (``ATTNLAB_GRADING=1``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .core import CheckResult
from .spec import Assignment

__all__ = ["grade_namespace", "write_results", "grading_cell_source", "get_assignment"]

_MODULES = ("core", "spec", "a1", "a2", "a3", "grading")


def get_assignment(key: str | Assignment) -> Assignment:
    """The :class:`Assignment` for ``"A1"``, ``"A2"`` or ``"A3"`` (or pass one through)."""
    if isinstance(key, Assignment):
        return key
    from . import ASSIGNMENTS

    k = str(key).upper()
    if k not in ASSIGNMENTS:
        raise ValueError(f"assignment must be one of {', '.join(ASSIGNMENTS)}; got {key!r}")
    return ASSIGNMENTS[k]


def grade_namespace(assignment: str | Assignment, namespace: Mapping[str, Any], *,
                    seed: int | None = None) -> list[CheckResult]:
    """Run every check of ``assignment`` on the functions named in ``namespace``.

    Args:
        assignment: ``"A1"``, ``"A2"``, ``"A3"`` or an :class:`Assignment`.
        namespace: e.g. a notebook's ``globals()``.
        seed: base seed of the hidden cases (part ``i`` uses ``seed + i``); None: random.

    Returns:
        One :class:`CheckResult` per part, in order. A missing function scores 0 with a
        message naming it.
    """
    a = get_assignment(assignment)
    out = []
    for i, part in enumerate(a.parts):
        missing = [name for name in part.functions if not callable(namespace.get(name))]
        if missing:
            out.append(CheckResult(part.id, part.title, 0.0, part.points, error=(
                f"`{missing[0]}` is not defined in the notebook (keep the function's name "
                "and run the cell that defines it)")))
            continue
        fns = [namespace[name] for name in part.functions]
        opts = {kw: namespace.get(var, default) for kw, var, default in part.options}
        out.append(part.check(*fns, seed=None if seed is None else seed + i, verbose=False,
                              force=True, **opts))
    return out


def write_results(assignment: str, namespace: Mapping[str, Any], path: str | Path,
                  seed: int | None = None) -> None:
    """Grade ``namespace`` and write ``{"assignment", "seed", "results": [...]}`` to ``path``."""
    results = grade_namespace(assignment, namespace, seed=seed)
    payload = {"assignment": get_assignment(assignment).key, "seed": seed,
               "results": [r.to_dict() for r in results]}
    Path(path).write_text(json.dumps(payload))


def grading_cell_source(assignment: str, results_path: str | Path, seed: int | None) -> str:
    """Source of the cell the grader appends to a submitted notebook."""
    mods = ", ".join(repr(f"attnlab.checks.{m}") for m in _MODULES)
    return (
        "# attnlab grader: reload the checks, then grade the functions defined above\n"
        "import importlib as _attnlab_il\n"
        "import sys as _attnlab_sys\n"
        "import attnlab.checks as _attnlab_checks\n"
        f"for _attnlab_m in ({mods}):\n"
        "    _attnlab_il.import_module(_attnlab_m)\n"
        "    _attnlab_il.reload(_attnlab_sys.modules[_attnlab_m])\n"
        "_attnlab_il.reload(_attnlab_checks)\n"
        "_attnlab_sys.modules['attnlab.checks.grading'].write_results(\n"
        f"    {assignment!r}, globals(), {str(results_path)!r}, {seed!r})\n"
    )
