"""The training dashboard: controls declared in one table (:data:`CONTROLS`), Train / Stop /
Reset, a live SVG plot, a progress bar and a status line, over :func:`run_config`.

Threading. A running cell blocks widget messages, so a Stop click is only seen if training
runs in a worker thread: Train (with ``background=True``, the default) starts a thread and
passes a ``threading.Event`` as ``should_stop``. Train is disabled while a run is in flight
and re-enabled in ``finally``; every run gets an id and only the current run may draw, so a
late callback of an old run never mixes into the new output. :meth:`Dashboard.run` is the
synchronous path used by book builds and tests.
"""

from __future__ import annotations

import math
import numbers
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as W

from .._validate import check_bool, check_instance, check_int, check_real
from ..device import available_devices
from ..dynamics import (
    D_MAX,
    DATA_CHOICES,
    LR_RULES,
    MATRICES,
    STEPS_MAX,
    RunConfig,
    RunResult,
    config_problems,
    dashboard_log_every,
    default_dashboard_config,
    history_series,
    resolve_device,
    run_config,
)
from ..kernels import KERNEL_CHOICES, KERNEL_TABLE
from .svg import _show, svg_curves

__all__ = ["CONTROLS", "Control", "Dashboard", "dashboard"]

_WIDE = {"description_width": "110px"}
_DATA_LABELS = {"random": "random targets", "teacher": "teacher"}
_RULE_LABELS = {"fixed": "lr as set", "curvature": "lr / λ_max(J₀J₀ᵀ)"}


def kernel_options() -> list[tuple[str, str]]:
    """(label, name) of every kernel choice, from the kernel table (plus "both")."""
    return [(KERNEL_TABLE[k].display if k in KERNEL_TABLE else k, k) for k in KERNEL_CHOICES]


def data_options() -> list[tuple[str, str]]:
    return [(_DATA_LABELS.get(c, c), c) for c in DATA_CHOICES]


def step_rule_options() -> list[tuple[str, str]]:
    """(label, name) of every step rule of :class:`RunConfig` (``lr_rule``)."""
    return [(_RULE_LABELS.get(r, r), r) for r in LR_RULES]


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


# ============================================================================ control kinds
class _Kind:
    """How one kind of control is built, read, written and laid out."""

    def make(self) -> Any:
        raise NotImplementedError

    def read(self, w: Any) -> Any:
        return w.value

    def check(self, field: str, value: Any) -> None:
        """Raise ``ValueError`` if the control cannot show ``value`` exactly."""

    def write(self, w: Any, value: Any) -> None:
        w.value = value

    def parts(self, w: Any) -> list[W.Widget]:
        """The widgets whose ``value`` the dashboard observes."""
        return [w]

    def layout(self, w: Any) -> list[W.Widget]:
        return [w]


@dataclass(frozen=True)
class LogSlider(_Kind):
    """A log10 slider over ``[10**lo, 10**hi]``; a value outside that range widens the
    range (so a loaded config's value is kept exactly, never clamped)."""

    label: str
    lo: float
    hi: float
    value: float
    step: float = 0.01

    def make(self) -> W.FloatLogSlider:
        return W.FloatLogSlider(value=self.value, base=10, min=self.lo, max=self.hi,
                                step=self.step, description=self.label,
                                readout_format=".3g", style=_WIDE, continuous_update=False)

    def check(self, field: str, value: Any) -> None:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{field} must be a positive finite number, got {value!r}")

    def write(self, w: W.FloatLogSlider, value: float) -> None:
        lo = min(self.lo, math.floor(math.log10(value)))
        hi = max(self.hi, math.ceil(math.log10(value)))
        lo -= 10.0 ** lo > value  # guard the rounding of 10 ** lo
        hi += 10.0 ** hi < value
        # widen first (narrowing first could clamp the old value), then set, then narrow
        w.min, w.max = min(w.min, lo), max(w.max, hi)
        w.value = float(value)
        w.min, w.max = lo, hi


