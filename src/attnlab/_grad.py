"""Loss-and-gradient backends of the trainer (private).

A backend owns the parameter tensors (in its own memory layout) and the optimizer state:

- ``evaluate() -> (f (M,), S (M, H, N, n, n))``: loss and attention at the current
  parameters; the gradient is computed and kept for the next two calls;
- ``grad_norm2() -> (M,)``: ``||grad f||^2`` over the trained parameters (logged steps);
- ``update(step)``: one GD or Adam step; ``export()``: standard-layout tensors
  ``W_Q, W_K (M,H,D,d)``, ``W_V (M,H,D,d_v)``, ``W_O``.

Backends:

- :class:`Autograd`: any model (``W_O``, mixed kernels); torch autograd.
- :class:`ByKernel`: a mixed-kernel batch without ``W_O`` as one closed-form backend per
  kernel.
- :class:`ClosedForm`: value dim 1, no ``W_O``, one kernel; closed-form gradients with
  batched matrix products (used for large ``n``).
- :class:`ClosedFormSmall` (the default for theory-sized models): the same maths in a
  "batch-last" layout ``(e, n, M, H, N)`` where the tiny axes are outer and the batch
  ``M H N`` is contiguous, so the ``n x n`` and ``n x d`` products become vectorized
  broadcasts instead of thousands of tiny GEMMs. Why: with n <= 8 and d <= 16, batched
  tiny GEMMs and softmaxes over rows of length 4 ran 3-10x slower than these broadcasts
  (benchmarks/README.md). With GD it also runs in
  *token space*: since ``Q = X W_Q`` and ``grad W_Q = X^T G``, a GD step is
  ``Q <- Q - eta G (X X^T)``, one GEMM with the token Gram matrix instead of two (the
  projection and the gradient); ``W = W_0 - X^T sum_t eta G_t`` is formed at export.
- :class:`ClosedFormWide` (wide GD sweeps with a shared ``X``, e.g. 64 models): the same
  maths in the layout ``(n, N, e, H, M)``, with loop contractions into preallocated
  buffers and in-place token-space updates (see its docstring and benchmarks/README.md).

Closed-form gradients, with ``rho = dF/dZ`` and ``A_hkl = rho_k S_hkl (u_hl - Z_hk)``
(softmax, row-normalized Gaussian) or ``A_hkl = rho_k S_hkl u_hl`` (plain Gaussian)::

    softmax   dq_k = sc sum_l A_kl k_l           dk_l = sc sum_k A_kl q_k
    gaussian  dq_k = -sc sum_l A_kl (q_k - k_l)  dk_l = sc sum_k A_kl (q_k - k_l)
    values    du_l = sum_k rho_k S_kl,   then dW = sum over tokens x^T (dq | dk | du)

The kernel-specific pieces (logits per layout, the own-vector term of the distance
derivative, pre-scaled keys) come from ``KERNEL_TABLE[kind].logits`` (``attnlab._logits``);
whether ``A`` is centered from ``KernelSpec.normalizes``. No backend branches on a name.

All backends are compared with each other and with independent references in the tests.
"""

from __future__ import annotations

import torch

from ._optim import Optimizer
from .kernels import KERNEL_TABLE, KERNELS, _project
from .model import MIXED, forward_core

# Above this many elements in the (M, H, d, n, n, N) broadcast, use the GEMM backend.
SMALL_MAX_NUMEL = 1 << 22
# From this many sequences x heads x models on, the loop-based ClosedFormWide is faster.
WIDE_MIN_BATCH = 512
WIDE_MIN_MODELS = 16
_PROJ = ("W_Q", "W_K", "W_V")


def _kernel_pieces(cfg):
    """The kernel's logit form and whether ``S = softmax(L)`` (values centered in ``A``)."""
    spec = KERNEL_TABLE[cfg["kind"]]
    return spec.logits, spec.normalizes(cfg["normalize"])


def _sq_norm(grads):
    return sum(g.square().flatten(1).sum(1) for g in grads)


