"""The phase diagram of the playground: ``log10(f_T / f_0)`` over init scale x embedding
dimension D (x kernel), one :func:`attnlab.dynamics.sweep` with one seed.

Each cell uses exactly the data and initialization of ``run_config(result.cell_config(...))``
(the same seed gives the same tokens and weights), so a cell can be replayed in the
dashboard.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validate import (
    check_callable,
    check_choice,
    check_int,
    check_int_sequence,
    check_real_sequence,
)
from ..config import pick
from ..kernels import KERNELS, expand_kernels, nn_threshold
from .run import D_MAX, RunConfig, check_config, dashboard_log_every
from .sweep import sweep

__all__ = ["BATCHING", "PhaseResult", "default_dims", "default_phase_config", "phase_diagram"]

# How cells are grouped into engine calls -> the sweep's batch_by fields.
BATCHING = {"kernel": ("kernel",), "dim": ("kernel", "D"), "all": (),
            "none": ("kernel", "D", "init_scale")}


def default_dims(N: int, n: int, H: int, count: int = 8) -> list[int]:
    """``count`` embedding dimensions spread around the threshold D* = N n / H.

    Geometric from D*/8 to 4 D*, always containing ceil(D*), distinct, >= 1.
    """
    N, n, H = (check_int(k, v, min=1, max=10**6) for k, v in (("N", N), ("n", n), ("H", H)))
    check_int("count", count, min=2, max=32)
    star = math.ceil(nn_threshold(N, n, H))
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
        (with the dashboard's logging: about 100 logged steps, sigma_min(C) tracked)."""
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
    kernels: str | Sequence[str] = KERNELS[:1],
    config: RunConfig | None = None,
    batching: str = "kernel",
    on_progress: Callable[[int, int], None] | None = None,
    **overrides: Any,
) -> PhaseResult:
    """Train every (kernel, init scale, D) cell and return ``log10(f_T / f_0)`` per cell.

    Args:
        init_scales: the init scales s (rows); default ``logspace(-1, 1, pick(8, 4))``.
        dims: the embedding dimensions D (columns); default :func:`default_dims`.
        kernels: kernel names, one name, or ``"both"``.
        config: every other setting (sizes, trained matrices, lr, steps, seed, data,
            device); default :func:`default_phase_config`. ``overrides`` replace its fields.
        batching: how cells are grouped into batched engine calls: ``"kernel"`` (default:
            one call per kernel, every D zero-padded to the largest), ``"dim"`` (one call per
            kernel and D), ``"all"`` (one call, mixed kernels, which evaluates both kernels
            for every model), ``"none"`` (one call per cell). All agree to rounding;
            ``"kernel"`` was the fastest or close to it on CPU in every setting timed (see
            ``benchmarks/bench_widgets.py``).
        on_progress: called as ``on_progress(done, total)`` after each engine call.
    """
    check_choice("batching", batching, tuple(BATCHING))
    if config is not None and not isinstance(config, RunConfig):
        raise TypeError(f"config must be a RunConfig or None, got {type(config).__name__}")
    if config is not None:
        check_config(config, "config")
    cfg = (config or default_phase_config()).replace(**overrides)
    cfg = cfg.replace(track_sigma_min=False, log_every=max(1, cfg.steps), kernel=KERNELS[0])
    check_config(cfg)
    check_callable("on_progress", on_progress)
    scales = np.logspace(-1, 1, pick(full=8, fast=4)) if init_scales is None else np.asarray(
        check_real_sequence("init_scales", init_scales, min=0.0, strict_min=True), dtype=float)
    dims_ = default_dims(cfg.N, cfg.n, cfg.H, pick(full=8, fast=4)) if dims is None else \
        check_int_sequence("dims", dims, min=1, max=D_MAX)
    dims_arr = np.asarray([check_int("dims", v, min=1, max=D_MAX) for v in dims_])
    if dims_arr.size == 0:
        raise ValueError("dims must be a non-empty sequence of positive integers")
    kernels = expand_kernels(kernels, "kernels")
    res = sweep(cfg, [cfg.seed], batch_by=BATCHING[batching], on_progress=on_progress,
                kernel=kernels, D=[int(v) for v in dims_arr],
                init_scale=[float(v) for v in scales])
    # sweep axes: (kernel, D, init_scale, seed) -> (kernel, init_scale, D)
    loss0 = res.loss[..., 0, 0].transpose(0, 2, 1)
    lossT = res.final_loss[..., 0].transpose(0, 2, 1)
    diverged = res.diverged[..., 0].transpose(0, 2, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log10(lossT / loss0)
    log_ratio[~np.isfinite(log_ratio)] = np.nan
    return PhaseResult(
        init_scales=scales, dims=dims_arr, kernels=kernels, config=cfg, log_ratio=log_ratio,
        loss0=loss0, lossT=lossT, diverged=diverged, seconds=res.seconds,
        batching=batching, calls=res.calls, device=res.device, note=res.note,
    )