@dataclass(frozen=True)
class IntBox(_Kind):
    """An integer box; with ``lo``/``hi`` a bounded one (values outside are rejected)."""

    label: str
    width: str = "200px"
    lo: int | None = None
    hi: int | None = None
    wide: bool = True  # the wide label column of the first control of a line

    def make(self) -> W.IntText:
        common: dict[str, Any] = {"description": self.label,
                                  "layout": W.Layout(width=self.width)}
        if self.wide:
            common["style"] = _WIDE
        if self.lo is None:
            return W.IntText(value=0, **common)
        return W.BoundedIntText(value=self.lo, min=self.lo, max=self.hi, **common)

    def check(self, field: str, value: Any) -> None:
        if self.lo is not None and not self.lo <= value <= self.hi:
            raise ValueError(f"{field} must be from {self.lo} to {self.hi}, got {value!r}")


@dataclass(frozen=True)
class Choice(_Kind):
    """Toggle buttons over ``options()`` (pairs of label and value)."""

    label: str
    options: Callable[[], list[tuple[str, Any]]]
    button_width: str = "80px"

    def make(self) -> W.ToggleButtons:
        return W.ToggleButtons(options=self.options(), description=self.label,
                               style={"button_width": self.button_width, **_WIDE})

    def check(self, field: str, value: Any) -> None:
        allowed = [v for _, v in self.options()]
        if value not in allowed:
            raise ValueError(f"{field} must be one of {allowed}, got {value!r}")


@dataclass(frozen=True)
class Toggles(_Kind):
    """One toggle button per name; the value is the tuple of names switched on."""

    label: str
    names: Sequence[str]

    def make(self) -> dict[str, W.ToggleButton]:
        return {m: W.ToggleButton(description=m, layout=W.Layout(width="60px"))
                for m in self.names}

    def read(self, w: dict[str, W.ToggleButton]) -> tuple[str, ...]:
        return tuple(m for m, t in w.items() if t.value)

    def check(self, field: str, value: Any) -> None:
        unknown = [m for m in value if m not in self.names]
        if unknown:
            raise ValueError(f"{field} must name matrices among {list(self.names)}, "
                             f"got {unknown}")

    def write(self, w: dict[str, W.ToggleButton], value: Sequence[str]) -> None:
        for m, t in w.items():
            t.value = m in value

    def parts(self, w: dict[str, W.ToggleButton]) -> list[W.Widget]:
        return list(w.values())

    def layout(self, w: dict[str, W.ToggleButton]) -> list[W.Widget]:
        return [W.Label(self.label, layout=W.Layout(width="110px")), *w.values()]


@dataclass(frozen=True)
class Checkbox(_Kind):
    label: str

    def make(self) -> W.Checkbox:
        return W.Checkbox(description=self.label, indent=False)


@dataclass(frozen=True)
class Dropdown(_Kind):
    """A dropdown over ``options()``; a value not offered becomes the last option."""

    label: str
    options: Callable[[], list[str]]

    def make(self) -> W.Dropdown:
        opts = self.options()
        return W.Dropdown(options=opts, value=opts[0], description=self.label,
                          layout=W.Layout(width="170px"))

    def write(self, w: W.Dropdown, value: Any) -> None:
        w.value = value if value in w.options else w.options[-1]


_SKIP = object()  # "this control has no say on its field"


def _skip_none(v: Any) -> Any:
    return _SKIP if v is None else v


def _same(v: Any) -> Any:
    return v


@dataclass(frozen=True)
class Control:
    """One row of the dashboard's control table.

    ``name``: the :class:`Dashboard` attribute holding the widget; ``kind``: how it is built
    (range / options), read, written and laid out; ``field``: the :class:`RunConfig` field it
    sets; ``to_config`` / ``from_config``: widget value -> field value and back (``_SKIP``:
    no say); ``line``: the layout line (controls with the same line share a row).
    """

    name: str
    kind: _Kind
    field: str
    to_config: Callable[[Any], Any] = _same
    from_config: Callable[[Any], Any] = _same
    line: int = 0


