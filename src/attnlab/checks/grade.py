"""Bulk grading: execute every submitted notebook, run the checks, write a CSV of scores.

Usage::

    python -m attnlab.checks.grade SUBMISSIONS/ -o scores.csv [--assignment A1]
        [--timeout 900] [--cell-timeout 300] [--feedback FEEDBACK/] [--jobs 2] [--seed 0]

Each notebook runs in a fresh ``python3`` kernel (nbclient), in its own folder, with
``ATTNLAB_GRADING=1`` (check cells only print a note), ``ATTNLAB_FAST=1`` (experiments run in
fast mode) and ``MPLBACKEND=Agg``. Errors do not stop the notebook (later cells still run);
a cell that runs past ``--cell-timeout`` is interrupted; the notebook as a whole gets
``--timeout`` seconds. Then one appended cell grades the functions the notebook defines,
with the grader's own random cases. One CSV row per notebook: file, assignment, the points
of every auto-graded part, total, max, status (``ok``, ``error``, ``timeout``), message, an
empty column per written question (for the instructor), and the seed of the hidden cases.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["GradeRow", "grade_notebook", "grade_folder", "write_csv", "detect_assignment",
           "main"]

STATUSES = ("ok", "error", "timeout")


@dataclass
class GradeRow:
    """The grade of one notebook.

    Attributes:
        file: notebook path (as given). assignment: ``"A1"``... or ``""`` if unknown.
        status: ``"ok"`` (every cell ran), ``"error"`` (a cell raised, the kernel died, or
            the notebook could not be read) or ``"timeout"``.
        points: part id -> points. total, max: auto-graded points and maximum.
        message: what went wrong, if anything. feedback: the checks' printed reports.
        seed: base seed of the hidden cases.
    """

    file: str
    assignment: str = ""
    status: str = "ok"
    points: dict[str, float] = field(default_factory=dict)
    total: float = 0.0
    max: float = 0.0
    message: str = ""
    feedback: str = ""
    seed: int | None = None


# ----------------------------------------------------------------------------- assignment
def detect_assignment(nb: Any, path: Path) -> str | None:
    """From notebook metadata ``attnlab.assignment``, the file name (``a1...``), or an
    ``import attnlab.checks.a1``-style line; None if nothing matches."""
    meta = nb.metadata.get("attnlab", {}) if hasattr(nb, "metadata") else {}
    if isinstance(meta, dict) and str(meta.get("assignment", "")).upper() in ("A1", "A2", "A3"):
        return str(meta["assignment"]).upper()
    m = re.search(r"(?<![a-z0-9])a([123])(?![0-9])", path.stem.lower())
    if m:
        return f"A{m.group(1)}"
    for cell in nb.cells:
        if cell.cell_type == "code":
            m = re.search(r"attnlab\.checks(?: import |\.)a([123])\b", cell.source)
            if m:
                return f"A{m.group(1)}"
    return None


# ----------------------------------------------------------------------------- execution
def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip() and not line.strip().startswith("#"):
            return line.strip()[:60]
    return ""


def _error_of(cell: Any) -> str | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            value = " ".join(str(out.get("evalue", "")).split())[:150]
            return out.get("ename", "Error") + (f": {value}" if value else "")
    return None


def _kernel_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"ATTNLAB_GRADING": "1", "ATTNLAB_FAST": "1", "MPLBACKEND": "Agg",
                "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                "PYDEVD_DISABLE_FILE_VALIDATION": "1"})
    return env


def _execute(nb: Any, path: Path, assignment: str, seed: int, timeout: float,
             cell_timeout: float, grade_timeout: float, kernel_name: str
             ) -> tuple[str, str, dict | None]:
    """Run the notebook and the grading cell; ``(status, message, results or None)``."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    from .grading import grading_cell_source

    client = NotebookClient(
        nb, timeout=int(cell_timeout), kernel_name=kernel_name, allow_errors=True,
        interrupt_on_timeout=True,
        error_on_timeout={"ename": "CellTimeoutError", "evalue": "interrupted", "traceback": []},
        resources={"metadata": {"path": str(path.parent.resolve())}}, record_timing=False,
        shutdown_kernel="immediate",
    )
    status, message = "ok", ""
    with tempfile.TemporaryDirectory(prefix="attnlab-grade-") as tmp:
        results_path = Path(tmp) / "results.json"
        try:
            with client.setup_kernel(env=_kernel_env(), stderr=subprocess.DEVNULL):
                # import the package first, untimed: its import time is not the student's
                # (nbclient stores an executed cell at nb.cells[index]: insert, then remove)
                warm = nbformat.v4.new_code_cell("import attnlab.checks  # grader warm-up")
                nb.cells.insert(0, warm)
                client.timeout = int(grade_timeout)
                client.execute_cell(warm, 0)
                nb.cells.pop(0)
                if _error_of(warm):
                    return "error", f"the kernel cannot import attnlab: {_error_of(warm)}", None
                deadline = time.monotonic() + timeout
                for index, cell in enumerate(list(nb.cells)):
                    if cell.cell_type != "code":
                        continue
                    remaining = deadline - time.monotonic()
                    if remaining < 1:
                        status = "timeout"
                        message = (f"the notebook ran past {timeout:g} s; stopped before cell "
                                   f"{index + 1}")
                        break
                    client.timeout = int(max(1, min(cell_timeout, remaining)))
                    t0 = time.monotonic()
                    client.execute_cell(cell, index)
                    if time.monotonic() - t0 >= client.timeout - 0.05:
                        if status != "timeout":
                            status = "timeout"
                            message = (f"cell {index + 1} (`{_first_line(cell.source)}`) did "
                                       f"not finish within {client.timeout} s and was "
                                       "interrupted (an endless loop?)")
                        continue
                    err = _error_of(cell)
                    if err and status == "ok":
                        status = "error"
                        message = f"cell {index + 1} (`{_first_line(cell.source)}`) raised {err}"
                grade = nbformat.v4.new_code_cell(
                    grading_cell_source(assignment, results_path, seed))
                nb.cells.append(grade)
                client.timeout = int(grade_timeout)
                client.execute_cell(grade, len(nb.cells) - 1)
                err = _error_of(grade)
        except DeadKernelError:
            return "error", (message + "; " if message else "") + "the kernel died", None
        except Exception as exc:  # nbclient/kernel trouble: report, never crash the batch
            return "error", f"could not run the notebook: {type(exc).__name__}: {exc}", None
        if results_path.exists():
            return status, message, json.loads(results_path.read_text())
        why = err or "the grading cell did not finish"
        if status == "ok":
            status = "error"
        return status, (message + "; " if message else "") + f"grading failed ({why})", None


