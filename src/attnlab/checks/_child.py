"""The submission's side of grading: run the notebook's cells, then answer calls.

Started by :mod:`attnlab.checks.remote` inside the sandbox. It only ever sends plain data
back (:mod:`attnlab.checks._wire`): which cell runs, which raised, and the values the
student's functions return for the grader's inputs. It computes no score: whatever a
notebook changes in this process (json, importlib, the checks) cannot reach the grader.
"""

from __future__ import annotations

import builtins
import os
import signal
import sys
from typing import Any

from ._wire import decode, encode, read_frame, write_frame

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Sink:
    """stdout/stderr of the notebook: accepted and dropped (the grader reads none of it)."""

    encoding = "utf-8"
    errors = "replace"

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise OSError("no file descriptor")


class _IPythonStub:
    """``get_ipython()`` for cells with magics: every magic is a no-op."""

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


class _Timeout(BaseException):
    """Raised by the alarm when a cell or a call runs past its limit."""


def _alarm(signum: int, frame: Any) -> None:
    raise _Timeout()


def _limited(fn: Any, limit: float) -> Any:
    """``fn()`` stopped by SIGALRM after ``limit`` s (a notebook that ignores the alarm is
    stopped by the grader, which kills the process)."""
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, max(limit, 0.01))
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _line(exc: BaseException) -> str:
    kind, text = _describe(exc)
    return f"{kind}: {text}" if text else kind


def _describe(exc: BaseException) -> tuple[str, str]:
    try:
        msg = str(exc)
    except BaseException:
        msg = ""
    return type(exc).__name__, " ".join(msg.split())[:500]


def _alias_of(obj: Any) -> str:
    """``"module.name"`` when ``obj`` is a function of the attnlab package itself."""
    target = getattr(obj, "func", obj)  # functools.partial
    target = getattr(target, "__wrapped__", target)
    mod = getattr(target, "__module__", None) or ""
    code = getattr(target, "__code__", None)
    path = os.path.abspath(getattr(code, "co_filename", "") or "")
    if mod == "attnlab" or mod.startswith("attnlab.") or path.startswith(_PKG_DIR + os.sep):
        return f"{mod}.{getattr(target, '__qualname__', '?')}"
    return ""


def main(req: int, resp: int) -> None:
    send, recv = write_frame, read_frame  # bound before any student code runs
    header, _ = recv(req)
    sys.stdout = sys.stderr = _Sink()  # type: ignore[assignment]
    sys.argv = ["notebook.ipynb"]
    ns: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins,
                          "get_ipython": _IPythonStub, "display": lambda *a, **k: None}
    try:  # warm-up, not charged to the first cell: the imports every assignment needs
        import matplotlib.pyplot  # noqa: F401

        import attnlab.checks  # noqa: F401
    except BaseException as exc:
        send(resp, {"ev": "fatal", "error": _line(exc)})
        return
    cell_limit = float(header.get("cell_limit", 60.0))
    for index, source in header.get("cells", []):
        send(resp, {"ev": "cell", "index": index})
        try:
            code = compile(source, f"<cell {index + 1}>", "exec")
            _limited(lambda: exec(code, ns), cell_limit)  # noqa: B023
        except _Timeout:
            send(resp, {"ev": "cell_timeout", "index": index})
        except BaseException as exc:  # SystemExit, KeyboardInterrupt: the cell failed
            send(resp, {"ev": "cell_error", "index": index, "error": _line(exc)})
    send(resp, {"ev": "ready"})
    while True:
        try:
            msg, arrays = recv(req)
        except EOFError:
            return
        op = msg.get("op")
        if op == "probe":
            vals = {}
            for var in msg.get("vars", []):
                vals[var] = encode(ns.get(var))[0] if var in ns else None
            send(resp, {"ev": "probe",
                        "callable": {n: callable(ns.get(n)) for n in msg.get("names", [])},
                        "alias": {n: _alias_of(ns.get(n)) for n in msg.get("names", [])},
                        "vars": vals})
        elif op == "call":
            args = list(decode(msg["args"], arrays))
            fn = ns.get(msg["name"])
            try:
                value = _limited(lambda: fn(*args), float(msg.get("limit", 30.0)))  # noqa: B023
            except _Timeout:
                send(resp, {"ev": "timeout"})
                continue
            except BaseException as exc:
                kind, text = _describe(exc)
                send(resp, {"ev": "raised", "type": kind, "message": text})
                continue
            try:
                tree, out = encode((value, args if msg.get("copy_back") else None))
            except BaseException as exc:
                kind, text = _describe(exc)
                send(resp, {"ev": "raised", "type": kind, "message": text})
                continue
            send(resp, {"ev": "result", "value": tree}, out)
        else:
            return
