"""Logit forms of the attention kernels and the pieces of their derivatives (private).

A kernel's attention is ``S = act(L)`` with logits ``L[k, j] = l(q_k, k_j)`` and ``act`` the
row softmax (row-normalized kernels) or ``exp``. The closed-form gradients need only

- the logits, in the three layouts the backends use (``gemm``: standard ``(..., n, d)``;
  ``bcast``: batch-last ``(d, n, ...)``; ``loop``: lists of views, one per head coordinate);
- the derivative pieces: with weights ``A[k, j] = dF/dL[k, j]``,
  ``dF/dq_k = sum_j A_kj dl/dq_k`` and ``dF/dk_j = sum_k A_kj dl/dk_j``.

Both forms here have derivatives "``sum_j A_kj k_j`` minus an optional own-vector term", so
the backends compute the contraction ``sum_j A_kj k_j`` (or ``sum_k A_kj q_k``) in their own
layout and hand it to :meth:`LogitForm.finish_q` / :meth:`LogitForm.finish_k`. A kernel with
other logits gets a new :class:`LogitForm` here and one row in ``kernels.KERNEL_TABLE``.

The operation order of every method is part of the contract: the trainer's results are
bit-identical across refactorings (tested against stored runs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

__all__ = ["LogitForm", "DotLogits", "DistanceLogits", "DOT", "DISTANCE"]

# Above this many elements the squared distance uses the clamped expansion instead of the
# (exact but memory-hungry) broadcast difference q_k - k_j.
_DIFF_MAX_NUMEL = 1 << 24


def _sqdist_t(Q: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """||q_k - k_j||^2, (..., n, n); difference form (no cancellation) when it fits."""
    n_q, n_k, d = Q.shape[-2], K.shape[-2], Q.shape[-1]
    batch = Q.numel() // max(n_q * d, 1)
    if batch * n_q * n_k * d <= _DIFF_MAX_NUMEL:
        return (Q.unsqueeze(-2) - K.unsqueeze(-3)).square().sum(-1)
    q2 = Q.square().sum(-1, keepdim=True)
    k2 = K.square().sum(-1).unsqueeze(-2)
    return (q2 + k2 - 2.0 * (Q @ K.transpose(-1, -2))).clamp_min(0.0)


class LogitForm:
    """Logits ``L = l(q_k, k_j)`` (with the kernel's ``scale``) and their derivative pieces.

    ``prescale_keys``: the logits are bilinear, so the backends store the keys multiplied
    by ``scale`` (then ``logits = Q . Ks`` and ``sum_j A_kj ks_j`` already carries it).
    """

    prescale_keys: bool = False

    def logits(self, Q: torch.Tensor, K: torch.Tensor, scale: float) -> torch.Tensor:
        """Standard layout, unscaled keys: ``Q, K (..., n, d) -> L (..., n, n)``."""
        raise NotImplementedError

    def gemm(self, Q: torch.Tensor, K: torch.Tensor, scale: float) -> torch.Tensor:
        """Standard layout, keys as the backends store them (see ``prescale_keys``)."""
        raise NotImplementedError

    def bcast(self, Qb: torch.Tensor, Kb: torch.Tensor, scale: float) -> torch.Tensor:
        """Batch-last: ``Qb (d, n_k, 1, ...)``, ``Kb (d, 1, n_j, ...) -> L (n_k, n_j, ...)``."""
        raise NotImplementedError

    def loop(self, qs: Sequence[torch.Tensor], ks: Sequence[torch.Tensor], scale: float,
             out: torch.Tensor, tmp: torch.Tensor) -> torch.Tensor:
        """Logits into ``out`` from per-coordinate views ``qs[a], ks[a]`` (``tmp``: scratch)."""
        raise NotImplementedError

    def finish_q(self, g: torch.Tensor, rowsum: Callable[[], torch.Tensor], Q: torch.Tensor,
                 scale: float) -> torch.Tensor:
        """``dF/dq_k`` from ``g = sum_j A_kj k_j`` (stored keys); may work in place on ``g``.

        ``rowsum()`` gives ``sum_j A_kj`` broadcastable against ``Q`` (computed on demand)."""
        raise NotImplementedError

    def finish_k(self, g: torch.Tensor, colsum: Callable[[], torch.Tensor], K: torch.Tensor,
                 scale: float) -> torch.Tensor:
        """``dF/dk_j`` from ``g = sum_k A_kj q_k``; may work in place on ``g``.

        ``colsum()`` gives ``sum_k A_kj`` broadcastable against ``K`` (stored keys)."""
        raise NotImplementedError

    def query_grad(self, A: torch.Tensor, Q: torch.Tensor, K: torch.Tensor,
                   scale: float) -> torch.Tensor:
        """Standard layout, unscaled keys: ``sum_j A_kj dl/dq_k`` ``(..., n, d)``."""
        raise NotImplementedError


class DotLogits(LogitForm):
    """``l(q, k) = scale <q, k>``: ``dl/dq = scale k``, ``dl/dk = scale q``."""

    prescale_keys = True

    def logits(self, Q, K, scale):
        return scale * (Q @ K.transpose(-1, -2))

    def gemm(self, Q, K, scale):
        return Q @ K.transpose(-1, -2)  # K pre-scaled

    def bcast(self, Qb, Kb, scale):
        return (Qb * Kb).sum(0)  # K pre-scaled

    def loop(self, qs, ks, scale, out, tmp):
        torch.mul(qs[0], ks[0], out=out)
        for q, k in zip(qs[1:], ks[1:], strict=True):
            out.addcmul_(q, k)
        return out

    def finish_q(self, g, rowsum, Q, scale):
        return g  # the pre-scaled keys carry the scale

    def finish_k(self, g, colsum, K, scale):
        return g.mul_(scale)

    def query_grad(self, A, Q, K, scale):
        return scale * (A @ K)


class DistanceLogits(LogitForm):
    """``l(q, k) = -scale ||q - k||^2 / 2``: ``dl/dq = scale (k - q)``,
    ``dl/dk = scale (q - k)``."""

    def logits(self, Q, K, scale):
        return (-0.5 * scale) * _sqdist_t(Q, K)

    def gemm(self, Q, K, scale):
        return _sqdist_t(Q, K).mul_(-0.5 * scale)

    def bcast(self, Qb, Kb, scale):
        return (Qb - Kb).square_().sum(0).mul_(-0.5 * scale)

    def loop(self, qs, ks, scale, out, tmp):
        out.zero_()
        for q, k in zip(qs, ks, strict=True):
            # differences first: no cancellation as in |q|^2 + |k|^2 - 2 q.k
            torch.sub(q, k, out=tmp)
            out.addcmul_(tmp, tmp)
        return out.mul_(-0.5 * scale)

    def finish_q(self, g, rowsum, Q, scale):
        return g.sub_(rowsum() * Q).mul_(scale)

    def finish_k(self, g, colsum, K, scale):
        return g.sub_(colsum() * K).mul_(scale)

    def query_grad(self, A, Q, K, scale):
        # sum_j A_kj (q_k - k_j) = (sum_j A_kj) q_k - A @ K
        return -scale * (A.sum(-1, keepdim=True) * Q - A @ K)


DOT = DotLogits()
DISTANCE = DistanceLogits()
