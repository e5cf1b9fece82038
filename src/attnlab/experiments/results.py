"""Results of the Part III experiments: one small ``.npz`` per run, and plots.

A :class:`Result` holds named arrays (curves with a leading seed axis, e.g.
``"softmax/test_acc" (S, T)``) and JSON metadata (config, device, data note, timings).
``save`` writes ``<name>.npz`` (arrays + the metadata as a JSON string) so a figure can be
redrawn with :func:`load_result` without retraining.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._validate import check_instance, check_int, check_real
from ..stats import _welch_halfwidth

__all__ = ["Difference", "Result", "difference", "first_step", "gap_curve", "load_result",
           "plot_curves", "relapse_share", "stored_result", "stored_summary", "summary",
           "write_summary"]

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

    @property
    def stop_reason(self) -> str:
        """``"completed"`` when every run of the result completed, else each run that did
        not, as ``"<variant> (seed s): <reason>"`` joined by ``"; "`` (from
        ``meta["stop"]``: variant -> one reason per seed)."""
        seeds = list(self.meta.get("seeds", []))
        bad = [f"{v} (seed {seeds[i] if i < len(seeds) else i}): {r}"
               for v, reasons in self.meta.get("stop", {}).items()
               for i, r in enumerate(reasons) if r != "completed"]
        return "; ".join(bad) if bad else "completed"

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path`` (``.npz`` added if missing) atomically: to a temporary file in the
        same folder, then renamed, so an interrupted save never leaves a truncated result.
        The file gets the usual permissions (0666 less the umask), not the temporary
        file's 0600. Returns the file path."""
        p = Path(path)
        if p.suffix != ".npz":
            p = p.with_name(p.name + ".npz")
        check_out_dir(p.parent, "path")
        if p.is_dir():
            raise ValueError(f"path {str(p)!r} is a folder, not a result file")
        meta = json.dumps({"experiment": self.experiment, **self.meta}, default=str)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez_compressed(f, **self.arrays, **{_META: np.array(meta)})
            # mkstemp makes the file private (0600); a result is a shared file like any other
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return p


def check_out_dir(out: str | os.PathLike, name: str = "out") -> Path:
    """Check an output folder *before* any work is done, and create it: a non-empty path,
    not the filesystem root, not an existing file, and writable. Returns it as a Path.

    Raises ``TypeError``/``ValueError`` naming ``name``.
    """
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"{name} must be a folder path (str or PathLike), got "
                        f"{type(out).__name__}")
    if not str(out).strip():
        raise ValueError(f"{name} must not be empty (it would write into the current "
                         "folder or the filesystem root); give a folder such as 'results'")
    p = Path(out).expanduser()
    if p.resolve() == Path(p.resolve().anchor):
        raise ValueError(f"{name} must not be the filesystem root, got {str(out)!r}")
    if p.exists() and not p.is_dir():
        raise ValueError(f"{name} {str(out)!r} is an existing file, not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{name} {str(out)!r} cannot be created: {exc}") from exc
    if not os.access(p, os.W_OK):
        raise ValueError(f"{name} {str(out)!r} is not writable")
    return p


def _check_path(name: str, path) -> Path:
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise TypeError(f"{name} must be a non-empty path (str or PathLike), got "
                        f"{type(path).__name__} {path!r}")
    return Path(path)


def _check_key(result: Result, name: str, key) -> np.ndarray:
    """``result.arrays[key]`` as floats, or an error naming ``name`` and the keys there."""
    if not isinstance(key, str):
        raise TypeError(f"{name} must be a str, got {type(key).__name__} {key!r}")
    if key not in result.arrays:
        raise ValueError(f"{name} {key!r} is not an array of the result; it has "
                         f"{sorted(result.arrays)}")
    return np.asarray(result.arrays[key], float)


def _check_result(result) -> Result:
    return check_instance("result", result, Result)


