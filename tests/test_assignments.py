"""Course assignments: checks, student/instructor builds, bulk grading, instructors page.

The reference solutions are taken from the generated instructor notebooks and the blank
submissions from the student notebooks, so these tests follow the real assignment files.
Typical mistakes are made by editing one line of a reference solution.
"""

from __future__ import annotations

import ast
import csv
import json
import math
import re
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pytest
import yaml
from _scripts import load_script

from attnlab import convex, dynamics, init_params, random_tokens
from attnlab.checks import ASSIGNMENTS, a1, a2, a3, core
from attnlab.checks.grade import detect_assignment, grade_folder
from attnlab.checks.grading import grade_namespace

ROOT = Path(__file__).resolve().parents[1]
SLUGS = {key: spec.slug for key, spec in ASSIGNMENTS.items()}


def load_builder(root: Path = ROOT):
    return load_script("build_assignments", root)


def _definitions_only(source: str) -> bool:
    """A cell made only of imports, function definitions and constant assignments."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    ok = (ast.Import, ast.ImportFrom, ast.FunctionDef)
    return bool(tree.body) and all(
        isinstance(node, ok) or (isinstance(node, ast.Assign)
                                 and isinstance(node.value, ast.Constant))
        for node in tree.body)


def function_cells(version: str, key: str) -> list[str]:
    """Sources of the cells of a generated notebook that define the graded functions."""
    nb = json.loads((ROOT / "assignments" / version / f"{SLUGS[key]}.ipynb").read_text())
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    return [c for c in cells if _definitions_only(c)]


def namespace(version: str, key: str, edit: tuple[str, str] | None = None) -> dict:
    """Execute the definition cells (optionally with one text replacement) into a dict."""
    sources = function_cells(version, key)
    if edit is not None:
        old, new = edit
        hits = [i for i, s in enumerate(sources) if old in s]
        assert hits, f"the reference solution no longer contains {old!r}"
        sources[hits[0]] = sources[hits[0]].replace(old, new, 1)
    ns: dict = {}
    for src in sources:
        exec(compile(src, f"<{key} {version}>", "exec"), ns)
    return ns


def by_part(results) -> dict:
    return {r.part: r for r in results}


# ----------------------------------------------------------------------------- checks
@pytest.mark.parametrize("key", sorted(ASSIGNMENTS))
def test_reference_solutions_pass_every_check(key):
    ns = namespace("instructor", key)
    for seed in (0, 7):
        results = grade_namespace(key, ns, seed=seed)
        assert [r.part for r in results] == [p.id for p in ASSIGNMENTS[key].parts]
        failed = {r.part: r.messages for r in results if not r.passed}
        assert not failed, failed


def test_reference_gaussian_gradient_passes():
    ns = namespace("instructor", "A3", ('KERNEL = "softmax"', 'KERNEL = "gaussian"'))
    res = by_part(grade_namespace("A3", ns, seed=3))
    assert res["A3.1"].passed and res["A3.2"].passed, res["A3.1"].messages + res["A3.2"].messages


@pytest.mark.parametrize("key", sorted(ASSIGNMENTS))
def test_blank_submission_scores_zero_with_a_clear_message(key):
    ns = namespace("student", key)
    results = grade_namespace(key, ns, seed=1)
    for r in results:
        assert r.points == 0, (r.part, r.summary())
        assert "is not implemented yet" in r.error, r.summary()
        assert "raise NotImplementedError" in r.summary()


def test_missing_function_is_reported_by_name():
    ns = namespace("instructor", "A1")
    del ns["duality_gap"]
    res = by_part(grade_namespace("A1", ns, seed=0))
    assert res["A1.3"].points == 0 and "`duality_gap` is not defined" in res["A1.3"].error
    assert res["A1.1"].passed


# One line of a reference solution changed -> (assignment, part, edit, expected feedback,
# expected points).  Points are pinned so that partial credit stays as designed.
MISTAKES = [
    ("A1", "A1.1", "entrywise", ("return V * factor",
                                 "return np.sign(V) * np.maximum(np.abs(V) - tau, 0.0)"),
     "each entry separately", 2.5),
    ("A1", "A1.1", "no clip", ("np.maximum(0.0, 1.0 - tau / np.maximum(norms, 1e-300))",
                               "(1.0 - tau / np.maximum(norms, 1e-300))"),
     "clip the factor", 3.0),
    ("A1", "A1.2", "wrong sign", ("Y - step * grad", "Y + step * grad"),
     "check the sign of the gradient", 0.0),
    ("A1", "A1.2", "missing 1/2", ("grad = A.T @ (A @ Y - y)", "grad = 2 * A.T @ (A @ Y - y)"),
     "no factor 2", 0.0),
    ("A1", "A1.2", "wrong threshold", ("step * beta).ravel()", "beta).ravel()"),
     "threshold must be step * beta", 0.0),
    ("A1", "A1.2", "no restart", ("t_next = 1.0\n", "pass\n"),
     "converges like FISTA without restart", 4.0),
    ("A1", "A1.2", "one too few", ("for _ in range(n_iter):", "for _ in range(n_iter - 1):"),
     "one iteration too few", 5.0),
    ("A1", "A1.2", "one too many", ("for _ in range(n_iter):", "for _ in range(n_iter + 1):"),
     "one iteration too many", 5.0),
    ("A2", "A2.2", "one too few", ("for _ in range(steps):", "for _ in range(steps - 1):"),
     "one step too few", 1.0),
    ("A1", "A1.3", "missing 1/2", ("primal = 0.5 * r @ r", "primal = r @ r"),
     "misses the factor 1/2", None),
    ("A1", "A1.3", "unscaled dual", ("lam = s * r", "lam = r"), "not feasible", 2.5),
    ("A1", "A1.4", "printed e_j", ("w[np.arange(len(rows)), rows] = 1.0",
                                   "w[np.arange(len(rows)), np.arange(len(rows))] = 1.0"),
     "typo in the printed Proposition 1", 3.0),
    ("A1", "A1.4", "unbalanced", ("v = Z[rows] / b[:, None]",
                                   "v = Z[rows].copy(); b = np.ones_like(b)"),
     "balance the two factors", 3.0),
    ("A1", "A1.5", "sum of norms", ("axis=1).max())", "axis=1).sum())"),
     "not their sum", 0.0),
    ("A2", "A2.1", "transposed S", ('"hikj,ija->ikha"', '"hijk,ija->ikha"'),
     "transposed attention", 1.0),
    ("A2", "A2.1", "column order", ('"hikj,ija->ikha"', '"hikj,ija->ikah"'),
     "columns are in the wrong order", 2.0),
    ("A2", "A2.2", "wrong sign", ("w = w - lr", "w = w + lr"), "sign error", 1.0),
    ("A2", "A2.2", "missing 1/2", ("w = w - lr * (", "w = w - 2 * lr * ("), "no factor 2", 1.0),
    ("A2", "A2.3", "not squared", ("return (1.0 - lr * s_min**2) ** 2",
                                   "return 1.0 - lr * s_min**2"), "square it", 0.0),
    ("A2", "A2.4", "no tolerance", ("len(s) == N * n and s[-1] > 1e-10 * s[0]",
                                    "s[-1] > 0"), "you accept every D", 0.0),
    ("A3", "A3.1", "wrong sign", ("return np.einsum(\"ik,ika,ikc->ac\", r, X, g)",
                                  "return -np.einsum(\"ik,ika,ikc->ac\", r, X, g)"),
     "sign error", 1.0),
    ("A3", "A3.1", "missing 1/2", ("r = Z - y", "r = 2 * (Z - y)"), "carries a factor 1/2", 1.0),
    ("A3", "A3.1", "missing scale", ("g = c * np.einsum(", "g = np.einsum("),
     "factor 1/sqrt(d)", 1.0),
    ("A3", "A3.1", "no centering", ("A = S * (u[:, None, :] - Z[:, :, None])",
                                    "A = S * u[:, None, :]"), "-Z_ik term is missing", 1.0),
    ("A3", "A3.2", "missing 1/2", ("loss = 0.5 * (out", "loss = (out"),
     "carries a factor 1/2", 1.0),
    ("A3", "A3.4", "missing 1/2", ("return 0.5 * float(np.sum(dist**2))",
                                   "return float(np.sum(dist**2))"), "factor 1/2", 1.0),
    ("A3", "A3.4", "one side only", ("+ np.maximum(y - hi[:, None], 0.0)", ""),
     "targets ABOVE the hull count", 1.0),
]


@pytest.mark.parametrize("key, part, label, edit, feedback, points", MISTAKES,
                         ids=[f"{m[1]}-{m[2]}" for m in MISTAKES])
def test_typical_mistakes_get_specific_feedback(key, part, label, edit, feedback, points):
    ns = namespace("instructor", key, edit)
    spec = next(p for p in ASSIGNMENTS[key].parts if p.id == part)
    opts = {kw: ns.get(var, default) for kw, var, default in spec.options}
    res = spec.check(*[ns[f] for f in spec.functions], seed=11, verbose=False, **opts)
    assert not res.passed
    text = " ".join(res.messages)
    assert feedback in text, f"{label}: expected {feedback!r} in {text!r}"
    if points is not None:
        assert res.points == pytest.approx(points), res.summary()


def test_feedback_does_not_print_reference_values():
    """A wrong gradient's report shows no entry of the reference gradient."""
    ns = namespace("instructor", "A3", ("r = Z - y", "r = 2 * (Z - y)"))
    res = a3.check_wq_gradient(ns["wq_gradient"], seed=5, verbose=False)
    rng = np.random.default_rng(5)
    # rebuild the first hidden case exactly as the check draws it
    args = a3._gradient_case(rng, 0.5)
    ref = a3._grad_ref(*args, "softmax")
    text = res.summary()
    for v in ref.ravel()[:10]:
        assert f"{v:.3g}" not in text and f"{v:.6f}" not in text


