"""Live training widgets: a training dashboard and a phase-diagram explorer.

Thin ipywidgets layers over :mod:`attnlab.phase` (which calls the engine's ``train``); no
training code lives here.

* :func:`dashboard` / :class:`Dashboard`: controls for init scale, embedding dimension D
  (threshold N n marked), kernel, trained matrices, learning rate, steps, seed, device and
  data; Train / Stop / Reset; a live plot (loss, PL ratio, sigma_min(C)), a ``tqdm.auto``
  progress bar and a one-line status.
* :func:`phase_explorer` / :class:`PhaseExplorer`: the phase diagram over init scale x D,
  with a clickable grid of cells that replays a cell in a dashboard.

Threading. A running cell blocks widget messages, so a Stop click is only seen if
training runs in a worker thread: Train (with ``background=True``, the default) starts a
thread and passes a ``threading.Event`` as ``should_stop``. Train is disabled while a run
is in flight and re-enabled in ``finally``; every run gets an id and only the current run
may draw, so a late callback of an old run never mixes into the new output.
:meth:`Dashboard.run` is the synchronous path used by book builds and tests.

Drawing. Each live redraw renders the three panels as a small SVG (:func:`svg_curves`, about
a millisecond; a matplotlib figure costs ~100 ms, more than a whole default run's overhead
budget) and *replaces* the ``Output`` widget's outputs in one assignment: the effect of
``clear_output(wait=True)`` + ``display`` (no flicker) that is also safe from a worker
thread (``with out:`` is not) and is stored in the widget state of a static book build. No
ipympl. Redraws are throttled to at most ``1 / redraw_interval`` per second (and to 20 % of
the time if a redraw ever gets slow). The static figures of the book use matplotlib
(:func:`attnlab.phase.plot_history`, :func:`attnlab.phase.plot_phase`).
"""

from __future__ import annotations

import base64
import io
import math
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import ipywidgets as W
import numpy as np
from ipywidgets.widgets.widget_string import HTMLStyle  # not re-exported by ipywidgets 8
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .device import available_devices
from .dynamics import (
    COLORS,
    D_MAX,
    MATRICES,
    PhaseResult,
    RunConfig,
    RunResult,
    config_problems,
    dashboard_log_every,
    default_dashboard_config,
    default_phase_config,
    history_series,
    phase_color_range,
    phase_diagram,
    plot_phase,
    resolve_device,
    run_config,
)

__all__ = ["Dashboard", "PhaseExplorer", "dashboard", "phase_explorer", "svg_curves"]


def _nice_step(span: float, target: int = 5) -> float:
    """A 1-2-5 step giving about ``target`` ticks over ``span``."""
    raw = max(span, 1e-12) / target
    mag = 10.0 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _svg_panel(x0: float, w: float, h: float, title: str, xmax: float,
               curves: list[tuple[str, np.ndarray, np.ndarray]], empty: str) -> list[str]:
    """One log-y panel: frame, decade grid, x ticks, one polyline per (color, x, y)."""
    L, R, T, B = x0 + 52, x0 + w - 10, 44, h - 32
    out = [f'<text x="{(L + R) / 2:.1f}" y="{T - 8}" text-anchor="middle" '
           f'font-size="13">{_esc(title)}</text>',
           f'<rect x="{L}" y="{T}" width="{R - L:.1f}" height="{B - T}" fill="none" '
           f'stroke="#888"/>']
    pos = [(c, x[(y > 0) & np.isfinite(y)], np.log10(y[(y > 0) & np.isfinite(y)]))
           for c, x, y in curves]
    pos = [p for p in pos if p[1].size]
    xstep = _nice_step(xmax)
    for t in np.arange(0, xmax + 0.5 * xstep, xstep):
        px = L + (R - L) * t / xmax
        out.append(f'<text x="{px:.1f}" y="{B + 15}" text-anchor="middle" font-size="11">'
                   f"{t:g}</text>")
    out.append(f'<text x="{(L + R) / 2:.1f}" y="{B + 28}" text-anchor="middle" '
               f'font-size="11">step</text>')
    if not pos:
        out.append(f'<text x="{(L + R) / 2:.1f}" y="{(T + B) / 2:.1f}" text-anchor="middle" '
                   f'font-size="12" fill="#888">{_esc(empty)}</text>')
        return out
    lo = math.floor(min(float(p[2].min()) for p in pos))
    hi = max(math.ceil(max(float(p[2].max()) for p in pos)), lo + 1)
    every = max(1, int(_nice_step(hi - lo, 5)))  # decades between ticks: 1, 2, 5, 10, ...
    lo, hi = every * math.floor(lo / every), every * math.ceil(hi / every)
    for k in range(lo, hi + 1, every):
        py = B - (B - T) * (k - lo) / (hi - lo)
        out.append(f'<line x1="{L}" x2="{R:.1f}" y1="{py:.1f}" y2="{py:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{L - 4}" y="{py + 4:.1f}" text-anchor="end" font-size="11">'
                   f'10<tspan dy="-5" font-size="8">{k}</tspan></text>')
    for color, x, ly in pos:
        stride = max(1, x.size // 300)  # at most ~300 points per curve
        idx = np.unique(np.r_[np.arange(0, x.size, stride), x.size - 1])
        px = L + (R - L) * np.minimum(x[idx], xmax) / xmax
        py = B - (B - T) * (ly[idx] - lo) / (hi - lo)
        pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py, strict=True))
        out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" '
                   f'stroke-width="1.8"/>')
    return out