def _variant_curves(result: Result, vname: str, v, metric) -> np.ndarray:
    """``result["<v>/<metric>"]`` ``(S, T)`` as floats; errors name ``vname`` and metric."""
    for name, val in ((vname, v), ("metric", metric)):
        if not isinstance(val, str):
            raise TypeError(f"{name} must be a str, got {type(val).__name__} {val!r}")
    key = f"{v}/{metric}"
    if key not in result.arrays:
        raise ValueError(f"the result has no array {key!r} ({vname} = {v!r}, metric = "
                         f"{metric!r}); it has {sorted(result.arrays)}")
    ys = np.asarray(result.arrays[key], float)
    if ys.ndim != 2 or ys.shape[1] == 0:
        raise ValueError(f"{key!r} ({vname}, metric) must be curves (S, T), got {ys.shape}")
    return ys


def _variants(result: Result, variants) -> list[str]:
    """``variants``, or the result's own list when None."""
    if variants is None:
        return list(result.meta.get("variants", []))
    if isinstance(variants, str) or not isinstance(variants, (list, tuple)):
        raise TypeError(f"variants must be a list of variant names or None, got "
                        f"{type(variants).__name__} {variants!r}")
    if not variants:
        raise ValueError("variants must name at least one variant (or be None: all)")
    return list(variants)


def load_result(path: str | os.PathLike) -> Result:
    """Read a file written by :meth:`Result.save`."""
    p = _check_path("path", path)
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
    _check_result(result)
    out = {}
    for v in _variants(result, variants):
        last = _variant_curves(result, "variants", v, metric)[:, -1]
        out[v] = f"{last.mean():.3f} ({last.min():.3f}-{last.max():.3f})"
    return out


def _axis(result: Result, x: str | None) -> str:
    """The x axis to use: ``x``, else ``"epoch"`` if the result has one, else ``"step"``."""
    if x is not None:
        return x
    return "epoch" if "epoch" in result.arrays else "step"


def _curve(result: Result, key: str, x: str | None) -> tuple[np.ndarray, np.ndarray]:
    """The x axis ``(T,)`` (default ``"epoch"`` if present, else ``"step"``) and the curves
    ``(S, T)`` of ``result[key]`` as floats."""
    _check_result(result)
    if x is not None and not isinstance(x, str):
        raise TypeError(f"x must be the name of an axis array or None, got {type(x).__name__}")
    x = _axis(result, x)
    xs = _check_key(result, "x", x)
    ys = np.atleast_2d(_check_key(result, "key", key))
    if xs.ndim != 1 or ys.ndim != 2:
        raise ValueError(f"x {x!r} must be an axis (T,) and key {key!r} curves (S, T), got "
                         f"{xs.shape} and {ys.shape}")
    if ys.shape[-1] != xs.shape[0]:
        raise ValueError(f"key {key!r} has {ys.shape[-1]} log points, the axis {x!r} "
                         f"{xs.shape[0]}")
    return xs, ys


def first_step(result: Result, key: str, threshold: float, *,
               x: str | None = None) -> np.ndarray:
    """Per seed, the first logged step (or epoch) at which ``result[key]`` reaches
    ``threshold`` (``>=``); NaN for a seed that never does.

    ``key`` names an ``(S, T)`` curve such as ``"L1-softmax/test_acc"``; ``x`` the axis
    (default ``"epoch"`` if present, else ``"step"``). The answer has the resolution of the
    logging (e.g. every ``eval_every`` steps). Returns a float array ``(S,)``.
    """
    xs, ys = _curve(result, key, x)
    threshold = check_real("threshold", threshold)
    hit = ys >= threshold  # NaN compares False
    first = np.argmax(hit, axis=1)
    return np.where(hit.any(axis=1), xs[first], np.nan)


def relapse_share(result: Result, key: str, threshold: float, *,
                  x: str | None = None) -> np.ndarray:
    """Per seed, the share of log points at or after :func:`first_step` at which
    ``result[key]`` is below ``threshold`` again (0 = it stayed up); NaN for a seed that
    never reaches it. Float array ``(S,)``."""
    xs, ys = _curve(result, key, x)
    first = first_step(result, key, threshold, x=x)
    return np.array([(row[xs >= t] < threshold).mean() if np.isfinite(t) else np.nan
                     for row, t in zip(ys, first, strict=True)])


