"""Token group lasso: fast solver vs cvxpy, duality gap, certificate, path (attnlab.convex)."""

import numpy as np
import pytest
import torch

from attnlab import convex

# (N, n, d, c): Gram mode (N > n d), direct mode (N < n d), vector outputs
CASES = [(30, 5, 3, None), (6, 5, 3, None), (25, 4, 3, 2)]


def _data(N, n, d, c, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, n, d)) / np.sqrt(d)
    y = rng.standard_normal((N,) if c is None else (N, c))
    return X, y


def _objective(Z, X, y, beta):
    """Independent numpy evaluation of P(Z) (loops over outputs)."""
    Z3 = Z[None] if Z.ndim == 2 else Z
    Y = y[:, None] if y.ndim == 1 else y
    total = 0.0
    for l in range(Z3.shape[0]):
        pred = np.array([np.sum(Xi * Z3[l]) for Xi in X])
        total += 0.5 * np.sum((pred - Y[:, l]) ** 2)
        total += beta * sum(np.linalg.norm(row) for row in Z3[l])
    return total


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("case", CASES)
def test_fast_matches_cvxpy(case, seed):
    X, y = _data(*case, seed)
    beta = 0.3 * convex.beta_max(X, y)
    fast = convex.fit(X, y, beta, tol=1e-10)
    ref = convex.fit(X, y, beta, solver="cvxpy", tol=1e-10)
    assert fast.converged and fast.rel_gap <= 1e-10
    assert abs(fast.primal - ref.primal) <= 1e-6 * abs(ref.primal)
    assert np.abs(fast.Z - ref.Z).max() <= 1e-4
    assert fast.Z.shape == ref.Z.shape == ((case[1], case[2]) if case[3] is None
                                           else (case[3], case[1], case[2]))
    # the reported primal is the objective of the returned Z, evaluated independently
    assert fast.primal == pytest.approx(_objective(fast.Z, X, y, beta), rel=1e-12)
    # weak duality: the dual value (a certified lower bound) is below cvxpy's optimum
    assert fast.dual <= ref.primal * (1 + 1e-9)


@pytest.mark.parametrize("tol", [1e-4, 1e-8])
def test_gap_within_tolerance_and_dual_feasible(tol):
    X, y = _data(40, 6, 5, None, 3)
    beta = 0.2 * convex.beta_max(X, y)
    res = convex.fit(X, y, beta, tol=tol)
    lam = np.asarray(res.lam)
    dual = lam @ y - 0.5 * lam @ lam  # independent dual objective
    primal = _objective(res.Z, X, y, beta)
    assert (primal - dual) / max(1.0, primal) <= tol
    assert res.rel_gap == pytest.approx((primal - dual) / max(1.0, primal), abs=1e-12)
    cert = np.linalg.norm(np.einsum("i,ikd->kd", lam, X), axis=1)
    assert cert.max() <= beta * (1 + 1e-12)


@pytest.mark.parametrize("case", CASES)
def test_certificate_equals_beta_on_active_tokens(case):
    X, y = _data(*case, 4)
    beta = 0.4 * convex.beta_max(X, y)
    res = convex.fit(X, y, beta, tol=1e-12)
    lam = np.asarray(res.lam)
    Lam = lam[:, None] if lam.ndim == 1 else lam
    Z3 = res.Z[None] if res.Z.ndim == 2 else res.Z
    active = [res.active] if case[3] is None else res.active
    n_act = sum(len(a) for a in active)
    assert 0 < n_act < Z3.shape[0] * case[1]  # the instance has both kinds of tokens
    for l in range(Z3.shape[0]):
        g = np.einsum("i,ikd->kd", Lam[:, l], X)  # sum_i lam_i x_ik
        norms = np.linalg.norm(g, axis=1)
        nz = np.linalg.norm(Z3[l], axis=1) > 0
        assert np.array_equal(np.flatnonzero(nz), active[l])
        np.testing.assert_allclose(norms[nz], beta, rtol=1e-5)
        assert norms.max() <= beta * (1 + 1e-12)
        # KKT: z_k is parallel to sum_i lam_i x_ik on active tokens
        for k in np.flatnonzero(nz):
            cos = g[k] @ Z3[l, k] / (norms[k] * np.linalg.norm(Z3[l, k]))
            assert cos == pytest.approx(1.0, abs=1e-6)
    cert = np.asarray(convex.dual_certificate(res.lam, X))
    np.testing.assert_allclose(cert.reshape(-1), np.asarray(res.certificate).reshape(-1))


def test_active_set_agrees_with_cvxpy():
    X, y = _data(30, 8, 3, None, 5)
    beta = 0.5 * convex.beta_max(X, y)
    fast = convex.fit(X, y, beta, tol=1e-12)
    ref = convex.fit(X, y, beta, solver="cvxpy", tol=1e-10)
    assert 0 < len(fast.active) < 8
    np.testing.assert_array_equal(fast.active, ref.active)


def test_regularization_path_sparsity():
    # N < n: the Caratheodory bound N + 1 is below the number of tokens
    X, y = _data(4, 12, 2, None, 0)
    bmax = convex.beta_max(X, y)
    betas = np.geomspace(1e-3 * bmax, 1.2 * bmax, 25)
    path = convex.regularization_path(X, y, betas, tol=1e-10)
    counts = [r.n_active for r in path]
    assert all(a >= b for a, b in zip(counts, counts[1:], strict=False)), counts
    assert max(counts) <= 4 + 1
    assert counts[-1] == 0 and counts[0] >= 3
    assert [r.beta for r in path] == pytest.approx(list(betas))
    # warm-started path solutions agree with cold solves
    for i in (3, 12, 20):
        cold = convex.fit(X, y, betas[i], tol=1e-10)
        assert path[i].primal == pytest.approx(cold.primal, rel=1e-8)


def test_beta_max_gives_zero_solution():
    X, y = _data(20, 5, 3, None, 1)
    bmax = convex.beta_max(X, y)
    above = convex.fit(X, y, 1.001 * bmax)
    below = convex.fit(X, y, 0.99 * bmax)
    assert above.n_active == 0 and np.all(above.Z == 0)
    assert below.n_active >= 1


def test_torch_in_torch_out_and_gram_modes_agree():
    X, y = _data(30, 5, 3, None, 2)
    beta = 0.3 * convex.beta_max(X, y)
    res_t = convex.fit(torch.from_numpy(X), torch.from_numpy(y), beta, tol=1e-10)
    assert isinstance(res_t.Z, torch.Tensor) and isinstance(res_t.lam, torch.Tensor)
    res_direct = convex.fit(X, y, beta, tol=1e-10, gram=False)
    assert isinstance(res_direct.Z, np.ndarray)
    np.testing.assert_allclose(res_t.Z.numpy(), res_direct.Z, atol=1e-5)
    cv_gram = convex.fit(X, y, beta, solver="cvxpy", cvx_form="gram", tol=1e-10)
    assert cv_gram.primal == pytest.approx(res_direct.primal, rel=1e-7)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_gpu_matches_cpu():
    X, y = _data(300, 6, 4, 2, 0)
    beta = 0.3 * convex.beta_max(X, y)
    cpu = convex.fit(X, y, beta, tol=1e-10)
    gpu = convex.fit(X, y, beta, tol=1e-10, device="cuda")
    assert gpu.device.startswith("cuda")
    assert gpu.primal == pytest.approx(cpu.primal, rel=1e-9)


def test_zero_data_is_handled():
    X = np.zeros((3, 2, 2))
    y = np.ones(3)
    res = convex.fit(X, y, 0.5)
    assert res.n_active == 0 and res.primal == pytest.approx(1.5)