class _StandardLayout:
    """Shared by the backends that keep ``W`` in the standard layout and the gradients of
    ``train_list`` in ``self.grads`` (set by ``evaluate``)."""

    def grad_norm2(self):
        return _sq_norm(self.grads)

    def update(self, step):
        self.opt.step(self.train_list, self.grads, step)

    def export(self):
        return {k: v.detach().clone() for k, v in self.W.items()}


class Autograd(_StandardLayout):
    def __init__(self, W, X, y, cfg, opt):
        self.W = {k: v.detach().clone() for k, v in W.items()}
        self.train_list = [self.W[k].requires_grad_(True) for k in cfg["trained"]]
        self.args = (X, cfg["kind"], cfg["kernel_ids"], cfg["scale"], cfg["normalize"],
                     cfg["pool"])
        self.y = y
        self.opt = Optimizer(self.train_list, *opt)

    def evaluate(self):
        out, S = forward_core(self.W, *self.args)
        f = 0.5 * (out - self.y).square().flatten(1).sum(1)  # (M,)
        self.grads = torch.autograd.grad(f.sum(), self.train_list)
        return f.detach(), S.detach()


def _residual(out, y, axis, n):
    """Loss f (M,) and rho = dF/dZ per token; ``axis``: the token axis of ``out`` when
    pooling (mean over tokens), else None."""
    if axis is not None:
        r = out.mean(axis) - y
        rho = (r / n).unsqueeze(axis).expand_as(out)
    else:
        r = out - y
        rho = r
    return 0.5 * r.square().flatten(1).sum(1), rho


class ClosedForm(_StandardLayout):
    """Closed form, standard layout: Q, K (M, H, N, n, d), S (M, H, N, n, n)."""

    def __init__(self, W, X, y, cfg, opt):
        self.W = {k: v.detach().clone() for k, v in W.items()}
        self.trained = cfg["trained"]
        self.train_list = [self.W[k] for k in self.trained]
        self.X, self.y, self.sc = X, y, cfg["scale"]
        self.logits, self.centered = _kernel_pieces(cfg)
        self.pool = cfg["pool"]
        self.n = X.shape[-2]
        self.cache = {nm: self._proj(nm) for nm in _PROJ if nm not in self.trained}
        self.opt = Optimizer(self.train_list, *opt)

    def _proj(self, nm):
        P = _project(self.X, self.W[nm])  # (M, H, N, n, e)
        if nm == "W_V":
            return P.squeeze(-1)
        if nm == "W_K" and self.logits.prescale_keys:
            return P * self.sc  # pre-scaled keys: logits = Q @ Ks^T
        return P

    def _xt(self, G):
        """sum over tokens of x_ik^T G_hik: G (M, H, N, n, e) -> (M, H, D, e)."""
        if self.X.ndim == 3:
            return torch.einsum("ind,mhine->mhde", self.X, G)
        return torch.einsum("mind,mhine->mhde", self.X, G)

    @torch.no_grad()
    def evaluate(self):
        Q, K, u = (self.cache[nm] if nm in self.cache else self._proj(nm) for nm in _PROJ)
        L = self.logits.gemm(Q, K, self.sc)
        S = torch.softmax(L, dim=-1) if self.centered else L.exp_()
        Zh = (S @ u.unsqueeze(-1)).squeeze(-1)  # (M, H, N, n)
        f, rho = _residual(Zh.sum(1), self.y, -1 if self.pool else None, self.n)
        rho = rho.unsqueeze(1)  # (M, 1, N, n): same for every head
        grads = []
        if "W_Q" in self.trained or "W_K" in self.trained:
            if self.centered:
                A = S * (u.unsqueeze(-2) - Zh.unsqueeze(-1))
            else:
                A = S * u.unsqueeze(-2)
            A.mul_(rho.unsqueeze(-1))
            At = A.transpose(-1, -2)
            if "W_Q" in self.trained:
                gQ = self.logits.finish_q(A @ K, lambda: A.sum(-1, keepdim=True), Q, self.sc)
                grads.append(self._xt(gQ))
            if "W_K" in self.trained:
                gK = self.logits.finish_k(At @ Q, lambda: At.sum(-1, keepdim=True), K, self.sc)
                grads.append(self._xt(gK))
        if "W_V" in self.trained:
            grads.append(self._xt(S.transpose(-1, -2) @ rho.unsqueeze(-1)))
        self.grads = grads
        return f, S


