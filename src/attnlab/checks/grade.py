"""Bulk grading: run every submitted notebook in a sandbox, grade it from outside, write CSVs.

Usage::

    python -m attnlab.checks.grade SUBMISSIONS/ -o scores.csv [--feedback FEEDBACK/]
        [--graded GRADED/] [--assignment A1] [--jobs 2] [--seed 0] [--roster roster.csv]
        [--timestamps times.csv --due 2027-01-15T23:59 --late-penalty 10]
        [--manual written.csv] [--canvas canvas.csv] [--moodle moodle.csv]

How one notebook is graded (:func:`grade_notebook`):

1. The grader reads the file itself (every file yields a CSV row, even one that is not a
   notebook), finds the assignment, and parses every code cell (syntax errors are reported
   with their line; a malformed cell is skipped and reported).
2. The notebook's code cells run in a separate process, in a sandbox (:mod:`.sandbox`): a
   fresh folder holding only a copy of the notebook, a scrubbed environment, resource limits,
   bubblewrap namespaces where available. A cell past ``--cell-timeout`` is stopped (the
   process is killed and restarted without that cell), so its message names the cell.
3. The checks run in the grader's own process. Each call of a student's function sends the
   grader's inputs (fixed by ``--seed``) to the submission's process and gets the output back
   as plain numbers (:mod:`._wire`). The scores, the CSV and the feedback are computed and
   written here, where the notebook's code cannot reach them; points are capped per part.
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import multiprocessing as mp
import sys
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["GradeRow", "grade_notebook", "grade_folder", "write_csv", "detect_assignment",
           "read_notebook", "main", "DEFAULTS"]

STATUSES = ("ok", "error", "timeout")
MAX_FILE_MB = 20
#: Default limits. An endless loop costs at most one cell's or one call's limit (plus a
#: restart of the notebook's process when it ignores SIGALRM), never the whole notebook's.
DEFAULTS = {"timeout": 300.0, "cell_timeout": 60.0, "call_timeout": 20.0}


@dataclass
class GradeRow:
    """The grade of one notebook.

    Attributes:
        file: path relative to the graded folder (as given when graded alone).
        student, name: who submitted it (see :mod:`.layout`). assignment: ``"A1"``... or
        ``""``. status: ``"ok"``, ``"error"`` (a cell raised, a syntax error, an unreadable
        file...) or ``"timeout"``. points: part id -> points. total, max: auto-graded points
        and maximum. message: what went wrong. feedback: the checks' reports. seed: seed of
        the hidden cases. results: the checks' results (dicts). late: LMS late mark.
    """

    file: str
    student: str = ""
    name: str = ""
    assignment: str = ""
    status: str = "ok"
    points: dict[str, float] = field(default_factory=dict)
    total: float = 0.0
    max: float = 0.0
    message: str = ""
    feedback: str = ""
    seed: int | None = None
    results: list[dict] = field(default_factory=list)
    late: bool | None = None


# ----------------------------------------------------------------------------- reading
@dataclass
class Parsed:
    """A notebook as the grader sees it: code cells ``(index, source)``, metadata, problems
    (``index -> text``: malformed cells and syntax errors), and every cell's source."""

    code: list[tuple[int, str]]
    metadata: dict
    problems: dict[int, str]
    sources: list[str]


def _transform(source: str) -> str:
    """IPython syntax (``%magic``, ``!cmd``) as plain Python, when IPython is installed."""
    if not any(line.lstrip().startswith(("%", "!")) for line in source.splitlines()):
        return source
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:
        return "\n".join("pass" if ln.lstrip().startswith(("%", "!")) else ln
                         for ln in source.splitlines())
    try:
        return TransformerManager().transform_cell(source)
    except Exception:
        return source


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return "".join(value)
    return None


