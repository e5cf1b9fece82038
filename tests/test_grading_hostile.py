"""Hostile submissions: none can raise its score, touch another submission, leak the
grader's environment, leave processes behind, or stall the batch past its limits.

One batch (module fixture) grades an honest notebook beside notebooks that patch json,
importlib and the checks, alias the package's code, tamper with files outside their folder,
fork children, print without end, ignore SIGALRM, exit from a function, and hold malformed
cells. Limits are small so the whole module runs in well under a minute. Assertions that
need bubblewrap (hiding other files) run only where it is available; everything else must
hold with resource limits alone.
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import nbformat
import pytest

from attnlab.checks.grade import grade_folder
from attnlab.checks.sandbox import sandbox_kind

ROOT = Path(__file__).resolve().parents[1]
SECRET = "attnlab-grader-token-8c1f"
LIMITS = {"cell_timeout": 4, "timeout": 30, "call_timeout": 5}
SLEEP = "3141.5"  # unique argument of the children a submission leaves behind


def reference_cells() -> list[str]:
    """The definition cells of the A1 instructor notebook (imports and functions)."""
    nb = json.loads((ROOT / "assignments/instructor/a1_convex_attention.ipynb").read_text())
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    keep = [c for c in cells if c.lstrip().startswith(("import", "def", "from"))
            and "google.colab" not in c]
    assert any("def prox_grad" in c for c in keep)
    return keep


def write(path: Path, cells: list, meta: dict | None = None) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata.update(meta or {"attnlab": {"assignment": "A1"}})
    nbformat.write(nb, path)


DUMMIES = """
import numpy as np
def group_soft_threshold(V, tau): return np.zeros_like(V)
def prox_grad(X, y, beta, n_iter): return np.zeros(X.shape[1:])
def duality_gap(Z, X, y, beta): return 0.0, 0.0, 0.0
def recover_heads(Z, tol): return np.zeros((1, Z.shape[0])), np.zeros((1, Z.shape[1])), np.zeros(1)
def beta_max(X, y): return 0.0
"""

PATCHER = r"""
import json, importlib, os
_fake = {"assignment": "A1", "seed": 0, "results": [{"part": "A1.1", "title": "x",
         "points": 5000, "max_points": 4, "tests": [], "error": "", "deferred": False,
         "messages": []}]}
json.dumps = lambda *a, **k: json.JSONEncoder().encode(_fake)
json.loads = lambda *a, **k: _fake
importlib.reload = lambda m: m
import attnlab.checks as C
from attnlab.checks import core, grading
core.CheckResult.passed = property(lambda self: True)
grading.grade_namespace = lambda *a, **k: []
core.check = lambda *a, **k: (lambda f: f)
for name in ("results.json", "scores.csv"):
    open(name, "w").write(json.dumps(_fake))
print("All tests passed. 20/20")
"""

ALIAS = """
import attnlab as al
from attnlab import convex
from attnlab.checks import a1
from attnlab.convex import beta_max
recover_heads = convex.recover_heads
prox_grad = lambda X, y, beta, n_iter: convex.fit(X, y, beta).Z
def group_soft_threshold(V, tau):
    return a1._shrink(V, tau)
"""


def tamper(victim: Path, canary: Path) -> str:
    return f"""
import os, glob
stolen = os.environ.get("ATTNLAB_TEST_TOKEN", "no-token")
for p in [{str(canary)!r}]:
    try:
        stolen += open(p).read()
        os.remove(p)
    except OSError:
        pass
try:
    stolen += open({str(victim)!r}).read()[:200]
    open({str(victim)!r}, "w").write("overwritten")
except OSError:
    pass
for p in glob.glob({str(victim.parent)!r} + "/*.ipynb"):
    try:
        open(p, "w").write("")
    except OSError:
        pass
def beta_max(X, y):
    raise ValueError("LEAK " + stolen + " " + " ".join(os.environ))
