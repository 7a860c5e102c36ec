"""mlctl artifacts ls [JOB[/PATH]] [--run R] [--runs]: jobs with outputs, a run's files, or a job's runs."""

from __future__ import annotations

from dataclasses import dataclass

import click

from mlctl.cli import mlctl_command
from mlctl.commands.artifacts.common import (
    FILE_COLUMNS,
    file_rows,
    recorded_outputs,
    run_files,
    run_option,
    storage_of,
    user_option,
)
from mlctl.output import Column, print_list


@dataclass
class Options:
    target: str | None = None
    run: str | None = None
    runs: bool = False
    output: str = "table"
    owner: str | None = None


JOB_COLUMNS = [
    Column("job", lambda j: j["job"], style="bold"),
    Column("runs", lambda j: j["runs"]),
    Column("latest", lambda j: j["latest"]),
    Column("submitted", lambda j: j["submitted"]),
    Column("url", lambda j: j["url"], wide=True),
]
RUN_COLUMNS = [
    Column("run", lambda r: r["run"], style="bold"),
    Column("submitted", lambda r: r["submitted"]),
    Column("latest", lambda r: r["latest"]),
    Column("url", lambda r: r["url"], wide=True),
]


def run(f, opts: Options) -> None:
    from mlctl.storage import layout

    storage = storage_of(f, opts.owner)
    if not opts.target:
        if opts.run or opts.runs:
            raise click.UsageError("--run and --runs need a JOB")
        rows = []
        for job in storage.jobs():
            runs = storage.runs(job)
            if runs:
                rows.append({"job": job, "runs": len(runs), "latest": runs[-1],
                             "submitted": layout.run_time(runs[-1]),
                             "url": storage.url(layout.job_prefix(storage.s3, storage.user, job))})
        # jobs whose spec named its own output wrote outside the runs layout: the cluster's record says where
        listed = {r["job"] for r in rows}
        records = recorded_outputs(f) if storage.recorded else {}
        for job, record in sorted(records.items()):
            run_id = None if job in listed else storage.recorded_run(job, record)
            if run_id is None:
                continue
            prefix = storage.run_prefix(job, run_id)
            if storage.has_objects(prefix, f"listing the outputs of job {job}"):
                rows.append({"job": job, "runs": 1, "latest": run_id, "submitted": layout.run_time(run_id),
                             "url": storage.url(prefix)})
        rows.sort(key=lambda r: r["job"])
        print_list(f.io, rows, JOB_COLUMNS, opts.output, name=lambda j: j["job"],
                   empty="No job outputs found.")
        return
    job, path = layout.split_job_path(opts.target)
    if opts.runs:
        runs = storage.runs(job)
        if not runs:
            raise layout.no_runs(job)
        rows = [{"job": job, "run": r, "submitted": layout.run_time(r), "latest": r == runs[-1],
                 "url": storage.url(storage.run_prefix(job, r))} for r in reversed(runs)]
        print_list(f.io, rows, RUN_COLUMNS, opts.output, name=lambda r: f"{job}/{r['run']}")
        return
    run_id = storage.pick_run(job, opts.run)
    objects = run_files(storage, job, run_id)
    if path:
        keys, missing = layout.select([o["key"] for o in objects], [path])
        if missing:
            from mlctl.errors import NotFound

            raise NotFound(f"no {path} in run {run_id} of job {job}", hint=f"list its files with 'mlctl artifacts ls {job}'")
        chosen = set(keys)
        objects = [o for o in objects if o["key"] in chosen]
    if opts.output in ("table", "wide"):
        f.io.note(f"job {job}, run {run_id}: {len(objects)} file(s)")
    print_list(f.io, file_rows(storage, job, run_id, objects), FILE_COLUMNS, opts.output,
               name=lambda o: f"{job}/{o['path']}", empty=f"Run {run_id} of job {job} has no files.")


@mlctl_command("ls")
@click.argument("target", required=False, metavar="[JOB[/PATH]]")
@run_option
@user_option
@click.option("--runs", is_flag=True, help="List the job's runs instead of a run's files.")
@click.pass_obj
def command(f, target, run_id, owner, runs):
    """List jobs with outputs, a run's files, or a job's runs.

    \b
    mlctl artifacts ls                      jobs that have outputs, with their latest run
    mlctl artifacts ls gan3d                the files of gan3d's latest run
    mlctl artifacts ls gan3d/epoch-3 --run 20261129T080000Z-3f9a1c
    mlctl artifacts ls gan3d --runs         every run of gan3d, newest first
    """
    run(f, Options(target=target, run=run_id, runs=runs, output=f.output, owner=owner))


alias = mlctl_command("list", hidden=True)(click.argument("target", required=False)(run_option(user_option(
    click.option("--runs", is_flag=True)(click.pass_obj(
        lambda f, target, run_id, owner, runs: run(f, Options(target=target, run=run_id, runs=runs,
                                                               output=f.output, owner=owner))))))))
alias.help = "Alias of ls."
