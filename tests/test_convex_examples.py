"""Documented counterexamples (convex-attention.md §1.2, §2.2, §2.3) and the gated block."""

import cvxpy as cp
import numpy as np
import pytest

from attnlab.convex import examples, gated, relaxation


def test_two_token_relaxation_counterexample():
    ex = relaxation.two_token_example(beta=1.0, loss_factor=1.0)
    assert ex.opt3 == pytest.approx(2.0, abs=1e-6)  # stated: opt(3) = 2
    assert ex.opt3 >= ex.opt3_bound - 1e-12
    assert ex.value4_onehot == pytest.approx(1.0, abs=1e-12)  # stated: (4) reaches 1
    # (4) is strictly below (3): a relaxation, not a reformulation. Its optimum is 7/8
    # (min_p 2 (p - 1)^2 + |p| at p = 3/4), below the stated witness value 1.
    assert ex.opt4 == pytest.approx(7 / 8, abs=1e-9)
    assert ex.opt4 <= ex.opt4_numeric <= ex.opt4 + 1e-3
    # rows [3/4, 1/4]: W X = (1/2, 1/2); loss 2 (1/2)^2 + reg 1 = 3/2 (the note's 7/4 is off)
    assert ex.value4_34 == pytest.approx(1.5, abs=1e-12)
    assert ex.value4_34_best == pytest.approx(1.5, abs=1e-8)


def test_two_token_book_convention():
    ex = relaxation.two_token_example(beta=1.0, loss_factor=0.5, restarts=4)
    assert ex.opt3 == pytest.approx(1.0, abs=1e-6)
    assert ex.opt4 == pytest.approx(0.75, abs=1e-9)  # min_p (p - 1)^2 + |p| at p = 1/2


def test_shared_attention_reaches_every_softmax_output_per_sample():
    rng = np.random.default_rng(0)
    import torch

    X = torch.from_numpy(rng.standard_normal((1, 3, 2)))
    WQ, WK, WV, WO = (torch.from_numpy(rng.standard_normal(s)) for s in
                      ((2, 2), (2, 2), (2, 1), (1, 1)))
    S = torch.softmax(X[0] @ WQ @ WK.T @ X[0].T, dim=-1)
    np.testing.assert_allclose(relaxation.softmax_attention_output(X, WQ, WK, WV, WO),
                               relaxation.shared_attention_output(S, X, WV, WO))


def test_theorem1_half_factor():
    ex = examples.theorem1_half_factor_example(beta=1.0)
    assert ex.printed_convex == pytest.approx(0.5, abs=1e-9)  # stated: 1/2 in (9)
    assert ex.corrected_convex == pytest.approx(1.0, abs=1e-9)
    assert ex.heads_lower_bound == 1.0
    assert ex.heads_trained >= 1.0 - 1e-12  # stated: at least 1 in (8)
    assert ex.heads_trained == pytest.approx(1.0, abs=1e-6)


def test_width_counterexample():
    ex = examples.width_counterexample(beta=0.125, loss_factor=1.0)
    assert ex.convex_at_witness == pytest.approx(0.25, abs=1e-12)  # stated: <= 1/4
    assert ex.convex_opt <= 0.25
    # per token: min (z - 1)^2 + z / 8 at z = 15/16 -> 31/256, two tokens
    assert ex.convex_opt == pytest.approx(31 / 128, abs=1e-9)
    np.testing.assert_allclose(ex.Z_opt[:, 0], [15 / 16, -15 / 16], atol=1e-6)
    assert ex.one_head_opt >= 1.0  # stated: every one-head model costs at least 1
    assert ex.one_head_trained >= 1.0
    assert ex.one_head_opt == pytest.approx(1 + 31 / 256, abs=1e-6)
    assert ex.two_heads_trained == pytest.approx(ex.convex_opt, rel=1e-3)


def test_prop1_ej_versus_ekj():
    ex = examples.prop1_example(beta=0.125)
    np.testing.assert_allclose(ex.Z, [0.0, 7 / 8], atol=1e-9)  # stated: Z = (0, 7/8)
    assert ex.value == pytest.approx(15 / 128, abs=1e-10)  # stated: 15/128
    assert ex.printed_prediction == 0.0  # stated: printed map predicts 0
    assert ex.corrected_prediction == pytest.approx(7 / 8, abs=1e-9)  # corrected: 7/8
    assert ex.corrected_objective == pytest.approx(15 / 128, abs=1e-10)
    assert ex.printed_objective > ex.value + 0.4


def test_gated_block_matches_direct_cvxpy():
    rng = np.random.default_rng(0)
    N, n, d, P, beta = 25, 3, 2, 4, 0.3
    X = rng.standard_normal((N, n, d))
    y = rng.standard_normal(N)
    G = gated.make_gates(P, d, seed=1)
    res = gated.fit_gated(X, y, beta, G, tol=1e-10)
    # independent formulation straight from the formula, with explicit masks
    Z = [[cp.Variable(d) for _ in range(n)] for _ in range(P)]
    pred = []
    for i in range(N):
        terms = [float(X[i, k] @ G[p] >= 0) * (X[i, k] @ Z[p][k])
                 for p in range(P) for k in range(n)]
        pred.append(cp.sum(cp.hstack(terms)))
    obj = 0.5 * cp.sum_squares(cp.hstack(pred) - y)
    obj = obj + beta * sum(cp.norm(Z[p][k]) for p in range(P) for k in range(n))
    ref = cp.Problem(cp.Minimize(obj))
    ref.solve(solver="CLARABEL")
    assert res.primal == pytest.approx(ref.value, rel=1e-6)
    assert res.Z.shape == (P * n, d)
    np.testing.assert_allclose(gated.gated_predict(res.Z, X, G),
                               gated.gated_predict(res.Z.reshape(P, n, d), X, G))
    masks = gated.gate_masks(X, G)
    assert masks.shape == (N, P, n) and set(np.unique(masks)) <= {0.0, 1.0}
