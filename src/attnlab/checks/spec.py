"""Assignment descriptions: parts (auto-graded by a check) and written questions (by hand)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .core import CheckResult

__all__ = ["Part", "Written", "Assignment"]


@dataclass(frozen=True)
class Part:
    """An auto-graded part.

    Attributes:
        id: e.g. ``"A1.2"``; title: short title; points: maximum points.
        check: the public check function (from :func:`attnlab.checks.core.check`).
        functions: names of the student's functions the check receives, in order.
        options: ``(keyword, notebook variable, default)`` passed to the check as keyword
            options, e.g. ``("kernel", "KERNEL", "softmax")``.
        forbidden: names of package functions that solve the part outright; a graded
            function that is one of them, or calls one, scores 0 for the part.
    """

    id: str
    title: str
    points: float
    check: Callable[..., CheckResult]
    functions: tuple[str, ...]
    options: tuple[tuple[str, str, object], ...] = ()
    forbidden: tuple[str, ...] = ()


@dataclass(frozen=True)
class Written:
    """A written question graded by the instructor (rubric in the instructor notebook)."""

    id: str
    title: str
    points: float


@dataclass(frozen=True)
class Assignment:
    """One assignment: its auto-graded parts and written questions.

    Attributes:
        key: ``"A1"``; slug: the notebook name without extension; title; hours: expected
        time; parts; written.
    """

    key: str
    slug: str
    title: str
    hours: str
    parts: tuple[Part, ...]
    written: tuple[Written, ...]

    @property
    def auto_points(self) -> float:
        return float(sum(p.points for p in self.parts))

    @property
    def written_points(self) -> float:
        return float(sum(w.points for w in self.written))

    @property
    def total_points(self) -> float:
        return self.auto_points + self.written_points

    def report_lines(self, results: Mapping[str, CheckResult]) -> list[str]:
        """A points table: every part (run or not) and the written questions."""
        lines = [f"{self.key} {self.title}"]
        got = 0.0
        for p in self.parts:
            r = results.get(p.id)
            if r is None or r.deferred:
                lines.append(f"  {p.id:7s} {p.title:42s}   -- / {p.points:g}  (not run yet)")
            else:
                got += r.points
                lines.append(f"  {p.id:7s} {p.title:42s} {r.points:5g} / {p.points:g}")
        for w in self.written:
            lines.append(f"  {w.id:7s} {w.title:42s}    ? / {w.points:g}  (graded by hand)")
        lines.append(f"  auto-graded: {got:g} / {self.auto_points:g}; written: "
                     f"{self.written_points:g}; total available: {self.total_points:g}")
        return lines
