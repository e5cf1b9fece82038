"""Recovery (Proposition 1, corrected), forward map and trained nonconvex heads."""

import numpy as np
import pytest

from attnlab import convex


def _data(N=40, n=6, d=5, c=None, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, n, d)) / np.sqrt(d)
    Zt = np.zeros((n, d))
    Zt[1], Zt[n - 2] = 2 * rng.standard_normal(d), 2 * rng.standard_normal(d)
    y = np.einsum("ikd,kd->i", X, Zt) + 0.1 * rng.standard_normal(N)
    if c is not None:
        y = np.stack([y] + [rng.standard_normal(N) for _ in range(c - 1)], axis=1)
    return X, y


def _head_objective_loop(w, v, b, X, y, beta):
    """Independent evaluation of the head objective (eq. 8 / 11) with explicit loops."""
    B = b[:, None] if b.ndim == 1 else b
    Y = y[:, None] if y.ndim == 1 else y
    loss = 0.0
    for i in range(X.shape[0]):
        for l in range(Y.shape[1]):
            f = sum(w[j] @ X[i] @ v[j] * B[j, l] for j in range(len(w)))
            loss += 0.5 * (f - Y[i, l]) ** 2
    reg = sum(v[j] @ v[j] + np.abs(B[j]).sum() ** 2 for j in range(len(w)))
    return loss + 0.5 * beta * reg


@pytest.mark.parametrize("beta", [0.1, 1.0, 5.0])
def test_recovered_heads_reach_convex_optimum(beta):
    X, y = _data()
    res = convex.fit(X, y, beta, tol=1e-12)
    ref = convex.fit(X, y, beta, solver="cvxpy")  # Clarabel default tolerances
    w, v, b = convex.recover_heads(res.Z)
    assert w.shape == (res.n_active, 6) and v.shape == (res.n_active, 5)
    assert b.shape == (res.n_active,)
    # one-hot attention on the active tokens
    assert np.array_equal(np.sort(np.argmax(w, axis=1)), res.active)
    assert np.all(w.max(axis=1) == 1.0) and np.all(w.sum(axis=1) == 1.0)
    obj = _head_objective_loop(w, v, b, X, y, beta)
    assert obj == pytest.approx(res.primal, rel=1e-10)
    # certified: the dual value is a lower bound on the optimum, 1e-12 below the primal
    assert res.dual <= obj <= res.dual + 1e-12 * max(1.0, res.dual)
    assert obj == pytest.approx(ref.primal, rel=1e-7)
    assert convex.head_objective(w, v, b, X, y, beta) == pytest.approx(obj, rel=1e-12)
    np.testing.assert_allclose(convex.heads_to_Z(w, v, b), res.Z, atol=1e-14)


def test_recovery_vector_outputs():
    X, y = _data(c=2, seed=2)
    beta = 1.0
    res = convex.fit(X, y, beta, tol=1e-12)
    w, v, b = convex.recover_heads(res.Z)
    assert b.shape == (res.n_active, 2) and np.all((b != 0).sum(axis=1) == 1)
    obj = _head_objective_loop(w, v, b, X, y, beta)
    assert obj == pytest.approx(res.primal, rel=1e-10)
    # Theorem 2: the vector problem is the sum of the c scalar problems
    sep = sum(convex.fit(X, y[:, l], beta, tol=1e-12).primal for l in range(2))
    assert res.primal == pytest.approx(sep, rel=1e-9)


def test_forward_map_lower_bounds_heads():
    """Any heads cost at least the convex objective of their Z (so never below the optimum)."""
    rng = np.random.default_rng(0)
    X, y = _data()
    for _ in range(5):
        w = rng.dirichlet(np.ones(6), size=3)
        v, b = rng.standard_normal((3, 5)), rng.standard_normal(3)
        Z = convex.heads_to_Z(w, v, b)
        np.testing.assert_allclose(convex.predict(Z, X), np.einsum("jk,ikd,jd,j->i", w, X, v, b))
        assert convex.head_objective(w, v, b, X, y, 1.0) >= convex.primal_objective(Z, X, y, 1.0)


def test_trained_heads_reach_optimum_with_enough_heads():
    X, y = _data(N=30)
    beta = 1.0
    opt = convex.fit(X, y, beta, tol=1e-12)
    assert 2 <= opt.n_active <= 3
    wide = convex.train_heads(X, y, beta, h=6, steps=2000, seed=0)
    assert wide.stop_reason == "completed"
    assert wide.objective.shape == (2001,)
    assert (wide.final - opt.primal) / opt.primal <= 1e-3
    assert wide.best >= opt.dual - 1e-9  # never below the certified lower bound
    # attention concentrates on the active tokens (weighted by the head's size)
    size = np.abs(wide.b) * np.linalg.norm(wide.v, axis=1)
    mass = (size[:, None] * wide.w).sum(axis=0)
    assert mass[opt.active].sum() / mass.sum() > 0.95
    narrow = convex.train_heads(X, y, beta, h=1, steps=1000, seed=0)
    assert narrow.best >= opt.dual - 1e-9
    assert (narrow.final - opt.primal) / opt.primal > 0.05  # one head stalls above


def test_train_heads_vector_outputs_never_below():
    X, y = _data(N=20, n=4, d=3, c=2, seed=3)
    opt = convex.fit(X, y, 0.5, tol=1e-12)
    res = convex.train_heads(X, y, 0.5, h=16, steps=1500, seed=0)
    assert res.b.shape == (16, 2)
    assert res.best >= opt.dual - 1e-9
    # the squared-l1 penalty on b is nonsmooth: Adam gets close but slowly (measured ~0.5 %)
    assert (res.final - opt.primal) / opt.primal <= 2e-2


def test_train_heads_divergence_stops_cleanly():
    X, y = _data(N=10)
    res = convex.train_heads(X, y * 1e200, 1.0, h=2, steps=50, lr=1e3, optimizer="gd")
    assert res.stop_reason.startswith("diverged at step")
