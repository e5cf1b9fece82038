"""Experiment core of the playground: one configured training run, and the phase diagram.

Everything here is plain Python over the engine (`init_params`, `train`, the data
generators); :mod:`attnlab.widgets` only wires controls to these functions, so chapters,
tests and widgets run exactly the same code.

* :class:`RunConfig` describes one run (sizes, init scale, kernel, trained matrices, ...);
  :func:`config_problems` lists why a config cannot run (the widgets show these and disable
  Train); :func:`run_config` trains it and returns a :class:`RunResult`.
* :func:`phase_diagram` trains a grid over init scale x embedding dimension D (x kernel) with
  the engine's batched models (one batched call per (kernel, D) group) and returns a
  :class:`PhaseResult` holding ``log10(f_T / f_0)`` per cell.
* :func:`plot_history` and :func:`plot_phase` draw the static figures.

Seeds: ``RunConfig.seed`` goes to the engine's generators (tokens, targets, initial weights
and teacher draw from independent streams of it), so a run equals what a reader gets by
calling ``random_tokens``, ``init_params``, ... with that seed, and a cell of a phase diagram
uses exactly the data and initialization of the single run with the same config.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ._validate import check_choice, check_int
from .config import pick
from .data import random_targets, random_tokens, teacher_targets
from .device import available_devices, get_device
from .model import Params, init_params
from .train import History, train

__all__ = [
    "MATRICES",
    "KERNEL_CHOICES",
    "DATA_CHOICES",
    "D_MAX",
    "BATCHING",
    "RunConfig",
    "RunResult",
    "Problem",
    "PhaseResult",
    "config_problems",
    "dashboard_log_every",
    "default_dashboard_config",
    "default_phase_config",
    "history_series",
    "draw_history",
    "resolve_device",
    "make_problem",
    "run_config",
    "default_dims",
    "phase_diagram",
    "plot_history",
    "plot_phase",
]

MATRICES = ("W_Q", "W_K", "W_V", "W_O")
KERNEL_CHOICES = ("softmax", "gaussian", "both")
DATA_CHOICES = ("random", "teacher")
DTYPES = {"float64": torch.float64, "float32": torch.float32}
D_MAX = 1024  # largest embedding dimension the widgets accept (keeps C small enough for SVDs)
STEPS_MAX = 100_000


@dataclass(frozen=True)
class RunConfig:
    """One training run of the single-layer model (value dimension 1).

    Sizes: ``N`` sequences of ``n`` tokens, embedding dimension ``D``, ``H`` heads of
    dimension ``d``. ``kernel`` is ``"softmax"``, ``"gaussian"`` or ``"both"`` (two runs
    from the same data and initialization). ``train`` names the trained matrices among
    ``W_Q, W_K, W_V, W_O`` (``W_O`` switches on the output projection). ``lr=None`` asks
    the engine for its default 1/sigma_max(C)^2, allowed only for W_V-only training.
    ``data="teacher"`` uses targets of a same-kernel teacher with
    ``W_Q* = W_Q0 + delta * s * N(0, 1)`` (realizable, f* = 0); ``"random"`` uses
    ``y ~ N(0, 1)``. ``init_scale`` s and ``value_scale`` v: ``W_Q, W_K ~ N(0, s^2)``,
    ``W_V ~ N(0, v^2)``. ``seed`` seeds tokens, targets and weights (engine streams).
    ``device``: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"`` (see :func:`resolve_device`);
    ``dtype``: ``"float64"`` or ``"float32"``. ``log_every`` and ``track_sigma_min`` go to
    the engine's ``train``. The dashboard starts from :func:`default_dashboard_config`.
    """

    N: int = 16
    n: int = 4
    D: int = 64
    d: int = 8
    H: int = 2
    init_scale: float = 1.0
    value_scale: float = 1.0
    kernel: str = "softmax"
    train: tuple[str, ...] = ("W_Q",)
    lr: float | None = 0.5
    steps: int = 500
    seed: int = 0
    data: str = "random"
    delta: float = 1.0
    device: str = "cpu"
    dtype: str = "float64"
    log_every: int = 1
    track_sigma_min: bool = True

    @property
    def kernels(self) -> tuple[str, ...]:
        """The kernels this config trains: one, or both for ``kernel="both"``."""
        return ("softmax", "gaussian") if self.kernel == "both" else (self.kernel,)

    @property
    def threshold_D(self) -> float:
        """The embedding dimension where H D = N n."""
        return self.N * self.n / self.H

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with some fields changed (``train`` may be any iterable of names)."""
        if "train" in changes:
            changes["train"] = tuple(changes["train"])
        return dataclasses.replace(self, **changes)