def test_check_stops_a_function_that_never_returns(monkeypatch):
    monkeypatch.setattr(core, "CALL_LIMIT_S", 0.3)

    def beta_max(X, y):
        while True:
            pass

    res = a1.check_beta_max(beta_max, seed=0, verbose=False)
    assert res.points == 0 and "did not return within 0.3 s" in res.error


def test_check_reports_exceptions_and_wrong_return_types():
    res = a1.check_beta_max(lambda X, y: 1 / 0, seed=0, verbose=False)
    assert "raised ZeroDivisionError" in res.error
    res = a1.check_group_soft_threshold(lambda V, tau: None, seed=0, verbose=False)
    assert "returned None" in res.error
    res = a2.check_feature_matrix(lambda X, S: np.zeros((3, 3)), seed=0, verbose=False)
    assert "expected shape" in res.error


def test_checks_are_deferred_in_a_grading_run(monkeypatch, capsys):
    ns = namespace("instructor", "A1")
    monkeypatch.setenv("ATTNLAB_GRADING", "1")
    res = a1.check_beta_max(ns["beta_max"])
    assert res.deferred and res.points == 0 and "graded at the end" in capsys.readouterr().out
    assert a1.check_beta_max(ns["beta_max"], force=True, verbose=False).passed


def test_report_lists_every_part(capsys):
    core.reset()
    a1.check_beta_max(namespace("instructor", "A1")["beta_max"], seed=0, verbose=False)
    text = core.report(a1.ASSIGNMENT)
    assert "A1.5" in text and "2 / 2" in text and "(not run yet)" in text
    assert "(graded by hand)" in text and f"total available: {a1.ASSIGNMENT.total_points:g}" in text


