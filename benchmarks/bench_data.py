"""Pathfinder generation speed: batched NumPy generator vs one image per call.

Run: ``.venv/bin/python benchmarks/bench_data.py [--n 2000] [--single 40] [--repeat 3]``.
Target (issue 7): <= 10 ms per image at difficulty 14 on a 2-core CPU, batched.
Prints a Markdown table (medians over repeats).
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


if __name__ == "__main__":
    main()