def _to_e(P):
    """(M, H, e, n, N) <-> (e, n, M, H, N), contiguous (the permutation is an involution)."""
    return P.permute(2, 3, 0, 1, 4).contiguous()


class ClosedFormSmall:
    """Closed form, batch-last layout, optionally in token space (see the module doc).

    Tokens are reordered ``(k, i)`` (token, then sequence): one GEMM gives a projection
    as ``P (M, H, e, n, N)``; weights are stored transposed ``(M, H, e, D)``. The
    elementwise work runs in the layout ``(e, n, M, H, N)`` (one copy each way), so the
    tiny axes are outer and every broadcast has a long contiguous inner loop of
    ``M H N`` elements. ``S`` is ``(n_k, n_j, M, H, N)`` there.
    """

    def __init__(self, W, X, y, cfg, opt):
        self.sc = cfg["scale"]
        self.logits, self.centered = _kernel_pieces(cfg)
        self.pool, self.trained = cfg["pool"], cfg["trained"]
        self.N, self.n, D = X.shape[-3], X.shape[-2], X.shape[-1]
        self.M, self.H = W["W_Q"].shape[:2]
        # tokens as (nN, D) rows ordered (k, i); and the transpose for projections
        Xt = X.transpose(-3, -2).reshape(*X.shape[:-3], self.n * self.N, D)
        self.Xr = Xt.contiguous()
        self.Xc = Xt.transpose(-1, -2).contiguous()  # (D, nN) or (M, D, nN)
        self.y = y if self.pool else y.permute(2, 0, 1).contiguous()  # (M, N) / (n, M, N)
        # clone: with d_v = 1 the transpose of W_V is already contiguous, and .contiguous()
        # would return the caller's storage for the optimizer to update in place
        self.T = {k: W[k].detach().transpose(-1, -2).clone(memory_format=torch.contiguous_format)
                  for k in _PROJ}
        # token space: one (nN x nN) GEMM per step instead of two (nN x D) ones
        self.tokenspace = opt[1] == "gd" and self.n * self.N <= 2 * D
        self.P = {nm: self._proj_raw(nm) for nm in _PROJ}  # current projections
        self.E = {nm: _to_e(self.P[nm]) for nm in _PROJ if nm not in self.trained}
        if self.logits.prescale_keys and "W_K" in self.E:
            self.E["W_K"].mul_(self.sc)  # frozen keys pre-scaled: logits = Q . Ks
        if self.tokenspace:
            self.gram = self.Xr @ self.Xc  # (nN, nN) or (M, nN, nN)
            self.acc = {nm: torch.zeros_like(self.P[nm]) for nm in self.trained}
            self.lr_views = [opt[0].view(-1, 1, 1, 1, 1) for _ in self.trained]
        else:
            self.opt = Optimizer([self.T[nm] for nm in self.trained], *opt)

    def _proj_raw(self, nm):
        Wt = self.T[nm]  # (M, H, e, D)
        M, H, e, D = Wt.shape
        if self.Xc.ndim == 2:
            P = Wt.reshape(M * H * e, D) @ self.Xc
        else:
            P = Wt.reshape(M, H * e, D) @ self.Xc
        return P.view(M, H, e, self.n, self.N)

    def _xt(self, G):
        """G (M, H, e, n, N) -> sum over tokens of G x^T: (M, H, e, D)."""
        M, H, e = G.shape[:3]
        if self.Xr.ndim == 2:
            return (G.reshape(M * H * e, -1) @ self.Xr).view(M, H, e, -1)
        return (G.reshape(M, H * e, -1) @ self.Xr).view(M, H, e, -1)

    def _gram(self, G):
        """G (M, H, e, n, N) -> G (X X^T) in the same shape."""
        M, H, e = G.shape[:3]
        if self.gram.ndim == 2:
            return (G.reshape(M * H * e, -1) @ self.gram).view(G.shape)
        return (G.reshape(M, H * e, -1) @ self.gram).view(G.shape)

    def _current(self, nm):
        if nm in self.E:
            return self.E[nm]
        if not self.tokenspace:  # weights changed: re-project
            self.P[nm] = self._proj_raw(nm)
        E = _to_e(self.P[nm])
        if nm == "W_K" and self.logits.prescale_keys:
            E.mul_(self.sc)
        return E

    @torch.no_grad()
    def evaluate(self):
        Q, K, u = (self._current(nm) for nm in _PROJ)  # (e, n, M, H, N)
        u = u[0]  # (n_j, M, H, N)
        Qb, Kb = Q.unsqueeze(2), K.unsqueeze(1)  # (d, n_k, 1, ...), (d, 1, n_j, ...)
        L = self.logits.bcast(Qb, Kb, self.sc)  # (n_k, n_j, M, H, N)
        S = torch.softmax(L, dim=1) if self.centered else L.exp_()
        ub = u.unsqueeze(0)  # (1, n_j, M, H, N)
        Zh = (S * ub).sum(1)  # (n_k, M, H, N)
        out = Zh.sum(2)  # (n, M, N)
        if self.pool:
            r = out.mean(0) - self.y  # (M, N)
            f = 0.5 * r.square().sum(1)
            rho = (r / self.n).unsqueeze(0).expand_as(out)
        else:
            r = out - self.y
            f = 0.5 * r.square().sum((0, 2))
            rho = r
        rho = rho.unsqueeze(1).unsqueeze(3)  # (n_k, 1, M, 1, N)
        grads = []
        if "W_Q" in self.trained or "W_K" in self.trained:
            if self.centered:
                A = (ub - Zh.unsqueeze(1)).mul_(S)
            else:
                A = S * ub
            A.mul_(rho)
            Ab = A.unsqueeze(0)  # (1, n_k, n_j, M, H, N)
            if "W_Q" in self.trained:
                gQ = (Ab * Kb).sum(2)  # (d, n_k, M, H, N)
                gQ = self.logits.finish_q(gQ, lambda: A.sum(1).unsqueeze(0), Q, self.sc)
                grads.append(_to_e(gQ))
            if "W_K" in self.trained:
                gK = (Ab * Qb).sum(1)  # (d, n_j, M, H, N)
                gK = self.logits.finish_k(gK, lambda: A.sum(0).unsqueeze(0), K, self.sc)
                grads.append(_to_e(gK))
        if "W_V" in self.trained:
            grads.append(_to_e((S * rho).sum(0).unsqueeze(0)))  # (1, n_j, M, H, N)
        self.tok_grads, self.gram_grads, self.w_grads = grads, None, None
        return f, S.permute(2, 3, 4, 0, 1)

    def _weight_grads(self):
        if self.w_grads is None:
            self.w_grads = [self._xt(g) for g in self.tok_grads]
        return self.w_grads

    @torch.no_grad()
    def grad_norm2(self):
        if not self.tokenspace:
            return _sq_norm(self._weight_grads())
        # ||X^T G||^2 = <G, G X X^T>; keep G X X^T for the update
        self.gram_grads = [self._gram(g) for g in self.tok_grads]
        return sum((g * gg).flatten(1).sum(1)
                   for g, gg in zip(self.tok_grads, self.gram_grads, strict=True))

    @torch.no_grad()
    def update(self, step):
        if not self.tokenspace:
            self.opt.step([self.T[nm] for nm in self.trained], self._weight_grads(), step)
            return
        for i, nm in enumerate(self.trained):
            g, lr = self.tok_grads[i], self.lr_views[i]
            step_g = lr * g
            self.acc[nm].add_(step_g)
            P = self.P[nm]
            if self.gram_grads is not None:
                P.sub_(lr * self.gram_grads[i])
            elif self.gram.ndim == 2:
                P.view(-1, P.shape[-2] * P.shape[-1]).addmm_(
                    step_g.view(-1, P.shape[-2] * P.shape[-1]), self.gram, alpha=-1)
            else:
                P.view(self.M, -1, self.n * self.N).baddbmm_(
                    step_g.view(self.M, -1, self.n * self.N), self.gram, alpha=-1)

    def export(self):
        out = {}
        for nm in _PROJ:
            Wt = self.T[nm]
            if self.tokenspace and nm in self.trained:
                Wt = Wt - self._xt(self.acc[nm])
            out[nm] = Wt.detach().transpose(-1, -2).contiguous()
        return out


