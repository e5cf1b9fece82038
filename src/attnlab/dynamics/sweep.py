"""A sweep is a batch of runs: every combination of some :class:`RunConfig` fields (the
axes) and seeds, trained through the batched engine in as few calls as the shapes allow.

``sweep(C7, seeds=range(64), kernel=KERNELS, delta=(0.5, 1.0))`` trains 256 runs in one
engine call and returns a :class:`SweepResult` whose arrays are indexed
``[kernel, delta, seed, ...]``. Runs share an engine call when they agree on the fields of
``BATCH_FIXED`` (sizes, data kind, trained matrices, steps, ...); different ``D`` are
zero-padded (exact), different kernels form a mixed batch.

Batched and single runs start from bit-identical data and weights (same seeds, same
streams); their trajectories agree to rounding (about 1e-15 relative per step), not bit
for bit, because a batched contraction sums in another order than a single one.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from .._validate import check_bool, check_callable, check_seeds
from ..kernels import BOTH, KERNELS
from ..stats import Count, Spread, count, spread
from ..train import History
from .run import (
    BATCH_FIXED,
    Problem,
    RunConfig,
    check_config,
    make_problem,
    resolve_device,
    train_problem,
)

__all__ = ["SweepResult", "grid", "sweep"]

_UNSWEPT = ("steps", "log_every", "track_sigma_min", "device", "dtype")


def grid(config: RunConfig, seeds: int | Iterable[int] = 0, **axes: Sequence[Any]
         ) -> tuple[list[RunConfig], dict[str, tuple]]:
    """Every combination of ``axes`` (RunConfig field -> values) and ``seeds``.

    Returns the runs in grid order (``itertools.product`` over the axes in the order given,
    seeds last) and the axes as a dict ending with ``"seed"``. A config with
    ``kernel="both"`` and no ``kernel`` axis gets one, first.
    """
    check_config(config)
    names = {f.name for f in fields(RunConfig)}
    for name, values in axes.items():
        if name not in names:
            raise TypeError(f"{name} is not a RunConfig field; axes must be among "
                            f"{', '.join(sorted(names))}")
        if name in _UNSWEPT or name == "seed":
            raise ValueError(f"{name} cannot be an axis of a sweep"
                             + (" (use seeds=)" if name == "seed" else
                                " (the runs of a sweep share it)"))
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise TypeError(f"{name} must be a sequence of values, got {values!r}")
    axes = {k: tuple(v) for k, v in axes.items()}
    for k, v in axes.items():
        if not v:
            raise ValueError(f"{k} must hold at least one value")
    if config.kernel == BOTH and "kernel" not in axes:
        axes = {"kernel": KERNELS, **axes}
    axes["seed"] = tuple(check_seeds("seeds", seeds))
    runs = [config.replace(**dict(zip(axes, combo, strict=True)))
            for combo in itertools.product(*axes.values())]
    for m, c in enumerate(runs):
        check_config(c, f"run {m} of the sweep")
    return runs, axes


@dataclass
class SweepResult:
    """The runs of :func:`sweep`, as arrays indexed by the axes (seeds last).

    Attributes: ``config`` the base config; ``axes`` dict name -> values (ending with
    ``"seed"``); ``runs`` the configs in grid order; ``steps`` ``(T,)`` logged steps;
    ``loss``, ``pl_ratio``, ``sigma_min`` ``(*shape, T)`` (``sigma_min`` NaN unless
    tracked); ``lr``, ``diverged_at`` ``shape``; ``calls`` engine calls; ``seconds``;
    ``device``, ``note``. With ``keep=True``: ``problems`` (one :class:`Problem` per engine
    call), ``histories`` and ``index`` (the flat run indices of each call).
    """

    config: RunConfig
    axes: dict[str, tuple]
    runs: list[RunConfig]
    steps: np.ndarray
    loss: np.ndarray
    pl_ratio: np.ndarray
    sigma_min: np.ndarray
    lr: np.ndarray
    diverged_at: np.ndarray
    calls: int
    seconds: float
    device: str
    note: str = ""
    problems: list[Problem] = field(default_factory=list, repr=False)
    histories: list[History] = field(default_factory=list, repr=False)
    index: list[list[int]] = field(default_factory=list, repr=False)

    @property
    def shape(self) -> tuple[int, ...]:
        """Lengths of the axes, seeds last."""
        return tuple(len(v) for v in self.axes.values())

    @property
    def diverged(self) -> np.ndarray:
        """True where a run hit NaN/inf, ``shape``."""
        return self.diverged_at >= 0

    @property
    def final_loss(self) -> np.ndarray:
        """The last logged loss, NaN where the run diverged; ``shape``."""
        return np.where(self.diverged, np.nan, self.loss[..., -1])

    @property
    def ratio(self) -> np.ndarray:
        """``f_T / f_0`` (NaN where the run diverged); ``shape``."""
        return self.final_loss / self.loss[..., 0]

    def at(self, **where: Any) -> tuple:
        """The index tuple of the given axis values, e.g. ``res.loss[res.at(kernel=k)]``
        (axes not named stay whole)."""
        idx: list[Any] = []
        for name, values in self.axes.items():
            if name not in where:
                idx.append(slice(None))
                continue
            v = where.pop(name)
            if v not in values:
                raise ValueError(f"{name} = {v!r} is not on the axis; values: {values}")
            idx.append(values.index(v))
        if where:
            raise ValueError(f"not axes of this sweep: {', '.join(where)}; axes: "
                             f"{', '.join(self.axes)}")
        return tuple(idx)

    def _per_setting(self, name: str, values: np.ndarray, fn: Any) -> np.ndarray:
        """``fn`` over the seeds of every setting: object array ``shape[:-1]``."""
        v = np.asarray(values)
        if v.shape != self.shape:
            raise ValueError(f"{name} must have the sweep's shape {self.shape}, got {v.shape}")
        out = np.empty(self.shape[:-1], dtype=object)
        for i in np.ndindex(*self.shape[:-1]):
            out[i] = fn(v[i])
        return out

    def counts(self, success: np.ndarray, level: float = 0.95) -> np.ndarray:
        """Per setting (every axis but the seeds): a :class:`attnlab.stats.Count` of the
        seeds where ``success`` (boolean, ``shape``) holds. Object array ``shape[:-1]``."""
        return self._per_setting("success", success, lambda s: count(s, level))

    def spreads(self, values: np.ndarray, q: float = 0.25) -> np.ndarray:
        """Per setting: median and quantiles over the seeds of ``values`` (``shape``).
        Object array of :class:`attnlab.stats.Spread`, ``shape[:-1]``."""
        return self._per_setting("values", np.asarray(values, dtype=float),
                                 lambda v: spread(v, q))

    def count(self, success: np.ndarray, level: float = 0.95, **where: Any) -> Count:
        """One :class:`Count` over the seeds of the setting named by ``where``."""
        return self.counts(success, level)[self.at(**where)[:-1]]

    def spread(self, values: np.ndarray, q: float = 0.25, **where: Any) -> Spread:
        """One :class:`Spread` over the seeds of the setting named by ``where``."""
        return self.spreads(values, q)[self.at(**where)[:-1]]


def sweep(
    config: RunConfig,
    seeds: int | Iterable[int] = range(40),
    *,
    batch_by: Sequence[str] = (),
    keep: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
    **axes: Sequence[Any],
) -> SweepResult:
    """Train every combination of ``axes`` and ``seeds`` (see :func:`grid`) and collect
    the histories as arrays indexed by the axes, seeds last.

    Runs go through the batched engine in as few calls as :data:`BATCH_FIXED` allows;
    ``batch_by`` names fields (axes) that must split calls further, e.g. ``("kernel",)``.
    ``keep=True`` keeps the problems and histories (for measures at initialization or
    along the run). ``on_progress(done, total)`` is called after each engine call.
    Divergence never raises: see ``diverged_at``.
    """
    runs, axes = grid(config, seeds, **axes)
    names = {f.name for f in fields(RunConfig)}
    keep = check_bool("keep", keep)
    check_callable("on_progress", on_progress)
    if isinstance(batch_by, str):
        batch_by = (batch_by,)
    if not isinstance(batch_by, (list, tuple)):
        raise TypeError(f"batch_by must be a sequence of RunConfig field names, got "
                        f"{type(batch_by).__name__}")
    for b in batch_by:
        if b not in names:
            raise ValueError(f"batch_by must name RunConfig fields, got {b!r}")
    device, note = resolve_device(config.device, config.dtype)
    groups: dict[tuple, list[int]] = {}
    for m, c in enumerate(runs):
        key = tuple(getattr(c, f) for f in (*BATCH_FIXED, *batch_by))
        groups.setdefault(key, []).append(m)
    shape = tuple(len(v) for v in axes.values())
    M = len(runs)
    # The engine logs steps 0, log_every, ..., and always the last; a batch whose every
    # model diverged stops early, so its rows end in NaN.
    steps = np.unique(np.r_[np.arange(0, config.steps + 1, config.log_every), config.steps])
    loss, pl, smin = (np.full((M, len(steps)), np.nan) for _ in range(3))
    lr, div = np.full(M, np.nan), np.full(M, -1, dtype=np.int64)
    probs, hists, index = [], [], []
    t0 = time.perf_counter()
    for done, idx in enumerate(groups.values(), start=1):
        prob = make_problem([runs[m] for m in idx], None, device)
        h = train_problem(prob)
        k = len(h.steps)
        loss[idx, :k] = h.loss
        pl[idx, :k] = h.pl_ratio
        if h.sigma_min is not None:
            smin[idx, :k] = h.sigma_min
        lr[idx] = np.asarray(h.lr, dtype=float)
        div[idx] = np.asarray(h.diverged_at)
        if keep:
            probs.append(prob)
            hists.append(h)
            index.append(idx)
        if on_progress is not None:
            on_progress(done, len(groups))
    T = loss.shape[1]
    return SweepResult(
        config=config, axes=axes, runs=runs, steps=steps, loss=loss.reshape(*shape, T),
        pl_ratio=pl.reshape(*shape, T), sigma_min=smin.reshape(*shape, T),
        lr=lr.reshape(shape), diverged_at=div.reshape(shape), calls=len(groups),
        seconds=time.perf_counter() - t0, device=device, note=note, problems=probs,
        histories=hists, index=index,
    )
