"""Colab-like check: run every generated notebook the way a Colab reader does.

``make test-colab`` (CI runs it):

1. a fresh venv with what Colab already has that matters here: the pinned torch (from the
   local wheel or index where there is one) and **ipywidgets 7.7.1** (Colab's version), plus
   ipykernel and nbclient to run notebooks;
2. a local bare clone of this repository, holding the working tree as a commit at the ref the
   setup cell names (the branch for a development version, the tag ``vX.Y.Z`` for an edition);
   git's ``url.<bare>.insteadOf`` sends the setup cell's ``git+https://github.com/...`` there,
   so the cell runs **exactly as written** (a ``sitecustomize`` module marks the kernel as
   Colab by putting ``google.colab`` into ``sys.modules``);
3. every notebook of ``notebooks/`` and ``assignments/instructor/`` executed end to end in fast
   mode (``ATTNLAB_FAST=1``); afterwards ipywidgets must still be 7.x and torch the one Colab
   had (the setup cell must not touch them).

pip resolves under constraints from ``requirements.txt``, so packages come from the machine's
local index or pip's cache where it has them, as in ``make install``.

``make test-colab-torch`` runs the same with ``--torch newest`` (whatever the index offers;
on Linux the public index serves multi-GB CUDA builds) and ``--torch oldest`` (the floor in
pyproject.toml), which CI does not run; ``--python python3.13`` picks another interpreter.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLAB_IPYWIDGETS = "7.7.1"
SITECUSTOMIZE = '''\
# Colab-like check: make notebooks believe they run in Colab (their setup cell tests this).
import sys
import types

sys.modules.setdefault("google", types.ModuleType("google"))
sys.modules.setdefault("google.colab", types.ModuleType("google.colab"))
'''


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def notebooks(root: Path = ROOT) -> list[Path]:
    return sorted((root / "notebooks").glob("*.ipynb")) + \
        sorted((root / "assignments" / "instructor").glob("*.ipynb"))


def torch_requirement(which: str, root: Path = ROOT) -> str:
    deps = _script("deps")
    if which == "pinned":
        return str(deps.pins(root / "requirements.txt")["torch"])
    if which == "newest":
        return "torch"
    if which == "oldest":
        floor = next(r for r in deps.runtime(root) if deps.norm(r.name) == "torch")
        low = next(s.version for s in floor.specifier if s.operator == ">=")
        return f"torch=={low}.*"
    raise ValueError(f"torch must be 'pinned', 'newest' or 'oldest', got {which!r}")


def constraints(torch: str, root: Path = ROOT) -> str:
    """requirements.txt's pins, with Colab's ipywidgets and the chosen torch."""
    deps = _script("deps")
    lines = [str(r) for name, r in deps.pins(root / "requirements.txt").items()
             if name not in ("torch", "ipywidgets")]
    lines.append(f"ipywidgets=={COLAB_IPYWIDGETS}")
    if torch != "torch":
        lines.append(torch)
    return "\n".join(lines) + "\n"


def snapshot(root: Path, tmp: Path) -> str:
    """A commit of the working tree (tracked and untracked, not ignored files) on top of HEAD."""
    env = {**os.environ, "GIT_INDEX_FILE": str(tmp / "index")}
    git = ["git", "-C", str(root)]
    subprocess.run([*git, "read-tree", "HEAD"], env=env, check=True)
    subprocess.run([*git, "add", "-A"], env=env, check=True)
    tree = subprocess.run([*git, "write-tree"], env=env, check=True, capture_output=True,
                          text=True).stdout.strip()
    return subprocess.run([*git, "commit-tree", tree, "-p", "HEAD", "-m", "colab check"],
                          env=env, check=True, capture_output=True, text=True).stdout.strip()


def bare_clone(root: Path, tmp: Path) -> Path:
    """``tmp/bare.git`` with the working tree at the ref the setup cell names."""
    repoinfo = _script("repoinfo")
    bare = tmp / "bare.git"
    _run(["git", "init", "-q", "--bare", str(bare)])
    ref = repoinfo.ref(root)
    full = f"refs/tags/{ref}" if ref.startswith("v") and repoinfo.is_release(
        repoinfo.package_version(root)) else f"refs/heads/{ref}"
    commit = snapshot(root, tmp)
    _run(["git", "-C", str(root), "push", "-q", "-f", str(bare), f"{commit}:{full}"])
    return bare


def execute(paths: list[str], timeout: int) -> int:
    """Run inside the check's venv: execute each notebook, report, return the failures."""
    import nbclient
    import nbformat

    failures = 0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        try:
            nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                    resources={"metadata": {"path": str(Path(path).parent)}}
                                    ).execute()
            print(f"ok    {time.perf_counter() - start:6.1f} s  {path}", flush=True)
        except Exception as exc:  # noqa: BLE001 - report every notebook, then fail
            failures += 1
            print(f"FAIL  {time.perf_counter() - start:6.1f} s  {path}\n{exc}"[:4000], flush=True)
    return failures


