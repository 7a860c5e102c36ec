"""mlctl artifacts rm JOB [PATH...] [--run R]: delete files of a run, one run, or every run of a job."""

from __future__ import annotations

from dataclasses import dataclass, field

import click

from mlctl.cli import mlctl_command
from mlctl.commands.artifacts.common import FILE_COLUMNS, file_rows, run_files, run_option


@dataclass
class Options:
    job: str
    paths: list[str] = field(default_factory=list)
    run: str | None = None
    dry_run: str = "none"
    yes: bool = False
    output: str = "table"


def run(f, opts: Options) -> None:
    from mlctl.errors import NotFound
    from mlctl.output import print_list
    from mlctl.storage import layout

    job = layout.check_job(opts.job)
    wanted = [layout.clean_path(p) for p in opts.paths]
    storage = f.storage()
    if wanted or opts.run:
        runs = [storage.pick_run(job, opts.run)]
    else:
        runs = storage.runs(job)
        if not runs:
            raise layout.no_runs(job)
    rows = []
    for run_id in runs:
        objects = run_files(storage, job, run_id)
        keys, missing = layout.select([o["key"] for o in objects], wanted)
        if missing:
            raise NotFound(f"no {', '.join(missing)} in run {run_id} of job {job}")
        chosen = set(keys)
        rows += file_rows(storage, job, run_id, [o for o in objects if o["key"] in chosen])
    what = (f"{len(rows)} file(s) of run {runs[0]} of job {job}" if wanted or opts.run
            else f"every run of job {job} ({len(runs)} run(s), {len(rows)} file(s))")
    if opts.dry_run == "client":
        f.io.note(f"would delete {what} (dry run)")
    else:
        f.io.confirm(f"Delete {what}?", yes=opts.yes)
        keys = [storage.run_prefix(r["job"], r["run"]) + r["path"] for r in rows]
        storage.delete(keys, f"deleting {what}")
        f.io.note(f"deleted {what}")
    if opts.output not in ("table", "wide"):
        print_list(f.io, rows, FILE_COLUMNS, opts.output, name=lambda r: f"{job}/{r['run']}/{r['path']}")


@mlctl_command("rm")
@click.argument("job")
@click.argument("paths", nargs=-1, metavar="[PATH...]")
@run_option
@click.option("--dry-run", type=click.Choice(["none", "client"]), default="none", show_default=True,
              help="client: say what would be deleted, delete nothing.")
@click.pass_obj
def command(f, job, paths, run_id, dry_run):
    """Delete files, a run, or every run of a job.

    With PATHs: those files (or folders) of the latest run (or --run). With --run only: that run. With
    neither: every run of the job. Asks on a terminal; without one, needs --yes.
    """
    run(f, Options(job=job, paths=list(paths), run=run_id, dry_run=dry_run, yes=f.yes, output=f.output))
