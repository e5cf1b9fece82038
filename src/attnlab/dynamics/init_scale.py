"""Chapter "Initialization scale": claim C4. With ``W_Q, W_K = s Z``, the feature matrix's
spectrum and the attention's shape (entropy, largest weight, Gaussian row sums) as
functions of the init scale ``s``. Preset :data:`C4`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..kernels import attention_matrix
from .measures import feature_svals
from .run import RunConfig, make_problem
from .sweep import grid

__all__ = ["C4", "ScaleSweep", "sigma_min_vs_scale"]

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
    scales = np.geomspace(0.01, 10, 25) if scales is None else np.asarray(scales, dtype=float)
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
