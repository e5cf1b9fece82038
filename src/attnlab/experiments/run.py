"""Command line: ``python -m attnlab.experiments.run <experiment> --config short|full``
(also ``test``, and ``cpu`` for ``modular``: a long single-thread CPU run).

Examples::

    python -m attnlab.experiments.run imdb --config full --device cuda --out results/
    python -m attnlab.experiments.run modular --config short --out results/ --seeds 0 1
    OMP_NUM_THREADS=1 python -m attnlab.experiments.run modular --config cpu --device cpu \
        --out src/attnlab/experiments/stored/cpu/   # the result the book ships

Writes ``<out>/<experiment>.npz`` (read it back with ``attnlab.experiments.load_result``;
results shipped with the package with ``stored_result``).
"""

from __future__ import annotations

import argparse
import sys

from . import EXPERIMENTS, RUNNERS, get_config
from .config import PRESETS


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m attnlab.experiments.run",
                                 description="Run a Part III experiment of the attnlab book.")
    ap.add_argument("experiment", choices=EXPERIMENTS)
    ap.add_argument("--config", choices=PRESETS, default="short")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda, mps (default auto)")
    ap.add_argument("--out", default="results", help="output folder (default results/)")
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    cfg = get_config(args.experiment, args.config)
    res = RUNNERS[args.experiment](cfg, device=args.device, seeds=args.seeds,
                                   progress=not args.no_progress, out=args.out)
    print(f"{args.experiment} ({args.config}) on {res.meta['device']}: "
          f"{res.meta['seconds']:.1f} s -> {args.out}/{args.experiment}.npz")
    print(res.meta.get("note", ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
