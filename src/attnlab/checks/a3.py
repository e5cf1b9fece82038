"""Checks for assignment A3, Softmax vs Gaussian with W_Q trained.

One head, value dimension 1 (W_O merged): X ``(N, n, D)``, W_Q, W_K ``(D, d)``, values
``w_v (D,)``, targets y ``(N, n)``; ``f = 1/2 sum_{i,k} (out_ik - y_ik)^2``.

- ``wq_gradient(X, W_Q, W_K, w_v, y)``: the closed-form ``dF/dW_Q`` ``(D, d)`` for the kernel
  named by the notebook's ``KERNEL``;
- ``autograd_wq_gradient(X, W_Q, W_K, w_v, y)``: the same with torch autograd;
- ``softmax_hull(X, w_v)``: ``(lo, hi)``, each ``(N,)``, the interval that contains every
  softmax output of sequence i when only W_Q (and W_K) move;
- ``hull_floor(X, w_v, y)``: ``1/2 sum_{i,k} dist(y_ik, [lo_i, hi_i])^2``, a lower bound on
  the loss of W_Q-only softmax training.

Expected gradients come from the package's :func:`attnlab.wq_gradient` (checked against
autograd in the package's tests), which the student may not call (a graded function that
calls it scores 0); the hull from its definition (the extremes of the values).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..kernels import (
    DEFAULT_KERNEL,
    KERNEL_TABLE,
    KERNELS,
    attention_matrix,
    layer_output,
    wq_gradient,
)
from .core import Run, Stop, check, close, diagnose, to_array
from .spec import Assignment, Part, Written

__all__ = [
    "ASSIGNMENT",
    "check_wq_gradient",
    "check_autograd_gradient",
    "check_softmax_hull",
    "check_hull_floor",
]


# ----------------------------------------------------------------------------- references
def _grad_ref(X: np.ndarray, W_Q: np.ndarray, W_K: np.ndarray, w_v: np.ndarray,
                       y: np.ndarray, kernel: str, **kw: object) -> np.ndarray:
    """``dF/dW_Q`` ``(D, d)`` for one head, from :func:`attnlab.wq_gradient`."""
    return wq_gradient(X, W_Q[None], W_K[None], w_v[None], y, kernel, **kw)[0]


def _wk_gradient(X: np.ndarray, W_Q: np.ndarray, W_K: np.ndarray, w_v: np.ndarray,
                 y: np.ndarray, kernel: str) -> np.ndarray:
    """``dF/dW_K`` by autograd (a typical mix-up)."""
    WK = torch.tensor(W_K, requires_grad=True)
    out = layer_output(torch.tensor(X), torch.tensor(W_Q)[None], WK[None],
                       torch.tensor(w_v)[None], kernel)
    (0.5 * (out - torch.tensor(y)).square().sum()).backward()
    return WK.grad.numpy()


def _uncentered_softmax(X: np.ndarray, W_Q: np.ndarray, W_K: np.ndarray, w_v: np.ndarray,
                        y: np.ndarray, kernel: str) -> np.ndarray:
    """Softmax gradient without the ``-Z_ik`` term of the softmax derivative."""
    d = W_Q.shape[1]
    S = attention_matrix(X, W_Q[None], W_K[None], kernel)[0]  # (N, n, n)
    u = X @ w_v  # (N, n)
    r = np.einsum("ikj,ij->ik", S, u) - y
    K = X @ W_K  # (N, n, d)
    g = np.einsum("ikj,ij,ijc->ikc", S, u, K) / np.sqrt(d)
    return np.einsum("ik,ika,ikc->ac", r, X, g)


def _gradient_case(rng: np.random.Generator, scale: float
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    N, n = int(rng.integers(2, 5)), int(rng.integers(3, 6))
    # d avoids 1 and 4 (sqrt(d) = 2 would look like a missing 1/2), D > d (no transposes)
    D, d = int(rng.integers(7, 10)), int(rng.choice([3, 5, 6]))
    X = rng.standard_normal((N, n, D)) / np.sqrt(D)
    W_Q = scale * rng.standard_normal((D, d))
    W_K = scale * rng.standard_normal((D, d))
    w_v = 2.0 * rng.standard_normal(D)
    y = 0.5 * rng.standard_normal((N, n))
    return X, W_Q, W_K, w_v, y


def _gradient_mistakes(args: tuple, kernel: str, ref: np.ndarray) -> list[tuple[object, str]]:
    d = args[1].shape[1]
    out: list[tuple[object, str]] = [
        (-ref, "sign error: check the sign of the residual r_ik = out_ik - y_ik and of the "
               "kernel's derivative"),
        (2 * ref, "twice the reference: f = 1/2 sum (out - y)^2 carries a factor 1/2"),
        (0.5 * ref, "half the reference: a stray factor 1/2"),
        (np.sqrt(d) * ref, "the factor 1/sqrt(d) (the kernel's scale) is missing from g_ik"),
        (ref / np.sqrt(d), "an extra factor 1/sqrt(d): the scale appears once in g_ik"),
        (lambda: _grad_ref(*args, kernel, scale=1.0),
         "you used the scale 1 instead of 1/sqrt(d) in the kernel"),
        *((lambda other=other: _grad_ref(*args, other),
           f"this is the gradient for the {other} kernel, but KERNEL = {kernel!r}")
          for other in KERNELS if other != kernel),
        (lambda: _wk_gradient(*args, kernel), "this is dF/dW_K, not dF/dW_Q"),
    ]
    if KERNEL_TABLE[kernel].row_normalized:
        out.append((lambda: _uncentered_softmax(*args, kernel),
                    "the -Z_ik term is missing: the derivative of a softmax row is "
                    "S_kj (e_j - S_k), which centers the values u_ij around Z_ik"))
    else:
        out.append((lambda: _grad_ref(*args, kernel, normalize=True),
                    "this is the gradient of the row-normalized Gaussian; the kernel here is "
                    "not normalized"))
    return out


def _kernel(kernel: object) -> str:
    if kernel not in KERNELS:
        raise Stop(f"set KERNEL to {' or '.join(map(repr, KERNELS))} (got {kernel!r})")
    return str(kernel)


def _gradient_check(run: Run, fn: Callable, kernel: str, name: str, pts: tuple[float, ...]
                    ) -> None:
    kernel = _kernel(kernel)
    for i, (scale, p) in enumerate(zip((0.5, 1.0), pts[1:], strict=True)):
        args = _gradient_case(run.rng, scale)
        D, d = args[1].shape
        out = to_array(run.call(fn, *args, what=f"X {args[0].shape}, W_Q {args[1].shape}"),
                       name, (D, d))
        if i == 0:
            run.ok("shape (D, d), like W_Q", pts[0])
        ref = _grad_ref(*args, kernel)
        fb = None if close(out, ref, 1e-7) else (
            diagnose(out, _gradient_mistakes(args, kernel, ref), 1e-6)
            or f"relative error {np.linalg.norm(out - ref) / np.linalg.norm(ref):.1e} against "
               "the reference gradient")
        run.item(f"{kernel} kernel, hidden case {i + 1} (init scale {scale:g})", p, fb)


@check("A3.1", "closed-form W_Q gradient", points=6)
def check_wq_gradient(run: Run, wq_gradient_fn: Callable, *, kernel: str = DEFAULT_KERNEL) -> None:
    """Check the closed-form ``wq_gradient(X, W_Q, W_K, w_v, y)`` for ``kernel``."""
    _gradient_check(run, wq_gradient_fn, kernel, "wq_gradient", (1.0, 2.5, 2.5))


@check("A3.2", "W_Q gradient by autograd", points=3)
def check_autograd_gradient(run: Run, autograd_fn: Callable, *,
                            kernel: str = DEFAULT_KERNEL) -> None:
    """Check ``autograd_wq_gradient(X, W_Q, W_K, w_v, y)`` for ``kernel``."""
    _gradient_check(run, autograd_fn, kernel, "autograd_wq_gradient", (1.0, 1.0, 1.0))


# ----------------------------------------------------------------------------- hull
def _hull(X: np.ndarray, w_v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Softmax-reachable interval per sequence: ``(min_j u_ij, max_j u_ij)``, each ``(N,)``."""
    u = X @ w_v
    return u.min(axis=1), u.max(axis=1)