def grade_notebook(path: str | Path, *, assignment: str | None = None, timeout: float = 900,
                   cell_timeout: float = 300, grade_timeout: float = 300,
                   seed: int | None = None, kernel_name: str = "python3") -> GradeRow:
    """Execute one submitted notebook and grade it; never raises for a bad submission.

    Args:
        path: the ``.ipynb`` file.
        assignment: ``"A1"``, ``"A2"``, ``"A3"``; None: detected (:func:`detect_assignment`).
        timeout: seconds for the whole notebook; cell_timeout: per cell (interrupted after);
        grade_timeout: for the grading cell.
        seed: base seed of the hidden cases; None: a random one (recorded in the row).
    """
    import nbformat

    from .grading import get_assignment

    path = Path(path)
    row = GradeRow(file=str(path), seed=secrets.randbits(31) if seed is None else int(seed))
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:
        row.status, row.message = "error", f"not a readable notebook: {type(exc).__name__}: {exc}"
        return row
    key = assignment.upper() if assignment else detect_assignment(nb, path)
    if key is None:
        row.status = "error"
        row.message = "could not tell which assignment this is: pass --assignment"
        return row
    spec = get_assignment(key)
    row.assignment, row.max = spec.key, spec.auto_points
    row.points = {p.id: 0.0 for p in spec.parts}
    row.status, row.message, res = _execute(nb, path, spec.key, row.seed, timeout, cell_timeout,
                                            grade_timeout, kernel_name)
    if res is not None:
        lines = []
        for r in res["results"]:
            row.points[r["part"]] = float(r["points"])
            lines.append(_summary(r))
        row.feedback = "\n".join(lines)
    row.total = round(sum(row.points.values()), 6)
    return row


def _summary(r: dict) -> str:
    from .core import CheckResult, Test

    tests = [Test(**t) for t in r["tests"]]
    return CheckResult(r["part"], r["title"], r["points"], r["max_points"], tests,
                       r["error"]).summary()


def _grade_one(args: tuple[Path, dict]) -> GradeRow:
    path, kw = args
    return grade_notebook(path, **kw)