class ClosedFormWide:
    """Closed form for wide batches (many models, shared ``X``, GD in token space).

    The layout is ``(n, N, e, H, M)``: tokens ``(k, i)`` outer, then the head (or value)
    dim ``e``, then heads and models, so that

    - the projections ``P (nN, e H M)`` are updated in place by the token-space GD step
      ``P -= (X X^T) eta G``, one GEMM with the Gram matrix on the left, and the
      elementwise work reads them directly: no layout copies per step;
    - every elementwise operation has a contiguous inner run of ``H M`` elements, and the
      sum over heads is over a non-inner axis (a reduction over an inner axis of size
      ``H = 2`` ran 13x slower);
    - every contraction over a tiny axis (``d`` or a token axis) is a short loop of
      in-place ``addcmul_`` into buffers allocated once, reading views made once in
      ``__init__``, instead of one broadcast that materializes a ``(d, n, n, ...)``
      temporary (at M = 64 those 2 MB temporaries fell out of cache);
    - the learning rate is folded into ``rho``, so the gradients come out as steps
      ``eta G`` (``grad_norm2`` divides it out again).

    For one model the loops' per-operation overhead costs more than they save and the
    inner runs are short, so ``make_backend`` uses this class only for wide batches
    (``WIDE_MIN_BATCH``, ``WIDE_MIN_MODELS``; benchmarks/README.md).
    """

    def __init__(self, W, X, y, cfg, opt):
        if X.ndim != 3 or opt[1] != "gd":
            raise ValueError("ClosedFormWide needs a shared X (N, n, D) and optimizer 'gd'")
        self.sc = cfg["scale"]
        self.logits, self.centered = _kernel_pieces(cfg)
        self.pool, self.trained = cfg["pool"], cfg["trained"]
        N, n, D = X.shape
        M, H = W["W_Q"].shape[:2]
        self.N, self.n, self.M, self.H = N, n, M, H
        self.Xr = X.transpose(0, 1).reshape(n * N, D)  # tokens as rows ordered (k, i)
        self.gram = self.Xr @ self.Xr.T  # (nN, nN)
        self.W0 = {k: W[k].detach().clone() for k in _PROJ}  # (M, H, D, e)
        # P[nm] (n, N, e, H, M) = X W, kept current by the token-space updates
        self.P = {k: self._project(self.W0[k]) for k in _PROJ}
        self.acc = {k: torch.zeros_like(self.P[k]) for k in self.trained}
        self.y = y.t().contiguous() if self.pool else y.permute(2, 1, 0).contiguous()
        self.lr = opt[0]  # (M,)
        like = self.P["W_Q"]
        self.L, self.tmp, self.A = (like.new_empty((n, n, N, H, M)) for _ in range(3))
        self.g = {k: torch.empty_like(self.P[k]) for k in self.trained}
        Q, K = self.P["W_Q"], self.P["W_K"]
        if self.logits.prescale_keys:  # logits = Q . Ks with pre-scaled keys
            self.Ks = K * self.sc if "W_K" not in self.trained else torch.empty_like(K)
            K = self.Ks
        self.K = K
        d = Q.shape[2]
        self.q_k = [Q[:, :, a].unsqueeze(1) for a in range(d)]  # (n_k, 1, N, H, M)
        self.k_j = [K[:, :, a].unsqueeze(0) for a in range(d)]  # (1, n_j, N, H, M)
        self.A_j = [self.A[:, j].unsqueeze(2) for j in range(n)]  # (n_k, N, 1, H, M)
        self.A_k = [self.A[k].unsqueeze(2) for k in range(n)]  # (n_j, N, 1, H, M)
        self.K_j = [K[j].unsqueeze(0) for j in range(n)]  # (1, N, d, H, M)
        self.Q_k = [Q[k].unsqueeze(0) for k in range(n)]  # (1, N, d, H, M)

    def _project(self, W):
        """W (M, H, D, e) -> X W in the layout (n, N, e, H, M)."""
        M, H, D, e = W.shape
        Wl = W.permute(2, 3, 1, 0).reshape(D, e * H * M)
        return (self.Xr @ Wl).view(self.n, self.N, e, H, M)

    @torch.no_grad()
    def evaluate(self):
        if self.logits.prescale_keys and "W_K" in self.trained:
            torch.mul(self.P["W_K"], self.sc, out=self.Ks)
        Q, K, u = self.P["W_Q"], self.K, self.P["W_V"][:, :, 0]  # u (n_j, N, H, M)
        S = self.logits.loop(self.q_k, self.k_j, self.sc, self.L, self.tmp)  # (n_k, n_j, ...)
        if self.centered:  # row softmax over dim 1, in place
            S.sub_(S.amax(1, keepdim=True)).exp_()
            S.div_(S.sum(1, keepdim=True))
        else:
            S.exp_()
        ub = u.unsqueeze(0)  # (1, n_j, N, H, M)
        Zh = torch.mul(S, ub, out=self.tmp).sum(1)  # (n_k, N, H, M)
        out = Zh.sum(2)  # (n, N, M)
        if self.pool:
            r = out.mean(0) - self.y  # (N, M)
            f = 0.5 * r.square().sum(0)
            rho = (r * (self.lr / self.n)).expand_as(out)
        else:
            r = out - self.y
            f = 0.5 * r.square().sum((0, 1))
            rho = r * self.lr
        rho = rho.unsqueeze(2).unsqueeze(1)  # (n_k, 1, N, 1, M); carries eta
        grads = []
        if "W_Q" in self.trained or "W_K" in self.trained:
            A = self.A
            if self.centered:
                torch.sub(ub, Zh.unsqueeze(1), out=A).mul_(S)
            else:
                torch.mul(S, ub, out=A)
            A.mul_(rho)
            if "W_Q" in self.trained:  # gQ[k] = sum_j A[k, j] k_j
                gQ = torch.mul(self.A_j[0], self.K_j[0], out=self.g["W_Q"])
                for a, k in zip(self.A_j[1:], self.K_j[1:], strict=True):
                    gQ.addcmul_(a, k)
                grads.append(self.logits.finish_q(gQ, lambda: A.sum(1).unsqueeze(2), Q, self.sc))
            if "W_K" in self.trained:  # gK[j] = sum_k A[k, j] q_k
                gK = torch.mul(self.A_k[0], self.Q_k[0], out=self.g["W_K"])
                for a, q in zip(self.A_k[1:], self.Q_k[1:], strict=True):
                    gK.addcmul_(a, q)
                grads.append(self.logits.finish_k(gK, lambda: A.sum(0).unsqueeze(2), K, self.sc))
        if "W_V" in self.trained:
            gV = self.g["W_V"]
            torch.sum(torch.mul(S, rho, out=self.tmp), 0, out=gV.squeeze(2))
            grads.append(gV)
        self.tok_grads, self.gram_grads = grads, None
        return f, S.permute(4, 3, 2, 0, 1)

    def _flat(self, g):
        return g.view(self.n * self.N, -1)  # (nN, e H M)

    @torch.no_grad()
    def grad_norm2(self):
        # ||X^T G||^2 = <G, X X^T G>; keep X X^T G for the update; steps -> gradients
        self.gram_grads = [(self.gram @ self._flat(g)).view(g.shape) for g in self.tok_grads]
        g2 = sum((g * gg).sum((0, 1, 2, 3)) for g, gg in
                 zip(self.tok_grads, self.gram_grads, strict=True))
        return g2 / self.lr.square()

    @torch.no_grad()
    def update(self, step):
        for i, nm in enumerate(self.trained):  # tok_grads are already eta G
            g, P = self.tok_grads[i], self.P[nm]
            self.acc[nm].add_(g)
            if self.gram_grads is not None:
                P.sub_(self.gram_grads[i])
            else:
                self._flat(P).addmm_(self.gram, self._flat(g), alpha=-1)

    def export(self):
        out = {}
        for nm in _PROJ:
            W = self.W0[nm]
            if nm in self.trained:  # W = W_0 - X^T sum_t eta G_t
                acc = self.acc[nm]
                dW = (self.Xr.T @ self._flat(acc)).view(-1, *acc.shape[2:])  # (D, e, H, M)
                W = W - dW.permute(3, 2, 0, 1)
            out[nm] = W.contiguous()
        return out


