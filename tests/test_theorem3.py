"""The reconstructed Theorem 3 (attnlab.dynamics.theorem3): the condition checker against an
independent NumPy computation, a case where the condition fails (large teacher distance) and
one where it holds (tiny distance), and convergence inside the ball where it holds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import attnlab as al
from attnlab import dynamics as dy

torch.set_num_threads(1)
CFG = dy.T3.replace(N=3, n=3, D=12, d=3, steps=400)  # N n = 9 <= D = 12


def ref_output(X, WQ, WK, WV, kernel):
    """One head: X (N, n, D), WQ/WK (D, d), WV (D,) -> (N, n), plain NumPy."""
    d = WQ.shape[-1]
    Q, K = X @ WQ, X @ WK
    if kernel == "softmax":
        L = Q @ K.transpose(0, 2, 1) / np.sqrt(d)
        E = np.exp(L - L.max(-1, keepdims=True))
        S = E / E.sum(-1, keepdims=True)
    else:
        S = np.exp(-((Q[:, :, None] - K[:, None]) ** 2).sum(-1) / (2 * np.sqrt(d)))
    return np.einsum("ikj,ij->ik", S, X @ WV)


def fd_jacobian(X, WQ, WK, WV, kernel, eps=1e-6):
    cols = []
    for idx in np.ndindex(*WQ.shape):
        Wp, Wm = WQ.copy(), WQ.copy()
        Wp[idx] += eps
        Wm[idx] -= eps
        cols.append(((ref_output(X, Wp, WK, WV, kernel) - ref_output(X, Wm, WK, WV, kernel))
                     / (2 * eps)).reshape(-1))
    return np.stack(cols, 1)


def _problem(kernel, delta, seeds=(0, 1)):
    return dy.make_problem([CFG.replace(kernel=kernel, delta=delta, seed=s) for s in seeds])


@pytest.mark.parametrize("kernel", al.KERNELS)
def test_check_matches_numpy(kernel):
    prob = _problem(kernel, 0.5)
    chk = dy.problem_check(prob)
    X, y, p = prob.X.numpy(), prob.y.numpy(), prob.params
    for m in range(2):
        Xm = X if X.ndim == 3 else X[m]
        args = (Xm, p.W_Q[m, 0].numpy(), p.W_K[m, 0].numpy(), p.W_V[m, 0, :, 0].numpy())
        J = fd_jacobian(*args, kernel)
        lam = np.linalg.eigvalsh(J @ J.T)
        f0 = 0.5 * np.sum((ref_output(*args, kernel) - y[m]) ** 2)
        assert chk.lam0[m] == pytest.approx(lam[0], rel=1e-6)
        assert chk.lam_max0[m] == pytest.approx(lam[-1], rel=1e-6)
        assert chk.f0[m] == pytest.approx(f0, rel=1e-10)
        assert chk.R[m] == pytest.approx(2 * math.sqrt(2 * f0 / lam[0]), rel=1e-6)
        assert chk.margin[m] == pytest.approx(
            lam[0] / (4 * math.sqrt(2) * chk.lip_sampled[m] * math.sqrt(f0)), rel=1e-6)
        # the sampled Lipschitz estimate is a real ratio: recompute one sampled point in NumPy
        W1 = args[1] + 0.5 * chk.R[m] * (np.ones_like(args[1]) / math.sqrt(args[1].size))
        J1 = fd_jacobian(Xm, W1, *args[2:], kernel)
        ratio = np.linalg.norm(J1 - J, 2) / (0.5 * chk.R[m])
        assert ratio > 0 and chk.lip_sampled[m] > 0
        assert chk.dist_teacher[m] > 0


def test_query_gradients_give_the_jacobian():
    for kernel in al.KERNELS:
        prob = _problem(kernel, 1.0)
        G, Z = dy.query_gradients(prob.X, prob.params, kernel)
        X = prob.X if prob.X.ndim == 4 else prob.X.expand(2, *prob.X.shape)
        J = torch.einsum("mina,mhinb->minhab", X, G).reshape(2, 9, -1)
        assert torch.allclose(J, dy.wq_jacobian(prob.X, prob.params, kernel), rtol=1e-10,
                              atol=1e-14)
        assert torch.allclose(Z, al.forward(prob.params, prob.X, kernel))


@pytest.mark.parametrize("kernel", al.KERNELS)
def test_condition_fails_far_and_holds_near(kernel):
    # Far teacher: the margin with the sampled L is < 1, and since the true L is at least the
    # sampled one, the condition provably fails.
    far = dy.problem_check(_problem(kernel, 2.0))
    assert not far.holds.any() and np.all(far.margin < 1)
    near = dy.problem_check(_problem(kernel, 0.001))
    assert near.holds.all() and np.all(near.margin > 1)
    # f_0 grows with delta, lambda_0 does not depend on it (same initialization)
    assert np.all(far.f0 > 100 * near.f0)
    np.testing.assert_allclose(far.lam0, near.lam0, rtol=1e-12)


@pytest.mark.parametrize("kernel", al.KERNELS)
def test_converges_inside_the_ball_where_the_condition_holds(kernel):
    st = dy.theorem3_study(CFG.replace(steps=600), [0, 1], deltas=(0.001,),
                           protocols={"curvature": dy.PROTOCOLS["curvature"]})
    k = st.kernels.index(kernel)
    assert st.check.holds[k].all()
    assert np.all(st.dist_T[0, k] <= st.check.R[k])
    # the theorem's rate at flow time eta t: f_t <= f_0 exp(-lambda_0 eta t / 2), every step
    res = st.sweeps["curvature"]
    for m in range(2):
        f = res.loss[k, 0, m]
        bound = f[0] * np.exp(-st.check.lam0[k, 0, m] * st.lr[0, k, 0, m] * res.steps / 2)
        assert np.all(f <= bound * (1 + 1e-9))
        assert f[-1] < 1e-3 * f[0]
    assert st.counts("curvature", kernel, "holds").n == 2


def test_study_shapes_and_counts():
    st = dy.theorem3_study(CFG.replace(steps=50), range(3), deltas=(0.001, 2.0))
    assert st.ratio.shape == (3, 2, 2, 3) and st.check.holds.shape == (2, 2, 3)
    c = st.counts("curvature", "softmax", "all")
    assert c.n == 6
    assert st.only("common 0.1", "gaussian").n == 6
    with pytest.raises(ValueError, match="protocol"):
        st.counts("adam", "softmax")
    with pytest.raises(ValueError, match="where"):
        st.counts("curvature", "softmax", "sometimes")


def test_bad_input_names_the_parameter():
    prob = _problem("softmax", 1.0)
    with pytest.raises(ValueError, match="kernel"):
        dy.theorem3_check(prob.X, prob.params, prob.y, "cosine")
    with pytest.raises(ValueError, match="n_dirs"):
        dy.theorem3_check(prob.X, prob.params, prob.y, n_dirs=-1)
    with pytest.raises(ValueError, match="fracs"):
        dy.theorem3_check(prob.X, prob.params, prob.y, fracs=(1.5,))
    with pytest.raises(TypeError, match="prob"):
        dy.problem_check("not a problem")
    with pytest.raises(ValueError, match="teacher"):
        dy.theorem3_study(dy.C5, range(2))