def read_notebook(data: bytes) -> Parsed:
    """Parse notebook JSON defensively. Raises ValueError (with the reason) when the file is
    not a notebook at all; a bad cell only adds a problem."""
    if not data.strip():
        raise ValueError("the file is empty")
    try:
        nb = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a notebook (not JSON: {str(exc)[:80]})") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise ValueError("not a notebook (no list of cells)")
    meta = nb.get("metadata") if isinstance(nb.get("metadata"), dict) else {}
    code, problems, sources = [], {}, []
    for i, cell in enumerate(nb["cells"]):
        src = _text(cell.get("source")) if isinstance(cell, dict) else None
        if src is None:
            kind = type(cell.get("source")).__name__ if isinstance(cell, dict) else \
                type(cell).__name__
            problems[i] = f"cell {i + 1} is malformed (its source is {kind}) and was skipped"
            sources.append("")
            continue
        sources.append(src)
        if cell.get("cell_type") != "code":
            continue
        py = _transform(src)
        try:
            ast.parse(py)
        except SyntaxError as exc:
            line = (exc.text or "").strip()[:60]
            problems[i] = (f"cell {i + 1} has a syntax error (line {exc.lineno}: {exc.msg}"
                           + (f": `{line}`" if line else "") + ")")
            continue
        except (ValueError, RecursionError, MemoryError) as exc:
            problems[i] = f"cell {i + 1} cannot be parsed ({type(exc).__name__})"
            continue
        code.append((i, py))
    return Parsed(code, meta, problems, sources)


def detect_assignment(meta: Any, path: Path, sources: Sequence[str] = ()) -> str | None:
    """From metadata ``attnlab.assignment``, the file or folder name (``a1...``), or an
    ``import attnlab.checks.a1``-style line; None if nothing matches. ``meta`` may also be
    a notebook object (``.metadata``, ``.cells``)."""
    import re

    if hasattr(meta, "metadata"):
        sources = [c.source for c in meta.cells if isinstance(getattr(c, "source", None), str)]
        meta = meta.metadata
    info = meta.get("attnlab", {}) if isinstance(meta, dict) else {}
    if isinstance(info, dict) and str(info.get("assignment", "")).upper() in ("A1", "A2", "A3"):
        return str(info["assignment"]).upper()
    m = re.search(r"(?<![a-z0-9])a([123])(?![0-9])", path.stem.lower())
    if m:
        return f"A{m.group(1)}"
    for src in sources:
        m = re.search(r"attnlab\.checks(?: import |\.)a([123])\b", src)
        if m:
            return f"A{m.group(1)}"
    return None


