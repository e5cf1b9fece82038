"""Results of the Part III experiments: one small ``.npz`` per run, and plots.

A :class:`Result` holds named arrays (curves with a leading seed axis, e.g.
``"softmax/test_acc" (S, T)``) and JSON metadata (config, device, data note, timings).
``save`` writes ``<name>.npz`` (arrays + the metadata as a JSON string) so a figure can be
redrawn with :func:`load_result` without retraining.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Result", "load_result", "plot_curves", "summary"]

_META = "__meta__"


@dataclass
class Result:
    """Arrays and metadata of one experiment.

    Attributes:
        experiment: name (``"imdb"``, ``"pathfinder"``, ...).
        arrays: name -> NumPy array; curves are ``(S, T)`` over seeds and log points, with
            the x axis in ``"epoch"`` or ``"step"`` ``(T,)``.
        meta: JSON-ready dict: ``config``, ``device``, ``seconds``, ``note``, ``stop``...
    """

    experiment: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path`` (``.npz`` added if missing); returns the file path."""
        p = Path(path)
        if p.suffix != ".npz":
            p = p.with_name(p.name + ".npz")
        p.parent.mkdir(parents=True, exist_ok=True)
        meta = json.dumps({"experiment": self.experiment, **self.meta}, default=str)
        np.savez_compressed(p, **self.arrays, **{_META: np.array(meta)})
        return p


def load_result(path: str | os.PathLike) -> Result:
    """Read a file written by :meth:`Result.save`."""
    p = Path(path)
    if not p.is_file() and p.with_name(p.name + ".npz").is_file():
        p = p.with_name(p.name + ".npz")
    if not p.is_file():
        raise FileNotFoundError(f"path {p} does not exist")
    with np.load(p, allow_pickle=False) as z:
        if _META not in z.files:
            raise ValueError(f"path {p} is not an attnlab experiment result (no metadata)")
        meta = json.loads(str(z[_META]))
        arrays = {k: z[k] for k in z.files if k != _META}
    return Result(meta.pop("experiment"), arrays, meta)


def summary(result: Result, metric: str, variants: list[str] | None = None) -> dict[str, str]:
    """Final value of ``<variant>/<metric>`` as ``"mean (min-max)"`` strings over seeds."""
    out = {}
    for v in variants or result.meta.get("variants", []):
        last = np.asarray(result.arrays[f"{v}/{metric}"])[:, -1]
        out[v] = f"{last.mean():.3f} ({last.min():.3f}-{last.max():.3f})"
    return out


def plot_curves(result: Result, metric: str, *, ax=None, variants: list[str] | None = None,
                x: str | None = None, title: str | None = None, ylabel: str | None = None):
    """Mean over seeds (line) and min-max over seeds (band) of ``<variant>/<metric>``.

    Returns the matplotlib axis.
    """
    import matplotlib.pyplot as plt

    ax = ax if ax is not None else plt.gca()
    x = x or ("epoch" if "epoch" in result.arrays else "step")
    xs = result.arrays[x]
    for v in variants or result.meta.get("variants", []):
        ys = np.asarray(result.arrays[f"{v}/{metric}"], float)
        (line,) = ax.plot(xs, np.nanmean(ys, 0), label=v)
        if ys.shape[0] > 1:
            ax.fill_between(xs, np.nanmin(ys, 0), np.nanmax(ys, 0), alpha=0.2,
                            color=line.get_color())
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel or metric.replace("_", " "))
    if title:
        ax.set_title(title)
    ax.legend()
    return ax