class ByKernel:
    """A mixed-kernel batch as one closed-form backend per kernel (models are independent,
    so grouping changes nothing but speed); results in the original order."""

    def __init__(self, W, X, y, cfg, opt, force):
        ids = cfg["kernel_ids"].to(W["W_Q"].device)
        groups = [(kernel, torch.nonzero(ids == k).squeeze(1))
                  for k, kernel in enumerate(KERNELS)]
        groups = [(kernel, idx) for kernel, idx in groups if idx.numel()]
        self.order = torch.argsort(torch.cat([idx for _, idx in groups]))
        self.parts = []
        for kind, idx in groups:
            sub = lambda t, idx=idx: t.index_select(0, idx)
            Xs = sub(X) if X.ndim == 4 else X
            lr, *rest = opt
            self.parts.append(make_backend({k: sub(v) for k, v in W.items()}, Xs, sub(y),
                                           dict(cfg, kind=kind, kernel_ids=None),
                                           (sub(lr), *rest), force))

    def _cat(self, ts):
        return torch.cat(ts).index_select(0, self.order)

    def evaluate(self):
        fs, Ss = zip(*(b.evaluate() for b in self.parts), strict=True)
        return self._cat(fs), self._cat(Ss)

    def grad_norm2(self):
        return self._cat([b.grad_norm2() for b in self.parts])

    def update(self, step):
        for b in self.parts:
            b.update(step)

    def export(self):
        outs = [b.export() for b in self.parts]
        return {k: self._cat([o[k] for o in outs]) for k in outs[0]}


BACKENDS = {"autograd": Autograd, "closed": ClosedForm, "closed_small": ClosedFormSmall,
            "closed_wide": ClosedFormWide}


def make_backend(W, X, y, cfg, opt, force=None):
    """Pick the fastest backend that supports the model (``force`` overrides).

    ``cfg``: dict with kind (a kernel name or ``MIXED``), kernel_ids (``(M,)`` indices into
    ``KERNELS`` for a mixed batch, else None), scale, normalize, pool, trained; ``opt``: (lr, name,
    betas, eps).
    """
    if force == "autograd" or W.get("W_O") is not None:
        return Autograd(W, X, y, cfg, opt)
    if cfg["kind"] == MIXED:
        return ByKernel(W, X, y, cfg, opt, force)
    if force is None:
        M, H, _, d = W["W_Q"].shape
        N, n = X.shape[-3], X.shape[-2]
        if M * H * d * n * n * N > SMALL_MAX_NUMEL:
            force = "closed"
        else:
            wide = (M * H * N >= WIDE_MIN_BATCH and M >= WIDE_MIN_MODELS and X.ndim == 3
                    and opt[1] == "gd")
            force = "closed_wide" if wide else "closed_small"
    return BACKENDS[force](W, X, y, cfg, opt)
