"""Shared fixtures."""

from __future__ import annotations

import pytest

from attnlab._threads import limit_threads


@pytest.fixture
def one_thread():
    """Run a test on one torch thread (tiny models: extra threads only add overhead);
    the previous setting is restored afterwards."""
    with limit_threads(1):
        yield