# Adding a control is one row. Rows are read in order: ``lr_auto`` (the engine's automatic
# rate, ``lr=None``) comes after ``lr`` so that its None wins when it is ticked.
CONTROLS: tuple[Control, ...] = (
    Control("init_scale", LogSlider("init scale s", -2, 1, 1.0), "init_scale", float, float, 0),
    Control("D", IntBox("embedding D"), "D", int, int, 0),
    Control("kernel", Choice("kernel", kernel_options), "kernel", line=1),
    Control("data", Choice("data", data_options, "110px"), "data", line=2),
    Control("train_toggles", Toggles("train", MATRICES), "train", tuple, tuple, 3),
    Control("lr", LogSlider("learning rate", -3, 2, 0.5, 0.05), "lr", float, _skip_none, 4),
    Control("lr_auto", Checkbox("auto 1/σ_max(C)² (W_V only)"), "lr",
            lambda on: None if on else _SKIP, lambda lr: lr is None, 4),
    # "curvature": the slider's lr is the constant c of c / lambda_max(J_0 J_0^T), one step
    # per kernel, so that "both" compares the kernels each with its own step
    Control("lr_rule", Choice("step rule", step_rule_options, "150px"), "lr_rule", line=5),
    Control("steps", IntBox("steps", lo=1, hi=STEPS_MAX), "steps", int, int, 6),
    Control("seed", IntBox("seed", width="150px", wide=False), "seed", int, int, 6),
    # a lambda, so that a patched ``available_devices`` of this module is seen
    Control("device", Dropdown("device", lambda: available_devices()), "device", line=6),
)


