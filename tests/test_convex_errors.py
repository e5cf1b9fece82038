"""Bad input and solver failures raise clear errors (never a silent wrong answer)."""

import numpy as np
import pytest

from attnlab import convex


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((12, 4, 3)), rng.standard_normal(12)


@pytest.mark.parametrize("beta", [0.0, -1.0, float("nan"), float("inf")])
def test_beta_must_be_positive_finite(data, beta):
    X, y = data
    with pytest.raises(ValueError, match="beta"):
        convex.fit(X, y, beta)


def test_beta_type(data):
    X, y = data
    with pytest.raises(TypeError, match="beta"):
        convex.fit(X, y, "1")


def test_shapes(data):
    X, y = data
    with pytest.raises(ValueError, match=r"X must have shape \(N, n, d\)"):
        convex.fit(X[0], y, 1.0)
    with pytest.raises(ValueError, match="y must have one row per sample"):
        convex.fit(X, y[:-1], 1.0)
    with pytest.raises(ValueError, match=r"y must have shape \(N,\) or \(N, c\)"):
        convex.fit(X, y[:, None, None], 1.0)
    with pytest.raises(ValueError, match="Z0 must have shape"):
        convex.fit(X, y, 1.0, Z0=np.zeros((4, 2)))
    with pytest.raises(TypeError, match="X must be a numpy.ndarray or torch.Tensor"):
        convex.fit(X.tolist(), y, 1.0)
    with pytest.raises(ValueError, match="Z must have shape"):
        convex.primal_objective(np.zeros((3, 3)), X, y, 1.0)
    with pytest.raises(ValueError, match="lam must have the shape of y"):
        convex.dual_objective(np.zeros(5), y)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_data(data, bad):
    X, y = data
    X2, y2 = X.copy(), y.copy()
    X2[1, 2, 0] = bad
    y2[3] = bad
    with pytest.raises(ValueError, match="X contains NaN or inf"):
        convex.fit(X2, y, 1.0)
    with pytest.raises(ValueError, match="y contains NaN or inf"):
        convex.fit(X, y2, 1.0)


def test_options(data):
    X, y = data
    with pytest.raises(ValueError, match="solver must be one of"):
        convex.fit(X, y, 1.0, solver="sgd")
    with pytest.raises(ValueError, match="tol must be > 0"):
        convex.fit(X, y, 1.0, tol=0.0)
    with pytest.raises(ValueError, match="max_iter must be >= 1"):
        convex.fit(X, y, 1.0, max_iter=0)
    with pytest.raises(ValueError, match="cvx_form must be one of"):
        convex.fit(X, y, 1.0, solver="cvxpy", cvx_form="dual")
    with pytest.raises(ValueError, match="betas must be a non-empty 1-D"):
        convex.regularization_path(X, y, [])
    with pytest.raises(ValueError, match="betas must be > 0"):
        convex.regularization_path(X, y, [1.0, -2.0])


def test_unavailable_cvxpy_solver(data):
    X, y = data
    with pytest.raises(convex.SolverUnavailableError, match="'NOT_A_SOLVER' is not installed"):
        convex.fit(X, y, 1.0, solver="cvxpy", cvx_solver="NOT_A_SOLVER")
    assert issubclass(convex.SolverUnavailableError, ValueError)


def test_cvxpy_failure_raises(data):
    X, y = data
    with pytest.raises(convex.SolverFailedError, match="status"):
        convex.fit(X, y, 0.1, solver="cvxpy", cvx_options={"max_iter": 2})
    # OSQP cannot handle second-order cones
    with pytest.raises(convex.SolverFailedError, match="OSQP"):
        convex.fit(X, y, 0.1, solver="cvxpy", cvx_solver="OSQP")


def test_fast_solver_iteration_limit(data):
    X, y = data
    with pytest.raises(convex.ConvergenceError, match=r"max_iter=3 with relative duality gap"):
        convex.fit(X, y, 0.1, max_iter=3, tol=1e-12)
    with pytest.warns(RuntimeWarning, match="max_iter=3") as caught:
        res = convex.fit(X, y, 0.1, max_iter=3, tol=1e-12, allow_unconverged=True)
    assert caught[0].filename == __file__  # the warning points at the caller's line
    assert not res.converged and res.rel_gap > 1e-12
    assert res.dual <= convex.fit(X, y, 0.1).primal  # still a valid lower bound
    assert issubclass(convex.ConvergenceError, RuntimeError)


def test_heads_input_checks(data):
    X, y = data
    w = np.full((2, 4), 0.25)
    v, b = np.ones((2, 3)), np.ones(2)
    with pytest.raises(ValueError, match="simplex"):
        convex.head_objective(w * 2, v, b, X, y, 1.0)
    with pytest.raises(ValueError, match="must share h"):
        convex.head_objective(w, v[:1], b, X, y, 1.0)
    with pytest.raises(ValueError, match=r"b must be \(h,\) for y \(N,\)"):
        convex.head_objective(w, v, np.ones((2, 2)), X, y, 1.0)
    with pytest.raises(ValueError, match="h must be >= 1"):
        convex.train_heads(X, y, 1.0, 0)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        convex.train_heads(X, y, 1.0, 2, optimizer="lbfgs")
    with pytest.raises(ValueError, match="variant must be one of"):
        convex.recover_heads(np.ones((4, 3)), variant="e_j")
    with pytest.raises(ValueError, match="printed"):
        convex.recover_heads(np.ones((2, 4, 3)), variant="printed")
