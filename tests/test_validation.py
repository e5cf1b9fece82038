"""Regression tests for the bad-input reproducers of the fuzzing report (issue 12).

Each test is a minimal reproducer: bad input raises ``ValueError``/``TypeError`` naming the
parameter (never another exception, a hang or a silent wrong answer), and the neighbouring
valid input still computes what it did.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

import attnlab
from attnlab import convex
from attnlab import dynamics as dy
from attnlab._optim import Adam
from attnlab._validate import check_float_array, check_int


def _small_cfg(**kw):
    base = dict(N=2, n=2, D=4, d=2, H=1, steps=3, track_sigma_min=False)
    base.update(kw)
    return dy.RunConfig(**base)


def _P():
    return attnlab.init_params(H=2, D=4, d=2, init_scale=0.5, seed=0)


def _Xy():
    return attnlab.random_tokens(3, 2, 4, seed=0), attnlab.random_targets(3, 2, seed=1)


# ----------------------------------------------------------------------------- widgets/runs
def test_stop_before_the_first_step_gives_a_status():
    res = attnlab.run_config(_small_cfg(), should_stop=lambda: True)
    assert not res.logged and res.steps_done == 0
    assert "before the first step" in res.status()


# ----------------------------------------------------------------------------- integers
def test_sigma_min_k_must_be_integral():
    C = np.random.default_rng(0).standard_normal((5, 4))
    with pytest.raises(TypeError, match=r"\bk\b must be an integer"):
        attnlab.sigma_min(C, k=2.9)
    with pytest.raises(TypeError, match=r"\bk\b"):
        attnlab.sigma_min(C, k=np.array([2.5]))
    with pytest.raises(ValueError, match=r"\bk\b must be <= 4"):
        attnlab.sigma_min(C, k=5)
    s = np.linalg.svd(C, compute_uv=False)
    assert float(attnlab.sigma_min(C, k=2)) == pytest.approx(s[1], rel=1e-12)
    assert float(attnlab.sigma_min(C)) == pytest.approx(s[-1], rel=1e-12)


def test_phase_diagram_dims_must_be_integral():
    with pytest.raises(TypeError, match="dims"):
        dy.phase_diagram([0.5], dims=[4.7], config=_small_cfg())


def test_float_sizes_are_not_truncated():
    with pytest.raises(TypeError, match=r"\bH\b must be an integer"):
        attnlab.init_params(H=2.0, D=4, d=2, init_scale=0.5, seed=0)
    with pytest.raises(TypeError, match="steps"):
        X, y = _Xy()
        attnlab.train(_P(), X, y, steps=2.5, lr=0.1)


def test_huge_steps_fail_before_allocating():
    X, y = _Xy()
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="steps"):
        attnlab.train(_P(), X, y, steps=10**9, lr=0.1)
    with pytest.raises(ValueError, match="log_every"):  # 10**7 logged rows: too many
        attnlab.train(_P(), X, y, steps=10**7, lr=0.1)
    with pytest.raises(ValueError, match="steps"):
        convex.train_heads(np.ones((4, 2, 2)), np.ones(4), 0.1, 1, steps=10**9)
    assert time.perf_counter() - t0 < 5.0


def test_huge_sizes_fail_before_allocating():
    with pytest.raises(ValueError, match=r"\bN\b"):
        attnlab.random_tokens(10**9, 100, 100, seed=0)
    with pytest.raises(ValueError, match=r"\bM\b"):
        attnlab.init_params(M=10**12, H=1, D=2, d=1, init_scale=1.0, seed=0)


def test_check_int_bounds_and_types():
    assert check_int("k", np.int64(3), min=0) == 3
    for bad in (2.9, 2.0, True, "3", None, 1 + 0j):
        with pytest.raises(TypeError, match="k must be an integer"):
            check_int("k", bad)


# ----------------------------------------------------------------------------- arrays
def test_complex_inputs_raise_instead_of_being_cast():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3, 2, 4)) + 1j
    W = rng.standard_normal((2, 4, 2))
    with pytest.raises(TypeError, match=r"\bX\b must hold real numbers"):
        attnlab.attention_matrix(X, W, W)
    with pytest.raises(TypeError, match=r"\bX\b must hold real numbers"):
        convex.fit(X[..., :2], rng.standard_normal(3), 0.1)
    with pytest.raises(TypeError, match=r"\bC\b"):
        dy.lstsq_floor(rng.standard_normal((4, 3)) * 1j, rng.standard_normal(4))
    with pytest.raises(TypeError, match="W_Q"):
        attnlab.Params(W_Q=torch.zeros(1, 1, 2, 2, dtype=torch.complex128),
                       W_K=torch.zeros(1, 1, 2, 2), W_V=torch.zeros(1, 1, 2, 1))


def test_bool_and_string_arrays_raise():
    W = np.ones((2, 4, 2))
    with pytest.raises(TypeError, match=r"\bX\b"):
        attnlab.attention_matrix(np.ones((3, 2, 4), dtype=bool), W, W)
    with pytest.raises(TypeError, match=r"\bX\b"):
        convex.beta_max(np.full((3, 2, 2), "a"), np.ones(3))


def test_lstsq_floor_with_inf_raises_quickly():
    C = np.random.default_rng(0).standard_normal((6, 4))
    C[2, 1] = np.inf
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"\bC\b contains NaN or inf"):
        dy.lstsq_floor(C, np.ones(6))
    assert time.perf_counter() - t0 < 1.0
    C[2, 1] = 0.0
    w = np.linalg.lstsq(C, np.ones(6), rcond=None)[0]
    assert dy.lstsq_floor(C, np.ones(6))[0] == pytest.approx(
        0.5 * np.sum((C @ w - 1.0) ** 2), abs=1e-12)


def test_inputs_that_require_grad():
    X, y = _Xy()
    Xg = X.clone().requires_grad_(True)
    # differentiable functions keep the graph ...
    W = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)
    out = attnlab.layer_output(Xg, W, W, torch.randn(2, 4, dtype=torch.float64))
    out.sum().backward()
    assert W.grad is not None and torch.isfinite(W.grad).all()
    # ... and functions that return numbers detach
    C = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    assert np.isfinite(dy.lstsq_floor(C, torch.ones(6)))[0]
    Xc = torch.randn(6, 3, 2, dtype=torch.float64, requires_grad=True)
    yc = torch.randn(6, dtype=torch.float64, requires_grad=True)
    assert convex.beta_max(Xc, yc) > 0
    assert np.isfinite(convex.fit(Xc, yc, 0.5).primal)
    Xs = torch.randn(3, 2, 1, dtype=torch.float64, requires_grad=True)
    from attnlab.convex.relaxation import opt_eq4_scalar
    assert math.isfinite(opt_eq4_scalar(Xs, Xs.detach() + 1.0, 0.5))


def test_check_float_array_grad_modes():
    t = torch.ones(2, requires_grad=True)
    assert not check_float_array("x", t).requires_grad
    assert check_float_array("x", t, grad="keep").requires_grad
    with pytest.raises(ValueError, match="x must not require grad"):
        check_float_array("x", t, grad="reject")
    with pytest.raises(TypeError, match="x must hold floating-point"):
        check_float_array("x", np.arange(3), allow_int=False)


# ----------------------------------------------------------------------------- booleans
def test_boolean_flags_must_be_bool():
    rng = np.random.default_rng(0)
    X, W = rng.standard_normal((3, 2, 4)), rng.standard_normal((2, 4, 2))
    with pytest.raises(TypeError, match="normalize must be True or False"):
        attnlab.attention_matrix(X, W, W, "gaussian", normalize="no")
    Xt, y = _Xy()
    with pytest.raises(TypeError, match="pool"):
        attnlab.forward(_P(), Xt, pool="no")
    with pytest.raises(TypeError, match="track_sigma_min"):
        attnlab.train(_P(), Xt, y, lr=0.1, steps=2, track_sigma_min=1)
    with pytest.raises(TypeError, match="allow_unconverged"):
        convex.fit(rng.standard_normal((4, 2, 2)), rng.standard_normal(4), 0.1,
                   allow_unconverged="yes")
    # valid flags compute as before
    a = attnlab.attention_matrix(X, W, W, "gaussian", normalize=True)
    assert np.allclose(a.sum(-1), 1.0)


# ----------------------------------------------------------------------------- Adam
@pytest.mark.parametrize("kw, match", [
    (dict(eps=0.0), "eps must be > 0"), (dict(eps=math.nan), "eps must be finite"),
    (dict(eps="1e-8"), "eps must be a real number"),
    (dict(betas=(1.0, 0.9)), r"betas must each be in \[0, 1\)"),
    (dict(betas=(0.9,)), "betas must be a pair"), (dict(betas="ab"), "betas must be a pair"),
    (dict(betas=(-0.1, 0.9)), "betas must be >= 0"),
])
def test_adam_constants_are_validated(kw, match):
    X, y = _Xy()
    with pytest.raises((ValueError, TypeError), match=match):
        attnlab.train(_P(), X, y, lr=0.1, steps=2, optimizer="adam", **kw)
    with pytest.raises((ValueError, TypeError), match=match):
        Adam([torch.zeros(2, requires_grad=True)], 0.1, **kw)


# ----------------------------------------------------------------------------- structured
def test_params_validates():
    p = _P()
    with pytest.raises(TypeError, match="W_Q must be a torch.Tensor"):
        attnlab.Params(W_Q=None, W_K=p.W_K, W_V=p.W_V)
    with pytest.raises(ValueError, match="W_K must have the shape of W_Q"):
        attnlab.Params(W_Q=p.W_Q, W_K=p.W_K[:, :1], W_V=p.W_V)
    with pytest.raises(ValueError, match="W_V must have shape"):
        attnlab.Params(W_Q=p.W_Q, W_K=p.W_K, W_V=p.W_V[:, :, :2])
    with pytest.raises(ValueError, match="W_Q must have 4 dimensions"):
        attnlab.Params(W_Q=p.W_Q[0], W_K=p.W_K[0], W_V=p.W_V)
    with pytest.raises(ValueError, match="W_K must have the dtype and device of W_Q"):
        attnlab.Params(W_Q=p.W_Q, W_K=p.W_K.float(), W_V=p.W_V)
    with pytest.raises(ValueError, match="init_scale must have one entry per model"):
        attnlab.Params(W_Q=p.W_Q, W_K=p.W_K, W_V=p.W_V, init_scale=np.ones(3))
    with pytest.raises(ValueError, match="D_model"):
        attnlab.Params(W_Q=p.W_Q, W_K=p.W_K, W_V=p.W_V, D_model=np.array([9]))
    q = attnlab.Params(W_Q=p.W_Q, W_K=p.W_K, W_V=p.W_V)
    assert q.D_model.tolist() == [4] and q.init_scale.tolist() == [1.0]


@pytest.mark.parametrize("bad", [None, object(), "params", 3])
def test_wrong_objects_raise_type_errors_naming_the_parameter(bad):
    X, y = _Xy()
    with pytest.raises(TypeError, match="params"):
        attnlab.train(bad, X, y, lr=0.1)
    with pytest.raises(TypeError, match="params"):
        dy.wq_jacobian(X, bad)
    with pytest.raises(TypeError, match="cfg"):
        attnlab.run_config(bad)
    with pytest.raises(TypeError, match="result"):
        attnlab.plot_history(bad)
    with pytest.raises(TypeError, match="prob"):
        dy.train_problem(bad)


def test_nan_weights_are_bad_input_not_divergence():
    X, y = _Xy()
    p = _P()
    p.W_Q.view(-1)[0] = math.nan
    with pytest.raises(ValueError, match="params.W_Q is not finite") as err:
        attnlab.train(p, X, y, lr=0.1, steps=3)
    assert "learning rate" not in str(err.value)
    # a real divergence is still a stop reason, not an exception
    h = attnlab.train(_P(), X, y, lr=1e6, steps=50, train=("W_V",))
    assert h.stop_reason.startswith("diverged") and np.isfinite(h.loss).all()


def test_relaxation_validates():
    from attnlab.convex import relaxation as rx

    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((3, 2, 2)), rng.standard_normal((3, 2, 1))
    W = attnlab.row_stochastic(rng.standard_normal((2, 2)))
    v, o = rng.standard_normal((2, 1)), rng.standard_normal((1, 1))
    with pytest.raises(ValueError, match="W must have shape"):
        rx.objective_eq4(X, Y, 0.5, W[:1], v, o)
    with pytest.raises(ValueError, match=r"\bY\b must have shape"):
        rx.objective_eq4(X, Y[:2], 0.5, W, v, o)
    with pytest.raises(TypeError, match=r"\bX\b must hold real"):
        rx.softmax_attention_output(X + 1j, v, v, v, o)
    with pytest.raises(ValueError, match="beta must be >= 0"):
        rx.objective_eq3(X, Y, -1.0, v, v, v, o)
    with pytest.raises(TypeError, match="steps must be an integer"):
        rx.minimize_eq4(X, Y, 0.5, steps=2.5)
    with pytest.raises(ValueError, match="init_scale must be finite"):
        rx.minimize_eq3(X, Y, 0.5, init_scale=math.nan)
    # NumPy in, NumPy out; torch in, torch out; same value
    a = rx.objective_eq4(X, Y, 0.5, W, v, o)
    b = rx.objective_eq4(*(torch.as_tensor(t) for t in (X, Y)), 0.5, torch.as_tensor(W),
                         torch.as_tensor(v), torch.as_tensor(o))
    assert isinstance(a, np.ndarray) and isinstance(b, torch.Tensor)
    assert float(a) == pytest.approx(float(b), rel=1e-14)


# ----------------------------------------------------------------------------- Z = 0
def test_recover_heads_at_zero_is_the_empty_model():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((6, 3, 2)), rng.standard_normal(6)
    fit = convex.fit(X, y, 1.01 * convex.beta_max(X, y))
    assert np.all(fit.Z == 0)
    w, v, b = convex.recover_heads(fit.Z)
    assert w.shape == (0, 3) and v.shape == (0, 2) and b.shape == (0,)
    assert np.all(convex.heads_to_Z(w, v, b) == 0)
    assert convex.head_objective(w, v, b, X, y, 0.5) == pytest.approx(0.5 * np.sum(y**2))
    y2 = rng.standard_normal((6, 2))
    w, v, b = convex.recover_heads(np.zeros((2, 3, 2)))
    assert b.shape == (0, 2)
    assert convex.head_objective(w, v, b, X, y2, 0.5) == pytest.approx(0.5 * np.sum(y2**2))


# ----------------------------------------------------------------------------- devices
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_make_generator_on_a_missing_device():
    with pytest.raises(ValueError, match="device 'cuda' is not available"):
        attnlab.make_generator(0, device="cuda")
    with pytest.raises(TypeError, match="device"):
        attnlab.make_generator(0, device=3)
