"""Checks for assignment A1, convex attention: the token group lasso, solved and certified.

Student functions (NumPy in, NumPy out; X ``(N, n, d)``, y ``(N,)``, Z ``(n, d)``):

- ``group_soft_threshold(V, tau)``: row-wise shrinkage ``max(0, 1 - tau/||v_k||) v_k``;
- ``prox_grad(X, y, beta, n_iter)``: FISTA with adaptive restart from ``Z = 0``, step
  ``1/L`` with ``L = lambda_max(A^T A)``, ``A = X.reshape(N, n d)``;
- ``duality_gap(Z, X, y, beta)``: ``(P(Z), D(lam), P - D)`` with ``lam = s (y - yhat)``,
  ``s = min(1, beta / max_k ||sum_i r_i x_ik||)``;
- ``recover_heads(Z, tol)``: ``(w (h, n), v (h, d), b (h,))``, corrected Proposition 1;
- ``beta_max(X, y)``: the smallest beta with ``Z* = 0``.

Expected values come from :mod:`attnlab.convex` (optima, objectives, certificates) and from
properties (the prox's definition, KKT conditions, the forward map of the heads). The speed
test uses stored problems (``data/a1_speed.json``, written by ``make assignments``, which
holds the FISTA variants): the package never ships a solution of the assignment.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .. import convex
from .core import Run, Stop, check, close, diagnose, to_array
from .spec import Assignment, Part, Written

__all__ = [
    "ASSIGNMENT",
    "check_group_soft_threshold",
    "check_prox_grad",
    "check_duality_gap",
    "check_recover_heads",
    "check_beta_max",
    "lasso_problem",
    "speed_problems",
]


# ----------------------------------------------------------------------------- problems
def _shrink(V: np.ndarray, tau: float) -> np.ndarray:
    """The prox's definition, row by row (for the diagnosis of variants of a mistake)."""
    norms = np.linalg.norm(V, axis=1, keepdims=True)
    safe = np.where(norms > 0, norms, np.inf)
    return V * np.clip(1.0 - tau / safe, 0.0, None)


def lasso_problem(rng: np.random.Generator, *, N: int = 30, n: int = 6, d: int = 3,
                  rho: float = 0.5, frac: float = 0.05) -> tuple[np.ndarray, np.ndarray, float]:
    """A token group lasso with two true tokens; ``rho`` correlates the tokens of a sample
    (larger: worse conditioned). ``beta = frac * beta_max``. Returns ``(X, y, beta)``."""
    base = rng.standard_normal((N, 1, d))
    X = rho * base + np.sqrt(1.0 - rho**2) * rng.standard_normal((N, n, d))
    Zt = np.zeros((n, d))
    ks = rng.choice(n, 2, replace=False)
    Zt[ks] = rng.standard_normal((2, d))
    y = np.einsum("ikd,kd->i", X, Zt) + 0.1 * rng.standard_normal(N)
    return X, y, frac * convex.beta_max(X, y)


SPEED_FILE = Path(__file__).with_name("data") / "a1_speed.json"


def speed_problems() -> dict:
    """The stored speed problems: ``{"K": iterations, "problems": [{"X", "y", "beta",
    "optimum", "no_restart", "ista"}, ...]}`` with X ``(30, 6, 3)``, the optimal value, and
    the iterates after K steps of FISTA without restart and of plain proximal gradient. On
    each, FISTA with restart is within 1e-12 of the optimum after K steps, the two others
    above 1e-7 (``scripts/build_assignments.py`` draws and checks them)."""
    data = json.loads(SPEED_FILE.read_text())
    for p in data["problems"]:
        for k in ("X", "y", "no_restart", "ista"):
            p[k] = np.asarray(p[k], dtype=float)
    return data


def _primal(Z: np.ndarray, X: np.ndarray, y: np.ndarray, beta: float) -> float:
    return convex.primal_objective(Z, X, y, beta)


