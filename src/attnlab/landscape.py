"""Loss landscapes: filter-normalized random directions and batched 2-D slices.

A 2-D slice around a checkpoint ``theta`` is ``f(theta + a d1 + b d2)`` on a grid of
``(a, b)``, with random directions ``d1, d2`` rescaled filter by filter to the norm of the
checkpoint's weights (Li et al. 2018, "filter normalization"; reference code
``tomgoldstein/loss-landscape``, ``net_plotter.py``). Filters: in PyTorch's ``(out, in)``
layout a filter is a row; our weights act as ``x W`` with shape ``(..., in, out)``, so a
filter is a *column* ``W[m, h, :, j]`` (the ``in``-vector feeding output unit ``j``).

The grid is evaluated in one batched forward: a ``G_a x G_b`` grid becomes
``M = G_a G_b`` models of the engine (:func:`attnlab.forward`), in chunks of ``chunk``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ._validate import (
    check_bool,
    check_choice,
    check_float_array,
    check_int,
    check_real,
    check_real_sequence,
    check_size,
)
from .kernels import DEFAULT_KERNEL, KERNELS
from .model import PARAM_NAMES, Params, check_params, forward

# NumPy array or torch tensor (functions convert as needed).
ArrayLike = np.ndarray | torch.Tensor

__all__ = [
    "LandscapeSlice",
    "model_loss",
    "random_direction",
    "filter_normalize",
    "perturb",
    "loss_grid",
    "landscape_slice",
]

Direction = dict[str, torch.Tensor]


@dataclass
class LandscapeSlice:
    """A 2-D loss slice ``loss[a, b] = f(theta + alphas[a] d1 + betas[b] d2)``.

    Attributes:
        alphas, betas: grid coordinates ``(G_a,)``, ``(G_b,)``.
        loss: ``(G_a, G_b)`` losses. center: loss at the checkpoint itself.
        names: parameter blocks the directions move. kernel: attention kernel.
        d1, d2: the directions (dicts of tensors shaped like the parameters).
    """

    alphas: np.ndarray
    betas: np.ndarray
    loss: np.ndarray
    center: float
    names: tuple[str, ...]
    kernel: str
    d1: Direction
    d2: Direction


def _shared_xy(X: ArrayLike, y: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens and targets shared by every grid point: X (N, n, D), y (N, n)."""
    X = torch.as_tensor(check_float_array("X", X))
    y = torch.as_tensor(check_float_array("y", y))
    if X.ndim == 4 and X.shape[0] == 1:
        X = X[0]
    if y.ndim == 3 and y.shape[0] == 1:
        y = y[0]
    if X.ndim != 3:
        raise ValueError(f"X must have shape (N, n, D) or (1, N, n, D), got {tuple(X.shape)}")
    if tuple(y.shape) != tuple(X.shape[:2]):
        raise ValueError(f"y must have shape (N, n) = {tuple(X.shape[:2])}, got {tuple(y.shape)}")
    return X, y


def model_loss(
    params: Params,
    X: ArrayLike,
    y: ArrayLike,
    kernel: str | Sequence[str] = DEFAULT_KERNEL,
    *,
    normalize: bool = False,
) -> np.ndarray:
    """Squared loss ``f = 1/2 sum_{i,k} (out_ik - y_ik)^2`` of each of the ``M`` models.

    Args:
        params: :class:`attnlab.Params` with ``M`` models. X: ``(N, n, D)`` or
            ``(M, N, n, D)``. y: ``(N, n)`` or ``(M, N, n)``.

    Returns:
        ``(M,)`` NumPy array.
    """
    y = check_float_array("y", y)
    with torch.no_grad():
        out = forward(params, X, kernel, normalize=normalize)
        yt = torch.as_tensor(y).to(dtype=out.dtype, device=out.device)
        if tuple(yt.shape) not in (tuple(out.shape[1:]), tuple(out.shape)):
            raise ValueError(f"y must have shape (N, n) = {tuple(out.shape[1:])} or (M, N, n), "
                             f"got {tuple(yt.shape)}")
        return (0.5 * (out - yt).square().sum((-2, -1))).cpu().numpy()


def _names(params: Params, names: Sequence[str] | None) -> tuple[str, ...]:
    present = tuple(params.tensors())
    if names is None:
        return present
    if isinstance(names, str):
        names = (names,)
    if not isinstance(names, (list, tuple)):
        raise TypeError(f"names must be a parameter name, a sequence of names or None, got "
                        f"{type(names).__name__}")
    names = tuple(check_choice("names", nm, PARAM_NAMES) for nm in names)
    missing = [nm for nm in names if nm not in present]
    if missing or not names:
        raise ValueError(f"names must be a non-empty subset of {present}, got {names}")
    return names


