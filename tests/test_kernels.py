"""Kernels and the functional core, checked against independent NumPy loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _engine_ref import (
    central_fd,
    ref_attention,
    ref_feature_matrix,
    ref_loss,
    ref_output,
    rel_err,
)

import attnlab as al

N, n, D, H, d = 3, 3, 5, 2, 3
KERNEL_CASES = [("softmax", False), ("gaussian", False), ("gaussian", True)]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, n, D)) / math.sqrt(D)
    W_Q = rng.normal(size=(H, D, d))
    W_K = rng.normal(size=(H, D, d))
    W_V = 2 * rng.normal(size=(H, D))
    y = 0.3 * rng.normal(size=(N, n))
    return X, W_Q, W_K, W_V, y


@pytest.mark.parametrize("kernel,normalize", KERNEL_CASES)
def test_attention_matrix_matches_loops(data, kernel, normalize):
    X, W_Q, W_K, _, _ = data
    S = al.attention_matrix(X, W_Q, W_K, kernel, normalize=normalize)
    assert isinstance(S, np.ndarray) and S.shape == (H, N, n, n)
    np.testing.assert_allclose(S, ref_attention(X, W_Q, W_K, kernel, normalize), rtol=1e-12)


@pytest.mark.parametrize("kernel,normalize", KERNEL_CASES)
def test_wq_gradient_closed_form_equals_autograd_and_finite_differences(data, kernel, normalize):
    X, W_Q, W_K, W_V, y = data
    closed = al.wq_gradient(X, W_Q, W_K, W_V, y, kernel, normalize=normalize)
    WQt = torch.tensor(W_Q, requires_grad=True)
    out = al.layer_output(torch.tensor(X), WQt, torch.tensor(W_K), torch.tensor(W_V), kernel,
                          normalize=normalize)
    f = 0.5 * (out - torch.tensor(y)).square().sum()
    (auto,) = torch.autograd.grad(f, WQt)
    fd = central_fd(lambda W: ref_loss(X, W, W_K, W_V, y, kernel, normalize), W_Q)
    assert np.linalg.norm(fd) > 1e-3  # a non-trivial gradient
    assert rel_err(closed, fd) < 1e-7
    assert rel_err(auto.numpy(), fd) < 1e-7
    assert rel_err(closed, auto.numpy()) < 1e-12


def test_wq_gradient_batched_matches_single(data):
    X, W_Q, W_K, W_V, y = data
    rng = np.random.default_rng(1)
    WQb = np.stack([W_Q, rng.normal(size=W_Q.shape)])
    WKb = np.stack([W_K, W_K])
    WVb = np.stack([W_V, W_V])
    gb = al.wq_gradient(X, WQb, WKb, WVb, y, "gaussian")
    for m in range(2):
        np.testing.assert_allclose(gb[m], al.wq_gradient(X, WQb[m], W_K, W_V, y, "gaussian"),
                                   rtol=1e-12, atol=1e-14)


def test_softmax_is_row_normalized_diag_gaussian_diag():
    rng = np.random.default_rng(2)
    Q = rng.normal(size=(4, 6, 5))
    K = rng.normal(size=(4, 6, 5))
    sc = 1 / math.sqrt(5)
    G = al.gaussian_kernel(Q, K)
    left = np.exp(sc * np.sum(Q**2, -1) / 2)[..., :, None]
    right = np.exp(sc * np.sum(K**2, -1) / 2)[..., None, :]
    E = left * G * right  # = exp(sc <q, k>)
    rownorm = E / E.sum(-1, keepdims=True)
    np.testing.assert_allclose(al.softmax_kernel(Q, K), rownorm, rtol=1e-12)
    np.testing.assert_allclose(E, np.exp(sc * Q @ np.swapaxes(K, -1, -2)), rtol=1e-12)


@pytest.mark.parametrize("kernel", al.KERNELS)
def test_outputs_equal_C_times_vec_WV(data, kernel):
    X, W_Q, W_K, W_V, _ = data
    C = al.feature_matrix(X, W_Q, W_K, kernel)
    out = al.layer_output(X, W_Q, W_K, W_V, kernel)
    assert C.shape == (N * n, H * D)
    np.testing.assert_allclose(out.reshape(-1), C @ W_V.reshape(-1), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(out, ref_output(X, W_Q, W_K, W_V, kernel), rtol=1e-12)
    S = ref_attention(X, W_Q, W_K, kernel)
    np.testing.assert_allclose(C, ref_feature_matrix(X, S), rtol=1e-12, atol=1e-15)


def test_batched_core_matches_per_model(data):
    X, W_Q, W_K, W_V, _ = data
    rng = np.random.default_rng(3)
    M = 3
    WQb = rng.normal(size=(M, H, D, d))
    WKb = rng.normal(size=(M, H, D, d))
    WVb = rng.normal(size=(M, H, D))
    Xb = rng.normal(size=(M, N, n, D))
    for Xin in (X, Xb):
        S = al.attention_matrix(Xin, WQb, WKb, "softmax")
        out = al.layer_output(Xin, WQb, WKb, WVb, "softmax")
        C = al.feature_matrix(Xin, WQb, WKb, "softmax")
        assert S.shape == (M, H, N, n, n) and out.shape == (M, N, n) and C.shape == (M, N * n,
                                                                                     H * D)
        for m in range(M):
            Xm = Xin if Xin.ndim == 3 else Xin[m]
            np.testing.assert_allclose(out[m], ref_output(Xm, WQb[m], WKb[m], WVb[m],
                                                          "softmax"), rtol=1e-12)
            np.testing.assert_allclose(C[m], al.feature_matrix(Xm, WQb[m], WKb[m]), rtol=1e-13)


def test_numpy_in_numpy_out_and_torch_dtype_kept(data):
    X, W_Q, W_K, W_V, _ = data
    out_np = al.layer_output(X, W_Q, W_K, W_V)
    assert isinstance(out_np, np.ndarray) and out_np.dtype == np.float64
    t32 = [torch.tensor(a, dtype=torch.float32) for a in (X, W_Q, W_K, W_V)]
    out32 = al.layer_output(*t32, kernel="gaussian")
    assert isinstance(out32, torch.Tensor) and out32.dtype == torch.float32
    np.testing.assert_allclose(out32.numpy(), ref_output(X, W_Q, W_K, W_V, "gaussian"),
                               rtol=1e-4, atol=1e-5)
    assert isinstance(al.sigma_min(al.feature_matrix(*t32[:3])), torch.Tensor)


def test_gaussian_is_accurate_for_large_nearby_vectors():
    # Large norms, tiny distances: the expansion ||q||^2 + ||k||^2 - 2<q,k> cancels badly
    # in float32; the engine must agree with a direct float64 difference computation.
    rng = np.random.default_rng(4)
    base = 1e3 * rng.normal(size=(1, 1, 8))
    Q = base + 0.5 * rng.normal(size=(2, 5, 8))
    K = base + 0.5 * rng.normal(size=(2, 5, 8))
    direct = np.exp(-((Q[..., :, None, :] - K[..., None, :, :]) ** 2).sum(-1) / (2 * math.sqrt(8)))
    for dtype, tol in ((torch.float64, 1e-9), (torch.float32, 2e-2)):
        S = al.gaussian_kernel(torch.tensor(Q, dtype=dtype), torch.tensor(K, dtype=dtype))
        assert torch.isfinite(S).all()
        np.testing.assert_allclose(S.double().numpy(), direct, rtol=tol, atol=1e-6)


def test_softmax_is_stable_for_huge_logits():
    Q = torch.tensor([[[1e4, 0.0], [0.0, -1e4]]], dtype=torch.float32)
    K = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]], dtype=torch.float32)
    S = al.softmax_kernel(Q, K)
    assert torch.isfinite(S).all()
    torch.testing.assert_close(S, torch.tensor([[[1.0, 0.0], [1.0, 0.0]]]))


def test_row_stochastic():
    L = np.random.default_rng(5).normal(size=(4, 4)) * 30
    R = al.row_stochastic(L)
    assert isinstance(R, np.ndarray) and (R >= 0).all()
    np.testing.assert_allclose(R.sum(-1), 1.0, rtol=1e-14)
    E = np.exp(L - L.max(-1, keepdims=True))
    np.testing.assert_allclose(R, E / E.sum(-1, keepdims=True), rtol=1e-12)


def test_sigma_min_matches_numpy_svd():
    rng = np.random.default_rng(6)
    for shape in ((12, 7), (7, 12)):
        C = rng.normal(size=shape)
        assert abs(al.sigma_min(C) - np.linalg.svd(C, compute_uv=False).min()) < 1e-12
    Cb = rng.normal(size=(3, 8, 5))
    want = [np.linalg.svd(c, compute_uv=False)[-1] for c in Cb]
    np.testing.assert_allclose(al.sigma_min(Cb), want, rtol=1e-12)
    np.testing.assert_allclose(al.sigma_min(Cb, k=2),
                               [np.linalg.svd(c, compute_uv=False)[1] for c in Cb], rtol=1e-12)


@pytest.mark.parametrize("kernel", al.KERNELS)
def test_pl_lower_bound_against_autograd_jacobian(kernel):
    rng = np.random.default_rng(7)
    Nn, Dbig = (2, 3), 12  # D >= N n so the bound is non-trivial
    X = rng.normal(size=(*Nn, Dbig)) / math.sqrt(Dbig)
    W_Q, W_K = rng.normal(size=(2, H, Dbig, d))
    W_V = 2 * rng.normal(size=(H, Dbig))
    y = rng.normal(size=Nn)
    lam, bound = al.pl_lower_bound(X, W_Q, W_K, W_V, y, kernel)
    Xt, WKt, WVt = (torch.tensor(a) for a in (X, W_K, W_V))
    J = torch.autograd.functional.jacobian(
        lambda w: al.layer_output(Xt, w, WKt, WVt, kernel).reshape(-1), torch.tensor(W_Q))
    J = J.reshape(J.shape[0], -1).numpy()
    lam_ref = np.linalg.eigvalsh(J @ J.T)[0]
    assert abs(lam - lam_ref) <= 1e-10 * max(1.0, abs(lam_ref))
    assert 0 < bound <= lam_ref * (1 + 1e-10)
    # and the PL inequality it implies: ||grad||^2 >= 2 lam f
    g = al.wq_gradient(X, W_Q, W_K, W_V, y, kernel)
    f = ref_loss(X, W_Q, W_K, W_V, y, kernel)
    assert np.sum(g**2) >= 2 * lam_ref * f * (1 - 1e-10)


def test_pl_bound_zero_when_D_below_Nn(data):
    X, W_Q, W_K, W_V, y = data  # D = 5 < N n = 9
    _, bound = al.pl_lower_bound(X, W_Q, W_K, W_V, y, "gaussian")
    assert bound == 0.0


@pytest.mark.parametrize("bad,match", [
    (dict(kernel="cosine"), "kernel"),
    (dict(X=np.zeros((3, 3))), "X"),
    (dict(W_K=np.zeros((H, D, d + 1))), "W_K"),
    (dict(W_Q=np.zeros((D, d))), "W_Q"),
    (dict(X=np.zeros((N, n, D + 1))), "X"),
    (dict(X=np.full((N, n, D), np.nan)), "X"),
    (dict(W_V=np.zeros((H, D + 1))), "W_V"),
    (dict(X=[[1.0]]), "X"),
])
def test_bad_inputs_name_the_parameter(data, bad, match):
    X, W_Q, W_K, W_V, _ = data
    args = dict(X=X, W_Q=W_Q, W_K=W_K, W_V=W_V, kernel="softmax") | bad
    with pytest.raises((ValueError, TypeError), match=match):
        al.layer_output(**args)


def test_bad_y_and_scale(data):
    X, W_Q, W_K, W_V, y = data
    with pytest.raises(ValueError, match="y"):
        al.wq_gradient(X, W_Q, W_K, W_V, y[:, :2], "softmax")
    with pytest.raises(ValueError, match="y"):
        al.wq_gradient(X, W_Q, W_K, W_V, np.full_like(y, np.inf), "softmax")
    with pytest.raises(ValueError, match="scale"):
        al.softmax_kernel(W_Q, W_K, scale=-1.0)