def config_problems(cfg: RunConfig, *, d_max: int = D_MAX) -> list[str]:
    """Reasons why ``cfg`` cannot run, as sentences for a reader; empty when it can.

    Checks that every size is a positive integer, ``1 <= D <= d_max``, at least one known
    matrix is trained, the learning rate is positive (or ``None`` only for W_V-only
    training), the kernel / data / dtype names are known and the seed is >= 0.
    """
    out: list[str] = []
    for name in ("N", "n", "d", "H"):
        v = getattr(cfg, name)
        if not _is_int(v) or v < 1:
            out.append(f"{name} must be a positive integer (got {v!r}).")
    if not _is_int(cfg.D) or not 1 <= cfg.D <= d_max:
        out.append(
            f"The embedding dimension D must be an integer from 1 to {d_max} (got {cfg.D!r})."
        )
    if not cfg.train:
        out.append("Select at least one matrix to train (W_Q, W_K, W_V or W_O).")
    unknown = [m for m in cfg.train if m not in MATRICES]
    if unknown:
        out.append(f"Unknown matrices {unknown}; choose from {', '.join(MATRICES)}.")
    if cfg.lr is None:
        if tuple(cfg.train) != ("W_V",):
            out.append(
                "The automatic learning rate 1/sigma_max(C)^2 exists only for W_V-only "
                "training: set a learning rate."
            )
    elif not _is_real(cfg.lr) or not math.isfinite(cfg.lr) or cfg.lr <= 0:
        out.append(f"The learning rate must be a positive number (got {cfg.lr!r}).")
    if not _is_real(cfg.init_scale) or not math.isfinite(cfg.init_scale) or cfg.init_scale <= 0:
        out.append(f"The init scale must be a positive number (got {cfg.init_scale!r}).")
    if not _is_real(cfg.value_scale) or not cfg.value_scale > 0:
        out.append(f"value_scale must be a positive number (got {cfg.value_scale!r}).")
    if not _is_int(cfg.steps) or not 1 <= cfg.steps <= STEPS_MAX:
        out.append(f"Steps must be an integer from 1 to {STEPS_MAX} (got {cfg.steps!r}).")
    if not _is_int(cfg.seed) or cfg.seed < 0:
        out.append(f"The seed must be an integer >= 0 (got {cfg.seed!r}).")
    if not _is_int(cfg.log_every) or cfg.log_every < 1:
        out.append(f"log_every must be a positive integer (got {cfg.log_every!r}).")
    for name, value, allowed in (
        ("kernel", cfg.kernel, KERNEL_CHOICES),
        ("data", cfg.data, DATA_CHOICES),
        ("dtype", cfg.dtype, tuple(DTYPES)),
    ):
        if value not in allowed:
            out.append(f"{name} must be one of {', '.join(allowed)} (got {value!r}).")
    return out


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _check_config(cfg: RunConfig) -> None:
    if not isinstance(cfg, RunConfig):
        raise TypeError(f"config must be a RunConfig, got {type(cfg).__name__}")
    problems = config_problems(cfg)
    if problems:
        raise ValueError("config: " + " ".join(problems))


