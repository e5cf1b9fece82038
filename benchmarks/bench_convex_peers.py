"""Benchmark: token group lasso solvers side by side, time to a certified relative gap.

Run (one thread; the peers are the optional ``bench`` extra: celer, adelie, skglm)::

    python benchmarks/bench_convex_peers.py [--quick] [--gaps 1e-6 1e-8] [--big] [--Ns 1000 2000]

Solvers: attnlab FISTA (``solver="fista"``), attnlab BCD (``solver="bcd"``), celer
``GroupLasso``, adelie ``grpnet`` (per-group penalty ones, one lambda), skglm ``GroupLasso``,
cvxpy + Clarabel in the Gram form (``convex.fit(..., solver="cvxpy", cvx_form="gram")``).

Every peer's answer is certified the same way, by attnlab: its Z gets the dual point
``s r`` (the residual rescaled to feasibility) and the relative gap
``(P - D) / max(1, P)``.  A peer's own tolerance is not the same quantity, so each peer runs
with tol = target, target/10, ... (up to 5 tries) and its time is that of the first run
whose *certified* gap meets the target ("fail" if none does).  The peers minimize
``1/(2N) ||y - A w||^2 + alpha sum_g ||w_g||``, so ``alpha = beta / N``.

Prints one markdown table per target gap: seconds per solver (whole call, including any
Gram matrix or preparation, best of ``--repeats``) and the ratio of attnlab BCD to the best
peer (celer, adelie, skglm).
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = "1"
# adelie's import sets OMP_PROC_BIND=TRUE, and the OpenMP runtime then pins this whole
# process to one core: every solver (attnlab's too) would share that core with whatever
# else runs there (measured: a 2.5 ms fit took 7 ms in median beside one busy process, with
# half its wall time descheduled). The cores are given back after the peers are loaded.
_CPUS = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None

import argparse  # noqa: E402
import multiprocessing as mp  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import bench_convex  # noqa: E402  (this folder: the script's own directory is on sys.path)
import numpy as np  # noqa: E402
import torch  # noqa: E402

from attnlab import convex  # noqa: E402

torch.set_num_threads(1)


def planted(N: int, n: int, d: int, seed: int, rho: float) -> tuple[np.ndarray, np.ndarray]:
    """``bench_convex.planted`` (Z* on 4 tokens, token correlation rho) as NumPy arrays."""
    X, y = bench_convex.planted(N, n, d, seed, rho=rho)
    return X.numpy(), y.numpy()


def certified_gap(A: np.ndarray, y: np.ndarray, w: np.ndarray, beta: float, d: int) -> float:
    """Relative duality gap of ``w (p,)`` with the dual point ``s r`` (attnlab's rule)."""
    r = y - A @ w
    g = A.T @ r
    gmax = np.linalg.norm(g.reshape(-1, d), axis=1).max()
    rr, xg = r @ r, w @ g
    s = min(1.0 + xg / rr if rr > 0 else np.inf, beta / gmax if gmax > 0 else np.inf)
    s = max(s, 0.0) if np.isfinite(s) else 0.0
    zn = np.linalg.norm(w.reshape(-1, d), axis=1).sum()
    primal = 0.5 * rr + beta * zn
    gap = 0.5 * (1 - s) ** 2 * rr + beta * zn - s * xg
    return gap / max(1.0, primal)


def run_attnlab(solver: str):
    def f(X, y, A, beta, tol):
        res = convex.fit(X, y, beta, solver=solver, tol=tol, max_iter=200_000)
        return np.asarray(res.Z).reshape(-1)
    return f


def run_celer(X, y, A, beta, tol):
    from celer import GroupLasso

    m = GroupLasso(groups=X.shape[2], alpha=beta / len(y), tol=tol, fit_intercept=False,
                   max_iter=1000, max_epochs=1_000_000)
    m.fit(A, y)
    return m.coef_


def run_skglm(X, y, A, beta, tol):
    from skglm import GroupLasso

    m = GroupLasso(groups=X.shape[2], alpha=beta / len(y), tol=tol, fit_intercept=False,
                   max_iter=1000, max_epochs=1_000_000)
    m.fit(A, y)
    return m.coef_


def run_adelie(X, y, A, beta, tol):
    import adelie as ad

    N, n, d = X.shape
    st = ad.grpnet(np.asfortranarray(A), ad.glm.gaussian(y), groups=np.arange(0, n * d, d),
                   penalty=np.ones(n), lmda_path=np.array([beta / N]), intercept=False,
                   tol=tol, newton_tol=min(1e-12, tol * 1e-2), n_threads=1,
                   progress_bar=False)
    return np.asarray(st.betas[-1].todense()).reshape(-1)


def run_cvxpy(X, y, A, beta, tol):
    res = convex.fit(X, y, beta, solver="cvxpy", cvx_form="gram", tol=tol)
    return np.asarray(res.Z).reshape(-1)


SOLVERS = {"attnlab FISTA": run_attnlab("fista"), "attnlab BCD": run_attnlab("bcd"),
           "celer": run_celer, "adelie": run_adelie, "skglm": run_skglm,
           "cvxpy+Clarabel (Gram)": run_cvxpy}
PEERS = ("celer", "adelie", "skglm")


def _timed(fn, X, y, A, beta, tol):
    """``(seconds, w)`` of one call; ``(None, "error: ...")`` if it raises."""
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w = fn(X, y, A, beta, tol)
    except Exception as e:  # a failure is a result
        return None, f"error: {type(e).__name__}"
    return time.perf_counter() - t0, w


def _timed_limited(fn, X, y, A, beta, tol, limit):
    """:func:`_timed` in a forked child (the data is shared, not copied), killed after
    ``limit`` seconds: ``(None, "limit")``.  A C extension cannot be interrupted in-process."""
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)

    def child():
        send.send(_timed(fn, X, y, A, beta, tol))

    proc = ctx.Process(target=child)
    proc.start()
    send.close()
    out = recv.recv() if recv.poll(limit) else (None, "limit")
    proc.kill()
    proc.join()
    return out


