"""One run as a value: :class:`RunConfig`, its data (:func:`make_problem`) and its training.

Every Part II experiment, the playground and the widgets describe a run by a
:class:`RunConfig`; a batch of runs is a list of configs that :func:`make_problem` turns
into one engine problem and :func:`train_problem` trains in one engine call. A sweep over
seeds or any other field (:func:`attnlab.dynamics.sweep`) is such a batch.

Seeds: ``RunConfig.seed`` goes to the engine's generators (tokens, targets, initial weights
and teacher draw from independent streams of it), so a run equals what a reader gets by
calling ``random_tokens``, ``init_params``, ... with that seed, and model ``m`` of a batch
gets exactly the data and initial weights of the single run of ``cfgs[m]``.
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

from .._validate import check_callable, check_choice, check_instance, check_int
from ..config import pick
from ..data import random_targets, random_tokens, teacher_targets
from ..device import DTYPES, resolve_device
from ..kernels import BOTH, KERNEL_CHOICES, KERNELS, expand_kernels, nn_threshold
from ..model import PARAM_NAMES, Params, init_params
from ..train import History, auto_lr_allowed, train
from .measures import curvature_lr

__all__ = [
    "MATRICES",
    "DATA_CHOICES",
    "LR_RULES",
    "D_MAX",
    "STEPS_MAX",
    "RunConfig",
    "RunResult",
    "Problem",
    "config_problems",
    "check_config",
    "dashboard_log_every",
    "default_dashboard_config",
    "resolve_device",
    "make_problem",
    "step_sizes",
    "train_problem",
    "run_config",
]

MATRICES = PARAM_NAMES
DATA_CHOICES = ("random", "teacher")
LR_RULES = ("fixed", "curvature")
D_MAX = 1024  # largest embedding dimension the widgets accept (keeps C small enough for SVDs)
STEPS_MAX = 100_000
_SIZE_MAX = 100_000  # N, n, d, H, d_v: a larger size is a typo (tokens N n D must fit memory)


@dataclass(frozen=True)
class RunConfig:
    """One training run of the single-layer model.

    Sizes: ``N`` sequences of ``n`` tokens, embedding dimension ``D``, ``H`` heads of
    dimension ``d``; value dimension ``d_v`` (1 unless ``W_O`` is used). ``kernel`` is a
    name of the kernel table or ``"both"`` (one run per kernel from the same data and
    initialization). ``train`` names the trained matrices among ``W_Q, W_K, W_V, W_O``;
    ``out_proj`` (or ``W_O`` in ``train``) switches on the output projection.

    Step size: ``lr_rule="fixed"`` uses ``lr`` itself (``lr=None``: the engine's
    ``1/sigma_max(C)^2``, only for W_V-only training); ``"curvature"`` uses
    ``lr / lambda_max(J_0 J_0^T)`` per model, ``J_0`` the Jacobian of the outputs in
    ``W_Q`` at initialization (:func:`attnlab.dynamics.curvature_lr`).

    Data: ``"random"`` targets ``y ~ N(0, target_scale^2)``; ``"teacher"`` targets of a
    same-kernel teacher with ``W_Q* = W_Q0 + delta * s * N(0, 1)`` (realizable, f* = 0).
    ``init_scale`` s and ``value_scale`` v: ``W_Q, W_K ~ N(0, s^2)``, ``W_V ~ N(0, v^2)``.
    ``seed`` seeds tokens, targets and weights (engine streams). ``device``: ``"auto"``,
    ``"cpu"``, ``"cuda"`` or ``"mps"`` (:func:`resolve_device`); ``dtype``: ``"float64"``
    or ``"float32"``. ``steps``, ``log_every`` and ``track_sigma_min`` go to the engine.
    """

    N: int = 16
    n: int = 4
    D: int = 64
    d: int = 8
    H: int = 2
    init_scale: float = 1.0
    value_scale: float = 1.0
    kernel: str = KERNELS[0]
    train: tuple[str, ...] = ("W_Q",)
    lr: float | None = 0.5
    lr_rule: str = "fixed"
    steps: int = 500
    seed: int = 0
    data: str = "random"
    delta: float = 1.0
    target_scale: float = 1.0
    out_proj: bool = False
    d_v: int = 1
    device: str = "cpu"
    dtype: str = "float64"
    log_every: int = 1
    track_sigma_min: bool = True

    @property
    def kernels(self) -> tuple[str, ...]:
        """The kernels this config trains: one, or every kernel for ``kernel="both"``."""
        return expand_kernels(self.kernel)

    @property
    def threshold_D(self) -> float:
        """The embedding dimension where H D = N n (:func:`attnlab.kernels.nn_threshold`)."""
        return nn_threshold(self.N, self.n, self.H)

    @property
    def uses_W_O(self) -> bool:
        """Whether the model has an output projection ``W_O``."""
        trains_W_O = isinstance(self.train, (tuple, list)) and "W_O" in self.train
        return bool(self.out_proj) or trains_W_O

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with some fields changed (``train`` may be any iterable of names)."""
        if "train" in changes and not isinstance(changes["train"], str):
            changes["train"] = tuple(changes["train"])
        bad = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if bad:
            raise TypeError(f"RunConfig has no field {', '.join(bad)}; fields: "
                            f"{', '.join(f.name for f in dataclasses.fields(self))}")
        return dataclasses.replace(self, **changes)


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _positive(v: Any) -> bool:
    return _is_real(v) and math.isfinite(v) and v > 0