def stored_result(experiment: str, preset: str) -> Result:
    """A result shipped with the package (``attnlab/experiments/stored/<preset>/
    <experiment>.npz``): runs too long for a page build, made once with
    ``python -m attnlab.experiments.run <experiment> --config <preset> --out
    src/attnlab/experiments/stored/<preset>/``. Works offline and in an installed package.
    """
    from importlib import resources

    for name, val in (("experiment", experiment), ("preset", preset)):
        if not isinstance(val, str):
            raise TypeError(f"{name} must be a str, got {type(val).__name__} {val!r}")
    folder = resources.files("attnlab.experiments") / "stored"
    f = folder / str(preset) / f"{experiment}.npz"
    if not f.is_file():
        have = sorted(f"{p.name}/{q.name[:-4]}" for p in folder.iterdir() if p.is_dir()
                      for q in p.iterdir() if q.name.endswith(".npz"))
        raise ValueError(f"no stored result for experiment {experiment!r} with preset "
                         f"{preset!r}; stored: {have}")
    with resources.as_file(f) as path:
        return load_result(path)


@dataclass(frozen=True)
class Difference:
    """Mean of ``b - a`` over seeds with a ``level`` Welch t-interval ``[lo, hi]``."""

    mean: float
    lo: float
    hi: float
    n_a: int
    n_b: int
    level: float = 0.95

    @property
    def excludes_zero(self) -> bool:
        return bool(self.lo > 0 or self.hi < 0)

    def __str__(self) -> str:
        return f"{self.mean:+.3f} ({self.level:.0%} CI {self.lo:+.3f} to {self.hi:+.3f})"


def _welch(x: np.ndarray, y: np.ndarray, level: float) -> tuple[float, float, float]:
    """Mean of ``y - x`` (independent samples) and its Welch t-interval."""
    d = float(y.mean() - x.mean())
    h = _welch_halfwidth(float(x.var(ddof=1)), float(y.var(ddof=1)), len(x), len(y), level)
    return d, d - h, d + h


def difference(result: Result, a: str, b: str, metric: str, *, at: int = -1,
               level: float = 0.95, n_seeds: int | None = None) -> Difference:
    """Variant ``b`` minus variant ``a`` in ``<variant>/<metric>`` at log point ``at``
    (default: the last), as a mean over seeds with a Welch t-interval (independent seeds,
    unequal spreads). Each variant needs at least 2 seeds. ``n_seeds``: only the first
    ``n_seeds`` runs of each variant (None: all), e.g. to see what fewer seeds would say."""
    _check_result(result)
    xa, yb = _variant_curves(result, "a", a, metric), _variant_curves(result, "b", b, metric)
    T = xa.shape[1]
    at = check_int("at", at, min=-T, max=T - 1)
    if n_seeds is not None:
        n_seeds = check_int("n_seeds", n_seeds, min=2, max=min(len(xa), len(yb)))
        xa, yb = xa[:n_seeds], yb[:n_seeds]
    x, y = xa[:, at], yb[:, at]
    if min(len(x), len(y)) < 2 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError(f"difference needs >= 2 finite runs per variant, got {len(x)} "
                         f"and {len(y)} for metric {metric!r}")
    if not 0.0 < check_real("level", level) < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    d, lo, hi = _welch(x, y, level)
    return Difference(d, lo, hi, len(x), len(y), level)