def resolve_device(device: str, dtype: str = "float64") -> tuple[str, str]:
    """Return ``(device, note)``: the device to use and why it differs from the request.

    A device that is not available here (e.g. ``"cuda"`` without a GPU) falls back to the
    CPU, and so does ``"mps"`` with float64 (MPS has no float64); the note says so.
    ``"auto"`` picks the best available device.
    """
    check_choice("device", device, ("auto", "cpu", "cuda", "mps"))
    check_choice("dtype", dtype, tuple(DTYPES))
    if device != "auto" and device not in available_devices():
        return "cpu", f"{device} is not available on this machine, so this runs on the CPU."
    dev = get_device(device, dtype=DTYPES[dtype]).type
    if dev != device and device != "auto":
        return dev, f"{device} has no {dtype}, so this runs on the {dev.upper()}."
    return dev, ""


@dataclass
class Problem:
    """Data and initial weights of a batch of ``M`` runs.

    ``X``: (N, n, D) shared or (M, N, n, D_max) per model (zero-padded); ``y``: (N, n) shared
    or (M, N, n); ``params``: engine :class:`~attnlab.model.Params` with M models;
    ``kernel``: one name, or one per model (a mixed batch).
    """

    X: torch.Tensor
    y: torch.Tensor
    params: Params
    kernel: str | list[str]


def make_problem(
    cfgs: RunConfig | Sequence[RunConfig],
    kernels: str | Sequence[str],
    device: str = "cpu",
) -> Problem:
    """Tokens, targets and initial weights for one run per ``(cfgs[m], kernels[m])``.

    The configs may differ in ``D`` (zero-padded by the engine, exact), ``init_scale`` and
    ``seed``; everything else must agree. Model ``m`` gets exactly the data and weights of
    the single run ``make_problem(cfgs[m], kernels[m])``: tokens and initial weights depend
    on (N, n, D, seed, s), not on the kernel; teacher targets use the model's own kernel.
    """
    cfgs = [cfgs] if isinstance(cfgs, RunConfig) else list(cfgs)
    kern = [kernels] * len(cfgs) if isinstance(kernels, str) else list(kernels)
    if not cfgs or len(kern) != len(cfgs):
        raise ValueError("kernels must be one name or one per config (and cfgs non-empty)")
    for k in kern:
        check_choice("kernels", k, ("softmax", "gaussian"))
    c0 = cfgs[0]
    fixed = ("N", "n", "d", "H", "value_scale", "data", "delta", "dtype", "train")
    for c in cfgs[1:]:
        bad = [f for f in fixed if getattr(c, f) != getattr(c0, f)]
        if bad:
            raise ValueError(f"cfgs must agree on {', '.join(bad)} to share one batch")
    M, dtype = len(cfgs), DTYPES[c0.dtype]
    Ds = [int(c.D) for c in cfgs]
    seeds = [int(c.seed) for c in cfgs]
    one_x = len(set(Ds)) == 1 and len(set(seeds)) == 1
    if one_x:
        X = random_tokens(c0.N, c0.n, Ds[0], seed=seeds[0], dtype=dtype, device=device)
    else:
        X = random_tokens(c0.N, c0.n, Ds, seed=seeds, dtype=dtype, device=device)
    params = init_params(
        M=M, H=c0.H, D=Ds if M > 1 else Ds[0], d=c0.d,
        init_scale=[float(c.init_scale) for c in cfgs], value_scale=float(c0.value_scale),
        seed=seeds, dtype=dtype, device=device, out_proj="W_O" in c0.train,
    )
    kernel: str | list[str] = kern[0] if len(set(kern)) == 1 else kern
    if c0.data == "teacher":
        y, _ = teacher_targets(X, params, delta=c0.delta, kernel=kernel, seed=seeds)
    elif len(set(seeds)) == 1:
        y = random_targets(c0.N, c0.n, seed=seeds[0], dtype=dtype, device=device)
    else:
        y = torch.stack([random_targets(c0.N, c0.n, seed=s, dtype=dtype, device=device)
                         for s in seeds])
    return Problem(X=X, y=y, params=params, kernel=kernel)