def config_problems(cfg: RunConfig, *, d_max: int = D_MAX) -> list[str]:
    """Reasons why ``cfg`` cannot run, as sentences for a reader; empty when it can.

    The one validation of every run setting (widgets show these and disable Train; every
    experiment raises them as ``ValueError``).
    """
    check_instance("cfg", cfg, RunConfig)
    d_max = check_int("d_max", d_max, min=1)
    out: list[str] = []
    for name in ("N", "n", "d", "H", "d_v"):
        v = getattr(cfg, name)
        if not _is_int(v) or v < 1:
            out.append(f"{name} must be a positive integer (got {v!r}).")
        elif v > _SIZE_MAX:
            out.append(f"{name} must be at most {_SIZE_MAX} (got {v!r}).")
    if not _is_int(cfg.D) or not 1 <= cfg.D <= d_max:
        out.append(
            f"The embedding dimension D must be an integer from 1 to {d_max} (got {cfg.D!r})."
        )
    train = cfg.train if isinstance(cfg.train, tuple) else ()
    if not isinstance(cfg.train, tuple) or not all(isinstance(m, str) for m in cfg.train):
        out.append(f"train must be a tuple of matrix names (got {cfg.train!r}).")
    elif not train:
        out.append("Select at least one matrix to train (W_Q, W_K, W_V or W_O).")
    unknown = [m for m in train if m not in MATRICES]
    if unknown:
        out.append(f"Unknown matrices {unknown}; choose from {', '.join(MATRICES)}.")
    if cfg.lr is None:
        if not auto_lr_allowed(train, cfg.uses_W_O) or cfg.lr_rule != "fixed":
            out.append(
                "The automatic learning rate 1/sigma_max(C)^2 exists only for W_V-only "
                "training without W_O: set a learning rate lr."
            )
    elif not _positive(cfg.lr):
        out.append(f"The learning rate must be a positive number (got lr = {cfg.lr!r}).")
    if cfg.lr_rule == "curvature" and "W_Q" not in train:
        out.append("The curvature step rule measures the curvature in W_Q: train W_Q.")
    if not _positive(cfg.init_scale):
        out.append(f"The init scale must be a positive number "
                   f"(got init_scale = {cfg.init_scale!r}).")
    if not _positive(cfg.value_scale):
        out.append(f"value_scale must be a positive number (got {cfg.value_scale!r}).")
    if not _is_real(cfg.delta) or not math.isfinite(cfg.delta) or cfg.delta < 0:
        out.append(f"delta must be a number >= 0 (got {cfg.delta!r}).")
    if not _positive(cfg.target_scale):
        out.append(f"target_scale must be a positive number (got {cfg.target_scale!r}).")
    if not _is_int(cfg.steps) or not 1 <= cfg.steps <= STEPS_MAX:
        out.append(f"Steps must be an integer from 1 to {STEPS_MAX} "
                   f"(got steps = {cfg.steps!r}).")
    if not _is_int(cfg.seed) or cfg.seed < 0:
        out.append(f"The seed must be an integer >= 0 (got seed = {cfg.seed!r}).")
    if not _is_int(cfg.log_every) or cfg.log_every < 1:
        out.append(f"log_every must be a positive integer (got {cfg.log_every!r}).")
    for name in ("out_proj", "track_sigma_min"):
        if not isinstance(getattr(cfg, name), (bool, np.bool_)):
            out.append(f"{name} must be True or False (got {getattr(cfg, name)!r}).")
    if all(_is_int(getattr(cfg, k)) for k in ("N", "n", "D")) and \
            cfg.N * cfg.n * cfg.D > 10**8:
        out.append(f"The tokens N n D = {cfg.N * cfg.n * cfg.D:,} values are too many "
                   f"(at most 10^8): lower N, n or D.")
    if cfg.uses_W_O is False and _is_int(cfg.d_v) and cfg.d_v != 1:
        out.append(f"d_v = {cfg.d_v} needs the output projection: set out_proj=True.")
    for name, value, allowed in (
        ("kernel", cfg.kernel, KERNEL_CHOICES),
        ("data", cfg.data, DATA_CHOICES),
        ("lr_rule", cfg.lr_rule, LR_RULES),
        ("dtype", cfg.dtype, tuple(DTYPES)),
        ("device", cfg.device, ("auto", "cpu", "cuda", "mps")),
    ):
        if not isinstance(value, str) or value not in allowed:
            out.append(f"{name} must be one of {', '.join(allowed)} (got {value!r}).")
    return out