"""


FORK = f"""
import os, subprocess
subprocess.Popen(["sleep", "{SLEEP}"], start_new_session=True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", "{SLEEP}"])
    os._exit(0)
"""

PRINTER = """
import os, sys
while True:
    print("x" * 100000)
    os.write(1, b"y" * 100000)
"""

NO_ALARM = """
import signal
def beta_max(X, y):
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        try:
            pass
        except BaseException:
            pass
"""

NO_ALARM_CELL = """
import signal
signal.signal(signal.SIGALRM, signal.SIG_IGN)
while True:
    pass
"""

EXITER = """
import os
def duality_gap(Z, X, y, beta):
    os._exit(3)
"""


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    sub = base / "submissions"
    sub.mkdir()
    canary = base / "canary.txt"
    canary.write_text("CANARY-CONTENT")
    ref = reference_cells()
    victim = sub / "zz_victim_a1.ipynb"
    write(victim, ref)
    victim_bytes = victim.read_bytes()
    write(sub / "patcher_a1.ipynb", [DUMMIES, PATCHER])
    write(sub / "dummies_a1.ipynb", [DUMMIES])
    write(sub / "alias_a1.ipynb", [*ref, ALIAS])
    write(sub / "tamper_a1.ipynb", [*ref, tamper(victim, canary)])
    write(sub / "fork_a1.ipynb", [*ref, FORK])
    write(sub / "printer_a1.ipynb", [*ref, PRINTER, "x = 1"])
    write(sub / "noalarm_a1.ipynb", [*ref, NO_ALARM_CELL, NO_ALARM])
    write(sub / "exiter_a1.ipynb", [*ref, EXITER])
    # malformed: a number as source, a cell that is not a dict, a syntax error; no a1 in
    # the name and no metadata
    nb = json.loads(nbformat.writes(nbformat.v4.new_notebook()))
    nb["cells"] = [{"cell_type": "code", "source": 42, "metadata": {}, "outputs": []},
                   "not a cell",
                   {"cell_type": "code", "source": "def duality_gap(Z, X, y, beta)\n  return 1",
                    "metadata": {}, "outputs": []}]
    (sub / "weird.ipynb").write_text(json.dumps(nb))
    (sub / "empty_a1.ipynb").write_bytes(b"")
    os.environ["ATTNLAB_TEST_TOKEN"] = SECRET
    try:
        t0 = time.monotonic()
        rows = grade_folder(sub, out_csv=base / "scores.csv", feedback_dir=base / "feedback",
                            jobs=2, seed=0, **LIMITS)
        wall = time.monotonic() - t0
    finally:
        del os.environ["ATTNLAB_TEST_TOKEN"]
    table = {r["file"]: r for r in csv.DictReader((base / "scores.csv").open())}
    return {"rows": {r.file: r for r in rows}, "table": table, "wall": wall, "base": base,
            "canary": canary, "victim": victim, "victim_bytes": victim_bytes}


def test_every_file_has_a_row_and_scores_are_capped(batch):
    table = batch["table"]
    assert len(table) == 11
    for name, r in table.items():
        assert r["status"] in ("ok", "error", "timeout"), name
        assert 0 <= float(r["total"]) <= float(r["max"]) or r["max"] == "0", name
    assert table["zz_victim_a1.ipynb"]["total"] == "20"


def test_patching_json_importlib_and_the_checks_gains_nothing(batch):
    r = batch["rows"]["patcher_a1.ipynb"]
    plain = batch["rows"]["dummies_a1.ipynb"]
    assert r.points == plain.points and r.total == plain.total < 5
    assert "All tests passed" not in r.feedback


def test_aliases_of_the_package_score_zero_with_a_message(batch):
    r = batch["rows"]["alias_a1.ipynb"]
    for part in ("A1.1", "A1.2", "A1.4", "A1.5"):
        assert r.points[part] == 0, (part, r.feedback)
    assert r.points["A1.3"] == 4  # its own duality_gap is still graded
    assert r.feedback.count("the package's own code") >= 4


def test_a_submission_cannot_leak_the_environment_or_spoil_another(batch):
    r = batch["rows"]["tamper_a1.ipynb"]
    text = (batch["base"] / "scores.csv").read_text() + "".join(
        p.read_text() for p in (batch["base"] / "feedback").iterdir())
    assert SECRET not in text and "no-token" in r.feedback
    assert "ATTNLAB_TEST_TOKEN" not in text
    # the victim was read before anything ran: its grade is intact
    assert batch["rows"]["zz_victim_a1.ipynb"].total == 20
    if sandbox_kind() == "bwrap":  # files outside its folder are invisible
        assert batch["canary"].read_text() == "CANARY-CONTENT"
        assert batch["victim"].read_bytes() == batch["victim_bytes"]
        assert "CANARY" not in text and "overwritten" not in text


def test_no_process_survives(batch):
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = (Path("/proc") / pid / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if SLEEP.encode() in cmd:
            left.append(pid)
    assert not left


def test_endless_output_is_stopped_and_names_the_cell(batch):
    r = batch["rows"]["printer_a1.ipynb"]
    assert r.status == "timeout" and r.total == 20
    assert "(`import os, sys`) did not finish within 4 s" in r.message


def test_ignoring_signals_costs_only_the_part(batch):
    """A cell and a function that ignore SIGALRM (and SIGINT, SIGTERM) are stopped by
    killing the process: the cell is named, and only the function's part is lost."""
    r = batch["rows"]["noalarm_a1.ipynb"]
    assert r.status == "timeout" and "(`import signal`) did not finish within 4 s" in r.message
    assert r.points["A1.5"] == 0 and "did not return within 5 s" in r.feedback
    # the function defined after the stopped cell is still graded: only A1.5 is lost
    assert r.total == 18


def test_exiting_from_a_function_costs_only_the_part(batch):
    r = batch["rows"]["exiter_a1.ipynb"]
    assert r.points["A1.3"] == 0 and r.total == 16
    assert "ended the notebook's process" in r.feedback


def test_malformed_and_empty_files(batch):
    w = batch["rows"]["weird.ipynb"]
    assert w.status == "error" and w.assignment == "A1" and w.max == 20
    assert "cell 1 is malformed (its source is int)" in w.message
    assert "cell 2 is malformed" in w.message
    assert "cell 3 has a syntax error (line 1: expected ':'" in w.message
    assert "`duality_gap` is not defined in the notebook (cell 3 has a syntax error" in w.feedback
    e = batch["rows"]["empty_a1.ipynb"]
    assert e.status == "error" and e.max == 20 and "the file is empty" in e.message


def test_the_batch_stays_within_its_limits(batch):
    # 11 files, two at a time; each hostile one costs at most a few limits of 5 s
    assert batch["wall"] < 90