# ----------------------------------------------------------------------------- references
def test_check_helpers_agree_with_the_package():
    rng = np.random.default_rng(0)
    from attnlab.convex.fista import _prox

    V = rng.standard_normal((6, 3))
    import torch

    ref = _prox(torch.tensor(V).reshape(-1, 1), 0.8, 6, 3).reshape(6, 3).numpy()
    assert np.allclose(a1._shrink(V, 0.8), ref)
    # the softmax hull equals the engine's reachable interval
    Xt = random_tokens(3, 4, 6, seed=1)
    p = init_params(H=1, D=6, d=2, init_scale=1.0, seed=1)
    lo, hi = dynamics.reachable_interval(Xt, p, "softmax")
    lo2, hi2 = a3._hull(Xt.numpy(), p.W_V[0, 0, :, 0].numpy())
    assert np.allclose(lo[0, :, 0], lo2) and np.allclose(hi[0, :, 0], hi2)
    # the rank property behind A2.4 holds exactly from H D >= N n on
    for N, n, H in [(3, 4, 2), (2, 3, 3)]:
        D_star = math.ceil(N * n / H)
        assert a2._full_row_rank(N, n, H, D_star, seed=0)
        assert not a2._full_row_rank(N, n, H, D_star - 1, seed=0)


def test_gradient_descent_closed_form_matches_the_loop():
    rng = np.random.default_rng(1)
    for shape in [(12, 16), (16, 10)]:
        C = rng.standard_normal(shape)
        y = rng.standard_normal(shape[0])
        lr = 0.9 / np.linalg.norm(C, 2) ** 2
        w = np.zeros(shape[1])
        for k in range(1, 41):
            w = w - lr * (C.T @ (C @ w - y))
            assert np.allclose(a2._gd_closed_form(C, y, lr, k), w, rtol=1e-10, atol=1e-12)


