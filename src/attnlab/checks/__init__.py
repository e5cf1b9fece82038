"""Automatic checks for the course assignments (A1-A3) and bulk grading.

In a notebook::

    from attnlab.checks import a1
    a1.check_group_soft_threshold(group_soft_threshold)   # prints feedback, returns a result

Every check calls the student's function on fresh, randomized inputs and compares the output
with values from the package's public functions, closed forms, stored values or properties
(the package ships no solution of the assignments); it never looks at values the student
computed. Bulk grading of a folder of submitted notebooks, each in a sandbox, scored from
outside the notebook's process: ``python -m attnlab.checks.grade --help``.
"""

from . import a1, a2, a3
from .core import CheckResult, Test, report, reset, results

__all__ = [
    "ASSIGNMENTS", "CheckResult", "Test", "a1", "a2", "a3", "report", "reset", "results",
]

ASSIGNMENTS = {a.key: a for a in (a1.ASSIGNMENT, a2.ASSIGNMENT, a3.ASSIGNMENT)}
