"""Synthetic tokens, random targets and teacher targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import attnlab as al
from attnlab.data import random_tokens as data_random_tokens


def test_tokens_shape_seed_and_covariance():
    X = al.random_tokens(200, 8, 16, seed=0)
    assert X.shape == (200, 8, 16) and X.dtype == torch.float64
    assert torch.equal(X, data_random_tokens(200, 8, 16, seed=0))
    assert not torch.allclose(X, al.random_tokens(200, 8, 16, seed=1))
    # x ~ N(0, I/D): covariance of the 1600 tokens is I/16 up to sampling error
    cov = np.cov(X.reshape(-1, 16).numpy().T)
    assert np.abs(cov - np.eye(16) / 16).max() < 0.25 / 16
    f32 = al.random_tokens(200, 8, 16, seed=0, dtype=torch.float32)
    torch.testing.assert_close(f32, X.float(), rtol=0, atol=0)


def test_per_model_tokens_are_padded_single_draws():
    X = al.random_tokens(3, 2, [2, 5], seed=[4, 9])
    assert X.shape == (2, 3, 2, 5)
    torch.testing.assert_close(X[0, ..., :2], al.random_tokens(3, 2, 2, seed=4), rtol=0, atol=0)
    torch.testing.assert_close(X[1], al.random_tokens(3, 2, 5, seed=9), rtol=0, atol=0)
    assert torch.count_nonzero(X[0, ..., 2:]) == 0


def test_targets_seeded_scaled_and_not_the_token_stream():
    y = al.random_targets(50, 40, seed=3, scale=0.3)
    assert y.shape == (50, 40)
    assert torch.equal(y, al.random_targets(50, 40, seed=3, scale=0.3))
    assert abs(float(y.std()) - 0.3) < 0.03
    X = al.random_tokens(50, 40, 1, seed=3)
    assert abs(np.corrcoef(X.reshape(-1).numpy(), y.reshape(-1).numpy())[0, 1]) < 0.1


def test_teacher_offsets_only_W_Q_and_produces_its_outputs():
    p0 = al.init_params(M=2, H=2, D=32, d=8, init_scale=[0.5, 2.0], seed=0)
    X = al.random_tokens(4, 4, 32, seed=0)
    y, teacher = al.teacher_targets(X, p0, delta=0.3, kernel="gaussian", seed=1)
    assert y.shape == (2, 4, 4)
    assert torch.equal(teacher.W_K, p0.W_K) and torch.equal(teacher.W_V, p0.W_V)
    step = (teacher.W_Q - p0.W_Q).flatten(1).std(1).numpy()
    np.testing.assert_allclose(step, [0.3 * 0.5, 0.3 * 2.0], rtol=0.1)  # delta * s
    torch.testing.assert_close(y, al.forward(teacher, X, "gaussian"), rtol=0, atol=0)
    # delta = 0: the student is the teacher, so its loss is exactly 0 (f_star = 0)
    y0, _ = al.teacher_targets(X, p0, delta=0.0, kernel="softmax", seed=1)
    torch.testing.assert_close(y0, al.forward(p0, X, "softmax"), rtol=0, atol=0)
    y1, t1 = al.teacher_targets(X, p0, delta=0.3, kernel="gaussian", seed=1)
    assert torch.equal(y1, y) and torch.equal(t1.W_Q, teacher.W_Q)


@pytest.mark.parametrize("call,match", [
    (lambda: al.random_tokens(0, 2, 3, seed=0), "N"),
    (lambda: al.random_tokens(2, 2, 0, seed=0), "D"),
    (lambda: al.random_tokens(2, 2, 3, seed=-1), "seed"),
    (lambda: al.random_tokens(2, 2, [3, 4], seed=[1, 2, 3]), "seed"),
    (lambda: al.random_targets(2, 2, seed=0, scale=-1.0), "scale"),
    (lambda: al.random_targets(2, 2, seed=0, dtype=torch.int32), "dtype"),
])
def test_data_bad_inputs_name_the_parameter(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_teacher_bad_inputs():
    p0 = al.init_params(H=1, D=4, d=2, init_scale=1.0, seed=0)
    X = al.random_tokens(2, 3, 4, seed=0)
    with pytest.raises(ValueError, match="delta"):
        al.teacher_targets(X, p0, delta=-1.0, seed=0)
    with pytest.raises(ValueError, match="kernel"):
        al.teacher_targets(X, p0, delta=1.0, kernel="laplace", seed=0)
    with pytest.raises(TypeError, match="params0"):
        al.teacher_targets(X, None, delta=1.0, seed=0)