_SVG_TITLES = {"loss": "loss f", "pl_ratio": "PL ratio ‖∇f‖² / (f − f*)",
               "sigma_min": "σ_min(C)"}


def svg_curves(series: dict[str, dict[str, np.ndarray]], title: str, xmax: float,
               width: int = 780, height: int = 240) -> str:
    """The dashboard's live figure as an SVG string: loss, PL ratio and sigma_min(C) per
    kernel on log scales over ``[0, xmax]`` steps.

    Hand-written SVG instead of matplotlib because a redraw must cost about a millisecond
    (a three-panel matplotlib PNG costs ~100 ms, more than a whole default run's budget).
    """
    pw = width / 3
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="6" y="16" font-size="13" font-weight="bold">{_esc(title)}</text>']
    for p, key in enumerate(("loss", "pl_ratio", "sigma_min")):
        curves = [(COLORS.get(k, "black"), s["steps"], np.asarray(s[key], dtype=float))
                  for k, s in series.items()]
        empty = "not tracked" if key == "sigma_min" and series and all(
            np.isnan(np.asarray(s[key], dtype=float)).all() for s in series.values()
        ) and any(len(s["steps"]) > 1 for s in series.values()) else "no data yet"
        parts += _svg_panel(p * pw, pw, height, _SVG_TITLES[key], max(float(xmax), 1.0),
                            curves, empty)
    if len(series) > 1:  # legend at the right end of the title line
        for m, k in enumerate(reversed(list(series))):
            x = width - 8 - 78 * (m + 1)
            parts.append(f'<line x1="{x}" x2="{x + 18}" y1="12" y2="12" '
                         f'stroke="{COLORS.get(k, "black")}" stroke-width="2.5"/>')
            parts.append(f'<text x="{x + 22}" y="16" font-size="12">{k}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _show(out: W.Output, mime: str, data: str, text: str) -> None:
    """Replace the outputs of ``out`` in one assignment (atomic; safe from a worker thread)."""
    out.outputs = ({"output_type": "display_data", "data": {mime: data, "text/plain": text},
                    "metadata": {}},)


def _show_png(out: W.Output, png: bytes, text: str) -> None:
    _show(out, "image/png", base64.b64encode(png).decode("ascii"), text)


def _make_bar(total: int, desc: str) -> tuple[Any, W.Widget | None]:
    """A ``tqdm.auto`` bar; under a Jupyter kernel also its widget, to embed in the layout."""
    from tqdm.auto import tqdm

    try:
        from tqdm.notebook import tqdm_notebook
    except ImportError:  # pragma: no cover - tqdm without ipywidgets support
        tqdm_notebook = None
    if tqdm_notebook is not None and issubclass(tqdm, tqdm_notebook):
        bar = tqdm(total=total, desc=desc, display=False, leave=True)
        # tqdm keeps only a weak proxy to the bar in its widget: once the closed bar is
        # garbage-collected, any repr of the layout (a book build shows it) raises
        # ReferenceError. A strong reference ties the bar's life to its widget's.
        bar.container.pbar = bar
        return bar, bar.container
    return tqdm(total=total, desc=desc, file=sys.stderr, leave=False, mininterval=0.5), None


class Dashboard:
    """Training dashboard over :func:`attnlab.phase.run_config`.

    Attributes are the controls (``init_scale``, ``D``, ``kernel``, ``train_toggles``
    (dict matrix -> ToggleButton), ``lr``, ``lr_auto``, ``steps``, ``seed``, ``device``,
    ``data``), the buttons (``train_button``, ``stop_button``, ``reset_button``), the
    outputs (``plot``, ``status``, ``progress``) and ``widget`` (the whole layout; the
    dashboard also displays itself). ``result`` holds the last :class:`RunResult`.

    Args:
        config: the initial (and Reset) settings; sizes N, n, d, H, value scale, teacher
            delta and dtype come from here and are fixed for the dashboard.
        background: Train runs in a worker thread (needed for Stop in a live kernel);
            ``False`` makes Train call :meth:`run` synchronously.
        redraw_interval: minimum seconds between live redraws.
        d_max: largest accepted embedding dimension.
    """

    def __init__(
        self,
        config: RunConfig | None = None,
        *,
        background: bool = True,
        redraw_interval: float = 0.25,
        d_max: int = D_MAX,
    ) -> None:
        self.defaults = config or default_dashboard_config()
        self._initial = self.defaults
        self.background = background
        self.redraw_interval = float(redraw_interval)
        self.d_max = int(d_max)
        self.result: RunResult | None = None
        self.last_step = -1  # last logged step of the run in flight (for polling)
        self.timings: dict[str, float] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._running = False
        self._run_id = 0
        self._quiet = False
        self._device_note = ""
        self._build()
        self.set_config(self.defaults)

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        c = self.defaults
        wide = {"description_width": "110px"}
        self.init_scale = W.FloatLogSlider(
            value=1.0, base=10, min=-2, max=1, step=0.01, description="init scale s",
            readout_format=".3g", style=wide, continuous_update=False,
        )
        self.D = W.IntText(value=c.D, description="embedding D", style=wide,
                           layout=W.Layout(width="200px"))
        self.D_mark = W.HTML(layout=W.Layout(margin="0 0 0 114px"))
        self.kernel = W.ToggleButtons(
            options=[("Softmax", "softmax"), ("Gaussian", "gaussian"), ("both", "both")],
            description="kernel", style={"button_width": "80px", **wide},
        )
        self.data = W.ToggleButtons(
            options=[("random targets", "random"), ("teacher", "teacher")],
            description="data", style={"button_width": "110px", **wide},
        )
        self.train_toggles = {
            m: W.ToggleButton(description=m, layout=W.Layout(width="60px")) for m in MATRICES
        }
        self.lr = W.FloatLogSlider(
            value=0.5, base=10, min=-3, max=2, step=0.05, description="learning rate",
            readout_format=".3g", style=wide, continuous_update=False,
        )
        self.lr_auto = W.Checkbox(description="auto 1/σ_max(C)² (W_V only)", indent=False)
        self.steps = W.BoundedIntText(value=c.steps, min=1, max=100_000, description="steps",
                                      style=wide, layout=W.Layout(width="200px"))
        self.seed = W.IntText(value=c.seed, description="seed", layout=W.Layout(width="150px"))
        devices = available_devices()
        self.device = W.Dropdown(options=devices, value=devices[0], description="device",
                                 layout=W.Layout(width="170px"))
        self.train_button = W.Button(description="Train", button_style="success", icon="play")
        self.stop_button = W.Button(description="Stop", button_style="danger", icon="stop",
                                    disabled=True)
        self.reset_button = W.Button(description="Reset", icon="undo")
        self.progress = W.Box(layout=W.Layout(width="360px"))
        self.status = W.HTML(layout=W.Layout(width="100%"))
        self.plot = W.Output(layout=W.Layout(min_height="220px"))

        trained = W.HBox([W.Label("train", layout=W.Layout(width="110px")),
                          *self.train_toggles.values()])
        self.widget = W.VBox([
            W.HBox([self.init_scale, self.D]),
            self.D_mark,
            self.kernel,
            self.data,
            trained,
            W.HBox([self.lr, self.lr_auto]),
            W.HBox([self.steps, self.seed, self.device]),
            W.HBox([self.train_button, self.stop_button, self.reset_button, self.progress]),
            self.status,
            self.plot,
        ], layout=W.Layout(max_width="780px"))
        controls = [self.init_scale, self.D, self.kernel, self.data, self.lr, self.lr_auto,
                    self.steps, self.seed, self.device, *self.train_toggles.values()]
        for w in controls:
            w.observe(self._on_change, names="value")
        self.train_button.on_click(self._on_train)
        self.stop_button.on_click(self._on_stop)
        self.reset_button.on_click(self._on_reset)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    # ------------------------------------------------------------------ config <-> controls
    def config(self) -> RunConfig:
        """The run the controls describe now (sizes etc. from the dashboard's defaults)."""
        train = tuple(m for m, t in self.train_toggles.items() if t.value)
        return self.defaults.replace(
            init_scale=float(self.init_scale.value),
            D=int(self.D.value),
            kernel=self.kernel.value,
            data=self.data.value,
            train=train,
            lr=None if self.lr_auto.value else float(self.lr.value),
            steps=int(self.steps.value),
            log_every=dashboard_log_every(max(int(self.steps.value), 1)),
            track_sigma_min=True,
            seed=int(self.seed.value),
            device=self.device.value,
        )

    def set_config(self, cfg: RunConfig) -> None:
        """Set every control from ``cfg`` (a device that is not available becomes the CPU)."""
        with self._lock:
            self._quiet = True
            try:
                self.init_scale.value = float(cfg.init_scale)
                self.D.value = int(cfg.D)
                self.kernel.value = cfg.kernel
                self.data.value = cfg.data
                for m, t in self.train_toggles.items():
                    t.value = m in cfg.train
                self.lr_auto.value = cfg.lr is None
                if cfg.lr is not None:
                    self.lr.value = float(cfg.lr)
                self.steps.value = int(cfg.steps)
                self.seed.value = int(cfg.seed)
                dev, self._device_note = resolve_device(cfg.device, cfg.dtype)
                self.device.value = dev if dev in self.device.options else "cpu"
            finally:
                self._quiet = False
            self._refresh()

    def problems(self) -> list[str]:
        """Why the current controls cannot train (empty if they can)."""
        return config_problems(self.config(), d_max=self.d_max)

    # ------------------------------------------------------------------ state display
    def _on_change(self, change: Any) -> None:
        if not self._quiet:
            if change["owner"] is self.device:
                self._device_note = ""  # the reader picked a device: no fallback to report
            self._refresh()

    def _refresh(self) -> None:
        """Update the D marker, the lr controls, Train's state and the status line."""
        with self._lock:
            cfg = self.config()
            self._mark_D(cfg)
            self.lr.disabled = self.lr_auto.value
            problems = config_problems(cfg, d_max=self.d_max)
            self.train_button.disabled = self._running or bool(problems)
            self.stop_button.disabled = not self._running
            if problems:
                self.train_button.tooltip = " ".join(problems)
                self._set_status("Train is disabled: " + " ".join(problems), "warn")
            elif not self._running:
                self.train_button.tooltip = "train with these settings"
                if self.result is not None:
                    self._set_status(self.result.status(), self._result_kind(self.result))
                else:
                    note = self._device_note
                    self._set_status("Ready: press Train. " + note, "info")

    def _mark_D(self, cfg: RunConfig) -> None:
        Nn, HD = cfg.N * cfg.n, cfg.H * cfg.D
        star = cfg.threshold_D
        side = "≥" if HD >= Nn else "<"
        self.D_mark.value = (
            f"<small>N n = {Nn}; the line H D = N n is at D = {star:g}; now H D = {HD} "
            f"{side} N n{'; W_Q-only training needs D ≥ N n' if cfg.D < Nn else ''}</small>"
        )

    def _set_status(self, text: str, kind: str = "info") -> None:
        color = {"info": "inherit", "warn": "#b45309", "error": "#b91c1c",
                 "ok": "#15803d"}[kind]
        safe = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        self.status.value = f"<span style='color:{color}'>{safe}</span>"

    @staticmethod
    def _result_kind(res: RunResult) -> str:
        return "error" if res.error or res.diverged else "ok"

    # ------------------------------------------------------------------ buttons
    def _on_train(self, _btn: Any = None) -> None:
        if self.background:
            self.start()
        else:
            self.run()

    def _on_stop(self, _btn: Any = None) -> None:
        self.stop()

    def _on_reset(self, _btn: Any = None) -> None:
        self.reset()

    def stop(self) -> None:
        """Ask the run in flight to stop after its current step."""
        self._stop.set()

    def reset(self) -> None:
        """Stop any run, wait for it, restore the initial settings and clear the outputs."""
        self.stop()
        self.wait()
        with self._lock:
            self._run_id += 1  # any late callback of an old run is ignored
            self.result = None
            self.plot.outputs = ()
            self.progress.children = ()
            self.defaults = self._initial
            self.set_config(self._initial)

    def wait(self, timeout: float | None = None) -> RunResult | None:
        """Block until the background run (if any) finishes; return the last result."""
        t = self._thread
        if t is not None:
            t.join(timeout)
        return self.result

    @property
    def running(self) -> bool:
        """True while a run is in flight."""
        return self._running

    # ------------------------------------------------------------------ running
    def _begin(self) -> tuple[int, RunConfig] | None:
        """Claim the dashboard for a new run; None if busy or the config is invalid."""
        with self._lock:
            if self._running:
                return None  # a second click during a run is ignored
            cfg = self.config()
            problems = config_problems(cfg, d_max=self.d_max)
            if problems:
                self._refresh()
                return None
            self._running = True
            self._run_id += 1
            self.last_step = -1
            self._stop.clear()
            self._refresh()
            self._set_status(f"Training on {resolve_device(cfg.device, cfg.dtype)[0]} ...")
            return self._run_id, cfg

    def start(self) -> bool:
        """Start a run in a worker thread (the Train button); False if it did not start."""
        claim = self._begin()
        if claim is None:
            return False
        self._thread = threading.Thread(target=self._execute, args=claim, daemon=True)
        self._thread.start()
        return True

    def run(self) -> RunResult | None:
        """Train synchronously with the current controls and return the :class:`RunResult`.

        Used by book builds and tests. Returns None (and changes nothing) if a run is
        already in flight or the controls are invalid (see :meth:`problems`).
        """
        claim = self._begin()
        if claim is None:
            return None
        self._execute(*claim)
        return self.result

    def _execute(self, run_id: int, cfg: RunConfig) -> None:
        """Run ``cfg`` with live drawing; never raises (errors go to the status line)."""
        t0 = time.perf_counter()
        clock = {"last": -1e9, "cost": 0.0, "draws": 0, "draw_s": 0.0, "first": float("nan")}
        bar, bar_widget = _make_bar(cfg.steps, "training")
        if bar_widget is not None:
            self.progress.children = (bar_widget,)
        done = [0]
        title = self._title(cfg)

        def draw(hist: Any) -> None:
            if run_id != self._run_id:  # a newer run (or a Reset) owns the output now
                return
            t = time.perf_counter()
            svg = svg_curves(history_series(hist, cfg.kernels), title, cfg.steps)
            _show(self.plot, "image/svg+xml", svg, "training curves: " + title)
            now = time.perf_counter()
            clock.update(cost=now - t, last=now, draws=clock["draws"] + 1,
                         draw_s=clock["draw_s"] + now - t)
            if clock["draws"] == 1:
                clock["first"] = now - t0

        def on_step(step: int, hist: Any) -> None:
            bar.update(step - done[0])
            done[0] = self.last_step = step
            gap = max(self.redraw_interval, 4.0 * clock["cost"])
            if clock["draws"] == 0 or time.perf_counter() - clock["last"] >= gap:
                draw(hist)

        result: RunResult | None = None
        try:
            result = run_config(cfg, on_step=on_step, should_stop=self._stop.is_set)
            if self._device_note and not result.note:
                result.note = self._device_note
        except Exception as exc:  # never show a traceback in the widget
            result = RunResult(cfg, None, cfg.device, time.perf_counter() - t0,
                               error=f"{type(exc).__name__}: {exc}")
        finally:
            bar.close()
            with self._lock:
                if run_id == self._run_id and result is not None:
                    self.result = result
                    if result.history is not None:
                        draw(result.history)
                    self.timings = {
                        "seconds": time.perf_counter() - t0,
                        "first_draw": clock["first"],
                        "draws": clock["draws"],
                        "draw_seconds": clock["draw_s"],
                    }
                self._running = False
                self._refresh()

    @staticmethod
    def _title(cfg: RunConfig) -> str:
        lr = "auto" if cfg.lr is None else f"{cfg.lr:.3g}"
        return (f"{'+'.join(cfg.train)} trained · s = {cfg.init_scale:.3g} · D = {cfg.D} "
                f"(H D = {cfg.H * cfg.D}, N n = {cfg.N * cfg.n}) · lr = {lr} · {cfg.data} data")


def dashboard(
    *,
    run: bool = False,
    background: bool = True,
    config: RunConfig | None = None,
    **settings: Any,
) -> Dashboard:
    """Create a training dashboard; keyword ``settings`` override :class:`RunConfig` fields.

    ``run=True`` trains once synchronously before returning (what book pages do, so the
    static page shows a real result). Example: ``dashboard(train=("W_V",), lr=None, D=16)``.
    Defaults: :func:`attnlab.phase.default_dashboard_config` (N=16, n=4, D=64, d=8, H=2,
    W_Q trained with lr 0.5 from s = 0.5, both kernels, teacher targets, float64).
    """
    base = config or default_dashboard_config()
    dash = Dashboard(base.replace(**settings), background=background)
    if run:
        dash.run()
    return dash


# ============================================================================ phase explorer


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
        kernels: str = "both",
        lr: float = 0.5,
        background: bool = True,
    ) -> None:
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
            options=[("Softmax", "softmax"), ("Gaussian", "gaussian"), ("both", "both")],
            value=kernels, description="kernel", style={"button_width": "80px"},
        )
        self.data = W.ToggleButtons(
            options=[("random targets", "random"), ("teacher", "teacher")],
            value=self.base.data, description="data", style={"button_width": "110px"},
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

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def phase_config(self) -> RunConfig:
        """The run settings of every cell (before init scale, D and kernel are set)."""
        train = self.train_choice.value
        lr = None if train == ("W_V",) else self.lr
        return self.base.replace(train=train, lr=lr, data=self.data.value)

    def compute(self) -> PhaseResult:
        """Compute the phase diagram synchronously, show it and return it."""
        kern = ("softmax", "gaussian") if self.kernels.value == "both" else (self.kernels.value,)
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
            self._thread = threading.Thread(target=job, daemon=True)
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
        hstyle = HTMLStyle()  # one shared style
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
        header = [W.HTML(f"<b>{res.kernels[k]}</b>", layout=label, style=hstyle)]
        for D in res.dims:
            mark = "≥" if D >= star else "<"
            header.append(W.HTML(f"<center>D={D}<br><small>HD{mark}Nn</small></center>",
                                 layout=head, style=hstyle))
        rows = [W.HBox(header, layout=box)]
        for i in reversed(range(res.init_scales.size)):
            row = [W.HTML(f"s={res.init_scales[i]:.2g}", layout=label, style=hstyle)]
            for j in range(res.dims.size):
                v = vals[i, j]
                b = W.Button(description=f"{v:.1f}" if np.isfinite(v) else "div.",
                             layout=cell, style=style(v),
                             tooltip=f"{res.kernels[k]}, s = {res.init_scales[i]:.3g}, "
                                     f"D = {res.dims[j]}: log10(f_T/f_0) = {v:.3g}")
                b.on_click(lambda _b, k=k, i=i, j=j: self.replay(res.kernels[k], i, j))
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
        cfg = self.result.cell_config(kernel, i, j)
        dash = self.dashboard
        if dash.running:
            dash.stop()
            dash.wait()
        # the dashboard's fixed sizes follow the cell; its device choice stays
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
    kernels: str = "both",
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
    base = (config or default_phase_config().replace(device="auto")).replace(**settings)
    ex = PhaseExplorer(dashboard, init_scales=init_scales, dims=dims, config=base,
                       kernels=kernels, lr=lr, background=background)
    if run:
        ex.compute()
    return ex

