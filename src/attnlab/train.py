"""Full-batch gradient descent (or Adam) for ``M`` batched single-layer models.

Loss per model: ``f_m = 1/2 sum_{i,k} (out_mik - y_mik)^2`` (sum, not mean). The M losses
are summed before differentiation, so each model gets exactly its own gradient and its own
learning rate: M batched runs equal M separate runs (to rounding; tested to 1e-10).

Speed: value-dim-1 models without ``W_O`` use closed-form gradients (``_grad.py``,
checked against autograd in the tests); ``W_O`` and mixed-kernel batches use autograd.
Small problems run on one CPU thread (they are overhead bound; see ``_threads_for``).
Metrics are written into a preallocated on-device buffer and converted to NumPy only for
``on_step`` and at the end; the one host sync per step is the NaN/inf check.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ._arrays import to_numpy, to_tensor
from ._grad import make_backend
from ._threads import limit_threads
from ._validate import (
    MAX_STEPS,
    check_adam,
    check_bool,
    check_callable,
    check_choice,
    check_finite,
    check_float_array,
    check_int,
)
from .kernels import DEFAULT_KERNEL, _feature_t
from .model import PARAM_NAMES, Params, _per_model, check_inputs, forward_core

__all__ = ["History", "train", "OPTIMIZERS"]

OPTIMIZERS = ("gd", "adam")

# None: pick the fastest backend (see _grad.py); tests force "autograd", "closed", ...
_BACKEND: str | None = None
# At most this many logged values (logged steps x models): the metric buffers are
# preallocated, so an absurd request must fail before it allocates.
MAX_LOGGED = 10**7
# Problems below this size (~ flops per forward / 3) train on one CPU thread.
_SMALL_WORK = 1 << 24


@dataclass
class History:
    """Record of a training run; per-model arrays have shape ``(M, T)``.

    Attributes:
        loss: ``f`` at each logged step (before that step's update; the last entry is the
            final state). grad_norm2: ``||grad f||^2`` w.r.t. the *trained* parameters.
        pl_ratio: ``grad_norm2 / (loss - f_star)``.
        sigma_min: ``sigma_min(C)`` of the feature matrix (NaN unless tracked).
        entropy: mean row entropy of the (row-normalized) attention (NaN unless tracked).
        steps: ``(T,)`` the logged step numbers. stop_reason: ``"completed"``,
            ``"stopped"`` or ``"diverged at step k: ..."``.
        params: final :class:`Params`. lr: ``(M,)`` learning rates used. seconds: wall time.
        device: where it ran. diverged_at: ``(M,)`` first step with a non-finite loss per
            model (-1: never); a diverged model's entries from then on are NaN.
    """

    loss: np.ndarray
    grad_norm2: np.ndarray
    pl_ratio: np.ndarray
    sigma_min: np.ndarray
    entropy: np.ndarray
    steps: np.ndarray
    stop_reason: str
    params: Params
    lr: np.ndarray
    seconds: float
    device: str
    diverged_at: np.ndarray
    kernel: str | tuple[str, ...] = DEFAULT_KERNEL
    trained: tuple[str, ...] = ("W_Q",)
    optimizer: str = "gd"

    @property
    def final_loss(self) -> np.ndarray:
        """``(M,)`` loss at the last logged step."""
        if self.loss.shape[1] == 0:
            return np.full(self.loss.shape[0], np.nan)
        return self.loss[:, -1]

    @property
    def M(self) -> int:
        return self.loss.shape[0]


# ----------------------------------------------------------------------------- validation
def _check_trained(train: Any, params: Params) -> tuple[str, ...]:
    names = (train,) if isinstance(train, str) else train
    if not isinstance(names, (list, tuple)) or not names:
        raise TypeError(f"train must be a parameter name or a non-empty sequence of names "
                        f"from {PARAM_NAMES}, got {train!r}")
    for nm in names:
        check_choice("train", nm, PARAM_NAMES)
        if nm == "W_O" and params.W_O is None:
            raise ValueError("train contains 'W_O' but the model has no W_O "
                             "(init_params(out_proj=True) adds it)")
    if len(set(names)) != len(names):
        raise ValueError(f"train has duplicate names: {names!r}")
    return tuple(nm for nm in PARAM_NAMES if nm in names)


def _prepare_y(y: Any, X: torch.Tensor, params: Params, pool: bool) -> torch.Tensor:
    yt = to_tensor(check_float_array("y", y, finite=False))
    N, n = X.shape[-3], X.shape[-2]
    base = (N,) if pool else (N, n)
    if tuple(yt.shape) not in (base, (params.M, *base)):
        raise ValueError(f"y must have shape {base} or {(params.M, *base)}"
                         f"{' (pool=True)' if pool else ''}, got {tuple(yt.shape)}")
    check_finite("y", yt)
    yt = yt.to(device=params.device, dtype=params.dtype)
    return yt.expand(params.M, *base)


def _default_lr(params: Params, X: torch.Tensor, kind, kernel_ids, scale, normalize, pool):
    """1 / sigma_max(C)^2 per model at initialization (W_V-only training)."""
    with torch.no_grad():
        _, S = forward_core(params.tensors(), X, kind, kernel_ids, scale, normalize, pool)
        C = _feature_t(S, X)  # (M, Nn, HD)
        if pool:
            N, n = X.shape[-3], X.shape[-2]
            C = C.view(params.M, N, n, -1).mean(2)
        smax = torch.linalg.matrix_norm(C, ord=2)
    return 1.0 / smax.square()


def auto_lr_allowed(trained: Sequence[str], out_proj: bool, optimizer: str = "gd") -> bool:
    """Whether the automatic step ``1/sigma_max(C)^2`` exists: gradient descent on ``W_V``
    alone without ``W_O``, where the loss is a least-squares problem in ``C``."""
    return tuple(trained) == ("W_V",) and not out_proj and optimizer == "gd"


def _resolve_lr(lr, trained, params, X, kind, kernel_ids, scale, normalize, pool, optimizer):
    if lr is None:
        if not auto_lr_allowed(trained, params.W_O is not None, optimizer):
            raise ValueError("lr is required: the default lr = 1/sigma_max(C)^2 exists only "
                             "for gd on W_V alone without W_O (train=('W_V',))")
        return _default_lr(params, X, kind, kernel_ids, scale, normalize, pool)
    vals = _per_model("lr", lr, params.M, min=0.0, strict_min=True)
    return torch.tensor(vals, dtype=params.dtype, device=params.device)


# ----------------------------------------------------------------------------- metrics
def _row_entropy(S: torch.Tensor) -> torch.Tensor:
    """Mean entropy of the rows of S (each row normalized to sum 1): (M,)."""
    P = S / S.sum(-1, keepdim=True).clamp_min(torch.finfo(S.dtype).tiny)
    return torch.special.entr(P).sum(-1).flatten(1).mean(1)


def _sigma_min_batch(S: torch.Tensor, X: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    C = _feature_t(S, X)
    C = torch.nan_to_num(C, nan=0.0, posinf=0.0, neginf=0.0)  # diverged models: no SVD error
    s = torch.linalg.svdvals(C)
    return s.gather(1, (k - 1).clamp(max=s.shape[1] - 1).unsqueeze(1)).squeeze(1)


# ----------------------------------------------------------------------------- trainer
def train(params: Params, X: Any, y: Any, *, kernel: str | Sequence[str] = DEFAULT_KERNEL,
          train: str | Sequence[str] = ("W_Q",), lr: float | Sequence[float] | None = None,
          steps: int = 1000, optimizer: str = "gd", log_every: int = 1,
          f_star: float | Sequence[float] = 0.0, track_sigma_min: bool = False,
          track_entropy: bool = False,
          on_step: Callable[[int, History], Any] | None = None,
          should_stop: Callable[[], bool] | None = None, normalize: bool = False,
          scale: float | None = None, pool: bool = False,
          betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> History:
    """Train the ``M`` models of ``params`` by full-batch GD or Adam (``params`` unchanged).

    Args:
        params: :class:`Params` (from :func:`init_params`); runs on its device and dtype.
        X: tokens ``(N, n, D)`` shared or ``(M, N, n, D)`` per model.
        y: targets ``(N, n)`` or ``(M, N, n)``; ``(N,)``/``(M, N)`` when ``pool``.
        kernel: ``"softmax"``, ``"gaussian"`` or one name per model (mixed batches evaluate
            both kernels). normalize: row-normalize the Gaussian. scale: default 1/sqrt(d).
        train: the trained subset of ``("W_Q", "W_K", "W_V", "W_O")``; others stay frozen.
        lr: step size, scalar or ``(M,)``. Default (``None``) only for GD on ``W_V`` alone
            (no ``W_O``): ``1 / sigma_max(C)^2`` per model at initialization, where ``C`` is
            the feature matrix (the inverse smoothness constant of this convex problem).
        steps: number of updates; steps ``0, log_every, ..., steps`` are logged (the last
            always). f_star: optimal value for the PL ratio (scalar or ``(M,)``).
        track_sigma_min: log ``sigma_min(C)``, the ``min(Nn, H D_m)``-th singular value of
            the token-level feature matrix (an SVD per logged step: raise log_every).
        track_entropy: log the mean row entropy of the attention (rows renormalized to
            sum 1, so the plain Gaussian kernel is covered too).
        on_step: ``on_step(step, history_so_far)`` at each logged step (the snapshot's
            ``stop_reason`` is ``"running"``).
        should_stop: checked before every step; ``True`` ends with ``"stopped"``.
        betas, eps: Adam constants.

    Returns:
        :class:`History`. A NaN/inf loss never raises: with ``M = 1`` (or once every model
        has diverged) training stops with ``stop_reason = "diverged at step k: ..."`` and
        the history keeps only the finite steps; in a larger batch the diverged model's
        entries become NaN and the others continue.
    """
    kind, kernel_ids, Xt, sc = check_inputs(params, X, kernel, scale)
    trained = _check_trained(train, params)
    steps = check_int("steps", steps, min=0, max=MAX_STEPS)
    log_every = check_int("log_every", log_every, min=1)
    logged = (steps // log_every + 2) * params.M
    if logged > MAX_LOGGED:
        raise ValueError(f"steps / log_every = {steps} / {log_every} logs about {logged:,} "
                         f"values for M = {params.M} models (at most {MAX_LOGGED:,}): raise "
                         f"log_every or lower steps")
    optimizer = check_choice("optimizer", optimizer, OPTIMIZERS)
    check_callable("on_step", on_step)
    check_callable("should_stop", should_stop)
    normalize = check_bool("normalize", normalize)
    pool = check_bool("pool", pool)
    track_sigma_min = check_bool("track_sigma_min", track_sigma_min)
    track_entropy = check_bool("track_entropy", track_entropy)
    betas, eps = check_adam(betas, eps)
    yt = _prepare_y(y, Xt, params, pool)
    fstar = torch.tensor(_per_model("f_star", f_star, params.M), dtype=params.dtype,
                         device=params.device)
    lr_t = _resolve_lr(lr, trained, params, Xt, kind, kernel_ids, sc, normalize, pool,
                       optimizer)
    run = _Run(params, Xt, yt, kind, kernel_ids, sc, normalize, pool, trained,
               lr_t, optimizer, betas, eps, fstar, track_sigma_min, track_entropy)
    with limit_threads(_threads_for(params, Xt)):
        return run.loop(steps, log_every, on_step, should_stop, kernel)


def _threads_for(params: Params, X: torch.Tensor) -> int | None:
    """1 (one CPU thread) for small CPU problems, else None (leave the setting).

    Why: theory-sized models are overhead bound; extra threads only add synchronization,
    and on a shared 2-core machine a waiting OpenMP thread made steps up to 40x slower.
    """
    N, n = X.shape[-3], X.shape[-2]
    work = params.M * params.H * N * n * (n + params.D) * params.d
    return 1 if params.device.type == "cpu" and work <= _SMALL_WORK else None


class _Run:
    """State of one training run (buffers preallocated; metrics stay on the device)."""

    def __init__(self, params, X, y, kind, kernel_ids, scale, normalize, pool, trained, lr,
                 optimizer, betas, eps, fstar, track_sigma, track_entropy):
        self.p0, self.X, self.y = params, X, y
        self.kind, self.kernel_ids, self.scale, self.normalize, self.pool = \
            kind, kernel_ids, scale, normalize, pool
        self.trained, self.optimizer, self.betas, self.eps = trained, optimizer, betas, eps
        self.fstar, self.track_sigma, self.track_entropy = fstar, track_sigma, track_entropy
        cfg = dict(kind=kind, kernel_ids=kernel_ids, scale=scale, normalize=normalize, pool=pool,
                   trained=trained)
        self.backend = make_backend(params.tensors(), X, y, cfg, (lr, optimizer, betas, eps),
                                    _BACKEND)
        self.lr = lr
        N, n = X.shape[-3], X.shape[-2]
        self.k_sigma = torch.tensor(
            np.minimum(N * n, params.H * np.asarray(params.D_model)), device=params.device)
        self.diverged_at = np.full(params.M, -1, dtype=np.int64)

    def _record(self, buf, row, f, S):
        with torch.no_grad():
            g2 = self.backend.grad_norm2()
            buf[0, row] = f
            buf[1, row] = g2
            buf[2, row] = g2 / (f - self.fstar)
            if self.track_sigma:
                buf[3, row] = _sigma_min_batch(S, self.X, self.k_sigma)
            if self.track_entropy:
                buf[4, row] = _row_entropy(S)

    def loop(self, steps, log_every, on_step, should_stop, kernel) -> History:
        log_steps = np.arange(0, steps + 1, log_every, dtype=np.int64)
        if log_steps[-1] != steps:
            log_steps = np.append(log_steps, np.int64(steps))
        M = self.p0.M
        buf = torch.full((5, len(log_steps), M), math.nan, dtype=self.p0.dtype,
                         device=self.p0.device)
        self.t0 = time.perf_counter()
        row, stop_reason, nxt = 0, "completed", int(log_steps[0])
        for step in range(steps + 1):
            if should_stop is not None and should_stop():
                stop_reason = "stopped"
                break
            f, S = self.backend.evaluate()
            if not math.isfinite(float(f.sum())):  # one sync; NaN/inf in any model shows
                if self._diverge(f, step):
                    stop_reason = (f"diverged at step {step}: loss is nan/inf; try a smaller "
                                   f"learning rate (lr={self._lr_text()})")
                    break
            if step == nxt:
                self._record(buf, row, f, S)
                row += 1
                nxt = int(log_steps[row]) if row < len(log_steps) else -1
                if on_step is not None:
                    on_step(step, self._history(buf, row, log_steps, "running", kernel))
            if step == steps:
                break
            self.backend.update(step)
        return self._history(buf, row, log_steps, stop_reason, kernel)

    def _diverge(self, f, step) -> bool:
        """Mark newly diverged models; True when every model has diverged."""
        bad = ~to_numpy(torch.isfinite(f))
        new = bad & (self.diverged_at < 0)
        self.diverged_at[new] = step
        return bool((self.diverged_at >= 0).all())

    def _lr_text(self) -> str:
        lr = to_numpy(self.lr)
        bad = lr[self.diverged_at >= 0]
        return ", ".join(f"{v:.3g}" for v in bad[:4]) + (", ..." if len(bad) > 4 else "")

    def _history(self, buf, rows, log_steps, stop_reason, kernel) -> History:
        arr = to_numpy(buf[:, :rows]).transpose(0, 2, 1).copy()  # (5, M, T)
        steps = log_steps[:rows].copy()
        for m in np.nonzero(self.diverged_at >= 0)[0]:
            arr[:, m, steps >= self.diverged_at[m]] = np.nan
        if stop_reason.startswith("diverged") and self.p0.M == 1:
            keep = steps < self.diverged_at[0]
            arr, steps = arr[:, :, keep], steps[keep]
        W = self.backend.export()
        return History(
            loss=arr[0], grad_norm2=arr[1], pl_ratio=arr[2], sigma_min=arr[3], entropy=arr[4],
            steps=steps, stop_reason=stop_reason, params=self.p0.replace(**W),
            lr=to_numpy(self.lr).copy(), seconds=time.perf_counter() - self.t0,
            device=str(self.p0.device), diverged_at=self.diverged_at.copy(),
            kernel=kernel if isinstance(kernel, str) else tuple(kernel),
            trained=self.trained, optimizer=self.optimizer)