def test_stored_speed_problems_separate_restart_from_no_restart():
    """On every stored problem, the instructor's FISTA with restart reaches the optimum in K
    steps and the stored variants do not (the data a1.check_prox_grad relies on)."""
    data = a1.speed_problems()
    assert len(data["problems"]) >= 4
    ns = namespace("instructor", "A1")
    for p in data["problems"]:
        X, y, beta = p["X"], p["y"], p["beta"]

        def sub(Z, X=X, y=y, beta=beta, opt=p["optimum"]):
            return (convex.primal_objective(Z, X, y, beta) - opt) / max(1.0, opt)

        assert sub(ns["prox_grad"](X, y, beta, data["K"])) <= 1e-12
        assert sub(p["no_restart"]) >= 1e-7 and sub(p["ista"]) >= 1e-7


# ----------------------------------------------------------------------------- builds
def test_generated_assignments_are_in_sync():
    bd = load_builder()
    assert bd.sources(), "no assignment sources found"
    stale = bd.stale_files()
    assert not stale, f"stale (run `python scripts/build_assignments.py`): {stale}"


def test_sync_check_detects_a_stale_notebook(tmp_path):
    for name in ["_config.yml", "pyproject.toml"]:
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "src/attnlab/checks/data", tmp_path / "src/attnlab/checks/data")
    shutil.copytree(ROOT / "scripts", tmp_path / "scripts")
    shutil.copytree(ROOT / "assignments", tmp_path / "assignments")
    bd = load_builder(tmp_path)
    assert bd.stale_files() == []
    src = bd.sources()[0]
    src.write_text(src.read_text() + "\n```{code-cell} ipython3\nprint('new')\n```\n")
    stale = bd.stale_files()
    assert tmp_path / "assignments" / "student" / f"{src.stem}.ipynb" in stale
    assert tmp_path / "assignments" / "instructor" / f"{src.stem}.ipynb" in stale


def _solution_lines(source: str) -> list[str]:
    """Distinctive lines inside the solution regions of a source (long, not comments)."""
    out, inside = [], False
    for line in source.splitlines():
        s = line.strip()
        if s in ("# BEGIN SOLUTION", "% BEGIN SOLUTION"):
            inside = True
        elif s in ("# END SOLUTION", "% END SOLUTION"):
            inside = False
        elif inside and len(s) > 25 and not s.startswith("#"):
            out.append(s)
    return out