def _optimum(X: np.ndarray, y: np.ndarray, beta: float) -> convex.ConvexFit:
    return convex.fit(X, y, beta, tol=1e-12, max_iter=200_000)


# ----------------------------------------------------------------------------- part 1
def _random_rows(rng: np.random.Generator, n: int, d: int, tau: float) -> np.ndarray:
    """Rows with norms spread on both sides of ``tau`` (never within 5 % of it)."""
    V = rng.standard_normal((n, d))
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    low = rng.uniform(0.15, 0.8, n // 2) * tau
    high = rng.uniform(1.3, 3.0, n - n // 2) * tau
    return V * rng.permutation(np.concatenate([low, high]))[:, None]


_WRONG_LEVEL = ("the threshold level is off: a row survives exactly when ||v_k|| > tau, and its "
                "norm then drops by exactly tau")


def _gst_mistakes(V: np.ndarray, tau: float) -> list[tuple[Callable[[], np.ndarray], str]]:
    norms = np.linalg.norm(V, axis=1, keepdims=True)
    fro = np.linalg.norm(V)
    return [
        (lambda: np.sign(V) * np.maximum(np.abs(V) - tau, 0.0),
         "you soft-thresholded each entry separately; here a group is a whole row (one "
         "token): shrink row k by the factor max(0, 1 - tau/||v_k||)"),
        (lambda: _shrink(V.T, tau).T,
         "you grouped the entries by columns; a group is a row of V (one token)"),
        (lambda: V * (1.0 - tau / norms),
         "rows whose norm is below tau flip sign instead of becoming 0: clip the factor "
         "1 - tau/||v_k|| at 0"),
        (lambda: V * (norms > tau),
         "rows above the threshold are returned unchanged (hard thresholding); they must also "
         "shrink, their norm dropping by tau"),
        (lambda: V * np.clip(1.0 - tau / norms**2, 0.0, None),
         "divide tau by the row norm ||v_k||, not by its square"),
        (lambda: _shrink(V, 2 * tau), _WRONG_LEVEL),
        (lambda: _shrink(V, 0.5 * tau), _WRONG_LEVEL),
        (lambda: _shrink(V, tau**2), _WRONG_LEVEL),
        (lambda: _shrink(V, np.sqrt(tau)), _WRONG_LEVEL),
        (lambda: V * np.clip(1.0 - tau / fro, 0.0, None),
         "each row must be shrunk with its own norm ||v_k||, not the norm of the whole matrix"),
    ]


@check("A1.1", "group soft-thresholding", points=4)
def check_group_soft_threshold(run: Run, group_soft_threshold: Callable) -> None:
    """Check ``group_soft_threshold(V, tau)`` on random rows around the threshold."""
    rng = run.rng
    name = "group_soft_threshold"
    n, d = int(rng.integers(6, 10)), int(rng.integers(2, 5))
    tau = float(rng.uniform(0.6, 1.6))
    V = _random_rows(rng, n, d, tau)
    out = to_array(run.call(group_soft_threshold, V, tau, what=f"V of shape {V.shape}"),
                   name, V.shape)
    run.ok("returns an array of the shape of V", 0.5)
    ref = _shrink(V, tau)
    norms = np.linalg.norm(V, axis=1)
    big, small = norms > tau, norms <= tau
    hint = None if close(out, ref, 1e-9) else diagnose(out, _gst_mistakes(V, tau))
    # rows that survive: parallel to v_k, norm ||v_k|| - tau
    fb = None
    if hint is not None and not close(out[big], ref[big], 1e-9):
        fb = hint
    elif not close(out[big], ref[big], 1e-9):
        o, v = out[big], V[big]
        on = np.linalg.norm(o, axis=1)
        cos = np.sum(o * v, axis=1) / np.maximum(on * norms[big], 1e-300)
        if np.any((cos < 1 - 1e-9) & (on > 0)):
            fb = "a surviving row changed direction: it must stay parallel to v_k (shorter)"
        else:
            drop = np.mean((norms[big] - on) / tau)
            fb = (f"surviving rows shrink by {drop:.3g} x tau on average; the norm of a "
                  "surviving row must drop by exactly tau")
    run.item("rows with norm above tau shrink towards 0 by tau", 1.5, fb)
    zero_ok = np.all(np.abs(out[small]) <= 1e-12 * max(tau, 1.0))
    run.item("rows with norm at most tau become exactly 0", 1.0,
             None if zero_ok else (hint or "some rows with norm below tau are not set to 0"))
    # edge cases: a zero row, and tau = 0
    V0 = V.copy()
    V0[int(rng.integers(n))] = 0.0
    out0 = to_array(run.call(group_soft_threshold, V0, tau, what="a row of zeros"), name,
                    V.shape)
    z = int(np.flatnonzero(~V0.any(axis=1))[0])
    fb0 = None
    if not np.all(np.isfinite(out0)):
        fb0 = ("a row of zeros gives NaN (0/0): guard the division, e.g. compute the factor "
               "only where ||v_k|| > tau")
    elif np.any(out0[z] != 0):
        fb0 = "a row of zeros must stay 0"
    if fb0 is None:
        outt = to_array(run.call(group_soft_threshold, V, 0.0, what="tau = 0"), name, V.shape)
        if not close(outt, V, 1e-12):
            fb0 = "with tau = 0 the function must return V unchanged"
    run.item("edge cases: a zero row, tau = 0", 0.5, fb0)
    # the input must not be modified (prox_grad keeps using its iterate)
    Vm = V.copy()
    run.call(group_soft_threshold, Vm, tau, copy=False)
    run.item("does not modify its input V", 0.5,
             None if np.array_equal(Vm, V) else
             "your function changes V in place; work on a copy (np.array(V, dtype=float))")


# ----------------------------------------------------------------------------- part 2
def _kkt_beta(Z: np.ndarray, X: np.ndarray, y: np.ndarray) -> float | None:
    """If Z satisfies the optimality conditions of the group lasso for SOME beta', return
    beta' (from the active rows); else None."""
    N, n, d = X.shape
    rnorm = np.linalg.norm(Z, axis=1)
    if not np.all(np.isfinite(Z)) or rnorm.max() <= 0:
        return None
    act = rnorm > 1e-6 * rnorm.max()
    r = y - np.einsum("ikd,kd->i", X, Z)
    g = np.einsum("ikd,i->kd", X, r)  # A^T r per token
    gn = np.linalg.norm(g, axis=1)
    b = float(np.median(gn[act]))
    cos = np.sum(g[act] * Z[act], axis=1) / np.maximum(gn[act] * rnorm[act], 1e-300)
    if (np.all(np.abs(gn[act] - b) <= 1e-3 * b) and np.all(cos > 1 - 1e-4)
            and np.all(gn[~act] <= b * (1 + 1e-3))):
        return b
    return None


def _first_step_mistakes(X: np.ndarray, y: np.ndarray, beta: float
                         ) -> list[tuple[Callable[[], np.ndarray], str]]:
    N, n, d = X.shape
    A = X.reshape(N, n * d)
    step = 1.0 / np.linalg.eigvalsh(A.T @ A)[-1]
    g0 = (step * (A.T @ y)).reshape(n, d)  # minus the gradient step from Z = 0
    gst = _shrink
    return [
        (lambda: gst(-g0, step * beta),
         "your step goes uphill: the update is Z <- prox(Z - step * gradient), check the "
         "sign of the gradient A^T (A z - y)"),
        (lambda: gst(2 * g0, step * beta),
         "your gradient is twice too large: the gradient of 1/2 sum_i (yhat_i - y_i)^2 is "
         "A^T (A z - y), with no factor 2"),
        (lambda: gst(0.5 * g0, step * beta),
         "your gradient step is half as long as it should be (a stray factor 1/2)"),
        (lambda: gst(g0, beta),
         "the threshold must be step * beta (the prox of step * beta * sum_k ||z_k||), "
         "not beta"),
        (lambda: gst(g0, 2 * step * beta), "the threshold is twice step * beta"),
        (lambda: gst(g0, 0.5 * step * beta), "the threshold is half of step * beta"),
        (lambda: g0, "no thresholding: after the gradient step apply group_soft_threshold"),
        (lambda: np.sign(g0) * np.maximum(np.abs(g0) - step * beta, 0.0),
         "the prox thresholds entries instead of rows: call your group_soft_threshold"),
    ]


def _iteration_count(run: Run, prox_grad: Callable, Z1: np.ndarray, first: np.ndarray,
                     X: np.ndarray, y: np.ndarray, beta: float) -> str | None:
    """Feedback when ``n_iter = 1`` ran zero or two iterations (a loop bound off by one)."""
    n, d = first.shape
    if np.linalg.norm(first) > 0 and np.all(Z1 == 0):
        Z2 = to_array(run.call(prox_grad, X, y, beta, 2, what="n_iter = 2"), "prox_grad",
                      (n, d))
        if close(Z2, first, 1e-7):
            return ("one iteration too few: with n_iter = 1 your loop returns the starting "
                    "point Z = 0, and n_iter = 2 gives one step; run exactly n_iter "
                    "iterations (for _ in range(n_iter))")
    # the second step extrapolates from Z_1 (Z_0 = 0) with t_1 = (1 + sqrt 5)/2; no restart
    # can happen after the first step, so every variant with momentum agrees here
    A = X.reshape(X.shape[0], -1)
    step = 1.0 / np.linalg.eigvalsh(A.T @ A)[-1]
    t1 = 0.5 * (1.0 + np.sqrt(5.0))
    c = (t1 - 1.0) / (0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t1 * t1)))
    Y = (1.0 + c) * first.ravel()
    second = _shrink((Y - step * (A.T @ (A @ Y - y))).reshape(n, d), step * beta)
    if close(Z1, second, 1e-7) and not close(second, first, 1e-7):
        return ("one iteration too many: with n_iter = 1 your loop takes two steps; run "
                "exactly n_iter iterations (for _ in range(n_iter))")
    return None


