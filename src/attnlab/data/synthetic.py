"""Synthetic data for the theory chapters: Gaussian tokens, random or teacher targets.

All draws happen on the CPU in float64 from seeded ``torch.Generator`` objects and are then
cast, so a seed gives the same numbers for every dtype and device. Each purpose (tokens,
targets, teacher) uses its own stream derived from the seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .._validate import check_bool, check_int, check_real, check_size
from ..device import get_device
from ..kernels import DEFAULT_KERNEL
from ..model import (
    Params,
    _dims,
    _stream_seed,
    check_params,
    forward,
    kernel_spec,
    model_seeds,
)

__all__ = ["random_tokens", "random_targets", "teacher_targets"]

_TOKENS, _TARGETS, _TEACHER = 1, 2, 4


def _randn(shape: tuple[int, ...], seed: int, tag: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(_stream_seed(seed, tag))
    return torch.randn(shape, generator=g, dtype=torch.float64)


def _check_dtype(dtype: Any) -> None:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")


def random_tokens(N: int, n: int, D: int | Sequence[int], *, seed: int | Sequence[int],
                  dtype: torch.dtype = torch.float64,
                  device: str | torch.device | None = "cpu") -> torch.Tensor:
    """Tokens ``x_ik ~ N(0, I/D)``.

    Args:
        N, n: sequences and tokens per sequence. D: embedding dimension.
        seed: int -> one data set ``(N, n, D)``. A sequence of ``M`` seeds, or ``D`` given
            as a sequence of ``M`` dims, gives per-model data ``(M, N, n, D_max)``: model
            ``m`` holds ``random_tokens(N, n, D_m, seed=seed_m)`` zero-padded to ``D_max``
            (``seed`` an int then means the same seed for every model).

    Returns:
        torch tensor ``(N, n, D)`` or ``(M, N, n, D_max)``.
    """
    N = check_int("N", N, min=1)
    n = check_int("n", n, min=1)
    _check_dtype(dtype)
    dev = get_device(device, dtype)
    multi = isinstance(D, (list, tuple, np.ndarray)) or isinstance(seed, (list, tuple, np.ndarray))
    if not multi:
        D = check_int("D", D, min=1)
        seed = check_int("seed", seed, min=0)
        check_size("N * n * D", N, n, D)
        X = _randn((N, n, D), seed, _TOKENS) / math.sqrt(D)
        return X.to(device=dev, dtype=dtype)
    M = len(D) if isinstance(D, (list, tuple, np.ndarray)) else len(seed)
    if M < 1:
        raise ValueError("D and seed sequences must have at least one entry (M >= 1)")
    Ds = _dims(D, M)
    seeds = model_seeds(seed, M) if isinstance(seed, (list, tuple, np.ndarray)) \
        else [check_int("seed", seed, min=0)] * M
    check_size("M * N * n * D", M, N, n, max(Ds))
    X = torch.zeros((M, N, n, max(Ds)), dtype=torch.float64)
    for m in range(M):
        X[m, :, :, :Ds[m]] = _randn((N, n, Ds[m]), seeds[m], _TOKENS) / math.sqrt(Ds[m])
    return X.to(device=dev, dtype=dtype)


def random_targets(N: int, n: int, *, seed: int, scale: float = 1.0,
                   dtype: torch.dtype = torch.float64,
                   device: str | torch.device | None = "cpu") -> torch.Tensor:
    """Targets ``y_ik ~ N(0, scale^2)``, shape ``(N, n)`` (independent of the tokens' stream)."""
    N = check_int("N", N, min=1)
    n = check_int("n", n, min=1)
    seed = check_int("seed", seed, min=0)
    scale = check_real("scale", scale, min=0.0)
    _check_dtype(dtype)
    check_size("N * n", N, n)
    y = scale * _randn((N, n), seed, _TARGETS)
    return y.to(device=get_device(device, dtype), dtype=dtype)


def teacher_targets(X: Any, params0: Params, *, delta: float,
                    kernel: str | Sequence[str] = DEFAULT_KERNEL, seed: int | Sequence[int],
                    normalize: bool = False, scale: float | None = None,
                    pool: bool = False) -> tuple[torch.Tensor, Params]:
    """Realizable targets from a teacher of the same architecture (``f_star = 0``).

    The teacher equals ``params0`` except ``W_Q* = W_Q0 + delta * s * N(0, 1)`` with ``s``
    the student's ``init_scale`` (per model); padded rows stay zero.

    Args:
        X: tokens ``(N, n, D)`` or ``(M, N, n, D)``. params0: the student's init.
        delta: relative size of the teacher's query offset (>= 0).
        seed: int (model ``m`` uses ``seed + m``, like :func:`init_params`) or one per model.

    Returns:
        ``(y, teacher)`` with ``y`` of shape ``(M, N, n)`` (``(M, N)`` if ``pool``).
    """
    check_params("params0", params0)
    delta = check_real("delta", delta, min=0.0)
    normalize = check_bool("normalize", normalize)
    pool = check_bool("pool", pool)
    kernel_spec(kernel, params0.M)
    seeds = model_seeds(seed, params0.M)
    noise = torch.zeros(params0.W_Q.shape, dtype=torch.float64)
    _, H, _, d = params0.W_Q.shape
    for m, s in enumerate(seeds):
        Dm = int(params0.D_model[m])
        noise[m, :, :Dm] = _randn((H, Dm, d), s, _TEACHER)
    step = torch.as_tensor(delta * np.asarray(params0.init_scale, dtype=float))
    noise = noise * step.view(-1, 1, 1, 1)
    W_Q = params0.W_Q.detach() + noise.to(device=params0.device, dtype=params0.dtype)
    teacher = params0.clone().replace(W_Q=W_Q)
    with torch.no_grad():
        y = forward(teacher, X, kernel, pool, scale=scale, normalize=normalize)
    return y, teacher
