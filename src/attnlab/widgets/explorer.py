"""The phase-diagram explorer: the phase diagram over init scale x D, with a clickable grid of
cells that replays a cell in a :class:`~attnlab.widgets.dashboard.Dashboard`.

The widget's figure is a PNG of :func:`plot_phase_figure` (matplotlib, pyplot-free); the
static figures of the book use :func:`attnlab.dynamics.plot_phase` directly.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from typing import Any

import ipywidgets as W
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .._validate import (
    check_bool,
    check_instance,
    check_int_sequence,
    check_real,
    check_real_sequence,
)
from ..dynamics import (
    D_MAX,
    PhaseResult,
    RunConfig,
    RunResult,
    check_config,
    default_dashboard_config,
    default_phase_config,
    phase_color_range,
    phase_diagram,
    plot_phase,
)
from ..kernels import BOTH, expand_kernels
from .dashboard import Dashboard, _make_bar, data_options, kernel_options
from .svg import _show_png

try:  # ipywidgets 8 (not re-exported there); Colab ships ipywidgets 7, which has no HTMLStyle
    from ipywidgets.widgets.widget_string import HTMLStyle
except ImportError:  # pragma: no cover - exercised by `make test-colab`
    HTMLStyle = None

__all__ = ["PhaseExplorer", "phase_explorer", "plot_phase_figure"]


class PhaseExplorer:
    """Phase diagram over init scale x embedding dimension, with a clickable cell grid.

    Args: ``dashboard`` receives the replays (None: a dashboard of its own, shown below
    the grid); ``init_scales``, ``dims``: the grid (defaults of :func:`phase_diagram`);
    ``config``: every other cell setting (default :func:`default_phase_config`);
    ``kernels``: initial kernel choice; ``lr``: learning rate when W_Q is trained;
    ``background``: compute and replay in worker threads.

    Controls: ``kernels`` (Softmax / Gaussian / both), ``train_choice`` (W_V only with the
    engine's learning rate 1/sigma_max(C)^2, or W_Q only / W_Q + W_V with the learning rate
    ``lr``), ``data`` (random targets / teacher), ``compute_button``. Output: ``figure``
    (heatmaps with the H D = N n line), ``grid`` (one button per cell, coloured by its
    value; clicking replays the cell in ``dashboard``), ``status``. ``result`` holds the
    last :class:`PhaseResult`.
    """

    def __init__(
        self,
        dashboard: Dashboard | None = None,
        *,
        init_scales: Sequence[float] | None = None,
        dims: Sequence[int] | None = None,
        config: RunConfig | None = None,
        kernels: str = BOTH,
        lr: float = 0.5,
        background: bool = True,
    ) -> None:
        check_instance("dashboard", dashboard, Dashboard, allow_none=True)
        check_instance("config", config, RunConfig, allow_none=True)
        if config is not None:
            check_config(config, "config")
        if init_scales is not None:
            init_scales = check_real_sequence("init_scales", init_scales, min=0.0,
                                              strict_min=True)
        if dims is not None:
            dims = check_int_sequence("dims", dims, min=1, max=D_MAX)
        if kernels not in [v for _, v in kernel_options()]:
            raise ValueError(f"kernels must be one of {[v for _, v in kernel_options()]}, "
                             f"got {kernels!r}")
        lr = check_real("lr", lr, min=0.0, strict_min=True)
        background = check_bool("background", background)
        self.base = config or default_phase_config().replace(device="auto")
        self.lr = lr if self.base.lr is None else self.base.lr
        embed = dashboard is None
        if dashboard is None:  # a dashboard of its own, shown below the grid
            dashboard = Dashboard(default_dashboard_config(**_size_dict(self.base)),
                                  background=background)
        self.dashboard = dashboard
        self.init_scales = init_scales
        self.dims = dims
        self.background = background
        self.result: PhaseResult | None = None
        self.replayed: RunResult | None = None
        self._lock = threading.Lock()
        self._running = False
        self._thread: threading.Thread | None = None
        self.kernels = W.ToggleButtons(
            options=kernel_options(), value=kernels, description="kernel",
            style={"button_width": "80px"},
        )
        self.data = W.ToggleButtons(
            options=data_options(), value=self.base.data, description="data",
            style={"button_width": "110px"},
        )
        self.train_choice = W.ToggleButtons(
            options=[("W_V (convex)", ("W_V",)), ("W_Q", ("W_Q",)), ("W_Q + W_V", ("W_Q", "W_V"))],
            value=tuple(self.base.train) if tuple(self.base.train) in
            (("W_V",), ("W_Q",), ("W_Q", "W_V")) else ("W_V",),
            description="train", style={"button_width": "100px"},
        )
        self.compute_button = W.Button(description="Compute", button_style="primary",
                                       icon="th")
        self.compute_button.on_click(lambda _b: self._on_compute())
        self.status = W.HTML()
        self.progress = W.Box(layout=W.Layout(width="420px"))
        self.figure = W.Output()
        self.grid = W.VBox()
        self.widget = W.VBox([
            W.HBox([self.kernels]),
            W.HBox([self.data]),
            W.HBox([self.train_choice, self.compute_button, self.progress]),
            self.status, self.figure,
            W.HTML("<b>Click a cell to replay that run in the dashboard"
                   + (" below" if embed else "") + "</b>"),
            self.grid,
            *([W.HTML("<hr>"), dashboard.widget] if embed else []),
        ], layout=W.Layout(max_width="780px"))

    def _ipython_display_(self, **kwargs: Any) -> None:
        # display(), not _repr_mimebundle_: ipywidgets 7 (Colab's) widgets have no
        # _repr_mimebundle_ and show themselves through _ipython_display_; display() picks
        # whichever the installed version has.
        from IPython.display import display

        display(self.widget)

    def phase_config(self) -> RunConfig:
        """The run settings of every cell (before init scale, D and kernel are set)."""
        train = self.train_choice.value
        lr = None if train == ("W_V",) else self.lr
        return self.base.replace(train=train, lr=lr, data=self.data.value)

    def compute(self) -> PhaseResult:
        """Compute the phase diagram synchronously, show it and return it."""
        kern = expand_kernels(self.kernels.value)
        self.status.value = "Computing the phase diagram ..."
        bar, bar_widget = _make_bar(0, "phase diagram")
        if bar_widget is not None:
            self.progress.children = (bar_widget,)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            res = phase_diagram(self.init_scales, self.dims, kernels=kern,
                                config=self.phase_config(), on_progress=progress)
        finally:
            bar.close()
        self.result = res
        self._show(res)
        return res

    def _on_compute(self) -> None:
        with self._lock:
            if self._running:
                return
            self._running = True
            self.compute_button.disabled = True

        def job() -> None:
            try:
                self.compute()
            except Exception as exc:  # shown, never raised into the widget
                self.status.value = f"Could not compute: {type(exc).__name__}: {exc}"
            finally:
                with self._lock:
                    self._running = False
                    self.compute_button.disabled = False

        if self.background:
            self._thread = threading.Thread(target=job, daemon=True,
                                            name="attnlab-phase-diagram")
            self._thread.start()
        else:
            job()

    def wait(self, timeout: float | None = None) -> PhaseResult | None:
        """Block until a background computation finishes; return the last result."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.result

    def _show(self, res: PhaseResult) -> None:
        fig = plot_phase_figure(res)
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        _show_png(self.figure, buf.getvalue(), "phase diagram")
        cells = res.init_scales.size * res.dims.size * len(res.kernels)
        msg = (f"{cells} runs in {res.calls} batched engine calls, {res.seconds:.1f} s on "
               f"{res.device}. {res.note}")
        self.status.value = msg
        old = self.grid.children
        self.grid.children = tuple(self._cell_grid(res, k) for k in range(len(res.kernels)))
        for w in old:  # free the previous grid's widget models
            _close_tree(w)

    def _cell_grid(self, res: PhaseResult, k: int) -> W.Widget:
        """One button per cell, rows = init scale (largest on top), columns = D.

        Layouts and styles are shared between cells and colours are quantized to 16
        levels, so a full 8 x 8 grid adds few widget models to a saved page.
        """
        import matplotlib

        cmap = matplotlib.colormaps["viridis_r"]
        vals = res.log_ratio[k]
        lo, hi = phase_color_range(res.log_ratio)
        cell, label, head, box = (W.Layout(width="58px", height="28px"), W.Layout(width="70px"),
                                  W.Layout(width="58px"), W.Layout())
        hstyle = {"style": HTMLStyle()} if HTMLStyle is not None else {}  # one shared style
        styles: dict[str, W.ButtonStyle] = {}

        def style(v: float) -> W.ButtonStyle:
            if not np.isfinite(v):
                color, text = "#fecaca", "black"  # diverged
            elif v > hi:
                color, text = "#d62728", "white"  # the loss grew
            else:
                level = round(15 * (v - lo) / (hi - lo)) / 15
                rgba = cmap(level)
                color = matplotlib.colors.to_hex(rgba)
                luma = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2]
                text = "white" if luma < 0.5 else "black"
            if color not in styles:
                styles[color] = W.ButtonStyle(button_color=color, text_color=text)
            return styles[color]

        star = res.threshold_D
        header = [W.HTML(f"<b>{res.kernels[k]}</b>", layout=label, **hstyle)]
        for D in res.dims:
            mark = "≥" if D >= star else "<"
            header.append(W.HTML(f"<center>D={D}<br><small>HD{mark}Nn</small></center>",
                                 layout=head, **hstyle))
        rows = [W.HBox(header, layout=box)]
        for i in reversed(range(res.init_scales.size)):
            row = [W.HTML(f"s={res.init_scales[i]:.2g}", layout=label, **hstyle)]
            for j in range(res.dims.size):
                v = vals[i, j]
                b = W.Button(description=f"{v:.1f}" if np.isfinite(v) else "div.",
                             layout=cell, style=style(v),
                             tooltip=f"{res.kernels[k]}, s = {res.init_scales[i]:.3g}, "
                                     f"D = {res.dims[j]}: log10(f_T/f_0) = {v:.3g}")
                b.on_click(lambda _b, k=k, i=i, j=j: self._replay(res, res.kernels[k], i, j))
                row.append(b)
            rows.append(W.HBox(row, layout=box))
        return W.VBox(rows, layout=W.Layout(margin="0 0 12px 0"))

    def replay(self, kernel: str, i: int, j: int, *, background: bool | None = None
               ) -> RunResult | None:
        """Load cell (init scale ``i``, D ``j``) of ``kernel`` into the dashboard and train.

        ``background`` (default: the dashboard's setting) runs the replay in the dashboard's
        worker thread and returns None; otherwise it returns the :class:`RunResult`.
        """
        if self.result is None:
            return None
        return self._replay(self.result, kernel, i, j, background=background)

    def _replay(self, res: PhaseResult, kernel: str, i: int, j: int, *,
                background: bool | None = None) -> RunResult | None:
        """Replay a cell of ``res`` (the diagram the clicked grid shows, even while a newer
        one is being computed). A click during a replay stops it, waits for it and starts
        the new one, so a quick double-click replays the cell once more."""
        cfg = res.cell_config(kernel, i, j)
        dash = self.dashboard
        if dash.running:
            dash.stop()
            dash.wait()
        # the dashboard's fixed sizes follow the cell; its device choice stays; the
        # controls take the cell's values exactly (a slider widens its range if needed)
        dash.defaults = dash.defaults.replace(**_size_dict(cfg))
        dash.set_config(cfg.replace(device=dash.device.value))
        if dash.background if background is None else background:
            dash.start()
            return None
        self.replayed = dash.run()
        return self.replayed