def _hull_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    N, D = int(rng.integers(3, 6)), int(rng.integers(4, 8))
    n = N + int(rng.integers(1, 3))  # n != N: an interval per token would have the wrong shape
    X = rng.standard_normal((N, n, D)) / np.sqrt(D)
    w_v = 2.0 * rng.standard_normal(D)
    lo, hi = _hull(X, w_v)
    # targets: some inside, some below, some above the hull of their sequence
    y = lo[:, None] + (hi - lo)[:, None] * rng.uniform(-0.8, 1.8, (N, n))
    return X, w_v, y


@check("A3.3", "the softmax hull", points=2)
def check_softmax_hull(run: Run, softmax_hull: Callable) -> None:
    """Check ``softmax_hull(X, w_v) -> (lo, hi)``."""
    X, w_v, _ = _hull_case(run.rng)
    N, n, D = X.shape
    out = run.call(softmax_hull, X, w_v, what=f"X of shape {X.shape}")
    try:
        lo, hi = out
    except (TypeError, ValueError):
        raise Stop("`softmax_hull` must return two arrays (lo, hi)") from None
    lo_ref, hi_ref = _hull(X, w_v)
    lo = to_array(lo, "softmax_hull (lo)")
    if lo.shape != (N,):
        raise Stop(f"lo has shape {lo.shape}: return one interval per sequence, lo and hi of "
                   f"shape (N,) = {(N,)} (the extremes over the tokens j of sequence i)")
    hi = to_array(hi, "softmax_hull (hi)", (N,))
    if close(lo, hi_ref, 1e-12) and close(hi, lo_ref, 1e-12):
        raise Stop("lo and hi are swapped")
    u = X @ w_v
    hint = ("the interval is spanned by the VALUES u_ij = <x_ij, w_v> of the tokens of "
            "sequence i, whatever the queries and keys")
    run.item("lower end min_j u_ij", 1.0, None if close(lo, lo_ref, 1e-10) else (
        diagnose(lo, [(u.mean(1), "a softmax row can put all its weight on one token: the "
                                  "lower end is the smallest value, not the mean")], 1e-10)
        or hint))
    run.item("upper end max_j u_ij", 1.0, None if close(hi, hi_ref, 1e-10) else hint)