@check("A1.2", "proximal gradient with restart", points=6)
def check_prox_grad(run: Run, prox_grad: Callable) -> None:
    """Check ``prox_grad(X, y, beta, n_iter)``: first step, convergence, speed (restart)."""
    rng = run.rng
    name = "prox_grad"
    X, y, beta = lasso_problem(rng, N=int(rng.integers(25, 35)), n=6, d=3, rho=0.5,
                               frac=float(rng.uniform(0.03, 0.1)))
    n, d = X.shape[1:]
    opt = _optimum(X, y, beta)
    P0 = _primal(np.zeros((n, d)), X, y, beta)

    def subopt(Z: np.ndarray) -> float:
        return (_primal(Z, X, y, beta) - opt.primal) / max(1.0, abs(opt.primal))

    # 1. one iteration from Z = 0 is a proximal gradient step (1 point)
    Z1 = to_array(run.call(prox_grad, X, y, beta, 1, what="n_iter = 1"), name, (n, d))
    if not np.all(np.isfinite(Z1)):
        raise Stop("after one iteration Z contains NaN or inf: is the step 1/L with L the "
                   "largest eigenvalue of A^T A (A = X.reshape(N, n*d))?")
    A = X.reshape(X.shape[0], -1)
    step = 1.0 / np.linalg.eigvalsh(A.T @ A)[-1]
    first = _shrink((step * (A.T @ y)).reshape(n, d), step * beta)
    if close(Z1, first, 1e-7) or subopt(Z1) <= 1e-7:
        run.ok("one iteration from Z = 0 is a proximal gradient step", 1.0)
    else:
        fb = _iteration_count(run, prox_grad, Z1, first, X, y, beta) \
            or diagnose(Z1, _first_step_mistakes(X, y, beta), 1e-7) or (
            "with n_iter = 1, Z should be one proximal gradient step from Z = 0 with step "
            "1/L, L = largest eigenvalue of A^T A; yours differs")
        run.fail("one iteration from Z = 0 is a proximal gradient step", 1.0, fb)

    # 2. convergence to the optimum of THIS beta (3 points)
    Z = to_array(run.call(prox_grad, X, y, beta, 3000, what="n_iter = 3000"), name, (n, d))
    gap = subopt(Z) if np.all(np.isfinite(Z)) else float("inf")
    converged = gap <= 1e-7
    fb = None
    if not converged:
        if not np.isfinite(gap) or _primal(Z, X, y, beta) > P0:
            fb = ("the objective at your Z is worse than at Z = 0 (or not finite): the "
                  "iteration goes uphill or diverges; check the sign of the gradient step and "
                  "the step size 1/L")
        elif np.linalg.norm(Z) == 0:
            fb = ("your loop returns Z = 0 although the optimum has nonzero rows: is the "
                  "threshold step * beta (not beta)?")
        else:
            b_eff = _kkt_beta(Z, X, y)
            if b_eff is not None:
                fb = (f"your Z is the optimum for beta' = {b_eff / beta:.3g} x beta, not for "
                      "beta: a scale factor is off (gradient without a factor 2, threshold "
                      "step * beta)")
            else:
                fb = (f"after 3000 iterations your objective is {gap:.1e} (relative) above "
                      "the optimum; if part A1.1 does not pass yet, fix it first")
    run.item("converges to the optimum (3000 iterations, well conditioned)", 3.0, fb)
    if not converged:
        raise Stop("the speed test (restart) runs once the convergence test passes.")

    # 3. speed on an ill-conditioned problem: momentum with restart (2 points)
    data = speed_problems()
    K = int(data["K"])
    prob = data["problems"][int(rng.integers(len(data["problems"])))]
    Xh, yh, bh, best = prob["X"], prob["y"], float(prob["beta"]), float(prob["optimum"])

    def subopt_h(Zc: np.ndarray) -> float:
        return (_primal(Zc, Xh, yh, bh) - best) / max(1.0, abs(best))

    Zh = to_array(run.call(prox_grad, Xh, yh, bh, K, what=f"n_iter = {K}"), name,
                  Xh.shape[1:])
    gh = subopt_h(Zh) if np.all(np.isfinite(Zh)) else float("inf")
    fb = None
    if gh > 1e-10:
        no_restart, ista = prob["no_restart"], prob["ista"]
        g_nr, g_ista = subopt_h(no_restart), subopt_h(ista)
        if close(Zh, no_restart, 1e-6) or (np.isfinite(gh) and 0.1 * g_nr <= gh <= 10 * g_nr):
            fb = ("your loop converges like FISTA without restart: reset the momentum "
                  "(t = 1) whenever (Y - Z_new) . (Z_new - Z) > 0, where Y is the extrapolated "
                  "point")
        elif close(Zh, ista, 1e-6) or (np.isfinite(gh) and 0.1 * g_ista <= gh <= 10 * g_ista):
            fb = ("your loop converges like plain proximal gradient (no momentum): add the "
                  "FISTA extrapolation Y = Z + (t - 1)/t_next (Z - Z_prev), with restart")
        else:
            fb = (f"after {K} iterations on an ill-conditioned problem your objective is "
                  f"{gh:.1e} (relative) above the optimum; FISTA with restart gets below 1e-10")
    run.item(f"fast: {K} iterations suffice on an ill-conditioned problem (momentum + "
             "restart)", 2.0, fb)


