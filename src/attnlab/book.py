"""Small helpers for chapters: glue values into prose, in the book and in Colab alike."""

from __future__ import annotations

from typing import Any

__all__ = ["ClaimError", "api_markdown", "claim", "fmt", "glue", "glue_all", "integer_ticks"]


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


def glue_all(prefix: str, digits: int = 3, **values: Any) -> None:
    """Glue several values at once, as ``{prefix}{name}``, formatted for prose.

    ``glue_all("sp_", steps=3000, gap=1.5e-3, count=k_of_n)`` glues ``sp_steps = "3000"``,
    ``sp_gap = "1.50e-03"`` (:func:`fmt` with ``digits``) and ``sp_count = str(k_of_n)``:
    integers print whole, other reals through :func:`fmt`, everything else through ``str``.
    One call replaces a column of :func:`glue` lines, so cells stay short.
    """
    import numbers

    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
    if not values:
        raise ValueError("values: give at least one name=value to glue")
    if isinstance(digits, bool) or not isinstance(digits, numbers.Integral) \
            or not 1 <= digits <= 17:
        raise ValueError(f"digits must be an integer from 1 to 17, got {digits!r}")
    for name, value in values.items():
        if isinstance(value, bool):
            raise TypeError(f"{name} must be a number or text, got a bool: glue a word instead")
        if isinstance(value, numbers.Integral):
            text = str(int(value))
        elif isinstance(value, numbers.Real):
            text = fmt(value, digits)
        else:
            text = str(value)
        glue(prefix + name, text)


class ClaimError(AssertionError):
    """A sentence of the book no longer matches the number its cell computed."""


def claim(condition: Any, text: str, **values: Any) -> None:
    """Bind a sentence of the prose to the computation behind it.

    ``claim(k_gauss > k_soft, "the Gaussian converges more often", k_gauss=k_gauss, ...)``
    does nothing when ``condition`` is true; otherwise it raises :class:`ClaimError`
    quoting ``text`` and the ``values``, so the book build fails instead of printing a
    sentence its own numbers contradict. ``condition`` must be a bool (a NumPy bool too):
    an array would be ambiguous.
    """
    if not isinstance(text, str) or not text:
        raise ValueError(f"text must be a non-empty str, got {text!r}")
    import numpy as np

    if not isinstance(condition, (bool, np.bool_)):
        raise TypeError(f"condition must be a bool, got {type(condition).__name__}")
    if not condition:
        shown = ", ".join(f"{k} = {v!r}" for k, v in values.items())
        raise ClaimError(f"claim no longer holds: {text}" + (f" ({shown})" if shown else ""))


def integer_ticks(*axes: Any) -> None:
    """Put ticks only at whole numbers on both axes of each matplotlib ``Axes``.

    Heat maps of tokens, heads or gates index cells by integers; matplotlib's default
    locator would label half-cells (``0.5``, ``1.5``) too.
    """
    from matplotlib.axes import Axes
    from matplotlib.ticker import MaxNLocator

    if not axes:
        raise ValueError("axes: give at least one matplotlib Axes")
    for ax in axes:
        if not isinstance(ax, Axes):
            raise TypeError(f"axes must be matplotlib Axes, got {type(ax).__name__}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def fmt(x: float, digits: int = 3) -> str:
    """Format a number for prose: fixed point when moderate, scientific otherwise (NaN and
    inf print as ``nan`` and ``inf``)."""
    import numbers

    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"x must be a real number, got {type(x).__name__} {x!r}")
    if isinstance(digits, bool) or not isinstance(digits, numbers.Integral) \
            or not 1 <= digits <= 17:
        raise ValueError(f"digits must be an integer from 1 to 17, got {digits!r}")
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