@dataclass
class RunResult:
    """What :func:`run_config` returns.

    ``history`` is the engine's ``History`` with one row per kernel of the config (arrays of
    shape (len(kernels), T)); ``None`` only when training could not start (then ``error``
    says why). ``note`` explains a device fallback.
    """

    config: RunConfig
    history: History | None
    device: str
    seconds: float
    note: str = ""
    error: str = ""

    @property
    def kernels(self) -> tuple[str, ...]:
        """Row order of ``history``."""
        return self.config.kernels

    @property
    def stop_reasons(self) -> dict[str, str]:
        """Why each kernel's run ended: ``completed``, ``stopped`` or ``diverged at step k:
        ... try a smaller learning rate ...`` (also when only one kernel of two diverged)."""
        h = self.history
        if h is None:
            return {}
        out = {}
        for m, k in enumerate(self.kernels):
            at = int(h.diverged_at[m])
            if at >= 0:
                out[k] = (f"diverged at step {at}: the loss became NaN/inf; try a smaller "
                          f"learning rate than {float(h.lr[m]):.3g}")
            else:
                out[k] = "completed" if h.stop_reason.startswith("diverged") else h.stop_reason
        return out

    @property
    def stopped(self) -> bool:
        """True if the Stop flag ended the run early."""
        return self.history is not None and self.history.stop_reason == "stopped"

    @property
    def diverged(self) -> bool:
        """True if any kernel's run hit NaN/inf."""
        return any(r.startswith("diverged") for r in self.stop_reasons.values())

    @property
    def final_loss(self) -> dict[str, float]:
        """Last finite logged loss per kernel."""
        if self.history is None:
            return {}
        return {k: _last_finite(self.history.loss[m]) for m, k in enumerate(self.kernels)}

    @property
    def steps_done(self) -> int:
        """The last logged step: the number of gradient steps taken, except after Stop,
        where up to ``log_every - 1`` more steps may have run."""
        h = self.history
        return int(h.steps[-1]) if h is not None and len(h.steps) else 0

    @property
    def steps_per_second(self) -> float:
        """Gradient steps per second of wall time (all kernels train together)."""
        return self.steps_done / self.seconds if self.seconds > 0 else float("nan")

    def status(self) -> str:
        """One line for a reader: device, speed, final loss, why it stopped."""
        if self.error or self.history is None:
            return f"Could not train: {self.error}" + (f" {self.note}" if self.note else "")
        if len(self.history.steps) == 0:  # Stop before the first step: nothing was logged
            return (f"{self.device} · stopped by the Stop button before the first step"
                    + (f" · {self.note}" if self.note else ""))
        parts = [self.device, f"{self.steps_per_second:,.0f} steps/s"]
        losses = self.final_loss
        for k, reason in self.stop_reasons.items():
            label = f"{k}: " if len(self.kernels) > 1 else ""
            if reason.startswith("diverged"):
                parts.append(f"{label}{reason}")
                continue
            if reason == "stopped":
                reason = f"stopped by the Stop button; last logged step {self.steps_done}"
            f0 = float(self.history.loss[self.kernels.index(k), 0])
            if losses[k] > f0:
                reason += ", but the loss grew: try a smaller learning rate"
            parts.append(f"{label}final loss {losses[k]:.3g} ({reason})")
        return " · ".join(parts) + (f" · {self.note}" if self.note else "")


def _last_finite(a: np.ndarray) -> float:
    a = np.asarray(a, dtype=float)
    ok = np.isfinite(a)
    return float(a[ok][-1]) if ok.any() else float("nan")


