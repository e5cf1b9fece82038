"""Grade the functions of a notebook: run every check of an assignment on them.

Used by the bulk grader (:mod:`attnlab.checks.grade`) with the functions of a submission's
process (:class:`attnlab.checks.remote.RemoteNamespace`), and by the tests with a plain
dict. Also: which graded functions merely stand in for the package's own code.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from typing import Any

from .core import CheckResult
from .spec import Assignment

__all__ = ["grade_namespace", "get_assignment", "static_aliases", "local_aliases",
           "ALIAS_MESSAGE"]

ALIAS_MESSAGE = ("`{name}` is the package's own code ({what}), not an implementation: this "
                 "part asks you to write it yourself, so it scores 0")
# modules whose contents are never part of an answer (the checks and their references)
_CHECK_MODULES = ("attnlab.checks", "attnlab.checks.a1", "attnlab.checks.a2",
                  "attnlab.checks.a3", "attnlab.checks.core")


def get_assignment(key: str | Assignment) -> Assignment:
    """The :class:`Assignment` for ``"A1"``, ``"A2"`` or ``"A3"`` (or pass one through)."""
    if isinstance(key, Assignment):
        return key
    from . import ASSIGNMENTS

    k = str(key).upper()
    if k not in ASSIGNMENTS:
        raise ValueError(f"assignment must be one of {', '.join(ASSIGNMENTS)}; got {key!r}")
    return ASSIGNMENTS[k]


# ----------------------------------------------------------------------------- aliases
def _attnlab_imports(trees: Sequence[ast.Module]) -> dict[str, str]:
    """Local name -> what it is, for every name a notebook imports from attnlab."""
    out: dict[str, str] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name == "attnlab" or a.name.startswith("attnlab."):
                        out[(a.asname or a.name).split(".")[0]] = a.name
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("attnlab"):
                for a in node.names:
                    out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def _forbidden_use(node: ast.AST, forbidden: set[str], imported: Mapping[str, str]
                   ) -> str | None:
    """The first use, inside ``node``, of a forbidden package function or of the checks."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and sub.attr in forbidden:
            return f"{ast.unparse(sub)}"
        if isinstance(sub, ast.Name) and sub.id in imported:
            full = imported[sub.id]
            if full.rsplit(".", 1)[-1] in forbidden or full.startswith(_CHECK_MODULES) \
                    and full not in ("attnlab.checks", "attnlab.checks.report"):
                return full
        if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) \
                and imported.get(sub.value.id, "").startswith(_CHECK_MODULES) \
                and sub.attr not in ("report", "reset", "results") \
                and not sub.attr.startswith("check_"):
            return f"{imported[sub.value.id]}.{sub.attr}"
    return None


def static_aliases(assignment: str | Assignment, sources: Sequence[str]) -> dict[str, str]:
    """Graded function -> message, for functions a notebook's code binds to the package's
    own solution (``f = convex.recover_heads``, ``from attnlab.convex import beta_max``) or
    whose body calls it. Reads the source only (the grader's side: nothing to tamper with).
    Cells that do not parse are ignored."""
    a = get_assignment(assignment)
    trees = []
    for src in sources:
        try:
            trees.append(ast.parse(src))
        except (SyntaxError, ValueError):
            continue
    imported = _attnlab_imports(trees)
    out: dict[str, str] = {}
    for part in a.parts:
        forbidden = set(part.forbidden)
        for name in part.functions:
            last: ast.AST | None = None
            for tree in trees:
                for node in tree.body:
                    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) \
                            and node.name == name:
                        last = node
                    elif isinstance(node, ast.Assign) and any(
                            isinstance(t, ast.Name) and t.id == name for t in node.targets):
                        last = node
                    elif isinstance(node, ast.Import | ast.ImportFrom) and any(
                            (al.asname or al.name) == name for al in node.names):
                        last = node
            if last is None:
                continue
            if isinstance(last, ast.Import | ast.ImportFrom):
                mod = getattr(last, "module", None) or ""
                if mod.startswith("attnlab") or any(al.name.startswith("attnlab")
                                                    for al in last.names):
                    out[name] = ALIAS_MESSAGE.format(name=name, what=f"imported from {mod}")
                continue
            if isinstance(last, ast.Assign):
                value = last.value
                if not isinstance(value, ast.Lambda) and _mentions_attnlab(value, imported):
                    out[name] = ALIAS_MESSAGE.format(name=name, what=ast.unparse(value)[:80])
                    continue
            use = _forbidden_use(last, forbidden, imported)
            if use is not None:
                out[name] = ALIAS_MESSAGE.format(name=name, what=f"it calls {use}")
    return out


def _mentions_attnlab(node: ast.AST, imported: Mapping[str, str]) -> bool:
    return any(isinstance(s, ast.Name) and s.id in imported for s in ast.walk(node))


def local_aliases(namespace: Mapping[str, Any], names: Sequence[str]) -> dict[str, str]:
    """Graded function -> message, for names bound to a function of the attnlab package."""
    from ._child import _alias_of

    out = {}
    for name in names:
        what = _alias_of(namespace.get(name)) if name in namespace else ""
        if what:
            out[name] = ALIAS_MESSAGE.format(name=name, what=what)
    return out


# ----------------------------------------------------------------------------- grading
def grade_namespace(assignment: str | Assignment, namespace: Mapping[str, Any] | Any, *,
                    seed: int | None = None, aliases: Mapping[str, str] | None = None,
                    missing_hint: Mapping[str, str] | None = None) -> list[CheckResult]:
    """Run every check of ``assignment`` on the functions named in ``namespace``.

    Args:
        assignment: ``"A1"``, ``"A2"``, ``"A3"`` or an :class:`Assignment`.
        namespace: e.g. a notebook's ``globals()``, or a remote namespace (anything with
            ``get``).
        seed: base seed of the hidden cases (part ``i`` uses ``seed + i``); None: random.
        aliases: function name -> message for functions that are the package's own code
            (they score 0 for their part); found in a plain dict automatically.
        missing_hint: function name -> why it is missing (e.g. a syntax error).

    Returns:
        One :class:`CheckResult` per part, in order, points within ``[0, max]``. A missing
        function scores 0 with a message naming it.
    """
    a = get_assignment(assignment)
    names = [n for p in a.parts for n in p.functions]
    found = dict(aliases or {})
    if isinstance(namespace, Mapping):
        found.update(local_aliases(namespace, names))
    hints = missing_hint or {}
    out = []
    for i, part in enumerate(a.parts):
        missing = [name for name in part.functions if not callable(namespace.get(name))]
        alias = [found[n] for n in part.functions if n in found]
        if missing:
            why = hints.get(missing[0]) or ("keep the function's name and run the cell that "
                                            "defines it")
            res = CheckResult(part.id, part.title, 0.0, part.points,
                              error=f"`{missing[0]}` is not defined in the notebook ({why})")
        elif alias:
            res = CheckResult(part.id, part.title, 0.0, part.points, error=alias[0] + ".")
        else:
            fns = [namespace.get(name) for name in part.functions]
            opts = {kw: namespace.get(var, default) for kw, var, default in part.options}
            res = part.check(*fns, seed=None if seed is None else seed + i, verbose=False,
                             force=True, **opts)
        res.points = float(min(max(res.points, 0.0), part.points))
        res.max_points = float(part.points)
        out.append(res)
    return out
