"""Fast solver for the token group lasso: FISTA with group soft-thresholding and restart.

Problem (``p = n d`` features, ``c`` outputs, ``A = X.reshape(N, p)``, ``x (p, c)``)::

    min_x 1/2 ||A x - Y||_F^2 + beta sum_{k, l} ||x[k*d:(k+1)*d, l]||_2

- Step ``1/L`` with ``L = lambda_max(A^T A)`` (exact ``eigvalsh`` of the smaller Gram matrix
  when it is at most 4096 wide, else power iteration with a 1 % safety margin).
- When ``N > p`` the Gram matrix ``G = A^T A`` and ``A^T Y`` are formed once (``O(N p^2)``),
  after which an iteration costs ``O(p^2 c)``, independent of N.  ``G x`` is carried along
  (one product per iteration) and gives the gradient at the extrapolated point for free.
- Adaptive restart (O'Donoghue and Candes 2015, gradient-mapping test): momentum is reset
  whenever ``(y_k - x_{k+1}) . (x_{k+1} - x_k) > 0``.
- Stopping rule: the relative duality gap ``(P - D) / max(1, |P|) <= tol``, checked every
  ``check_every`` iterations, never an iteration count alone. The dual point is the residual
  ``r = Y - A x`` scaled per output by the best ``s`` in ``[0, beta / max_k ||(A^T r)_k||]``,
  which is feasible and at least as good as the usual ``min(1, beta / max_k ...)``.
- In Gram mode the gap is evaluated from ``G`` in the cancellation-free form
  ``P - D = (1 - s)^2/2 ||r||^2 + beta ||x||_{2,1} - s x . A^T r``; once it reports
  convergence, one exact pass over the data (``r = Y - A x``) confirms it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._threads import limit_threads, small

__all__ = ["ConvergenceError", "Design", "build_design", "solve_fista", "gap_terms"]


class ConvergenceError(RuntimeError):
    """The fast solver hit ``max_iter`` before the duality-gap tolerance."""


@dataclass
class Design:
    """Data of one token group lasso, prepared once and reused along a beta path.

    Shapes: ``A (N, p)`` (a view of X), ``Y (N, c)``, ``G (p, p)`` and ``AtY (p, c)`` in Gram
    mode (else None), ``yy (c,)`` column sums of ``Y^2``.
    """

    A: torch.Tensor
    Y: torch.Tensor
    n: int
    d: int
    L: float
    yy: torch.Tensor
    G: torch.Tensor | None
    AtY: torch.Tensor | None
    seconds: float

    @property
    def gram(self) -> bool:
        return self.G is not None


def _lipschitz(M: torch.Tensor, iters: int = 100) -> float:
    """Largest eigenvalue of the PSD matrix ``M``; exact when small, else power iteration."""
    if M.shape[0] <= 4096:
        with limit_threads(1 if M.shape[0] <= 512 else None):  # tiny LAPACK call: no thread stalls
            return float(torch.linalg.eigvalsh(M)[-1])
    g = torch.Generator(device="cpu").manual_seed(0)
    v = torch.randn(M.shape[0], 1, generator=g, dtype=M.dtype).to(M.device)
    lam = 0.0
    for _ in range(iters):
        w = M @ v
        lam = float(w.norm())
        if lam == 0.0:
            return 0.0
        v = w / lam
    return 1.01 * lam


def build_design(A: torch.Tensor, Y: torch.Tensor, n: int, d: int,
                 gram: bool | None = None) -> Design:
    """Prepare the solver data. ``A (N, p)``, ``Y (N, c)``; ``gram=None`` picks ``N > p``."""
    import time

    t0 = time.perf_counter()
    N, p = A.shape
    if gram is None:
        gram = N > p and p <= 8192
    if gram:
        G = A.T @ A
        G = 0.5 * (G + G.T)  # exact symmetry for eigvalsh
        AtY = A.T @ Y
        L = _lipschitz(G)
    else:
        G = AtY = None
        L = _lipschitz(A @ A.T) if N <= 4096 else _lipschitz(A.T @ A)
    yy = (Y * Y).sum(0)
    return Design(A, Y, n, d, max(L, 0.0), yy, G, AtY, time.perf_counter() - t0)


def _prox(v: torch.Tensor, thr: float, n: int, d: int) -> torch.Tensor:
    """Group soft-thresholding of the (k, l) blocks of ``v (p, c)``."""
    c = v.shape[1]
    v3 = v.view(n, d, c)
    norms = torch.linalg.vector_norm(v3, dim=1, keepdim=True)
    # 1 - thr / max(norm, thr): 0 for norms <= thr (also for norm 0), no division by zero
    scale = 1.0 - thr / norms.clamp_min_(thr)
    return (v3 * scale).view(n * d, c)


def gap_terms(x: torch.Tensor, g: torch.Tensor, rr: torch.Tensor, beta: float, n: int,
              d: int) -> tuple[float, float, torch.Tensor]:
    """Primal value, duality gap and dual scaling ``s (c,)`` at ``x``.

    Args:
        x: ``(p, c)`` primal point.
        g: ``(p, c)`` ``A^T r`` with ``r = Y - A x``.
        rr: ``(c,)`` ``||r_l||^2``.
    """
    c = x.shape[1]
    gmax = g.view(n, d, c).norm(dim=1).amax(dim=0)
    s_max = torch.where(gmax > 0, beta / gmax, torch.full_like(gmax, float("inf")))
    xg = (x * g).sum(0)
    # best dual scale along the ray: argmax_s s r.y - s^2/2 ||r||^2 with r.y = ||r||^2 + x.g
    s_star = torch.where(rr > 0, 1.0 + xg / torch.where(rr > 0, rr, 1.0), s_max)
    s = torch.clamp(torch.minimum(s_star, s_max), min=0.0)
    s = torch.where(torch.isfinite(s), s, torch.zeros_like(s))
    zn = x.view(n, d, c).norm(dim=1).sum(0)
    primal = 0.5 * rr + beta * zn
    gap = 0.5 * (1.0 - s) ** 2 * rr + beta * zn - s * xg
    return float(primal.sum()), float(gap.sum()), s


def exact_residual(des: Design, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``r = Y - A x (N, c)`` and ``A^T r (p, c)`` by passes over the data."""
    r = des.Y - des.A @ x
    return r, des.A.T @ r


