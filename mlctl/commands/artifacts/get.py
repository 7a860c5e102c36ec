"""mlctl artifacts get JOB [PATH...] [-d DIR] [--run R]: download a run's files, resuming interrupted ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import click

from mlctl.cli import mlctl_command
from mlctl.commands.artifacts.common import (
    FILE_COLUMNS,
    file_rows,
    run_files,
    run_option,
    storage_of,
    user_option,
)


@dataclass
class Options:
    job: str
    paths: list[str] = field(default_factory=list)
    directory: str | None = None
    run: str | None = None
    output: str = "table"
    owner: str | None = None
    verbose: int = 0


def run(f, opts: Options) -> None:
    from mlctl.errors import NotFound, UsageError
    from mlctl.output import print_list
    from mlctl.storage import layout
    from mlctl.storage.transfer import Download, Downloader, Progress

    job = layout.check_job(opts.job)
    wanted = [layout.clean_path(p) for p in opts.paths]
    storage = storage_of(f, opts.owner)
    run_id = storage.pick_run(job, opts.run)
    objects = run_files(storage, job, run_id)
    keys, missing = layout.select([o["key"] for o in objects], wanted)
    if missing:
        raise NotFound(f"no {', '.join(missing)} in run {run_id} of job {job}",
                       hint=f"list its files with 'mlctl artifacts ls {job}'")
    chosen = set(keys)
    objects = [o for o in objects if o["key"] in chosen and not o["key"].endswith("/")]
    target = Path(opts.directory if opts.directory is not None else job)
    root = target.resolve()
    prefix = storage.run_prefix(job, run_id)
    items = []
    for o in objects:
        dest = (target / o["key"]).resolve()
        if root != dest and root not in dest.parents:  # a key with '..' must not write outside DIR
            raise UsageError(f"refusing {o['key']!r}: it would be written outside {target}")
        items.append(Download(prefix + o["key"], o["key"], o["size"], o["etag"], target / o["key"]))
    if not items:
        f.io.note(f"run {run_id} of job {job} has no files")
        return
    progress = Progress(f.io, "get", len(items), sum(i.size for i in items), verbose=opts.verbose)
    downloader = Downloader(storage.client, storage.bucket, storage.endpoint, progress, small=storage.small)
    with progress:
        downloader.run(items)
    if downloader.resumed:
        f.io.note(f"resumed {len(downloader.resumed)} interrupted download(s)")
    if opts.output in ("table", "wide"):
        f.io.note(f"downloaded {progress.summary()} to {target} (job {job}, run {run_id})")
    else:
        rows = file_rows(storage, job, run_id, objects)
        for row, item in zip(rows, items, strict=True):
            row["file"] = str(item.dest)
        print_list(f.io, rows, FILE_COLUMNS, opts.output, name=lambda r: r["file"])


@mlctl_command("get")
@click.argument("job")
@click.argument("paths", nargs=-1, metavar="[PATH...]")
@click.option("-d", "--dir", "directory", metavar="DIR", help="Where to write the files (default: ./JOB).")
@run_option
@user_option
@click.pass_obj
def command(f, job, paths, directory, run_id, owner):
    """Download a run's files (resumes an interrupted download).

    Files keep their paths inside the run; a PATH may name a file or a folder. A download is written to
    FILE.part and renamed only when complete and checked, so Ctrl-C never leaves a partial FILE; running the
    command again resumes it.

    \b
    mlctl artifacts get gan3d                       the latest run into ./gan3d/
    mlctl artifacts get gan3d model/ -d out         one folder into ./out/model/
    """
    run(f, Options(job=job, paths=list(paths), directory=directory, run=run_id, output=f.output,
                   verbose=f.config.get("verbose"), owner=owner))
