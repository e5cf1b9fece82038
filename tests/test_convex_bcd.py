"""The working-set BCD solver and ``convex.path``: agreement with cvxpy, honest certificates."""

import numpy as np
import pytest
import torch

from attnlab import convex


def _data(N, n, d, seed, c=None, rho=0.0, k=2):
    """Tokens (N, n, d), with a component shared across a sample's tokens when ``rho`` > 0;
    y on ``k`` planted tokens plus noise (``c`` outputs: the others pure noise)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, n, d))
    if rho:
        X = np.sqrt(1 - rho) * X + np.sqrt(rho) * rng.standard_normal((N, 1, d))
    X /= np.sqrt(d)
    Z = np.zeros((n, d))
    Z[:k] = rng.standard_normal((k, d))
    y = np.einsum("ikd,kd->i", X, Z) + 0.5 * rng.standard_normal(N)
    if c is not None:
        y = np.stack([y] + [rng.standard_normal(N) for _ in range(c - 1)], axis=1)
    return X, y


def _independent_gap(res, X, y, beta):
    """P(Z) - D(lam) recomputed in NumPy, after checking that lam is dual feasible."""
    Z3 = res.Z[None] if res.Z.ndim == 2 else res.Z
    Y = y[:, None] if y.ndim == 1 else y
    L = np.asarray(res.lam).reshape(Y.shape)
    primal = dual = 0.0
    for l in range(Z3.shape[0]):
        r = Y[:, l] - np.einsum("ikd,kd->i", X, Z3[l])
        primal += 0.5 * r @ r + beta * np.linalg.norm(Z3[l], axis=1).sum()
        dual += L[:, l] @ Y[:, l] - 0.5 * L[:, l] @ L[:, l]
        cert = np.linalg.norm(np.einsum("i,ikd->kd", L[:, l], X), axis=1)
        assert cert.max() <= beta * (1 + 1e-12), "the dual point is not feasible"
    return primal, primal - dual


def _adversarial():
    X, y = _data(40, 6, 4, 0)
    Xdup = X.copy()
    Xdup[:, 3] = Xdup[:, 0]  # a duplicated token
    Xzero = X.copy()
    Xzero[:, 2] = 0.0  # a zero token
    Xzero[:, 4, 1] = 0.0  # and a zero column
    Xw, yw = _data(10, 6, 4, 1)  # N < n d
    bm = convex.beta_max(X, y)
    return {
        "random": (X, y, 0.2 * bm),
        "correlated": (*_data(60, 6, 4, 2, rho=0.9), None),
        "duplicated": (Xdup, y, 0.1 * convex.beta_max(Xdup, y)),
        "at_beta_max": (X, y, bm),
        "just_below_beta_max": (X, y, 0.999 * bm),
        "wide": (Xw, yw, 0.05 * convex.beta_max(Xw, yw)),
        "zero_columns": (Xzero, y, 0.1 * convex.beta_max(Xzero, y)),
    }


CASES = _adversarial()


@pytest.fixture(params=["auto", "residual"])
def form(request, monkeypatch):
    """``auto``: the solver's own choice (Gram blocks at these sizes); ``residual``: every
    working set in residual form, every support wider than 8 columns by Newton-CG at once."""
    from attnlab.convex import bcd

    if request.param == "residual":
        monkeypatch.setattr(bcd, "RESIDUAL_RATIO", 1e9)
        monkeypatch.setattr(bcd, "NEWTON_WIDE", 8)
        monkeypatch.setattr(bcd, "CG_RENT", 0)
    return request.param


@pytest.mark.parametrize("name", sorted(CASES))
def test_bcd_matches_cvxpy(name, form):
    X, y, beta = CASES[name]
    if beta is None:
        beta = 0.05 * convex.beta_max(X, y)
    res = convex.fit(X, y, beta, solver="bcd", tol=1e-10)
    try:
        ref = convex.fit(X, y, beta, solver="cvxpy", tol=1e-9)
    except convex.SolverFailedError:  # Clarabel's "optimal_inaccurate" on some instances
        ref = convex.fit(X, y, beta, solver="cvxpy", tol=1e-8)
    assert res.converged and res.rel_gap <= 1e-10 and res.solver == "bcd"
    # the optimum agrees to 1e-8 relative (Clarabel's own answer is the less accurate one)
    assert abs(res.primal - ref.primal) <= 1e-8 * max(1.0, abs(ref.primal))
    # the certified lower bound sits below Clarabel's objective
    assert res.dual <= ref.primal + 1e-12 * max(1.0, abs(ref.primal))
    rows = np.linalg.norm(ref.Z, axis=1)
    if name == "at_beta_max":  # Z = 0 exactly; Clarabel's interior point is only near 0
        assert np.abs(res.Z).max() == 0.0 and rows.max() <= 1e-4
    elif name != "duplicated":  # with a duplicated token the optimal rows are not unique
        # Clarabel's zero rows are ~1e-9, not 0: its active set at a 1e-4 relative threshold
        assert list(res.active) == list(np.flatnonzero(rows > 1e-4 * rows.max()))
        assert np.abs(res.Z - ref.Z).max() <= 1e-4


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("tol", [1e-6, 1e-9])
def test_certificate_never_looser_than_reported(name, tol, form):
    X, y, beta = CASES[name]
    if beta is None:
        beta = 0.05 * convex.beta_max(X, y)
    res = convex.fit(X, y, beta, solver="bcd", tol=tol)
    primal, gap = _independent_gap(res, X, y, beta)
    assert gap / max(1.0, primal) <= tol
    assert gap <= res.gap + 1e-12 * max(1.0, primal)
    assert primal == pytest.approx(res.primal, rel=1e-12, abs=1e-12)


def test_bcd_matches_fista_on_correlated_tokens_and_vector_outputs():
    X, y = _data(300, 8, 6, 3, c=2, rho=0.9)
    beta = 0.1 * convex.beta_max(X, y)
    a = convex.fit(X, y, beta, solver="bcd", tol=1e-10)
    b = convex.fit(X, y, beta, solver="fista", tol=1e-10)
    assert a.Z.shape == b.Z.shape == (2, 8, 6)
    assert abs(a.primal - b.primal) <= 1e-9 * a.primal
    assert [list(x) for x in a.active] == [list(x) for x in b.active]
    primal, gap = _independent_gap(a, X, y, beta)
    assert gap / primal <= 1e-10


def test_bcd_gram_and_direct_modes_agree():
    X, y = _data(200, 5, 4, 4)
    beta = 0.1 * convex.beta_max(X, y)
    a = convex.fit(X, y, beta, solver="bcd", gram=True)
    b = convex.fit(X, y, beta, solver="bcd", gram=False)
    assert a.extra["gram"] and not b.extra["gram"]
    assert abs(a.primal - b.primal) <= 1e-8 * a.primal
    assert a.rel_gap <= 1e-8 and b.rel_gap <= 1e-8


def test_auto_picks_bcd_for_sparse_answers_and_fista_for_dense():
    X, y = _data(100, 6, 4, 5)
    bm = convex.beta_max(X, y)
    frac = convex.solvers.AUTO_BCD_FRACTION
    assert convex.fit(X, y, 2 * frac * bm, solver="auto").solver == "bcd"
    assert convex.fit(X, y, 0.5 * frac * bm, solver="auto").solver == "fista"
    assert convex.fit(X, y, 0.5 * bm).solver == "fast"  # the default is the reference


@pytest.mark.parametrize("c", [None, 2])
def test_path_certified_and_equal_to_single_fits(c):
    X, y = _data(120, 6, 4, 6, c=c, rho=0.9)
    bm = convex.beta_max(X, y)
    betas = np.array([0.3, 1.2, 0.01, 0.1, 1.0]) * bm  # any order, beyond beta_max too
    pth = convex.path(X, y, betas, tol=1e-9)
    assert pth.solver == "bcd" and np.array_equal(pth.betas, betas)
    assert pth.converged.all() and (pth.rel_gap <= 1e-9).all()
    # each fit's seconds are its own share of the call: together no more than the call
    assert 0 < sum(f.seconds for f in pth.fits) <= pth.seconds
    assert pth.Z.shape == (5, 6, 4) if c is None else (5, c, 6, 4)
    for i, beta in enumerate(betas):
        primal, gap = _independent_gap(pth.fits[i], X, y, beta)
        assert gap / max(1.0, primal) <= 1e-9
        one = convex.fit(X, y, beta, solver="fista", tol=1e-11)
        assert abs(pth.primal[i] - one.primal) <= 1e-8 * max(1.0, one.primal)
    # at and above beta_max, Z = 0; the number of active tokens grows as beta falls
    assert np.abs(pth.Z[[1, 4]]).max() == 0.0
    counts = pth.n_active[np.argsort(-betas)]
    assert (np.diff(counts) >= 0).all() and counts[-1] > 0


def test_path_fista_and_bcd_agree():
    X, y = _data(200, 6, 4, 7, rho=0.9)
    betas = np.geomspace(1e-3, 1, 12) * convex.beta_max(X, y)
    a = convex.path(X, y, betas)
    b = convex.path(X, y, betas, solver="fista")
    assert np.abs(a.primal - b.primal).max() <= 1e-8 * a.primal.max()
    assert all(list(u) == list(v) for u, v in zip(a.active, b.active, strict=True))


def test_bad_input_names_the_parameter():
    X, y = _data(20, 3, 2, 8)
    with pytest.raises(ValueError, match="solver"):
        convex.fit(X, y, 1.0, solver="newton")
    with pytest.raises(ValueError, match="solver"):
        convex.path(X, y, [1.0], solver="cvxpy")
    with pytest.raises(ValueError, match="betas"):
        convex.path(X, y, [])
    with pytest.raises(ValueError, match="betas"):
        convex.path(X, y, [1.0, -1.0])
    with pytest.raises(TypeError, match="betas"):
        convex.path(X, y, "1.0")
    with pytest.raises(ValueError, match="tol"):
        convex.path(X, y, [1.0], tol=0.0)
    with pytest.raises(ValueError, match="X"):
        convex.path(X[:, :, 0], y, [1.0])
    with pytest.raises(ValueError, match="beta"):
        convex.fit(X, y, -1.0, solver="bcd")


def test_bcd_unconverged_raises_unless_allowed():
    X, y = _data(200, 8, 6, 9, rho=0.9)
    beta = 0.001 * convex.beta_max(X, y)
    with pytest.raises(convex.ConvergenceError, match="max_iter"):
        convex.fit(X, y, beta, solver="bcd", max_iter=1, tol=1e-14)
    with pytest.warns(RuntimeWarning):
        res = convex.fit(X, y, beta, solver="bcd", max_iter=1, tol=1e-14,
                         allow_unconverged=True)
    assert not res.converged
    primal, gap = _independent_gap(res, X, y, beta)  # still an honest certificate
    assert gap <= res.gap + 1e-12 * primal


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_bcd_on_cuda_matches_cpu():
    X, y = _data(500, 8, 6, 10, rho=0.9)
    beta = 0.1 * convex.beta_max(X, y)
    Xt, yt = torch.tensor(X, device="cuda"), torch.tensor(y, device="cuda")
    a = convex.fit(Xt, yt, beta, solver="bcd", device="cuda")
    b = convex.fit(X, y, beta, solver="bcd")
    assert a.device.startswith("cuda") and a.Z.device.type == "cuda"
    assert abs(a.primal - b.primal) <= 1e-9 * b.primal and a.rel_gap <= 1e-8
    pth = convex.path(Xt, yt, np.geomspace(0.01, 1, 8) * beta, device="cuda")
    assert pth.converged.all()


# ---------------------------------------------------------------- Newton, predictor, chord
def _subproblem(seed, n=4, d=3, N=60, rho=0.5, frac=0.3, solver="fista"):
    """``H = A^T A``, ``c = A^T y``, the block constants, beta and the optimum (to a 1e-13
    gap) of one token group lasso, as the BCD inner solver sees it."""
    X, y = _data(N, n, d, seed, rho=rho)
    A = X.reshape(N, -1)
    H, c = A.T @ A, A.T @ y
    Lb = np.array([np.linalg.eigvalsh(H[k * d:(k + 1) * d, k * d:(k + 1) * d])[-1]
                   for k in range(n)])
    beta = frac * convex.beta_max(X, y)
    xs = np.asarray(convex.fit(X, y, beta, solver=solver, tol=1e-13, max_iter=10**6).Z)

    def f(v):
        return 0.5 * v @ H @ v - c @ v + beta * np.linalg.norm(v.reshape(n, d), axis=1).sum()

    return H, c, Lb, beta, xs.ravel(), f


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_newton_drops_a_row_that_crosses_zero(seed):
    """A row that is 0 at the optimum, started nonzero: Newton pushes it through zero; the
    active-set step drops it (exactly 0) and converges in a few steps, where backtracking
    alone was still 1e-6 off after 20 steps."""
    from attnlab.convex import bcd

    H, c, Lb, beta, xs, f = _subproblem(seed)
    d = 3
    rows = np.linalg.norm(xs.reshape(-1, d), axis=1)
    k = int(np.flatnonzero(rows == 0)[0])
    x = xs.copy()
    x[k * d:(k + 1) * d] = 1e-2 * rows.max() * np.random.default_rng(seed).standard_normal(d)
    # the situation is real: the first Newton step crosses zero in that row
    sup = np.flatnonzero(np.linalg.norm(x.reshape(-1, d), axis=1) > 0)
    cols = bcd._cols(sup, d)
    sub = bcd._Newton(H[np.ix_(cols, cols)], c[cols], x[cols].copy(), sup, beta, d, Lb[sup])
    dx, _, _ = sub.step()
    assert bcd._crossing(sub.xs, dx, d)[list(sup).index(k)] < 1.0
    steps, _ = bcd._newton(H, c, x, beta, d, Lb)
    assert steps <= 5
    assert np.all(x[k * d:(k + 1) * d] == 0.0)
    assert f(x) - f(xs) <= 1e-14 * abs(f(xs))
    assert np.abs(x - xs).max() <= 1e-8 * np.abs(xs).max()


@pytest.mark.parametrize("seed", [0, 3])
def test_newton_keeps_a_row_that_only_swings_past_zero(seed):
    """A row that is nonzero at the optimum, started pointing the wrong way: the step through
    zero gives it a proximal step (it is not dropped) and Newton reaches the optimum."""
    from attnlab.convex import bcd

    H, c, Lb, beta, xs, f = _subproblem(seed)
    d, k = 3, 1
    assert np.linalg.norm(xs[k * d:(k + 1) * d]) > 0
    x = xs.copy()
    x[k * d:(k + 1) * d] *= -0.05
    bcd._newton(H, c, x, beta, d, Lb)
    assert f(x) - f(xs) <= 1e-14 * abs(f(xs))
    assert np.linalg.norm(x[k * d:(k + 1) * d]) == pytest.approx(
        np.linalg.norm(xs[k * d:(k + 1) * d]), rel=1e-6)


def test_newton_chord_steps_reach_the_same_point(monkeypatch):
    """On a wide system Newton reuses its factorization near the optimum (chord steps); the
    answer is the one of plain Newton, with fewer factorizations."""
    from attnlab.convex import bcd

    H, c, Lb, beta, xs, f = _subproblem(4, n=16, d=8, N=400, rho=0.9, frac=0.005, solver="bcd")
    rows = np.linalg.norm(xs.reshape(-1, 8), axis=1)
    assert (rows > 0).sum() * 8 >= bcd.CHORD_MIN  # wide enough for chord steps
    x0 = xs * (1.0 + 0.05 * np.random.default_rng(0).standard_normal(xs.shape))
    x0[xs == 0] = 0.0
    counts = {}
    step = bcd._Newton.step

    def counted(self):
        counts["n"] = counts.get("n", 0) + 1
        return step(self)

    monkeypatch.setattr(bcd._Newton, "step", counted)
    xa = x0.copy()
    steps_a, _ = bcd._newton(H, c, xa, beta, 8, Lb)
    fact_a, counts["n"] = counts["n"], 0
    monkeypatch.setattr(bcd, "CHORD_MIN", 10**9)
    xb = x0.copy()
    bcd._newton(H, c, xb, beta, 8, Lb)
    assert fact_a < counts["n"] and fact_a < steps_a  # some steps were chord steps
    assert abs(f(xa) - f(xb)) <= 1e-14 * abs(f(xb)) and abs(f(xa) - f(xs)) <= 1e-13 * abs(f(xs))
    assert np.abs(xa - xb).max() <= 1e-9 * np.abs(xs).max()


def test_newton_stops_when_told_the_gap_is_reached():
    """``done_at`` (the working set's gap in the solver) ends Newton after the first full
    step it accepts; the answer is then the one-step point, which the caller certifies."""
    from attnlab.convex import bcd

    H, c, Lb, beta, xs, f = _subproblem(5, n=6, d=4, N=120, rho=0.9, frac=0.05)
    x0 = xs * (1.0 + 0.02 * np.random.default_rng(1).standard_normal(xs.shape))
    seen = []

    def done(rows, v):
        seen.append(f(bcd._scatter(rows, v, len(xs), 4)))
        return True

    xa, xb = x0.copy(), x0.copy()
    assert bcd._newton(H, c, xa, beta, 4, Lb, done_at=done)[0] == 1
    assert seen == [f(xa)] and f(xa) < f(x0)
    assert bcd._newton(H, c, xb, beta, 4, Lb)[0] > 1
    assert f(xb) <= f(xa)


@pytest.mark.parametrize("rho", [0.0, 0.9])
def test_wide_newton_waits_until_bcd_has_cost_a_factorization(monkeypatch, rho):
    """A Newton system wider than NEWTON_WIDE is factored only after the BCD epochs on its
    working set have cost (k d)^3 / 3 flops (2 (|W| d)^2 each here); the answer is the
    one of Newton at once. With i.i.d. tokens BCD gets there first, without wide Newton."""
    from attnlab.convex import bcd

    X, y = _data(400, 8, 8, 3, rho=rho)
    beta = 0.01 * convex.beta_max(X, y)
    ref = convex.fit(X, y, beta, solver="bcd", tol=1e-10)  # 8 tokens x 8 = 64 <= NEWTON_WIDE
    monkeypatch.setattr(bcd, "NEWTON_WIDE", 16)
    monkeypatch.setattr(bcd, "EPOCH_TOKEN", 0.0)
    events = []
    step, epoch = bcd._Newton.step, bcd._bcd_epoch

    def counted_step(self):
        events.append(len(self.xs))
        return step(self)

    def counted_epoch(H, *args):
        events.append("epoch")
        return epoch(H, *args)

    monkeypatch.setattr(bcd._Newton, "step", counted_step)
    monkeypatch.setattr(bcd, "_bcd_epoch", counted_epoch)
    out = convex.fit(X, y, beta, solver="bcd", tol=1e-10)
    assert len(out.active) == 8 and out.rel_gap <= 1e-10
    assert abs(out.primal - ref.primal) <= 1e-10 * ref.primal
    wide = [i for i, e in enumerate(events) if e != "epoch" and e > 16]
    if rho == 0.0:
        assert not wide
    else:
        assert wide and events[:wide[0]].count("epoch") >= 64**3 / 3 / (2 * 64**2)


def test_pcg_solves_a_positive_definite_system():
    from attnlab.convex import bcd

    rng = np.random.default_rng(0)
    B = rng.standard_normal((80, 40))
    M = B.T @ B + 0.1 * np.eye(40)
    b = rng.standard_normal(40)
    diag = np.diag(M).copy()
    x = bcd._pcg(lambda v: M @ v, b, lambda v: v / diag, 1e-10, 500)
    assert np.linalg.norm(M @ x - b) <= 1e-10 * np.linalg.norm(b)
    x1 = bcd._pcg(lambda v: M @ v, b, lambda v: v / diag, 1e-10, 3)  # an early stop
    assert np.linalg.norm(M @ x1 - b) > 1e-3 * np.linalg.norm(b)


@pytest.mark.parametrize("seed", [0, 1])
def test_newton_cg_reaches_the_optimum_of_a_wide_correlated_support(seed):
    """Newton-CG in residual form (Hessian-vector products, no Gram block) from a perturbed
    optimum: a few steps to the optimum; a row that is 0 at the optimum, started nonzero,
    is dropped on the way."""
    from attnlab.convex import bcd

    H, c, Lb, beta, xs, f = _subproblem(seed, n=12, d=6, N=50, rho=0.9, frac=0.02)
    X, y = _data(50, 12, 6, seed, rho=0.9)
    A = X.reshape(50, -1)
    rows = np.linalg.norm(xs.reshape(-1, 6), axis=1)
    assert (rows > 0).sum() * 6 > 50  # wider than the data is long: A_S^T A_S is singular
    x = xs * (1.0 + 0.05 * np.random.default_rng(seed).standard_normal(xs.shape))
    zero = np.flatnonzero(rows == 0)
    if len(zero):
        x[zero[0] * 6:(zero[0] + 1) * 6] = 1e-3 * rows.max()
    steps = bcd._newton_cg(A, y, x, beta, 6)
    assert 1 <= steps <= 15
    assert f(x) - f(xs) <= 1e-12 * abs(f(xs))
    if len(zero):
        assert np.all(x[zero[0] * 6:(zero[0] + 1) * 6] == 0.0)


@pytest.mark.parametrize("frac", [0.2, 0.05])
def test_path_predictor_is_second_order(frac):
    """The predictor from the answer at b0 lands within ~(b0 - b1)^2 of the answer at b1
    (a first-order error, like the warm start itself, would be ~(b0 - b1))."""
    from attnlab.convex import bcd

    X, y = _data(200, 5, 4, 0, rho=0.9)
    N, n, d = X.shape
    bm = convex.beta_max(X, y)
    b0, b1 = frac * bm, 0.95 * frac * bm
    des = bcd.bcd_design(torch.tensor(X.reshape(N, -1)), torch.tensor(y)[:, None], n, d, True)
    out, state = bcd.solve_bcd(des, b0, tol=1e-13, max_iter=1000)
    x0 = out.x[:, 0].numpy()
    x1 = np.asarray(convex.fit(X, y, b1, solver="bcd", tol=1e-13).Z).ravel()
    pred, tangent = bcd._predict(state.tangent[0], x0, b1, d)
    assert np.linalg.norm(pred - x1) <= 0.05 * np.linalg.norm(x0 - x1)
    # the tangent it returns is the answer's derivative in beta (a finite difference)
    x2 = np.asarray(convex.fit(X, y, 1.001 * b0, solver="bcd", tol=1e-13).Z).ravel()
    cols = bcd._cols(state.tangent[0].tokens, d)
    fd = (x2 - x0)[cols] / (0.001 * b0)
    assert np.linalg.norm(tangent - fd) <= 0.01 * np.linalg.norm(fd)
    # only from that very answer, and not when a row would cross zero (beta far above)
    other = x0 + 1e-9
    assert bcd._predict(state.tangent[0], other, b1, d)[0] is other
    if frac == 0.2:
        assert bcd._predict(state.tangent[0], x0, 3 * b0, d)[0] is x0


@pytest.mark.parametrize("frac", [0.2, 0.05])
def test_path_predictor_orders(frac):
    """With the answer before it on the path (at b0 (1 + r)) the predictor's curvature term
    makes its error third order in the step, and that answer's tangent too (cubic Hermite)
    fourth order: halving r divides the error by ~16, ~8 with the answer alone, ~4 with the
    tangent alone (second order; the warm start itself: ~2)."""
    from dataclasses import replace

    from attnlab.convex import bcd

    X, y = _data(200, 5, 4, 0, rho=0.9)
    N, n, d = X.shape
    b0 = frac * convex.beta_max(X, y)
    des = bcd.bcd_design(torch.tensor(X.reshape(N, -1)), torch.tensor(y)[:, None], n, d, True)
    out, state = bcd.solve_bcd(des, b0, tol=1e-14, max_iter=1000)
    x0, tan = out.x[:, 0].numpy(), state.tangent[0]
    err = {}
    for r in (0.08, 0.04):
        x1 = np.asarray(convex.fit(X, y, b0 * (1 - r), solver="bcd", tol=1e-14).Z).ravel()
        # the answer at b0 (1 + r) and its tangent, as the predictor forms it from there
        outp, st = bcd.solve_bcd(des, b0 * (1 + r), tol=1e-14, max_iter=1000)
        xp = outp.x[:, 0].numpy()
        tp = bcd._predict(st.tangent[0], xp, b0, d)[1]
        assert tp is not None
        for name, t in (("tangent", replace(tan, prev=None)),
                        ("curved", replace(tan, prev=(b0 * (1 + r), xp, None))),
                        ("hermite", replace(tan, prev=(b0 * (1 + r), xp, tp)))):
            err[name, r] = np.linalg.norm(bcd._predict(t, x0, b0 * (1 - r), d)[0] - x1)
    assert 3.0 <= err["tangent", 0.08] / err["tangent", 0.04] <= 5.0
    assert 6.5 <= err["curved", 0.08] / err["curved", 0.04] <= 10.0
    assert err["hermite", 0.08] / err["hermite", 0.04] >= 12.0
    assert err["curved", 0.08] <= 0.15 * err["tangent", 0.08]
    assert err["hermite", 0.08] <= 0.25 * err["curved", 0.08]
    # far beyond the step before (more than PREDICT_REACH times it): the tangent alone
    near = replace(tan, prev=(b0 * 1.001, x0, None))
    far = b0 * (1 - 0.001 * (bcd.PREDICT_REACH + 1))
    assert np.array_equal(bcd._predict(near, x0, far, d)[0],
                          bcd._predict(replace(tan, prev=None), x0, far, d)[0])


def test_path_uses_the_predictor_and_matches_fits(monkeypatch):
    """Along a dense path of correlated tokens the predictor runs at most betas, and every
    answer matches an independent FISTA solve and carries an honest certificate."""
    from attnlab.convex import bcd

    X, y = _data(300, 8, 4, 12, rho=0.9)
    betas = np.geomspace(1e-3, 1, 25) * convex.beta_max(X, y)
    used = []
    predict = bcd._predict

    def spy(tan, x, beta, d):
        out = predict(tan, x, beta, d)
        used.append(out[0] is not x)
        return out

    monkeypatch.setattr(bcd, "_predict", spy)
    pth = convex.path(X, y, betas, tol=1e-9)
    assert sum(used) >= len(betas) // 2
    for i, beta in enumerate(betas):
        primal, gap = _independent_gap(pth.fits[i], X, y, beta)
        assert gap / max(1.0, primal) <= 1e-9
        one = convex.fit(X, y, beta, solver="fista", tol=1e-11, max_iter=10**6)
        assert abs(pth.primal[i] - one.primal) <= 1e-8 * max(1.0, one.primal)


@pytest.mark.parametrize("name", sorted(CASES))
def test_path_matches_cvxpy_on_adversarial_cases(name):
    """The path machinery (predictor, strong rule, active-set Newton) on every adversarial
    instance: each beta's optimum agrees with Clarabel, and no certificate is looser than
    reported."""
    X, y, _ = CASES[name]
    bm = convex.beta_max(X, y)
    betas = np.array([1.0, 0.999, 0.5, 0.1, 0.02]) * bm
    pth = convex.path(X, y, betas, tol=1e-10)
    assert pth.converged.all()
    for i, beta in enumerate(betas):
        try:
            ref = convex.fit(X, y, beta, solver="cvxpy", tol=1e-9)
        except convex.SolverFailedError:
            ref = convex.fit(X, y, beta, solver="cvxpy", tol=1e-8)
        assert abs(pth.primal[i] - ref.primal) <= 1e-8 * max(1.0, abs(ref.primal))
        primal, gap = _independent_gap(pth.fits[i], X, y, beta)
        assert gap / max(1.0, primal) <= 1e-10
        assert gap <= pth.gap[i] + 1e-12 * max(1.0, primal)


def test_strong_rule_picks_the_correlated_tokens():
    from attnlab.convex.solvers import _strong_rule

    g = torch.zeros(3 * 2, 2, dtype=torch.float64)
    g[0:2, 0] = torch.tensor([3.0, 4.0])  # token 0, output 0: ||g|| = 5
    g[2:4, 0] = torch.tensor([0.0, 1.9])  # token 1: below 2 * 2.5 - 3 = 2
    g[4:6, 1] = torch.tensor([2.0, 0.0])  # token 2, output 1: exactly 2
    rule = _strong_rule(g, 3, 2, beta=3.0, nxt=2.5)
    assert [list(r) for r in rule] == [[0], [2]]


@pytest.mark.parametrize("c", [None, 2])
def test_certify_many_matches_one_certificate_at_a_time(monkeypatch, c):
    """The batched exact pass gives each answer the certificate solve_bcd gives it alone
    (r, A^T r, dual scale, primal, gap), in chunks of any size."""
    from attnlab.convex import bcd

    X, y = _data(150, 5, 4, 3, c=c, rho=0.9)
    N, n, d = X.shape
    Y = torch.tensor(y.reshape(N, -1))
    des = bcd.bcd_design(torch.tensor(X.reshape(N, -1)), Y, n, d, True)
    betas = list(np.array([0.5, 0.2, 0.05]) * convex.beta_max(X, y))
    alone = [bcd.solve_bcd(des, b, tol=1e-10, max_iter=1000)[0] for b in betas]
    for chunk in (1, 2, 3):  # answers per chunk
        monkeypatch.setattr(bcd, "CERT_NUMBERS", chunk * N * Y.shape[1])
        chunks = list(bcd.certify_many(des, [o.x for o in alone], betas))
        assert [len(ch) for ch in chunks] == [chunk] * (3 // chunk) + [3 % chunk] * (3 % chunk > 0)
        got = [cert for ch in chunks for cert in ch]
        for o, (r, g, s, primal, gap) in zip(alone, got, strict=True):
            assert torch.allclose(r, o.r, rtol=1e-12, atol=1e-12)
            assert torch.allclose(g, o.g, rtol=1e-10, atol=1e-10)
            assert torch.allclose(s, o.s, rtol=1e-10)
            assert primal == pytest.approx(o.primal, rel=1e-12)
            assert gap == pytest.approx(o.gap, rel=1e-6, abs=1e-12 * primal)
    with pytest.raises(ValueError, match="certify"):
        direct = bcd.bcd_design(torch.tensor(X.reshape(N, -1)), Y, n, d, False)
        bcd.solve_bcd(direct, betas[0], tol=1e-8, max_iter=10, certify=False)


def test_path_solves_on_where_the_exact_pass_does_not_confirm(monkeypatch):
    """Along a path (Gram mode) each beta stops at the Gram-form target and one batched
    exact pass confirms them all; an answer it does not confirm is solved on with exact
    checks, so every returned answer is certified all the same."""
    from attnlab.convex import solvers

    X, y = _data(300, 8, 4, 12, rho=0.9)
    betas = np.geomspace(0.01, 1, 8) * convex.beta_max(X, y)
    certify, calls = solvers.certify_many, []

    def doubt(des, xs, bs):  # the exact pass "finds" a large gap at the 5th largest beta
        out = [cert for ch in certify(des, xs, bs) for cert in ch]
        r, g, s, primal, gap = out[4]
        out[4] = (r, g, s, primal, 1.0 + primal)
        yield out

    solve = solvers.solve_bcd

    def spy(*a, **k):
        calls.append(k.get("certify", True))
        return solve(*a, **k)

    monkeypatch.setattr(solvers, "certify_many", doubt)
    monkeypatch.setattr(solvers, "solve_bcd", spy)
    pth = convex.path(X, y, betas, tol=1e-9)
    assert calls.count(False) == len(betas) and calls.count(True) == 1
    assert pth.converged.all() and (pth.rel_gap <= 1e-9).all()
    for i, beta in enumerate(betas):
        primal, gap = _independent_gap(pth.fits[i], X, y, beta)
        assert gap / max(1.0, primal) <= 1e-9
        assert gap <= pth.gap[i] + 1e-12 * max(1.0, primal)


def test_path_keeps_to_max_iter_like_fit(monkeypatch):
    """Along a path an answer gets at most max_iter epochs per output, the Gram-form solve
    and any solving on after the exact pass together; short of the target it is reported
    unconverged (a warning when allowed, else the same error as fit)."""
    from attnlab.convex import bcd

    monkeypatch.setattr(bcd, "NEWTON_MAX", 0)  # BCD epochs only: the budget binds
    X, y = _data(3000, 32, 4, 5, rho=0.95, k=12)
    betas = np.geomspace(0.003, 1, 5) * convex.beta_max(X, y)
    with pytest.warns(RuntimeWarning, match="max_iter=60") as caught:
        pth = convex.path(X, y, betas, tol=1e-8, max_iter=60, allow_unconverged=True)
    assert {w.filename for w in caught} == {__file__}  # the caller's line, not the package's
    assert (pth.iterations <= 60).all() and not pth.converged.all()
    assert (pth.rel_gap[pth.converged] <= 1e-8).all()
    for i in np.flatnonzero(~pth.converged):
        assert pth.rel_gap[i] > 1e-8
        with pytest.raises(convex.ConvergenceError, match="max_iter=60"):
            convex.fit(X, y, betas[i], solver="bcd", tol=1e-8, max_iter=60, gram=True)
    with pytest.raises(convex.ConvergenceError, match="max_iter=60"):
        convex.path(X, y, betas, tol=1e-8, max_iter=60)


def test_blocked_exact_pass_matches_two_passes():
    from attnlab.convex import bcd

    g = torch.Generator().manual_seed(0)
    A = torch.randn(1000, 300, generator=g, dtype=torch.float64)  # 5 blocks of 218 rows
    y = torch.randn(1000, 3, generator=g, dtype=torch.float64)
    x = torch.randn(300, generator=g, dtype=torch.float64)
    assert bcd.EXACT_BLOCK // 300 < 1000
    r, At_r = bcd._residual(A, y[:, 1], x)
    r2 = y[:, 1] - A @ x
    assert torch.allclose(r, r2, rtol=1e-13, atol=1e-13)
    assert torch.allclose(At_r, A.T @ r2, rtol=1e-12, atol=1e-10)


def test_a_working_set_grows_only_when_a_token_outside_it_is_not_optimal(monkeypatch):
    """Loose inner solves (INNER_SHRINK = 0.9) leave most tokens of a working set nonzero,
    so "twice the support" would double it each round. A working set is never grown unless
    a token outside it violates its optimality condition (||g_k|| > beta at x_k = 0); without
    one it is kept and solved further, or narrowed once every token outside it is screened.
    Checked at every round of six correlated problems (the set must be kept at least once),
    with the default settings' answers."""
    from attnlab.convex import bcd

    refs = []
    for seed in range(6):
        X, y = _data(4000, 64, 8, seed, rho=0.9, k=8)
        beta = 0.1 * convex.beta_max(X, y)
        refs.append((X, y, beta, convex.fit(X, y, beta, solver="bcd", tol=1e-10)))
    monkeypatch.setattr(bcd, "INNER_SHRINK", 0.9)
    events, full, block = [], bcd._full, bcd.BcdState.block
    monkeypatch.setattr(bcd, "_full", lambda s, x, l: events.append(("g", (o := full(s, x, l))[0]
                                                                     .copy())) or o)
    monkeypatch.setattr(bcd.BcdState, "block", lambda s, W: events.append(("W", W.copy()))
                        or block(s, W))
    kept = 0
    for X, y, beta, ref in refs:
        events.clear()
        out = convex.fit(X, y, beta, solver="bcd", tol=1e-10)
        assert out.rel_gap <= 1e-10 and abs(out.primal - ref.primal) <= 1e-10 * ref.primal
        g = W = None
        for kind, v in events:
            if kind == "g":
                g = v
            elif W is None:
                W = v
            else:
                outside = np.setdiff1d(np.arange(64), W)
                violated = (np.linalg.norm(g.reshape(64, 8)[outside], axis=1) > beta).any()
                assert violated or np.isin(v, W).all(), (W, v)
                kept += not violated and np.array_equal(v, W)
                W = v
    assert kept >= 1


@pytest.mark.parametrize("rho", [0.0, 0.9])
def test_a_new_working_set_adds_only_tokens_that_violate_their_condition(monkeypatch, rho):
    """Each token a working set adds is in the support or violates its optimality condition
    (||g_k|| > beta at x_k = 0) at the check before it: one that meets it would only cost
    its Gram columns. At 0.5 beta_max with i.i.d. tokens the first set is then narrower
    than the default size (8), and the answers stay those of cvxpy-checked fits."""
    from attnlab.convex import bcd

    events, full, block = [], bcd._full, bcd.BcdState.block
    monkeypatch.setattr(bcd, "_full", lambda s, x, l: events.append(
        ("g", (o := full(s, x, l))[0].copy(), x.copy())) or o)
    monkeypatch.setattr(bcd.BcdState, "block", lambda s, W: events.append(("W", W.copy()))
                        or block(s, W))
    firsts = []
    for seed in range(4):
        X, y = _data(1000, 16, 8, seed, rho=rho, k=3)
        beta = 0.5 * convex.beta_max(X, y)
        events.clear()
        out = convex.fit(X, y, beta, solver="bcd", tol=1e-10)
        assert out.rel_gap <= 1e-10
        g = x = W = None
        for ev in events:
            if ev[0] == "g":
                g, x = ev[1].reshape(16, 8), ev[2].reshape(16, 8)
                continue
            new = np.setdiff1d(ev[1], [] if W is None else W)
            ok = (np.linalg.norm(x[new], axis=1) > 0) | (np.linalg.norm(g[new], axis=1) > beta)
            assert ok.all(), (new, ok)
            if W is None:
                firsts.append(len(ev[1]))
            W = ev[1]
    if rho == 0.0:
        assert min(firsts) < 8


def test_gram_block_grown_in_numpy_matches_the_product():
    """The working-set Gram blocks, formed in NumPy a few tokens at a time and cached, are
    A_W^T A_W in the order of W, for sets that grow, shrink and reorder."""
    from attnlab.convex import bcd
    from attnlab.convex.fista import Design

    X, y = _data(300, 10, 4, 0)
    A = torch.from_numpy(X.reshape(300, 40))
    des = bcd.bcd_design(A, torch.from_numpy(y)[:, None], 10, 4, gram=False)
    assert isinstance(des, Design)
    state = bcd.BcdState.build(des)
    for W in ([3, 7], [1, 3, 7, 9], [0, 2, 3], [9, 8, 1], list(range(10))):
        cols = np.concatenate([np.arange(k * 4, (k + 1) * 4) for k in W])
        ref = A.numpy()[:, cols].T @ A.numpy()[:, cols]
        assert np.allclose(state.gram(np.array(W)), ref, rtol=1e-13, atol=1e-12)


def test_epochs_left_forecasts_at_the_last_rate():
    """Geometric gaps (rate 0.5 per epoch) 1e-3 from 1e-8 need log2(1e5) more epochs; no
    forecast before a whole window, nor while the gap does not fall."""
    from attnlab.convex import bcd

    gaps = [0.5**k for k in range(11)]
    assert bcd._epochs_left(gaps, gaps[-1] * 2**-7) == pytest.approx(7.0, rel=1e-12)
    assert bcd._epochs_left(gaps[:6], 1e-9) == np.inf
    assert bcd._epochs_left(gaps[:4] + [1.0] * 7, 1e-9) == np.inf


@pytest.mark.parametrize("seed", range(3))
def test_a_working_set_of_every_token_is_solved_to_the_target_at_once(monkeypatch, seed):
    """When the working set holds every token left, its problem is the problem itself: one
    inner solve to the solve's target, not rounds to 0.3 x the last gap (each restarting
    the Anderson steps), and the answer is the one of the default path to it."""
    from attnlab.convex import bcd

    X, y = _data(400, 8, 8, seed, k=8)
    beta = 0.01 * convex.beta_max(X, y)
    monkeypatch.setattr(bcd, "NEWTON_WIDE", 16)  # BCD epochs first, as on wide sets
    calls, inner = [], bcd._inner
    monkeypatch.setattr(bcd, "_inner", lambda H, c, x, *a, **k: calls.append(len(x)) or
                        inner(H, c, x, *a, **k))
    out = convex.fit(X, y, beta, solver="bcd", tol=1e-10)
    assert len(out.active) == 8 and out.rel_gap <= 1e-10
    ref = convex.fit(X, y, beta, solver="fista", tol=1e-10)
    assert abs(out.primal - ref.primal) <= 1e-9 * ref.primal
    assert calls.count(64) == 1, calls


def test_a_working_set_after_the_first_grows_past_the_violators(monkeypatch):
    """Violators only in the first working set; later ones take the ws_size best tokens,
    violators or not, so the sets grow to every token left and cannot cycle among
    violators. Here the first inner solve makes the answer worse."""
    from attnlab.convex import bcd

    X, y = _data(1000, 16, 8, 0, k=3)
    beta = 0.5 * convex.beta_max(X, y)
    sizes, inner, block = [], bcd._inner, bcd.BcdState.block
    monkeypatch.setattr(bcd.BcdState, "block", lambda s, W: sizes.append(len(W)) or block(s, W))

    def worse_first(H, c, x, *a, **k):
        if len(sizes) == 1:
            x[:] = 3.0  # every row of the set far from its optimum: the gap grows
            return 1, None
        return inner(H, c, x, *a, **k)

    monkeypatch.setattr(bcd, "_inner", worse_first)
    out = convex.fit(X, y, beta, solver="bcd", tol=1e-10)
    assert out.rel_gap <= 1e-10
    assert sizes[0] == 3 and sizes[1] == 16, sizes  # 3 violators; then ws_size (8 -> 16)


@pytest.mark.parametrize("seed, k, frac", [(0, 2, 0.1), (0, 6, 0.1), (2, 2, 0.1), (3, 2, 0.03)])
def test_a_second_working_set_holds_tokens_inside_their_condition(monkeypatch, seed, k, frac):
    """With correlated tokens, a token just inside its optimality condition after the first
    solve can belong to the support once its neighbours move: the second working set takes
    the ws_size = 16 best tokens, not only the violators (fewer than 16 here; violators only
    grew sets of 8, 13, 32 and 53 tokens at N = 10^5, n = d = 64 for 4 active)."""
    from attnlab.convex import bcd

    X, y = _data(600, 32, 6, seed, rho=0.9, k=k)
    beta = frac * convex.beta_max(X, y)
    sizes, block = [], bcd.BcdState.block
    monkeypatch.setattr(bcd.BcdState, "block", lambda s, W: sizes.append(len(W)) or block(s, W))
    out = convex.fit(X, y, beta, solver="bcd", tol=1e-10)
    assert sizes[:2] == [8, 16], sizes
    ref = convex.fit(X, y, beta, solver="fista", tol=1e-10, max_iter=200_000)
    assert out.rel_gap <= 1e-10 and abs(out.primal - ref.primal) <= 1e-9 * ref.primal
