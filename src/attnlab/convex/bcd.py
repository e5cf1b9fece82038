"""Working-set block coordinate descent with Newton polishing for the token group lasso.

Same problem and certificate as :mod:`attnlab.convex.fista` (``p = n d``, ``A (N, p)``,
per output ``l``)::

    min_x 1/2 ||A x - y||^2 + beta sum_k ||x_k||_2          (x_k: the d entries of token k)

Pieces (each standard; El Ghaoui et al. 2012, Fercoq et al. 2015, Massias et al. 2018):

- **Gap-safe screening.** With the feasible dual point ``lam = s r`` and gap ``G``, a token
  with ``s ||A_k^T r|| + sqrt(2 G) ||A_k||_2 < beta`` is zero at the optimum; it is dropped
  for the rest of the solve (``||A_k||_2`` is exact in Gram mode, else its Frobenius bound).
- **Working set** grown from the KKT violations: the support plus the tokens with the largest
  ``||A_k^T r||``, at least twice the support, doubling each round (celer's rule). The first
  set holds no token that meets its optimality condition ``||A_k^T r|| <= beta``; later ones
  may (with correlated tokens such a token can join the support once its neighbours move).
- **Subproblem** on the working set ``W`` through its Gram block ``H = A_W^T A_W`` (sliced from
  ``G = A^T A`` when it exists, else computed for the new tokens only and cached), so an
  inner iteration costs ``O(|W|^2 d^2)`` whatever N is: block coordinate descent with the
  block step ``1/||A_k||_2^2`` (exact on isotropic blocks), then **Newton steps on the
  support** (the objective is smooth where no row vanishes; Armijo backtracking on the true
  objective keeps it monotone). Newton is what makes correlated tokens cheap: its iteration
  count does not grow with the conditioning, where first-order methods do.  It is an
  **active-set** Newton: a step that would push a row through zero (the kink Newton's model
  does not see) stops where the row's component along itself vanishes and gives that row a
  block proximal step from zero, which drops it where zero is optimal for it; near the
  optimum of a wide system it reuses its last factorization (chord steps).  A system wider
  than ``NEWTON_WIDE`` is factored only once BCD on its working set has cost as much as one
  factorization and its rate over its last epochs forecasts more than that again to the
  target (with i.i.d. tokens BCD with Anderson steps usually finishes first).
- **Residual form** for working sets wider than the data is long (``N < |W| d``, no
  Gram matrix): BCD on the residual ``r = y - A_W x`` (``4 N |W| d`` flops per epoch,
  where forming the Gram block alone costs ``N (|W| d)^2``), and on a wide support a
  **Newton-CG** step: conjugate gradients with Hessian-vector products and a
  block-diagonal preconditioner, once BCD has cost ``CG_RENT`` such products.
- **Along a path** the previous answer is moved by the **predictor**
  ``x(beta') ~ x(beta) + (beta - beta') Hess^{-1} U`` (``U``: the unit rows), the tangent of
  the optimality condition, with the last Newton factorization (no new one), plus the
  terms that make the curve pass through the answer before it with its tangent there
  (cubic Hermite: fourth-order accurate).  Newton stops
  as soon as the working set's duality gap meets the solve's target.
- **Certificate**: every outer step evaluates the full duality gap with the residual rescaled
  to a feasible dual point (:func:`attnlab.convex.fista.gap_terms`); the answer is confirmed
  by an exact pass over the data (``r = y - A x``), never by the cancellation-prone Gram form.
  Along a path in Gram mode the answers are confirmed together, by one batched pass
  (:func:`certify_many`: two matrix products instead of two matrix-vector products per
  beta); one it does not confirm is solved on with exact checks.

The N-dependent work (``A^T r``, ``G x``, Gram columns) runs in torch on the design's device
(CPU or CUDA); the small working-set subproblem runs in NumPy on the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.linalg import blas

from .fista import Design, FistaOut, exact_residual, gap_terms

__all__ = ["solve_bcd", "bcd_design", "BcdState", "certify_many"]

EXACT_BLOCK = 65536  # numbers of A per block of the exact pass (512 KB in float64)
NEWTON_MAX = 2048  # largest support (rows of the Newton system) solved directly
# Newton systems wider than NEWTON_WIDE wait until the BCD epochs on their working set
# have cost as much as one factorization ((k d)^3 / 3 flops): "rent before buying", within
# 2x of the better of BCD alone and Newton at once; and only while BCD's rate forecasts
# that renting on to the target costs more than buying (_epochs_left). BCD alone wins with
# i.i.d. tokens (all 32 tokens active at n = d = 32: 0.12 s against 0.28 s), Newton with
# correlated ones.
NEWTON_WIDE = 256
CG_RENT = 100  # Newton-CG on a wide support once BCD cost this many Hessian-vector products
INNER_SHRINK = 0.3  # a working set is solved to this times the outer gap (celer)
# ... in residual form: each outer step is an exact pass over all of A, worth fewer of them
# (n = d = 64, N = 1000, i.i.d., 0.1 beta_max: 0.28 s against 0.74 s with 0.3)
RESIDUAL_SHRINK = 0.1
RESIDUAL_RATIO = 1.0  # working sets with N < this * |W| d: residual form (no Gram block)
GRAM_FLOPS = 2e9  # ... unless the working set is the whole problem and its Gram this cheap
EPOCH_TOKEN = 5e5  # the cost of a BCD epoch per token beyond its products, in flops (Python)
NEWTON_STOP = 1e-5  # Newton stops after a decrement <= this * sqrt(gap target * max(1, P))
DROP_SLACK = 1e-3  # a row Newton pushes through 0 is dropped if ||grad_k|| <= beta (1 + this)
CHORD_MIN = 128  # Newton systems this wide try a chord step (the last factor) first
CHORD_NEAR = 1e-6  # ... when the last decrement was at most this times |f|
CHORD_RATE = 0.1  # a chord step is kept if its decrement is <= this times the last one
PREDICT_REACH = 4.0  # the predictor uses the answer before for steps up to this x that one


@dataclass
class Tangent:
    """The last Newton factorization at an answer: predicts the next answer along a path."""

    beta: float
    x: np.ndarray  # (p,) the answer
    tokens: np.ndarray  # its support
    L: np.ndarray  # Cholesky factor of the Newton Hessian on the support's columns
    prev: tuple | None = None  # (beta, x, x') the answer before it on the path and its
    # tangent (None if unknown), if any


@dataclass
class BcdState:
    """Per-design cache reused along a path: Gram columns of tokens seen so far, block norms.

    ``cols`` maps a token to its slot in ``H`` (``(m, m)`` for the cached tokens, NumPy).
    """

    des: Design
    sigma: np.ndarray  # (n,) upper bounds on ||A_k||_2 (exact in Gram mode)
    Atb: np.ndarray  # (p, c) A^T Y
    tokens: list[int] = field(default_factory=list)
    H: np.ndarray | None = None  # (m, m) Gram of the cached tokens, slot order
    last: tuple = ()  # (W as a tuple, its Gram block, its block Lipschitz constants)
    lips: dict = field(default_factory=dict)  # token -> ||A_k||_2^2
    exact: tuple = ()  # (l, x, r, A^T r, (beta, _gap's terms) or None) of the last exact
    # pass, reused by the certificate
    tangent: dict = field(default_factory=dict)  # l -> Tangent at the last answer (predictor)
    G: np.ndarray | None = None  # the Gram matrix as NumPy (Gram mode on the CPU)

    @classmethod
    def build(cls, des: Design) -> BcdState:
        n, d = des.n, des.d
        if des.gram:
            blocks = torch.stack([des.G[k * d:(k + 1) * d, k * d:(k + 1) * d] for k in range(n)])
            sigma = torch.linalg.eigvalsh(blocks)[:, -1].clamp_min(0).sqrt().cpu().numpy()
            Atb = des.AtY
        else:
            # the Frobenius norm bounds the spectral norm: the rule stays safe
            if des.A.device.type == "cpu":  # NumPy's column sums: 3x torch's two-axis norm
                An = des.A.numpy()
                sigma = np.sqrt(np.einsum("ij,ij->j", An, An).reshape(n, d).sum(1))
            else:
                sigma = torch.linalg.vector_norm(des.A.view(-1, n, d), dim=(0, 2)).cpu().numpy()
            Atb = des.A.T @ des.Y
        G = des.G.numpy() if des.gram and des.G.device.type == "cpu" else None
        return cls(des, sigma, Atb.cpu().numpy(), G=G)

    def block(self, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``A_W^T A_W`` and the block constants ``||A_k||_2^2`` for k in W (cached)."""
        key = tuple(int(k) for k in W)
        if self.last and self.last[0] == key:
            return self.last[1], self.last[2]
        H = self.gram(W)
        d = self.des.d
        if self.des.gram:
            Lb = self.sigma[W] ** 2  # exact in Gram mode
        else:
            todo = [i for i, k in enumerate(key) if k not in self.lips]
            if todo:
                t = np.array(todo)
                ev = np.linalg.eigvalsh(H.reshape(len(W), d, len(W), d)[t, :, t, :])[:, -1]
                self.lips.update({key[i]: float(e) for i, e in zip(todo, ev, strict=True)})
            Lb = np.array([self.lips[k] for k in key])
        self.last = (key, H, Lb)
        return H, Lb

    def columns(self, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``A`` on the columns of the tokens ``W`` (``(N, |W| d)``, NumPy, one copy) and the
        block constants ``||A_k||_2^2`` (cached): the residual-form subproblem's data."""
        key = tuple(int(k) for k in W)
        if self.last and self.last[0] == ("cols",) + key:
            return self.last[1], self.last[2]
        N, d = self.des.A.shape[0], self.des.d
        AW = self._columns(list(key)).numpy()
        todo = [i for i, k in enumerate(key) if k not in self.lips]
        if todo:
            # (t, N, d) contiguous: a strided batch would miss BLAS (100x slower)
            B = np.ascontiguousarray(AW.reshape(N, len(key), d)[:, todo].transpose(1, 0, 2))
            ev = np.linalg.eigvalsh(B.transpose(0, 2, 1) @ B)[:, -1]
            self.lips.update({key[i]: float(e) for i, e in zip(todo, ev, strict=True)})
        Lb = np.array([self.lips[k] for k in key])
        self.last = (("cols",) + key, AW, Lb)
        return AW, Lb

    def _columns(self, tokens: list[int]) -> torch.Tensor:
        """``A`` restricted to the columns of ``tokens`` (``(N, len(tokens) d)``): a gather of
        whole d-blocks (half the time of a gather of single columns)."""
        A, n, d = self.des.A, self.des.n, self.des.d
        idx = torch.as_tensor(tokens, device=A.device)
        return A.view(A.shape[0], n, d).index_select(1, idx).reshape(A.shape[0], -1)

    def gram(self, W: np.ndarray) -> np.ndarray:
        """``A_W^T A_W`` (``(|W| d, |W| d)``) for the tokens ``W`` in the given order."""
        des, d = self.des, self.des.d
        cols = np.concatenate([np.arange(k * d, (k + 1) * d) for k in W]) if len(W) else \
            np.zeros(0, dtype=np.int64)
        if des.gram:
            idx = torch.as_tensor(cols, device=des.G.device)
            return des.G.index_select(0, idx).index_select(1, idx).cpu().numpy()
        new = [int(k) for k in W if int(k) not in self.tokens]
        if new:
            cpu = des.A.device.type == "cpu"

            def tn(P: torch.Tensor, Q: torch.Tensor) -> np.ndarray:
                """``P^T Q`` as NumPy; on the CPU in NumPy, whose BLAS forms ``A^T A`` as a
                symmetric rank-k update (half the flops): 1.9x faster than torch's GEMM
                at 2000 x 128 on one thread."""
                return P.numpy().T @ Q.numpy() if cpu else (P.T @ Q).cpu().numpy()

            An = self._columns(new)
            m0 = 0 if self.H is None else self.H.shape[0]
            H = np.empty((m0 + len(new) * d,) * 2)
            if m0:
                H[:m0, :m0] = self.H
                cross = tn(self._columns(self.tokens), An)
                H[:m0, m0:] = cross
                H[m0:, :m0] = cross.T
            H[m0:, m0:] = tn(An, An)
            self.H, self.tokens = H, self.tokens + new
        slot = {k: i for i, k in enumerate(self.tokens)}
        sl = np.concatenate([np.arange(slot[int(k)] * d, (slot[int(k)] + 1) * d) for k in W])
        return self.H[np.ix_(sl, sl)]


def _cols(W: np.ndarray, d: int) -> np.ndarray:
    return (np.asarray(W)[:, None] * d + np.arange(d)).ravel()


def _gap(x: np.ndarray, g: np.ndarray, rr: float, beta: float,
         d: int) -> tuple[float, float, float]:
    """Primal, duality gap and dual scale ``s`` of ``1/2 ||y - A x||^2 + beta ||x||_{2,1}``
    (NumPy, one output) from ``g = A^T r`` and ``rr = ||r||^2``; the dual point is ``s r``
    as in ``gap_terms``."""
    gmax = float(np.sqrt((g.reshape(-1, d) ** 2).sum(1)).max()) if g.size else 0.0
    xg = float(x @ g)
    s_max = beta / gmax if gmax > 0 else math.inf
    s_star = 1.0 + xg / rr if rr > 0 else s_max
    s = max(min(s_star, s_max), 0.0)
    if not math.isfinite(s):
        s = 0.0
    zn = float(np.sqrt((x.reshape(-1, d) ** 2).sum(1)).sum()) if x.size else 0.0
    return 0.5 * rr + beta * zn, 0.5 * (1.0 - s) ** 2 * rr + beta * zn - s * xg, s


def _bcd_epoch(H: np.ndarray, c: np.ndarray, x: np.ndarray, Hx: np.ndarray, beta: float,
               d: int, Lb: np.ndarray) -> None:
    """One cyclic pass of block proximal-gradient steps (step ``1/L_k``), in place."""
    for j in range(len(Lb)):
        L = Lb[j]
        if L <= 0.0:
            continue  # a zero token: its row stays 0
        a, b = j * d, (j + 1) * d
        xj = x[a:b]
        new = _prox_row(xj, xj + (c[a:b] - Hx[a:b]) / L, beta / L)
        if new is None:
            continue
        delta = new - xj
        x[a:b] = new
        Hx += delta @ H[a:b]


def _prox_row(xj: np.ndarray, z: np.ndarray, thr: float) -> np.ndarray | None:
    """The block soft-threshold of ``z`` at ``thr`` (the row's new value), or None when the
    row is 0 and stays 0 (nothing to update)."""
    nz = math.sqrt(float(z @ z))
    if nz <= thr:
        return None if not xj.any() else np.zeros(len(z))
    return z * (1.0 - thr / nz)


def _cho_solve(L: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``M^{-1} v`` from the Cholesky factor ``L`` of ``M`` (lower triangular, in the Fortran
    order torch returns it: BLAS reads it without a copy): two BLAS triangular solves, a
    fifth of torch's per-call cost at 64 columns and under half at 256 (single-threaded at
    these sizes, so no second thread pool wakes up)."""
    return blas.dtrsv(L, blas.dtrsv(L, v, lower=1), lower=1, trans=1)


def _solve_pd(M: np.ndarray, v: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``-M^{-1} v`` for a symmetric PSD ``M`` (Cholesky; least squares if singular), and the
    Cholesky factor (None if ``M`` is singular), kept for chord steps and the predictor.

    The factorization runs in torch, whose thread setting applies: SciPy's LAPACK is
    faster here but runs a second OpenBLAS thread pool, which then stalled NumPy's own
    (a path 3.5x slower). The factor is kept as NumPy (a view, no copy)."""
    Mt = torch.from_numpy(M)
    Lc, info = torch.linalg.cholesky_ex(Mt)
    if int(info) == 0:
        L = Lc.numpy()
        out = -_cho_solve(L, v)
    else:
        vt = torch.from_numpy(v)[:, None]
        out, L = -torch.linalg.lstsq(Mt, vt, driver="gelsd").solution[:, 0].numpy(), None
    return (out, L) if np.isfinite(out).all() else (None, None)


def _scatter(rows: np.ndarray, xs: np.ndarray, p: int, d: int) -> np.ndarray:
    """The ``(p,)`` vector that is ``xs`` on the rows ``rows`` and 0 elsewhere."""
    v = np.zeros(p)
    v[_cols(rows, d)] = xs
    return v


def _rows(v: np.ndarray, d: int) -> np.ndarray:
    """Row norms of ``v`` viewed as ``(-1, d)``."""
    return np.sqrt(np.einsum("ij,ij->i", v.reshape(-1, d), v.reshape(-1, d)))


def _crossing(xs: np.ndarray, dx: np.ndarray, d: int) -> np.ndarray:
    """Per row, the step ``t`` at which ``x_k + t dx_k`` stops pointing along ``x_k`` (its
    component along ``x_k`` reaches 0; inf if that is beyond ``t = 1``)."""
    V, D = xs.reshape(-1, d), dx.reshape(-1, d)
    a, b = np.einsum("ij,ij->i", V, V), np.einsum("ij,ij->i", V, D)
    # -b > a >= 0 where it crosses: no division by zero there, none done elsewhere
    return np.divide(a, -b, out=np.full(len(a), np.inf), where=b < -a)


@dataclass
class _Newton:
    """The objective restricted to the rows ``sup`` of a working set, and its Newton step."""

    Hs: np.ndarray
    cs: np.ndarray
    xs: np.ndarray
    sup: np.ndarray  # rows of the working set
    beta: float
    d: int
    Lb: np.ndarray  # (rows,) block Lipschitz constants ||H_kk||_2 (or upper bounds)

    def f(self, v: np.ndarray) -> float:
        return float(0.5 * v @ (self.Hs @ v) - self.cs @ v + self.beta * _rows(v, self.d).sum())

    def grad(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Gradient at ``xs``, its row norms and unit rows ``U``."""
        nr = _rows(self.xs, self.d)
        U = self.xs.reshape(-1, self.d) / nr[:, None]
        return self.Hs @ self.xs - self.cs + self.beta * U.ravel(), nr, U

    def step(self) -> tuple[np.ndarray | None, float, np.ndarray | None]:
        """Newton direction at ``xs``, the directional derivative along it, the factor."""
        k, d = len(self.sup), self.d
        grad, nr, U = self.grad()
        Hess = self.Hs.copy()
        ar = np.arange(k)
        Hess.reshape(k, d, k, d)[ar, :, ar, :] += (self.beta / nr)[:, None, None] * (
            np.eye(d) - U[:, :, None] * U[:, None, :])
        dx, Lc = _solve_pd(Hess, grad)
        return dx, (float(grad @ dx) if dx is not None else 0.0), Lc

    def chord(self, L: np.ndarray) -> tuple[np.ndarray | None, float]:
        """The step with a factor ``L`` of the Hessian at a nearby point (no new one)."""
        grad = self.grad()[0]
        dx = -_cho_solve(L, grad)
        if not np.isfinite(dx).all():
            return None, 0.0
        return dx, float(grad @ dx)

    def drop(self, gone: np.ndarray) -> None:
        """Remove the rows ``gone`` (booleans over ``sup``) from the system."""
        keep = _cols(np.flatnonzero(~gone), self.d)
        self.Hs, self.cs = self.Hs[np.ix_(keep, keep)], self.cs[keep]
        self.xs, self.sup, self.Lb = self.xs[keep], self.sup[~gone], self.Lb[~gone]


def _armijo(sub: _Newton, dx: np.ndarray, gd: float, fx: float) -> tuple[float, float]:
    """Backtracking on the true objective; ``(t, f(xs + t dx))``, ``t = 0`` if none found.

    A decrement below what ``f`` resolves (``1e-12 |f|``) takes the full step unchecked:
    Armijo cannot tell there, and the gap (~ sqrt(f - f*) through the dual scale) still
    needs the step."""
    t = 1.0
    while t > 1e-12:
        fn = sub.f(sub.xs + t * dx)
        if fn <= fx + 1e-4 * t * gd or -gd < 1e-12 * max(1.0, abs(fx)):
            return t, fn
        t *= 0.5
    return 0.0, fx


def _to_boundary(sub: _Newton, dx: np.ndarray, gd: float,
                 fx: float) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Active-set step: if the Newton step pushes rows through zero, go to where the first
    one does and give that row a block proximal step from 0 instead (step ``1/L_k``): 0 when
    0 is optimal for it there, where it is dropped, else a row that points the way the
    gradient says (a row that only swings past zero); kept if the objective decreases
    enough.  Returns the rows dropped, the new point and its objective.

    Why: the objective has a kink where a row vanishes; Newton's model does not see it and
    the line search would halve the step down to ~1e-6 for each step of a row on its way to
    zero (20 steps of 15-37 halvings on the planted path). ``None``: no such row or not a
    sufficient decrease (then the line search decides).
    """
    d = sub.d
    cross = _crossing(sub.xs, dx, d)
    tb = float(cross.min()) if cross.size else math.inf
    if not tb < 1.0:
        return None
    hit = cross <= tb * (1.0 + 1e-12)
    xb = sub.xs + tb * dx
    V = xb.reshape(-1, d)
    V[hit] = 0.0
    z = (sub.cs - sub.Hs @ xb).reshape(-1, d)[hit] / sub.Lb[hit, None]  # gradient step from 0
    nz = np.sqrt(np.einsum("ij,ij->i", z, z))
    thr = sub.beta / sub.Lb[hit]
    # rows within DROP_SLACK of optimal at 0 go: tied rows (duplicated tokens) would swing
    # back and forth by rounding
    keep = nz > thr * (1.0 + DROP_SLACK)
    V[hit] = np.where(keep, 1.0 - thr / np.maximum(nz, thr), 0.0)[:, None] * z
    fb = sub.f(xb)
    if fb > fx + 1e-4 * tb * gd:
        return None
    gone = np.zeros(len(hit), dtype=bool)
    gone[hit] = ~keep
    return gone, xb, fb


def _direction(sub: _Newton, fac: tuple | None, last: float,
               fx: float) -> tuple[np.ndarray | None, float, tuple | None, bool]:
    """The next step, its ``grad . dx``, the factor used and whether it is a chord step.

    A chord step reuses the last factor ``fac``: on a wide system (a factorization costs
    about ten solves) close to the optimum (last decrement ``<= CHORD_NEAR |f|``), kept if
    it shrinks the decrement at least ``CHORD_RATE`` times; else a new factorization.
    """
    near = last <= CHORD_NEAR * max(1.0, abs(fx))
    if fac is not None and near and len(sub.xs) >= CHORD_MIN and np.array_equal(fac[0], sub.sup):
        dx, gd = sub.chord(fac[1])
        if dx is not None and gd < 0 and -gd <= CHORD_RATE * last:
            return dx, gd, fac, True
    dx, gd, Lc = sub.step()
    return dx, gd, None if Lc is None else (sub.sup.copy(), Lc), False


def _newton(H: np.ndarray, c: np.ndarray, x: np.ndarray, beta: float, d: int,
            Lb: np.ndarray, steps: int = 20, stop: float = 0.0,
            eps: float = 0.0, done_at: Callable[[np.ndarray, np.ndarray], bool] | None = None
            ) -> tuple[int, tuple | None]:
    """Damped active-set Newton on the support of ``x`` (in place).

    Runs to rounding, or until a full step is taken after which the decrement
    ``-grad . dx`` is predicted negligible: a Newton step whose decrement was at most
    ``stop`` (quadratic convergence: the next one ~ its square), a second chord step in a
    row whose decrement at its rate (vs the last one) predicts a next one below ``eps``;
    or after which ``done_at(rows, x_rows)`` (e.g. the working set's duality gap, a matrix
    product: cheaper than the step that would confirm it) says it is solved.

    Returns the steps taken and the last Cholesky factor with the rows it belongs to
    (``(rows, L)``, for the path predictor; None if there is none).
    """
    sup = np.flatnonzero(_rows(x, d) > 0)
    if len(sup) == 0 or len(sup) * d > NEWTON_MAX:
        return 0, None
    cols = _cols(sup, d)
    # the whole working set is in the support when it is dense: no copy of H needed
    Hs = H if len(cols) == len(c) else H[np.ix_(cols, cols)]
    Ls = np.where(Lb[sup] > 0, Lb[sup], 1.0)  # a zero token (a warm start's row): any step
    sub = _Newton(Hs, c[cols], x[cols].copy(), sup, beta, d, Ls)
    fx = sub.f(sub.xs)
    done, last, fac, chord = 0, math.inf, None, False
    while done < steps and len(sub.sup):
        was_chord = chord
        dx, gd, fac, chord = _direction(sub, fac, last, fx)
        if dx is None or not gd < 0:  # converged to rounding: the gap is ~ sqrt(f - f*)
            break
        hit = _to_boundary(sub, dx, gd, fx)
        if hit is not None:
            gone, sub.xs, fn = hit
            sub.drop(gone)
            improve, fx, fac = fx - fn, fn, None
        else:
            t, fn = _armijo(sub, dx, gd, fx)
            if t == 0.0:
                break
            sub.xs = sub.xs + t * dx
            improve, fx = fx - fn, fn
            # Newton: the next decrement ~ its square; chord: ~ gd^2 / last, once the rate
            # gd / last is a chord step's (the first one's says how good Newton was)
            if t == 1.0 and (chord and was_chord and gd * gd <= eps * last
                             or not chord and -gd <= stop
                             or done_at is not None and done_at(sub.sup, sub.xs)):
                done += 1
                break
        done += 1
        last = -gd
        # at rounding after a Newton step; a chord step, converging linearly, goes on
        if not chord and (improve <= 1e-15 * max(1.0, abs(fx)) or -gd < 1e-24):
            break
    x[cols] = 0.0
    x[_cols(sub.sup, d)] = sub.xs
    return done, fac


def _anderson(hist: list[np.ndarray]) -> np.ndarray | None:
    """Anderson extrapolation of the last iterates (Bertrand and Massias 2021, skglm)."""
    U = np.diff(np.array(hist), axis=0)  # (K, m)
    M = U @ U.T
    try:
        w = np.linalg.solve(M + 1e-12 * np.trace(M) * np.eye(len(M)), np.ones(len(M)))
    except np.linalg.LinAlgError:
        return None
    if not np.isfinite(w).all() or w.sum() == 0:
        return None
    w /= w.sum()
    return w @ np.array(hist[1:])


def _objective(c: np.ndarray, x: np.ndarray, Hx: np.ndarray, beta: float, d: int) -> float:
    return float(0.5 * x @ Hx - c @ x + beta * np.sqrt((x.reshape(-1, d) ** 2).sum(1)).sum())


def _inner(H: np.ndarray, c: np.ndarray, x: np.ndarray, yy: float, beta: float, d: int,
           Lb: np.ndarray, target: float, max_epochs: int, stop: float = 0.0,
           eps: float = 0.0, final: float = 0.0) -> tuple[int, tuple | None]:
    """Solve the working-set problem to a duality gap ``<= target`` (in place); epochs used
    and the last Newton factor (``(rows, L)`` as :func:`_newton`, or None); ``stop`` and
    ``eps`` go to :func:`_newton`, which also stops once the gap is ``<= final`` (the
    solve's own target: on the support, a tighter answer costs little), else ``target``.

    BCD epochs; Newton on the support once it stops changing (at once when it is small,
    without a first BCD epoch when the whole working set is support; when it is wider than
    ``NEWTON_WIDE``, only once the BCD epochs have cost one factorization); otherwise
    Anderson extrapolation every 5 epochs, kept only if it lowers the objective.
    """
    Hx = H @ x
    met = False  # Newton stopped at a point whose gap meets the target (it stops there)

    def solved(rows: np.ndarray, xs: np.ndarray) -> bool:  # the gap at Newton's point
        nonlocal met
        v = _scatter(rows, xs, len(x), d)
        Hv = H @ v
        met = _gap(v, c - Hv, max(yy - 2.0 * float(c @ v) + float(v @ Hv), 0.0), beta,
                   d)[1] <= (final or target)
        return met

    hist: list[np.ndarray] = []
    gaps: list[float] = []  # the gap after each epoch: BCD's rate forecasts its cost
    prev = fac = None
    spent = 0.0  # BCD work since the last Newton call, in flops (see NEWTON_WIDE)
    epoch = 2.0 * len(c) ** 2 + EPOCH_TOKEN * len(Lb)
    for ep in range(1, max_epochs + 1):
        # a working set that is all support (the strong rule's, warm-started along a path)
        # goes to Newton at once: a BCD epoch could only zero a row, as Newton's can
        if ep > 1 or len(c) > NEWTON_WIDE or not (_rows(x, d) > 0).all():
            _bcd_epoch(H, c, x, Hx, beta, d, Lb)
            spent += epoch
        sup = (x.reshape(-1, d) != 0).any(1)
        k = int(sup.sum())
        buy = (k * d) ** 3 / 3  # flops of a factorization
        if k and k * d <= NEWTON_MAX and (k * d <= NEWTON_WIDE or (
                prev is not None and (sup == prev).all() and spent >= buy
                and _epochs_left(gaps, target) * epoch > buy)):
            steps, fac = _newton(H, c, x, beta, d, Lb, stop=stop, eps=eps, done_at=solved)
            spent = 0.0
            if met and (final or target) <= target:  # Newton stopped at x: gap <= target
                return ep, fac
            if steps:
                Hx = H @ x
                hist.clear()
        else:
            fac = None  # the factor is the last Newton's, at x
            hist.append(x.copy())
            if len(hist) == 6:
                xa = _anderson(hist)
                hist.clear()
                if xa is not None:
                    Hxa = H @ xa
                    if _objective(c, xa, Hxa, beta, d) < _objective(c, x, Hx, beta, d):
                        x[:], Hx = xa, Hxa
        prev = sup
        g = c - Hx
        rr = max(yy - 2.0 * float(c @ x) + float(x @ Hx), 0.0)
        gaps.append(_gap(x, g, rr, beta, d)[1])
        if gaps[-1] <= target:
            return ep, fac
    return max_epochs, fac


def _epochs_left(gaps: list[float], target: float, window: int = 6) -> float:
    """BCD's epochs from the last gap to ``target`` at its rate over the last ``window``
    epochs (one Anderson cycle); inf while unknown or not converging. A wide Newton system
    is factored only when renting BCD on would cost more (with i.i.d. tokens at n = d = 32,
    0.01 beta_max, BCD with Anderson steps finished in 40 epochs, about two factorizations)."""
    if len(gaps) <= window or not 0.0 < target < gaps[-1] < gaps[-1 - window]:
        return math.inf
    return window * math.log(target / gaps[-1]) / math.log(gaps[-1] / gaps[-1 - window])


def _bcd_epoch_r(AW: np.ndarray, r: np.ndarray, x: np.ndarray, beta: float, d: int,
                 Lb: np.ndarray) -> None:
    """:func:`_bcd_epoch` on the residual ``r = y - A_W x`` (in place): ``2 N d`` flops
    per token instead of a Gram row."""
    for j in range(len(Lb)):
        L = Lb[j]
        if L <= 0.0:
            continue
        a, b = j * d, (j + 1) * d
        Aj, xj = AW[:, a:b], x[a:b]
        new = _prox_row(xj, xj + (r @ Aj) / L, beta / L)
        if new is None:
            continue
        r -= Aj @ (new - xj)
        x[a:b] = new


def _pcg(matvec: Callable[[np.ndarray], np.ndarray], b: np.ndarray,
         precond: Callable[[np.ndarray], np.ndarray], rtol: float, maxiter: int) -> np.ndarray:
    """Preconditioned conjugate gradients for ``M x = b`` (``M`` symmetric positive
    definite through ``matvec``), from 0 to ``||M x - b|| <= rtol ||b||``."""
    x = np.zeros_like(b)
    r = b.copy()
    z = precond(r)
    p = z.copy()
    rz = float(r @ z)
    stop = rtol * math.sqrt(float(b @ b))
    for _ in range(maxiter):
        Mp = matvec(p)
        pMp = float(p @ Mp)
        if not pMp > 0:
            break
        a = rz / pMp
        x += a * p
        r -= a * Mp
        if math.sqrt(float(r @ r)) <= stop:
            break
        z = precond(r)
        rz, rz_old = float(r @ z), rz
        p = z + (rz / rz_old) * p
    return x


def _newton_cg(AW: np.ndarray, y: np.ndarray, x: np.ndarray, beta: float, d: int,
               steps: int = 30, stop: float = 0.0,
               done_at: Callable[[np.ndarray], bool] | None = None) -> int:
    """Damped active-set Newton on the support of ``x`` (in place) in residual form, each
    step solved by conjugate gradients with Hessian-vector products ``A_S^T A_S v + D v``
    (``4 N k d`` flops) and the block-diagonal preconditioner ``(A_k^T A_k + D_k)^{-1}``:
    for supports too wide for the Gram block (``N (k d)^2`` flops) and its factorization.
    A row that a step would push through zero stops the step there and is dropped (BCD,
    which runs next, brings it back if it belongs). Stops as :func:`_newton` (decrement
    ``<= stop`` after a full step, or ``done_at(x)``).  Returns the steps taken."""
    N = AW.shape[0]
    S = np.flatnonzero(_rows(x, d) > 0)
    done = 0
    while done < steps and len(S):
        cols = _cols(S, d)
        AS = AW[:, cols]
        xs = x[cols]
        k = len(S)
        B = np.ascontiguousarray(AS.reshape(N, k, d).transpose(1, 0, 2))
        Bk = B.transpose(0, 2, 1) @ B  # (k, d, d) the diagonal blocks of A_S^T A_S
        r = y - AS @ xs
        nr = _rows(xs, d)
        U = xs.reshape(k, d) / nr[:, None]
        Dk = (beta / nr)[:, None, None] * (np.eye(d) - U[:, :, None] * U[:, None, :])
        grad = -(r @ AS) + beta * U.ravel()
        Pinv = np.linalg.inv(Bk + Dk + 1e-12 * np.eye(d) * np.trace(Bk, axis1=1, axis2=2)[
            :, None, None] / d)

        def hv(v: np.ndarray, AS: np.ndarray = AS, Dk: np.ndarray = Dk) -> np.ndarray:
            return (AS @ v) @ AS + (Dk @ v.reshape(len(Dk), d, 1)).ravel()

        def pre(v: np.ndarray, Pinv: np.ndarray = Pinv) -> np.ndarray:
            return (Pinv @ v.reshape(len(Pinv), d, 1)).ravel()

        gn = math.sqrt(float(grad @ grad))
        dx = _pcg(hv, -grad, pre, min(0.1, math.sqrt(gn)), 200)
        gd = float(grad @ dx)
        if not gd < 0:
            break
        fx = 0.5 * float(r @ r) + beta * float(nr.sum())
        cross = _crossing(xs, dx, d)
        tb = float(cross.min())
        done += 1
        if tb < 1.0:  # stop where the first row vanishes; drop it
            xs = xs + tb * dx
            hit = cross <= tb * (1.0 + 1e-12)
            xs.reshape(k, d)[hit] = 0.0
            x[cols] = xs
            S = S[~hit]
            continue
        t = 1.0
        while t > 1e-10:
            xn = xs + t * dx
            rn = y - AS @ xn
            if 0.5 * float(rn @ rn) + beta * float(_rows(xn, d).sum()) <= fx + 1e-4 * t * gd:
                break
            t *= 0.5
        else:
            break
        x[cols] = xn
        if t == 1.0 and (-gd <= stop or done_at is not None and done_at(x)):
            break
        if -gd <= 1e-15 * max(1.0, abs(fx)):
            break
    return done


def _inner_r(AW: np.ndarray, y: np.ndarray, x: np.ndarray, beta: float, d: int,
             Lb: np.ndarray, target: float, max_epochs: int, stop: float = 0.0,
             eps: float = 0.0, final: float = 0.0) -> tuple[int, tuple | None]:
    """:func:`_inner` in residual form, for working sets wide against the data's length
    (``N < RESIDUAL_RATIO |W| d``: the Gram block, ``N (|W| d)^2`` flops, would cost more
    than the solve). ``AW (N, |W| d)``. A support of at most ``NEWTON_WIDE`` columns gets
    Newton on its Gram block (formed only then); a wider one Newton-CG."""
    N, m = AW.shape[0], AW.shape[1] // d

    def resid(v: np.ndarray) -> np.ndarray:
        return y - AW @ v

    def gap(v: np.ndarray, r: np.ndarray) -> float:
        return _gap(v, r @ AW, float(r @ r), beta, d)[1]

    def objective(v: np.ndarray, r: np.ndarray) -> float:
        return 0.5 * float(r @ r) + beta * float(_rows(v, d).sum())

    r = resid(x)
    hist: list[np.ndarray] = []
    prev = fac = None
    spent, epoch = 0.0, 4.0 * N * m * d + EPOCH_TOKEN * m
    for ep in range(1, max_epochs + 1):
        _bcd_epoch_r(AW, r, x, beta, d, Lb)
        spent += epoch
        sup = (x.reshape(-1, d) != 0).any(1)
        k = int(sup.sum())
        stable = k and prev is not None and (sup == prev).all()
        if stable and k * d > NEWTON_WIDE and spent >= CG_RENT * 4.0 * N * k * d:
            # wide support: Newton-CG once BCD has cost CG_RENT Hessian-vector products
            _newton_cg(AW, y, x, beta, d, stop=stop,
                       done_at=lambda v: gap(v, resid(v)) <= (final or target))
            spent, fac = 0.0, None
            r = resid(x)
            hist.clear()
        elif stable and k * d <= NEWTON_WIDE:
            S = np.flatnonzero(sup)
            cols = _cols(S, d)
            AS = AW[:, cols]
            xs = x[cols].copy()

            def solved(rows: np.ndarray, v: np.ndarray, S: np.ndarray = S) -> bool:
                u = _scatter(S[rows], v, len(x), d)
                return gap(u, resid(u)) <= (final or target)

            steps, f = _newton(AS.T @ AS, AS.T @ y, xs, beta, d, Lb[S], stop=stop, eps=eps,
                               done_at=solved)
            spent = 0.0
            fac = None if f is None else (S[f[0]], f[1])
            if steps:
                x[:] = 0.0
                x[cols] = xs
                r = resid(x)
                hist.clear()
        else:
            fac = None
            hist.append(x.copy())
            if len(hist) == 6:
                xa = _anderson(hist)
                hist.clear()
                if xa is not None:
                    ra = resid(xa)
                    if objective(xa, ra) < objective(x, r):
                        x[:], r = xa, ra
        prev = sup
        if gap(x, r) <= target:
            return ep, fac
    return max_epochs, fac


def _full(state: BcdState, x: np.ndarray, l: int) -> tuple[np.ndarray, float]:
    """``g = A^T (y - A x)`` and ``||y - A x||^2`` for output ``l`` (Gram form if available)."""
    des = state.des
    if state.G is not None:  # NumPy: a few small products, torch's per-call cost dominates
        Gx = state.G @ x
        c = state.Atb[:, l]
        return c - Gx, max(float(des.yy[l]) - 2.0 * float(c @ x) + float(x @ Gx), 0.0)
    if not des.gram and not x.any():  # r = y and A^T r = A^T y (cached): no pass over A
        g = state.Atb[:, l].copy()
        state.exact = (l, x.copy(), des.Y[:, l].clone(), torch.from_numpy(g.copy()).to(
            des.A.device), None)
        return g, float(des.yy[l])
    xt = torch.from_numpy(x).to(des.A.device)
    if des.gram:
        Gx = des.G @ xt
        g = des.AtY[:, l] - Gx
        rr = float(des.yy[l] - 2 * (des.AtY[:, l] @ xt) + xt @ Gx)
    else:
        r, g = _residual(des.A, des.Y[:, l], xt)
        rr = float(r @ r)
        state.exact = (l, x.copy(), r, g, None)
    return g.cpu().numpy(), max(rr, 0.0)


def _exact(state: BcdState, x: np.ndarray, l: int, beta: float) -> tuple[float, float, float]:
    """Primal, gap and dual scale at ``x`` from an exact pass over the data (kept in
    ``state.exact`` for the certificate)."""
    des = state.des
    r, g = _residual(des.A, des.Y[:, l], torch.from_numpy(x).to(des.A.device))
    terms = _gap(x, g.cpu().numpy(), float(r @ r), beta, des.d)
    state.exact = (l, x.copy(), r, g, (beta, terms))
    return terms


def _residual(A: torch.Tensor, y: torch.Tensor,
              x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``r = y - A x`` and ``A^T r`` in one sweep over blocks of rows of A: each block is
    read from memory once and reused from the cache (two passes over A cost 20-40 % more
    at N = 2000, p = 256, more on a busy machine)."""
    N, p = A.shape
    rows = max(1, EXACT_BLOCK // max(p, 1))
    if A.device.type != "cpu" or rows >= N:
        r = y - A @ x
        return r, A.T @ r
    # NumPy on the blocks: a third of torch's per-call cost, which is most of a small pass
    An, yn, xn = A.numpy(), y.numpy(), x.numpy()
    r, g = np.empty(N, dtype=An.dtype), np.zeros(p, dtype=An.dtype)
    for i in range(0, N, rows):
        Ai = An[i:i + rows]
        ri = np.subtract(yn[i:i + rows], Ai @ xn, out=r[i:i + rows])
        g += ri @ Ai
    return torch.from_numpy(r), torch.from_numpy(g)


def _predict(tan: Tangent | None, x: np.ndarray, beta: float,
             d: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Path predictor: ``x(beta) ~ x(b0) + h x' + h^2 a + h^3 b`` with ``h = beta - b0``, the
    tangent ``x' = -Hess^{-1} U`` (``U``: the rows ``x_k / ||x_k||``) from the answer at
    ``b0`` and its last Newton factor; ``a`` and ``b`` make the curve pass through the
    answer before it (``(beta_p, x_p)``, same support, ``|h| <= PREDICT_REACH |beta_p - b0|``)
    with its tangent there (cubic Hermite; without that tangent ``b = 0``, without that
    answer ``a = 0`` too).

    The tangent is that of the optimality condition ``H x - c + beta U(x) = 0`` on the
    support: a Newton step for free (no new factorization). On a geometric grid of betas
    the relative step ``h / beta`` is constant, and so is the error of each order: on the
    planted path of the benchmark the quadratic term takes the first Newton decrement ~ 100x
    below the tangent's, the cubic one another ~ 10x, where one Newton step certifies most
    answers.  Only when ``x`` is that answer and no row would cross zero (a
    row leaving the support); else ``x`` as is.  Also returns the tangent at ``b0`` (None
    when not formed), the next prediction's ``x_p'``.
    """
    if tan is None or tan.beta == beta or not np.array_equal(x, tan.x):
        return x, None
    if not np.array_equal(np.flatnonzero(_rows(x, d) > 0), tan.tokens):
        return x, None
    cols = _cols(tan.tokens, d)
    xs = x[cols]
    U = (xs.reshape(-1, d) / _rows(xs, d)[:, None]).ravel()
    tangent = -_cho_solve(tan.L, U)
    h = beta - tan.beta
    step = h * tangent
    if tan.prev is not None and tan.prev[0] != tan.beta:
        bp, xp, tp = tan.prev
        hp = bp - tan.beta
        # not far beyond the last step: the terms scale its answer's rounding by (h / hp)^3
        if abs(h) <= PREDICT_REACH * abs(hp) and np.array_equal(
                np.flatnonzero(_rows(xp, d) > 0), tan.tokens):
            r1 = (xp[cols] - xs - hp * tangent) / hp**2  # = a + hp b
            if tp is None:
                step += h**2 * r1
            else:
                r2 = (tp - tangent) / hp  # = 2 a + 3 hp b
                b = (r2 - 2.0 * r1) / hp
                step += h**2 * (r1 - hp * b) + h**3 * b
    if not np.isfinite(step).all() or (_crossing(xs, step, d) < 1.0).any():
        return x, tangent
    out = x.copy()
    out[cols] = xs + step
    return out, tangent


def solve_one(state: BcdState, l: int, beta: float, tol: float, share: float,
              x: np.ndarray, max_iter: int, ws0: np.ndarray | None = None,
              exact: bool = True) -> tuple[np.ndarray, int, bool]:
    """Solve output ``l`` to an exact-pass duality gap ``<= share tol max(1, P)``.

    ``x (p,)`` is the warm start, ``ws0`` tokens to put in the first working set (e.g. the
    strong rule along a path).  Returns x, inner epochs used, and whether it is certified.
    The warm start goes through the path predictor when it is the previous answer.
    ``exact=False`` (Gram mode): stop at the Gram-form target and leave the exact pass to
    the caller (:func:`certify_many`); "certified" then means "met the Gram-form target".
    """
    tan = state.tangent.get(l)
    # the answer this solve starts from, when it is the last one (the predictor's curvature)
    prev = (tan.beta, tan.x) if tan is not None and np.array_equal(x, tan.x) else None
    x, tangent = _predict(tan, x, beta, state.des.d)
    if prev is not None:
        prev = (*prev, tangent)
    x, used, ok, fac = _descend(state, l, beta, tol, share, x, max_iter, ws0, exact)
    if fac is None:
        state.tangent.pop(l, None)
    else:
        state.tangent[l] = Tangent(beta, x.copy(), *fac, prev=prev)
    return x, used, ok


def _residual_form(des: Design, width: int, whole: bool = False) -> bool:
    """Whether a working set of ``width`` columns is solved in residual form: on the CPU,
    without a Gram matrix, when the data is shorter than ``RESIDUAL_RATIO`` times it; not
    when it is the ``whole`` problem and its Gram matrix costs at most ``GRAM_FLOPS`` (there
    Newton on the exact Hessian wins: n = d = 32, N = 1000, correlated tokens)."""
    N = des.A.shape[0]
    if des.gram or des.A.device.type != "cpu" or N >= RESIDUAL_RATIO * width:
        return False
    return not (whole and N * width**2 <= GRAM_FLOPS)


def _descend(state: BcdState, l: int, beta: float, tol: float, share: float, x: np.ndarray,
             max_iter: int, ws0: np.ndarray | None,
             exact: bool = True) -> tuple[np.ndarray, int, bool, tuple | None]:
    """:func:`solve_one`'s loop; also returns the last Newton factor ``(tokens, L)``."""
    des = state.des
    n, d = des.n, des.d
    x = x.copy()
    yy = float(des.yy[l])
    screened = np.zeros(n, dtype=bool)
    ws_size = 8
    used = 0
    fac = None
    aim = 0.5  # the Gram-form gap may be optimistic: aim below the target, confirm exactly
    W = None if ws0 is None else np.asarray(ws0, dtype=np.int64)
    ws = None  # the last working set
    while True:
        g, rr = _full(state, x, l)
        prim, gap, _ = _gap(x, g, rr, beta, d)
        target = share * tol * max(1.0, prim)
        if gap <= aim * target or used >= max_iter:
            if not des.gram:
                return x, used, gap <= target, fac
            if not exact:  # the caller confirms it, with the exact passes of many answers
                return x, used, gap <= aim * target, fac
            prim, gap_e, _ = _exact(state, x, l, beta)
            target = share * tol * max(1.0, prim)
            if gap_e <= target or used >= max_iter:
                return x, used, gap_e <= target, fac
            aim *= 0.1
        gn = np.sqrt((g.reshape(n, d) ** 2).sum(1))
        xn = np.sqrt((x.reshape(n, d) ** 2).sum(1))
        # gap-safe rule with the dual point s r (s <= beta / max ||g_k||)
        s = min(1.0, beta / gn.max()) if gn.max() > 0 else 1.0
        screened |= s * gn + math.sqrt(2.0 * max(gap, 0.0)) * state.sigma < beta
        if (xn[screened] > 0).any():
            x.reshape(n, d)[screened] = 0.0
            continue
        sup = xn > 0
        score = gn.copy()
        score[sup] = np.inf
        score[screened] = -np.inf
        free = int((~screened).sum())
        if free == 0:
            return x, used, True, None  # every token is provably zero and x = 0
        out = ~screened if ws is None else ~screened & ~np.isin(np.arange(n), ws)
        # every token outside the last working set meets its optimality condition (x = 0
        # there, ||g_k|| <= beta): x solves the problem once it solves the working set's,
        # so solve that one to the target, not a bigger one (growing by the support of a
        # loose inner answer formed Gram blocks of tokens that end at zero: N = 10^5,
        # n = d = 64). A working set of every token left keeps its rounds as before.
        keep = ws is not None and W is None and out.any() and not (gn[out] > beta).any()
        if not keep:
            ws_size = min(free, max(ws_size, 2 * int(sup.sum())))
            if W is not None:  # a warm start's set (e.g. the strong rule along a path)
                extra = np.setdiff1d(W, np.flatnonzero(screened))
                score[extra] = np.inf
                ws_size = min(free, max(ws_size, len(extra)))
                W = None
            # the first set: the support and tokens that violate their optimality condition
            # only (a token that meets it would cost its Gram columns for a likely zero:
            # i.i.d. tokens, 0.5 beta_max, 4 tokens instead of 8, the fit's Gram block a
            # quarter). Later sets: the ws_size best, violators or not. A token just inside
            # its condition can belong to the support once its neighbours move (correlated
            # tokens at N = 10^5, n = d = 64, 0.01 beta_max: violators only gave sets of 8,
            # 13, 32 and 53 tokens for 4 active, the ws_size best 8 and 16), and sets that
            # double cannot cycle
            take = ws_size if ws is not None else min(ws_size, max(1, int((score > beta).sum())))
            ws = np.sort(np.argsort(-score, kind="stable")[:take])
        cols = _cols(ws, d)
        xw = x[cols].copy()
        x[:] = 0.0
        resid = _residual_form(des, len(cols), whole=len(ws) == n)
        shrink = RESIDUAL_SHRINK if resid else INNER_SHRINK
        # a working set of every token left is the problem itself: solve it to the target
        # at once (solved to shrink x gap, its Anderson steps restarted every round)
        whole = len(ws) == free
        inner_target = aim * target if keep or whole or gap <= 10 * aim * target \
            else shrink * gap
        stop = NEWTON_STOP * math.sqrt(aim * target * max(1.0, prim))
        # the gap can be ~ sqrt(P (f - f*)) (the dual scale of the support rows): f - f*,
        # about the decrement, is negligible below (gap target)^2 / P
        eps = (aim * target) ** 2 / (100.0 * max(1.0, prim))
        if resid:
            AW, Lb = state.columns(ws)
            ep, f = _inner_r(AW, des.Y[:, l].numpy(), xw, beta, d, Lb, inner_target,
                             max(1, max_iter - used), stop, eps, final=aim * target)
        else:
            H, Lb = state.block(ws)
            ep, f = _inner(H, state.Atb[cols, l], xw, yy, beta, d, Lb, inner_target,
                           max(1, max_iter - used), stop, eps, final=aim * target)
        used += ep
        fac = None if f is None else (ws[f[0]], f[1])
        x[cols] = xw
        if not keep:
            ws_size = min(free, 2 * ws_size)


def bcd_design(A: torch.Tensor, Y: torch.Tensor, n: int, d: int, gram: bool) -> Design:
    """A :class:`Design` for this solver: ``G = A^T A`` only if ``gram`` (worth it along a
    path, or when N >> n d), and no step size (BCD needs none)."""
    import time

    t0 = time.perf_counter()
    G = AtY = None
    if gram:
        G = A.T @ A
        G = 0.5 * (G + G.T)
        AtY = A.T @ Y
    return Design(A, Y, n, d, float("nan"), (Y * Y).sum(0), G, AtY, time.perf_counter() - t0)


def solve_bcd(des: Design, beta: float, *, tol: float, max_iter: int,
              x0: torch.Tensor | None = None, state: BcdState | None = None,
              ws0: list[np.ndarray] | None = None,
              certify: bool = True) -> tuple[FistaOut, BcdState]:
    """Solve every output to a relative duality gap ``<= tol``; certified by an exact pass.

    ``max_iter`` bounds the inner epochs per output.  Returns the solver output (as
    :func:`attnlab.convex.fista.solve_fista`) and the reusable cache.

    ``certify=False`` (Gram mode only): stop at the Gram-form target without the exact
    pass; the output then has ``g`` in Gram form, ``r = s = None``, NaN primal and gap, and
    ``converged`` says only that the Gram-form target was met. :func:`certify_many` then
    certifies many such answers with one pass over the data (a path).
    """
    if not certify and not des.gram:
        raise ValueError("certify=False needs a design in Gram mode (bcd_design(..., gram=True))")
    state = BcdState.build(des) if state is None else state
    p, c = des.A.shape[1], des.Y.shape[1]
    X0 = np.zeros((p, c)) if x0 is None else x0.detach().cpu().numpy().astype(np.float64)
    xs = np.zeros((p, c))
    its, met = 0, True
    for l in range(c):
        # each output gets 1/c of the target: the sum stays <= tol max(1, P)
        xs[:, l], used, ok = solve_one(state, l, beta, tol, 1.0 / c, X0[:, l], max_iter,
                                       None if ws0 is None else ws0[l], exact=certify)
        its += used
        met = met and ok
    x = torch.from_numpy(xs).to(device=des.A.device, dtype=des.A.dtype)
    if not certify:
        g = np.stack([_full(state, xs[:, l], l)[0] for l in range(c)], axis=1)
        nan = float("nan")
        return FistaOut(x, None, torch.from_numpy(g).to(des.A.device), None, nan, nan, its,
                        met), state
    ex = state.exact
    if c == 1 and ex and ex[0] == 0 and np.array_equal(ex[1], xs[:, 0]):
        r, g = ex[2][:, None], ex[3][:, None]  # the exact pass of the last check, at this x
        if ex[4] is not None and ex[4][0] == beta:  # and its certificate, at this beta
            primal, gap, s1 = ex[4][1]
            s = torch.tensor([s1], dtype=des.A.dtype, device=des.A.device)
        else:
            primal, gap, s = _certificate(x, r, g, beta, des.n, des.d)
    else:
        r, g = exact_residual(des, x)
        primal, gap, s = _certificate(x, r, g, beta, des.n, des.d)
    converged = gap <= tol * max(1.0, abs(primal))
    return FistaOut(x, r, g, s, primal, gap, its, converged), state


def _certificate(x: torch.Tensor, r: torch.Tensor, g: torch.Tensor, beta: float, n: int,
                 d: int) -> tuple[float, float, torch.Tensor]:
    """Primal value, duality gap and dual scale ``s (c,)`` at ``x (p, c)`` from its exact
    pass (``r = Y - A x (N, c)``, ``g = A^T r (p, c)``), as :func:`gap_terms`; one output in
    NumPy (:func:`_gap`: torch's per-call cost dominates there)."""
    if x.shape[1] != 1:
        return gap_terms(x, g, (r * r).sum(0), beta, n, d)
    primal, gap, s1 = _gap(x[:, 0].cpu().numpy(), g[:, 0].cpu().numpy(),
                           float(r[:, 0] @ r[:, 0]), beta, d)
    return primal, gap, torch.tensor([s1], dtype=r.dtype, device=r.device)


CERT_NUMBERS = 1 << 23  # residual entries one chunk of certify_many holds (64 MB in float64)


def certify_many(des: Design, xs: list[torch.Tensor], betas: list[float]
                 ) -> Iterator[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, float, float]]]:
    """The exact passes of many answers at once: for each ``x (p, c)`` in ``xs`` (at the
    matching beta), ``r = Y - A x (N, c)``, ``g = A^T r (p, c)``, the dual scale ``s (c,)``,
    the primal value and the duality gap, as :func:`solve_bcd` certifies one answer.

    Yields one list per chunk of answers (at most ``CERT_NUMBERS`` residual entries; ``r``
    and ``g`` are views into the chunk's products), so a caller that is done with a chunk
    before asking for the next never holds more than one. Two matrix products per chunk
    instead of two matrix-vector products per answer: A is read once per chunk, not twice
    per answer (the 100 answers of the path target: one pass of a few ms instead of 100 of
    about 0.3 ms each).
    """
    N, c = des.Y.shape
    n, d = des.n, des.d
    k = max(1, CERT_NUMBERS // (N * c))
    for i in range(0, len(xs), k):
        chunk = xs[i:i + k]
        m = len(chunk)
        R = des.A @ torch.cat(chunk, dim=1)  # (N, c m): answer j in columns j c .. j c + c
        R.neg_().view(N, m, c).add_(des.Y[:, None, :])
        G = des.A.T @ R
        out = []
        for j, (x, beta) in enumerate(zip(chunk, betas[i:i + k], strict=True)):
            r, g = R[:, j * c:(j + 1) * c], G[:, j * c:(j + 1) * c]
            primal, gap, s = _certificate(x, r, g, beta, n, d)
            out.append((r, g, s, primal, gap))
        yield out
        del R, G, out, r, g  # freed before the next chunk's products are formed
