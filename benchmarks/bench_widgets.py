"""Benchmark of the live training widgets (issue 6); prints markdown tables.

    .venv/bin/python benchmarks/bench_widgets.py [--threads 2] [--repeats 5] [--quick]

1. Default dashboard run (N=16, n=4, D=64, d=8, H=2, 500 steps, W_Q trained, float64,
   Softmax and Gaussian side by side, sigma_min(C) tracked every 2 steps): the bare
   ``run_config`` versus ``Dashboard.run()`` (live SVG redraws + tqdm bar), interleaved;
   time to the first plot update, also for a background (threaded) Train click.
   Targets: run < 2 s, first update < 0.5 s, widget overhead < 25 %.
2. 8 x 8 phase diagram at the default size (W_V-only, 1000 steps): each batching strategy
   (``"kernel"`` is the default) versus one engine call per cell.
   Target: < 15 s on CPU (< 2 s on a GPU).

Medians over ``--repeats``; run on a quiet machine for the numbers that go in the book.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.pop("ATTNLAB_FAST", None)  # benchmark the full-mode defaults

import torch  # noqa: E402
import tqdm.auto  # noqa: E402
import tqdm.notebook  # noqa: E402

from attnlab import available_devices  # noqa: E402
from attnlab.dynamics import (  # noqa: E402
    RunConfig,
    default_dashboard_config,
    phase_diagram,
    run_config,
)
from attnlab.widgets import Dashboard  # noqa: E402

# The dashboard's defaults (W_Q trained, both kernels side by side, teacher targets), with the
# full-mode 500 steps, on the CPU.
DEFAULT = default_dashboard_config(steps=500, device="cpu")


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_dashboard(repeats: int) -> list[tuple[str, str, str]]:
    dash = Dashboard(DEFAULT, background=False)
    assert dash.config() == DEFAULT, "benchmark config drifted from the dashboard defaults"
    run_config(DEFAULT)  # warm up torch / matplotlib-free paths
    dash.run()
    bare, noop, ui, ui_nb, first, draws = [], [], [], [], [], []
    notebook_bar = tqdm.notebook.tqdm
    console_bar = tqdm.auto.tqdm
    for _ in range(repeats):  # interleaved, so drift hits all variants alike
        bare.append(median_time(lambda: run_config(DEFAULT), 1))
        noop.append(median_time(lambda: run_config(DEFAULT, on_step=lambda s, h: None), 1))
        ui.append(median_time(dash.run, 1))
        first.append(dash.timings["first_draw"])
        draws.append(dash.timings["draws"])
        tqdm.auto.tqdm = notebook_bar  # the widget bar a Jupyter kernel would get
        try:
            ui_nb.append(median_time(dash.run, 1))
        finally:
            tqdm.auto.tqdm = console_bar
    b, u, un = statistics.median(bare), statistics.median(ui), statistics.median(ui_nb)
    # overhead from paired runs (each UI run against the bare run just before it): robust
    # to the slow drift of a shared machine
    over = statistics.median(x / y - 1 for x, y in zip(ui, bare, strict=True))
    over_nb = statistics.median(x / y - 1 for x, y in zip(ui_nb, bare, strict=True))
    cb = statistics.median(x / y - 1 for x, y in zip(noop, bare, strict=True))
    bg = Dashboard(DEFAULT, background=True)
    t0 = time.perf_counter()
    bg.train_button.click()
    while bg.timings.get("first_draw") is None and bg.running:
        time.sleep(0.001)
    bg.wait()
    first_bg = bg.timings["first_draw"]
    total_bg = time.perf_counter() - t0
    return [
        ("bare `run_config` (engine only)", f"{b:.3f} s", "< 2 s"),
        ("`run_config` + no-op `on_step` (engine snapshots)", f"{statistics.median(noop):.3f} s",
         f"engine callback cost {100 * cb:+.0f} % (paired median)"),
        ("`Dashboard.run()`, console bar", f"{u:.3f} s",
         f"overhead {100 * over:+.0f} % (paired median; < 25 %)"),
        ("`Dashboard.run()`, notebook bar", f"{un:.3f} s",
         f"overhead {100 * over_nb:+.0f} % (paired median; < 25 %)"),
        ("first plot update (sync run)", f"{statistics.median(first):.3f} s", "< 0.5 s"),
        ("first plot update (Train click, thread)", f"{first_bg:.3f} s",
         f"< 0.5 s; whole run {total_bg:.3f} s"),
        ("redraws per run", f"{statistics.median(draws):.0f}", "<= 4 per s + final"),
        ("steps/s in the dashboard", f"{DEFAULT.steps / u:,.0f}", ""),
    ]


def bench_phase(device: str, repeats: int, quick: bool) -> list[tuple[str, str, str]]:
    base = RunConfig(train=("W_V",), lr=None, steps=1000, device=device,
                     track_sigma_min=False)
    rows = []
    grid = {"init_scales": None, "dims": None}  # the defaults: 8 x 8 in full mode
    phase_diagram(**grid, config=base.replace(steps=5))  # warm up
    for kernels in (("softmax",), ("softmax", "gaussian")):
        variants = ("kernel", "dim", "all") + (() if quick else ("none",))
        times: dict[str, list[float]] = {b: [] for b in variants}
        for r in range(repeats):  # interleaved, so load drift hits every variant alike
            for batching in variants:
                if batching == "none" and r > 0:
                    continue  # the per-cell loop is slow: timed once
                times[batching].append(median_time(lambda b=batching, k=kernels: phase_diagram(
                    **grid, kernels=k, config=base, batching=b), 1))
        med = {b: statistics.median(t) for b, t in times.items()}
        loop = med.get("none")
        label = "+".join(kernels)
        for batching, t in med.items():
            ratio = "" if loop is None else f"{loop / t:.1f}x vs loop"
            target = "< 15 s CPU, < 2 s GPU" if batching == "kernel" and len(kernels) == 1 \
                else ""
            rows.append((f"8 x 8 phase, {label}, batching={batching!r} ({device})",
                         f"{t:.2f} s", " ".join(x for x in (ratio, target) if x)))
    return rows


def table(rows: list[tuple[str, str, str]]) -> str:
    out = ["| measurement | time | target / ratio |", "|---|---|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch threads (2 = the target)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="skip the slow per-cell loop")
    ap.add_argument("--only", choices=("dashboard", "phase"), help="run one part only")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), devices {available_devices()}, "
          f"cpu count {os.cpu_count()}, load avg {os.getloadavg()[0]:.2f}\n")
    if args.only != "phase":
        print("## Dashboard (default run)\n")
        print(table(bench_dashboard(max(args.repeats, 15))))  # 0.2 s runs: repeat more
    if args.only != "dashboard":
        print("\n## Phase diagram (8 x 8, W_V-only, 1000 steps)\n")
        rows = bench_phase("cpu", args.repeats, args.quick)
        if torch.cuda.is_available():
            rows += bench_phase("cuda", args.repeats, quick=True)
        print(table(rows))


if __name__ == "__main__":
    main()