# ============================================================================ dashboard
class Dashboard:
    """Training dashboard over :func:`attnlab.dynamics.run_config`.

    Attributes are the controls of :data:`CONTROLS` (``init_scale``, ``D``, ``kernel``,
    ``data``, ``train_toggles`` (dict matrix -> ToggleButton), ``lr``, ``lr_auto``,
    ``lr_rule``, ``steps``, ``seed``, ``device``), the buttons (``train_button``, ``stop_button``,
    ``reset_button``), the outputs (``plot``, ``status``, ``progress``) and ``widget`` (the
    whole layout; the dashboard also displays itself). ``result`` holds the last
    :class:`RunResult`.

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
        check_instance("config", config, RunConfig, allow_none=True)
        self.background = check_bool("background", background)
        self.redraw_interval = check_real("redraw_interval", redraw_interval, min=0.0)
        self.d_max = check_int("d_max", d_max, min=1, max=1 << 16)
        if config is not None:
            problems = config_problems(config, d_max=self.d_max)
            if problems:
                raise ValueError("config: " + " ".join(problems))
        self.defaults = config or default_dashboard_config()
        self._initial = self.defaults
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
        self._running_text = ""
        self._build()
        self.set_config(self.defaults)

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        lines: dict[int, list[W.Widget]] = {}
        for c in CONTROLS:
            w = c.kind.make()
            setattr(self, c.name, w)
            lines.setdefault(c.line, []).extend(c.kind.layout(w))
            for part in c.kind.parts(w):
                part.observe(self._on_change, names="value")
        self.D_mark = W.HTML(layout=W.Layout(margin="0 0 0 114px"))
        self.train_button = W.Button(description="Train", button_style="success", icon="play")
        self.stop_button = W.Button(description="Stop", button_style="danger", icon="stop",
                                    disabled=True)
        self.reset_button = W.Button(description="Reset", icon="undo")
        self.progress = W.Box(layout=W.Layout(width="360px"))
        self.status = W.HTML(layout=W.Layout(width="100%"))
        self.plot = W.Output(layout=W.Layout(min_height="220px"))

        rows: list[W.Widget] = []
        for _, ws in sorted(lines.items()):
            rows.append(W.HBox(ws) if len(ws) > 1 else ws[0])
            if self.D in ws:  # the H D = N n marker sits under the D box
                rows.append(self.D_mark)
        self.widget = W.VBox([
            *rows,
            W.HBox([self.train_button, self.stop_button, self.reset_button, self.progress]),
            self.status,
            self.plot,
        ], layout=W.Layout(max_width="780px"))
        self.train_button.on_click(self._on_train)
        self.stop_button.on_click(self._on_stop)
        self.reset_button.on_click(self._on_reset)

    def _ipython_display_(self, **kwargs: Any) -> None:
        # display(), not _repr_mimebundle_: ipywidgets 7 (Colab's) widgets have no
        # _repr_mimebundle_ and show themselves through _ipython_display_; display() picks
        # whichever the installed version has.
        from IPython.display import display

        display(self.widget)

    # ------------------------------------------------------------------ config <-> controls
    def config(self) -> RunConfig:
        """The run the controls describe now (sizes etc. from the dashboard's defaults)."""
        fields: dict[str, Any] = {}
        for c in CONTROLS:
            v = c.to_config(c.kind.read(getattr(self, c.name)))
            if v is not _SKIP:
                fields[c.field] = v
        return self.defaults.replace(
            **fields, log_every=dashboard_log_every(max(fields["steps"], 1)),
            track_sigma_min=True,
        )

    def set_config(self, cfg: RunConfig) -> None:
        """Set every control from ``cfg``, exactly: a log slider widens its range for a
        value outside it. A device that is not available becomes the CPU (with a note).
        Raises ``ValueError`` (and changes nothing) for a value no control can show, e.g. a
        learning rate <= 0."""
        dev, note = resolve_device(cfg.device, cfg.dtype)
        cfg = cfg.replace(device=dev)
        values = []
        for c in CONTROLS:
            v = c.from_config(getattr(cfg, c.field))
            if v is not _SKIP:
                c.kind.check(c.field, v)
            values.append(v)
        with self._lock:
            self._quiet = True
            try:
                self._device_note = note
                for c, v in zip(CONTROLS, values, strict=True):
                    if v is not _SKIP:
                        c.kind.write(getattr(self, c.name), v)
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
            # under the curvature rule the slider sets the constant c, not the step itself
            self.lr.description = "c (of c/λ_max)" if cfg.lr_rule == "curvature" \
                else "learning rate"
            problems = config_problems(cfg, d_max=self.d_max)
            self.train_button.disabled = self._running or bool(problems)
            self.stop_button.disabled = not self._running
            if problems:
                self.train_button.tooltip = " ".join(problems)
                self._set_status("Train is disabled: " + " ".join(problems), "warn")
            elif self._running:
                self._set_status(self._running_text)
            else:
                self.train_button.tooltip = "train with these settings"
                if self.result is not None:
                    self._set_status(*self._result_line(self.result))
                else:
                    self._set_status("Ready: press Train. " + self._device_note, "info")

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
    def _result_line(res: RunResult) -> tuple[str, str]:
        """The status line of a finished run and its colour; never raises (a summary that
        fails must not break every later control change)."""
        try:
            return res.status(), "error" if res.error or res.diverged else "ok"
        except Exception as exc:
            return f"The run ended, but its summary failed: {type(exc).__name__}: {exc}", "error"

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
            self._running_text = f"Training on {resolve_device(cfg.device, cfg.dtype)[0]} ..."
            self._refresh()
            return self._run_id, cfg

    def start(self) -> bool:
        """Start a run in a worker thread (the Train button); False if it did not start."""
        claim = self._begin()
        if claim is None:
            return False
        self._thread = threading.Thread(target=self._execute, args=claim, daemon=True,
                                        name="attnlab-dashboard-run")
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
        """Run ``cfg`` with live drawing; never raises (errors go to the status line) and
        always ends with ``running`` false and the controls refreshed."""
        t0 = time.perf_counter()
        clock = {"last": -1e9, "cost": 0.0, "draws": 0, "draw_s": 0.0, "first": float("nan")}
        done = [0]
        title = self._title(cfg)
        bar: Any = None

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
            bar, bar_widget = _make_bar(cfg.steps, "training")
            if bar_widget is not None:
                self.progress.children = (bar_widget,)
            result = run_config(cfg, on_step=on_step, should_stop=self._stop.is_set)
            if self._device_note and not result.note:
                result.note = self._device_note
        except Exception as exc:  # never show a traceback in the widget
            result = RunResult(cfg, None, cfg.device, time.perf_counter() - t0,
                               error=f"{type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                try:
                    if bar is not None:
                        bar.close()
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
                except Exception as exc:  # a failed last redraw leaves a note, not a hang
                    if result is not None:
                        result.note = f"{result.note} (the plot failed: {exc})".strip()
                finally:
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
    Defaults: :func:`attnlab.dynamics.default_dashboard_config` (N=16, n=4, D=64, d=8, H=2,
    W_Q trained with lr 0.5 from s = 0.5, every kernel side by side, teacher targets,
    float64).
    """
    run = check_bool("run", run)
    check_bool("background", background)
    check_instance("config", config, RunConfig, allow_none=True)
    base = config or default_dashboard_config()
    dash = Dashboard(base.replace(**settings), background=background)
    if run:
        dash.run()
    return dash