def _row_mask(params: Params, W: torch.Tensor) -> torch.Tensor:
    """1 on the rows a model really has (padded embedding rows of W_Q/W_K/W_V are 0)."""
    if W.ndim != 4:
        return torch.ones_like(W)
    D_model = torch.as_tensor(np.asarray(params.D_model), device=W.device)
    rows = torch.arange(W.shape[2], device=W.device)
    return (rows[None, :] < D_model[:, None]).to(W.dtype)[:, None, :, None].expand_as(W)


def _check_direction(name: str, direction: Any, params: Params) -> None:
    """A direction: dict block name -> finite real tensor shaped like that block."""
    if not isinstance(direction, dict):
        raise TypeError(f"{name} must be a dict name -> tensor (from random_direction), got "
                        f"{type(direction).__name__}")
    if not direction:
        raise ValueError(f"{name} must hold at least one block")
    W = params.tensors()
    for k, v in direction.items():
        if k not in W:
            raise ValueError(f"{name} has block {k!r}, which params lacks ({tuple(W)})")
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"{name}[{k!r}] must be a torch.Tensor, got {type(v).__name__}")
        check_float_array(name, v)
        if tuple(v.shape) != tuple(W[k].shape):
            raise ValueError(f"{name}[{k!r}] must match params.{k} in shape "
                             f"{tuple(W[k].shape)}, got {tuple(v.shape)}")


def filter_normalize(direction: Direction, params: Params, norm: str = "filter") -> Direction:
    """Rescale a direction like Li et al. (2018).

    ``norm="filter"``: every filter (column ``[m, h, :, j]``, see module doc) of the
    direction gets the norm of the same filter of the weights. ``norm="layer"``: each
    block of each model gets the norm of that block. Zero filters stay zero.

    Args:
        direction: dict name -> tensor shaped like ``params.<name>``.
        params: the checkpoint (any ``M``).

    Returns:
        A new dict (inputs are not modified).
    """
    check_choice("norm", norm, ("filter", "layer"))
    check_params("params", params)
    _check_direction("direction", direction, params)
    W = params.tensors()
    out = {}
    for name, dvec in direction.items():
        if name not in W or tuple(dvec.shape) != tuple(W[name].shape):
            raise ValueError(f"direction[{name!r}] must match params.{name} in shape")
        w = W[name]
        # filter = all axes but the model, head and output axes: the input axis -2
        axes = (-2,) if norm == "filter" else tuple(range(1, w.ndim))
        out[name] = rescale_filters(dvec, w, axes)
    return out


def rescale_filters(d: torch.Tensor, w: torch.Tensor, axes: tuple[int, ...]) -> torch.Tensor:
    """``d`` with each filter rescaled to the norm of the same filter of ``w`` (Li et al.).

    A filter is a slice over ``axes`` (the norms are taken over them); filters where ``d``
    is zero stay zero. The one implementation of filter normalization: :func:`filter_normalize`
    uses it for the engine's ``Params`` and Part III for ``torch.nn`` weights.
    """
    wn = torch.linalg.vector_norm(w.detach(), dim=axes, keepdim=True)
    dn = torch.linalg.vector_norm(d, dim=axes, keepdim=True)
    return torch.where(dn > 0, d * (wn / dn.clamp_min(1e-300)), torch.zeros_like(d))


def random_direction(
    params: Params, *, names: Sequence[str] | None = None, seed: int, norm: str = "filter"
) -> Direction:
    """A seeded Gaussian direction over the blocks ``names``, filter-normalized.

    Blocks not in ``names`` get a zero direction, so the slice moves only ``names`` (e.g.
    ``names=("W_Q",)`` for the query block alone). Padded embedding rows stay zero.

    Returns:
        dict name -> tensor shaped like the parameter, for every block of ``params``.
    """
    check_params("params", params)
    seed = check_int("seed", seed, min=0)
    chosen = _names(params, names)
    g = torch.Generator().manual_seed(seed)
    direction = {}
    for name, w in params.tensors().items():
        z = torch.randn(w.shape, generator=g, dtype=torch.float64).to(w.device, w.dtype)
        direction[name] = z * _row_mask(params, w) if name in chosen else torch.zeros_like(w)
    return filter_normalize(direction, params, norm)


