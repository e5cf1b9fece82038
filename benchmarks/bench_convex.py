"""Benchmark: token group lasso, fast solver (restarted FISTA in torch) vs cvxpy + Clarabel.

Run:  .venv/bin/python benchmarks/bench_convex.py [--threads 2] [--big 1000000] [--quick]
      .venv/bin/python benchmarks/bench_convex.py --path --threads 1 [--repeats 7]

Part 1 (N = 2000, n = 16, d = 16): whole-call wall time of ``convex.fit`` with the fast
solver and with cvxpy + Clarabel, residual form (as a user writes it) and Gram form; the
fast solver's objective is compared with Clarabel's (target: within 1e-6 relative, >= 50x
faster than the residual form).  Part 2: time to a 1e-6 relative duality gap as N grows to
10^6 (target: < 30 s on 2 cores), split into data preparation (Gram matrix, O(N (nd)^2))
and iterations (O((nd)^2) each).  ``--path`` (instead of parts 1 and 2): the path target of
issue 20, ``convex.path`` over 100 betas from 1e-3 beta_max to beta_max (geometric), N = 2000,
n = d = 16, certified relative gap 1e-8 at every beta (target: < 0.2 s on one thread at token
correlation 0.9).  Prints markdown tables.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from attnlab import convex


def planted(N: int, n: int, d: int, seed: int, k_active: int = 4,
            rho: float = 0.0) -> tuple[torch.Tensor, ...]:
    """Tokens ~ N(0, I/d) with correlation ``rho`` between the tokens of a sample (a shared
    component; rho > 0 makes the Gram matrix ill-conditioned), y = <X, Z*> + 0.5 noise with
    Z* on k_active tokens."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(N, n, d, generator=g, dtype=torch.float64)
    if rho > 0:
        X = (1 - rho) ** 0.5 * X + rho**0.5 * torch.randn(N, 1, d, generator=g,
                                                           dtype=torch.float64)
    X /= d**0.5
    Z = torch.zeros(n, d, dtype=torch.float64)
    Z[:k_active] = torch.randn(k_active, d, generator=g, dtype=torch.float64)
    y = torch.einsum("ikd,kd->i", X, Z) + 0.5 * torch.randn(N, generator=g, dtype=torch.float64)
    return X, y


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def warm_up() -> None:
    """First cvxpy/Clarabel call in a process pays one-off costs; keep them out of the timing."""
    X, y = planted(50, 4, 2, seed=9)
    convex.fit(X.numpy(), y.numpy(), 1.0, solver="cvxpy")
    convex.fit(X.numpy(), y.numpy(), 1.0, solver="cvxpy", cvx_form="gram")
    convex.fit(X, y, 1.0)


def part1(repeats: int, rho: float) -> None:
    N, n, d = 2000, 16, 16
    X, y = planted(N, n, d, seed=0, rho=rho)
    Xn, yn = X.numpy(), y.numpy()  # what a user hands to cvxpy
    beta = 0.05 * convex.beta_max(X, y)
    t_res, ref = timed(lambda: convex.fit(Xn, yn, beta, solver="cvxpy"), 1)
    t_gram, ref_g = timed(lambda: convex.fit(Xn, yn, beta, solver="cvxpy", cvx_form="gram"),
                          repeats)
    rows = [("cvxpy + Clarabel, residual form", t_res, ref), ("cvxpy + Clarabel, Gram form",
                                                               t_gram, ref_g)]
    for tol in (1e-6, 1e-8, 1e-10):
        t, res = timed(lambda tol=tol: convex.fit(Xn, yn, beta, tol=tol), repeats)
        rows.append((f"fast (FISTA+restart), gap tol {tol:.0e}", t, res))
    print(f"\n### N={N}, n={n}, d={d}, token correlation {rho}, beta = 0.05 beta_max = "
          f"{beta:.3f}, {ref.n_active} active tokens\n")
    print("| solver | seconds (median) | iterations | rel. gap (certified) "
          "| rel. objective diff vs Clarabel residual | speed-up vs residual | vs Gram |")
    print("|---|---|---|---|---|---|---|")
    for name, t, res in rows:
        diff = abs(res.primal - ref.primal) / abs(ref.primal)
        print(f"| {name} | {t:.4f} | {res.iterations} | {res.rel_gap:.1e} | {diff:.1e} "
              f"| {t_res / t:.0f}x | {t_gram / t:.1f}x |")


def part2(big: int, repeats: int) -> None:
    n, d = 16, 16
    sizes = [s for s in (10_000, 100_000, 1_000_000) if s <= big]
    if big not in sizes:
        sizes.append(big)
    print(f"\n### Growth with N (n={n}, d={d}, relative duality gap tol 1e-6)\n")
    print("| N | X size (GB) | total s (median) | prep s (Gram) | iterations | rest s "
          "| rel. gap | active |")
    print("|---|---|---|---|---|---|---|---|")
    for N in sizes:
        X, y = planted(N, n, d, seed=1)
        beta = 0.05 * convex.beta_max(X, y)
        reps = repeats if N <= 100_000 else 1
        t, res = timed(lambda X=X, y=y, beta=beta: convex.fit(X, y, beta, tol=1e-6), reps)
        prep = res.extra["prep_seconds"]  # of the last run, like res.seconds
        print(f"| {N:,} | {X.numel() * 8 / 1e9:.2f} | {t:.2f} | {prep:.2f} | {res.iterations} "
              f"| {res.seconds - prep:.2f} | {res.rel_gap:.1e} | {res.n_active} |")
        del X, y


def path_part(repeats: int) -> None:
    N, n, d, tol = 2000, 16, 16, 1e-8
    print(f"\n### convex.path, 100 betas in [1e-3, 1] beta_max, N={N}, n={n}, d={d}, "
          f"gap {tol:.0e}\n")
    print("| token correlation | seconds (median) | min | max certified rel. gap "
          "| BCD epochs | active tokens (smallest beta) |")
    print("|---|---|---|---|---|---|")
    for rho in (0.9, 0.0):
        X, y = planted(N, n, d, seed=0, rho=rho)
        betas = np.geomspace(1e-3, 1.0, 100) * convex.beta_max(X, y)
        convex.path(X, y, betas, tol=tol)  # warm-up
        times, res = [], None
        for _ in range(repeats):
            t0 = time.perf_counter()
            res = convex.path(X, y, betas, tol=tol)
            times.append(time.perf_counter() - t0)
        print(f"| {rho} | {statistics.median(times):.3f} | {min(times):.3f} "
              f"| {res.rel_gap.max():.1e} | {res.iterations.sum()} | {res.n_active[0]} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--big", type=int, default=1_000_000, help="largest N in part 2")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="part 2 up to N = 100,000 only")
    ap.add_argument("--path", action="store_true", help="only the regularization path target")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float64, CPU")
    if args.path:
        path_part(args.repeats)
        return
    warm_up()
    for rho in (0.0, 0.9):
        part1(args.repeats, rho)
    part2(100_000 if args.quick else args.big, args.repeats)


if __name__ == "__main__":
    main()
