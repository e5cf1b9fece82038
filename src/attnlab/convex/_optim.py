"""A minimal Adam / gradient step (avoids ``torch.optim``'s one-off multi-second import of
``torch._dynamo``, which would dominate the sub-second solves of the chapters)."""

from __future__ import annotations

import torch


class Adam:
    """Adam (Kingma and Ba) with the usual defaults; ``gd=True`` gives plain gradient steps."""

    def __init__(self, params: list[torch.Tensor], lr: float, *, gd: bool = False,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
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
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            if p.grad is None:
                continue
            if self.gd:
                p.sub_(lr * p.grad)
                continue
            m.mul_(b1).add_(p.grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
            p.sub_(lr / c1 * m / ((v / c2).sqrt() + self.eps))
