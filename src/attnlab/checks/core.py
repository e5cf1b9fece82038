"""Machinery shared by the assignment checks: results, safe calls, comparisons, printing.

A check calls the student's function on fresh, randomized inputs, compares with the
package's reference, and records a list of :class:`Test` items (points and feedback).
Feedback names what is wrong (a shape, a sign, a scale factor, a missing restart) without
printing the expected values.

Environment variables:

- ``ATTNLAB_GRADING=1`` (set by the bulk grader in the submission's process): check cells
  in a notebook only print a note; the grader runs every check in its own process, calling
  the student's functions over a channel (:mod:`attnlab.checks.remote`).
"""

from __future__ import annotations

import functools
import os
import secrets
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .._arrays import to_numpy

__all__ = [
    "CheckResult",
    "Test",
    "Run",
    "Stop",
    "StudentTimeout",
    "check",
    "report",
    "results",
    "reset",
    "CALL_LIMIT_S",
]

#: Seconds one call of a student's function may take before it is stopped.
CALL_LIMIT_S = 30.0
_PASS, _FAIL = "PASS", "FAIL"


@dataclass
class Test:
    """One graded item of a check: a description, points, and feedback when it failed."""

    name: str
    points: float
    max_points: float
    feedback: str = ""

    @property
    def passed(self) -> bool:
        return self.points >= self.max_points


@dataclass
class CheckResult:
    """What a check returns: points earned, the maximum, and readable messages.

    Attributes:
        part: part id, e.g. ``"A1.2"``.
        title: short title of the part.
        points, max_points: points earned and available.
        tests: the graded items, in order.
        error: set when the check stopped early (not implemented, an exception, a timeout).
        deferred: True when the check only printed a note (bulk-grading run).
    """

    part: str
    title: str
    points: float
    max_points: float
    tests: list[Test] = field(default_factory=list)
    error: str = ""
    deferred: bool = False

    @property
    def passed(self) -> bool:
        """All points earned."""
        return self.points >= self.max_points and not self.deferred

    @property
    def messages(self) -> list[str]:
        """Feedback lines for everything that did not pass (empty when all passed)."""
        out = [f"{t.name}: {t.feedback}" for t in self.tests if not t.passed]
        return out + ([self.error] if self.error else [])

    def summary(self) -> str:
        """The printed report: a headline, then one line per graded item."""
        if self.deferred:
            return f"{self.part} {self.title}: graded at the end of the grading run."
        lines = [f"{self.part} {self.title}: {_num(self.points)}/{_num(self.max_points)} points"]
        for t in self.tests:
            tag = _PASS if t.passed else _FAIL
            pts = f"({_num(t.points)}/{_num(t.max_points)})"
            text = t.name if t.passed or not t.feedback else f"{t.name}. {t.feedback}"
            lines.append(f"  {tag} {pts} {text}")
        if self.error:
            lines.append(f"  STOP {self.error}")
        if self.passed:
            lines.append("  All tests passed.")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (used by the bulk grader)."""
        d = asdict(self)
        d["messages"] = self.messages
        return d


def _num(x: float) -> str:
    return f"{x:g}"


# ----------------------------------------------------------------------------- running
class Stop(Exception):
    """Raised inside a check to end it early with a message (remaining items score 0)."""


class StudentTimeout(BaseException):
    """A student's function ran past its time limit (BaseException: ``except Exception``
    in student code does not swallow it). ``args[0]``, when given: the limit in seconds."""


class RemoteRaised(Exception):
    """The student's function raised in the submission's process (bulk grading)."""

    def __init__(self, type_name: str, text: str) -> None:
        super().__init__(type_name, text)
        self.type_name, self.text = type_name, text


class RemoteBroken(Exception):
    """The submission's process died or broke the grading channel; ``args[0]`` says how."""


def _alarm_handler(signum: int, frame: Any) -> None:
    raise StudentTimeout()


