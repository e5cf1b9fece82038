"""Working-set block coordinate descent with Newton polishing for the token group lasso.

Same problem and certificate as :mod:`attnlab.convex.fista` (``p = n d``, ``A (N, p)``,
per output ``l``)::

    min_x 1/2 ||A x - y||^2 + beta sum_k ||x_k||_2          (x_k: the d entries of token k)

Pieces (each standard; El Ghaoui et al. 2012, Fercoq et al. 2015, Massias et al. 2018):

- **Gap-safe screening.** With the feasible dual point ``lam = s r`` and gap ``G``, a token
  with ``s ||A_k^T r|| + sqrt(2 G) ||A_k||_2 < beta`` is zero at the optimum; it is dropped
  for the rest of the solve (``||A_k||_2`` is exact in Gram mode, else its Frobenius bound).
- **Working set** grown from the KKT violations: the support plus the tokens with the largest
  ``||A_k^T r||``, at least twice the support (celer's doubling).
- **Subproblem** on the working set ``W`` through its Gram block ``H = A_W^T A_W`` (sliced from
  ``G = A^T A`` when it exists, else computed for the new tokens only and cached), so an
  inner iteration costs ``O(|W|^2 d^2)`` whatever N is: block coordinate descent with the
  block step ``1/||A_k||_2^2`` (exact on isotropic blocks), then **Newton steps on the
  support** (the objective is smooth where no row vanishes; Armijo backtracking on the true
  objective keeps it monotone). Newton is what makes correlated tokens cheap: its iteration
  count does not grow with the conditioning, where first-order methods do.
- **Certificate**: every outer step evaluates the full duality gap with the residual rescaled
  to a feasible dual point (:func:`attnlab.convex.fista.gap_terms`); the answer is confirmed
  by an exact pass over the data (``r = y - A x``), never by the cancellation-prone Gram form.

The N-dependent work (``A^T r``, ``G x``, Gram columns) runs in torch on the design's device
(CPU or CUDA); the small working-set subproblem runs in NumPy on the CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .fista import Design, FistaOut, exact_residual, gap_terms

__all__ = ["solve_bcd", "bcd_design", "BcdState"]

NEWTON_MAX = 2048  # largest support (rows of the Newton system) solved directly


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
    exact: tuple = ()  # (l, x, r, A^T r) of the last exact pass, reused by the certificate

    @classmethod
    def build(cls, des: Design) -> BcdState:
        n, d = des.n, des.d
        if des.gram:
            blocks = torch.stack([des.G[k * d:(k + 1) * d, k * d:(k + 1) * d] for k in range(n)])
            sigma = torch.linalg.eigvalsh(blocks)[:, -1].clamp_min(0).sqrt()
            Atb = des.AtY
        else:
            # the Frobenius norm bounds the spectral norm: the rule stays safe
            sigma = torch.linalg.vector_norm(des.A.view(-1, n, d), dim=(0, 2))
            Atb = des.A.T @ des.Y
        return cls(des, sigma.cpu().numpy(), Atb.cpu().numpy())

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
            ncols = np.concatenate([np.arange(k * d, (k + 1) * d) for k in new])
            An = des.A[:, torch.as_tensor(ncols, device=des.A.device)]
            m0 = 0 if self.H is None else self.H.shape[0]
            H = np.empty((m0 + len(ncols),) * 2)
            if m0:
                H[:m0, :m0] = self.H
                old = np.concatenate([np.arange(k * d, (k + 1) * d) for k in self.tokens])
                cross = (des.A[:, torch.as_tensor(old, device=des.A.device)].T @ An).cpu().numpy()
                H[:m0, m0:] = cross
                H[m0:, :m0] = cross.T
            H[m0:, m0:] = (An.T @ An).cpu().numpy()
            self.H, self.tokens = H, self.tokens + new
        slot = {k: i for i, k in enumerate(self.tokens)}
        sl = np.concatenate([np.arange(slot[int(k)] * d, (slot[int(k)] + 1) * d) for k in W])
        return self.H[np.ix_(sl, sl)]


def _cols(W: np.ndarray, d: int) -> np.ndarray:
    return (np.asarray(W)[:, None] * d + np.arange(d)).ravel()


def _gap(x: np.ndarray, g: np.ndarray, rr: float, beta: float, d: int) -> tuple[float, float]:
    """Primal and duality gap of ``1/2 ||y - A x||^2 + beta ||x||_{2,1}`` (NumPy, one output)
    from ``g = A^T r`` and ``rr = ||r||^2``; the dual point is ``s r`` as in ``gap_terms``."""
    gmax = float(np.sqrt((g.reshape(-1, d) ** 2).sum(1)).max()) if g.size else 0.0
    xg = float(x @ g)
    s_max = beta / gmax if gmax > 0 else math.inf
    s_star = 1.0 + xg / rr if rr > 0 else s_max
    s = max(min(s_star, s_max), 0.0)
    if not math.isfinite(s):
        s = 0.0
    zn = float(np.sqrt((x.reshape(-1, d) ** 2).sum(1)).sum()) if x.size else 0.0
    return 0.5 * rr + beta * zn, 0.5 * (1.0 - s) ** 2 * rr + beta * zn - s * xg


def _bcd_epoch(H: np.ndarray, c: np.ndarray, x: np.ndarray, Hx: np.ndarray, beta: float,
               d: int, Lb: np.ndarray) -> None:
    """One cyclic pass of block proximal-gradient steps (step ``1/L_k``), in place."""
    for j in range(len(Lb)):
        L = Lb[j]
        if L <= 0.0:
            continue  # a zero token: its row stays 0
        a, b = j * d, (j + 1) * d
        xj = x[a:b]
        z = xj + (c[a:b] - Hx[a:b]) / L
        nz = math.sqrt(float(z @ z))
        thr = beta / L
        if nz <= thr:
            if not xj.any():
                continue
            new = np.zeros(d)
        else:
            new = z * (1.0 - thr / nz)
        delta = new - xj
        x[a:b] = new
        Hx += delta @ H[a:b]


def _solve_pd(M: np.ndarray, v: np.ndarray) -> np.ndarray | None:
    """``-M^{-1} v`` for a symmetric PSD ``M`` (Cholesky; least squares if singular).

    torch, not NumPy: torch's thread setting applies (an OpenBLAS pool of its own stalls on a
    shared machine)."""
    Mt, vt = torch.from_numpy(M), torch.from_numpy(v)[:, None]
    Lc, info = torch.linalg.cholesky_ex(Mt)
    if int(info) == 0:
        out = torch.cholesky_solve(vt, Lc)
    else:
        out = torch.linalg.lstsq(Mt, vt, driver="gelsd").solution
    out = -out[:, 0].numpy()
    return out if np.isfinite(out).all() else None


def _newton(H: np.ndarray, c: np.ndarray, x: np.ndarray, beta: float, d: int,
            steps: int = 20) -> int:
    """Damped Newton on the support of ``x`` (in place); returns the steps taken."""
    nrm = np.sqrt((x.reshape(-1, d) ** 2).sum(1))
    sup = np.flatnonzero(nrm > 0)
    k = len(sup)
    if k == 0 or k * d > NEWTON_MAX:
        return 0
    cols = _cols(sup, d)
    Hs, cs, xs = H[np.ix_(cols, cols)], c[cols], x[cols].copy()
    ar, eye = np.arange(k), np.eye(d)

    def f(v: np.ndarray) -> float:
        return float(0.5 * v @ (Hs @ v) - cs @ v
                     + beta * np.sqrt((v.reshape(k, d) ** 2).sum(1)).sum())

    fx = f(xs)
    done = 0
    for _ in range(steps):
        V = xs.reshape(k, d)
        nr = np.sqrt((V ** 2).sum(1))
        if (nr <= 0).any():
            break
        U = V / nr[:, None]
        grad = Hs @ xs - cs + beta * U.ravel()
        Hess = Hs.copy()
        Hess.reshape(k, d, k, d)[ar, :, ar, :] += (beta / nr)[:, None, None] * (
            eye - U[:, :, None] * U[:, None, :])
        dx = _solve_pd(Hess, grad)
        if dx is None:
            break
        gd = float(grad @ dx)
        if not gd < 0:  # converged to rounding: the gap is ~ sqrt(f - f*), so go all the way
            break
        t = 1.0
        while t > 1e-12:
            xn = xs + t * dx
            fn = f(xn)
            if fn <= fx + 1e-4 * t * gd:
                break
            if -gd < 1e-12 * max(1.0, abs(fx)):
                t = 0.0  # a full step that fails this close to the optimum: rounding
                break
            t *= 0.5
        if t <= 1e-12:
            break
        improve = fx - fn
        xs, fx = xn, fn
        done += 1
        if improve <= 1e-15 * max(1.0, abs(fx)) or -gd < 1e-24:
            break
    x[cols] = xs
    return done


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
           Lb: np.ndarray, target: float, max_epochs: int) -> int:
    """Solve the working-set problem to a duality gap ``<= target`` (in place); epochs used.

    BCD epochs; Newton on the support once it stops changing (at once when it is small);
    otherwise Anderson extrapolation every 5 epochs, kept only if it lowers the objective.
    """
    Hx = H @ x
    hist: list[np.ndarray] = []
    prev = None
    for ep in range(1, max_epochs + 1):
        _bcd_epoch(H, c, x, Hx, beta, d, Lb)
        sup = (x.reshape(-1, d) != 0).any(1)
        k = int(sup.sum())
        if k and k * d <= NEWTON_MAX and (k * d <= 256 or (prev is not None
                                                            and (sup == prev).all())):
            if _newton(H, c, x, beta, d):
                Hx = H @ x
                hist.clear()
        else:
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
        if _gap(x, g, rr, beta, d)[1] <= target:
            return ep
    return max_epochs


def _full(state: BcdState, x: np.ndarray, l: int) -> tuple[np.ndarray, float]:
    """``g = A^T (y - A x)`` and ``||y - A x||^2`` for output ``l`` (Gram form if available)."""
    des = state.des
    xt = torch.from_numpy(x).to(des.A.device)
    if des.gram:
        Gx = des.G @ xt
        g = des.AtY[:, l] - Gx
        rr = float(des.yy[l] - 2 * (des.AtY[:, l] @ xt) + xt @ Gx)
    else:
        r = des.Y[:, l] - des.A @ xt
        g = des.A.T @ r
        rr = float(r @ r)
        state.exact = (l, x.copy(), r, g)
    return g.cpu().numpy(), max(rr, 0.0)


def _exact(state: BcdState, x: np.ndarray, l: int, beta: float) -> tuple[float, float]:
    des = state.des
    xt = torch.from_numpy(x).to(des.A.device)
    r = des.Y[:, l] - des.A @ xt
    g = des.A.T @ r
    state.exact = (l, x.copy(), r, g)
    return _gap(x, g.cpu().numpy(), float(r @ r), beta, des.d)


def solve_one(state: BcdState, l: int, beta: float, tol: float, share: float,
              x: np.ndarray, max_iter: int,
              ws0: np.ndarray | None = None) -> tuple[np.ndarray, int, bool]:
    """Solve output ``l`` to an exact-pass duality gap ``<= share tol max(1, P)``.

    ``x (p,)`` is the warm start, ``ws0`` tokens to put in the first working set (e.g. the
    strong rule along a path).  Returns x, inner epochs used, and whether it is certified.
    """
    des = state.des
    n, d = des.n, des.d
    x = x.copy()
    yy = float(des.yy[l])
    screened = np.zeros(n, dtype=bool)
    ws_size = 8
    used = 0
    aim = 0.5  # the Gram-form gap may be optimistic: aim below the target, confirm exactly
    W = None if ws0 is None else np.asarray(ws0, dtype=np.int64)
    while True:
        g, rr = _full(state, x, l)
        prim, gap = _gap(x, g, rr, beta, d)
        target = share * tol * max(1.0, prim)
        if gap <= aim * target or used >= max_iter:
            if not des.gram:
                return x, used, gap <= target
            prim, gap_e = _exact(state, x, l, beta)
            target = share * tol * max(1.0, prim)
            if gap_e <= target or used >= max_iter:
                return x, used, gap_e <= target
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
            return x, used, True  # every token is provably zero and x = 0
        ws_size = min(free, max(ws_size, 2 * int(sup.sum())))
        if W is not None:  # a warm start's set (e.g. the strong rule along a path)
            extra = np.setdiff1d(W, np.flatnonzero(screened))
            score[extra] = np.inf
            ws_size = min(free, max(ws_size, len(extra)))
            W = None
        ws = np.sort(np.argsort(-score, kind="stable")[:ws_size])
        cols = _cols(ws, d)
        H, Lb = state.block(ws)
        c = state.Atb[cols, l]
        xw = x[cols].copy()
        x[:] = 0.0
        inner_target = aim * target if gap <= 10 * aim * target else 0.3 * gap
        used += _inner(H, c, xw, yy, beta, d, Lb, inner_target, max(1, max_iter - used))
        x[cols] = xw
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
              ws0: list[np.ndarray] | None = None) -> tuple[FistaOut, BcdState]:
    """Solve every output to a relative duality gap ``<= tol``; certified by an exact pass.

    ``max_iter`` bounds the inner epochs per output.  Returns the solver output (as
    :func:`attnlab.convex.fista.solve_fista`) and the reusable cache.
    """
    state = BcdState.build(des) if state is None else state
    p, c = des.A.shape[1], des.Y.shape[1]
    X0 = np.zeros((p, c)) if x0 is None else x0.detach().cpu().numpy().astype(np.float64)
    xs = np.zeros((p, c))
    its = 0
    for l in range(c):
        # each output gets 1/c of the target: the sum stays <= tol max(1, P)
        xs[:, l], used, _ = solve_one(state, l, beta, tol, 1.0 / c, X0[:, l], max_iter,
                                      None if ws0 is None else ws0[l])
        its += used
    x = torch.from_numpy(xs).to(device=des.A.device, dtype=des.A.dtype)
    ex = state.exact
    if c == 1 and ex and ex[0] == 0 and np.array_equal(ex[1], xs[:, 0]):
        r, g = ex[2][:, None], ex[3][:, None]  # the exact pass of the last check, at this x
    else:
        r, g = exact_residual(des, x)
    primal, gap, s = gap_terms(x, g, (r * r).sum(0), beta, des.n, des.d)
    converged = gap <= tol * max(1.0, abs(primal))
    return FistaOut(x, r, g, s, primal, gap, its, converged), state
