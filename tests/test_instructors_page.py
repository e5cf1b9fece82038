"""The instructors page, followed literally: its commands grade a mixed class folder.

The test copies the repository as a fresh clone would have it, writes a class folder that
mixes the layouts the page lists (one file per student, Canvas, Moodle, GitHub Classroom,
and a file that is not a notebook) and the roster, timestamps and written marks in the
formats the page gives, then runs every command of the page's ``bash`` block as written.
The two setup targets (installing the environment and the grading extra) run as
``make -n`` (the test already runs in that environment); ``make`` is pointed at the test's
Python with ``STAMP= BIN=...``.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SETUP_TARGETS = ("install", "grade-setup")


def page_commands() -> list[str]:
    text = (ROOT / "book/instructors.md").read_text()
    blocks = re.findall(r"^```bash\n(.*?)^```", text, re.M | re.S)
    assert len(blocks) == 1, "the page has one block of commands"
    return [ln.strip() for ln in blocks[0].splitlines() if ln.strip()]


def reference_cells() -> list[str]:
    nb = json.loads((ROOT / "assignments/instructor/a1_convex_attention.ipynb").read_text())
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    return [c for c in cells if c.lstrip().startswith(("import", "def"))]


def write_nb(path: Path, cells: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)


def fresh_clone(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    for f in files:
        if f.startswith(("notebooks/", "book/", "benchmarks/", "tests/", "binder/")):
            continue  # not needed to build the assignments and grade
        if (ROOT / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dest / f)
    return dest


def test_the_page_grades_a_mixed_class_into_lms_files(tmp_path):
    repo = fresh_clone(tmp_path / "attnlab")
    ref = reference_cells()
    wrong = [c.replace("return V * factor",
                       "return np.sign(V) * np.maximum(np.abs(V) - tau, 0.0)") for c in ref]
    sub = repo / "submissions"
    write_nb(sub / "alice_a1.ipynb", ref)
    write_nb(sub / "smithbob_LATE_123456_7890_a1.ipynb", wrong)
    write_nb(sub / "Carol Jones_4242_assignsubmission_file_" / "a1.ipynb", ref)
    write_nb(sub / "a1-convex-dave" / "a1_convex_attention.ipynb", ref[:2])
    (sub / "a1-convex-erin").mkdir()
    (sub / "a1-convex-erin" / "a1_convex_attention.ipynb").write_text("{ not json")
    (repo / "roster.csv").write_text(
        "student,name,email,sis_id\nalice_a1,Alice Ang,alice@uni.edu,S1\n"
        "123456,Bob Smith,bob@uni.edu,S2\n4242,Carol Jones,carol@uni.edu,S3\n"
        "dave,Dave Diaz,dave@uni.edu,S4\nerin,Erin Eng,erin@uni.edu,S5\n"
        "frank,Frank Fu,frank@uni.edu,S6\n")
    (repo / "times.csv").write_text("student,submitted\nalice_a1,2027-01-15T20:00\n"
                                    "123456,2027-01-17T09:00\n")
    (repo / "written.csv").write_text("student,A1.W1,A1.W2\nalice_a1,3,1.5\n4242,2,2\n")
    env = {**os.environ, "PYTHONPATH": str(repo / "src")}
    bin_dir = str(Path(sys.executable).parent)
    for cmd in page_commands():
        args = shlex.split(cmd)
        if args[0] == "make":
            dry = ["-n"] if args[1] in SETUP_TARGETS else []
            argv = ["make", *dry, *args[1:], "STAMP=", f"BIN={bin_dir}"]
        elif args[0] == ".venv/bin/python":
            argv = [sys.executable, *args[1:]]
        else:
            raise AssertionError(f"the page runs a command the test does not know: {cmd}")
        r = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True,
                           timeout=600)
        assert r.returncode == 0, (cmd, r.stdout[-3000:], r.stderr[-3000:])
    scores = {r["file"]: r for r in csv.DictReader((repo / "scores.csv").open())}
    assert len(scores) == 5
    assert scores["alice_a1.ipynb"]["total"] == "20"
    bob = scores["smithbob_LATE_123456_7890_a1.ipynb"]
    assert (bob["student"], bob["A1.1"]) == ("123456", "2.5")
    carol = scores["Carol Jones_4242_assignsubmission_file_/a1.ipynb"]
    assert (carol["student"], carol["total"]) == ("4242", "20")
    dave = scores["a1-convex-dave/a1_convex_attention.ipynb"]
    assert dave["student"] == "dave" and float(dave["total"]) < 20
    erin = scores["a1-convex-erin/a1_convex_attention.ipynb"]
    assert (erin["student"], erin["status"], erin["max"]) == ("erin", "error", "20")
    assert len(list((repo / "feedback").iterdir())) == 5
    assert len(list((repo / "graded").glob("*.ipynb"))) == 5
    book = {r["student"]: r for r in csv.DictReader((repo / "gradebook.csv").open())}
    assert set(book) == {"alice_a1", "123456", "4242", "dave", "erin", "frank"}
    assert (book["alice_a1"]["final"], book["alice_a1"]["days_late"]) == ("24.5", "0")
    # Bob: 17.5 automatic points, two started days late at 10 % a day
    assert book["123456"]["days_late"] == "2" and book["123456"]["penalty_percent"] == "20"
    assert float(book["123456"]["final"]) == float(bob["total"]) * 0.8
    assert book["frank"]["status"] == "missing" and book["frank"]["final"] == "0"
    canvas = list(csv.reader((repo / "canvas.csv").open()))
    assert canvas[0][:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert ["Carol Jones", "4242", "S3", "", "", "24"] in canvas
    moodle = list(csv.DictReader((repo / "moodle.csv").open()))
    assert {r["Email address"]: r["A1"] for r in moodle}["alice@uni.edu"] == "24.5"
    graded = json.loads((repo / "graded" / "123456.ipynb").read_text())
    text = "".join("".join(c["source"]) for c in graded["cells"])
    assert "# Grading report" in text and "each entry separately" in text
