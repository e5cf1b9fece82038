"""Tests for attnlab.convex.book_helpers: the sequence-output program of the Part I chapters."""

import numpy as np
import pytest

from attnlab.convex.book_helpers import (
    SequenceFit,
    fit_sequence,
    recover_sequence_heads,
    sequence_head_objective,
)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(6, 3, 2))
    Y = rng.normal(size=(6, 3, 2))
    return X, Y, 0.5


@pytest.fixture(scope="module")
def solved(data):
    X, Y, beta = data
    return fit_sequence(X, Y, beta)


def test_recovered_heads_reproduce_the_optimum(data, solved):
    X, Y, beta = data
    W, V, b = recover_sequence_heads(solved)
    d, c = X.shape[2], Y.shape[2]
    assert 1 <= len(b) <= 2 * d * c
    assert np.allclose(W.sum(axis=2), 1.0) and W.min() >= 0
    value = sequence_head_objective(W, V, b, X, Y, beta)
    assert abs(value - solved.value) <= 1e-6 * solved.value


def test_rows_of_each_coefficient_matrix_have_equal_sums(solved):
    sums_plus = solved.C_plus.sum(axis=3)  # (d, c, n)
    assert np.allclose(sums_plus, solved.t_plus[:, :, None], atol=1e-6)


def test_random_heads_never_beat_the_convex_optimum(data, solved):
    X, Y, beta = data
    n, d, c = X.shape[1], X.shape[2], Y.shape[2]
    for seed in range(5):
        rng = np.random.default_rng(10 + seed)
        W = rng.dirichlet(np.ones(n), size=(4, n))
        V = rng.normal(size=(4, d, c))
        b = rng.normal(size=4)
        assert sequence_head_objective(W, V, b, X, Y, beta) >= solved.value - 1e-8


def test_printed_program_is_strictly_lower_on_equal_tokens():
    # All tokens equal: every head model outputs equal rows, so the value is >= sum x_i^2 = 14
    # (targets (x, -x)); the printed program fits different rows for a penalty <= 2 beta.
    x = np.array([1.0, 2.0, 3.0])
    X = np.repeat(x[:, None, None], 2, axis=1)
    Y = np.stack([x, -x], axis=1)[:, :, None]
    corrected = fit_sequence(X, Y, 1.0)
    printed = fit_sequence(X, Y, 1.0, equal_row_sums=False)
    assert corrected.value == pytest.approx(14.0, rel=1e-6)
    assert printed.value <= 2.0 + 1e-6
    with pytest.raises(ValueError, match="equal_row_sums=True"):
        recover_sequence_heads(printed)


def test_head_objective_matches_a_hand_computed_value():
    # one head, n = 2, d = c = 1: W averages the two tokens, V = 2, b = 0.5 -> output = mean
    X = np.array([[[1.0], [3.0]]])
    Y = np.array([[[2.0], [0.0]]])
    W = np.full((1, 2, 2), 0.5)
    V = np.array([[[2.0]]])
    b = np.array([0.5])
    # outputs (2, 2): loss 1/2 (0 + 4) = 2; reg beta/2 (2^2 + 0.25) = 0.5 * 4.25 with beta = 1
    assert sequence_head_objective(W, V, b, X, Y, 1.0) == pytest.approx(2.0 + 2.125)


def test_bad_input_is_rejected(data):
    X, Y, beta = data
    with pytest.raises(ValueError, match="beta"):
        fit_sequence(X, Y, 0.0)
    with pytest.raises(ValueError, match="Y"):
        fit_sequence(X, Y[:, :2], beta)
    with pytest.raises(TypeError, match="equal_row_sums"):
        fit_sequence(X, Y, beta, equal_row_sums=1)
    with pytest.raises(ValueError, match="cvx_solver"):
        fit_sequence(X, Y, beta, cvx_solver="NO_SUCH_SOLVER")
    with pytest.raises(ValueError, match="too large"):
        fit_sequence(np.zeros((2, 40, 3)), np.zeros((2, 40, 3)), beta)
    with pytest.raises(ValueError, match="row-stochastic"):
        sequence_head_objective(np.ones((1, 3, 3)), np.ones((1, 2, 2)), np.ones(1), X, Y, beta)
    with pytest.raises(TypeError, match="SequenceFit"):
        recover_sequence_heads("not a fit")
    assert isinstance(fit_sequence(X, Y, beta), SequenceFit)
