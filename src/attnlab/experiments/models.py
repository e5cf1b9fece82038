"""A small transformer classifier with a switchable attention kernel (Part III).

Pre-norm blocks as in Skyformer's LRA model (``shared/papers/gd-dynamics.md`` §4):
``x = x + Attn(LN(x))``, ``x = x + FFN(LN(x))``, final LN, pooling, head
``Linear(D, hidden) - ReLU - Linear(hidden, classes)``.

Attention kernels per layer (``kernels``):

- ``"softmax"``: ``S = softmax(Q K^T / sqrt(d))`` (``attnlab.kernels.KERNEL_TABLE``);
- ``"gaussian"``: ``S = exp(-||q_k - k_j||^2 / (2 sqrt d))``, unnormalized as in the
  GD-dynamics paper (``attnlab.kernels.KERNEL_TABLE``; ``gaussian_normalize=True``
  divides rows by their sums);
- ``"convex"``: one input-independent row-stochastic matrix per head,
  ``S = row_stochastic(logits)`` (:func:`attnlab.row_stochastic`), the shared matrix of the
  convex relaxation (eq. 4 of the convexifying paper) in a multi-head layer.

Padding (token 0 with ``pad_mask``) is excluded from the keys and from mean pooling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .._validate import check_bool, check_choice, check_instance, check_int
from ..kernels import DEFAULT_KERNEL, KERNEL_TABLE, KERNELS, row_stochastic
from .config import CONVEX, KERNEL_CHOICES, MAX_HEADS, MAX_WIDTH, ModelConfig

__all__ = ["Attention", "ConvStem", "TransformerClassifier", "build_model"]

MAX_TOKENS = 1_000_000  # sequence length (learned positions: n_tokens x D)
# Training batches whose attention tensor (B, H, n, n) holds more numbers than this keep no
# block's intermediates between the forward and the backward pass (activation
# checkpointing, one block at a time): the full presets' long sequences (4096 bytes, 1024
# pixels) need a few hundred MB per sequence and block otherwise. Short sequences (every
# preset but "full") are below it and run as before.
CHECKPOINT_ELEMENTS = 2**24
MAX_VOCAB = 10_000_000


class Attention(nn.Module):
    """Multi-head attention with kernel ``softmax``, ``gaussian`` or ``convex``.

    Args:
        D: model width; heads, head_dim: ``H`` heads of width ``d``.
        kernel: see the module docstring. n_tokens: sequence length (needed by ``convex``).
    """

    def __init__(self, D: int, heads: int, head_dim: int, kernel: str = DEFAULT_KERNEL, *,
                 n_tokens: int | None = None, gaussian_normalize: bool = False) -> None:
        super().__init__()
        D = check_int("D", D, min=1, max=MAX_WIDTH)
        self.kernel = check_choice("kernel", kernel, KERNEL_CHOICES)
        self.H = check_int("heads", heads, min=1, max=MAX_HEADS)
        self.d = check_int("head_dim", head_dim, min=1, max=MAX_WIDTH)
        self.gaussian_normalize = check_bool("gaussian_normalize", gaussian_normalize)
        if n_tokens is not None:
            check_int("n_tokens", n_tokens, min=1, max=MAX_TOKENS)
        inner = heads * head_dim
        if kernel == CONVEX:
            n = check_int("n_tokens", n_tokens, min=1, max=MAX_TOKENS)
            # zero logits = uniform attention at initialization
            self.logits = nn.Parameter(torch.zeros(heads, n, n))
            self.value = nn.Linear(D, inner)
        else:
            self.qkv = nn.Linear(D, 3 * inner)
        self.out = nn.Linear(inner, D)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        B, n, _ = t.shape
        return t.view(B, n, self.H, self.d).transpose(1, 2)  # (B, H, n, d)

    def attention(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attention matrices ``S (B, H, n, n)`` for ``x (B, n, D)``; ``key_mask (B, n)``
        (True = real token) zeroes padded keys; softmax and convex rows are renormalized
        (row-stochastic over the real tokens)."""
        B, n, _ = x.shape
        if self.kernel == CONVEX:
            S = row_stochastic(self.logits[:, :n, :n]).unsqueeze(0).expand(B, -1, -1, -1)
            renorm = normalized = True
        else:
            q, k, _ = self.qkv(x).chunk(3, dim=-1)
            q, k = self._split(q), self._split(k)
            spec = KERNEL_TABLE[self.kernel]
            S = spec.forward(q, k, 1.0 / math.sqrt(self.d), False)
            renorm, normalized = spec.normalizes(self.gaussian_normalize), spec.row_normalized
        if key_mask is None and not (renorm and not normalized):
            return S
        if key_mask is not None:
            S = S * key_mask[:, None, None, :].to(S.dtype)
        if renorm:
            S = S / S.sum(-1, keepdim=True).clamp_min(1e-30)
        return S

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x (B, n, D)`` -> ``(B, n, D)``."""
        S = self.attention(x, key_mask)
        v = self.value(x) if self.kernel == CONVEX else self.qkv(x).chunk(3, dim=-1)[2]
        o = S @ self._split(v)  # (B, H, n, d)
        return self.out(o.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))


class ConvStem(nn.Module):
    """Convolutional trunk that turns patch tokens into feature tokens (``stem = "conv"``).

    The ``(B, n, k*k)`` patches are put back into the ``(B, 1, S, S)`` image (``S = k sqrt
    n``); stage ``s = 0 .. log2 k`` runs two 3x3 conv-BatchNorm-ReLU layers with
    ``8 * 2^s`` channels, a 2x2 max-pool between stages, so the output has one position
    per patch: ``(B, n, 8 k)`` tokens ("early convolutions", Xiao et al. 2021; a VGG-like
    trunk). The first layers see a few pixels (dashes, markers); the last stage's receptive
    field (:attr:`receptive_field`, 68 px for ``k = 8``) spans the whole 32 px image.
    """

    def __init__(self, patch: int) -> None:
        super().__init__()
        self.k = check_int("patch", patch, min=1, max=32)
        if self.k & (self.k - 1):
            raise ValueError(f"patch must be a power of 2 for the conv stem, got {patch}")
        layers: list[nn.Module] = []
        c_in = 1
        for s in range(self.k.bit_length()):
            if s:
                layers.append(nn.MaxPool2d(2))
            for _ in range(2):
                layers += [nn.Conv2d(c_in, 8 << s, 3, padding=1, bias=False),
                           nn.BatchNorm2d(8 << s), nn.ReLU()]
                c_in = 8 << s
        self.net = nn.Sequential(*layers)
        self.out_channels = c_in

    @property
    def receptive_field(self) -> int:
        """Side in pixels of the image region that one output token depends on (3x3
        convolutions add 2 steps of the current stride, each 2x2 max-pool 1 and doubles it)."""
        rf, jump = 1, 1
        for m in self.net:
            if isinstance(m, nn.Conv2d):
                rf += (m.kernel_size[0] - 1) * jump
            elif isinstance(m, nn.MaxPool2d):
                rf, jump = rf + jump, 2 * jump
        return rf

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, n, k*k)`` patches -> ``(B, n, out_channels)``."""
        return self.net(unpatch(x, self.k)).flatten(2).transpose(1, 2)