@pytest.mark.parametrize("key", sorted(ASSIGNMENTS))
def test_student_build_has_no_solutions(key):
    source = (ROOT / "assignments" / f"{SLUGS[key]}.md").read_text()
    outside = {ln.strip() for ln in load_builder().strip_cell(source, "code", "student")
               .splitlines()}
    student = json.loads((ROOT / "assignments/student" / f"{SLUGS[key]}.ipynb").read_text())
    instructor = (ROOT / "assignments/instructor" / f"{SLUGS[key]}.ipynb").read_text()
    text = "\n".join("".join(c["source"]) for c in student["cells"])
    for marker in ("BEGIN SOLUTION", "END SOLUTION"):
        assert marker not in text and marker not in instructor
    lines = [ln for ln in _solution_lines(source) if ln not in outside]
    assert len(lines) >= 10
    leaked = [ln for ln in lines if ln in text]
    assert not leaked, leaked
    assert all(json.dumps(ln)[1:-1] in instructor for ln in lines)
    n_regions = source.count("# BEGIN SOLUTION")
    assert text.count("raise NotImplementedError  # TODO") == n_regions
    assert text.count("_Write your answer here._") == source.count("% BEGIN SOLUTION")
    for cell in student["cells"]:
        if cell["cell_type"] == "code":
            ast.parse("".join(cell["source"]))  # the stubs leave valid Python
    assert student["metadata"]["attnlab"] == {"assignment": key, "version": "student"}
    first = "".join(student["cells"][0]["source"])
    assert "google.colab" in first and "pip" in first


def test_marker_errors_are_reported():
    bd = load_builder()
    with pytest.raises(ValueError, match="without END"):
        bd.strip_cell("x = 1\n# BEGIN SOLUTION\ny = 2", "code", "student", "cell 3")
    with pytest.raises(ValueError, match="without BEGIN"):
        bd.strip_cell("% END SOLUTION", "markdown", "student")
    out = bd.strip_cell("def f():\n    # BEGIN SOLUTION\n    return 1\n    # END SOLUTION",
                        "code", "student")
    assert out == "def f():\n    raise NotImplementedError  # TODO"


@pytest.mark.parametrize("key", sorted(ASSIGNMENTS))
def test_points_table_matches_the_check_scheme(key):
    spec = ASSIGNMENTS[key]
    text = (ROOT / "assignments" / f"{spec.slug}.md").read_text()
    table = dict(re.findall(r"^\| (A\d\.\w+) \| [^|]+ \| (\d+) \|$", text, re.M))
    expected = {p.id: p.points for p in spec.parts} | {w.id: w.points for w in spec.written}
    assert {k: float(v) for k, v in table.items()} == expected
    assert f"**Points** ({spec.total_points:g} in total)" in text


# ----------------------------------------------------------------------------- grading
def _notebook(path: Path, cells: list[str], assignment: str | None = "A1") -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    if assignment:
        nb.metadata["attnlab"] = {"assignment": assignment}
    nbformat.write(nb, path)


def test_detect_assignment(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("from attnlab.checks import a3")]
    assert detect_assignment(nb, Path("whatever.ipynb")) == "A3"
    assert detect_assignment(nb, Path("alice_A2.ipynb")) == "A2"
    nb.metadata["attnlab"] = {"assignment": "A1"}
    assert detect_assignment(nb, Path("alice_a2.ipynb")) == "A1"
    assert detect_assignment(nbformat.v4.new_notebook(), Path("x.ipynb")) is None


