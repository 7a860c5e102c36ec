"""mlctl artifacts url JOB PATH [--expires 1h] [--run R]: a presigned GET URL for one file."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import click

from mlctl.cli import mlctl_command
from mlctl.commands.artifacts.common import run_option, storage_of, user_option


@dataclass
class Options:
    job: str
    path: str
    expires: str = "1h"
    run: str | None = None
    output: str = "table"
    owner: str | None = None


def run(f, opts: Options) -> None:
    from mlctl.output import print_object
    from mlctl.storage import layout

    job = layout.check_job(opts.job)
    path = layout.clean_path(opts.path)
    seconds = layout.parse_duration(opts.expires)
    storage = storage_of(f, opts.owner)
    run_id = storage.pick_run(job, opts.run)
    key = storage.run_prefix(job, run_id) + path
    head = storage.head(key, f"reading {path} of job {job}")
    url = storage.presign(key, seconds)
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)).replace(microsecond=0)
    if opts.output in ("table", "wide", "name"):
        f.io.out(url)
        if opts.output != "name":
            f.io.note(f"valid until {expires:%Y-%m-%dT%H:%M:%SZ} ({opts.expires}); anyone with the URL can read "
                      f"{path} ({head['size']} bytes)")
        return
    print_object(f.io, {"job": job, "run": run_id, "path": path, "size": head["size"], "url": url,
                        "expires": expires}, opts.output)


@mlctl_command("url")
@click.argument("job")
@click.argument("path")
@click.option("--expires", default="1h", show_default=True, metavar="DURATION",
              help="How long the URL works: 30s, 15m, 1h, 7d (at most 7d).")
@run_option
@user_option
@click.pass_obj
def command(f, job, path, expires, run_id, owner):
    """Print a presigned URL that fetches one file without credentials.

    \b
    curl -O "$(mlctl artifacts url gan3d model/generator.npz --expires 15m)"
    """
    run(f, Options(job=job, path=path, expires=expires, run=run_id, output=f.output, owner=owner))
