"""Claims of Part I (convex attention) that the chapters state: each test would fail on the
sentence or code it replaced (issue "What the book teaches must hold beyond its seeds")."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab import convex
from attnlab.convex.gated import lifted_design, make_gates
from attnlab.convex.relaxation import minimize_eq3, minimize_eq4, opt_eq4_scalar
from attnlab.stats import count

# The three-sample example of relaxation.md: tokens (1, 3), (3, 1), (2, 2), target the larger.
X3 = np.array([[[1.0], [3.0]], [[3.0], [1.0]], [[2.0], [2.0]]])
Y3 = np.array([[[3.0], [3.0]], [[3.0], [3.0]], [[2.0], [2.0]]])


def test_relaxation_softmax_at_beta_one_is_above_the_floor_but_below_opt4():
    """The page once said softmax's 1.898 at beta = 1 was "below the floor 4/3"."""
    v3 = minimize_eq3(X3, Y3, 1.0, restarts=8)
    assert v3 == pytest.approx(1.898, abs=5e-3)     # the prose quotes 1.898
    assert v3 > 4 / 3                                # above the linear floor ...
    o4 = opt_eq4_scalar(X3, Y3, 1.0)
    assert o4 == pytest.approx(85 / 32, abs=1e-6)    # ... and below opt(4) = 2.656
    assert v3 < o4 - 0.5


@pytest.mark.parametrize("beta", [0.01, 0.1, 1.0, 3.0])
def test_opt_eq4_scalar_closed_form_and_adam_upper_bound(beta):
    exact = opt_eq4_scalar(X3, Y3, beta)
    assert exact == pytest.approx(44 - (64 - beta) ** 2 / 96, abs=1e-6)
    assert exact >= 4 / 3 - 1e-9                     # the floor holds at every beta
    # Adam on softmax logits approaches it from above, never below
    assert minimize_eq4(X3, Y3, beta, restarts=4, steps=600) >= exact - 1e-7


def test_opt_eq4_scalar_two_token_and_errors():
    X = np.array([[[1.0], [-1.0]]])
    assert opt_eq4_scalar(X, np.ones((1, 2, 1)), 1.0) == pytest.approx(7 / 8, abs=1e-6)
    with pytest.raises(ValueError, match="d = c = 1"):
        opt_eq4_scalar(np.ones((2, 2, 2)), np.ones((2, 2, 1)), 1.0)
    with pytest.raises(ValueError, match="beta"):
        opt_eq4_scalar(X, np.ones((1, 2, 1)), 0.0)


def _gated_data():
    rng_g = np.random.default_rng(0)
    X_all = rng_g.normal(size=(1100, 6, 4))
    u = rng_g.normal(size=(2, 4))
    y_all = (np.maximum(X_all[:, 1] @ u[0], 0) - np.maximum(X_all[:, 4] @ u[1], 0)
             + 0.1 * rng_g.normal(size=1100))
    return X_all[:100], y_all[:100]


@pytest.mark.parametrize("P, tokens", [(2, list(range(6))), (8, [1, 4]), (32, [1, 4])])
def test_gated_active_tokens_depend_on_the_number_of_gates(P, tokens):
    """ex-vo-gates once said "the active pairs stay on tokens 1 and 4" for every P."""
    Xg, yg = _gated_data()
    X_lift = lifted_design(Xg, make_gates(P, 4, seed=1))
    r = convex.fit(X_lift, yg, 0.1 * convex.beta_max(X_lift, yg))
    assert sorted({int(a) % 6 for a in r.active}) == tokens


def _stall_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 6, 4))
    Z = np.zeros((6, 4))
    Z[[1, 4]] = rng.normal(size=(2, 4))
    y = convex.predict(Z, X) + 0.1 * rng.normal(size=30)
    return X, y, 0.3 * convex.beta_max(X, y)