@check("A3.4", "the convex-hull floor", points=3)
def check_hull_floor(run: Run, hull_floor: Callable) -> None:
    """Check ``hull_floor(X, w_v, y)`` with targets on both sides of the hull and inside."""
    X, w_v, y = _hull_case(run.rng)
    lo, hi = _hull(X, w_v)
    below = np.maximum(lo[:, None] - y, 0.0)
    above = np.maximum(y - hi[:, None], 0.0)
    ref = 0.5 * float(np.sum(below**2 + above**2))
    got = to_array(run.call(hull_floor, X, w_v, y, what="targets on both sides"), "hull_floor",
                   ())
    fb = None
    if not abs(float(got) - ref) <= 1e-10 * max(1.0, ref):
        fb = diagnose(got, [
            (np.array(2 * ref), "the loss has a factor 1/2: floor = 1/2 sum dist^2"),
            (np.array(0.5 * np.sum(below**2)),
             "targets ABOVE the hull count as well: use the distance to the interval"),
            (np.array(0.5 * np.sum(above**2)),
             "targets BELOW the hull count as well: use the distance to the interval"),
            (np.array(0.5 * np.sum(below + above)), "square the distances"),
            (np.array(np.sum(below + above)), "square the distances (and keep the factor 1/2)"),
        ], 1e-10) or "wrong value: floor = 1/2 sum_{i,k} dist(y_ik, [lo_i, hi_i])^2"
    run.item("targets on both sides of the hull", 2.0, fb)
    y_in = lo[:, None] + (hi - lo)[:, None] * run.rng.uniform(0.05, 0.95, y.shape)
    got = to_array(run.call(hull_floor, X, w_v, y_in, what="targets inside"), "hull_floor", ())
    run.item("targets inside the hull give 0", 1.0,
             None if abs(float(got)) <= 1e-12 else
             "targets inside their sequence's interval are reachable: the floor must be 0")


# ----------------------------------------------------------------------------- spec
_KERNEL_OPTION = (("kernel", "KERNEL", DEFAULT_KERNEL),)

ASSIGNMENT = Assignment(
    key="A3",
    slug="a3_softmax_vs_gaussian",
    title="Softmax vs Gaussian attention with W_Q trained",
    hours="3-4 h",
    parts=(
        Part("A3.1", "closed-form W_Q gradient", 6, check_wq_gradient, ("wq_gradient",),
             _KERNEL_OPTION, forbidden=("wq_gradient", "_grad_ref")),
        Part("A3.2", "W_Q gradient by autograd", 3, check_autograd_gradient,
             ("autograd_wq_gradient",), _KERNEL_OPTION,
             forbidden=("wq_gradient", "_grad_ref")),
        Part("A3.3", "the softmax hull", 2, check_softmax_hull, ("softmax_hull",),
             forbidden=("reachable_interval", "_hull")),
        Part("A3.4", "the convex-hull floor", 3, check_hull_floor, ("hull_floor",)),
    ),
    written=(
        Written("A3.W1", "derivation of the W_Q gradient", 4),
        Written("A3.W2", "the convex-hull barrier, explained", 4),
        Written("A3.W3", "the Gaussian kernel: beyond the hull, and its own trap", 3),
    ),
)
