"""mlctl artifacts put JOB PATH... [--run R] [--to DIR]: upload files (folders recursively) into a job's run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import click

from mlctl.cli import mlctl_command
from mlctl.commands.artifacts.common import run_option


@dataclass
class Options:
    job: str
    paths: list[str] = field(default_factory=list)
    run: str | None = None
    to: str = ""
    output: str = "table"
    verbose: int = 0


def local_files(paths: list[str]) -> list[tuple[Path, str]]:
    """(file, path inside the run) for each argument: a file by its name, a folder's files under its name."""
    from mlctl.errors import NotFound

    out: list[tuple[Path, str]] = []
    for arg in paths:
        p = Path(arg)
        if p.is_file():
            out.append((p, p.name))
        elif p.is_dir():
            base = p.resolve().name
            out += [(f, f"{base}/{f.relative_to(p).as_posix()}") for f in sorted(p.rglob("*")) if f.is_file()]
        else:
            raise NotFound(f"{arg}: no such file or directory")
    return out


def run(f, opts: Options) -> None:
    from mlctl.output import Column, print_list
    from mlctl.storage import layout
    from mlctl.storage.transfer import Progress, Upload, Uploader

    job = layout.check_job(opts.job)
    files = local_files(opts.paths)
    to = layout.clean_path(opts.to).rstrip("/")
    storage = f.storage()
    if opts.run:
        run_id = storage.pick_run(job, opts.run)
    else:
        runs = storage.runs(job)
        run_id = runs[-1] if runs else layout.new_run_id()
        if not runs:
            f.io.note(f"job {job} has no run yet: starting run {run_id}")
    prefix = storage.run_prefix(job, run_id)
    items = [Upload(src, prefix + (f"{to}/{name}" if to else name), f"{to}/{name}" if to else name,
                    src.stat().st_size) for src, name in files]
    progress = Progress(f.io, "put", len(items), sum(i.size for i in items), verbose=opts.verbose)
    with progress:
        Uploader(storage.client, storage.bucket, storage.endpoint, progress, small=storage.small).run(items)
    if opts.output in ("table", "wide"):
        f.io.note(f"uploaded {progress.summary()} to job {job}, run {run_id}")
        return
    rows = [{"job": job, "run": run_id, "path": i.name, "size": i.size, "url": storage.url(i.key)} for i in items]
    print_list(f.io, rows, [Column("path", lambda r: r["path"]), Column("size", lambda r: r["size"])],
               opts.output, name=lambda r: f"{job}/{r['path']}")


@mlctl_command("put")
@click.argument("job")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@run_option
@click.option("--to", default="", metavar="DIR", help="A folder inside the run to put the files in.")
@click.pass_obj
def command(f, job, paths, run_id, to):
    """Upload files into a job's run.

    Files go to the job's latest run (a new run when it has none) under their own names; a folder's files
    keep their paths under the folder's name. Large files are uploaded in parallel parts.

    \b
    mlctl artifacts put gan3d notes.md plots/
    """
    run(f, Options(job=job, paths=list(paths), run=run_id, to=to, output=f.output,
                   verbose=f.config.get("verbose")))