def gap_curve(result: Result, a: str, b: str, metric: str,
              level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`difference` at every log point: ``mean, lo, hi`` arrays ``(T,)``."""
    _check_result(result)
    T = _variant_curves(result, "a", a, metric).shape[1]
    out = np.array([[*(lambda d: (d.mean, d.lo, d.hi))(
        difference(result, a, b, metric, at=t, level=level))] for t in range(T)])
    return out[:, 0], out[:, 1], out[:, 2]


def _final(x: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(x, float)[:, -1]]


def write_summary(folder: str | os.PathLike) -> Path:
    """Write ``<folder>/summary.json`` from the ``imdb.npz`` and ``pathfinder.npz`` there
    (and ``pathfinder_n9.npz`` / ``pathfinder_n14.npz``: Pathfinder at other contour lengths;
    ``pathfinder_conv.npz`` / ``pathfinder_conv_n9.npz`` / ``pathfinder_conv_n14.npz``: with
    a convolutional stem).

    For each task and variant (``"softmax"``, ``"gaussian"``, ``"gaussian-shared"``: the
    Gaussian with Softmax's step): the final test accuracy and test loss per seed, their
    means, the step, the seeds; per task the command, the wall time and the versions.
    """
    folder = _check_path("folder", folder)
    if not folder.is_dir():
        raise ValueError(f"folder {str(folder)!r} is not an existing folder")
    out: dict[str, Any] = {}
    for task in ("imdb", "pathfinder", "pathfinder_n9", "pathfinder_n14", "pathfinder_conv",
                 "pathfinder_conv_n9", "pathfinder_conv_n14"):
        f = folder / f"{task}.npz"
        if not f.is_file():
            continue
        r = load_result(f)
        entry: dict[str, Any] = {
            "command": r.meta.get("command", ""), "preset": r.meta.get("preset", ""),
            "wall_seconds": r.meta.get("wall_seconds", r.meta.get("seconds")),
            "device": r.meta.get("device"), "versions": r.meta.get("versions", {}),
            "epochs": r.meta["config"]["epochs"], "note": r.meta.get("note", ""),
            "perf": r.meta.get("perf", {})}
        lrs = r.meta.get("lr", {})
        for v in r.meta["variants"]:
            acc, loss = _final(r[f"{v}/test_acc"]), _final(r[f"{v}/test_loss"])
            entry[v] = {"kernel": r.meta.get("kernels", {}).get(v, v),
                        "test_acc": acc, "test_loss": loss,
                        "mean_test_acc": float(np.mean(acc)),
                        "mean_test_loss": float(np.mean(loss)),
                        "lr": lrs.get(v, r.meta["config"]["lr"]), "seeds": r.meta["seeds"]}
        out[task] = entry
    path = folder / "summary.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    return path


def stored_summary(preset: str = "cpu") -> dict[str, Any]:
    """The ``summary.json`` shipped with the package for ``preset`` (see
    :func:`write_summary`)."""
    from importlib import resources

    if not isinstance(preset, str):
        raise TypeError(f"preset must be a str, got {type(preset).__name__} {preset!r}")
    f = resources.files("attnlab.experiments") / "stored" / preset / "summary.json"
    if not f.is_file():
        raise ValueError(f"no stored summary for preset {preset!r}")
    return json.loads(f.read_text())


def plot_curves(result: Result, metric: str, *, ax=None, variants: list[str] | None = None,
                x: str | None = None, title: str | None = None, ylabel: str | None = None):
    """Mean over seeds (line) and min-max over seeds (band) of ``<variant>/<metric>``.

    Returns the matplotlib axis.
    """
    import matplotlib.pyplot as plt

    _check_result(result)
    if x is not None and not isinstance(x, str):
        raise TypeError(f"x must be the name of an axis array or None, got {type(x).__name__}")
    for name, val in (("title", title), ("ylabel", ylabel)):
        if val is not None and not isinstance(val, str):
            raise TypeError(f"{name} must be a str or None, got {type(val).__name__}")
    if ax is not None and not hasattr(ax, "plot"):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}")
    x = _axis(result, x)
    xs = _check_key(result, "x", x)
    todo = [(v, _variant_curves(result, "variants", v, metric))
            for v in _variants(result, variants)]
    for v, ys in todo:
        if ys.shape[1] != len(xs):
            raise ValueError(f"variants {v!r}: {ys.shape[1]} log points, the axis x {x!r} "
                             f"{len(xs)}")
    ax = ax if ax is not None else plt.gca()
    for v, ys in todo:
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
