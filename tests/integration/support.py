"""What integration tests share besides fixtures: the one CI-aware skip, and polling for a condition."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def unavailable(reason: str):
    """Skip the test because something it needs cannot run here; under CI=true, fail it instead."""
    if in_ci():
        pytest.fail(f"unavailable under CI: {reason}", pytrace=False)
    pytest.skip(f"unavailable: {reason}")


def wait_for(check: Callable[[], object], timeout: float, what: str, interval: float = 0.25):
    """Poll check until it returns something truthy and return that; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})", pytrace=False)
