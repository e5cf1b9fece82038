"""The instructor's side after grading: roster, late penalties, written marks, LMS export,
graded notebooks for return.

- roster CSV: ``student`` (the id the grader prints), ``name``, and optionally ``email``,
  ``sis_id``, ``login``, ``section``, ``due`` (a per-student deadline);
- timestamps CSV: ``student``, ``submitted`` (ISO 8601, e.g. ``2027-01-16T08:30``);
  Canvas file names marked ``LATE`` count as one day late when no timestamp is given;
- manual CSV: ``student`` and one column per written question (``A1.W1``...), the marks;
- gradebook CSV: one row per student: automatic and written points, days late, penalty,
  final grade; Canvas and Moodle import files with the final grade.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["add_cli_options", "finish", "graded_notebook", "final_grades", "FinalGrade"]


# ----------------------------------------------------------------------------- graded notebooks
def _md(text: str, k: int) -> dict:
    return {"cell_type": "markdown", "id": f"attnlab-grade-{k}", "metadata": {},
            "source": text}


def graded_notebook(blob: bytes | None, row: Any) -> str:
    """The submitted notebook with a grading report on top and each part's feedback after
    the cell that defines its function (JSON text). A file that is not a notebook gives a
    notebook holding only the report."""
    from . import ASSIGNMENTS

    try:
        nb = json.loads(blob or b"")
        assert isinstance(nb, dict) and isinstance(nb.get("cells"), list)
    except Exception:
        nb = {"cells": [], "metadata": {}}
    nb.setdefault("nbformat", 4)
    nb.setdefault("nbformat_minor", 5)
    cells = [c for c in nb["cells"] if isinstance(c, dict)]
    head = (f"# Grading report\n\n**{row.assignment or '?'}: {row.total:g} / {row.max:g} "
            f"points** (automatic; written answers are marked separately). Status: "
            f"`{row.status}`." + (f"\n\n{row.message}" if row.message else ""))
    spec = ASSIGNMENTS.get(row.assignment)
    after: dict[int, list[str]] = {}
    for res in row.results:
        part = next((p for p in spec.parts if p.id == res["part"]), None) if spec else None
        text = _summary(res)
        where = None
        for fn in (part.functions if part else ()):
            pat = re.compile(rf"^\s*(def\s+{re.escape(fn)}\s*\(|{re.escape(fn)}\s*=)", re.M)
            hits = [i for i, c in enumerate(cells) if isinstance(c.get("source"), str | list)
                    and pat.search("".join(c["source"]) if isinstance(c["source"], list)
                                   else c["source"])]
            where = hits[-1] if hits else None
        after.setdefault(where if where is not None else len(cells) - 1, []).append(text)
    out, k = [_md(head, 0)], 1
    for i, c in enumerate(cells):
        out.append(c)
        for text in after.pop(i, []):
            out.append(_md("**Feedback**\n\n```text\n" + text + "\n```", k))
            k += 1
    for texts in after.values():
        for text in texts:
            out.append(_md("**Feedback**\n\n```text\n" + text + "\n```", k))
            k += 1
    nb["cells"] = out
    return json.dumps(nb, indent=1, sort_keys=True) + "\n"


def _summary(res: dict) -> str:
    from .core import CheckResult, Test

    tests = [Test(**t) for t in res.get("tests", [])]
    return CheckResult(res["part"], res["title"], res["points"], res["max_points"], tests,
                       res.get("error", "")).summary()


# ----------------------------------------------------------------------------- tables
def _read_table(path: str | Path, what: str) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise ValueError(f"cannot read the {what} file {path}: {exc.strerror}") from None
    if not rows or "student" not in rows[0]:
        raise ValueError(f"the {what} file {path} needs a header with a `student` column")
    return [{k.strip(): (v or "").strip() for k, v in r.items() if k} for r in rows]


def _when(text: str, what: str) -> datetime:
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not an ISO 8601 time such as "
                         "2027-01-15T23:59") from None


@dataclass
class FinalGrade:
    """One student's grade: the best submission's automatic points, written marks, late
    penalty (percent) and the final grade."""

    student: str
    name: str
    email: str
    assignment: str
    file: str
    auto: float
    written: float
    max: float
    days_late: int
    penalty: float
    final: float
    status: str
    roster: dict


def final_grades(rows: Sequence[Any], *, roster: str | None = None,
                 timestamps: str | None = None, due: str | None = None,
                 late_penalty: float = 0.0, late_max_days: int | None = None,
                 manual: str | None = None) -> list[FinalGrade]:
    """One :class:`FinalGrade` per student (roster students without a submission get 0)."""
    from . import ASSIGNMENTS

    if not 0 <= late_penalty <= 100:
        raise ValueError(f"--late-penalty must be a percentage in [0, 100], got {late_penalty}")
    people = {r["student"]: r for r in _read_table(roster, "roster")} if roster else {}
    times = {r["student"]: _when(r.get("submitted", ""), f"timestamps, {r['student']}")
             for r in _read_table(timestamps, "timestamps")} if timestamps else {}
    marks = {r["student"]: r for r in _read_table(manual, "manual")} if manual else {}
    best: dict[str, Any] = {}
    for r in rows:
        if r.student not in best or r.total > best[r.student].total:
            best[r.student] = r
    keys = sorted(set(best) | set(people))
    common = _most_common([r.assignment for r in rows if r.assignment])
    out = []
    for sid in keys:
        r, person = best.get(sid), people.get(sid, {})
        key = r.assignment if r is not None and r.assignment else common
        spec = ASSIGNMENTS.get(key)
        wmax = spec.written_points if spec else 0.0
        written = 0.0
        for wid, text in marks.get(sid, {}).items():
            if spec and wid in {w.id for w in spec.written} and text:
                try:
                    value = float(text)
                except ValueError:
                    raise ValueError(f"manual marks, {sid}, {wid}: {text!r} is not a number") \
                        from None
                cap = next(w.points for w in spec.written if w.id == wid)
                if not 0 <= value <= cap:
                    raise ValueError(f"manual marks, {sid}, {wid}: {value:g} is outside "
                                     f"[0, {cap:g}]")
                written += value
        days = 0
        deadline = person.get("due") or due
        if r is not None and deadline and sid in times:
            delta = (times[sid] - _when(deadline, "due")).total_seconds()
            days = max(0, math.ceil(delta / 86400))
        elif r is not None and r.late:
            days = 1
        penalty = min(100.0, days * late_penalty)
        if late_max_days is not None and days > late_max_days:
            penalty = 100.0
        auto = r.total if r is not None else 0.0
        total_max = (spec.auto_points if spec else 0.0) + wmax
        final = round((auto + written) * (1 - penalty / 100), 4)
        out.append(FinalGrade(sid, person.get("name") or (r.name if r else ""),
                              person.get("email", ""), key or "", r.file if r else "", auto,
                              written, total_max, days, penalty, final,
                              r.status if r else "missing", person))
    return out


def _most_common(items: Sequence[str]) -> str | None:
    from collections import Counter

    return Counter(items).most_common(1)[0][0] if items else None


def write_gradebook(grades: Sequence[FinalGrade], path: str | Path) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["student", "name", "email", "assignment", "file", "auto", "written",
                    "max", "days_late", "penalty_percent", "final", "status"])
        for g in grades:
            w.writerow([g.student, g.name, g.email, g.assignment, g.file, f"{g.auto:g}",
                        f"{g.written:g}", f"{g.max:g}", g.days_late, f"{g.penalty:g}",
                        f"{g.final:g}", g.status])


def write_canvas(grades: Sequence[FinalGrade], path: str | Path, column: str) -> None:
    """Canvas *Grades, Import*: Student, ID, SIS User ID, SIS Login ID, Section, column."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section", column])
        for g in grades:
            w.writerow([g.name or g.student, g.student, g.roster.get("sis_id", ""),
                        g.roster.get("login", ""), g.roster.get("section", ""), f"{g.final:g}"])


