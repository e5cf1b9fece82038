"""Side-by-side timings of two commits of attnlab, interleaved in one run.

    .venv/bin/python benchmarks/bench_versions.py BASE_REF [NEW_REF] [--rounds 5]

Checks that a refactoring did not slow the engine or the widgets down: each round runs the
same workloads once with each commit (a fresh Python process each, one torch thread,
``PYTHONPATH`` pointing at that commit's ``src``), alternating, so both see the same machine
load. Reports the minimum over rounds and the ratio new / base. NEW_REF defaults to the
working tree. Workloads use only APIs that both sides have (old layouts are looked up too).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKER = r'''
import importlib, json, os, sys, time
import torch
torch.set_num_threads(1)
import attnlab as al

def find(name):
    for mod in ("attnlab.dynamics", "attnlab.phase"):
        try:
            m = importlib.import_module(mod)
        except ImportError:
            continue
        if hasattr(m, name):
            return getattr(m, name)
    raise ImportError(name)

def best(fn, k=3):
    fn()
    out = float("inf")
    for _ in range(k):
        t = time.perf_counter(); fn(); out = min(out, time.perf_counter() - t)
    return out

res = {}
X = al.random_tokens(16, 4, 64, seed=0)
for M in (1, 64):
    p = al.init_params(M=M, H=2, D=64, d=8, init_scale=[0.5 + m / 64 for m in range(M)],
                       value_scale=2.0, seed=0)
    y, _ = al.teacher_targets(X, p, delta=1.0, kernel="softmax", seed=1)
    res[f"engine: train, M = {M}, 300 GD steps"] = best(
        lambda: al.train(p, X, y, kernel="softmax", lr=0.5, steps=300, log_every=300))
cfg = find("default_dashboard_config")(steps=500, device="cpu")
res["run_config: dashboard default (500 steps, both kernels)"] = best(
    lambda: find("run_config")(cfg))
phase = find("phase_diagram")
base = find("default_phase_config")().replace(steps=1000, device="cpu")
res["phase_diagram: 8 x 8, W_V only, 1000 steps"] = best(
    lambda: phase(list(__import__("numpy").logspace(-1, 1, 8)), None, config=base), k=2)
from attnlab.widgets import Dashboard
dash = Dashboard(cfg, background=False)
res["Dashboard.run: dashboard default"] = best(dash.run)
print(json.dumps(res))
'''


def worktree(ref: str, tmp: Path) -> Path:
    path = tmp / ref.replace("/", "_")
    subprocess.run(["git", "worktree", "add", "--detach", str(path), ref], cwd=ROOT,
                   check=True, capture_output=True)
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("new", nargs="?", default=None)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        trees = {"base": worktree(args.base, tmp),
                 "new": worktree(args.new, tmp) if args.new else ROOT}
        best: dict[str, dict[str, float]] = {"base": {}, "new": {}}
        try:
            for _ in range(args.rounds):
                for side, tree in trees.items():
                    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "OMP_NUM_THREADS": "1"}
                    env.pop("ATTNLAB_FAST", None)
                    out = subprocess.run([sys.executable, "-c", WORKER], env=env, check=True,
                                         capture_output=True, text=True, cwd=tree).stdout
                    for k, v in json.loads(out.splitlines()[-1]).items():
                        best[side][k] = min(best[side].get(k, float("inf")), v)
        finally:
            for tree in trees.values():
                if tree != ROOT:
                    subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT,
                                   capture_output=True)
    new_label = args.new or "working tree"
    print(f"| workload (1 thread, min over {args.rounds} interleaved rounds) | {args.base} "
          f"| {new_label} | new / base |")
    print("|---|---|---|---|")
    for k, b in best["base"].items():
        n = best["new"][k]
        print(f"| {k} | {b * 1e3:.1f} ms | {n * 1e3:.1f} ms | {n / b:.2f} |")


if __name__ == "__main__":
    main()