def grade_folder(folder: str | Path, *, out_csv: str | Path | None = None,
                 pattern: str = "*.ipynb", feedback_dir: str | Path | None = None,
                 jobs: int = 1, seed: int | None = None, **kw: Any) -> list[GradeRow]:
    """Grade every notebook matching ``pattern`` in ``folder`` (sorted by name).

    Args:
        out_csv: where to write the scores (optional). feedback_dir: write one
            ``<notebook>.txt`` of feedback per notebook (optional).
        jobs: notebooks graded in parallel (separate processes).
        seed: base seed; notebook ``j`` uses ``seed + 1000 j``; None: random per notebook.
        kw: passed to :func:`grade_notebook` (assignment, timeouts, kernel_name).
    """
    paths = sorted(p for p in Path(folder).glob(pattern) if not p.name.startswith("."))
    tasks = [(p, {**kw, "seed": None if seed is None else seed + 1000 * j})
             for j, p in enumerate(paths)]
    if jobs > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            rows = list(pool.map(_grade_one, tasks))
    else:
        rows = [_grade_one(t) for t in tasks]
    if out_csv is not None:
        write_csv(rows, out_csv)
    if feedback_dir is not None:
        fdir = Path(feedback_dir)
        fdir.mkdir(parents=True, exist_ok=True)
        for row in rows:
            head = f"{Path(row.file).name}: {row.assignment} {row.total:g}/{row.max:g} " \
                   f"points, status {row.status}"
            text = "\n".join(x for x in (head, row.message, "", row.feedback) if x is not None)
            (fdir / (Path(row.file).stem + ".txt")).write_text(text.rstrip() + "\n")
    return rows


def write_csv(rows: Sequence[GradeRow], path: str | Path) -> None:
    """One row per notebook; part columns of every assignment present, in order."""
    from . import ASSIGNMENTS

    keys = [k for k in ASSIGNMENTS if any(r.assignment == k for r in rows)]
    parts = [p.id for k in keys for p in ASSIGNMENTS[k].parts]
    written = [w.id for k in keys for w in ASSIGNMENTS[k].written]
    header = ["file", "assignment", *parts, "total", "max", "status", "message", *written, "seed"]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for r in rows:
            pts = [f"{r.points[p]:g}" if p in r.points else "" for p in parts]
            w.writerow([Path(r.file).name, r.assignment, *pts, f"{r.total:g}", f"{r.max:g}",
                        r.status, r.message, *([""] * len(written)),
                        "" if r.seed is None else r.seed])


# ----------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    """Command line: grade a folder, write the CSV, print a one-line summary per notebook."""
    ap = argparse.ArgumentParser(prog="python -m attnlab.checks.grade",
                                 description="Grade a folder of submitted assignment notebooks.")
    ap.add_argument("folder", help="folder with the submitted .ipynb files")
    ap.add_argument("-o", "--out", default="scores.csv", help="CSV file to write")
    ap.add_argument("--assignment", choices=["A1", "A2", "A3"],
                    help="force the assignment (default: from each notebook's metadata/name)")
    ap.add_argument("--pattern", default="*.ipynb", help="which files (glob)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per notebook")
    ap.add_argument("--cell-timeout", type=float, default=300, help="seconds per cell")
    ap.add_argument("--feedback", help="folder for one feedback .txt per notebook")
    ap.add_argument("--jobs", type=int, default=1, help="notebooks in parallel")
    ap.add_argument("--seed", type=int, help="base seed of the hidden cases (default random)")
    args = ap.parse_args(argv)
    try:
        import ipykernel  # noqa: F401
        import nbclient  # noqa: F401
    except ImportError as exc:
        ap.error(f"bulk grading needs nbclient and ipykernel ({exc}); install them with "
                 "`pip install nbclient ipykernel` (requirements.txt has both)")
    if not Path(args.folder).is_dir():
        ap.error(f"folder {args.folder!r} does not exist")
    rows = grade_folder(args.folder, out_csv=args.out, pattern=args.pattern,
                        feedback_dir=args.feedback, jobs=max(1, args.jobs), seed=args.seed,
                        assignment=args.assignment, timeout=args.timeout,
                        cell_timeout=args.cell_timeout)
    for r in rows:
        print(f"{Path(r.file).name}: {r.assignment or '?'} {r.total:g}/{r.max:g} [{r.status}]"
              + (f" {r.message}" if r.message else ""))
    print(f"wrote {args.out} ({len(rows)} notebooks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