# ----------------------------------------------------------------------------- part 3
def _gap_reference(Z: np.ndarray, X: np.ndarray, y: np.ndarray, beta: float
                   ) -> tuple[float, float, np.ndarray, float]:
    """``(P, D, lam, s)`` with the dual point of the assignment, from the package."""
    P = convex.primal_objective(Z, X, y, beta)
    r = y - convex.predict(Z, X)
    cmax = float(np.max(convex.dual_certificate(r, X)))
    s = min(1.0, beta / cmax) if cmax > 0 else 1.0
    return P, convex.dual_objective(s * r, y), s * r, s


def _gap_cases(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, float]]:
    N, n, d = int(rng.integers(12, 20)), int(rng.integers(4, 7)), int(rng.integers(2, 4))
    X, y, beta = lasso_problem(rng, N=N, n=n, d=d, rho=0.3, frac=float(rng.uniform(0.1, 0.3)))
    Z_rand = rng.standard_normal((n, d)) * 0.3  # a poor point: the residual needs scaling
    Z_opt = np.asarray(_optimum(X, y, beta).Z)
    return [(Z_rand, X, y, beta), (Z_opt, X, y, beta)]


def _primal_mistakes(Z: np.ndarray, X: np.ndarray, y: np.ndarray, beta: float
                     ) -> list[tuple[float, str]]:
    r = convex.predict(Z, X) - y
    loss = 0.5 * float(r @ r)
    rows = np.linalg.norm(Z, axis=1)
    return [
        (2 * loss + beta * rows.sum(),
         "your primal misses the factor 1/2 on the squared loss: P(Z) = 1/2 sum_i (<X_i, Z> "
         "- y_i)^2 + beta sum_k ||z_k||"),
        (loss + beta * float(np.sum(rows**2)),
         "the penalty uses squared row norms; it is beta times the sum of the row norms "
         "||z_k||_2 (not squared)"),
        (loss + beta * float(np.linalg.norm(Z)),
         "the penalty uses the Frobenius norm of Z; it is the sum of the row norms ||z_k||_2"),
        (loss + beta * float(np.abs(Z).sum()),
         "the penalty uses the entrywise l1 norm; it is the sum of the row norms ||z_k||_2"),
        (loss + 0.5 * beta * rows.sum(), "the penalty carries a stray factor 1/2"),
        (loss, "the penalty beta sum_k ||z_k|| is missing"),
    ]


