"""Params, init_params and forward."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _engine_ref import ref_attention, ref_output

import attnlab as al


def test_shapes_and_model_axis():
    p = al.init_params(M=3, H=2, D=6, d=4, init_scale=0.5, seed=0)
    assert p.W_Q.shape == p.W_K.shape == (3, 2, 6, 4)
    assert p.W_V.shape == (3, 2, 6, 1) and p.W_O is None
    assert (p.M, p.H, p.D, p.d, p.d_v) == (3, 2, 6, 4, 1)
    q = al.init_params(M=2, H=2, D=6, d=4, init_scale=0.5, seed=0, d_v=3, out_proj=True)
    assert q.W_V.shape == (2, 2, 6, 3) and q.W_O.shape == (2, 6, 1)


def test_model_m_of_batch_equals_single_model_with_seed_plus_m():
    p = al.init_params(M=3, H=2, D=5, d=3, init_scale=[0.5, 1.0, 2.0], value_scale=2.0, seed=7)
    for m, s in enumerate([0.5, 1.0, 2.0]):
        q = al.init_params(H=2, D=5, d=3, init_scale=s, value_scale=2.0, seed=7 + m)
        for k in ("W_Q", "W_K", "W_V"):
            torch.testing.assert_close(p.tensors()[k][m], q.tensors()[k][0], rtol=0, atol=0)
    r = al.init_params(M=2, H=1, D=5, d=3, init_scale=1.0, seed=[3, 3])
    torch.testing.assert_close(r.W_Q[0], r.W_Q[1], rtol=0, atol=0)


def test_same_seed_same_params_different_seed_different_dtype_consistent():
    kw = dict(H=2, D=8, d=4, init_scale=1.0)
    a, b = al.init_params(**kw, seed=1), al.init_params(**kw, seed=1)
    c = al.init_params(**kw, seed=2)
    f32 = al.init_params(**kw, seed=1, dtype=torch.float32)
    assert torch.equal(a.W_Q, b.W_Q) and not torch.allclose(a.W_Q, c.W_Q)
    assert f32.W_Q.dtype == torch.float32
    torch.testing.assert_close(f32.W_Q, a.W_Q.float(), rtol=0, atol=0)


def test_init_scale_sets_the_spread():
    p = al.init_params(M=2, H=4, D=64, d=16, init_scale=[0.1, 3.0], value_scale=[2.0, 0.5],
                       seed=0)
    # 4096 draws each: sample std within 5 % of the requested scale
    np.testing.assert_allclose(p.W_Q.flatten(1).std(1).numpy(), [0.1, 3.0], rtol=0.05)
    np.testing.assert_allclose(p.W_V.flatten(1).std(1).numpy(), [2.0, 0.5], rtol=0.1)
    # s = 0 is rejected (uniform attention, W_Q and W_K get no gradient): the widget's rule
    for bad in (0.0, [0.5, 0.0], -1.0):
        with pytest.raises(ValueError, match="init_scale"):
            al.init_params(M=2, H=1, D=4, d=2, init_scale=bad, seed=0)


@pytest.mark.parametrize("kernel", al.KERNELS)
def test_forward_matches_reference_loops(kernel):
    p = al.init_params(M=2, H=2, D=5, d=3, init_scale=1.0, value_scale=2.0, seed=0)
    X = al.random_tokens(3, 4, 5, seed=0)
    out = al.forward(p, X, kernel)
    pooled = al.forward(p, X.numpy(), kernel, pool=True)
    assert out.shape == (2, 3, 4) and pooled.shape == (2, 3)
    for m in range(2):
        ref = ref_output(X.numpy(), p.W_Q[m].numpy(), p.W_K[m].numpy(), p.W_V[m, ..., 0].numpy(),
                         kernel)
        np.testing.assert_allclose(out[m].numpy(), ref, rtol=1e-12)
        np.testing.assert_allclose(pooled[m].numpy(), ref.mean(-1), rtol=1e-12)


def test_forward_with_output_projection_matches_loops():
    p = al.init_params(H=2, D=5, d=3, init_scale=1.0, seed=0, d_v=3, out_proj=True)
    X = al.random_tokens(2, 4, 5, seed=1)
    out = al.forward(p, X, "softmax")[0].numpy()
    Xn = X.numpy()
    S = ref_attention(Xn, p.W_Q[0].numpy(), p.W_K[0].numpy(), "softmax")
    WV, WO = p.W_V[0].numpy(), p.W_O[0, :, 0].numpy()
    ref = np.zeros((2, 4))
    for i in range(2):
        concat = np.concatenate([S[h, i] @ Xn[i] @ WV[h] for h in range(2)], axis=1)  # (n, H d_v)
        ref[i] = concat @ WO
    np.testing.assert_allclose(out, ref, rtol=1e-12)


def test_mixed_kernels_and_padded_D_match_separate_models():
    Ds = [3, 6, 4]
    kernels = ["softmax", "gaussian", "gaussian"]
    p = al.init_params(M=3, H=2, D=Ds, d=3, init_scale=[0.5, 1.0, 1.5], seed=0)
    X = al.random_tokens(2, 4, Ds, seed=5)
    assert X.shape == (3, 2, 4, 6) and p.W_Q.shape == (3, 2, 6, 3)
    assert torch.count_nonzero(p.W_Q[0, :, 3:]) == 0 and torch.count_nonzero(X[0, ..., 3:]) == 0
    out = al.forward(p, X, kernels)
    for m, (Dm, k) in enumerate(zip(Ds, kernels, strict=True)):
        q = al.init_params(H=2, D=Dm, d=3, init_scale=[0.5, 1.0, 1.5][m], seed=m)
        Xm = al.random_tokens(2, 4, Dm, seed=5)
        torch.testing.assert_close(out[m], al.forward(q, Xm, k)[0], rtol=1e-13, atol=1e-14)


def test_stack_select_clone_roundtrip():
    p = al.init_params(M=3, H=1, D=4, d=2, init_scale=[1.0, 2.0, 3.0], seed=0)
    parts = [p.select(m) for m in range(3)]
    s = al.stack_params(parts)
    assert torch.equal(s.W_Q, p.W_Q) and np.array_equal(s.init_scale, p.init_scale)
    c = p.clone()
    c.W_Q.add_(1.0)
    assert not torch.equal(c.W_Q, p.W_Q)


@pytest.mark.parametrize("kw,match", [
    (dict(D=0), "D"),
    (dict(D=[4, 0]), "D"),
    (dict(init_scale=-1.0), "init_scale"),
    (dict(init_scale=[1.0, -0.1]), "init_scale"),
    (dict(init_scale=[1.0, 1.0, 1.0]), "init_scale"),
    (dict(M=0), "M"),
    (dict(H=0), "H"),
    (dict(d=2.5), "d"),
    (dict(seed=-1), "seed"),
    (dict(value_scale=float("nan")), "value_scale"),
    (dict(d_v=2), "d_v"),
    (dict(dtype=torch.int64), "dtype"),
    (dict(device="tpu"), "device"),
])
def test_init_bad_inputs_name_the_parameter(kw, match):
    args = dict(M=2, H=1, D=4, d=2, init_scale=1.0, seed=0) | kw
    with pytest.raises((ValueError, TypeError), match=match):
        al.init_params(**args)


def test_forward_bad_inputs():
    p = al.init_params(M=2, H=1, D=4, d=2, init_scale=1.0, seed=0)
    X = al.random_tokens(2, 3, 4, seed=0)
    with pytest.raises(ValueError, match="X"):
        al.forward(p, X[..., :3])
    with pytest.raises(ValueError, match="X"):
        al.forward(p, torch.stack([X, X, X]))
    with pytest.raises(ValueError, match="kernel"):
        al.forward(p, X, "relu")
    with pytest.raises(ValueError, match="kernel"):
        al.forward(p, X, ["softmax"])
    with pytest.raises(TypeError, match="params"):
        al.forward({"W_Q": p.W_Q}, X)
