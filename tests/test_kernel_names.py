"""The kernel names live in one place: the kernel table. Outside it, src/attnlab may name a
kernel only in docstrings and comments (adding a kernel is one table entry)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "attnlab"


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def test_kernel_names_appear_only_in_the_table():
    from attnlab.kernels import KERNELS

    hits = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and node.value in KERNELS
                    and id(node) not in docs):
                hits.append(f"{path.relative_to(SRC)}:{node.lineno}")
    table = [h for h in hits if h.startswith("kernels.py")]
    assert len(table) == len(KERNELS), table  # one row each
    assert sorted(set(hits) - set(table)) == []
