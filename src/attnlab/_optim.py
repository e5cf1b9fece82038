"""The one Adam / gradient-step implementation of attnlab (private).

Hand-written rather than ``torch.optim``: importing ``torch.optim`` pulls in
``torch._dynamo`` once (seconds), which would dominate the sub-second solves of the
chapters, and the trainer needs a per-model learning rate over a leading model axis.

- :func:`adam_update_`: one Adam step (Kingma and Ba) on one tensor, in place;
- :class:`Optimizer`: the trainer's full-batch GD or Adam, gradients passed in;
- :class:`Adam`: the same update for tensors with ``.grad`` (the convex solvers).
"""

from __future__ import annotations

import torch

from ._validate import check_adam, check_real

__all__ = ["adam_update_", "Optimizer", "Adam"]


@torch.no_grad()
def adam_update_(p: torch.Tensor, g: torch.Tensor, m1: torch.Tensor, m2: torch.Tensor,
                 lr: float | torch.Tensor, step: int, betas: tuple[float, float],
                 eps: float, *, fold_bias: bool = False) -> None:
    """One Adam step on ``p`` with gradient ``g``; ``m1, m2``: the moment buffers (updated
    in place); ``step`` counts from 0 (bias corrections ``c = 1 - beta^(step + 1)``); ``lr``
    a float or a tensor broadcastable against ``p`` (one rate per model).

    ``fold_bias``: divide the step size by ``c1`` (``(lr / c1) m1``, Kingma and Ba's
    "efficient" form) instead of the moment (``lr (m1 / c1)``). Equal in exact arithmetic;
    each caller keeps the rounding its stored results were computed with (the trainer the
    moment form, the convex solvers the folded one).
    """
    b1, b2 = betas
    c1, c2 = 1 - b1 ** (step + 1), 1 - b2 ** (step + 1)
    m1.mul_(b1).add_(g, alpha=1 - b1)
    m2.mul_(b2).addcmul_(g, g, value=1 - b2)
    num = lr / c1 * m1 if fold_bias else lr * (m1 / c1)
    p.sub_(num / ((m2 / c2).sqrt_().add_(eps)))


class Optimizer:
    """Full-batch GD or Adam with a per-model learning rate ``lr`` (M,) over the leading
    axis of every tensor; ``step(tensors, grads, step)`` updates in place."""

    def __init__(self, tensors, lr, name, betas, eps):
        self.lr_views = [lr.view((-1,) + (1,) * (t.ndim - 1)) for t in tensors]
        self.name, self.betas, self.eps = name, betas, eps
        if name == "adam":
            self.m1 = [torch.zeros_like(t) for t in tensors]
            self.m2 = [torch.zeros_like(t) for t in tensors]

    @torch.no_grad()
    def step(self, tensors, grads, step):
        if self.name == "gd":
            for t, g, lr in zip(tensors, grads, self.lr_views, strict=True):
                t.sub_(lr * g)
            return
        for t, g, lr, m1, m2 in zip(tensors, grads, self.lr_views, self.m1, self.m2,
                                    strict=True):
            adam_update_(t, g, m1, m2, lr, step, self.betas, self.eps)


class Adam:
    """Adam with the usual defaults on tensors with ``.grad``; ``gd=True`` gives plain
    gradient steps. ``step(lr)`` may override the rate (schedules)."""

    def __init__(self, params: list[torch.Tensor], lr: float, *, gd: bool = False,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        betas, eps = check_adam(betas, eps)
        lr = check_real("lr", lr, min=0.0, strict_min=True)
        self.params, self.lr, self.gd, self.betas, self.eps = params, lr, gd, betas, eps
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, lr: float | None = None) -> None:
        lr = self.lr if lr is None else lr
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            if p.grad is None:
                continue
            if self.gd:
                p.sub_(lr * p.grad)
            else:
                adam_update_(p, p.grad, m, v, lr, self.t, self.betas, self.eps,
                             fold_bias=True)
        self.t += 1