def unpatch(x: torch.Tensor, k: int) -> torch.Tensor:
    """``(B, n, k*k)`` row-major ``k x k`` patches of a square image -> ``(B, 1, S, S)``,
    ``S = k sqrt(n)`` (the inverse of ``real_tasks._patches``)."""
    B, n, _ = x.shape
    g = math.isqrt(n)
    img = x.reshape(B, g, g, k, k).permute(0, 1, 3, 2, 4)
    return img.reshape(B, 1, g * k, g * k)


class Block(nn.Module):
    """Pre-norm transformer block: attention and a ReLU FFN, each with a residual."""

    def __init__(self, cfg: ModelConfig, kernel: str, n_tokens: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(cfg.D), nn.LayerNorm(cfg.D)
        self.attn = Attention(cfg.D, cfg.heads, cfg.head_dim, kernel, n_tokens=n_tokens)
        self.ffn = nn.Sequential(nn.Linear(cfg.D, cfg.hidden), nn.ReLU(),
                                 nn.Linear(cfg.hidden, cfg.D))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), key_mask))
        return x + self.drop(self.ffn(self.norm2(x)))


class TransformerClassifier(nn.Module):
    """Token (or patch) sequences ``(B, n)`` of any integer type (or ``(B, n, P)`` float)
    -> logits ``(B, classes)``.

    Args:
        cfg: sizes (:class:`ModelConfig`). kernels: one kernel per layer (length
        ``cfg.layers``). vocab: token vocabulary (ignored for patches). n_tokens: sequence
        length (learned positions). classes: outputs. patch_dim: input width of a patch
        token (``cfg.patch > 0``). pad_mask: treat token 0 as padding (text).
    """

    def __init__(self, cfg: ModelConfig, kernels: Sequence[str], *, vocab: int, n_tokens: int,
                 classes: int, patch_dim: int = 0, pad_mask: bool = False) -> None:
        super().__init__()
        check_instance("cfg", cfg, ModelConfig)
        if isinstance(kernels, str) or not isinstance(kernels, Sequence):
            raise TypeError(f"kernels must be a sequence of kernel names (one per layer), "
                            f"got {type(kernels).__name__} {kernels!r}")
        kernels = tuple(kernels)
        for k in kernels:
            check_choice("kernels", k, KERNEL_CHOICES)
        n_tokens = check_int("n_tokens", n_tokens, min=1, max=MAX_TOKENS)
        patch_dim = check_int("patch_dim", patch_dim, min=0, max=MAX_WIDTH)
        pad_mask = check_bool("pad_mask", pad_mask)
        vocab = check_int("vocab", vocab, min=1, max=MAX_VOCAB)  # unused with patches
        if len(kernels) != cfg.layers:
            raise ValueError(f"kernels must name one kernel per layer ({cfg.layers}), "
                             f"got {kernels}")
        self.cfg, self.kernels, self.pad_mask = cfg, kernels, bool(pad_mask)
        self.stem: ConvStem | None = None
        if patch_dim and cfg.stem == "conv":
            if patch_dim != cfg.patch**2 or math.isqrt(n_tokens) ** 2 != n_tokens:
                raise ValueError(f"stem 'conv' needs square images of {cfg.patch}x{cfg.patch} "
                                 f"patches: patch_dim {cfg.patch ** 2} and a square n_tokens, "
                                 f"got patch_dim {patch_dim}, n_tokens {n_tokens}")
            self.stem = ConvStem(cfg.patch)
            self.embed: nn.Module = nn.Linear(self.stem.out_channels, cfg.D)
        elif patch_dim:
            self.embed = nn.Linear(patch_dim, cfg.D)
        else:
            self.embed = nn.Embedding(vocab, cfg.D)
        self.pos = nn.Parameter(cfg.pos_std * torch.randn(n_tokens, cfg.D))
        self.blocks = nn.ModuleList(Block(cfg, k, n_tokens) for k in kernels)
        self.norm = nn.LayerNorm(cfg.D)
        self.head = nn.Sequential(nn.Linear(cfg.D, cfg.hidden), nn.ReLU(),
                                  nn.Linear(cfg.hidden,
                                            check_int("classes", classes, min=2, max=MAX_VOCAB)))

    def _key_mask(self, x: torch.Tensor) -> torch.Tensor | None:
        mask = (x != 0) if (self.pad_mask and not x.is_floating_point()) else None
        if mask is not None:
            mask = mask | (~mask.any(1, keepdim=True))  # all-padding rows: keep every token
        return mask

    def _hidden(self, x: torch.Tensor, blocks) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Hidden state ``(B, n, D)`` after the embedding, the positions and ``blocks``,
        and the key mask ``(B, n)``."""
        mask = self._key_mask(x)
        if not x.is_floating_point():  # compact token ids (uint8/int16/int32) -> int64
            x = x.long()
        h = self.embed(x if self.stem is None else self.stem(x)) + self.pos[: x.shape[1]]
        ckpt = (self.training and torch.is_grad_enabled()
                and x.shape[0] * self.cfg.heads * x.shape[1] ** 2 > CHECKPOINT_ELEMENTS)
        for block in blocks:
            if ckpt:  # recompute the block in the backward pass: same numbers, less memory
                h = checkpoint(block, h, mask, use_reentrant=False)
            else:
                h = block(h, mask)
        return h, mask

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Final normalized token features ``(B, n, D)`` and the key mask ``(B, n)``."""
        h, mask = self._hidden(x, self.blocks)
        return self.norm(h), mask

    def attention_input(self, x: torch.Tensor, layer: int = -1) -> torch.Tensor:
        """What the attention of block ``layer`` receives, ``(B, n, D)``.

        That is ``LN1`` of that block (``blocks[layer].norm1``) applied to the hidden state
        after the embedding, the positions and blocks ``0 .. layer - 1``. ``layer`` counts
        from 0; negative values count from the end (``-1``: the last attention layer).
        """
        L = len(self.blocks)
        layer = check_int("layer", layer, min=-L, max=L - 1) % L
        h, _ = self._hidden(x, self.blocks[:layer])
        return self.blocks[layer].norm1(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, mask = self.features(x)
        if self.cfg.pooling == "last":
            pooled = h[:, -1]
        elif mask is None:
            pooled = h.mean(1)
        else:
            m = mask.to(h.dtype).unsqueeze(-1)
            pooled = (h * m).sum(1) / m.sum(1)
        return self.head(pooled)

    def set_kernel(self, kernel: str) -> None:
        """Switch every softmax/gaussian layer to ``kernel`` in place (same weights): the
        second stage of the two-stage landscape."""
        check_choice("kernel", kernel, KERNELS)
        for block in self.blocks:
            if block.attn.kernel == CONVEX:
                raise ValueError("set_kernel: convex layers have no query/key weights")
            block.attn.kernel = kernel
        self.kernels = (kernel,) * len(self.blocks)


def build_model(cfg: ModelConfig, kernels: str | Sequence[str], *, vocab: int, n_tokens: int,
                classes: int, seed: int, patch_dim: int = 0,
                pad_mask: bool = False) -> TransformerClassifier:
    """Seeded :class:`TransformerClassifier`; a single kernel name applies to every layer.
    Initialization uses a private ``torch.Generator`` state (the global RNG is restored)."""
    check_instance("cfg", cfg, ModelConfig)
    ks = (kernels,) * cfg.layers if isinstance(kernels, str) else kernels
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(check_int("seed", seed, min=0))
        return TransformerClassifier(cfg, ks, vocab=vocab, n_tokens=n_tokens, classes=classes,
                                     patch_dim=patch_dim, pad_mask=pad_mask)