def perturb(params: Params, directions: Sequence[Direction], coefs: ArrayLike) -> Params:
    """Models ``theta + sum_r coefs[g, r] directions[r]`` for each row ``g`` of ``coefs``.

    Args:
        params: the checkpoint, ``M = 1``. directions: ``R`` direction dicts.
        coefs: ``(G, R)`` array of coefficients.

    Returns:
        :class:`attnlab.Params` with ``M = G`` models.
    """
    check_params("params", params)
    if params.M != 1:
        raise ValueError("params must be Params with a single model (M = 1); use .select(m)")
    if isinstance(directions, dict) or not isinstance(directions, (list, tuple)) \
            or not directions:
        raise TypeError(f"directions must be a non-empty list of direction dicts, got "
                        f"{type(directions).__name__}")
    for dr in directions:
        _check_direction("directions", dr, params)
        if set(dr) != set(params.tensors()):
            raise ValueError(f"directions must each have every block of params "
                             f"{tuple(params.tensors())}")
    coefs = check_float_array("coefs", np.atleast_2d(np.asarray(coefs))
                              if isinstance(coefs, (list, tuple)) else coefs)
    if coefs.ndim == 1 and len(directions) == 1:
        coefs = coefs.reshape(-1, 1)
    check_size("coefs", *coefs.shape, limit=10**7)
    c = torch.as_tensor(np.asarray(coefs.cpu() if isinstance(coefs, torch.Tensor) else coefs,
                                   dtype=float), dtype=params.dtype, device=params.device)
    if c.ndim != 2 or c.shape[1] != len(directions):
        raise ValueError(f"coefs must have shape (G, {len(directions)}), got {tuple(c.shape)}")
    new = {}
    for name, w in params.tensors().items():
        D = torch.stack([dr[name][0] for dr in directions]).to(w.dtype)  # (R, ...)
        new[name] = w + torch.tensordot(c, D, dims=([1], [0]))
    G = c.shape[0]
    return Params(
        **new,
        init_scale=np.repeat(np.asarray(params.init_scale), G),
        D_model=np.repeat(np.asarray(params.D_model), G),
    )


def loss_grid(
    params: Params,
    X: ArrayLike,
    y: ArrayLike,
    kernel: str,
    d1: Direction,
    d2: Direction,
    alphas: ArrayLike,
    betas: ArrayLike,
    *,
    normalize: bool = False,
    chunk: int = 4096,
) -> np.ndarray:
    """``loss[a, b] = f(theta + alphas[a] d1 + betas[b] d2)``, batched over grid points.

    Each chunk of grid points is one forward of ``M = chunk`` models.

    Args:
        params: checkpoint (``M = 1``). X: ``(N, n, D)``. y: ``(N, n)``.
        alphas, betas: 1-D coordinate arrays.

    Returns:
        ``(len(alphas), len(betas))`` NumPy array.
    """
    chunk = check_int("chunk", chunk, min=1)
    check_params("params", params)
    check_choice("kernel", kernel, KERNELS)
    check_bool("normalize", normalize)
    _check_direction("d1", d1, params)
    _check_direction("d2", d2, params)
    X, y = _shared_xy(X, y)
    a = np.asarray(check_real_sequence("alphas", alphas), dtype=float)
    b = np.asarray(check_real_sequence("betas", betas), dtype=float)
    check_size("len(alphas) * len(betas)", a.size, b.size, limit=10**7)
    A, B = np.meshgrid(a, b, indexing="ij")
    coefs = np.stack([A.ravel(), B.ravel()], axis=1)
    losses = [
        model_loss(
            perturb(params, [d1, d2], coefs[s : s + chunk]), X, y, kernel, normalize=normalize
        )
        for s in range(0, len(coefs), chunk)
    ]
    return np.concatenate(losses).reshape(A.shape)


def landscape_slice(
    params: Params,
    X: ArrayLike,
    y: ArrayLike,
    kernel: str = DEFAULT_KERNEL,
    *,
    names: Sequence[str] | None = None,
    span: float = 1.0,
    points: int = 25,
    seed: int = 0,
    norm: str = "filter",
    normalize: bool = False,
) -> LandscapeSlice:
    """2-D slice of the loss around a checkpoint along two filter-normalized directions.

    Args:
        params: checkpoint (``M = 1``). X ``(N, n, D)``, y ``(N, n)``.
        names: blocks to move (default: all); e.g. ``("W_Q",)``.
        span: the grid covers ``[-span, span]^2``. points: grid points per axis (odd puts
            the checkpoint on the grid).
        seed: directions use seeds ``seed`` and ``seed + 1``.

    Returns:
        :class:`LandscapeSlice`.
    """
    check_params("params", params)
    span = check_real("span", span, min=0.0, strict_min=True)
    points = check_int("points", points, min=2, max=10_000)
    seed = check_int("seed", seed, min=0)
    chosen = _names(params, names)
    d1 = random_direction(params, names=chosen, seed=seed, norm=norm)
    d2 = random_direction(params, names=chosen, seed=seed + 1, norm=norm)
    grid = np.linspace(-span, span, points)
    loss = loss_grid(params, X, y, kernel, d1, d2, grid, grid, normalize=normalize)
    Xs, ys = _shared_xy(X, y)
    center = float(model_loss(params, Xs, ys, kernel, normalize=normalize)[0])
    return LandscapeSlice(grid, grid.copy(), loss, center, chosen, kernel, d1, d2)
