"""Checks for assignment A2, training W_V: the feature matrix, its rate and its threshold.

Student functions (NumPy in, NumPy out):

- ``feature_matrix(X, S)``: X ``(N, n, D)``, attention S ``(H, N, n, n)`` -> C ``(N n, H D)``
  with ``C[i n + k, h D + a] = sum_j S[h, i, k, j] X[i, j, a]``;
- ``gd_values(C, y, lr, steps)``: ``steps`` gradient steps on ``f(w) = 1/2 ||C w - y||^2``
  from ``w = 0`` -> w ``(H D,)``;
- ``predicted_rate(C, lr)``: the per-step factor of the loss in the late phase,
  ``(1 - lr sigma_min(C)^2)^2``;
- ``empirical_threshold(N, n, H, Ds, seed)``: the smallest D in Ds for which C (random
  tokens and weights from the package) has full row rank ``N n``.

Expected values come from :mod:`attnlab.kernels` and :mod:`attnlab.model`, from the closed
form of gradient descent on a quadratic (through the SVD of C, never the loop the student
writes) and from properties (the rank of C at and below the returned D).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..data import random_tokens
from ..kernels import DEFAULT_KERNEL, KERNEL_TABLE, attention_matrix, feature_matrix, sigma_min
from ..model import init_params
from .core import Run, Stop, check, close, diagnose, to_array
from .spec import Assignment, Part, Written

__all__ = [
    "ASSIGNMENT",
    "check_feature_matrix",
    "check_gd_values",
    "check_predicted_rate",
    "check_empirical_threshold",
]


# ----------------------------------------------------------------------------- part 1
def _attention_case(rng: np.random.Generator, kernel: str, H: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random X (N, n, D), the package's S (H, N, n, n) and C (N n, H D)."""
    N, n, D = int(rng.integers(2, 5)), int(rng.integers(3, 6)), int(rng.integers(3, 7))
    d = int(rng.integers(2, 5))
    X = rng.standard_normal((N, n, D)) / np.sqrt(D)
    W_Q = rng.standard_normal((H, D, d))
    W_K = rng.standard_normal((H, D, d))
    return X, attention_matrix(X, W_Q, W_K, kernel), feature_matrix(X, W_Q, W_K, kernel)


def _feature_mistakes(X: np.ndarray, S: np.ndarray, C: np.ndarray) -> list[tuple[object, str]]:
    H, N, n, _ = S.shape
    D = X.shape[2]
    return [
        (lambda: np.einsum("hijk,ija->ikha", S, X).reshape(N * n, H * D),
         "you used the transposed attention: output token k mixes the tokens j with weights "
         "S[h, i, k, j] (row k of S_ih), i.e. the block is S_ih X_i"),
        (lambda: C.reshape(N * n, H, D).transpose(0, 2, 1).reshape(N * n, H * D),
         "the columns are in the wrong order: group them by head, column h * D + a"),
        (lambda: C.reshape(N, n, H * D).transpose(1, 0, 2).reshape(N * n, H * D),
         "the rows are in the wrong order: row i * n + k is token k of sequence i"),
        (lambda: C.reshape(N, n, H, D).transpose(1, 0, 3, 2).reshape(N * n, H * D),
         "rows and columns are both in the wrong order: row i * n + k, column h * D + a"),
        (lambda: np.tile(X.reshape(N * n, D), (1, H)),
         "the attention is missing: the block of head h is S_ih X_i, not X_i"),
    ]


@check("A2.1", "feature matrix C", points=5)
def check_feature_matrix(run: Run, feature_matrix_fn: Callable) -> None:
    """Check ``feature_matrix(X, S)`` against :func:`attnlab.feature_matrix`."""
    rng = run.rng
    name = getattr(feature_matrix_fn, "__name__", "feature_matrix")
    # one kernel whose rows sum to 1 and one whose rows do not
    normed = next(k for k, spec in KERNEL_TABLE.items() if spec.row_normalized)
    free = next(spec for spec in KERNEL_TABLE.values() if not spec.row_normalized)
    cases = [(normed, 2, f"{normed} attention, H = 2", 2.0),
             (free.name, 3, f"{free.display} attention (rows do not sum to 1), H = 3", 1.0),
             (normed, 1, "one head", 1.0)]
    for i, (kernel, H, label, pts) in enumerate(cases):
        X, S, C = _attention_case(rng, kernel, H)
        N, n, D = X.shape
        out = to_array(run.call(feature_matrix_fn, X, S, what=f"X {X.shape}, S {S.shape}"), name)
        if out.shape == (N * n, D) and H > 1:
            raise Stop(f"C has shape {out.shape}: you summed over the heads; they go side by "
                       f"side, C is (N n, H D) = {(N * n, H * D)}")
        out = to_array(out, name, C.shape)
        if i == 0:
            run.ok("shape (N n, H D)", 1.0)
        fb = None if close(out, C, 1e-9) else (
            diagnose(out, _feature_mistakes(X, S, C), 1e-9)
            or "wrong entries: C[i n + k, h D + a] = sum_j S[h, i, k, j] X[i, j, a]")
        run.item(label, pts, fb)


