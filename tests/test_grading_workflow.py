"""Bulk grading without bubblewrap, all three assignments through the channel, and the
pieces of the instructor workflow (layouts, file names, gradebook, the channel's limits)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import numpy as np
import pytest

from attnlab.checks import _wire
from attnlab.checks.grade import GradeRow, _unique_names, grade_folder
from attnlab.checks.gradebook import final_grades
from attnlab.checks.layout import find_submissions

ROOT = Path(__file__).resolve().parents[1]
SLEEP = "2718.5"


def definition_cells(slug: str) -> list[str]:
    nb = json.loads((ROOT / f"assignments/instructor/{slug}.ipynb").read_text())
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    return [c for c in cells if c.lstrip().startswith(("import", "def", "KERNEL", "from"))]


def write(path: Path, cells: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)


def test_resource_limits_alone_still_grade_and_contain(tmp_path):
    """The fallback sandbox (no bubblewrap): A2 and A3 references get full marks through the
    channel (lists, strings, torch tensors), the environment does not leak, and the
    processes a notebook leaves behind, even in a new session, are killed."""
    a3 = [c.replace('KERNEL = "softmax"', 'KERNEL = "gaussian"')
          for c in definition_cells("a3_softmax_vs_gaussian")]
    assert any('KERNEL = "gaussian"' in c for c in a3)
    write(tmp_path / "s" / "x_a3.ipynb", a3)
    write(tmp_path / "s" / "y_a2.ipynb", definition_cells("a2_training_wv"))
    leak = ("import os, subprocess\n"
            f"subprocess.Popen(['sleep', '{SLEEP}'], start_new_session=True)\n"
            "def beta_max(X, y):\n    raise ValueError(' '.join(os.environ))\n")
    write(tmp_path / "s" / "z_a1.ipynb", [leak])
    os.environ["ATTNLAB_TEST_TOKEN"] = "secret-2718"
    try:
        rows = {r.file: r for r in grade_folder(tmp_path / "s", sandbox="rlimits", jobs=2,
                                                 cell_timeout=20, call_timeout=20)}
    finally:
        del os.environ["ATTNLAB_TEST_TOKEN"]
    assert rows["x_a3.ipynb"].total == 14, rows["x_a3.ipynb"].feedback
    assert rows["y_a2.ipynb"].total == 17, rows["y_a2.ipynb"].feedback
    z = rows["z_a1.ipynb"]
    assert "ATTNLAB_TEST_TOKEN" not in z.feedback and "ATTNLAB_GRADING" in z.feedback
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = (Path("/proc") / pid / "cmdline").read_bytes()
        except OSError:
            continue
        assert SLEEP.encode() not in cmd.split(b"\0")


def test_layouts_give_each_file_its_student(tmp_path):
    for rel in ["alice_a1.ipynb", "smithbob_LATE_123456_7890_a1.ipynb",
                "smithcy_222_333_a1.ipynb", "Carol Jones_4242_assignsubmission_file_/a1.ipynb",
                "a1-convex-dave/a/b.ipynb", "a1-convex-erin/x.ipynb", "a1-convex-erin/y.ipynb",
                ".hidden.ipynb", "a1-convex-dave/.ipynb_checkpoints/b-checkpoint.ipynb"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("{}")
    subs = {s.rel: s for s in find_submissions(tmp_path)}
    assert len(subs) == 7
    assert (subs["alice_a1.ipynb"].student, subs["alice_a1.ipynb"].layout) == ("alice_a1",
                                                                                "flat")
    bob = subs["smithbob_LATE_123456_7890_a1.ipynb"]
    assert (bob.student, bob.late, bob.layout) == ("123456", True, "canvas")
    assert subs["smithcy_222_333_a1.ipynb"].late is None
    carol = subs["Carol Jones_4242_assignsubmission_file_/a1.ipynb"]
    assert (carol.student, carol.name, carol.layout) == ("4242", "Carol Jones", "moodle")
    assert subs["a1-convex-dave/a/b.ipynb"].student == "dave"
    assert {subs[f"a1-convex-erin/{x}.ipynb"].student for x in "xy"} == {"erin"}


def test_feedback_file_names_never_collide():
    rows = [GradeRow(file=f, student=s) for f, s in [
        ("a/x.ipynb", "erin"), ("b/x.ipynb", "erin"), ("c.ipynb", "Erin"), ("d.ipynb", "../e"),
        ("e.ipynb", "e")]]
    names = _unique_names(rows)
    assert len({n.lower() for n in names}) == len(rows)
    assert all("/" not in n and not n.startswith(".") for n in names)


def test_gradebook_rejects_bad_tables(tmp_path):
    rows = [GradeRow(file="a.ipynb", student="a", assignment="A1", total=10, max=20)]
    (tmp_path / "m.csv").write_text("student,A1.W1\na,9\n")  # A1.W1 is worth 3
    with pytest.raises(ValueError, match=r"outside \[0, 3\]"):
        final_grades(rows, manual=str(tmp_path / "m.csv"))
    (tmp_path / "t.csv").write_text("student,submitted\na,yesterday\n")
    with pytest.raises(ValueError, match="not an ISO 8601 time"):
        final_grades(rows, timestamps=str(tmp_path / "t.csv"), due="2027-01-01T00:00")
    (tmp_path / "r.csv").write_text("name\nA\n")
    with pytest.raises(ValueError, match="needs a header with a `student` column"):
        final_grades(rows, roster=str(tmp_path / "r.csv"))
    with pytest.raises(ValueError, match="percentage"):
        final_grades(rows, late_penalty=150)
    (tmp_path / "t.csv").write_text("student,submitted\na,2027-01-03T00:00:01\n")
    (g,) = final_grades(rows, timestamps=str(tmp_path / "t.csv"), due="2027-01-01T00:00",
                        late_penalty=10, late_max_days=2)
    assert (g.days_late, g.penalty, g.final) == (3, 100.0, 0.0)


def test_the_channel_carries_numbers_only(tmp_path):
    r, w = os.pipe()
    try:
        value = (np.arange(6.0).reshape(2, 3), [1, 2.5, "x"], None, {"a": 1}, np.array(["s"]))
        tree, arrays = _wire.encode(value)
        _wire.write_frame(w, {"value": tree}, arrays)
        msg, got = _wire.read_frame(r, deadline=None)
        out = _wire.decode(msg["value"], got)
        assert np.array_equal(out[0], value[0]) and out[1] == [1, 2.5, "x"] and out[2] is None
        assert out[3].type_name == "dict" and "ndarray" in out[4].type_name
        # a pickle inside the arrays is refused, and so is an oversized message
        import io
        import struct

        buf = io.BytesIO()
        np.savez(buf, np.array([{"code": 1}], dtype=object))
        with pytest.raises(_wire.ProtocolError):
            _wire._unpack_arrays(buf.getvalue())
        head = json.dumps({"value": {"nd": 0}}).encode()
        os.write(w, struct.pack(">I", len(head)) + head + struct.pack(">Q", 10**12))
        with pytest.raises(_wire.ProtocolError):
            _wire.read_frame(r, deadline=None)
    finally:
        os.close(r)
        os.close(w)
    with pytest.raises(_wire.ProtocolError):
        _wire.decode({"nd": 3}, [])
    with pytest.raises(_wire.ProtocolError):
        _wire._unpack_arrays(b"PK not a zip")
