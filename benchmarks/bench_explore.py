"""Benchmark of the precomputed explorables (issue 18); prints markdown tables.

    .venv/bin/python benchmarks/bench_explore.py [--repeats 3] [--threads 2]

For each of the five explorables at its full-mode defaults: the build time it adds to its
page (training + chart, the Altair import counted once per page, separately) and the bytes
it adds to the page (the HTML fragment: spec + data, raw and gzip -9). Then the JavaScript
each page needs once (cached across pages): vega + vega-lite + vega-embed from _extra/vega,
and plotly.min.js for comparison when the plotly package is installed.
Targets: <= 10 s per explorable, <= 1 MB per page or <= 300 KB compressed.
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.pop("ATTNLAB_FAST", None)  # benchmark the full-mode defaults

import numpy as np  # noqa: E402
import torch  # noqa: E402


def sparsity_data() -> tuple[np.ndarray, np.ndarray]:
    """The data of the chapter "Sparsity across tokens" (seed 0, tokens 2 and 5 planted)."""
    from attnlab.convex import predict

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 8, 5))
    Z = np.zeros((8, 5))
    Z[[2, 5]] = rng.normal(size=(2, 5))
    return X, predict(Z, X) + 0.1 * rng.normal(size=40)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    imp = subprocess.run([sys.executable, "-c", "import time; t = time.perf_counter(); "
                          "import altair; print(time.perf_counter() - t)"],
                         capture_output=True, text=True, env={**os.environ}).stdout.strip()
    from attnlab import explore

    X, y = sparsity_data()
    builders = {
        "training_wv": explore.training_wv, "init_scale": explore.init_scale,
        "training_wq": explore.training_wq,
        "sparsity": lambda: explore.sparsity(X, y, planted=(2, 5)),
        "playground": explore.playground,
    }
    print(f"load average before: {os.getloadavg()[0]:.2f}; torch threads {args.threads}; "
          f"Altair import (once per page, fresh process): {float(imp):.2f} s\n")
    print("| explorable | grid | build s (median) | page raw KB | page gzip KB |")
    print("|---|---|---|---|---|")
    for name, build in builders.items():
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            ex = build()
            ex.html(local=None)
            times.append(time.perf_counter() - t0)
        raw, gz = ex.page_bytes()
        grid = " x ".join(f"{len(v)} {k}" for k, v in ex.axes.items()
                          if k not in ("x", "u", "v", "w"))
        print(f"| {name} | {grid} | {statistics.median(times):.2f} | {raw / 1e3:.1f} | "
              f"{gz / 1e3:.1f} |")
    print("\n| JavaScript (once per site, cached) | raw KB | gzip KB |")
    print("|---|---|---|")
    tot = [0, 0]
    for lib in explore.VEGA_VERSIONS:
        b = (ROOT / "_extra" / "vega" / f"{lib}.min.js").read_bytes()
        n, g = len(b), len(gzip.compress(b, 9))
        tot = [tot[0] + n, tot[1] + g]
        print(f"| {lib} {explore.VEGA_VERSIONS[lib]} | {n / 1e3:.0f} | {g / 1e3:.0f} |")
    print(f"| vega stack, total | {tot[0] / 1e3:.0f} | {tot[1] / 1e3:.0f} |")
    try:
        import plotly

        b = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_bytes()
        print(f"| plotly.min.js {plotly.__version__} (comparison) | {len(b) / 1e3:.0f} | "
              f"{len(gzip.compress(b, 9)) / 1e3:.0f} |")
    except ImportError:
        print("| plotly.min.js (plotly not installed) | - | - |")


if __name__ == "__main__":
    main()