def _dual_mistakes(Z: np.ndarray, X: np.ndarray, y: np.ndarray, beta: float
                   ) -> list[tuple[float, str]]:
    r = y - convex.predict(Z, X)
    cert = convex.dual_certificate(r, X)
    cmax = float(np.max(cert))
    s = min(1.0, beta / cmax)

    def D(lam: np.ndarray) -> float:
        return float(lam @ y - 0.5 * lam @ lam)

    cinf = float(np.max(np.abs(np.einsum("ikd,i->kd", X, r))))
    return [
        (D(r), "your dual point is not feasible: scale the residual, lam = s r with "
               "s = min(1, beta / max_k ||sum_i r_i x_ik||)"),
        (D(-s * r), "sign error: the dual point is lam = s (y - yhat), not s (yhat - y)"),
        (float(s * r @ y - (s * r) @ (s * r)),
         "the dual objective is D(lam) = lam . y - 1/2 ||lam||^2: the factor 1/2 is missing"),
        (D(beta / cmax * r), "cap the scale at 1: s = min(1, beta / max_k ||...||)"),
        (D(min(1.0, beta / cinf) * r),
         "scale with the token norms ||sum_i r_i x_ik||_2 (one Euclidean norm per row), not "
         "the largest entry"),
        (D(min(1.0, beta / float(np.sum(cert))) * r),
         "scale with the LARGEST token norm max_k ||sum_i r_i x_ik||, not their sum"),
    ]


