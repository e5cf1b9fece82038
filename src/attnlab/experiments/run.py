"""Command line: ``python -m attnlab.experiments.run <experiment> --config short|full``
(also ``test``, and ``cpu`` for ``imdb``, ``pathfinder``, ``landscape`` and ``modular``:
long CPU runs whose results ship with the book).

Examples::

    python -m attnlab.experiments.run imdb --config full --device cuda --out results/
    python -m attnlab.experiments.run modular --config short --out results/ --seeds 0 1
    python -m attnlab.experiments.run imdb --config cpu --device cpu --threads 2 \
        --out src/attnlab/experiments/stored/cpu/   # a result the book ships

Writes ``<out>/<experiment>.npz`` (read it back with ``attnlab.experiments.load_result``;
results shipped with the package with ``stored_result``), with the command, the versions
and the wall time in its metadata. ``--difficulty`` runs Pathfinder's preset at another
contour length and writes ``<out>/pathfinder_n<difficulty>.npz``; ``pathfinder --config
cpu_conv`` (a convolutional stem) writes ``<out>/pathfinder_conv.npz``. For ``imdb`` and
``pathfinder`` it also (re)writes
``<out>/summary.json`` from the results present in ``<out>`` (:func:`write_summary`).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import replace

import torch

from ..data.pathfinder import DIFFICULTIES
from ..device import available_devices
from . import EXPERIMENTS, RUNNERS, get_config
from .config import PRESETS
from .results import check_out_dir, write_summary

DEVICES = ("auto", "cpu", "cuda", "mps")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m attnlab.experiments.run",
                                 description="Run a Part III experiment of the attnlab book.")
    ap.add_argument("experiment", choices=EXPERIMENTS)
    ap.add_argument("--config", choices=PRESETS, default="short")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda, mps (default auto)")
    ap.add_argument("--out", default="results", help="output folder (default results/)")
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's choice; 1 for small models "
                         "on a shared machine)")
    ap.add_argument("--difficulty", type=int, default=None,
                    help="pathfinder only: contour length 6, 9 or 14 instead of the preset's "
                         "(writes pathfinder_n<difficulty>.npz)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    # Every bad argument is an argparse error here, before any training (no traceback).
    if args.threads is not None:
        if args.threads < 1:
            ap.error(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.device not in DEVICES:
        ap.error(f"--device must be one of {', '.join(DEVICES)}, got {args.device!r}")
    if args.device != "auto" and args.device not in available_devices():
        ap.error(f"--device {args.device} is not available on this machine (available: "
                 f"{', '.join(available_devices())}); use --device auto")
    if args.seeds is not None and min(args.seeds) < 0:
        ap.error(f"--seeds must be >= 0, got {args.seeds}")
    try:
        cfg = get_config(args.experiment, args.config)
        check_out_dir(args.out, "--out")
    except (TypeError, ValueError) as exc:
        ap.error(str(exc))
    name = args.experiment
    if args.config == "cpu_conv":  # the convolutional-stem campaign, stored beside "cpu"'s
        name = f"{name}_conv"
    if args.difficulty is not None:
        if args.experiment != "pathfinder":
            ap.error(f"--difficulty applies to pathfinder only, not {args.experiment}")
        if args.difficulty not in DIFFICULTIES:
            ap.error(f"--difficulty must be one of {DIFFICULTIES}, got {args.difficulty}")
        if args.difficulty != cfg.difficulty:
            cfg = replace(cfg, difficulty=args.difficulty)
            name = f"{name}_n{args.difficulty}"
    t0 = time.perf_counter()
    res = RUNNERS[args.experiment](cfg, device=args.device, seeds=args.seeds,
                                   progress=not args.no_progress, out=None)
    res.meta["command"] = shlex.join(["python", "-m", "attnlab.experiments.run", *argv])
    res.meta["preset"] = args.config
    res.meta["wall_seconds"] = time.perf_counter() - t0
    res.meta["threads"] = torch.get_num_threads()
    path = res.save(f"{args.out}/{name}.npz")
    if args.experiment in ("imdb", "pathfinder"):  # pathfinder_n<d> included
        write_summary(args.out)
    print(f"{args.experiment} ({args.config}) on {res.meta['device']}: "
          f"{res.meta['wall_seconds']:.1f} s -> {path}")
    print(res.meta.get("note", ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