def _close_tree(w: W.Widget) -> None:
    """Close a widget, its children, layouts and styles (shared ones may already be closed)."""
    for child in getattr(w, "children", ()):
        _close_tree(child)
    for part in (getattr(w, "layout", None), getattr(w, "style", None)):
        if part is not None:
            part.close()
    w.close()


def _size_dict(cfg: RunConfig) -> dict[str, Any]:
    return {"N": cfg.N, "n": cfg.n, "d": cfg.d, "H": cfg.H, "value_scale": cfg.value_scale,
            "delta": cfg.delta, "dtype": cfg.dtype}


def plot_phase_figure(res: PhaseResult) -> Figure:
    """The phase heatmaps on a pyplot-free figure (for the widget's PNG)."""
    K = len(res.kernels)
    fig = Figure(figsize=(4.6 * K + 0.8, 3.9), dpi=72, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, K, squeeze=False)[0]
    plot_phase(res, axes=axes)
    return fig


def phase_explorer(
    dashboard: Dashboard | None = None,
    *,
    run: bool = False,
    background: bool = True,
    init_scales: Sequence[float] | None = None,
    dims: Sequence[int] | None = None,
    config: RunConfig | None = None,
    kernels: str = BOTH,
    lr: float = 0.5,
    **settings: Any,
) -> PhaseExplorer:
    """Create a phase-diagram explorer; clicking a cell replays it in ``dashboard`` (by
    default a dashboard of its own, shown below the cell grid).

    ``settings`` override fields of the cells' :class:`RunConfig` (default: W_V-only with
    the engine's learning rate, random targets, ``pick(full=1000, fast=200)`` steps);
    ``kernels`` is the initial kernel choice, ``lr`` the learning rate when W_Q is trained.
    ``run=True`` computes the diagram once synchronously (book pages). Default grid:
    ``pick(8, 4)`` init scales in [0.1, 10] x ``pick(8, 4)`` dimensions around N n / H.
    """
    run = check_bool("run", run)
    check_instance("config", config, RunConfig, allow_none=True)
    base = (config or default_phase_config().replace(device="auto")).replace(**settings)
    ex = PhaseExplorer(dashboard, init_scales=init_scales, dims=dims, config=base,
                       kernels=kernels, lr=lr, background=background)
    if run:
        ex.compute()
    return ex