def call_limited(fn: Callable[..., Any], args: Sequence[Any], limit: float) -> Any:
    """``fn(*args)``, stopped with :class:`StudentTimeout` after ``limit`` seconds.

    Uses ``SIGALRM`` (Unix, main thread: where Jupyter runs cells); elsewhere no limit.
    """
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable or limit <= 0:
        return fn(*args)
    old = signal.signal(signal.SIGALRM, _alarm_handler)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        return fn(*args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _copy(x: Any) -> Any:
    return x.copy() if isinstance(x, np.ndarray) else x


@dataclass
class Run:
    """Collects the graded items of one check while it runs."""

    part: str
    title: str
    max_points: float
    rng: np.random.Generator
    limit: float = CALL_LIMIT_S
    tests: list[Test] = field(default_factory=list)

    def ok(self, name: str, points: float) -> None:
        """Record an item that passed."""
        self.tests.append(Test(name, points, points))

    def fail(self, name: str, points: float, feedback: str) -> None:
        """Record an item that failed, with actionable feedback."""
        self.tests.append(Test(name, 0.0, points, feedback))

    def item(self, name: str, points: float, feedback: str | None) -> bool:
        """Record ``name``: passed when ``feedback`` is None. Returns whether it passed."""
        if feedback is None:
            self.ok(name, points)
            return True
        self.fail(name, points, feedback)
        return False

    def call(self, fn: Callable[..., Any], *args: Any, name: str | None = None,
             what: str = "", copy: bool = True) -> Any:
        """Call the student's function on ``args`` (copies of arrays unless ``copy=False``);
        turn failures into :class:`Stop`.

        ``what`` describes the arguments for the error message (e.g. ``"V of shape (5, 3)"``).
        """
        fname = name or getattr(fn, "__name__", "your function")
        if not callable(fn):
            raise Stop(f"`{fname}` is not a function (got {type(fn).__name__}).")
        where = f" with {what}" if what else ""
        try:
            if getattr(fn, "remote", False):  # bulk grading: runs in the submission's process
                return fn.call_remote(list(args), copy_back=not copy)
            with np.errstate(all="ignore"):  # overflow in a wrong solution: feedback says why
                return call_limited(fn, [_copy(a) for a in args] if copy else list(args),
                                    self.limit)
        except NotImplementedError:
            raise Stop(f"`{fname}` is not implemented yet: replace the line "
                       "`raise NotImplementedError` with your code.") from None
        except RemoteRaised as exc:
            raise Stop(f"calling `{fname}`{where} raised {exc.type_name}: "
                       f"{_short(exc.text)}") from None
        except RemoteBroken as exc:
            raise Stop(f"{exc.args[0]}{where}.") from None
        except StudentTimeout as exc:
            limit = exc.args[0] if exc.args else self.limit
            raise Stop(f"`{fname}` did not return within {limit:g} s"
                       f"{' (' + what + ')' if what else ''}: look for a loop that never "
                       "ends (its stopping rule or its counter).") from None
        except Exception as exc:  # the student's bug, reported, never re-raised
            raise Stop(f"calling `{fname}`{where} raised {type(exc).__name__}: "
                       f"{_short(str(exc))}") from None

    def result(self, error: str = "") -> CheckResult:
        pts = round(sum(t.points for t in self.tests), 6)
        return CheckResult(self.part, self.title, pts, self.max_points, list(self.tests), error)


def _short(text: str, n: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


# ----------------------------------------------------------------------------- comparisons
def to_array(value: Any, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """The student's output as a float array; :class:`Stop` with feedback otherwise.

    Accepts NumPy arrays, torch tensors (detached), lists and Python numbers.
    """
    if value is None:
        raise Stop(f"`{name}` returned None: did you forget the `return` statement?")
    try:
        arr = np.asarray(to_numpy(value), dtype=float)
    except (TypeError, ValueError):
        kind = getattr(value, "type_name", type(value).__name__)
        raise Stop(f"`{name}` must return an array of numbers, got {kind}.") from None
    if shape is not None and arr.shape != tuple(shape):
        raise Stop(f"`{name}` returned an array of shape {arr.shape}; expected shape "
                   f"{tuple(shape)}{_shape_hint(arr.shape, tuple(shape))}.")
    return arr


def _shape_hint(got: tuple[int, ...], want: tuple[int, ...]) -> str:
    if got == want[::-1]:
        return " (it looks transposed)"
    if int(np.prod(got)) == int(np.prod(want)):
        return " (same number of entries: check your reshape)"
    return ""


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """``||a - b|| / max(||b||, tiny)``; inf when shapes differ or ``a`` is not finite."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or not np.all(np.isfinite(a)):
        return float("inf")
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def close(a: Any, b: Any, rtol: float = 1e-6) -> bool:
    """Relative closeness in norm (shape must match)."""
    return rel_err(a, b) <= rtol


def diagnose(out: np.ndarray, variants: Sequence[tuple[Any, str]],
             rtol: float = 1e-6) -> str | None:
    """Feedback of the first known-mistake variant that ``out`` matches, else None.

    ``variants`` holds ``(value or callable -> value, feedback)``; callables are evaluated
    lazily (a variant that raises is skipped).
    """
    for value, feedback in variants:
        try:
            v = value() if callable(value) else value
        except Exception:
            continue
        if v is not None and close(out, v, rtol):
            return feedback
    return None


def make_rng(seed: int | None) -> tuple[np.random.Generator, int]:
    """A fresh generator; ``seed=None`` draws a random seed (hidden cases differ per run)."""
    if seed is None:
        seed = secrets.randbits(32)
    return np.random.default_rng(seed), int(seed)


# ----------------------------------------------------------------------------- decorator
_RESULTS: dict[str, CheckResult] = {}


def grading_run() -> bool:
    """True inside a bulk-grading run (``ATTNLAB_GRADING=1``)."""
    return os.environ.get("ATTNLAB_GRADING", "") == "1"


def check(part: str, title: str,
          points: float) -> Callable[[Callable[..., None]], Callable[..., CheckResult]]:
    """Turn ``body(run, *student_functions, **options)`` into a public check.

    The public function has the signature ``(*student_functions, seed=None, verbose=True,
    force=False, **options) -> CheckResult``: it prints the summary (``verbose``) and
    remembers the last result of the part for :func:`report`. During a bulk-grading run it
    only prints a note, unless ``force`` (the grader's own call).
    """

    def wrap(body: Callable[..., None]) -> Callable[..., CheckResult]:
        @functools.wraps(body)
        def public(*fns: Any, seed: int | None = None, verbose: bool = True,
                   force: bool = False, **options: Any) -> CheckResult:
            if grading_run() and not force:
                res = CheckResult(part, title, 0.0, points, deferred=True)
                if verbose:
                    print(res.summary())
                return res
            rng, _ = make_rng(seed)
            run = Run(part, title, points, rng, limit=CALL_LIMIT_S)
            error = ""
            try:
                body(run, *fns, **options)
            except Stop as stop:
                error = str(stop)
            except Exception as exc:  # a bug in the check itself: say so, never crash
                error = (f"internal error in the check ({type(exc).__name__}: "
                         f"{_short(str(exc))}); please tell your instructor.")
            res = run.result(error)
            _RESULTS[part] = res
            if verbose:
                print(res.summary())
            return res

        public.part = part  # type: ignore[attr-defined]
        public.points = points  # type: ignore[attr-defined]
        return public

    return wrap


def results() -> dict[str, CheckResult]:
    """The last result of every check run in this session, by part id."""
    return dict(_RESULTS)


def reset() -> None:
    """Forget the results recorded in this session."""
    _RESULTS.clear()


def report(assignment: Any | None = None) -> str:
    """Print (and return) the points collected so far in this session.

    Args:
        assignment: an :class:`attnlab.checks.spec.Assignment` (e.g. ``a1.ASSIGNMENT``) to
            list every part, including the ones not run yet and the written questions.
    """
    lines = []
    if assignment is None:
        for pid in sorted(_RESULTS):
            r = _RESULTS[pid]
            lines.append(f"{pid:6s} {r.title:40s} {_num(r.points):>5s}/{_num(r.max_points)}")
    else:
        if not callable(getattr(assignment, "report_lines", None)):
            raise TypeError(f"assignment must be an Assignment (e.g. a1.ASSIGNMENT) or None, "
                            f"got {type(assignment).__name__}")
        lines = assignment.report_lines(_RESULTS)
    text = "\n".join(lines)
    print(text)
    return text