def _three_numbers(out: object, name: str) -> tuple[float, float, float]:
    try:
        P, D, gap = (float(to_array(v, name).reshape(())) for v in out)  # type: ignore
    except (TypeError, ValueError):
        raise Stop(f"`{name}` must return three numbers (primal, dual, gap), got "
                   f"{type(out).__name__}") from None
    return P, D, gap


@check("A1.3", "duality gap", points=4)
def check_duality_gap(run: Run, duality_gap: Callable) -> None:
    """Check ``duality_gap(Z, X, y, beta) -> (primal, dual, gap)`` at a poor and an optimal Z."""
    name = "duality_gap"
    cases = _gap_cases(run.rng)
    fb_p = fb_d = fb_g = None
    for Z, X, y, beta in cases:
        P, D, gap = _three_numbers(run.call(duality_gap, Z, X, y, beta,
                                            what=f"Z of shape {Z.shape}"), name)
        Pr, Dr, _, _ = _gap_reference(Z, X, y, beta)
        if fb_p is None and not abs(P - Pr) <= 1e-7 * max(1.0, abs(Pr)):
            fb_p = diagnose(np.array(P), [(np.array(v), m) for v, m in
                                          _primal_mistakes(Z, X, y, beta)], 1e-7) or \
                "the primal value P(Z) is wrong"
        if fb_d is None and not abs(D - Dr) <= 1e-7 * max(1.0, abs(Dr)):
            fb_d = diagnose(np.array(D), [(np.array(v), m) for v, m in
                                          _dual_mistakes(Z, X, y, beta)], 1e-7) or \
                "the dual value D(lam) is wrong"
        if fb_g is None and not abs(gap - (P - D)) <= 1e-9 * max(1.0, abs(P)):
            fb_g = "the gap must be primal - dual"
    if fb_g is None:
        P, D, gap = _three_numbers(run.call(duality_gap, *cases[1]), name)
        Pr = _gap_reference(*cases[1])[0]
        if not (abs(gap) <= 1e-6 * max(1.0, abs(Pr))):
            fb_g = ("at an optimal Z (from attnlab.convex.fit) your gap is not ~0: check the "
                    "primal and dual values")
    run.item("primal value P(Z)", 1.5, fb_p)
    run.item("dual value at the scaled residual", 1.5, fb_d)
    run.item("gap = P - D, and ~0 at an optimal Z", 1.0, fb_g)