# ----------------------------------------------------------------------------- part 2
def _gd_closed_form(C: np.ndarray, y: np.ndarray, lr: float, steps: int) -> np.ndarray:
    """Gradient descent's iterate in closed form: with ``C = U S V^T``, ``w_k = V diag((1 -
    (1 - lr s^2)^k) / s) U^T y`` (from ``w = 0``; directions with ``s = 0`` never move)."""
    if steps <= 0:
        return np.zeros(C.shape[1])
    U, s, Vt = np.linalg.svd(C, full_matrices=False)
    keep = s > 1e-12 * s[0]
    coef = np.zeros_like(s)
    coef[keep] = (1.0 - (1.0 - lr * s[keep] ** 2) ** steps) / s[keep]
    return Vt.T @ (coef * (U.T @ y))


def _random_C(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """A feature matrix from the package (softmax attention) with the requested shape."""
    H = 1 if cols % 2 else 2
    D = cols // H
    n = 4 if rows % 4 == 0 else (3 if rows % 3 == 0 else 1)
    N = rows // n
    seed = int(rng.integers(2**31))
    X = random_tokens(N, n, D, seed=seed)
    p = init_params(H=H, D=D, d=4, init_scale=1.0, seed=seed)
    return feature_matrix(X, p.W_Q[0], p.W_K[0]).numpy()


@check("A2.2", "gradient descent on W_V", points=4)
def check_gd_values(run: Run, gd_values: Callable) -> None:
    """Check ``gd_values(C, y, lr, steps)`` against exact gradient-descent iterates."""
    rng = run.rng
    name = "gd_values"
    C = _random_C(rng, 12, 16)
    y = rng.standard_normal(C.shape[0])
    lr = float(0.9 / np.linalg.norm(C, 2) ** 2)
    out = to_array(run.call(gd_values, C, y, lr, 1, what="steps = 1"), name, (C.shape[1],))
    run.ok("returns w of shape (H D,)", 1.0)

    def mistakes(steps: int) -> list[tuple[object, str]]:
        return [
            (lambda: _gd_closed_form(C, -y, lr, steps) if steps else None,
             "sign error: the step is w <- w - lr * C^T (C w - y)"),
            (lambda: _gd_closed_form(C, y, 2 * lr, steps),
             "your steps are twice too long: the gradient of 1/2 ||C w - y||^2 is "
             "C^T (C w - y), with no factor 2"),
            (lambda: _gd_closed_form(C, y, 0.5 * lr, steps),
             "your steps are half as long as they should be (a stray factor 1/2)"),
            (lambda: _gd_closed_form(C, y, lr, steps - 1), "you ran one step too few"),
            (lambda: _gd_closed_form(C, y, lr, steps + 1), "you ran one step too many"),
        ]

    ref1 = _gd_closed_form(C, y, lr, 1)
    run.item("one step from w = 0", 1.0, None if close(out, ref1, 1e-9) else (
        diagnose(out, mistakes(1), 1e-9) or "one step from w = 0 is lr * C^T y"))
    steps = int(rng.integers(20, 60))
    out = to_array(run.call(gd_values, C, y, lr, steps, what=f"steps = {steps}"), name,
                   (C.shape[1],))
    ref = _gd_closed_form(C, y, lr, steps)
    run.item(f"{steps} steps", 2.0, None if close(out, ref, 1e-8) else (
        diagnose(out, mistakes(steps), 1e-8) or "the iterates differ from gradient descent "
                                                 "w <- w - lr * C^T (C w - y) from w = 0"))


# ----------------------------------------------------------------------------- part 3
def _rate_mistakes(C: np.ndarray, lr: float) -> list[tuple[object, str]]:
    s = np.linalg.svd(C, compute_uv=False)
    smin, smax = s[-1], s[0]
    eig_min = max(np.linalg.eigvalsh(C.T @ C)[0], 0.0)
    return [
        (np.array(1 - lr * smin**2),
         "this is the per-step factor of the residual; the loss is quadratic in the "
         "residual: square it"),
        (np.array((1 - lr * smax**2) ** 2),
         "the late phase is governed by the SMALLEST singular value, not the largest"),
        (np.array((1 - lr * smin) ** 2),
         "the eigenvalues of C^T C are the squared singular values: use sigma_min^2"),
        (np.array((1 - lr * eig_min) ** 2),
         "you took the smallest eigenvalue of C^T C, which is 0 when C has more columns than "
         "rows: use the min(N n, H D) singular values of C (al.sigma_min)"),
        (np.array(1 - 2 * lr * smin**2),
         "give the exact factor (1 - lr sigma^2)^2, not its first-order approximation"),
    ]


@check("A2.3", "predicted rate from sigma_min(C)", points=4)
def check_predicted_rate(run: Run, predicted_rate: Callable) -> None:
    """Check ``predicted_rate(C, lr)`` for a tall and a wide feature matrix."""
    rng = run.rng
    for label, (rows, cols) in [("C with fewer columns than rows (H D < N n)", (16, 10)),
                                ("C with more columns than rows (H D > N n)", (12, 20))]:
        C = _random_C(rng, rows, cols)
        lr = float(rng.uniform(0.5, 1.0) / np.linalg.norm(C, 2) ** 2)
        got = to_array(run.call(predicted_rate, C, lr, what=f"C of shape {C.shape}"),
                       "predicted_rate", ())
        ref = (1 - lr * float(sigma_min(C)) ** 2) ** 2
        fb = None if abs(float(got) - ref) <= 1e-10 else (
            diagnose(got, _rate_mistakes(C, lr), 1e-10)
            or "wrong factor: predict the per-step factor of the loss from sigma_min(C)")
        run.item(label, 2.0, fb)


# ----------------------------------------------------------------------------- part 4
def _full_row_rank(N: int, n: int, H: int, D: int, seed: int,
                   kernel: str = DEFAULT_KERNEL) -> bool:
    """Whether the package's feature matrix for this D (d = 8, as in the assignment) has
    rank N n."""
    X = random_tokens(N, n, D, seed=seed)
    p = init_params(H=H, D=D, d=8, init_scale=1.0, seed=seed)
    C = feature_matrix(X, p.W_Q[0], p.W_K[0], kernel)
    return C.shape[1] >= C.shape[0] and int(torch.linalg.matrix_rank(C)) == N * n


@check("A2.4", "embedding-dimension threshold, empirically", points=4)
def check_empirical_threshold(run: Run, empirical_threshold: Callable) -> None:
    """Check ``empirical_threshold(N, n, H, Ds, seed)`` on two hidden configurations."""
    rng = run.rng
    configs = [(int(rng.integers(3, 5)), 4, 2), (3, int(rng.integers(3, 5)), 3)]
    for N, n, H in configs:
        Ds = list(range(2, N * n + 2))
        seed = int(rng.integers(1000))
        got = run.call(empirical_threshold, N, n, H, Ds, seed,
                       what=f"N={N}, n={n}, H={H}, Ds={Ds[0]}..{Ds[-1]}")
        if got is None:
            run.fail(f"N = {N}, n = {n}, H = {H}", 2.0,
                     "you returned None, but some D in Ds gives a full-rank C")
            continue
        got = int(to_array(got, "empirical_threshold", ()))
        # properties of the answer: full row rank at D, not at the D before it in Ds
        ok_here = got in Ds and _full_row_rank(N, n, H, got, seed)
        before = [D for D in Ds if D < got]
        ok_before = not before or not _full_row_rank(N, n, H, before[-1], seed)
        fb = None
        if not (ok_here and ok_before):
            if got == Ds[0]:
                fb = ("you accept every D: compare singular values with a tolerance (they are "
                      "never exactly 0 in floating point), and note that al.sigma_min only "
                      "looks at the first min(N n, H D) of them; full row rank means rank N n")
            elif not ok_here:
                fb = ("too small: for the D you return, C has fewer than N n independent rows "
                      "(count its columns)")
            elif got == min(D for D in Ds if D >= N * n):
                fb = "C has H D columns: each head contributes D of them"
            else:
                fb = "too large: a smaller D in Ds already gives a C of rank N n"
        run.item(f"N = {N}, n = {n}, H = {H}", 2.0, fb)


# ----------------------------------------------------------------------------- spec
ASSIGNMENT = Assignment(
    key="A2",
    slug="a2_training_wv",
    title="Training W_V: the feature matrix, the linear rate and the width threshold",
    hours="2.5-3 h",
    parts=(
        Part("A2.1", "feature matrix C", 5, check_feature_matrix, ("feature_matrix",),
             forbidden=("feature_matrix",)),
        Part("A2.2", "gradient descent on W_V", 4, check_gd_values, ("gd_values",),
             forbidden=("_gd_closed_form",)),
        Part("A2.3", "predicted rate from sigma_min(C)", 4, check_predicted_rate,
             ("predicted_rate",)),
        Part("A2.4", "embedding-dimension threshold", 4, check_empirical_threshold,
             ("empirical_threshold",), forbidden=("_full_row_rank",)),
    ),
    written=(
        Written("A2.W1", "the plateau below the threshold", 3),
        Written("A2.W2", "predicted vs measured rate", 3),
        Written("A2.W3", "conditioning at and beyond the threshold", 2),
    ),
)
