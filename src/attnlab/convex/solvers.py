"""``fit`` and ``regularization_path``: solve the token group lasso and certify the answer.

See :mod:`attnlab.convex.problem` for the conventions (X ``(N, n, d)``, y ``(N,)`` or
``(N, c)``, Z ``(n, d)`` or ``(c, n, d)``, squared loss ``1/2 (yhat - y)^2``).
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .._arrays import to_numpy
from .._threads import for_data, limit_threads
from .._validate import (
    MAX_STEPS,
    check_bool,
    check_choice,
    check_instance,
    check_int,
    check_real,
    check_real_sequence,
)
from ..device import get_device
from .bcd import bcd_design, certify_many, solve_bcd
from .cvx import solve_cvxpy
from .fista import (
    ConvergenceError,
    Design,
    FistaOut,
    build_design,
    exact_residual,
    gap_terms,
    solve_fista,
)
from .problem import Array, check_beta, check_data, check_Z

__all__ = ["ConvexFit", "ConvexPath", "fit", "path", "regularization_path", "ConvergenceError",
           "SOLVERS"]

SOLVERS = ("fast", "fista", "bcd", "auto", "cvxpy")
# "auto" picks BCD on the CPU when beta >= AUTO_BCD_FRACTION * beta_max (sparse answers: a
# small working set and a small Newton system; benchmarks/README.md), FISTA otherwise and on
# GPUs (one fused product per iteration). "fast" and "fista" are the same restarted FISTA.
AUTO_BCD_FRACTION = 0.05


@dataclass
class ConvexFit:
    """Result of :func:`fit`.

    Attributes:
        Z: ``(n, d)`` or ``(c, n, d)`` solution (NumPy if X was NumPy, else a tensor).
        primal: ``P(Z)``.
        dual: ``D(lam)``, a certified lower bound on the optimum.
        lam: ``(N,)`` or ``(N, c)`` dual feasible point (scaled residual).
        gap: ``primal - dual`` (>= 0 up to rounding); ``rel_gap = gap / max(1, |primal|)``.
        active: sorted indices of tokens whose row of Z is nonzero (row norm above
            ``active_tol`` times the largest row norm); for ``c > 1`` a list of c arrays.
        iterations: FISTA iterations, BCD inner epochs (0 for cvxpy).
        seconds: wall time of the whole call (validation, problem build, solve, certificate).
        solver: the solver that ran (``"auto"`` resolved).
        beta: the regularization strength.
        certificate: ``(n,)`` or ``(c, n)`` token norms ``||sum_i lam_i x_ik||`` (``<= beta``).
        converged: the fast solver met ``tol`` by its own gap, or cvxpy status optimal.
            ``rel_gap`` is recomputed here as ``primal - dual``, which rounds differently:
            at a ``tol`` within a few digits of machine precision (e.g. 1e-14) it can
            exceed ``tol`` by a fraction of a percent on a converged fit.
        device: where the fast solver ran.
        extra: ``prep_seconds`` (Gram matrix and step size) and ``gram`` (mode used).
    """

    Z: Array
    primal: float
    dual: float
    lam: Array
    gap: float
    rel_gap: float
    active: Any
    iterations: int
    seconds: float
    solver: str
    beta: float
    certificate: Array
    converged: bool = True
    device: str = "cpu"
    extra: dict = field(default_factory=dict, repr=False)

    @property
    def n_active(self) -> int:
        """Number of nonzero (output, token) rows = heads needed by the recovery."""
        if isinstance(self.active, list):
            return int(sum(len(a) for a in self.active))
        return len(self.active)


def _package(x: torch.Tensor, des: Design, beta: float, *, X_ref: Any, vector: bool,
             solver: str, iterations: int, t0: float, converged: bool, active_tol: float,
             device: torch.device, r: torch.Tensor | None = None,
             g: torch.Tensor | None = None, s: torch.Tensor | None = None) -> ConvexFit:
    """Turn the solver's ``x (p, c)`` into a certified :class:`ConvexFit`.

    ``r = Y - A x (N, c)``, ``g = A^T r (p, c)`` and the dual scale ``s (c,)`` are
    recomputed (on the solver's device) when not given. The rest is a dozen small products,
    done in NumPy on every device: torch's per-call cost would dominate them, and a GPU
    solve pays one copy of ``x``, ``r``, ``g`` and ``Y`` to the host. Results come back as
    the kind (and on the device) of ``X_ref``.
    """
    n, d, c = des.n, des.d, des.Y.shape[1]
    if r is None or g is None or s is None:
        r, g = exact_residual(des, x)
        _, _, s = gap_terms(x, g, (r * r).sum(0), beta, n, d)
    x, r, g, s = (to_numpy(a) for a in (x, r, g, s))  # CPU tensors: views, no copy
    lam = r * s
    cert = np.sqrt(((g * s).reshape(n, d, c) ** 2).sum(1)).T  # (c, n): ||A_k^T lam||
    Z3 = np.ascontiguousarray(x.reshape(n, d, c).transpose(2, 0, 1))  # (c, n, d)
    norms = np.sqrt((Z3 * Z3).sum(2))  # (c, n)
    primal = float(0.5 * (r * r).sum() + beta * norms.sum())
    dual = float((lam * to_numpy(des.Y)).sum() - 0.5 * (lam * lam).sum())
    # active: per output, tokens whose row norm exceeds active_tol times the largest one
    top = float(norms.max()) if norms.size else 0.0
    act = [np.flatnonzero(row > active_tol * top) if top > 0 else np.zeros(0, dtype=np.int64)
           for row in norms]

    def back(a: np.ndarray) -> Array:  # as :func:`like`: the kind (and device) of X_ref
        if isinstance(X_ref, np.ndarray):
            return a
        t = torch.from_numpy(a)
        return t.to(X_ref.device) if isinstance(X_ref, torch.Tensor) else t

    gap = primal - dual
    return ConvexFit(
        Z=back(Z3 if vector else Z3[0]), primal=primal, dual=dual,
        lam=back(lam if vector else np.ascontiguousarray(lam[:, 0])),
        gap=gap, rel_gap=gap / max(1.0, abs(primal)), active=act if vector else act[0],
        iterations=iterations, seconds=time.perf_counter() - t0, solver=solver, beta=beta,
        certificate=back(cert if vector else cert[0]), converged=converged,
        device=str(device),
        extra={"prep_seconds": des.seconds, "gram": des.gram, "dual_scale": s.copy()},
    )


def _prepare(X: Any, y: Any, device: Any, gram: bool | None, solver: str = "fista",
             beta: float | None = None,
             along_path: bool = False) -> tuple[Design, bool, torch.device, str]:
    """Validate, resolve ``solver="auto"`` and build the design the solver needs."""
    dev = get_device(device, dtype=torch.float64)
    Xt, yt = check_data(X, y, device=dev)
    N, n, d = Xt.shape
    vector = yt.ndim == 2
    Y = yt.reshape(N, -1)
    A = Xt.reshape(N, n * d)
    if solver == "auto":
        if dev.type != "cpu":
            solver = "fista"
        elif along_path or beta is None:
            solver = "bcd"
        else:
            bmax = float((A.T @ Y).view(n, d, -1).norm(dim=1).max())
            solver = "bcd" if beta >= AUTO_BCD_FRACTION * bmax else "fista"
    if solver == "bcd":
        # the Gram matrix pays off along a path (many passes) or when asked for
        use_gram = gram if gram is not None else (along_path and N > n * d)
        return bcd_design(A, Y, n, d, use_gram), vector, dev, solver
    return build_design(A, Y, n, d, gram=gram), vector, dev, solver


def _x0(Z0: Any, des: Design, vector: bool, dev: torch.device) -> torch.Tensor | None:
    if Z0 is None:
        return None
    c = des.Y.shape[1]
    check_Z(Z0, des.n, des.d, c if vector else None, name="Z0")
    from .problem import as_tensor

    Z3 = as_tensor("Z0", Z0, device=dev).reshape(c, des.n, des.d)
    return Z3.permute(1, 2, 0).reshape(des.n * des.d, c).contiguous()


def _solve(des: Design, beta: float, *, X_ref: Any, vector: bool, dev: torch.device,
           solver: str, tol: float, max_iter: int, x0: torch.Tensor | None, check_every: int,
           allow_unconverged: bool, active_tol: float, cvx_solver: str, cvx_form: str,
           cvx_options: dict | None, t0: float, cache: dict | None = None,
           ws0: list | None = None) -> ConvexFit:
    if solver == "cvxpy":
        A, Y = to_numpy(des.A), to_numpy(des.Y)
        x = torch.from_numpy(solve_cvxpy(A, Y, beta, des.n, des.d, tol=tol,
                                         cvx_solver=cvx_solver, form=cvx_form,
                                         options=cvx_options)).to(dev)
        return _package(x, des, beta, X_ref=X_ref, vector=vector, solver="cvxpy",
                        iterations=0, t0=t0, converged=True, active_tol=active_tol, device=dev)
    if solver == "bcd":
        cache = cache if cache is not None else {}
        out, cache["state"] = solve_bcd(des, beta, tol=tol, max_iter=max_iter, x0=x0,
                                        state=cache.get("state"), ws0=ws0)
        cache["out"] = out  # the path's next warm start and strong rule, as the solver has them
    else:
        out = solve_fista(des, beta, tol=tol, max_iter=max_iter, x0=x0,
                          check_every=check_every)
    res = _package(out.x, des, beta, X_ref=X_ref, vector=vector, solver=solver,
                   iterations=out.iterations, t0=t0, converged=out.converged,
                   active_tol=active_tol, device=dev, r=out.r, g=out.g, s=out.s)
    return _checked(res, out.converged, solver, max_iter, tol, allow_unconverged)


def _checked(res: ConvexFit, converged: bool, solver: str, max_iter: int, tol: float,
             allow_unconverged: bool) -> ConvexFit:
    """``res``, or a :class:`ConvergenceError` (a warning if ``allow_unconverged``) when the
    solver stopped at ``max_iter`` short of ``tol``."""
    if not converged:
        msg = (f"{solver} solver stopped at max_iter={max_iter} with relative duality gap "
               f"{res.rel_gap:.2e} > tol={tol:.1e} (beta={res.beta}); raise max_iter, loosen "
               "tol, or pass allow_unconverged=True to get this unconverged result")
        if not allow_unconverged:
            raise ConvergenceError(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=_caller_level())
    return res


def _caller_level() -> int:
    """``stacklevel`` that points a warning at the first frame outside this package (its
    caller's ``fit`` or ``path`` line), however deep inside the package the warning is made."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../attnlab
    frame, level = sys._getframe(1), 1  # the frame that calls warnings.warn
    while frame is not None and frame.f_code.co_filename.startswith(root + os.sep):
        frame, level = frame.f_back, level + 1
    return level


def _threads_for(X: Any, device: Any) -> int | None:
    """One CPU thread for small data (see ``_threads.for_data``); GPUs are left alone."""
    if str(device).startswith("cuda") or (device in (None, "auto") and torch.cuda.is_available()):
        return None
    if getattr(X, "ndim", 0) != 3:
        return None  # validation reports the bad shape
    N, n, d = X.shape
    return for_data(int(N), int(n * d))


def _check_common(solver: str, tol: Any, max_iter: Any, check_every: Any,
                  active_tol: Any, allow_unconverged: Any = False, gram: Any = None,
                  cvx_solver: Any = "CLARABEL", cvx_form: Any = "residual",
                  cvx_options: Any = None) -> tuple[str, float, int, int, float]:
    solver = check_choice("solver", solver, SOLVERS)
    tol = check_real("tol", tol, min=0.0, strict_min=True)
    max_iter = check_int("max_iter", max_iter, min=1, max=MAX_STEPS)
    check_every = check_int("check_every", check_every, min=1)
    active_tol = check_real("active_tol", active_tol, min=0.0, max=1.0)
    # checked whichever solver runs, so a typo never passes silently
    check_bool("allow_unconverged", allow_unconverged)
    if gram is not None:
        check_bool("gram", gram)
    if not isinstance(cvx_solver, str) or not cvx_solver:
        raise TypeError(f"cvx_solver must be a cvxpy solver name (str), got "
                        f"{type(cvx_solver).__name__} {cvx_solver!r}")
    check_choice("cvx_form", cvx_form, ("residual", "gram"))
    check_instance("cvx_options", cvx_options, dict, allow_none=True)
    if solver == "cvxpy":
        from .cvx import _check_solver

        _check_solver(cvx_solver)
    return solver, tol, max_iter, check_every, active_tol


def fit(X: Array, y: Array, beta: float, *, solver: str = "fast", tol: float = 1e-8,
        max_iter: int = 50_000, device: str | torch.device | None = "cpu",
        Z0: Array | None = None, check_every: int = 10, allow_unconverged: bool = False,
        active_tol: float = 1e-6, gram: bool | None = None, cvx_solver: str = "CLARABEL",
        cvx_form: str = "residual", cvx_options: dict | None = None) -> ConvexFit:
    """Solve ``min_Z sum_i 1/2 ||<X_i, Z> - y_i||^2 + beta sum_{l,k} ||z_{l,k}||_2``.

    Args:
        X: ``(N, n, d)`` data (NumPy or torch; converted to float64).
        y: ``(N,)`` targets, or ``(N, c)`` for c outputs (one token group lasso each).
        beta: regularization strength, > 0.
        solver: ``"fast"`` or ``"fista"`` (restarted FISTA in torch, CPU or GPU: the
            readable reference), ``"bcd"`` (working-set block coordinate descent with
            gap-safe screening and Newton steps, :mod:`attnlab.convex.bcd`), ``"auto"``
            (``"bcd"`` on the CPU when ``beta >= AUTO_BCD_FRACTION * beta_max``, else
            ``"fista"``) or ``"cvxpy"`` (reference).
        tol: fast: stop when ``(P - D) / max(1, |P|) <= tol``; cvxpy: Clarabel's tolerances.
        max_iter: fast solver iteration limit; reaching it raises :class:`ConvergenceError`
            with the achieved gap unless ``allow_unconverged=True`` (then a warning and
            ``converged=False``).
        device: ``"cpu"`` (default), ``"cuda"``, ``"auto"``/None (best available).
        Z0: warm start, shape of Z (fast solver only).
        check_every: iterations between duality-gap checks.
        active_tol: a row is active if its norm exceeds ``active_tol`` times the largest.
        gram: use the Gram matrix ``A^T A`` (default: FISTA when N > n d; BCD never in a
            single fit, along a path when N > n d).
        cvx_solver: cvxpy solver name (default Clarabel).
        cvx_form: ``"residual"`` (as a user writes it) or ``"gram"`` (size independent of N).
        cvx_options: extra solver settings for cvxpy's ``solve`` (e.g. ``{"max_iter": 50}``).

    Returns:
        :class:`ConvexFit`; Z ``(n, d)`` or ``(c, n, d)``, lam ``(N,)`` or ``(N, c)``.
    """
    t0 = time.perf_counter()
    beta = check_beta(beta)
    solver, tol, max_iter, check_every, active_tol = _check_common(
        solver, tol, max_iter, check_every, active_tol, allow_unconverged, gram, cvx_solver,
        cvx_form, cvx_options)
    with limit_threads(_threads_for(X, device), blas=True):
        des, vector, dev, solver = _prepare(X, y, device, gram, solver, beta)
        x0 = _x0(Z0, des, vector, dev)
        return _solve(des, beta, X_ref=X, vector=vector, dev=dev, solver=solver, tol=tol,
                      max_iter=max_iter, x0=x0, check_every=check_every,
                      allow_unconverged=allow_unconverged, active_tol=active_tol,
                      cvx_solver=cvx_solver, cvx_form=cvx_form, cvx_options=cvx_options,
                      t0=t0)


def regularization_path(X: Array, y: Array, betas: Sequence[float] | np.ndarray, *,
                        solver: str = "fast", tol: float = 1e-8, max_iter: int = 50_000,
                        device: str | torch.device | None = "cpu", check_every: int = 10,
                        allow_unconverged: bool = False, active_tol: float = 1e-6,
                        gram: bool | None = None, cvx_solver: str = "CLARABEL",
                        cvx_form: str = "residual",
                        cvx_options: dict | None = None) -> list[ConvexFit]:
    """Solve for each beta; returns fits in the order of ``betas``.

    The data (Gram matrix, step size) is prepared once; the fast solver runs from the
    largest beta down, warm-starting each solve at the previous solution.  The first fit's
    ``seconds`` includes the shared preparation.

    Args:
        betas: 1-D sequence of values > 0.
        other arguments: as in :func:`fit`.
    """
    t0 = time.perf_counter()
    vals = check_real_sequence("betas", betas, min=0.0, strict_min=True)
    solver, tol, max_iter, check_every, active_tol = _check_common(
        solver, tol, max_iter, check_every, active_tol, allow_unconverged, gram, cvx_solver,
        cvx_form, cvx_options)
    with limit_threads(_threads_for(X, device), blas=True):
        return _path(X, y, vals, device, gram, t0, solver=solver, tol=tol, max_iter=max_iter,
                     check_every=check_every, allow_unconverged=allow_unconverged,
                     active_tol=active_tol, cvx_solver=cvx_solver, cvx_form=cvx_form,
                     cvx_options=cvx_options)


def _path(X: Any, y: Any, vals: list[float], device: Any, gram: bool | None, t0: float,
          solver: str = "fast", **kw: Any) -> list[ConvexFit]:
    des, vector, dev, solver = _prepare(X, y, device, gram, solver, along_path=True)
    order = sorted(range(len(vals)), key=lambda i: -vals[i])
    if solver == "bcd" and des.gram:
        return _path_bcd(des, vals, order, X_ref=X, vector=vector, dev=dev, t0=t0, **kw)
    out: list[ConvexFit | None] = [None] * len(vals)
    x0, ws0, cache = None, None, {}
    for pos, i in enumerate(order):
        res = _solve(des, vals[i], X_ref=X, vector=vector, dev=dev, x0=x0, t0=t0,
                     solver=solver, cache=cache, ws0=ws0, **kw)
        t0 = time.perf_counter()
        if solver == "bcd":
            x0 = cache["out"].x
            ws0 = _next_working_sets(cache["out"].g, des, vals, order, pos) or ws0
        else:
            x0 = _x0(res.Z, des, vector, dev)
        out[i] = res
    return [r for r in out if r is not None]


def _path_bcd(des: Design, vals: list[float], order: list[int], *, X_ref: Any, vector: bool,
              dev: torch.device, t0: float, tol: float, max_iter: int, allow_unconverged: bool,
              active_tol: float, **_: Any) -> list[ConvexFit]:
    """:func:`_path` for BCD in Gram mode: each beta solved to the Gram-form target, warm
    started and with the strong rule, then every answer confirmed by one batched exact pass
    (:func:`attnlab.convex.bcd.certify_many`); an answer the exact pass does not confirm (the
    Gram form can be optimistic) is solved on from there with exact checks, as :func:`fit`
    would, within the ``max_iter`` epochs per output that both solves share. Each fit's
    ``seconds``: its solve, its share of the batched pass, its packaging (the first one's
    also the shared preparation)."""
    outs: dict[int, Any] = {}
    spent: dict[int, float] = {}
    x0 = ws0 = state = None
    prep = time.perf_counter() - t0  # validation and the Gram matrix: the first fit's
    for pos, i in enumerate(order):
        t = time.perf_counter()
        out, state = solve_bcd(des, vals[i], tol=tol, max_iter=max_iter, x0=x0, state=state,
                               ws0=ws0, certify=False)
        x0 = out.x
        ws0 = _next_working_sets(out.g, des, vals, order, pos) or ws0
        outs[i], spent[i] = out, time.perf_counter() - t

    def certified(i: int, cert: tuple, start: float) -> ConvexFit:
        nonlocal state
        r, g, s, primal, gap = cert
        out = outs.pop(i)
        met, left = gap <= tol * max(1.0, abs(primal)), max_iter - out.iterations
        if met or not out.converged or left < 1:  # certified, or out of epochs (as fit)
            out = FistaOut(out.x, r, g, s, primal, gap, out.iterations, met)
        else:  # the Gram form was optimistic: solve on from here, in the epochs left
            more, state = solve_bcd(des, vals[i], tol=tol, max_iter=left, x0=out.x,
                                    state=state)
            out = FistaOut(more.x, more.r, more.g, more.s, more.primal, more.gap,
                           out.iterations + more.iterations, more.converged)
        res = _package(out.x, des, vals[i], X_ref=X_ref, vector=vector, solver="bcd",
                       iterations=out.iterations, t0=start, converged=out.converged,
                       active_tol=active_tol, device=dev, r=out.r, g=out.g, s=out.s)
        return _checked(res, out.converged, "bcd", max_iter, tol, allow_unconverged)

    fits: list[ConvexFit | None] = [None] * len(vals)
    done, t = 0, time.perf_counter()
    for chunk in certify_many(des, [outs[i].x for i in order], [vals[i] for i in order]):
        share = (time.perf_counter() - t) / len(chunk)  # the chunk's pass, per answer
        for cert in chunk:
            i, t = order[done], time.perf_counter()
            fits[i] = certified(i, cert, t - spent[i] - share - (prep if done == 0 else 0.0))
            done += 1
        del chunk, cert  # its products go (views into them) before the next are formed
        t = time.perf_counter()
    return [f for f in fits if f is not None]


def _next_working_sets(g: torch.Tensor, des: Design, vals: list[float], order: list[int],
                       pos: int) -> list[np.ndarray] | None:
    """The strong rule's first working sets for the next smaller beta of the path after
    ``vals[order[pos]]`` (``g = A^T r`` at its answer); None when no smaller beta is left."""
    beta = vals[order[pos]]
    nxt = next((vals[j] for j in order[pos + 1:] if vals[j] < beta), None)
    return None if nxt is None else _strong_rule(g, des.n, des.d, beta, nxt)


def _strong_rule(g: torch.Tensor, n: int, d: int, beta: float, nxt: float) -> list[np.ndarray]:
    """Per output, the tokens whose correlation ``||A_k^T r||`` (``g = A^T r``, ``(p, c)``)
    is at least ``2 nxt - beta`` (Tibshirani et al. 2012): the next beta's first working set."""
    G = to_numpy(g).reshape(n, d, -1)  # NumPy: torch's per-call cost dominates here
    corr = np.sqrt(np.einsum("kjl,kjl->lk", G, G))  # (c, n)
    return [np.flatnonzero(row >= 2 * nxt - beta) for row in corr]


@dataclass
class ConvexPath:
    """Result of :func:`path`: one certified solution per beta, in the order given.

    Attributes:
        betas: ``(B,)``.
        Z: ``(B, n, d)`` or ``(B, c, n, d)`` (NumPy if X was NumPy, else a tensor).
        primal, dual, gap, rel_gap: ``(B,)`` certified values (``gap = primal - dual``
            with a feasible dual point; ``rel_gap = gap / max(1, |primal|)``).
        active: list of B active sets (as :attr:`ConvexFit.active`).
        certificate: ``(B, n)`` or ``(B, c, n)`` token norms ``||sum_i lam_i x_ik|| <= beta``.
        iterations: ``(B,)``; converged: ``(B,)`` bool.
        seconds: wall time of the whole call.
        fits: the :class:`ConvexFit` of each beta (with its dual point ``lam``).
    """

    betas: np.ndarray
    Z: Array
    primal: np.ndarray
    dual: np.ndarray
    gap: np.ndarray
    rel_gap: np.ndarray
    active: list
    certificate: Array
    iterations: np.ndarray
    converged: np.ndarray
    seconds: float
    solver: str
    fits: list[ConvexFit] = field(repr=False)

    @property
    def n_active(self) -> np.ndarray:
        """``(B,)`` number of active (output, token) rows at each beta."""
        return np.array([f.n_active for f in self.fits])


def path(X: Array, y: Array, betas: Sequence[float] | np.ndarray, *, solver: str = "bcd",
         tol: float = 1e-8, max_iter: int = 50_000,
         device: str | torch.device | None = "cpu", allow_unconverged: bool = False,
         active_tol: float = 1e-6, gram: bool | None = None) -> ConvexPath:
    """Regularization path: solve for every beta from the largest down, warm-started.

    The default solver is BCD (:mod:`attnlab.convex.bcd`) with the Gram matrix formed once
    when N > n d, the previous solution (moved by the path predictor) as warm start and the
    strong rule seeding each working set; each beta still gets gap-safe screening and a
    certified duality gap from an exact pass over the data (with the Gram matrix: one
    batched pass for all betas, after the solves). ``solver="fista"`` runs the reference
    FISTA instead.

    Args:
        X: ``(N, n, d)``; y: ``(N,)`` or ``(N, c)``.
        betas: 1-D sequence of values > 0 (any order; results follow it).
        other arguments: as in :func:`fit`.
    """
    t0 = time.perf_counter()
    check_choice("solver", solver, ("bcd", "fista", "fast", "auto"))
    fits = regularization_path(X, y, betas, solver=solver, tol=tol, max_iter=max_iter,
                               device=device, allow_unconverged=allow_unconverged,
                               active_tol=active_tol, gram=gram)

    def stack(key: str) -> Array:
        vals = [getattr(f, key) for f in fits]
        if isinstance(vals[0], torch.Tensor):
            return torch.stack(vals)
        return np.stack(vals)

    return ConvexPath(
        betas=np.array([f.beta for f in fits]), Z=stack("Z"),
        primal=np.array([f.primal for f in fits]), dual=np.array([f.dual for f in fits]),
        gap=np.array([f.gap for f in fits]), rel_gap=np.array([f.rel_gap for f in fits]),
        active=[f.active for f in fits], certificate=stack("certificate"),
        iterations=np.array([f.iterations for f in fits]),
        converged=np.array([f.converged for f in fits]),
        seconds=time.perf_counter() - t0, solver=fits[0].solver, fits=fits)