def write_moodle(grades: Sequence[FinalGrade], path: str | Path, column: str) -> None:
    """Moodle *Grades, Import, CSV file*: map ``ID number`` (or ``Email address``) to the
    user field of the same name, and the grade column to the grade item."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ID number", "Email address", "Full name", column])
        for g in grades:
            w.writerow([g.student, g.email, g.name, f"{g.final:g}"])


# ----------------------------------------------------------------------------- CLI
def add_cli_options(ap: Any) -> None:
    """The gradebook options of ``python -m attnlab.checks.grade``."""
    g = ap.add_argument_group("gradebook (one row per student)")
    g.add_argument("--roster", help="CSV: student,name[,email,sis_id,login,section,due]")
    g.add_argument("--timestamps", help="CSV: student,submitted (ISO 8601)")
    g.add_argument("--due", help="deadline, ISO 8601, e.g. 2027-01-15T23:59")
    g.add_argument("--late-penalty", type=float, default=0.0,
                   help="percent of the grade lost per started day late")
    g.add_argument("--late-max-days", type=int, help="later than this many days: grade 0")
    g.add_argument("--manual", help="CSV: student and the written marks (A1.W1, ...)")
    g.add_argument("--gradebook", help="CSV to write: auto + written - late penalty")
    g.add_argument("--canvas", help="Canvas gradebook import CSV to write")
    g.add_argument("--moodle", help="Moodle grade import CSV to write")
    g.add_argument("--column", help="grade column name in the LMS (default: the assignment)")


def finish(rows: Sequence[Any], args: Any) -> None:
    """Write the gradebook files the command line asked for."""
    if not (args.gradebook or args.canvas or args.moodle):
        return
    grades = final_grades(rows, roster=args.roster, timestamps=args.timestamps, due=args.due,
                          late_penalty=args.late_penalty, late_max_days=args.late_max_days,
                          manual=args.manual)
    column = args.column or (grades[0].assignment if grades else "grade")
    if args.gradebook:
        write_gradebook(grades, args.gradebook)
        print(f"wrote {args.gradebook} ({len(grades)} students)")
    if args.canvas:
        write_canvas(grades, args.canvas, column)
        print(f"wrote {args.canvas} (Canvas import)")
    if args.moodle:
        write_moodle(grades, args.moodle, column)
        print(f"wrote {args.moodle} (Moodle import)")