def check(torch: str = "pinned", python: str | None = None, keep: bool = False,
          only: list[str] | None = None, timeout: int = 900,
          torch_index: str | None = None) -> int:
    repoinfo = _script("repoinfo")
    tmp = Path(tempfile.mkdtemp(prefix="attnlab-colab-"))
    try:
        venv = tmp / "venv"
        _run([python or sys.executable, "-m", "venv", str(venv)])
        py = str(venv / "bin" / "python")
        torch_req = torch_requirement(torch)
        cons = tmp / "constraints.txt"
        cons.write_text(constraints(torch_req))
        env = {**os.environ, "PIP_CONSTRAINT": str(cons), "PIP_PROGRESS_BAR": "off"}
        env.pop("PYTHONPATH", None)
        env.pop("VIRTUAL_ENV", None)
        # What Colab has already: torch, ipywidgets 7, a kernel.
        if torch_index:
            _run([py, "-m", "pip", "install", "-q", "--index-url", torch_index, torch_req],
                 env=env)
        _run([py, "-m", "pip", "install", "-q", torch_req, f"ipywidgets=={COLAB_IPYWIDGETS}",
              "ipykernel", "nbclient", "nbformat"], env=env)
        purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
        site = subprocess.run([py, "-c", purelib], check=True, capture_output=True,
                              text=True).stdout.strip()
        Path(site, "sitecustomize.py").write_text(SITECUSTOMIZE)
        before = subprocess.run([py, "-c", "import torch; print(torch.__version__)"], env=env,
                                check=True, capture_output=True, text=True).stdout.strip()
        bare = bare_clone(ROOT, tmp)
        gitconfig = tmp / "gitconfig"
        gitconfig.write_text(f'[url "file://{bare}"]\n\tinsteadOf = {repoinfo.repo_url(ROOT)}\n'
                             '[protocol "file"]\n\tallow = always\n')
        env.update(GIT_CONFIG_GLOBAL=str(gitconfig), ATTNLAB_FAST="1", MPLBACKEND="Agg")
        # Run from a folder without the sources, as in Colab: the notebooks' imports must
        # resolve to the installed package.
        work = tmp / "work"
        work.mkdir()
        paths = []
        for nb in notebooks():
            if only and not any(o in nb.name for o in only):
                continue
            dest = work / nb.parent.name / nb.name
            dest.parent.mkdir(exist_ok=True)
            shutil.copy(nb, dest)
            paths.append(str(dest))
        proc = subprocess.run([py, str(Path(__file__)), "--execute", "--timeout", str(timeout),
                               *paths], env=env, cwd=work)
        versions = "import ipywidgets, torch; print(ipywidgets.__version__, torch.__version__)"
        after = subprocess.run([py, "-c", versions], env=env, check=True, capture_output=True,
                               text=True).stdout.split()
        print(f"after the setup cells: ipywidgets {after[0]}, torch {after[1]} (before: {before})")
        problems = []
        if proc.returncode:
            problems.append(f"{proc.returncode} notebook(s) failed")
        if not re.match(r"^7\.", after[0]):
            problems.append(f"the setup cell changed ipywidgets to {after[0]}")
        if after[1] != before:
            problems.append(f"the setup cell changed torch from {before} to {after[1]}")
        for line in problems:
            print("colab check:", line)
        print(f"colab-check: {len(paths) - proc.returncode} passed, {proc.returncode} failed")
        return 1 if problems else 0
    finally:
        if keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch", default="pinned", choices=["pinned", "newest", "oldest"])
    parser.add_argument("--python", help="interpreter for the venv (default: this one)")
    parser.add_argument("--only", nargs="*", help="run only notebooks whose name contains one")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--timeout", type=int, default=900, help="per cell, seconds")
    parser.add_argument("--torch-index", default=os.environ.get("TORCH_INDEX") or None,
                        help="index to take torch from (default: $TORCH_INDEX, else pip's)")
    parser.add_argument("--execute", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.execute:
        return execute(args.paths, args.timeout)
    return check(args.torch, args.python, args.keep, args.only, args.timeout, args.torch_index)


if __name__ == "__main__":
    sys.exit(main())
