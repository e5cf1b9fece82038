"""Start a submission's process in a sandbox, and make sure nothing of it survives.

Every submission runs in a fresh temporary folder that holds only a copy of its notebook,
with a scrubbed environment (no variable of the grader's, so no token), resource limits
(CPU seconds, address space, file size, open files, processes) and its own process group.
When ``bwrap`` (bubblewrap, Debian package ``bubblewrap``; ``make grade-setup`` installs
it) is available, the process also gets its own mount, PID, network and user namespaces:
it sees the system read-only, its own folder read-write, and nothing else (no other
submission, no home folder, no network). Without bubblewrap only the limits apply; the
grader then reads every submission into memory before any runs, so a submission that writes
elsewhere cannot change another student's grade, but it can still read and write the
grader's files: grade inside a container or VM.

At the end, the process group is killed, and so is every process that escaped it (the
grading process is a child subreaper, so orphans come back to it).
"""

from __future__ import annotations

import ctypes
import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Limits", "bwrap_available", "sandbox_kind", "launch", "kill", "scrubbed_env"]


@dataclass(frozen=True)
class Limits:
    """Resource limits of one submission's process.

    Attributes:
        cpu_s: CPU seconds (the process is killed beyond). memory_mb: address space.
        file_mb: largest file it may write. nofile: open files. procs: processes it may add.
    """

    cpu_s: int = 600
    memory_mb: int = 6144
    file_mb: int = 64
    nofile: int = 1024
    procs: int = 128


def bwrap_available() -> bool:
    """True when ``bwrap`` exists and can create namespaces here."""
    exe = shutil.which("bwrap")
    if exe is None:
        return False
    try:
        r = subprocess.run([exe, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent",
                            "true"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def sandbox_kind(sandbox: str = "auto") -> str:
    """``"bwrap"`` or ``"rlimits"`` for the request ``"auto"``, ``"bwrap"`` or ``"rlimits"``.

    Raises RuntimeError when ``"bwrap"`` is requested but does not work.
    """
    if sandbox not in ("auto", "bwrap", "rlimits"):
        raise ValueError(f"sandbox must be 'auto', 'bwrap' or 'rlimits', got {sandbox!r}")
    if sandbox == "rlimits":
        return "rlimits"
    if bwrap_available():
        return "bwrap"
    if sandbox == "bwrap":
        raise RuntimeError("bubblewrap (bwrap) is not available: run `make grade-setup` "
                           "(apt-get install bubblewrap) or use --sandbox rlimits")
    return "rlimits"


def scrubbed_env(workdir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a submission: nothing inherited from the grader."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "ATTNLAB_GRADING": "1",
        "ATTNLAB_FAST": "1",
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }
    env.update(extra or {})
    return env


def _user_processes() -> int:
    uid, count = os.getuid(), 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += 1
            except OSError:
                pass
    return count


def _preexec(limits: Limits, nproc: int) -> None:
    """Runs in the forked child before exec: limits (the process group is set by Popen)."""
    mb = 1 << 20
    for res, value in ((resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 5)),
                       (resource.RLIMIT_AS, (limits.memory_mb * mb,) * 2),
                       (resource.RLIMIT_FSIZE, (limits.file_mb * mb,) * 2),
                       (resource.RLIMIT_NOFILE, (limits.nofile,) * 2),
                       (resource.RLIMIT_NPROC, (nproc,) * 2),
                       (resource.RLIMIT_CORE, (0, 0))):
        try:
            resource.setrlimit(res, value)
        except (ValueError, OSError):
            pass


def _become_subreaper() -> None:
    """Orphaned descendants are re-parented to this process (Linux), so none escapes."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def _children() -> set[int]:
    me, out = os.getpid(), set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    stat = fh.read()
                if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                    out.add(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return out


def _bwrap_args(workdir: Path, readonly: Sequence[Path], writable: Sequence[Path]
                ) -> list[str]:
    args = ["bwrap", "--die-with-parent", "--new-session", "--unshare-all",
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for p in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc/alternatives",
              "/etc/ld.so.cache", "/etc/fonts", "/etc/localtime", "/etc/passwd", "/etc/group",
              "/etc/nsswitch.conf", "/etc/ssl/certs"):
        if os.path.lexists(p):
            args += ["--ro-bind-try", p, p] if not os.path.islink(p) else \
                ["--symlink", os.readlink(p), p]
    seen: set[str] = set()
    for p in readonly:
        s = str(Path(p).resolve())
        if s not in seen and os.path.exists(s):
            seen.add(s)
            args += ["--ro-bind", s, s]
    for p in writable:
        s = str(Path(p).resolve())
        args += ["--bind", s, s]
    w = str(workdir.resolve())
    return [*args, "--bind", w, w, "--chdir", w, "--"]


@dataclass
class Sandboxed:
    """A running submission process: the Popen and what :func:`kill` needs."""

    proc: subprocess.Popen
    before: set[int]


def launch(argv: Sequence[str], workdir: Path, *, env: dict[str, str], limits: Limits,
           kind: str, readonly: Sequence[Path] = (), writable: Sequence[Path] = (),
           pass_fds: Sequence[int] = ()) -> Sandboxed:
    """Start ``argv`` in ``workdir`` inside the sandbox ``kind`` (``"bwrap"``/``"rlimits"``).

    ``readonly``: folders the process needs to read (Python, the package); only used with
    bubblewrap, which hides everything else; ``writable``: extra folders it may write.
    Standard input and output are ``/dev/null``: results come back over ``pass_fds``.
    """
    _become_subreaper()
    before = _children()
    nproc = _user_processes() + limits.procs
    cmd = [*(_bwrap_args(workdir, readonly, writable) if kind == "bwrap" else []), *argv]
    proc = subprocess.Popen(
        cmd, cwd=str(workdir), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, pass_fds=tuple(pass_fds), start_new_session=True,
        close_fds=True, preexec_fn=lambda: _preexec(limits, nproc))
    return Sandboxed(proc, before)


def kill(box: Sandboxed) -> None:
    """Kill the process group, every escaped descendant, and reap them all."""
    try:
        os.killpg(box.proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        box.proc.kill()
    except OSError:
        pass
    try:
        box.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    # descendants that left the group (setsid, double fork) were re-parented to us
    for _ in range(3):
        strays = _children() - box.before - {box.proc.pid}
        if not strays:
            break
        for pid in strays:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for pid in strays:
            try:
                os.waitpid(pid, 0)
            except (ChildProcessError, OSError):
                pass


if __name__ == "__main__":  # `python -m attnlab.checks.sandbox`: which sandbox is used
    print(sandbox_kind("auto"))
    sys.exit(0)
