"""Entry point: runs the root command and turns every outcome into a DESIGN.md exit code.

This is the only place that decides exit codes and the only sys.exit.
"""

from __future__ import annotations

import contextlib
import os
import sys

from mlctl import errors
from mlctl.io import IO


def _setup_logging(io: IO, debug: bool, verbose: int) -> None:
    """Logs go to stderr, redacted. Without -v/--debug nothing is set up (logging costs start-up time):
    Python's last-resort handler prints library warnings, and the clients mlctl builds quiet their own
    retry chatter (kube/client.py)."""
    if not (debug or verbose):
        return
    import logging

    from mlctl.redact import RedactingFilter

    level = logging.DEBUG if debug else logging.INFO
    handler = logging.StreamHandler(io.stderr)
    handler.addFilter(RedactingFilter())
    if not debug:
        handler.addFilter(lambda r: r.levelno >= logging.ERROR or not r.name.startswith(("urllib3", "kubernetes")))
    handler.setFormatter(logging.Formatter("debug: %(name)s: %(message)s" if debug else "%(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_mlctl", False):
            root.removeHandler(old)
    handler._mlctl = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("urllib3", "kubernetes", "botocore", "boto3", "keycloak"):
        logging.getLogger(noisy).setLevel(logging.NOTSET if debug else logging.ERROR)


def _print_error(io: IO, message: str, hint: str | None = None) -> None:
    from mlctl.redact import redact

    io.err(f"error: {redact(message)}")
    if hint:
        io.err(f"hint: {redact(hint)}")


def run(args: list[str], io: IO | None = None, env: dict[str, str] | None = None, *, fast: bool = True) -> int:
    """Run mlctl with args; return the exit code. Tests call this with IO.test(). A plain `train SPEC` is
    parsed without click (fast=False forces the command tree, which answers it the same way)."""
    from mlctl.factory import Factory

    io = io or IO.system()
    factory = Factory(io, env)
    environ = factory.env
    debug = "--debug" in args or environ.get("MLCTL_DEBUG", "").lower() in ("1", "true", "yes")
    verbose = sum(a.count("v") for a in args if a.startswith("-v") and set(a[1:]) == {"v"}) + (
        1 if "--verbose" in args else 0)
    call = _fast_train(factory, args) if fast and not (debug or verbose) else None
    if call is None:
        _setup_logging(io, debug, verbose)

        def call():
            from mlctl.cli import cli

            cli.main(args=args, prog_name="mlctl", standalone_mode=False, obj=factory)
    return _outcome(io, debug, call)


def _fast_train(factory, args: list[str]):
    """`mlctl train SPEC [flags]`, the most frequent call that talks to a server, as a call to submit's run
    without loading click and the command tree (about 30 ms); None when submit.parse_fast does not read args
    exactly as click does."""
    if args[:1] != ["train"]:
        return None
    from mlctl.commands.train import submit

    parsed = submit.parse_fast(args[1:])
    if parsed is None:
        return None
    flags, opts = parsed
    factory.flags.update(flags)
    if flags.get("no_color"):
        factory.io.disable_color()

    def call():
        submit.run(factory, opts._replace(output=factory.output))

    return call


def _outcome(io: IO, debug: bool, call) -> int:
    """Run call and turn what it raised into an exit code and a one-line message (click's exceptions only
    when click was loaded: the fast path never loads it)."""
    redirect = (contextlib.redirect_stdout(io.stdout), contextlib.redirect_stderr(io.stderr))
    try:
        with redirect[0], redirect[1]:
            call()
        return errors.OK
    except KeyboardInterrupt:
        io.err("interrupted")
        return errors.INTERRUPTED
    except errors.MlctlError as e:
        if debug:
            _print_traceback(io)
        _print_error(io, e.message, e.hint)
        return e.exit_code
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, as other tools do.
        with contextlib.suppress(Exception):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return errors.OK
    except Exception as e:  # noqa: BLE001 - the last line of defence: no traceback without --debug
        code = _click_outcome(io, e)
        if code is not None:
            return code
        if debug:
            _print_traceback(io)
        _print_error(io, f"unexpected {type(e).__name__}: {e}".splitlines()[0],
                     "re-run with --debug for details, and report it if it persists")
        return errors.UNEXPECTED


def _click_outcome(io: IO, e: Exception) -> int | None:
    click = sys.modules.get("click")
    if click is None:
        return None
    if isinstance(e, click.exceptions.Exit):
        return e.exit_code
    if isinstance(e, click.exceptions.NoArgsIsHelpError):
        io.err(e.ctx.get_help() if e.ctx else str(e))
        return errors.USAGE
    if isinstance(e, click.UsageError):
        cmd = e.ctx.command_path if e.ctx else "mlctl"
        _print_error(io, e.format_message(), f"run '{cmd} --help' for usage")
        return errors.USAGE
    if isinstance(e, click.ClickException):
        _print_error(io, e.format_message())
        return errors.USAGE if e.exit_code == 2 else errors.UNEXPECTED
    if isinstance(e, click.Abort):
        io.err("interrupted")
        return errors.INTERRUPTED
    return None


def _print_traceback(io: IO) -> None:
    import traceback

    from mlctl.redact import redact

    io.err(redact(traceback.format_exc()).rstrip())


def _help_width() -> int:
    """The width click's help formatter takes here (shutil.get_terminal_size's columns, at most the root's
    max_content_width 100, minus 2), without importing shutil or click."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return max(min(columns or 80, 100) - 2, 50)


def _fast(args: list[str]) -> int | None:
    """Answer the most frequent calls without loading the command tree: `--version`, `--help` (from the
    renderings docgen keeps in mlctl/data/help/, for the usual widths), and `token` (the kubectl exec plugin,
    run on every kubectl call) when kubectl passes --platform and --cluster and the cached token is fresh.
    None: anything else (no cached token, expired, a flag it does not know, another width), which the full
    command tree answers with the same output and exit codes."""
    if args == ["--version"]:
        from mlctl import __version__

        sys.stdout.write(f"mlctl {__version__}\n")
        return errors.OK
    if args in (["--help"], ["-h"]):
        try:
            with open(os.path.join(os.path.dirname(__file__), "data", "help", f"{_help_width()}.txt")) as text:
                help_text = text.read()
        except OSError:
            return None
        return _write(help_text)
    if not args or args[0] != "token" or os.environ.get("MLCTL_DEBUG"):
        return None
    flags: dict[str, str] = {}
    rest = iter(args[1:])
    for arg in rest:
        name, sep, value = arg.partition("=")
        if name not in ("--cluster", "--platform") or name in flags:
            return None
        flags[name] = value if sep else next(rest, "")
    cluster, platform = flags.get("--cluster"), flags.get("--platform")
    if not cluster or not platform or "/" in platform or platform.endswith((".yaml", ".yml", ".json")):
        return None
    from mlctl.auth.cache import TokenCache, exec_credential

    entry = TokenCache(platform).fresh_cluster_token(cluster)
    if not entry:
        return None
    import json

    return _write(json.dumps(exec_credential(entry["token"], entry["expires_at"])) + "\n")


def _write(text: str) -> int:
    """Print a fast-path answer; a reader that went away (| head) ends it quietly, as on the full path."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        with contextlib.suppress(Exception):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return errors.OK


def main() -> None:
    args = sys.argv[1:]
    code = _fast(args)
    _exit(run(args) if code is None else code)


def _exit(code: int) -> None:
    """End the process without the interpreter's teardown, which frees every module and object one by one:
    about 30 ms after a submission, for nothing, since the kernel reclaims memory, sockets and files at once
    (docs/cli.md). What teardown does that matters is done first: the atexit handlers (logging's flush, the
    removal of the kube layer's temporary certificate folder), then stdout and stderr are flushed. A live
    non-daemon thread, which teardown would wait for, takes the normal exit."""
    threading = sys.modules.get("threading")
    if threading is not None and any(t is not threading.main_thread() and not t.daemon and t.is_alive()
                                     for t in threading.enumerate()):
        sys.exit(code)
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (| head) or stream: nothing more can be written
            pass
    os._exit(code)


if __name__ == "__main__":
    main()