# ----------------------------------------------------------------------------- part 4
@check("A1.4", "recover the heads", points=4)
def check_recover_heads(run: Run, recover_heads: Callable) -> None:
    """Check ``recover_heads(Z, tol) -> (w, v, b)`` on a Z whose support is not the first rows."""
    rng = run.rng
    name = "recover_heads"
    n, d = int(rng.integers(6, 9)), int(rng.integers(2, 5))
    k = int(rng.integers(2, 4))
    rows = np.sort(rng.choice(np.arange(1, n), k, replace=False))  # never just the first rows
    Z = np.zeros((n, d))
    Z[rows] = rng.standard_normal((k, d)) * rng.uniform(0.3, 3.0, (k, 1))
    out = run.call(recover_heads, Z, 1e-8, what=f"Z of shape {Z.shape} with {k} nonzero rows")
    try:
        w, v, b = out
    except (TypeError, ValueError):
        raise Stop(f"`{name}` must return three arrays (w, v, b)") from None
    w_any = to_array(w, name + " (w)")
    if w_any.ndim == 2 and w_any.shape[0] == n and k < n:
        raise Stop(f"you returned {n} heads for a Z with {k} nonzero rows: make one head per "
                   "NONZERO row of Z (rows with norm <= tol give no head)")
    w = to_array(w, name + " (w)", (k, n))
    v = to_array(v, name + " (v)", (k, d))
    b = to_array(b, name + " (b)", (k,))
    run.ok("one head per nonzero row, shapes w (h, n), v (h, d), b (h,)", 1.0)
    fwd = np.einsum("jk,jd,j->kd", w, v, b)  # forward map Z = sum_j w_j (v_j b_j)^T
    fb = None
    if not close(fwd, Z, 1e-9):
        onehot_j = np.zeros((k, n))
        onehot_j[np.arange(k), np.arange(k)] = 1.0
        if np.allclose(w, onehot_j):
            fb = ("w_j = e_j points at token j, not at the token k_j whose row of Z the head "
                  "uses (the typo in the printed Proposition 1): use w_j = e_{k_j}")
        else:
            fb = ("the heads do not reproduce Z: sum_j w_j (v_j b_j)^T must equal Z; check the "
                  "sign and size of v_j b_j and which token each w_j selects")
    run.item("the heads reproduce Z (forward map sum_j w_j (v_j b_j)^T)", 1.0, fb)
    onehot = np.all((np.abs(w) < 1e-12) | (np.abs(w - 1) < 1e-12)) and np.allclose(w.sum(1), 1)
    run.item("each attention vector is one-hot (a vertex of the simplex)", 1.0,
             None if onehot else "each w_j must be an indicator vector e_k (one entry 1, the "
                                 "others 0)")
    reg = 0.5 * float(np.sum(v**2) + np.sum(b**2))
    fb = None
    if not abs(reg - np.linalg.norm(Z, axis=1).sum()) <= 1e-9 * max(1.0, reg):
        fb = ("the heads' weight decay 1/2 sum_j (||v_j||^2 + b_j^2) is not sum_k ||z_k||: "
              "balance the two factors, ||v_j|| = |b_j| = sqrt(||z_k||)")
    run.item("balanced: weight decay equals the group penalty", 1.0, fb)