def test_bulk_grading_writes_the_expected_csv(tmp_path):
    sub = tmp_path / "submissions"
    sub.mkdir()
    ref = function_cells("instructor", "A1")
    wrong = [c.replace("return V * factor",
                       "return np.sign(V) * np.maximum(np.abs(V) - tau, 0.0)") for c in ref]
    check = "from attnlab.checks import a1\na1.check_beta_max(beta_max)"
    _notebook(sub / "correct.ipynb", [*ref, check])
    _notebook(sub / "wrong.ipynb", wrong)
    _notebook(sub / "broken.ipynb", [*ref, "raise ValueError('boom')", "x = 1"])
    _notebook(sub / "loops.ipynb", [*ref, "while True:\n    pass", "y = 2"])
    (sub / "garbage.ipynb").write_text("not a notebook")
    out = tmp_path / "scores.csv"
    fb = tmp_path / "feedback"
    rows = grade_folder(sub, out_csv=out, feedback_dir=fb, seed=0, cell_timeout=3, timeout=60,
                        jobs=2)
    assert len(rows) == 5
    table = {r["file"]: r for r in csv.DictReader(out.open())}
    header = next(csv.reader(out.open()))
    assert header[:9] == ["file", "student", "assignment", "A1.1", "A1.2", "A1.3", "A1.4",
                          "A1.5", "total"]
    assert header[9:12] == ["max", "status", "message"] and header[-1] == "seed"
    assert (table["correct.ipynb"]["status"], table["correct.ipynb"]["total"]) == ("ok", "20")
    w = table["wrong.ipynb"]
    assert w["status"] == "ok" and w["A1.1"] == "2.5" and float(w["total"]) < 20
    assert w["A1.3"] == "4"  # the other parts are unaffected
    b = table["broken.ipynb"]
    assert b["status"] == "error" and "raised ValueError: boom" in b["message"]
    assert b["total"] == "20"  # functions defined before the broken cell are still graded
    lp = table["loops.ipynb"]
    assert lp["status"] == "timeout" and "did not finish within 3 s" in lp["message"]
    assert "cell " in lp["message"] and "(`while True:`)" in lp["message"]
    assert lp["total"] == "20"  # the loop was interrupted, the functions are still graded
    g = table["garbage.ipynb"]
    assert g["status"] == "error" and "not a readable notebook" in g["message"]
    # not a notebook, but scored against the real maximum of the folder's assignment
    assert (g["assignment"], g["total"], g["max"]) == ("A1", "0", "20")
    text = (fb / "wrong.txt").read_text()
    assert "each entry separately" in text and "A1.1 group soft-thresholding: 2.5/4" in text


def test_scores_are_deterministic(tmp_path):
    """The same notebook gets the same points on every run (fixed hidden cases)."""
    sub = tmp_path / "s"
    sub.mkdir()
    ref = function_cells("instructor", "A1")
    wrong = [c.replace("t_next = 1.0\n", "pass\n") for c in ref]
    _notebook(sub / "a_a1.ipynb", wrong)
    _notebook(sub / "b_a1.ipynb", wrong)
    rows = grade_folder(sub, jobs=1)
    assert rows[0].points == rows[1].points and rows[0].seed == rows[1].seed == 0


# ----------------------------------------------------------------------------- book page
def test_instructors_page_links_and_toc():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    slug = config["repository"]["url"].removeprefix("https://github.com/").rstrip("/")
    branch = config["repository"].get("branch", "main")
    text = (ROOT / "book/instructors.md").read_text()
    assert not text.startswith("---"), "plain Markdown page: no jupytext header"
    for spec in ASSIGNMENTS.values():
        path = f"assignments/student/{spec.slug}.ipynb"
        assert (ROOT / path).exists()
        assert f"colab.research.google.com/github/{slug}/blob/{branch}/{path}" in text
        assert f"mybinder.org/v2/gh/{slug}/{branch}?labpath={path}" in text
    assert "python -m attnlab.checks.grade" in text
    # the example report on the page is the real feedback of the check
    ns = namespace("instructor", "A1", ("t_next = 1.0\n", "pass\n"))
    res = a1.check_prox_grad(ns["prox_grad"], seed=2, verbose=False)
    flat = " ".join(text.split())
    assert res.summary().splitlines()[0] in flat
    assert res.tests[-1].feedback in flat
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    captions = [part["caption"] for part in toc["parts"]]
    i = captions.index("For instructors")
    assert captions[i + 1] == "Reference"
    assert toc["parts"][i]["chapters"] == [{"file": "book/instructors"}]
