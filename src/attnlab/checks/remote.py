"""The grader's side of a submission's process: run its cells, call its functions remotely.

:class:`Session` starts :mod:`attnlab.checks._child` in a sandbox (:mod:`.sandbox`), follows
the cells as they run (a cell past its time limit is stopped by killing the process, which is
then restarted without that cell), and turns the student's functions into
:class:`RemoteFunction` objects: calling one sends the grader's inputs over the channel and
returns the student's output as plain data. The checks run here, in the grader's process;
nothing the notebook does can change them.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import sandbox
from ._wire import ChannelTimeout, ProtocolError, decode, encode, read_frame, write_frame
from .core import RemoteBroken, RemoteRaised, StudentTimeout

__all__ = ["Session", "RemoteFunction", "RemoteNamespace", "CellEvent"]

_BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); "
         "from attnlab.checks._child import main; main(int(sys.argv[2]), int(sys.argv[3]))")
MAX_RESTARTS = 4
GRACE = 2.0  # seconds after a limit before the grader kills a process that ignored it


_FONTS: list[Path] | None = None


def _font_caches() -> list[Path]:
    """matplotlib's font cache files of the grader (found once)."""
    global _FONTS
    if _FONTS is None:
        try:
            import matplotlib

            _FONTS = sorted(Path(matplotlib.get_cachedir()).glob("fontlist-*.json"))
        except Exception:
            _FONTS = []
    return _FONTS


@dataclass
class CellEvent:
    """Something that happened to one cell: ``kind`` is ``error``, ``timeout`` or ``crash``."""

    index: int
    kind: str
    text: str