def test_spurious_stall_dead_heads_below_beta_while_a_token_exceeds_it():
    """sparsity.md once said spare heads are candidates that let wide models escape."""
    X, y, beta = _stall_data()
    opt = convex.fit(X, y, beta)
    run = convex.train_heads(X, y, beta, h=6, lr=0.1, steps=3000, seed=0)
    gap = run.final / opt.primal - 1
    assert 5e-4 < gap < 3e-3                        # a stall just above P*, not the optimum
    size = np.abs(run.b) * np.linalg.norm(run.v, axis=1)
    dead = size < 1e-3 * size.max()
    assert dead.sum() >= 4                          # one live head, the others dead
    resid = y - convex.predict(convex.heads_to_Z(run.w, run.v, run.b), X)
    c = convex.dual_certificate(resid, X)
    assert c.max() > 1.05 * beta                    # a token the optimum would still use ...
    head = convex.head_certificate(run.w, resid, X)
    # ... that no dead head can grow toward: those off the live heads' tokens are strictly
    # below beta; those on a live head's token sit within 5 % of it (c_k = beta there at a
    # stationary point, and the run is 3000 steps in), well below the unused token.
    on_live = dead & np.isin(run.w.argmax(axis=1), run.w[~dead].argmax(axis=1))
    assert head[dead & ~on_live].max() < beta
    if on_live.any():
        assert abs(head[on_live].max() / beta - 1) < 0.05 and head[on_live].max() < c.max()


def test_zero_is_a_spurious_local_minimum_with_min_norm_attention():
    X, y, beta = _stall_data()
    w0 = convex.min_norm_attention(y, X)
    assert w0.min() >= 0 and w0.sum() == pytest.approx(1.0)
    assert convex.head_certificate(w0[None], y, X)[0] < beta < convex.dual_certificate(y, X).max()
    # local minimum in (v, b) of a dead head: small moves in any direction do not help
    rng = np.random.default_rng(1)
    base = convex.head_objective(w0[None], np.zeros((1, 4)), np.zeros(1), X, y, beta)
    for _ in range(20):
        v, b = 1e-3 * rng.normal(size=(1, 4)), 1e-3 * rng.normal(size=1)
        assert convex.head_objective(w0[None], v, b, X, y, beta) > base
    # while a one-hot head on the most correlated token does help
    k = int(np.argmax(convex.dual_certificate(y, X)))
    g = np.einsum("i,id->d", y, X[:, k])
    v, b = 1e-3 * g[None] / np.linalg.norm(g), np.array([1e-3])
    assert convex.head_objective(np.eye(6)[k][None], v, b, X, y, beta) < base


def test_head_certificate_of_one_hot_heads_is_the_token_certificate():
    X, y, _ = _stall_data()
    np.testing.assert_allclose(convex.head_certificate(np.eye(6), y, X),
                               convex.dual_certificate(y, X), rtol=1e-12)
    with pytest.raises(ValueError, match="lam must have shape"):
        convex.head_certificate(np.eye(6), np.ones((30, 2)), X)


def test_batch_matches_single_runs_and_pads_widths():
    X, y, beta = _stall_data()
    batch = convex.train_heads_batch(X, y, beta, [2, 4], [0, 3], steps=200, lr=0.1)
    assert batch.h.tolist() == [2, 2, 4, 4] and batch.seed.tolist() == [0, 3, 0, 3]
    assert batch.w.shape == (4, 4, 6)
    for r in range(4):
        one = convex.train_heads(X, y, beta, int(batch.h[r]), steps=200, lr=0.1,
                                 seed=int(batch.seed[r]))
        np.testing.assert_allclose(batch.objective[r], one.objective, rtol=1e-9)
        np.testing.assert_allclose(batch.run(r).w, one.w, atol=1e-8)
    assert np.all(batch.w[:2, 2:] == 0)             # padded heads stay empty
    with pytest.raises(ValueError, match="seeds"):
        convex.train_heads_batch(X, y, beta, 2, [])


def test_width_statistic_small():
    """Success counts per width over 32 seeds (a small version of sparsity.md's figure):
    the minimal width stalls in some runs; no width ever goes below P*."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 5, 3))
    Z = np.zeros((5, 3))
    Z[[1, 3]] = rng.normal(size=(2, 3))
    y = convex.predict(Z, X) + 0.1 * rng.normal(size=20)
    beta = 0.1 * convex.beta_max(X, y)
    opt = convex.fit(X, y, beta, tol=1e-12)
    m = opt.n_active
    widths = [m, 5]
    batch = convex.train_heads_batch(X, y, beta, widths, range(32), steps=600, lr=0.1,
                                     schedule="cosine")
    gap = batch.final / opt.primal - 1
    assert gap.min() >= -1e-9                       # never below the convex optimum
    counts = [count(gap[batch.h == h] <= 1e-2) for h in widths]
    assert counts[0].n == 32 and counts[1].n == 32
    assert counts[0].k < 32                         # the minimal width stalls in some runs
    assert counts[1].k > counts[0].k