# ----------------------------------------------------------------------------- part 5
@check("A1.5", "beta_max: when every token is off", points=2)
def check_beta_max(run: Run, beta_max: Callable) -> None:
    """Check ``beta_max(X, y)`` against :func:`attnlab.convex.beta_max` on two problems."""
    rng = run.rng
    for case in range(2):
        X, y, _ = lasso_problem(rng, N=int(rng.integers(10, 30)), n=int(rng.integers(3, 8)),
                                d=int(rng.integers(2, 5)), rho=0.3)
        got = to_array(run.call(beta_max, X, y, what=f"X of shape {X.shape}"), "beta_max", ())
        ref = convex.beta_max(X, y)
        G = np.einsum("ikd,i->kd", X, y)
        fb = None
        if not abs(float(got) - ref) <= 1e-9 * max(1.0, ref):
            fb = diagnose(got, [
                (np.array(np.linalg.norm(G, axis=1).sum()),
                 "take the LARGEST token norm max_k ||sum_i y_i x_ik||, not their sum"),
                (np.array(np.abs(G).max()),
                 "use the Euclidean norm of each token's vector sum_i y_i x_ik, not its "
                 "largest entry"),
                (np.array(np.abs(G).sum(1).max()), "use the Euclidean norm, not the l1 norm"),
                (np.array((G**2).sum(1).max()), "use the norm, not the squared norm"),
                (np.array(np.linalg.norm(G, axis=1).min()),
                 "Z = 0 is optimal only when EVERY token is off: take the max over tokens"),
            ], 1e-9) or "wrong value: at beta_max the certificate of Z = 0 (lam = y) is tight"
        run.item(f"hidden problem {case + 1}", 1.0, fb)


# ----------------------------------------------------------------------------- spec
ASSIGNMENT = Assignment(
    key="A1",
    slug="a1_convex_attention",
    title="Convex attention: solve, certify and read the token group lasso",
    hours="3-4 h",
    parts=(
        Part("A1.1", "group soft-thresholding", 4, check_group_soft_threshold,
             ("group_soft_threshold",), forbidden=("_shrink", "_prox")),
        Part("A1.2", "proximal gradient with restart", 6, check_prox_grad, ("prox_grad",),
             forbidden=("fit", "solve_fista")),
        Part("A1.3", "duality gap", 4, check_duality_gap, ("duality_gap",)),
        Part("A1.4", "recover the heads", 4, check_recover_heads, ("recover_heads",),
             forbidden=("recover_heads", "train_heads")),
        Part("A1.5", "beta_max", 2, check_beta_max, ("beta_max",),
             forbidden=("beta_max",)),
    ),
    written=(
        Written("A1.W1", "which tokens survive as beta grows", 3),
        Written("A1.W2", "why recovered attention is one-hot", 2),
    ),
)
