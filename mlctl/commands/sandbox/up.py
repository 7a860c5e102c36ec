"""mlctl sandbox up."""

from __future__ import annotations

import time
from dataclasses import dataclass

import click

from mlctl.cli import mlctl_command


@dataclass
class Options:
    output: str


def register_platform(f, platform_file) -> None:
    """Store the sandbox's platform document as profile 'sandbox'; make it current if none is."""
    import shutil

    target = f.config.platform_path("sandbox")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(platform_file, target)
    if not f.config.file.get("platform"):
        f.config.file["platform"] = "sandbox"
        f.config.save()


def run(f, opts: Options) -> None:
    from mlctl.errors import Unavailable
    from mlctl.sandbox import core, runner
    from mlctl.sandbox.procs import SandboxError

    started = time.monotonic()
    f.io.note("starting the sandbox (the first run builds the servers from source: allow 20-30 minutes)")
    try:
        info = runner.up(core.state_dir())
    except SandboxError as e:
        raise Unavailable(f"sandbox did not start: {e}",
                          hint="see the logs under 'mlctl sandbox status' and retry 'mlctl sandbox up'") from e
    env = runner.env(core.state_dir())
    register_platform(f, env["MLCTL_PLATFORM_FILE"])
    if opts.output in ("json", "yaml"):
        from mlctl.output import print_object

        print_object(f.io, info, opts.output)
    f.io.note(f"sandbox is up in {time.monotonic() - started:.1f} s; platform 'sandbox' configured")
    f.io.note("admin access: eval \"$(mlctl sandbox env)\" && kubectl --context sandbox-local get nodes")


@mlctl_command("up")
@click.pass_obj
def command(f):
    """Build (once) and start the sandbox; idempotent."""
    run(f, Options(output=f.output))
