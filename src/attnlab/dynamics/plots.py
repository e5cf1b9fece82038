"""The shared static figures of Part II and the playground (matplotlib): training curves
of a run and the phase heatmaps. Colours and labels come from the kernel table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validate import check_float_array, check_instance
from ..kernels import KERNEL_TABLE, KERNELS
from ..train import History
from .phase import PhaseResult
from .run import RunResult

__all__ = ["COLORS", "PANELS", "draw_history", "history_series", "phase_color_range",
           "plot_history", "plot_phase"]

COLORS = {name: spec.color for name, spec in KERNEL_TABLE.items()}
PANELS = (
    ("loss", "loss $f$"),
    ("pl_ratio", r"PL ratio $\|\nabla f\|^2/(f-f^*)$"),
    ("sigma_min", r"$\sigma_{\min}(C)$"),
)


def history_series(hist: History, kernels: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
    """Per kernel (row ``m`` of ``hist`` is ``kernels[m]``): steps and the plotted curves."""
    check_instance("hist", hist, History)
    if isinstance(kernels, (str, bytes)) or not isinstance(kernels, Sequence):
        raise TypeError(f"kernels must be a sequence of kernel names (one per row of hist), "
                        f"got {type(kernels).__name__}")
    if len(kernels) != hist.M or not all(isinstance(k, str) and k in KERNELS
                                         for k in kernels):
        raise ValueError(f"kernels must name one kernel of {KERNELS} per row of hist "
                         f"(M = {hist.M}), got {tuple(kernels)!r}")
    steps = np.asarray(hist.steps)
    return {
        k: {"steps": steps, **{key: np.asarray(getattr(hist, key))[m] for key, _ in PANELS}}
        for m, k in enumerate(kernels)
    }


def draw_history(axes: Sequence[Any], series: dict[str, dict[str, np.ndarray]]) -> None:
    """Draw loss / PL ratio / sigma_min(C) curves (one per kernel) on three log-y axes."""
    _check_series(series)
    if not isinstance(axes, (list, tuple, np.ndarray)) or len(axes) != len(PANELS) \
            or not all(hasattr(a, "plot") for a in np.ravel(np.asarray(axes, dtype=object))):
        raise TypeError(f"axes must be {len(PANELS)} matplotlib axes, got {axes!r:.80}")
    for ax, (key, title) in zip(axes, PANELS, strict=True):
        ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        for kernel, s in series.items():
            x, v = _positive(s["steps"], s[key])
            ax.plot(x, v, color=COLORS.get(kernel, "k"), label=kernel, lw=1.5)
        ax.grid(True, which="major", alpha=0.3)
    if len(series) > 1:
        axes[0].legend(fontsize=8)


def _check_series(series: Any, *, allow_empty: bool = False) -> None:
    """``series``: kernel name -> {"steps", "loss", "pl_ratio", "sigma_min"} arrays of one
    length (see :func:`history_series`); NaN entries are allowed (not drawn)."""
    if not isinstance(series, dict):
        raise TypeError(f"series must be a dict (from history_series), got "
                        f"{type(series).__name__}")
    if not series and not allow_empty:
        raise ValueError("series must hold at least one kernel's curves")
    for k, s in series.items():
        if not isinstance(s, dict) or not {"steps", *(key for key, _ in PANELS)} <= set(s):
            raise ValueError(f"series[{k!r}] must be a dict with steps, loss, pl_ratio and "
                             f"sigma_min (from history_series)")
        n = check_float_array("series", np.asarray(s["steps"]), ndim=1, nonempty=False).shape
        for key, _ in PANELS:
            v = check_float_array("series", np.asarray(s[key]), ndim=1, finite=False,
                                  nonempty=False)
            if v.shape != n:
                raise ValueError(f"series[{k!r}][{key!r}] must have the length of its steps "
                                 f"{n}, got {v.shape}")


def _positive(x: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(v, dtype=float)
    ok = np.isfinite(v) & (v > 0)
    return np.asarray(x)[ok], v[ok]


def plot_history(result: RunResult, *, title: str | None = None) -> Any:
    """Static figure of a run: loss, PL ratio and sigma_min(C) over steps, log scale."""
    import matplotlib.pyplot as plt

    check_instance("result", result, RunResult)
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a str or None, got {type(title).__name__}")
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2), constrained_layout=True)
    if result.history is not None:
        draw_history(axes, history_series(result.history, result.kernels))
    c = result.config
    fig.suptitle(
        title
        or (
            f"Training {'+'.join(c.train)}: s = {c.init_scale:.3g}, D = {c.D} "
            f"(H D = {c.H * c.D}, N n = {c.N * c.n}), lr = "
            + ("auto" if c.lr is None else f"{c.lr:.3g}")
            + f", {c.data} targets"
        ),
        fontsize=11,
    )
    return fig


def phase_color_range(values: np.ndarray) -> tuple[float, float]:
    """Colour limits for log10(f_T/f_0): from the best finite value to 0.01 (no progress);
    cells where the loss grew by more than 2 % (> 0.01) get the "over" colour. NaN cells
    (diverged) are ignored."""
    values = np.asarray(check_float_array("values", values, finite=False, nonempty=False))
    finite = values[np.isfinite(values)]
    vmin = min(float(finite.min()) if finite.size else -1.0, -1e-3)
    return vmin, 0.01


def plot_phase(result: PhaseResult, *, axes: Sequence[Any] | None = None) -> Any:
    """Heatmaps of ``log10(f_T / f_0)`` (init scale x D), one per kernel, with the
    H D = N n line; diverged cells are marked with a cross, cells whose loss grew are red."""
    import matplotlib
    import matplotlib.pyplot as plt

    check_instance("result", result, PhaseResult)
    K = len(result.kernels)
    if axes is not None and (not isinstance(axes, (list, tuple, np.ndarray)) or len(axes) != K
                             or not all(hasattr(a, "imshow") for a in axes)):
        raise TypeError(f"axes must be None or {K} matplotlib axes (one per kernel), got "
                        f"{axes!r:.80}")
    if axes is None:
        fig, axes = plt.subplots(
            1, K, figsize=(4.6 * K + 0.8, 3.9), constrained_layout=True, squeeze=False
        )
        axes = axes[0]
    else:
        fig = axes[0].figure
    vmin, vmax = phase_color_range(result.log_ratio)
    cmap = matplotlib.colormaps["viridis_r"].with_extremes(over="#d62728", bad="#fecaca")
    xpos = np.interp(
        np.log(result.threshold_D), np.log(result.dims), np.arange(len(result.dims))
    )
    c = result.config
    for ax, k in zip(axes, range(K), strict=True):
        im = ax.imshow(
            result.log_ratio[k], origin="lower", aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax
        )
        for (i, j), v in np.ndenumerate(result.log_ratio[k]):  # the value in each cell
            if not np.isfinite(v):
                ax.plot(j, i, "x", color="red", ms=8)
                continue
            light = v < vmin + 0.45 * (vmax - vmin)  # yellow/green end of viridis_r
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7,
                    color="black" if light else "white")
        ax.axvline(xpos, color="white", lw=1.2, ls="--")
        ax.text(xpos, len(result.init_scales) - 0.5, "H D = N n", color="black", ha="center",
                va="bottom", fontsize=8, clip_on=False)
        ax.set_xticks(range(len(result.dims)), [str(v) for v in result.dims])
        ax.set_yticks(range(len(result.init_scales)), [f"{s:.2g}" for s in result.init_scales])
        ax.set_xlabel("embedding dimension D")
        ax.set_ylabel("init scale s")
        ax.set_title(f"{result.kernels[k]}: log10(f_T / f_0)", fontsize=10, pad=14)
    fig.colorbar(im, ax=list(axes), shrink=0.9, extend="max",
                 label=r"$\log_{10}(f_T/f_0)$ (red: loss grew)")
    fig.suptitle(
        f"Phase diagram, {'+'.join(c.train)} trained, {c.steps} steps, N n = {c.N * c.n}, "
        f"H = {c.H}",
        fontsize=11,
    )
    return fig
