"""What every bench does first: compile mlctl's bytecode, as a pip-installed mlctl has it. Without this, an
environment with PYTHONDONTWRITEBYTECODE (or a read-only checkout) recompiles every module mlctl imports on
every run, and the benches would time the compiler instead of mlctl."""

from __future__ import annotations

import compileall
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mlctl"


def compile_package() -> None:
    if not compileall.compile_dir(str(PACKAGE), quiet=1, force=False):
        raise SystemExit("compiling mlctl's bytecode failed")