def dashboard_log_every(steps: int) -> int:
    """Log about 100 times per run: enough points for the curves, and each logged step
    costs an SVD (sigma_min(C)) and, with live plots, an engine snapshot."""
    return max(1, int(steps) // 100)


def run_config(
    cfg: RunConfig,
    *,
    on_step: Callable[[int, History], Any] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunResult:
    """Train ``cfg`` with the engine and return a :class:`RunResult`.

    One engine call: with ``kernel="both"`` the two kernels train side by side as a mixed
    batch of M = 2 models from the same data and initialization. ``on_step(step,
    history_so_far)`` is the engine's callback (rows = kernels); ``should_stop()`` is
    polled before every step (a Stop button). Divergence (NaN/inf) ends with
    ``"diverged at step k: ...; try a smaller learning rate"``, never an exception.
    Raises ``ValueError`` for an invalid config (see :func:`config_problems`).
    """
    _check_config(cfg)
    device, note = resolve_device(cfg.device, cfg.dtype)
    t0 = time.perf_counter()
    kernels = list(cfg.kernels)
    prob = make_problem([cfg] * len(kernels), kernels, device)
    hist = train(
        prob.params, prob.X, prob.y, kernel=prob.kernel, train=cfg.train, lr=cfg.lr,
        steps=cfg.steps, log_every=cfg.log_every, track_sigma_min=cfg.track_sigma_min,
        on_step=on_step, should_stop=should_stop,
    )
    return RunResult(cfg, hist, device, time.perf_counter() - t0, note=note)


# ----------------------------------------------------------------------------- phase diagram


def default_dashboard_config(**overrides: Any) -> RunConfig:
    """The dashboard's defaults: N=16, n=4, D=64, d=8, H=2 (so N n = D = 64), W_Q-only
    training with lr 0.5 from s = 0.5, Softmax and Gaussian side by side on teacher targets,
    float64, the best available device, ``pick(full=500, fast=200)`` steps, logging (and
    sigma_min(C)) every :func:`dashboard_log_every` steps. ``overrides`` replace fields."""
    cfg = RunConfig(init_scale=0.5, kernel="both", data="teacher", lr=0.5,
                    steps=pick(full=500, fast=200), device="auto")
    cfg = cfg.replace(**overrides)
    if "log_every" not in overrides:
        cfg = cfg.replace(log_every=dashboard_log_every(cfg.steps))
    return cfg


def default_dims(N: int, n: int, H: int, count: int = 8) -> list[int]:
    """``count`` embedding dimensions spread around the threshold D* = N n / H.

    Geometric from D*/8 to 4 D*, always containing ceil(D*), distinct, >= 1.
    """
    check_int("count", count, min=2, max=32)
    star = math.ceil(N * n / H)
    raw = star * 2.0 ** np.linspace(-3, 2, count)
    dims = sorted({max(1, int(round(v))) for v in raw} | {star})
    while len(dims) > count:  # drop the neighbour closest (in log) to another, never D*
        i = int(np.argmin(np.diff(np.log(dims))))
        dims.pop(i if dims[i] != star else i + 1)
    return dims


def default_phase_config() -> RunConfig:
    """The phase diagram's default cells: W_V-only (convex) with the engine's learning rate
    1/sigma_max(C)^2, random targets, ``pick(full=1000, fast=200)`` steps."""
    return RunConfig(train=("W_V",), lr=None, steps=pick(full=1000, fast=200),
                     track_sigma_min=False)


BATCHING = ("dim", "kernel", "all", "none")


@dataclass
class PhaseResult:
    """A phase diagram: ``log_ratio[k, i, j] = log10(f_T / f_0)`` for kernel ``kernels[k]``,
    init scale ``init_scales[i]`` and embedding dimension ``dims[j]``; NaN where a run
    diverged (``diverged[k, i, j]``). ``loss0``, ``lossT`` hold f_0 and f_T.
    """

    init_scales: np.ndarray
    dims: np.ndarray
    kernels: tuple[str, ...]
    config: RunConfig
    log_ratio: np.ndarray
    loss0: np.ndarray
    lossT: np.ndarray
    diverged: np.ndarray
    seconds: float
    batching: str
    calls: int
    device: str
    note: str = ""

    @property
    def threshold_D(self) -> float:
        """The embedding dimension where H D = N n."""
        return self.config.threshold_D

    def cell_config(self, kernel: str, i: int, j: int) -> RunConfig:
        """The single-run config of cell (init scale ``i``, dimension ``j``) for ``kernel``
        (with the dashboard's logging: every step, sigma_min(C) tracked)."""
        check_choice("kernel", kernel, self.kernels)
        i = check_int("i", i, min=0, max=len(self.init_scales) - 1)
        j = check_int("j", j, min=0, max=len(self.dims) - 1)
        return self.config.replace(
            kernel=kernel, init_scale=float(self.init_scales[i]), D=int(self.dims[j]),
            log_every=dashboard_log_every(self.config.steps), track_sigma_min=True,
        )


def phase_diagram(
    init_scales: Sequence[float] | np.ndarray | None = None,
    dims: Sequence[int] | None = None,
    *,
    kernels: str | Sequence[str] = ("softmax",),
    config: RunConfig | None = None,
    batching: str = "kernel",
    on_progress: Callable[[int, int], None] | None = None,
    **overrides: Any,
) -> PhaseResult:
    """Train every (kernel, init scale, D) cell and return ``log10(f_T / f_0)`` per cell.

    Args:
        init_scales: the init scales s (rows); default ``logspace(-1, 1, pick(8, 4))``.
        dims: the embedding dimensions D (columns); default :func:`default_dims`.
        kernels: ``("softmax",)``, ``("gaussian",)`` or both (a single name, or
            ``"both"``, is accepted too).
        config: every other setting (sizes, trained matrices, lr, steps, seed, data,
            device); default :func:`default_phase_config`. ``overrides`` replace its fields.
        batching: how cells are grouped into batched engine calls: ``"kernel"`` (default:
            one call per kernel, every D zero-padded to the largest), ``"dim"`` (one call per
            kernel and D, M = len(init_scales)), ``"all"`` (one call, mixed kernels, which
            evaluates both kernels for every model), ``"none"`` (one call per cell). All give
            the same numbers; ``"kernel"`` was the fastest or close to it on CPU in every
            setting we timed (see ``benchmarks/bench_widgets.py``).
        on_progress: called as ``on_progress(done, total)`` after each engine call.

    Each cell uses exactly the data and initialization of ``run_config(result.cell_config
    (...))``, so its value equals that of the separate single run.
    """
    check_choice("batching", batching, BATCHING)
    cfg = (config or default_phase_config()).replace(**overrides)
    cfg = cfg.replace(track_sigma_min=False, log_every=max(1, cfg.steps), kernel="softmax")
    _check_config(cfg)
    scales = np.asarray(
        np.logspace(-1, 1, pick(full=8, fast=4)) if init_scales is None else init_scales,
        dtype=float,
    ).reshape(-1)
    if scales.size == 0 or not np.all(np.isfinite(scales)) or np.any(scales <= 0):
        raise ValueError("init_scales must be a non-empty sequence of positive numbers")
    dims_ = default_dims(cfg.N, cfg.n, cfg.H, pick(full=8, fast=4)) if dims is None else dims
    dims_arr = np.asarray([check_int("dims", int(v), min=1, max=D_MAX) for v in dims_])
    if dims_arr.size == 0:
        raise ValueError("dims must be a non-empty sequence of positive integers")
    if isinstance(kernels, str):
        kernels = ("softmax", "gaussian") if kernels == "both" else (kernels,)
    kernels = tuple(check_choice("kernels", k, ("softmax", "gaussian")) for k in kernels)
    if not kernels:
        raise ValueError("kernels must name at least one of 'softmax', 'gaussian'")
    device, note = resolve_device(cfg.device, cfg.dtype)

    cells = [(k, i, j) for k in range(len(kernels)) for j in range(dims_arr.size)
             for i in range(scales.size)]
    key = {"all": lambda c: 0, "kernel": lambda c: c[0], "dim": lambda c: (c[0], c[2]),
           "none": lambda c: c}[batching]
    groups: dict[Any, list[tuple[int, int, int]]] = {}
    for c in cells:
        groups.setdefault(key(c), []).append(c)

    shape = (len(kernels), scales.size, dims_arr.size)
    loss0, lossT = np.full(shape, np.nan), np.full(shape, np.nan)
    diverged = np.zeros(shape, dtype=bool)
    t0 = time.perf_counter()
    for done, group in enumerate(groups.values(), start=1):
        cfgs = [cfg.replace(init_scale=float(scales[i]), D=int(dims_arr[j])) for _, i, j in group]
        prob = make_problem(cfgs, [kernels[k] for k, _, _ in group], device)
        hist = train(prob.params, prob.X, prob.y, kernel=prob.kernel, train=cfg.train,
                     lr=cfg.lr, steps=cfg.steps, log_every=cfg.log_every)
        for m, (k, i, j) in enumerate(group):
            loss0[k, i, j] = hist.loss[m, 0]
            diverged[k, i, j] = hist.diverged_at[m] >= 0
            lossT[k, i, j] = np.nan if diverged[k, i, j] else hist.loss[m, -1]
        if on_progress is not None:
            on_progress(done, len(groups))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log10(lossT / loss0)
    log_ratio[~np.isfinite(log_ratio)] = np.nan
    return PhaseResult(
        init_scales=scales, dims=dims_arr, kernels=kernels, config=cfg, log_ratio=log_ratio,
        loss0=loss0, lossT=lossT, diverged=diverged, seconds=time.perf_counter() - t0,
        batching=batching, calls=len(groups), device=device, note=note,
    )


# ----------------------------------------------------------------------------- figures

COLORS = {"softmax": "#1f77b4", "gaussian": "#d62728"}
PANELS = (
    ("loss", "loss $f$"),
    ("pl_ratio", r"PL ratio $\|\nabla f\|^2/(f-f^*)$"),
    ("sigma_min", r"$\sigma_{\min}(C)$"),
)


def history_series(hist: History, kernels: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
    """Per kernel (row ``m`` of ``hist`` is ``kernels[m]``): steps and the plotted curves."""
    steps = np.asarray(hist.steps)
    return {
        k: {"steps": steps, **{key: np.asarray(getattr(hist, key))[m] for key, _ in PANELS}}
        for m, k in enumerate(kernels)
    }


def draw_history(axes: Sequence[Any], series: dict[str, dict[str, np.ndarray]]) -> None:
    """Draw loss / PL ratio / sigma_min(C) curves (one per kernel) on three log-y axes."""
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


def _positive(x: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(v, dtype=float)
    ok = np.isfinite(v) & (v > 0)
    return np.asarray(x)[ok], v[ok]


def plot_history(result: RunResult, *, title: str | None = None) -> Any:
    """Static figure of a run: loss, PL ratio and sigma_min(C) over steps, log scale."""
    import matplotlib.pyplot as plt

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
    cells where the loss grew by more than 2 % (> 0.01) get the "over" colour."""
    finite = values[np.isfinite(values)]
    vmin = min(float(finite.min()) if finite.size else -1.0, -1e-3)
    return vmin, 0.01


def plot_phase(result: PhaseResult, *, axes: Sequence[Any] | None = None) -> Any:
    """Heatmaps of ``log10(f_T / f_0)`` (init scale x D), one per kernel, with the
    H D = N n line; diverged cells are marked with a cross, cells whose loss grew are red."""
    import matplotlib
    import matplotlib.pyplot as plt

    K = len(result.kernels)
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
