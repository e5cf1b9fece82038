"""Chapter "Initialization scale": claim C4. With ``W_Q, W_K = s Z``, the feature matrix's
spectrum and the attention's shape (entropy, largest weight, Gaussian row sums) as
functions of the init scale ``s``. Preset :data:`C4`."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .._validate import check_int, check_real, check_real_sequence
from ..kernels import attention_matrix
from .measures import feature_svals
from .run import RunConfig, make_problem
from .sweep import grid

__all__ = ["C4", "ScaleSweep", "gaussian_entry_mean", "gaussian_row_sum_mean",
           "sigma_min_vs_scale"]

C4 = RunConfig(N=8, n=4, D=64, d=8, H=1)


@dataclass
class ScaleSweep:
    """C4: feature-matrix spectrum and attention statistics against the init scale.

    Attributes (``(K, S)`` for ``K`` scales and ``S`` seeds): ``sigma_min`` (the
    ``min(Nn, HD)``-th singular value), ``sigma_max``, ``entropy`` (mean row entropy of the
    row-normalized attention, ``log n`` = uniform), ``row_sum`` (mean row sum of ``S``: 1 for
    softmax, vanishing for a far-away Gaussian), ``max_weight`` (mean largest entry of the
    row-normalized rows: 1 = one-hot).
    """

    kernel: str
    scales: np.ndarray
    sigma_min: np.ndarray
    sigma_max: np.ndarray
    entropy: np.ndarray
    row_sum: np.ndarray
    max_weight: np.ndarray


def sigma_min_vs_scale(config: RunConfig = C4, scales: Sequence[float] | None = None,
                       seeds: int | Iterable[int] = range(5)) -> ScaleSweep:
    """C4: ``W_Q, W_K = s Z`` with the same ``Z`` (per seed) for every scale ``s``.

    All ``K x S`` models are one batched evaluation (no training); the seed fixes the
    tokens and ``Z``, so each curve shows the effect of the scale alone. Default scales:
    25 from 0.01 to 10, geometric.
    """
    scales = (np.geomspace(0.01, 10, 25) if scales is None else
              np.asarray(check_real_sequence("scales", scales, min=0.0, strict_min=True)))
    runs, axes = grid(config, seeds, init_scale=scales.tolist())
    prob = make_problem(runs)
    X, p, kernel = prob.X, prob.params, config.kernel
    smax, smin, _ = feature_svals(X, p, kernel, config.N * config.n)
    S = attention_matrix(X, p.W_Q, p.W_K, kernel)  # (M, H, N, n, n)
    rs = S.sum(-1)
    P = S / rs.clamp_min(torch.finfo(S.dtype).tiny).unsqueeze(-1)
    ent = torch.special.entr(P).sum(-1).flatten(1).mean(1)
    shape = (len(scales), len(axes["seed"]))
    return ScaleSweep(
        kernel, scales, smin.reshape(shape), smax.reshape(shape),
        ent.numpy().reshape(shape), rs.flatten(1).mean(1).numpy().reshape(shape),
        P.amax(-1).flatten(1).mean(1).numpy().reshape(shape),
    )


_DIM_MAX = 1 << 20  # far beyond any model of the book; bounds the formulas' inputs


def _scales(scales: Sequence[float] | float) -> np.ndarray:
    if isinstance(scales, (int, float, np.integer, np.floating)) and not isinstance(scales, bool):
        scales = [scales]
    return np.asarray(check_real_sequence("scales", scales, min=0.0), dtype=float)


def gaussian_entry_mean(scales: Sequence[float] | float, norm2: float, d: int
                        ) -> np.ndarray:
    """Mean over ``W_Q, W_K ~ N(0, s^2)`` of one Gaussian-kernel entry
    ``exp(-||q - k||^2 / (2 sqrt d))``, for fixed tokens with ``||x||^2 + ||x'||^2 = norm2``.

    ``q = x W_Q`` and ``k = x' W_K`` are independent (``W_Q, W_K`` are), so ``q - k`` has
    i.i.d. ``N(0, s^2 norm2)`` coordinates, and ``E exp(-|z|^2 / (2 b)) = (1 + v/b)^(-d/2)``
    for ``z ~ N(0, v I_d)``: the mean is ``(1 + s^2 norm2 / sqrt d)^(-d/2)``. This holds for
    the diagonal ``x' = x`` too (``norm2 = 2 ||x||^2``). Returns ``(len(scales),)``.
    """
    s = _scales(scales)
    norm2 = check_real("norm2", norm2, min=0.0)
    d = check_int("d", d, min=1, max=_DIM_MAX)
    return (1.0 + s**2 * norm2 / np.sqrt(d)) ** (-d / 2)


def gaussian_row_sum_mean(scales: Sequence[float] | float, n: int, d: int, D: int
                          ) -> np.ndarray:
    """Exact mean row sum of the Gaussian kernel at init scale ``s``: tokens
    ``x ~ N(0, I_D / D)`` independent, ``W_Q, W_K`` with i.i.d. ``N(0, s^2)`` entries.

    A row has one diagonal entry (query and key from the same token: ``norm2 = 2||x||^2``,
    ``D ||x||^2 ~ chi2_D``) and ``n - 1`` off-diagonal ones (``norm2 = ||x||^2 + ||x'||^2``,
    ``D norm2 ~ chi2_2D``); :func:`gaussian_entry_mean` averaged over these laws (a 1-d
    integral). For unit-norm tokens it would be ``n (1 + 2 s^2 / sqrt d)^(-d/2)``; both
    exceed ``n exp(-s^2 sqrt d)`` (the exponential of the mean exponent) by Jensen's
    inequality. Returns ``(len(scales),)``.
    """
    s = _scales(scales)
    n = check_int("n", n, min=1, max=_DIM_MAX)
    d = check_int("d", d, min=1, max=_DIM_MAX)
    D = check_int("D", D, min=1, max=_DIM_MAX)

    def entry(norm2):
        return (1.0 + s[:, None] ** 2 * norm2[None, :] / np.sqrt(d)) ** (-d / 2)

    def integrate(k, factor):
        mean, sd = k / D, np.sqrt(2 * k) / D
        u = np.linspace(max(mean - 12 * sd, 0.0), mean + 12 * sd, 4001)[1:]
        a = k / 2
        dens = np.exp((a - 1) * np.log(u) - u * D / 2 - math.lgamma(a) - a * math.log(2 / D))
        w = dens[None, :] * entry(factor * u)
        return np.sum((w[:, 1:] + w[:, :-1]) * np.diff(u)[None, :], 1) / 2

    return integrate(D, 2.0) + (n - 1) * integrate(2 * D, 1.0)