@dataclass
class Session:
    """One submission's process and what is known about its cells.

    Args:
        cells: ``(cell index, Python source)`` of the code cells to run, in order.
        notebook: the notebook's bytes (copied, alone, into the fresh working folder).
        cell_timeout: seconds per cell; timeout: seconds for all cells together;
        call_timeout: seconds per call of a student's function.
        kind: ``"bwrap"`` or ``"rlimits"``; limits: :class:`sandbox.Limits`.
        keep: cells always rerun after the notebook ran out of time (definitions only).
    """

    cells: list[tuple[int, str]]
    notebook: bytes
    cell_timeout: float = 60.0
    timeout: float = 300.0
    call_timeout: float = 20.0
    kind: str = "rlimits"
    limits: sandbox.Limits = field(default_factory=sandbox.Limits)
    keep: frozenset[int] = frozenset()
    events: list[CellEvent] = field(default_factory=list)
    skip: set[int] = field(default_factory=set)
    fatal: str = ""
    out_of_time: str = ""
    restarts: int = 0
    _box: Any = None
    _req: int = -1
    _resp: int = -1
    _tmp: Path | None = None
    _used: float = 0.0

    # ------------------------------------------------------------------ lifecycle
    def _spawn(self) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix="attnlab-sub-"))
        work = self._tmp / "work"
        work.mkdir()
        (work / "submission.ipynb").write_bytes(self.notebook)
        mpl = self._tmp / "mpl"  # a copy of the grader's font cache: no rebuild per notebook
        mpl.mkdir()
        for f in _font_caches():
            shutil.copy(f, mpl / f.name)
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        import attnlab

        src = Path(attnlab.__file__).resolve().parents[1]
        readonly = [Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix), src,
                    *(Path(p) for p in sys.path if p.endswith(("site-packages",
                                                                "dist-packages")))]
        try:
            self._box = sandbox.launch(
                [sys.executable, "-E", "-s", "-c", _BOOT, str(src), str(req_r), str(resp_w)],
                work, env=sandbox.scrubbed_env(work, {"MPLCONFIGDIR": str(mpl)}),
                limits=self.limits, kind=self.kind, readonly=readonly, writable=[mpl],
                pass_fds=(req_r, resp_w))
        finally:
            os.close(req_r)
            os.close(resp_w)
        self._req, self._resp = req_w, resp_r

    def _teardown(self) -> None:
        if self._box is not None:
            sandbox.kill(self._box)
            self._box = None
        for fd in (self._req, self._resp):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._req = self._resp = -1
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def close(self) -> None:
        """Kill the process and everything it started; remove its folder."""
        self._teardown()

    @property
    def alive(self) -> bool:
        return self._box is not None

    def start(self) -> bool:
        """Run the cells (again, without the ones that failed fatally). False: no process
        could be brought to the grading stage (``fatal`` says why)."""
        while True:
            if self.restarts > MAX_RESTARTS:
                self.fatal = self.fatal or "the notebook's process had to be restarted too often"
                return False
            self._teardown()
            self._spawn()
            todo = [(i, s) for i, s in self.cells if i not in self.skip]
            t_start = time.monotonic()
            budget = self.timeout - self._used
            try:
                write_frame(self._req, {"op": "run", "cells": todo,
                                        "cell_limit": self.cell_timeout})
                state = self._follow(t_start + max(budget, 1.0) + 30.0, t_start, budget)
            except OSError as exc:
                state = ("crash", None, f"{type(exc).__name__}")
            kind, index, text = state
            if kind == "ready":
                return True
            self._used += time.monotonic() - t_start
            self._teardown()
            self.restarts += 1
            if index is None:
                self.fatal = text
                return False
            self.events.append(CellEvent(index, kind, text))
            self.skip.add(index)
            if kind == "out_of_time":
                # the notebook ran past its total budget: rerun only the definitions
                self.out_of_time = text
                self._used = self.timeout  # later restarts get no time for other cells
                self.skip.update(i for i, _ in self.cells if i > index and i not in self.keep)

    def _follow(self, hard: float, t_start: float, budget: float
                ) -> tuple[str, int | None, str]:
        """Read cell events until ``ready``; ``(kind, cell index or None, text)``."""
        current: int | None = None
        cell_deadline = hard
        while True:
            try:
                msg, _ = read_frame(self._resp, deadline=min(cell_deadline, hard),
                                    max_blob=1 << 20)
            except ChannelTimeout:
                if current is None:
                    return "crash", None, "the notebook's process did not start in time"
                if time.monotonic() >= t_start + budget - 0.5 and current not in self.keep:
                    return ("out_of_time", current,
                            f"the notebook ran past {self.timeout:g} s in total")
                return "timeout", current, f"did not finish within {self._cell_limit:g} s"
            except EOFError:
                if current is None:
                    return "crash", None, "the notebook's process ended before its first cell"
                return "crash", current, ("ended the notebook's process (exit, a crash, or a "
                                          "resource limit: memory, CPU time, file size)")
            except ProtocolError as exc:
                return "crash", current, f"broke the grading channel ({exc})"
            ev = msg.get("ev")
            if ev == "cell" and isinstance(msg.get("index"), int):
                current = msg["index"]
                now = time.monotonic()
                left = t_start + budget - now
                self._cell_limit = self.cell_timeout
                # the process stops a cell itself at cell_timeout (SIGALRM); GRACE later, a
                # cell that ignored the alarm is stopped by killing the process
                cell_deadline = now + max(0.5, min(self.cell_timeout + GRACE, left))
                if current in self.keep:
                    cell_deadline = now + self.cell_timeout + GRACE
            elif ev == "cell_timeout" and isinstance(msg.get("index"), int):
                self.events.append(CellEvent(msg["index"], "timeout",
                                             f"did not finish within {self.cell_timeout:g} s"))
                cell_deadline = hard
            elif ev == "cell_error" and isinstance(msg.get("index"), int):
                if not any(e.index == msg["index"] for e in self.events):
                    self.events.append(CellEvent(msg["index"], "error", str(msg.get("error"))))
            elif ev == "ready":
                return "ready", None, ""
            elif ev == "fatal":
                return "crash", None, f"the notebook's process failed: {msg.get('error')}"[:300]
            else:
                return "crash", current, "broke the grading channel (unexpected message)"

    _cell_limit: float = 60.0

    # ------------------------------------------------------------------ calls
    def _ensure(self) -> None:
        if not self.alive and not self.start():
            raise RemoteBroken(f"the notebook could not be run again: {self.fatal}")

    def probe(self, names: Sequence[str], variables: Sequence[str]) -> dict:
        """Which ``names`` are callable (and which are the package's own functions), and the
        values of ``variables``."""
        self._ensure()
        try:
            write_frame(self._req, {"op": "probe", "names": list(names),
                                    "vars": list(variables)})
            msg, arrays = read_frame(self._resp, time.monotonic() + self.call_timeout)
            if msg.get("ev") != "probe":
                raise ProtocolError("unexpected reply")
            out = {"callable": {n: msg["callable"].get(n) is True for n in names},
                   "alias": {n: str(msg["alias"].get(n) or "")[:200] for n in names},
                   "vars": {}}
            for v in variables:
                if msg["vars"].get(v) is not None:
                    out["vars"][v] = decode(msg["vars"][v], arrays)
            return out
        except (ChannelTimeout, EOFError, ProtocolError, OSError, KeyError, AttributeError,
                TypeError):
            self._teardown()
            return {"callable": dict.fromkeys(names, False), "alias": {}, "vars": {},
                    "broken": True}

    def call(self, name: str, args: Sequence[Any], copy_back: bool = False) -> Any:
        """``name(*args)`` in the submission's process; the student's output as plain data.

        Raises StudentTimeout, RemoteRaised (the function raised) or RemoteBroken (the
        process died or broke the channel; it is restarted for the next call).
        """
        self._ensure()
        tree, arrays = encode(list(args))
        try:
            write_frame(self._req, {"op": "call", "name": name, "args": tree,
                                    "copy_back": copy_back, "limit": self.call_timeout},
                        arrays)
            msg, out = read_frame(self._resp, time.monotonic() + self.call_timeout + GRACE)
        except ChannelTimeout:
            self._teardown()
            raise StudentTimeout(self.call_timeout) from None
        except (EOFError, OSError):
            self._teardown()
            raise RemoteBroken(f"`{name}` ended the notebook's process (exit, a crash, or a "
                               "resource limit: memory, CPU time, file size)") from None
        except ProtocolError as exc:
            self._teardown()
            raise RemoteBroken(f"`{name}` broke the grading channel ({exc})") from None
        ev = msg.get("ev")
        if ev == "timeout":
            raise StudentTimeout(self.call_timeout)
        if ev == "raised":
            if msg.get("type") == "NotImplementedError":
                raise NotImplementedError(str(msg.get("message", "")))
            raise RemoteRaised(str(msg.get("type", "Exception"))[:80],
                               str(msg.get("message", ""))[:500])
        if ev != "result":
            self._teardown()
            raise RemoteBroken(f"`{name}` broke the grading channel (unexpected reply)")
        try:
            value = decode(msg.get("value"), out)
            result, after = value
        except (ProtocolError, TypeError, ValueError):
            self._teardown()
            raise RemoteBroken(f"`{name}` broke the grading channel (malformed reply)") \
                from None
        if copy_back and isinstance(after, list) and len(after) == len(args):
            import numpy as np

            for a, b in zip(args, after, strict=True):
                if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) \
                        and a.shape == b.shape and a.flags.writeable:
                    np.copyto(a, b, casting="unsafe")
        return result


class RemoteFunction:
    """Stands for a student's function in the grader's process (see :meth:`Session.call`)."""

    remote = True

    def __init__(self, session: Session, name: str) -> None:
        self.session, self.__name__ = session, name

    def call_remote(self, args: Sequence[Any], copy_back: bool = False) -> Any:
        return self.session.call(self.__name__, args, copy_back)

    def __call__(self, *args: Any) -> Any:
        return self.call_remote(args)


class RemoteNamespace:
    """The notebook's names as :func:`attnlab.checks.grading.grade_namespace` reads them."""

    def __init__(self, session: Session, names: Sequence[str], variables: Sequence[str]):
        info = session.probe(names, variables)
        self.broken = bool(info.get("broken"))
        self.aliases = {n: a for n, a in info["alias"].items() if a}
        self._values: dict[str, Any] = dict(info["vars"])
        for n, ok in info["callable"].items():
            if ok:
                self._values[n] = RemoteFunction(session, n)

    def get(self, name: str, default: Any = None) -> Any:
        return self._values.get(name, default)

    def __contains__(self, name: str) -> bool:
        return name in self._values