@dataclass
class FistaOut:
    x: torch.Tensor  # (p, c)
    r: torch.Tensor  # (N, c) exact residual at x
    g: torch.Tensor  # (p, c) A^T r
    s: torch.Tensor  # (c,) dual scaling: lam = s * r
    primal: float
    gap: float
    iterations: int
    converged: bool


def solve_fista(des: Design, beta: float, *, tol: float, max_iter: int,
                x0: torch.Tensor | None = None, check_every: int = 10) -> FistaOut:
    """Run restarted FISTA until the relative duality gap is ``<= tol`` or ``max_iter``."""
    n, d = des.n, des.d
    p, c = des.A.shape[1], des.Y.shape[1]
    A = des.A
    x = torch.zeros(p, c, dtype=A.dtype, device=A.device) if x0 is None else x0.clone()
    # K x: G x in Gram mode, A x otherwise (carried along, one product per iteration)
    Kx = (des.G if des.gram else A) @ x
    # the iterations are small products: run them on one CPU thread, data passes on all
    outer = torch.get_num_threads() if A.device.type == "cpu" else None
    per_iter = (p * p if des.gram else 2 * A.shape[0] * p) * c
    with limit_threads(small(per_iter) if A.device.type == "cpu" else None):
        x, it, converged, rg = _iterate(des, beta, x, Kx, tol, max_iter, check_every, outer)
    r, g = exact_residual(des, x) if rg is None else rg
    primal, gap, s = gap_terms(x, g, (r * r).sum(0), beta, n, d)
    return FistaOut(x, r, g, s, primal, gap, it, converged)


def _iterate(des: Design, beta: float, x: torch.Tensor, Kx: torch.Tensor, tol: float,
             max_iter: int, check_every: int,
             outer: int | None) -> tuple[torch.Tensor, int, bool, tuple | None]:
    """The FISTA loop; ``outer`` threads are used for the exact passes over the data.

    Returns x, iterations, converged, and ``(r, A^T r)`` if computed exactly at x.
    """
    n, d = des.n, des.d
    A, Y, G, AtY = des.A, des.Y, des.G, des.AtY
    K = G if des.gram else A
    step = 1.0 / (des.L if des.L > 0 else 1.0)  # X = 0: any step works, the gradient vanishes
    thr = beta * step
    x_prev, Kx_prev = x, Kx
    t = 1.0
    exact_every = check_every  # exact confirmations are spaced out if the estimate is off
    next_exact = 0

    def gap_now(xc: torch.Tensor, Kxc: torch.Tensor) -> tuple[float, float, torch.Tensor]:
        if des.gram:
            g = AtY - Kxc
            rr = torch.clamp(des.yy - 2 * (AtY * xc).sum(0) + (xc * Kxc).sum(0), min=0.0)
        else:
            r = Y - Kxc
            g = A.T @ r
            rr = (r * r).sum(0)
        return gap_terms(xc, g, rr, beta, n, d)

    it = 0
    converged = False
    while True:
        if it % check_every == 0 or it >= max_iter:
            primal, gap, _ = gap_now(x, Kx)
            if gap <= tol * max(1.0, abs(primal)):
                if not des.gram:
                    converged = True
                    break
                if it >= next_exact:
                    with limit_threads(outer):
                        r, g = exact_residual(des, x)
                    primal, gap, _ = gap_terms(x, g, (r * r).sum(0), beta, n, d)
                    if gap <= tol * max(1.0, abs(primal)):
                        return x, it, True, (r, g)
                    exact_every *= 4
                    next_exact = it + exact_every
            if it >= max_iter:
                break
        t_next = 0.5 * (1.0 + (1.0 + 4.0 * t * t) ** 0.5)
        mom = (t - 1.0) / t_next
        # y = x + mom (x - x_prev), and K y likewise (few fused ops: the loop is overhead-bound)
        yk = torch.add(x, x_prev, alpha=-mom).add_(x, alpha=mom) if mom else x
        Kyk = torch.add(Kx, Kx_prev, alpha=-mom).add_(Kx, alpha=mom) if mom else Kx
        grad = Kyk - AtY if des.gram else A.T @ (Kyk - Y)
        x_new = _prox(torch.add(yk, grad, alpha=-step), thr, n, d)
        Kx_new = K @ x_new
        # gradient-mapping restart: momentum points against the descent direction
        if float(torch.vdot((yk - x_new).view(-1), (x_new - x).view(-1))) > 0:
            t_next = 1.0
        x_prev, Kx_prev, x, Kx, t = x, Kx, x_new, Kx_new, t_next
        it += 1
    return x, it, converged, None