def _definitions_only(source: str) -> bool:
    """Imports, function and class definitions, constant assignments: safe to rerun."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    ok = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)
    return bool(tree.body) and all(
        isinstance(node, ok) or (isinstance(node, ast.Assign)
                                 and isinstance(node.value, ast.Constant))
        for node in tree.body)


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip() and not line.strip().startswith("#"):
            return line.strip()[:60]
    return ""


def _defining_cell(name: str, parsed: Parsed) -> int | None:
    import re

    pat = re.compile(rf"^\s*(def\s+{re.escape(name)}\s*\(|{re.escape(name)}\s*=)", re.M)
    hits = [i for i, s in enumerate(parsed.sources) if pat.search(s)]
    return hits[-1] if hits else None


# ----------------------------------------------------------------------------- one notebook
def grade_notebook(path: str | Path, *, assignment: str | None = None,
                   fallback: str | None = None, timeout: float = DEFAULTS["timeout"],
                   cell_timeout: float = DEFAULTS["cell_timeout"],
                   call_timeout: float = DEFAULTS["call_timeout"], seed: int = 0,
                   sandbox: str = "auto", limits: Any = None, data: bytes | None = None,
                   rel: str | None = None, student: str = "", name: str = "",
                   late: bool | None = None) -> GradeRow:
    """Run one submitted notebook in a sandbox and grade its functions; never raises for a
    bad submission.

    Args:
        path: the ``.ipynb`` file. data: its bytes, if already read (the grader reads a
            whole folder before running any submission).
        assignment: ``"A1"``, ``"A2"``, ``"A3"``; None: detected. fallback: used when
            detection fails (so an empty file is still scored against the real maximum).
        timeout: seconds for all cells; cell_timeout: per cell; call_timeout: per call of a
            student's function.
        seed: seed of the hidden cases (the same inputs for every notebook and every run).
        sandbox: ``"auto"`` (bubblewrap if available), ``"bwrap"`` or ``"rlimits"``.
        limits: :class:`attnlab.checks.sandbox.Limits` (default limits if None).
    """
    from . import sandbox as sb
    from .grading import get_assignment, grade_namespace, static_aliases
    from .remote import RemoteNamespace, Session

    path = Path(path)
    row = GradeRow(file=rel or path.name, student=student or path.stem, name=name,
                   seed=int(seed), late=late)
    key = assignment.upper() if assignment else None
    problem = ""
    try:
        if data is None:
            if path.stat().st_size > MAX_FILE_MB << 20:
                raise ValueError(f"the file is larger than {MAX_FILE_MB} MB")
            data = path.read_bytes()
        if len(data) > MAX_FILE_MB << 20:
            raise ValueError(f"the file is larger than {MAX_FILE_MB} MB")
        parsed = read_notebook(data)
    except (OSError, ValueError) as exc:
        parsed, problem = None, str(exc)
    if key is None:
        key = detect_assignment(parsed.metadata if parsed else {}, path,
                                parsed.sources if parsed else ()) or fallback
    if key is not None:
        spec = get_assignment(key)
        row.assignment, row.max = spec.key, spec.auto_points
        row.points = {p.id: 0.0 for p in spec.parts}
    if parsed is None:
        row.status, row.message = "error", f"not a readable notebook: {problem}"
        return row
    if key is None:
        row.status = "error"
        row.message = "could not tell which assignment this is: pass --assignment"
        return row

    session = Session(parsed.code, data, cell_timeout=cell_timeout, timeout=timeout,
                      call_timeout=call_timeout, kind=sb.sandbox_kind(sandbox),
                      limits=limits or sb.Limits(),
                      keep=frozenset(i for i, s in parsed.code if _definitions_only(s)))
    try:
        started = session.start()
        hints = {}
        for fn in (n for p in spec.parts for n in p.functions):
            cell = _defining_cell(fn, parsed)
            if cell is not None and cell in parsed.problems:
                hints[fn] = parsed.problems[cell]
            elif cell is not None and cell in session.skip:
                hints[fn] = f"cell {cell + 1}, which defines it, was stopped"
        if started:
            names = [n for p in spec.parts for n in p.functions]
            ns = RemoteNamespace(session, names, [v for p in spec.parts for _, v, _ in p.options])
            aliases = {**static_aliases(spec, [s for _, s in parsed.code]), **{
                n: f"`{n}` is the package's own code ({a}), not an implementation: this part "
                   "asks you to write it yourself, so it scores 0" for n, a in ns.aliases.items()}}
            results = grade_namespace(spec, ns, seed=int(seed), aliases=aliases,
                                      missing_hint=hints)
        else:
            results = []
    finally:
        session.close()

    for r in results:
        row.points[r.part] = r.points
        row.results.append(r.to_dict())
    row.feedback = "\n".join(r.summary() for r in results)
    row.total = round(min(sum(row.points.values()), row.max), 6)
    msgs, timed_out = [], bool(session.out_of_time)
    events = {**{i: ("error", t) for i, t in parsed.problems.items()},
              **{e.index: (e.kind, e.text) for e in session.events}}
    for index in sorted(events):
        kind, text = events[index]
        src = parsed.sources[index] if index < len(parsed.sources) else ""
        label = f"cell {index + 1} (`{_first_line(src)}`)"
        if kind == "timeout":
            timed_out = True
            msgs.append(f"{label} {text} and was stopped (an endless loop?)")
        elif kind == "out_of_time":
            msgs.append(f"{label} was stopped: {text}")
        elif kind == "crash":
            msgs.append(f"{label} {text}")
        elif kind == "error" and index in parsed.problems:
            msgs.append(text)
        else:
            msgs.append(f"{label} raised {text}")
    if session.fatal:
        msgs.append(session.fatal)
    row.status = "timeout" if timed_out else ("error" if msgs else "ok")
    row.message = "; ".join(msgs[:4]) + (f" (and {len(msgs) - 4} more)" if len(msgs) > 4 else "")
    return row


# ----------------------------------------------------------------------------- a folder
def _grade_one(task: tuple[Path, dict]) -> GradeRow:
    """One row, whatever happens: a failure of the grader itself is reported in the row."""
    path, kw = task
    try:
        return grade_notebook(path, **kw)
    except Exception as exc:  # a bug of the grader: never lose the batch over one file
        return GradeRow(file=kw.get("rel") or Path(path).name, student=kw.get("student", ""),
                        name=kw.get("name", ""), status="error", seed=kw.get("seed"),
                        message=f"the grader failed on this file ({type(exc).__name__}: "
                                f"{str(exc)[:200]}); please report it")


def _unique_names(rows: Sequence[GradeRow]) -> list[str]:
    """One file stem per row, never the same twice: the student id, then the file."""
    import re

    out, used = [], set()
    for r in rows:
        base = r.student if sum(x.student == r.student for x in rows) == 1 else \
            f"{r.student}__{Path(r.file).stem}"
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._") or "submission"
        name, k = base, 2
        while name.lower() in used:
            name, k = f"{base}-{k}", k + 1
        used.add(name.lower())
        out.append(name)
    return out


def grade_folder(folder: str | Path, *, out_csv: str | Path | None = None,
                 pattern: str = "*.ipynb", feedback_dir: str | Path | None = None,
                 graded_dir: str | Path | None = None, jobs: int = 1, seed: int = 0,
                 assignment: str | None = None, **kw: Any) -> list[GradeRow]:
    """Grade every notebook matching ``pattern`` in ``folder`` and its subfolders.

    Every file is read into memory before any submission runs. Per-student folders (Moodle,
    Canvas, GitHub Classroom) are recognized (:mod:`.layout`); each row names the student.

    Args:
        out_csv: where to write the scores. feedback_dir: one ``<student>.txt`` per notebook
            (names never collide). graded_dir: each notebook with feedback cells added.
        jobs: notebooks graded in parallel. seed: seed of the hidden cases (all notebooks).
        assignment: force the assignment; otherwise detected per file, and files where
            detection fails get the folder's most common assignment.
        kw: passed to :func:`grade_notebook` (timeouts, sandbox, limits).
    """
    from .layout import find_submissions

    subs = find_submissions(folder, pattern)
    blobs: list[bytes | None] = []
    for s in subs:
        try:
            blobs.append(s.path.read_bytes() if s.path.stat().st_size <= MAX_FILE_MB << 20
                         else None)
        except OSError:
            blobs.append(None)
    fallback = assignment
    if fallback is None:
        keys = []
        for s, b in zip(subs, blobs, strict=True):
            try:
                p = read_notebook(b) if b is not None else None
            except ValueError:
                p = None
            k = detect_assignment(p.metadata if p else {}, s.path, p.sources if p else ())
            if k:
                keys.append(k)
        fallback = Counter(keys).most_common(1)[0][0] if keys else None
    tasks = [(s.path, {**kw, "assignment": assignment, "fallback": fallback, "seed": seed,
                       "data": b, "rel": s.rel, "student": s.student, "name": s.name,
                       "late": s.late})
             for s, b in zip(subs, blobs, strict=True)]
    if jobs > 1 and len(tasks) > 1:
        # spawn, not fork: forking a process that holds threads (a notebook server, a test
        # runner) can deadlock the worker on a lock copied in its held state
        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
            rows = list(pool.map(_grade_one, tasks))
    else:
        rows = [_grade_one(t) for t in tasks]
    if out_csv is not None:
        write_csv(rows, out_csv)
    names = _unique_names(rows)
    if feedback_dir is not None:
        fdir = Path(feedback_dir)
        fdir.mkdir(parents=True, exist_ok=True)
        for row, stem in zip(rows, names, strict=True):
            (fdir / f"{stem}.txt").write_text(feedback_text(row))
    if graded_dir is not None:
        from .gradebook import graded_notebook

        gdir = Path(graded_dir)
        gdir.mkdir(parents=True, exist_ok=True)
        for row, stem, blob in zip(rows, names, blobs, strict=True):
            (gdir / f"{stem}.ipynb").write_text(graded_notebook(blob, row))
    return rows


def feedback_text(row: GradeRow) -> str:
    """The feedback file of one notebook: headline, message, the checks' reports."""
    head = (f"{row.file}: {row.assignment or '?'} {row.total:g}/{row.max:g} points, "
            f"status {row.status}")
    return "\n".join(x for x in (head, row.message, "", row.feedback) if x is not None) \
        .rstrip() + "\n"