def time_to_gap(fn, X, y, A, beta, target, d, repeats, own_tol: bool, limit=None):
    """Seconds of the first tolerance whose certified gap meets ``target`` (best of repeats).

    ``limit``: seconds for all the calls together; a call still running when they are spent
    is killed and ends the tries (a tighter tolerance would take longer still), giving
    ``(None, ("limit", s))``: the solver needs more than ``s`` seconds, the killed call's."""
    tols = [target] if own_tol else [target * 10.0**-k for k in range(5)]
    left, last = limit, 0.0
    for tol in tols:
        best, gap = np.inf, np.inf
        for _ in range(repeats):
            if left is None:
                t, w = _timed(fn, X, y, A, beta, tol)
            else:
                if left <= 0:  # spent: the next call would take at least the last one's time
                    return None, ("limit", last)
                t0 = time.perf_counter()
                t, w = _timed_limited(fn, X, y, A, beta, tol, left)
                if isinstance(w, str) and w == "limit":
                    return None, ("limit", max(left, last))
                left -= time.perf_counter() - t0
                last = t or 0.0
            if t is None:
                return None, w
            best = min(best, t)
            gap = certified_gap(A, y, w, beta, d)
        if gap <= target:
            return best, gap
    return None, gap


def _ratio(times: dict, lower: dict) -> str:
    """BCD's time over the best peer's; "< x" where a peer that hit the limit could be the
    best (its time is only bounded below)."""
    bcd = times.get("attnlab BCD")
    peer = {p: times[p] for p in PEERS if times.get(p) is not None}
    bound = {p: lower[p] for p in PEERS if p in lower}
    if bcd is None or not peer and not bound:
        return "-"
    best = min([*peer.values(), *bound.values()])
    exact = peer and min(peer.values()) <= min(bound.values(), default=np.inf)
    return f"{bcd / best:.2f}" if exact else f"< {bcd / best:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="N in {1000, 2000}, n = d in {16, 32}")
    ap.add_argument("--sizes", type=int, nargs="+", default=None,
                    help="n = d values (overrides --quick)")
    ap.add_argument("--big", action="store_true", help="add N = 10^5, n = d = 16")
    ap.add_argument("--Ns", type=int, nargs="+", default=[1000, 2000],
                    help="N values for every size (e.g. --Ns 100000 --sizes 32)")
    ap.add_argument("--gaps", type=float, nargs="+", default=[1e-6, 1e-8])
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.5, 0.1, 0.01])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--rhos", type=float, nargs="+", default=[0.0, 0.9],
                    help="token correlations")
    ap.add_argument("--limit", type=float, default=None,
                    help="seconds per solver and row, all its tries together (each call "
                         "in a forked child); a call killed at the limit is reported as "
                         "'> s', s its own seconds: a lower bound")
    ap.add_argument("--cvxpy-max-p", type=int, default=256,
                    help="skip cvxpy above this many features (n d)")
    ap.add_argument("--skip", nargs="+", default=[], choices=list(SOLVERS),
                    help="solvers not to run (e.g. 'attnlab FISTA' at n = d = 64, where it "
                         "takes minutes per cell)")
    args = ap.parse_args()
    side = args.sizes or ((16, 32) if args.quick else (16, 32, 64))
    sizes = [(N, s, s) for N in args.Ns for s in side]
    if args.big:
        sizes.append((100_000, 16, 16))
    Xw, yw = planted(60, 4, 3, 0, 0.0)  # warm-up: imports, numba/JIT compilation (skglm)
    for name, fn in SOLVERS.items():
        if name not in args.skip:  # a skipped peer need not be installed
            fn(Xw, yw, Xw.reshape(60, 12), 0.1, 1e-6)
    if _CPUS is not None:
        os.sched_setaffinity(0, _CPUS)  # see _CPUS: undo the peers' pinning
    print(f"torch {torch.__version__}, 1 thread, float64; time to a certified relative gap "
          f"(whole call, best of {args.repeats})")
    for target in args.gaps:
        print(f"\n### certified relative gap <= {target:.0e}\n")
        print("| N, n, d, corr, beta/beta_max | " + " | ".join(SOLVERS) +
              " | BCD / best peer |")
        print("|---" * (len(SOLVERS) + 2) + "|")
        for N, n, d in sizes:
            for rho in args.rhos:
                X, y = planted(N, n, d, 0, rho)
                A = X.reshape(N, n * d)
                bm = convex.beta_max(X, y)
                for frac in args.fractions:
                    beta = frac * bm
                    cells, times, lower = [], {}, {}
                    for name, fn in SOLVERS.items():
                        if (name.startswith("cvxpy") and n * d > args.cvxpy_max_p
                                or name in args.skip):
                            cells.append("skipped")
                            continue
                        t, gap = time_to_gap(fn, X, y, A, beta, target, d, args.repeats,
                                             own_tol=name.startswith("attnlab"),
                                             limit=args.limit)
                        times[name] = t
                        limited = isinstance(gap, tuple)
                        if limited:  # a lower bound on the solver's time
                            lower[name] = gap[1]
                        cells.append(f"{t:.4f}" if t is not None else
                                     f"> {gap[1]:.3g}" if limited else
                                     f"fail ({gap:.1e})" if isinstance(gap, float) else
                                     f"fail ({gap})")
                    ratio = _ratio(times, lower)
                    print(f"| {N}, {n}, {d}, {rho}, {frac} | " + " | ".join(cells) +
                          f" | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