def check_config(cfg: Any, name: str = "config") -> RunConfig:
    """Return ``cfg`` if it is a valid :class:`RunConfig`; else raise naming ``name``."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if not isinstance(cfg, RunConfig):
        raise TypeError(f"{name} must be a RunConfig, got {type(cfg).__name__}")
    problems = config_problems(cfg)
    if problems:
        raise ValueError(f"{name}: " + " ".join(problems))
    return cfg


# Fields every run of one batch must share (one engine call trains one setting of these).
BATCH_FIXED = ("N", "n", "d", "H", "value_scale", "data", "dtype", "train", "out_proj",
               "d_v", "steps", "log_every", "track_sigma_min", "lr_rule")


@dataclass
class Problem:
    """Data and initial weights of a batch of ``M`` runs (one engine call).

    ``X``: (N, n, D) shared or (M, N, n, D_max) per model (zero-padded); ``y``: (N, n) shared
    or (M, N, n); ``params``: engine :class:`~attnlab.model.Params` with M models;
    ``kernel``: one name, or one per model (a mixed batch); ``configs``: the M runs.
    """

    X: torch.Tensor
    y: torch.Tensor
    params: Params
    kernel: str | list[str]
    configs: list[RunConfig] = dataclasses.field(default_factory=list)


def _targets(cfgs: list[RunConfig], X: torch.Tensor, params: Params, kernel: Any,
             kern: list[str], dtype: torch.dtype, device: str) -> torch.Tensor:
    c0, seeds = cfgs[0], [int(c.seed) for c in cfgs]
    if c0.data == "teacher":
        deltas = [float(c.delta) for c in cfgs]
        if len(set(deltas)) == 1:
            return teacher_targets(X, params, delta=deltas[0], kernel=kernel, seed=seeds)[0]
        y = torch.empty(len(cfgs), c0.N, c0.n, dtype=dtype, device=params.device)
        for delta in dict.fromkeys(deltas):  # teacher_targets takes one delta per call
            idx = [m for m, v in enumerate(deltas) if v == delta]
            Xi = X if X.ndim == 3 else X[idx]
            y[idx] = teacher_targets(Xi, params.select(idx), delta=delta,
                                     kernel=[kern[m] for m in idx],
                                     seed=[seeds[m] for m in idx])[0]
        return y
    scales = [float(c.target_scale) for c in cfgs]
    if len(set(seeds)) == 1 and len(set(scales)) == 1:
        return random_targets(c0.N, c0.n, seed=seeds[0], scale=scales[0], dtype=dtype,
                              device=device)
    return torch.stack([random_targets(c0.N, c0.n, seed=s, scale=v, dtype=dtype, device=device)
                        for s, v in zip(seeds, scales, strict=True)])


def make_problem(
    cfgs: RunConfig | Sequence[RunConfig],
    kernels: str | Sequence[str] | None = None,
    device: str = "cpu",
) -> Problem:
    """Tokens, targets and initial weights for one run per ``(cfgs[m], kernels[m])``.

    ``kernels`` defaults to each config's own kernel (which must then name one kernel).
    The configs may differ in ``D`` (zero-padded by the engine, exact), ``init_scale``,
    ``seed``, ``delta``, ``target_scale``, ``lr`` and ``kernel``; the fields of
    ``BATCH_FIXED`` must agree. Model ``m`` gets exactly the data and weights of the single
    run ``make_problem(cfgs[m], kernels[m])``: tokens and initial weights depend on
    (N, n, D, seed, s), not on the kernel; teacher targets use the model's own kernel.
    """
    if isinstance(cfgs, (str, bytes)) or not isinstance(cfgs, (RunConfig, Sequence)):
        raise TypeError(f"cfgs must be a RunConfig or a sequence of them, got "
                        f"{type(cfgs).__name__}")
    cfgs = [cfgs] if isinstance(cfgs, RunConfig) else list(cfgs)
    if not cfgs:
        raise ValueError("cfgs must hold at least one RunConfig")
    for m, c in enumerate(cfgs):
        check_config(c, f"cfgs[{m}]")
    if kernels is None:
        kern = [check_choice("kernel", c.kernel, KERNELS) for c in cfgs]
    else:
        if not isinstance(kernels, (str, Sequence)):
            raise TypeError(f"kernels must be a kernel name or one per config, got "
                            f"{type(kernels).__name__}")
        kern = [kernels] * len(cfgs) if isinstance(kernels, str) else list(kernels)
        if len(kern) != len(cfgs):
            raise ValueError(f"kernels must be one name or one per config ({len(cfgs)}), "
                             f"got {len(kern)}")
        for k in kern:
            check_choice("kernels", k, KERNELS)
    check_choice("device", device, ("cpu", "cuda", "mps"))
    c0 = cfgs[0]
    for c in cfgs[1:]:
        bad = [f for f in BATCH_FIXED if getattr(c, f) != getattr(c0, f)]
        if bad:
            raise ValueError(f"cfgs must agree on {', '.join(bad)} to share one batch")
    M, dtype = len(cfgs), DTYPES[c0.dtype]
    Ds = [int(c.D) for c in cfgs]
    seeds = [int(c.seed) for c in cfgs]
    if len(set(Ds)) == 1 and len(set(seeds)) == 1:
        X = random_tokens(c0.N, c0.n, Ds[0], seed=seeds[0], dtype=dtype, device=device)
    else:
        X = random_tokens(c0.N, c0.n, Ds, seed=seeds, dtype=dtype, device=device)
    params = init_params(
        M=M, H=c0.H, D=Ds if M > 1 else Ds[0], d=c0.d,
        init_scale=[float(c.init_scale) for c in cfgs], value_scale=float(c0.value_scale),
        seed=seeds, dtype=dtype, device=device, out_proj=c0.uses_W_O, d_v=c0.d_v,
    )
    kernel: str | list[str] = kern[0] if len(set(kern)) == 1 else kern
    y = _targets(cfgs, X, params, kernel, kern, dtype, device)
    return Problem(X=X, y=y, params=params, kernel=kernel,
                   configs=[c.replace(kernel=k) for c, k in zip(cfgs, kern, strict=True)])


def _check_problem(prob: Any) -> Problem:
    check_instance("prob", prob, Problem)
    if not prob.configs:
        raise ValueError("prob must come from make_problem (it holds no configs)")
    return prob


def step_sizes(prob: Problem) -> float | list[float] | None:
    """The step size of every run of ``prob`` by its config's rule (see :class:`RunConfig`):
    ``None`` (the engine's default), one shared float, or one per run."""
    cfgs = _check_problem(prob).configs
    if cfgs[0].lr_rule == "curvature":
        return curvature_lr(prob.X, prob.params, prob.kernel,
                            np.asarray([c.lr for c in cfgs], dtype=float)).tolist()
    lrs = [c.lr for c in cfgs]
    if lrs[0] is None or len(set(lrs)) == 1:
        if any(v is None for v in lrs) and not all(v is None for v in lrs):
            raise ValueError("lr must be None for every run of a batch or for none")
        return lrs[0]
    return [float(v) for v in lrs]


def train_problem(
    prob: Problem,
    *,
    on_step: Callable[[int, History], Any] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> History:
    """Train every run of ``prob`` in one engine call, with its configs' settings."""
    c0 = _check_problem(prob).configs[0]
    check_callable("on_step", on_step)
    check_callable("should_stop", should_stop)
    return train(
        prob.params, prob.X, prob.y, kernel=prob.kernel, train=c0.train, lr=step_sizes(prob),
        steps=c0.steps, log_every=c0.log_every, track_sigma_min=c0.track_sigma_min,
        on_step=on_step, should_stop=should_stop,
    )


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
    def logged(self) -> bool:
        """True if at least one step was logged (Stop may come before the first)."""
        return self.history is not None and len(self.history.steps) > 0

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
        """Last finite logged loss per kernel (NaN when nothing was logged)."""
        if self.history is None:
            return {}
        return {k: _last_finite(self.history.loss[m]) for m, k in enumerate(self.kernels)}

    @property
    def steps_done(self) -> int:
        """The last logged step: the number of gradient steps taken, except after Stop,
        where up to ``log_every - 1`` more steps may have run."""
        return int(self.history.steps[-1]) if self.logged else 0

    @property
    def steps_per_second(self) -> float:
        """Gradient steps per second of wall time (all kernels train together)."""
        return self.steps_done / self.seconds if self.seconds > 0 else float("nan")

    def status(self) -> str:
        """One line for a reader: device, speed, final loss, why it stopped."""
        if self.error or self.history is None:
            return f"Could not train: {self.error}" + (f" {self.note}" if self.note else "")
        if not self.logged:
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
    return max(1, check_int("steps", steps, min=0) // 100)


def run_config(
    cfg: RunConfig,
    *,
    on_step: Callable[[int, History], Any] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunResult:
    """Train ``cfg`` with the engine and return a :class:`RunResult`.

    One engine call: with ``kernel="both"`` the kernels train side by side as a mixed
    batch from the same data and initialization. ``on_step(step, history_so_far)`` is the
    engine's callback (rows = kernels); ``should_stop()`` is polled before every step (a
    Stop button). Divergence (NaN/inf) ends with ``"diverged at step k: ...; try a smaller
    learning rate"``, never an exception. Raises ``ValueError`` for an invalid config (see
    :func:`config_problems`).
    """
    check_config(cfg, "cfg")
    check_callable("on_step", on_step)
    check_callable("should_stop", should_stop)
    device, note = resolve_device(cfg.device, cfg.dtype)
    t0 = time.perf_counter()
    kernels = list(cfg.kernels)
    prob = make_problem([cfg] * len(kernels), kernels, device)
    hist = train_problem(prob, on_step=on_step, should_stop=should_stop)
    return RunResult(cfg, hist, device, time.perf_counter() - t0, note=note)


def default_dashboard_config(**overrides: Any) -> RunConfig:
    """The dashboard's defaults: N=16, n=4, D=64, d=8, H=2 (so N n = D = 64), W_Q-only
    training with lr 0.5 from s = 0.5, every kernel side by side on teacher targets,
    float64, the best available device, ``pick(full=500, fast=200)`` steps, logging (and
    sigma_min(C)) every :func:`dashboard_log_every` steps. ``overrides`` replace fields."""
    cfg = RunConfig(init_scale=0.5, kernel=BOTH, data="teacher", lr=0.5,
                    steps=pick(full=500, fast=200), device="auto")
    cfg = cfg.replace(**overrides)
    if "log_every" not in overrides and isinstance(cfg.steps, int):
        cfg = cfg.replace(log_every=dashboard_log_every(cfg.steps))
    return check_config(cfg, "config")