def write_csv(rows: Sequence[GradeRow], path: str | Path) -> None:
    """One row per notebook: file, student, assignment, part points, total, max, status,
    message, an empty column per written question, seed."""
    from . import ASSIGNMENTS

    keys = [k for k in ASSIGNMENTS if any(r.assignment == k for r in rows)]
    parts = [p.id for k in keys for p in ASSIGNMENTS[k].parts]
    written = [w.id for k in keys for w in ASSIGNMENTS[k].written]
    header = ["file", "student", "assignment", *parts, "total", "max", "status", "message",
              *written, "seed"]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for r in rows:
            pts = [f"{r.points[p]:g}" if p in r.points else "" for p in parts]
            w.writerow([r.file, r.student, r.assignment, *pts, f"{r.total:g}", f"{r.max:g}",
                        r.status, r.message, *([""] * len(written)),
                        "" if r.seed is None else r.seed])


# ----------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    """Command line: grade a folder, write the CSVs, print a one-line summary per notebook."""
    from . import sandbox as sb

    ap = argparse.ArgumentParser(prog="python -m attnlab.checks.grade",
                                 description="Grade a folder of submitted assignment notebooks.")
    ap.add_argument("folder", help="folder with the submitted .ipynb files (any layout)")
    ap.add_argument("-o", "--out", default="scores.csv", help="CSV file to write")
    ap.add_argument("--assignment", choices=["A1", "A2", "A3"],
                    help="force the assignment (default: from each notebook's metadata/name)")
    ap.add_argument("--pattern", default="*.ipynb", help="which files (glob, any depth)")
    ap.add_argument("--timeout", type=float, default=DEFAULTS["timeout"],
                    help="seconds for all cells of a notebook")
    ap.add_argument("--cell-timeout", type=float, default=DEFAULTS["cell_timeout"],
                    help="seconds per cell")
    ap.add_argument("--call-timeout", type=float, default=DEFAULTS["call_timeout"],
                    help="seconds per call of a student's function")
    ap.add_argument("--memory-mb", type=int, default=sb.Limits.memory_mb,
                    help="address space of a submission's process")
    ap.add_argument("--sandbox", choices=["auto", "bwrap", "rlimits"], default="auto",
                    help="bubblewrap namespaces (auto: when available) or limits only")
    ap.add_argument("--feedback", help="folder for one feedback .txt per notebook")
    ap.add_argument("--graded", help="folder for the notebooks with feedback cells")
    ap.add_argument("--jobs", type=int, default=1, help="notebooks in parallel")
    ap.add_argument("--seed", type=int, default=0, help="seed of the hidden cases")
    from .gradebook import add_cli_options, finish

    add_cli_options(ap)
    args = ap.parse_args(argv)
    if not Path(args.folder).is_dir():
        ap.error(f"folder {args.folder!r} does not exist")
    if args.jobs < 1:
        ap.error("--jobs must be at least 1")
    for opt in ("timeout", "cell_timeout", "call_timeout"):
        if not getattr(args, opt) > 0:
            ap.error(f"--{opt.replace('_', '-')} must be positive")
    try:
        kind = sb.sandbox_kind(args.sandbox)
    except RuntimeError as exc:
        ap.error(str(exc))
    if kind == "rlimits":
        print("note: bubblewrap is not available; submissions run with resource limits only "
              "(run `make grade-setup` to install it)", file=sys.stderr)
    rows = grade_folder(args.folder, out_csv=args.out, pattern=args.pattern,
                        feedback_dir=args.feedback, graded_dir=args.graded, jobs=args.jobs,
                        seed=args.seed, assignment=args.assignment, timeout=args.timeout,
                        cell_timeout=args.cell_timeout, call_timeout=args.call_timeout,
                        sandbox=kind, limits=sb.Limits(memory_mb=args.memory_mb))
    if not rows:
        print(f"warning: no file matching {args.pattern!r} in {args.folder} or its "
              "subfolders", file=sys.stderr)
    for r in rows:
        print(f"{r.file} [{r.student}]: {r.assignment or '?'} {r.total:g}/{r.max:g} "
              f"[{r.status}]" + (f" {r.message}" if r.message else ""))
    print(f"wrote {args.out} ({len(rows)} notebooks)")
    try:
        finish(rows, args)
    except ValueError as exc:
        ap.error(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
