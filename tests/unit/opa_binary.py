"""The opa binary for tests that run the real policy: built by the sandbox's build table. Absent, such tests are
skipped, except under CI=true, where it is built (a missing binary must not turn into a green run)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.support import in_ci


def opa_binary() -> Path:
    from mlctl.sandbox import opa

    exe = opa.binary()
    if os.access(exe, os.X_OK):
        return exe
    if not in_ci():
        pytest.skip(f"opa is not built ({exe}); 'python -m mlctl.sandbox.build opa' builds it")
    return opa.build()
