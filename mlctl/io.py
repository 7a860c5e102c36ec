"""Streams and the decisions that depend on them: TTY or not, colour or not, may we prompt.

stdout carries data only; progress, notes and warnings go to stderr.
"""

from __future__ import annotations

import io as _io
import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing: `mlctl token` and --version need none
if TYPE_CHECKING:
    from typing import TextIO


class IO:
    def __init__(
        self,
        stdin: TextIO,
        stdout: TextIO,
        stderr: TextIO,
        *,
        stdin_tty: bool,
        stdout_tty: bool,
        stderr_tty: bool,
        no_color: bool = False,
    ):
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.stdin_tty, self.stdout_tty, self.stderr_tty = stdin_tty, stdout_tty, stderr_tty
        self._no_color = no_color
        self._console = None
        self._err_console = None

    @classmethod
    def system(cls) -> IO:
        def tty(stream) -> bool:
            try:
                return stream.isatty()
            except (AttributeError, ValueError):
                return False

        return cls(sys.stdin, sys.stdout, sys.stderr, stdin_tty=tty(sys.stdin),
                   stdout_tty=tty(sys.stdout), stderr_tty=tty(sys.stderr))

    @classmethod
    def test(cls, stdin: str = "", *, tty: bool = False) -> IO:
        """Streams in memory; tty=True pretends all three are terminals."""
        return cls(_io.StringIO(stdin), _io.StringIO(), _io.StringIO(),
                   stdin_tty=tty, stdout_tty=tty, stderr_tty=tty)

    def disable_color(self) -> None:
        self._no_color = True

    @property
    def color(self) -> bool:
        """Colour on stdout: only on a terminal, and never with NO_COLOR or --no-color."""
        if self._no_color or os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
            return False
        return self.stdout_tty

    @property
    def can_prompt(self) -> bool:
        return self.stdin_tty and self.stderr_tty

    def out(self, text: str = "") -> None:
        self.stdout.write(text + "\n")

    def err(self, text: str = "") -> None:
        self.stderr.write(text + "\n")

    def note(self, text: str) -> None:
        """A status line for people ("notebook/nb1 created"): stderr, so pipes see only data."""
        self.err(text)

    def warn(self, text: str) -> None:
        self.err(f"warning: {text}")

    @property
    def console(self):
        """A rich Console on stdout, built on first use (rich is not imported by plain output)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.stdout, force_terminal=self.stdout_tty,
                                    no_color=not self.color, highlight=False, soft_wrap=False)
        return self._console

    @property
    def err_console(self):
        if self._err_console is None:
            from rich.console import Console

            color = self.stderr_tty and not (self._no_color or os.environ.get("NO_COLOR"))
            self._err_console = Console(file=self.stderr, force_terminal=self.stderr_tty,
                                        no_color=not color, highlight=False)
        return self._err_console

    def confirm(self, question: str, *, yes: bool) -> None:
        """Ask before something destructive: --yes skips; without a terminal, refuse instead of guessing."""
        from mlctl.errors import UsageError

        if yes:
            return
        if not self.can_prompt:
            raise UsageError(f"{question.rstrip('?')}: refusing without confirmation",
                             hint="pass --yes to confirm when not running on a terminal")
        self.stderr.write(f"{question} [y/N]: ")
        self.stderr.flush()
        answer = self.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            from mlctl.errors import MlctlError

            raise MlctlError("aborted", exit_code=1)
