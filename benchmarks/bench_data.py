"""Data pipeline speed.

1. Pathfinder generation: batched NumPy generator vs one image per call. Target (issue 7):
   <= 10 ms per image at difficulty 14 on a 2-core CPU, batched.
2. ``--pipeline``: the Part III training data path of the stored CPU runs (issue 15):
   tokenizing IMDB (words, bytes), building patch tokens, and, per training step, the time
   to draw a minibatch (indexing the compact token array) against the model's forward +
   backward + update, with tokens per second and the epoch time they imply.

Run: ``.venv/bin/python benchmarks/bench_data.py [--n 2000] [--single 40] [--repeat 3]``
and ``.venv/bin/python benchmarks/bench_data.py --pipeline [--steps 20]``.
Prints Markdown tables (medians over repeats).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # NumPy work here is single-threaded anyway

import numpy as np  # noqa: E402

from attnlab.data import generate_pathfinder  # noqa: E402

TARGET_MS = 10.0


def _time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=2000, help="batch size of the batched run")
    ap.add_argument("--single", type=int, default=40, help="images generated one per call")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    generate_pathfinder(4, difficulty=14, seed=0)  # build the lookup tables once
    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, NumPy {np.__version__}, "
          f"Python {platform.python_version()}; medians of {args.repeat} runs.\n")
    print(f"| difficulty | batched: images/s (B={args.n}) | ms/image | target-pair attempts "
          f"per image | one per call: ms/image | batched speed-up | vs {TARGET_MS:g} ms target |")
    print("|---|---|---|---|---|---|---|")
    for N in (6, 9, 14):
        info = {}

        def batched(N=N, info=info):
            info["i"] = generate_pathfinder(args.n, difficulty=N, seed=1, return_info=True)[2]

        def single(N=N):
            for s in range(args.single):
                generate_pathfinder(1, difficulty=N, seed=s)

        tb = _time(batched, args.repeat) / args.n
        ts = _time(single, args.repeat) / args.single
        attempts = info["i"].attempts / args.n
        print(f"| {N} | {1 / tb:,.0f} | {tb * 1e3:.2f} | {attempts:.1f} | {ts * 1e3:.1f} | "
              f"{ts / tb:.0f}x | {TARGET_MS / (tb * 1e3):.0f}x faster |")


def pipeline(steps: int) -> None:
    """Tokenization and one training step's data vs model time, as in the "cpu" presets."""
    import torch

    from attnlab.experiments import get_config
    from attnlab.experiments.real_tasks import _model_for, _patches, imdb_data
    from attnlab.experiments.training import train_classifier

    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread; totals over {steps} training steps.\n")
    print("| task (cpu preset) | data preparation | token dtype | tokens/example | "
          "train tokens/s | batch share of a step | epoch (training steps only) |")
    print("|---|---|---|---|---|---|---|")
    for task in ("imdb", "pathfinder"):
        cfg = get_config(task, "cpu")
        t0 = time.perf_counter()
        if task == "imdb":
            data, _ = imdb_data(cfg)
            n_ex = len(data[0]) + len(data[2])
        else:
            images, labels = generate_pathfinder(cfg.n_train + cfg.n_test, difficulty=6,
                                                 seed=0)
            X = torch.as_tensor(_patches(images, cfg.model.patch))
            y = torch.as_tensor(labels)
            data = (X[:cfg.n_train], y[:cfg.n_train], X[cfg.n_train:], y[cfg.n_train:])
            n_ex = len(images)
        prep = time.perf_counter() - t0
        model = _model_for(cfg, "softmax", 0, data[0])
        c = train_classifier(model, (data[0], data[1], data[2][:64], data[3][:64]),
                             optimizer=cfg.optimizer, lr=cfg.lr, steps=steps,
                             log_every=steps, batch_size=cfg.batch_size, seed=0,
                             momentum=cfg.momentum, eval_train=64)
        n_tok = data[0].shape[1]
        tps = c.examples * n_tok / c.train_seconds
        epoch = len(data[0]) * n_tok / tps
        print(f"| {task} | {prep:.1f} s for {n_ex:,} examples | {data[0].dtype} | {n_tok} | "
              f"{tps:,.0f} | {c.data_seconds / c.train_seconds:.2%} | {epoch:.0f} s |")


if __name__ == "__main__":
    import sys

    if "--pipeline" in sys.argv:
        ap = argparse.ArgumentParser()
        ap.add_argument("--pipeline", action="store_true")
        ap.add_argument("--steps", type=int, default=20)
        pipeline(ap.parse_args().steps)
    else:
        main()
