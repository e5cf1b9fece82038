"""Small helpers for chapters: glue values into prose, in the book and in Colab alike."""

from __future__ import annotations

from typing import Any

__all__ = ["api_markdown", "fmt", "glue"]


def glue(name: str, value: Any, display: bool = False) -> None:
    """Store ``value`` under ``name`` for ``{glue:}`` roles in the book.

    Uses ``myst_nb.glue`` when it is installed (book builds); elsewhere (Colab, plain
    Jupyter) the value is shown when ``display`` is true and otherwise ignored, so the
    same notebook runs everywhere.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty str, got {name!r}")
    try:
        from myst_nb import glue as _glue
    except ImportError:
        if display:
            from IPython.display import display as _display

            _display(value)
        return
    _glue(name, value, display=display)


def fmt(x: float, digits: int = 3) -> str:
    """Format a number for prose: fixed point when moderate, scientific otherwise."""
    x = float(x)
    if x == 0 or 1e-3 <= abs(x) < 1e4:
        return f"{x:.{digits}g}"
    return f"{x:.{max(digits - 1, 1)}e}"


def api_markdown(module: Any, names: list[str] | None = None) -> str:
    """Markdown reference for the public names of ``module`` (default: its ``__all__``).

    Each entry shows the call signature and the docstring, so the book's API appendix is
    generated from the code and cannot drift from it.
    """
    import inspect

    if names is None:
        names = sorted(n for n in getattr(module, "__all__", []) if not n.startswith("__"))
    parts = []
    for name in names:
        if not hasattr(module, name):
            raise ValueError(f"names: {module.__name__} has no attribute {name!r}")
        obj = getattr(module, name)
        if inspect.ismodule(obj):
            summary = (inspect.getdoc(obj) or "").split("\n\n")[0]
            parts.append(f"### `{name}` (module)\n\n{summary}\n")
            continue
        if not callable(obj):
            parts.append(f"### `{name}`\n\nConstant: `{obj!r}`\n")
            continue
        try:
            sig = f"{name}{inspect.signature(obj)}"
        except (TypeError, ValueError):
            sig = name
        doc = inspect.getdoc(obj) or "(no docstring)"
        kind = "class" if inspect.isclass(obj) else "function"
        parts.append(f"### `{name}` ({kind})\n\n```python\n{sig}\n```\n\n```text\n{doc}\n```\n")
    return "\n".join(parts)
