"""Tests of attnlab.landscape: expected values come from a plain NumPy forward pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import attnlab as al
from attnlab import landscape as ls

torch.set_num_threads(1)


def ref_loss(X, WQ, WK, WV, y, kernel) -> float:
    """X (N, n, D), WQ/WK (H, D, d), WV (H, D): 1/2 sum (out - y)^2 with loops over heads."""
    d = WQ.shape[-1]
    out = np.zeros(y.shape)
    for h in range(WQ.shape[0]):
        Q, K = X @ WQ[h], X @ WK[h]
        if kernel == "softmax":
            L = Q @ K.transpose(0, 2, 1) / np.sqrt(d)
            S = np.exp(L - L.max(-1, keepdims=True))
            S /= S.sum(-1, keepdims=True)
        else:
            S = np.exp(-((Q[:, :, None] - K[:, None]) ** 2).sum(-1) / (2 * np.sqrt(d)))
        out += np.einsum("ikj,ij->ik", S, X @ WV[h])
    return 0.5 * float(np.sum((out - y) ** 2))


@pytest.fixture(scope="module")
def setup():
    p = al.init_params(H=2, D=6, d=3, init_scale=0.8, seed=4)
    X = al.random_tokens(3, 4, 6, seed=4)
    y = al.random_targets(3, 4, seed=4)
    return p, X, y


def _np(p):
    return (p.W_Q[0].numpy(), p.W_K[0].numpy(), p.W_V[0, :, :, 0].numpy())


@pytest.mark.parametrize("kernel", al.KERNELS)
def test_center_of_grid_equals_checkpoint_loss(setup, kernel):
    p, X, y = setup
    sl = ls.landscape_slice(p, X, y, kernel, points=7, span=0.5, seed=2)
    expected = ref_loss(X.numpy(), *_np(p), y.numpy(), kernel)
    assert sl.loss[3, 3] == pytest.approx(expected, rel=1e-12)
    assert sl.center == pytest.approx(expected, rel=1e-12)


def test_directions_are_filter_normalized(setup):
    p, _, _ = setup
    d = ls.random_direction(p, seed=1)
    for name, w in p.tensors().items():
        # every column (filter) of every head has the norm of the weight's column
        got = d[name].numpy()
        ref = w.numpy()
        for h in range(ref.shape[1]):
            for j in range(ref.shape[3]):
                assert np.linalg.norm(got[0, h, :, j]) == pytest.approx(
                    np.linalg.norm(ref[0, h, :, j]), rel=1e-12)
    # layer normalization: each whole block has the norm of the weight block
    dl = ls.random_direction(p, seed=1, norm="layer")
    for name, w in p.tensors().items():
        assert np.linalg.norm(dl[name].numpy()) == pytest.approx(np.linalg.norm(w.numpy()),
                                                                 rel=1e-12)
    # different seeds, different directions; excluded blocks are zero
    d2 = ls.random_direction(p, seed=2, names=("W_Q",))
    assert not torch.allclose(d2["W_Q"], d["W_Q"])
    assert float(d2["W_K"].abs().max()) == 0.0 and float(d2["W_V"].abs().max()) == 0.0


@pytest.mark.parametrize("kernel", al.KERNELS)
def test_batched_grid_equals_pointwise_loop(setup, kernel):
    p, X, y = setup
    d1 = ls.random_direction(p, seed=5)
    d2 = ls.random_direction(p, seed=6, names=("W_Q",))
    alphas, betas = np.array([-0.4, 0.0, 0.3]), np.array([-0.2, 0.5])
    grid = ls.loss_grid(p, X, y, kernel, d1, d2, alphas, betas, chunk=4)  # several chunks
    for a_i, a in enumerate(alphas):
        for b_i, b in enumerate(betas):
            W = {k: (p.tensors()[k] + a * d1[k] + b * d2[k])[0].numpy() for k in d1}
            expected = ref_loss(X.numpy(), W["W_Q"], W["W_K"], W["W_V"][..., 0], y.numpy(),
                                kernel)
            assert grid[a_i, b_i] == pytest.approx(expected, rel=1e-10)


def test_padded_rows_stay_zero_and_bad_input():
    p = al.init_params(M=2, H=1, D=[3, 5], d=2, init_scale=1.0, seed=0)
    d = ls.random_direction(p, seed=0)
    assert float(d["W_Q"][0, :, 3:].abs().max()) == 0.0  # model 0 has D = 3
    with pytest.raises(ValueError, match="M = 1"):
        ls.perturb(p, [d], np.zeros((1, 1)))
    one = p.select(0)
    with pytest.raises(ValueError, match="names"):
        ls.random_direction(one, seed=0, names=("W_O",))
    with pytest.raises(ValueError, match="norm"):
        ls.random_direction(one, seed=0, norm="weight")
    with pytest.raises(ValueError, match="span"):
        ls.landscape_slice(one, al.random_tokens(2, 2, 5, seed=0), al.random_targets(2, 2, seed=0),
                           span=0.0)


def test_rescale_filters_matches_filter_norms_and_keeps_zero_filters():
    from attnlab.landscape import rescale_filters

    g = torch.Generator().manual_seed(0)
    w = torch.randn(5, 3, generator=g, dtype=torch.float64)
    d = torch.randn(5, 3, generator=g, dtype=torch.float64)
    d[2] = 0.0
    r = rescale_filters(d, w, (1,))
    expected = torch.linalg.vector_norm(w, dim=1)
    expected[2] = 0.0
    assert torch.allclose(torch.linalg.vector_norm(r, dim=1), expected, rtol=1e-12)
    # directions are kept: each nonzero row of r is a positive multiple of the row of d
    cos = (r * d).sum(1) / (r.norm(dim=1) * d.norm(dim=1)).clamp_min(1e-300)
    assert torch.allclose(cos[[0, 1, 3, 4]], torch.ones(4, dtype=torch.float64))
