"""The trainer: batching, reproducibility, W_V-only convergence theory, metrics, stopping."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import torch
from _engine_ref import ref_attention

import attnlab as al

FIELDS = ("loss", "grad_norm2", "pl_ratio", "sigma_min", "entropy")


def _setup(N=3, n=4, D=16, H=2, d=4, seed=0, **kw):
    X = al.random_tokens(N, n, D, seed=seed)
    y = al.random_targets(N, n, seed=seed + 100)
    p = al.init_params(H=H, D=D, d=d, init_scale=1.0, value_scale=2.0, seed=seed, **kw)
    return X, y, p


def _close(a, b, tol=1e-10):
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * 1e-2)


@pytest.mark.parametrize("optimizer", ["gd", "adam"])
def test_batched_models_equal_separate_runs(optimizer):
    scales, lrs = [0.5, 1.0, 1.5], [0.3, 0.05, 0.2]
    kernels = ["softmax", "gaussian", "gaussian"]
    if optimizer == "adam":
        lrs = [0.01, 0.02, 0.005]
    X = al.random_tokens(3, 4, 12, seed=1)
    y = al.random_targets(3, 4, seed=2)
    p = al.init_params(M=3, H=2, D=12, d=4, init_scale=scales, value_scale=2.0, seed=10)
    kw = dict(train=("W_Q", "W_V"), steps=40, optimizer=optimizer, track_sigma_min=True,
              track_entropy=True, f_star=0.01)
    hb = al.train(p, X, y, kernel=kernels, lr=lrs, **kw)
    for m in range(3):
        q = al.init_params(H=2, D=12, d=4, init_scale=scales[m], value_scale=2.0, seed=10 + m)
        hs = al.train(q, X, y, kernel=kernels[m], lr=lrs[m], **kw)
        for f in FIELDS:
            _close(getattr(hb, f)[m], getattr(hs, f)[0])
        for k in ("W_Q", "W_V"):
            _close(hb.params.tensors()[k][m].numpy(), hs.params.tensors()[k][0].numpy())
    assert hb.loss.shape == (3, 41) and np.isfinite(hb.loss).all()


@pytest.mark.parametrize("kernel,normalize,pool", [
    ("softmax", False, False), ("gaussian", False, False), ("gaussian", True, False),
    ("softmax", False, True), ("gaussian", False, True),
])
def test_wide_sweeps_equal_separate_runs(kernel, normalize, pool):
    # M = 16 models x H = 2 x N = 16 is a wide batch: make_backend picks the wide layout,
    # whose histories must equal one-model runs (the default small layout) to 1e-10.
    from attnlab._grad import ClosedFormWide, make_backend

    M, H, N, n, D, d = 16, 2, 16, 3, 12, 4
    X = al.random_tokens(N, n, D, seed=1)
    scales = np.linspace(0.4, 1.2, M).tolist()
    lrs = np.linspace(0.02, 0.2, M).tolist()
    p = al.init_params(M=M, H=H, D=D, d=d, init_scale=scales, value_scale=2.0, seed=10)
    y = al.random_targets(N, 1 if pool else n, seed=2).reshape(N, -1).squeeze(-1)
    cfg = dict(kind=kernel, kernel_ids=None, scale=1 / math.sqrt(d), normalize=normalize,
               pool=pool, trained=("W_Q",))
    yb = y.expand(M, *y.shape).contiguous()
    backend = make_backend(p.tensors(), X, yb, cfg, (torch.tensor(lrs, dtype=X.dtype), "gd",
                                                    (0.9, 0.999), 1e-8))
    assert isinstance(backend, ClosedFormWide)
    for train in (("W_Q",), ("W_K",), ("W_V",), ("W_Q", "W_K", "W_V")):
        kw = dict(kernel=kernel, normalize=normalize, pool=pool, train=train, steps=12,
                  log_every=5, track_entropy=True)
        hb = al.train(p, X, y, lr=lrs, **kw)
        for m in (0, 7, 15):
            q = al.init_params(H=H, D=D, d=d, init_scale=scales[m], value_scale=2.0,
                               seed=10 + m)
            hs = al.train(q, X, y, lr=lrs[m], **kw)
            for f in ("loss", "grad_norm2", "entropy"):
                _close(getattr(hb, f)[m], getattr(hs, f)[0])
            for k in ("W_Q", "W_K", "W_V"):
                _close(hb.params.tensors()[k][m].numpy(), hs.params.tensors()[k][0].numpy())


def test_padded_embedding_dims_train_like_separate_models():
    Ds, scales = [6, 12, 9], [0.7, 1.0, 1.3]
    X = al.random_tokens(3, 4, Ds, seed=3)
    y = al.random_targets(3, 4, seed=4)
    p = al.init_params(M=3, H=2, D=Ds, d=4, init_scale=scales, seed=0)
    kw = dict(kernel="gaussian", train=("W_Q", "W_K", "W_V"), lr=0.2, steps=30,
              track_sigma_min=True)
    hb = al.train(p, X, y, **kw)
    for m, Dm in enumerate(Ds):
        q = al.init_params(H=2, D=Dm, d=4, init_scale=scales[m], seed=m)
        hs = al.train(q, al.random_tokens(3, 4, Dm, seed=3), y, **kw)
        for f in ("loss", "grad_norm2", "sigma_min"):
            _close(getattr(hb, f)[m], getattr(hs, f)[0])
        _close(hb.params.W_K[m, :, :Dm].numpy(), hs.params.W_K[0].numpy())
        assert torch.count_nonzero(hb.params.W_Q[m, :, Dm:]) == 0  # padding stays zero


@pytest.mark.parametrize("kernel,normalize,pool,shared_X,optimizer,log_every", [
    ("softmax", False, False, False, "gd", 1),
    ("gaussian", False, False, True, "gd", 2),
    ("gaussian", True, False, False, "gd", 1),
    ("softmax", False, True, True, "gd", 2),
    ("gaussian", False, True, False, "gd", 1),
    ("softmax", False, False, True, "adam", 2),
    ("gaussian", False, False, False, "adam", 1),
])
def test_all_backends_agree(monkeypatch, kernel, normalize, pool, shared_X, optimizer,
                            log_every):
    # The closed-form backends (standard layout; batch-last layout with token-space GD)
    # against torch autograd, for every trained subset.
    trainer = importlib.import_module("attnlab.train")  # the module, not the function
    X = al.random_tokens(3, 4, 10, seed=1 if shared_X else [1, 2])
    y = al.random_targets(3, 1 if pool else 4, seed=3).reshape(3, -1).squeeze(-1)
    p = al.init_params(M=2, H=2, D=10, d=4, init_scale=[0.8, 1.2], value_scale=2.0, seed=0)
    lr = 0.05 if optimizer == "gd" else 0.01
    for train in (("W_Q",), ("W_K",), ("W_V",), ("W_Q", "W_K", "W_V")):
        kw = dict(kernel=kernel, normalize=normalize, pool=pool, train=train, lr=lr,
                  steps=6, optimizer=optimizer, log_every=log_every, track_entropy=True,
                  track_sigma_min=True)
        runs = {}
        backends = ["autograd", "closed", "closed_small"]
        if shared_X and optimizer == "gd":  # what the wide backend supports
            backends.append("closed_wide")
        for backend in backends:
            monkeypatch.setattr(trainer, "_BACKEND", backend)
            runs[backend] = al.train(p, X, y, **kw)
        auto = runs.pop("autograd")
        for h in runs.values():
            for f in FIELDS:
                _close(getattr(h, f), getattr(auto, f), 1e-11)
            for k in ("W_Q", "W_K", "W_V"):
                _close(h.params.tensors()[k].numpy(), auto.params.tensors()[k].numpy(), 1e-11)


def test_same_seed_same_history_different_seed_different():
    def run(seed):
        X, y, p = _setup(seed=seed)
        return al.train(p, X, y, kernel="softmax", lr=0.5, steps=30)

    a, b, c = run(0), run(0), run(1)
    assert np.array_equal(a.loss, b.loss) and np.array_equal(a.grad_norm2, b.grad_norm2)
    assert not np.allclose(a.loss, c.loss)


def test_input_params_are_not_modified():
    X, y, p = _setup()
    before = p.W_Q.clone()
    h = al.train(p, X, y, lr=0.5, steps=5)
    assert torch.equal(p.W_Q, before) and not torch.equal(h.params.W_Q, before)


@pytest.mark.parametrize("kernel", al.KERNELS)
def test_wv_only_overparameterized_converges_at_the_sigma_min_rate(kernel):
    # H D = 64 >= N n = 8: the least-squares problem in W_V has zero loss, and GD with
    # eta = 1/sigma_max(C)^2 contracts the slowest mode by (1 - eta sigma_min^2)^2 per step.
    X, y, p = _setup(N=2, n=4, D=32, H=2, d=8)
    C = al.feature_matrix(X.numpy(), p.W_Q[0].numpy(), p.W_K[0].numpy(), kernel)
    s = np.linalg.svd(C, compute_uv=False)
    steps = 1500 if kernel == "softmax" else 500
    h = al.train(p, X, y, kernel=kernel, train="W_V", steps=steps, log_every=10)
    eta = h.lr[0]
    assert abs(eta - 1 / s[0] ** 2) < 1e-10 * eta  # documented default learning rate
    assert h.final_loss[0] < 1e-10
    predicted = (1 - eta * s[-1] ** 2) ** 2
    loss = h.loss[0]
    late = np.nonzero((loss < 1e-6) & (loss > 1e-22))[0]
    assert len(late) >= 5
    i, j = late[0], late[-1]
    measured = (loss[j] / loss[i]) ** (1 / (h.steps[j] - h.steps[i]))
    assert abs(measured - predicted) < 1e-3


def test_wv_only_underparameterized_plateaus_at_the_lstsq_residual():
    X, y, p = _setup(N=4, n=4, D=8, H=1, d=4)  # H D = 8 < N n = 16
    C = al.feature_matrix(X.numpy(), p.W_Q[0].numpy(), p.W_K[0].numpy(), "softmax")
    w, *_ = np.linalg.lstsq(C, y.numpy().reshape(-1), rcond=None)
    residual = 0.5 * np.sum((C @ w - y.numpy().reshape(-1)) ** 2)
    assert residual > 0.1
    h = al.train(p, X, y, train="W_V", steps=3000, log_every=100)
    assert abs(h.final_loss[0] - residual) < 1e-6 * residual
    assert np.all(np.diff(h.loss[0]) <= 1e-12)  # monotone for eta = 1/L


def test_grad_norm_uses_only_the_trained_parameters():
    X, y, p = _setup(N=2, n=3, D=6, H=2, d=3)
    Xn, WQ, WK, WV = (a.numpy() for a in (X, p.W_Q[0], p.W_K[0], p.W_V[0, ..., 0]))
    gq = al.wq_gradient(Xn, WQ, WK, WV, y.numpy(), "softmax")
    C = al.feature_matrix(Xn, WQ, WK, "softmax")
    r = C @ WV.reshape(-1) - y.numpy().reshape(-1)
    gv = C.T @ r
    f0 = 0.5 * np.sum(r**2)
    for train, want in ((("W_Q",), np.sum(gq**2)), (("W_V",), np.sum(gv**2)),
                        (("W_Q", "W_V"), np.sum(gq**2) + np.sum(gv**2))):
        h = al.train(p, X, y, train=train, lr=0.1, steps=0, f_star=0.25)
        assert h.steps.tolist() == [0]
        assert abs(h.loss[0, 0] - f0) < 1e-12 * f0
        assert abs(h.grad_norm2[0, 0] - want) < 1e-10 * want
        assert abs(h.pl_ratio[0, 0] - want / (f0 - 0.25)) < 1e-10 * want


def test_tracked_sigma_min_and_entropy_at_init():
    X, y, p = _setup(N=2, n=4, D=6, H=2, d=3)
    h = al.train(p, X, y, lr=0.1, steps=3, track_sigma_min=True, track_entropy=True)
    Xn, WQ, WK = X.numpy(), p.W_Q[0].numpy(), p.W_K[0].numpy()
    C = al.feature_matrix(Xn, WQ, WK)
    assert abs(h.sigma_min[0, 0] - np.linalg.svd(C, compute_uv=False)[-1]) < 1e-12
    S = ref_attention(Xn, WQ, WK, "softmax")
    ent = -np.sum(S * np.log(S), axis=-1).mean()
    assert abs(h.entropy[0, 0] - ent) < 1e-12
    untracked = al.train(p, X, y, lr=0.1, steps=3)
    assert np.isnan(untracked.sigma_min).all() and np.isnan(untracked.entropy).all()


def test_adam_first_step_is_a_sign_step():
    X, y, p = _setup()
    lr = 1e-3
    h = al.train(p, X, y, kernel="gaussian", optimizer="adam", lr=lr, steps=1, eps=1e-30)
    g = al.wq_gradient(X, p.W_Q[0], p.W_K[0], p.W_V[0, ..., 0], y, "gaussian")
    torch.testing.assert_close(h.params.W_Q[0], p.W_Q[0] - lr * torch.sign(g), rtol=0,
                               atol=1e-12)


def test_training_w_o_and_float32():
    X, y, p = _setup(d_v=2, out_proj=True)
    h = al.train(p, X, y, train=("W_V", "W_O"), lr=0.02, steps=200, log_every=50)
    assert h.final_loss[0] < 0.5 * h.loss[0, 0]
    assert not torch.equal(h.params.W_O, p.W_O) and torch.equal(h.params.W_Q, p.W_Q)
    p32 = p.to(dtype=torch.float32)
    h32 = al.train(p32, X, y, train=("W_V", "W_O"), lr=0.02, steps=200, log_every=50)
    assert h32.params.W_V.dtype == torch.float32
    np.testing.assert_allclose(h32.loss, h.loss, rtol=1e-4)


@pytest.mark.parametrize("kernel", al.KERNELS)
def test_float32_training_tracks_float64(kernel):
    X, y, p = _setup()
    kw = dict(kernel=kernel, train=("W_Q", "W_V"), lr=0.05, steps=50, log_every=10)
    h64 = al.train(p, X, y, **kw)
    h32 = al.train(p.to(dtype=torch.float32), X.float(), y.float(), **kw)
    assert h32.params.W_Q.dtype == torch.float32 and h32.loss.dtype == np.float32
    np.testing.assert_allclose(h32.loss, h64.loss, rtol=1e-4)


def test_divergence_stops_cleanly_with_a_hint():
    X, y, p = _setup()
    h = al.train(p, X, y, train="W_V", lr=100.0, steps=500)
    assert h.stop_reason.startswith("diverged at step ")
    assert "smaller learning rate" in h.stop_reason and "lr=100" in h.stop_reason
    k = int(h.stop_reason.split("step ")[1].split(":")[0])
    assert 0 < k < 500 and h.diverged_at[0] == k
    assert np.isfinite(h.loss).all() and h.steps[-1] == k - 1


def test_one_diverging_model_does_not_stop_the_batch():
    X, y, _ = _setup()
    p = al.init_params(M=2, H=2, D=16, d=4, init_scale=1.0, value_scale=2.0, seed=0)
    h = al.train(p, X, y, train="W_V", lr=[100.0, 0.01], steps=200, log_every=10)
    assert h.stop_reason == "completed"
    assert h.diverged_at[0] > 0 and h.diverged_at[1] == -1
    assert np.isnan(h.loss[0, -1]) and np.isfinite(h.loss[1]).all()
    h2 = al.train(p, X, y, train="W_V", lr=100.0, steps=500, log_every=10)
    assert h2.stop_reason.startswith("diverged")


def test_should_stop_and_on_step():
    X, y, p = _setup()
    calls = []
    count = iter(range(10**6))
    h = al.train(p, X, y, lr=0.3, steps=100, log_every=10,
                 on_step=lambda step, hist: calls.append((step, hist.loss.shape[1],
                                                          hist.loss[0, -1])),
                 should_stop=lambda: next(count) >= 35)
    assert h.stop_reason == "stopped"
    assert h.steps.tolist() == [0, 10, 20, 30]
    assert [c[0] for c in calls] == [0, 10, 20, 30] and [c[1] for c in calls] == [1, 2, 3, 4]
    assert [c[2] for c in calls] == h.loss[0].tolist()
    full = al.train(p, X, y, lr=0.3, steps=25, log_every=10)
    assert full.stop_reason == "completed" and full.steps.tolist() == [0, 10, 20, 25]
    assert math.isclose(full.seconds, full.seconds) and full.device == "cpu"


@pytest.mark.parametrize("kw,match", [
    (dict(train=("W_X",)), "train"),
    (dict(train=()), "train"),
    (dict(train=("W_O",)), "W_O"),
    (dict(kernel="laplace"), "kernel"),
    (dict(lr=None), "lr"),
    (dict(lr=-0.1), "lr"),
    (dict(lr=[0.1, 0.2]), "lr"),
    (dict(steps=-1), "steps"),
    (dict(log_every=0), "log_every"),
    (dict(optimizer="sgd"), "optimizer"),
    (dict(on_step=3), "on_step"),
    (dict(f_star=float("inf")), "f_star"),
])
def test_train_bad_options_name_the_parameter(kw, match):
    X, y, p = _setup()
    args = dict(lr=0.1, steps=2) | kw
    with pytest.raises((ValueError, TypeError), match=match):
        al.train(p, X, y, **args)


def test_train_bad_data_name_the_parameter():
    X, y, p = _setup()
    Xbad = X.clone()
    Xbad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="X"):
        al.train(p, Xbad, y, lr=0.1, steps=1)
    with pytest.raises(ValueError, match="y"):
        al.train(p, X, torch.full_like(y, float("inf")), lr=0.1, steps=1)
    with pytest.raises(ValueError, match="y"):
        al.train(p, X, y[:, :2], lr=0.1, steps=1)
    with pytest.raises(ValueError, match="X"):
        al.train(p, X[..., :5], y, lr=0.1, steps=1)
    with pytest.raises(TypeError, match="params"):
        al.train(p.tensors(), X, y, lr=0.1, steps=1)


@pytest.mark.parametrize("optimizer", ["gd", "adam"])
@pytest.mark.parametrize("trained", [("W_V",), ("W_Q", "W_V"), ("W_Q", "W_K", "W_V")])
def test_train_never_modifies_the_callers_params(optimizer, trained):
    # Regression: with d_v = 1 a backend once updated the caller's W_V in place (Adam).
    X = al.random_tokens(8, 4, 16, seed=0)
    p = al.init_params(M=2, H=2, D=16, d=4, init_scale=1.0, value_scale=2.0, seed=0)
    y = torch.randn(2, 8, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    before = {k: v.clone() for k, v in p.tensors().items() if v is not None}
    h = al.train(p, X, y, kernel="softmax", lr=0.01, steps=5, train=trained, optimizer=optimizer)
    for k, v in before.items():
        assert torch.equal(p.tensors()[k], v), f"train() changed the caller's {k}"
    moved = max((h.params.tensors()[k] - before[k]).abs().max().item() for k in trained)
    assert moved > 0, "the returned params should differ from the initial ones"


# --- the kernel table drives every backend ------------------------------------------------
@pytest.fixture
def third_kernel(monkeypatch):
    """A third table row, the row-normalized Gaussian as its own kernel: one KernelSpec,
    no other code (the gradient pieces come from its logit form)."""
    from attnlab import _grad, kernels, model
    from attnlab._logits import DISTANCE

    spec = kernels.KernelSpec("gauss_rows", "Gaussian rows", "#2ca02c", DISTANCE,
                              row_normalized=True)
    monkeypatch.setitem(kernels.KERNEL_TABLE, spec.name, spec)
    names = (*kernels.KERNELS, spec.name)
    for mod in (kernels, model, _grad):
        monkeypatch.setattr(mod, "KERNELS", names)
    return spec.name


@pytest.mark.parametrize("backend", [None, "autograd", "closed", "closed_small", "closed_wide"])
def test_a_new_table_row_trains_on_every_backend(monkeypatch, third_kernel, backend):
    trainer = importlib.import_module("attnlab.train")
    monkeypatch.setattr(trainer, "_BACKEND", backend)
    M = 16 if backend == "closed_wide" else 2
    X = al.random_tokens(8, 4, 6, seed=1)
    y = al.random_targets(8, 4, seed=2)
    p = al.init_params(M=M, H=2, D=6, d=3, init_scale=0.8, seed=0)
    kw = dict(train=("W_Q", "W_K", "W_V"), lr=0.05, steps=6, track_entropy=True)
    new = al.train(p, X, y, kernel=third_kernel, **kw)
    ref = al.train(p, X, y, kernel="gaussian", normalize=True, **kw)
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(new, f), getattr(ref, f))
    for k, v in ref.params.tensors().items():
        assert torch.equal(new.params.tensors()[k], v), k


def test_a_new_table_row_in_mixed_batches_and_gradients(third_kernel):
    X = al.random_tokens(3, 4, 6, seed=1)
    y = al.random_targets(3, 4, seed=2)
    p = al.init_params(M=3, H=2, D=6, d=3, init_scale=0.8, seed=0)
    kinds = ["gaussian", third_kernel, "softmax"]
    kw = dict(train=("W_Q", "W_V"), lr=0.05, steps=5)
    mixed = al.train(p, X, y, kernel=kinds, **kw)  # three kernels in one batch
    for m, k in enumerate(kinds):
        one = al.train(p.select(m), X, y, kernel=k, **kw)
        _close(mixed.loss[m], one.loss[0], 1e-12)
    W = p.select(0)
    args = (X, W.W_Q[0], W.W_K[0], W.W_V[0, ..., 0], y)
    torch.testing.assert_close(al.wq_gradient(*args, third_kernel),
                               al.wq_gradient(*args, "gaussian", normalize=True),
                               rtol=0, atol=0)


def test_forward_and_train_share_their_input_checks():
    X, y, p = _setup()
    bad = [(dict(X=X[..., :3]), ValueError, "X must have shape"),
           (dict(X=[[1.0]]), TypeError, "X must be"),
           (dict(kernel="relu"), ValueError, "kernel"),
           (dict(scale=0.0), ValueError, "scale"),
           (dict(params={"W_Q": p.W_Q}), TypeError, "params")]
    for change, err, msg in bad:
        args = dict(params=p, X=X, kernel="softmax", scale=None) | change
        with pytest.raises(err, match=msg):
            al.forward(args["params"], args["X"], args["kernel"], scale=args["scale"])
        with pytest.raises(err, match=msg):
            al.train(args["params"], args["X"], y, kernel=args["kernel"], scale=args["scale"],
                     train="W_V", lr=0.1, steps=1)
