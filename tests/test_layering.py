"""The import graph of attnlab: the engine is the bottom layer, the three Parts sit on it
and never import each other, and the apps (widgets, checks) sit on top. Checked on the
source (every ``import`` statement of every module, lazy ones inside functions too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "attnlab"

# Top-level units of the package and what each may import (besides itself).
ENGINE = {"_arrays", "_grad", "_logits", "_optim", "_threads", "_validate", "book", "config",
          "data", "device", "kernels", "landscape", "model", "seed", "stats", "train"}
ALLOWED = {
    **{e: ENGINE for e in ENGINE},
    "convex": ENGINE,  # Part I
    "dynamics": ENGINE,  # Part II
    # Part III. Its chapter "convex in practice" applies Part I's solver to a trained model:
    # the one import across Parts, from the solver's public API only.
    "experiments": ENGINE | {"convex"},
    "widgets": ENGINE | {"dynamics"},
    "checks": ENGINE | {"convex", "dynamics"},
    # Precomputed explorables for the static pages: Part I's path and Part II's sweeps.
    "explore": ENGINE | {"dynamics", "convex"},
    "__init__": None,  # the package root re-exports everything
}


def unit(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def imported_units(path: Path, source: str | None = None) -> set[str]:
    """Top-level attnlab units imported by the module at ``path`` (or by ``source`` as if
    it were that module)."""
    tree = ast.parse(path.read_text() if source is None else source)
    pkg = path.relative_to(SRC).parent.parts  # the module's package inside attnlab
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module and node.module.split(".")[0] == "attnlab":
                    parts = node.module.split(".")[1:]
                    out.add(parts[0] if parts else node.names[0].name)
                continue
            base = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else pkg
            target = (*base, *(node.module.split(".") if node.module else ()))
            out.add(target[0] if target else node.names[0].name)
            if not target:  # "from . import x" at the top level
                out.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "attnlab" and "." in a.name:
                    out.add(a.name.split(".")[1])
    return out


MODULES = sorted(p for p in SRC.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_module_respects_the_layers(path):
    me = unit(path)
    allowed = ALLOWED.get(me, "unknown")
    assert allowed != "unknown", f"{me} is a new top-level unit: add it to ALLOWED"
    if allowed is None:
        return
    bad = sorted(imported_units(path) - allowed - {me})
    assert not bad, f"{path.relative_to(SRC)} imports {bad}, above or beside its layer"


def test_every_module_imports():
    import importlib

    for path in MODULES:
        rel = path.relative_to(SRC).with_suffix("")
        name = ".".join(("attnlab", *rel.parts)).removesuffix(".__init__")
        importlib.import_module(name)


def test_the_checker_sees_upward_and_sideways_imports():
    src = ("from .dynamics import sweep\nfrom ..convex import fit\n"
           "def f():\n    from attnlab.widgets import dashboard\n")
    assert imported_units(SRC / "kernels.py", src) >= {"dynamics", "widgets"}
    assert imported_units(SRC / "dynamics" / "run.py", src) >= {"convex", "widgets"}
    assert imported_units(SRC / "dynamics" / "run.py", "from .sweep import grid\n") == {
        "dynamics"}
