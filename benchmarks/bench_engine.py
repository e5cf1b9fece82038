"""Benchmark of the attention engine (issue 3); prints markdown tables.

    .venv/bin/python benchmarks/bench_engine.py            # ~1 min on 2 cores
    .venv/bin/python benchmarks/bench_engine.py --quick    # fewer repeats
    .venv/bin/python benchmarks/bench_engine.py --threads 2

Default model: N = 16 sequences, n = 4 tokens, D = 64, d = 8, H = 2, float64, W_Q trained
by full-batch GD on teacher targets. Times are the *minimum* over repeats (robust on a
shared machine); every ratio is measured side by side in this one run.
"""

from __future__ import annotations

import argparse
import importlib
import math
import platform
import time

import torch

import attnlab as al

trainer = importlib.import_module("attnlab.train")  # the module (attnlab.train is the function)

N, n, D, d, H = 16, 4, 64, 8, 2


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def setup(M: int, kernel: str):
    X = al.random_tokens(N, n, D, seed=0)
    scales = [0.5 + m / max(M - 1, 1) for m in range(M)]  # a sweep of init scales
    p = al.init_params(M=M, H=H, D=D, d=d, init_scale=scales, value_scale=2.0, seed=0)
    y, _ = al.teacher_targets(X, p, delta=1.0, kernel=kernel, seed=1)
    return X, y, p


def run(p, X, y, kernel, steps, backend=None, **kw):
    trainer._BACKEND = backend
    try:
        return al.train(p, X, y, kernel=kernel, lr=0.5, steps=steps,
                        log_every=kw.pop("log_every", steps), **kw)
    finally:
        trainer._BACKEND = None


def per_step(p, X, y, kernel, steps, repeats, backend=None, **kw) -> float:
    """Best wall time per step of ``train`` over ``repeats`` runs."""
    return best_of(lambda: run(p, X, y, kernel, steps, backend, **kw), repeats) / steps


def sequential_per_step(p, X, y, kernel, steps, repeats) -> float:
    """Best wall time per step of the M models of ``p`` trained one after another."""
    singles = [p.select(m) for m in range(p.M)]

    def sequential():
        for m in range(p.M):
            run(singles[m], X, y[m], kernel, steps)

    return best_of(sequential, repeats) / steps


def single_model(kernels, steps, repeats):
    rows = []
    for kernel in kernels:
        X, y, p = setup(1, kernel)
        rows.append((kernel, per_step(p, X, y, kernel, steps, repeats),
                     per_step(p, X, y, kernel, steps, repeats, log_every=1),
                     per_step(p, X, y, kernel, steps, repeats, "autograd")))
    print("\n### One default model (W_Q trained)\n")
    print("| kernel | steps/s | us/step | us/step, log_every=1 | us/step, autograd backend "
          "| closed form vs autograd |")
    print("|---|---|---|---|---|---|")
    for kernel, t, tl, ta in rows:
        print(f"| {kernel} | {1 / t:,.0f} | {t * 1e6:.0f} | {tl * 1e6:.0f} | {ta * 1e6:.0f} "
              f"| {ta / t:.1f}x |")
    return {k: t for k, t, _, _ in rows}


