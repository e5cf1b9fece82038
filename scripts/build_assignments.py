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

It also writes the stored problems of the A1 speed test,
``src/attnlab/checks/data/a1_speed.json``: the FISTA variants that produce them live here,
with the instructor's tools, never in the package (the public checks only compare with the
stored values).
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


# ----------------------------------------------------------------------------- A1 speed data
SPEED_K, SPEED_PROBLEMS, SPEED_SEED = 200, 4, 20_240


def fista_variant(X, y, beta: float, n_iter: int, *, momentum: bool = True,
                  restart: bool = True):
    """Proximal gradient from ``Z = 0`` with step ``1/lambda_max(A^T A)``: FISTA with the
    gradient-mapping restart (default), FISTA without restart, or plain ISTA."""
    import numpy as np

    N, n, d = X.shape
    A = X.reshape(N, n * d)
    step = 1.0 / np.linalg.eigvalsh(A.T @ A)[-1]
    z = np.zeros(n * d)
    z_prev, t = z.copy(), 1.0
    for _ in range(n_iter):
        t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t)) if momentum else 1.0
        yk = z + (t - 1.0) / t_next * (z - z_prev)
        v = (yk - step * (A.T @ (A @ yk - y))).reshape(n, d)
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        z_new = (v * np.clip(1.0 - step * beta / np.where(norms > 0, norms, np.inf), 0.0,
                             None)).ravel()
        if restart and (yk - z_new) @ (z_new - z) > 0:
            t_next = 1.0
        z_prev, z, t = z, z_new, t_next
    return z.reshape(n, d)


def speed_data() -> str:
    """JSON of the A1 speed problems: ill-conditioned problems on which, after K steps,
    FISTA with restart is within 1e-12 of the optimum while FISTA without restart and plain
    proximal gradient are above 1e-7 (FISTA without restart oscillates, so an instance can
    hit the optimum by chance: such instances are skipped)."""
    import json

    import numpy as np

    from attnlab import convex
    from attnlab.checks.a1 import lasso_problem

    rng = np.random.default_rng(SPEED_SEED)
    problems = []
    while len(problems) < SPEED_PROBLEMS:
        X, y, beta = lasso_problem(rng, N=30, n=6, d=3, rho=0.95, frac=0.05)
        opt = convex.fit(X, y, beta, tol=1e-12, max_iter=200_000).primal
        runs = {"restart": fista_variant(X, y, beta, SPEED_K),
                "no_restart": fista_variant(X, y, beta, SPEED_K, restart=False),
                "ista": fista_variant(X, y, beta, SPEED_K, momentum=False, restart=False)}
        sub = {k: (convex.primal_objective(Z, X, y, beta) - opt) / max(1.0, abs(opt))
               for k, Z in runs.items()}
        if sub["restart"] <= 1e-12 and sub["no_restart"] >= 1e-7 and sub["ista"] >= 1e-7:
            problems.append({"X": X.tolist(), "y": y.tolist(), "beta": float(beta),
                             "optimum": float(opt), "no_restart": runs["no_restart"].tolist(),
                             "ista": runs["ista"].tolist()})
    return json.dumps({"K": SPEED_K, "problems": problems}, sort_keys=True) + "\n"


def expected_files() -> dict[Path, str]:
    """Everything this script writes, with its expected content."""
    out: dict[Path, str] = {ROOT / "src/attnlab/checks/data/a1_speed.json": speed_data()}
    for path in sources():
        for version in VERSIONS:
            out[ROOT / "assignments" / version / f"{path.stem}.ipynb"] = build(path, version)
    return out


def _same_numbers(a: object, b: object) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_numbers(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_numbers(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float | int) and isinstance(b, float | int):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    return a == b


def stale_files() -> list[Path]:
    """Generated files that are missing or differ, plus notebooks no source produces. Stored
    data is compared with a relative tolerance of 1e-9 (other BLAS, other last digits)."""
    import json

    stale = _make_notebooks().find_stale(expected_files(), _folders())
    return [p for p in stale if not (p.suffix == ".json" and p.exists() and _same_numbers(
        json.loads(p.read_text()), json.loads(expected_files()[p])))]


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