def batched_vs_sequential(kernels, M, steps, repeats, threads):
    print(f"\n### M = {M} models: one batched run vs {M} runs one after another\n")
    print("| kernel | torch threads | batched ms/step | sequential ms/step (all M) "
          "| speed-up | per model-step, batched |")
    print("|---|---|---|---|---|---|")
    out = {}
    for kernel in kernels:
        X, y, p = setup(M, kernel)
        t_seq = sequential_per_step(p, X, y, kernel, steps, max(1, repeats // 3))
        for th in sorted({1, threads}):
            torch.set_num_threads(th)
            old = trainer._SMALL_WORK
            trainer._SMALL_WORK = 0 if th > 1 else old  # let the batched run use th threads
            try:
                t_b = per_step(p, X, y, kernel, steps, repeats)
            finally:
                trainer._SMALL_WORK = old
                torch.set_num_threads(1)
            out[(kernel, th)] = (t_b, t_seq)
            print(f"| {kernel} | {th} | {t_b * 1e3:.3f} | {t_seq * 1e3:.2f} "
                  f"| **{t_seq / t_b:.1f}x** | {t_b / M * 1e6:.1f} us |")
    return out


def bare_matmuls(M: int, repeats: int) -> float:
    """Per-step time of the bare matrix products of one W_Q step (standard formulation):
    Q = X W_Q, Q K^T, S u, A K, X^T G, with preallocated outputs and nothing else."""
    dt = torch.float64
    X2 = torch.randn(N * n, D, dtype=dt)
    Wc = torch.randn(D, M * H * d, dtype=dt)
    Qo = torch.empty(N * n, M * H * d, dtype=dt)
    B = M * H * N
    Qs, Ks = torch.randn(B, n, d, dtype=dt), torch.randn(B, n, d, dtype=dt)
    S, u = torch.rand(B, n, n, dtype=dt), torch.randn(B, n, 1, dtype=dt)
    Lo, Zo, Go = (torch.empty(B, n, n, dtype=dt), torch.empty(B, n, 1, dtype=dt),
                  torch.empty(B, n, d, dtype=dt))
    G2 = torch.randn(N * n, M * H * d, dtype=dt)
    gW = torch.empty(D, M * H * d, dtype=dt)
    Kt = Ks.transpose(1, 2)
    Xt = X2.t()

    def step():
        torch.mm(X2, Wc, out=Qo)
        torch.bmm(Qs, Kt, out=Lo)
        torch.bmm(S, u, out=Zo)
        torch.bmm(S, Ks, out=Go)
        torch.mm(Xt, G2, out=gW)

    reps = 50
    return best_of(lambda: [step() for _ in range(reps)], repeats) / reps


def flops_per_step(M: int) -> float:
    proj = 2 * N * n * D * M * H * d
    small = 3 * 2 * M * H * N * n * n * d
    return 2 * proj + small


def peak_gflops(repeats: int) -> float:
    a = torch.randn(1024, 1024, dtype=torch.float64)
    t = best_of(lambda: a @ a, repeats)
    return 2 * 1024**3 / t / 1e9


def token_gram_gemm(M: int, repeats: int) -> float:
    """Per-step time of the one GEMM a token-space GD step cannot avoid:
    ``P -= (X X^T) G`` with ``G (N n, d H M)``."""
    dt = torch.float64
    gram = torch.randn(N * n, N * n, dtype=dt)
    G, P = torch.randn(N * n, d * H * M, dtype=dt), torch.randn(N * n, d * H * M, dtype=dt)
    reps = 50
    return best_of(lambda: [P.addmm_(gram, G, alpha=-1) for _ in range(reps)], repeats) / reps


def ceiling(t_single, batched, repeats):
    peak = peak_gflops(repeats)
    print(f"\n### Versus the practical ceiling (float64 GEMM peak here: {peak:.0f} GFLOP/s, "
          "1 thread)\n")
    print("| case | trainer us/step | bare matmuls, standard formulation, us "
          "| arithmetic at peak, us | token-Gram GEMM alone, us | trainer / that GEMM |")
    print("|---|---|---|---|---|---|")
    for M, t in ((1, t_single), (64, batched)):
        bare = bare_matmuls(M, repeats)
        arith = flops_per_step(M) / (peak * 1e9)
        gemm = token_gram_gemm(M, repeats)
        print(f"| softmax, M = {M} | {t * 1e6:.0f} | {bare * 1e6:.0f} | {arith * 1e6:.1f} "
              f"| {gemm * 1e6:.0f} | {t / gemm:.1f}x |")


def widget_scenarios(repeats):
    print("\n### Widget scenarios (1 thread)\n")
    print("| scenario | seconds |")
    print("|---|---|")
    X, y, p = setup(1, "gaussian")
    t = best_of(lambda: al.train(p, X, y, kernel="gaussian", lr=0.5, steps=500, log_every=10,
                                 track_entropy=True, on_step=lambda s, h: None), repeats)
    print(f"| 500 steps, default model, log_every=10, entropy, on_step | {t:.3f} |")
    t = best_of(lambda: al.train(p, X, y, kernel="gaussian", lr=0.5, steps=500, log_every=50,
                                 track_sigma_min=True), repeats)
    print(f"| 500 steps, default model, sigma_min every 50 steps | {t:.3f} |")
    scales = [s for s in torch.logspace(-1, 1, 8).tolist() for _ in range(8)]
    lrs = [lr for _ in range(8) for lr in torch.logspace(-2, 1, 8).tolist()]
    Xp = al.random_tokens(N, n, D, seed=0)
    pp = al.init_params(M=64, H=H, D=D, d=d, init_scale=scales, value_scale=2.0, seed=0)
    yp, _ = al.teacher_targets(Xp, pp, delta=1.0, kernel="gaussian", seed=1)
    t = best_of(lambda: al.train(pp, Xp, yp, kernel="gaussian", lr=lrs, steps=500,
                                 log_every=50), max(1, repeats // 2))
    print(f"| 8 x 8 phase diagram (init scale x lr), 64 models x 500 steps, batched | {t:.3f} |")
    t = best_of(lambda: al.train(pp, Xp, yp, kernel=["softmax", "gaussian"] * 32, lr=lrs,
                                 steps=500, log_every=50), 1)
    print(f"| same, mixed kernels (softmax and gaussian, 32 each) | {t:.3f} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    repeats = 3 if args.quick else 7
    steps = 100 if args.quick else 200
    torch.set_num_threads(1)
    print(f"## Engine benchmark (torch {torch.__version__}, {platform.processor() or 'cpu'}, "
          f"{torch.get_num_threads()} thread unless stated; min over {repeats} repeats)")
    t1 = single_model(al.KERNELS, steps, repeats)
    bs = batched_vs_sequential(al.KERNELS, 64, steps, repeats, args.threads)
    ceiling(t1["softmax"], bs[("softmax", 1)][0], repeats)
    widget_scenarios(repeats)


if __name__ == "__main__":
    main()
