"""What the artifacts verbs share: the --run option, a run's files, the one-line summaries."""

from __future__ import annotations

import click

from mlctl.output import Column

run_option = click.option("--run", "run_id", metavar="RUN", help="A run id (default: the job's latest run).")
user_option = click.option("--user", "owner", metavar="USER",
                           help="Read another user's outputs (S3 decides whether your account may).")


def storage_of(f, owner: str | None = None):
    """The user's Storage; with owner, pointed at that user's prefix (the S3 server enforces access)."""
    import copy

    storage = f.storage()
    if owner and owner != storage.user:
        storage = copy.copy(storage)  # the Factory's stays the logged-in user's
        storage.user = owner
        storage.recorded = None
    else:
        storage.recorded = lambda job: recorded_output(f, job)
    return storage


def recorded_output(f, job: str) -> tuple[str | None, str] | None:
    """(run id, output URL) that the job on the command's cluster recorded (annotations mlctl.io/run and
    mlctl.io/output-url), None when it is gone or unreadable: how a job whose spec names its own `output:`
    is found (docs/artifacts.md)."""
    from mlctl.commands.train.common import jobs_for, target
    from mlctl.errors import Forbidden, NotFound

    try:
        found = jobs_for(f, target(f)).get(job)
    except (NotFound, Forbidden):
        return None
    return _record_of(found)


def _record_of(job: dict) -> tuple[str | None, str] | None:
    """(run id, output URL) from a job's annotations mlctl.io/run and mlctl.io/output-url; None without a URL."""
    notes = (job.get("metadata") or {}).get("annotations") or {}
    url = notes.get("mlctl.io/output-url")
    return (notes.get("mlctl.io/run"), url) if url else None


def recorded_outputs(f) -> dict[str, tuple[str | None, str]]:
    """job -> (run id, output URL) for each of the user's jobs on the command's cluster that records an output
    URL; {} when the cluster cannot be read (the S3 listing is still worth showing)."""
    from mlctl.commands.train.common import jobs_for, target
    from mlctl.errors import MlctlError

    try:
        found = jobs_for(f, target(f)).list()
    except MlctlError as e:
        from mlctl import logs

        logs.info(__name__, "jobs with their own output not looked up: %s", e.message)
        return {}
    records = {job["metadata"]["name"]: _record_of(job) for job in found}
    return {name: record for name, record in records.items() if record}


FILE_COLUMNS = [
    Column("path", lambda o: o["path"], style="bold"),
    Column("size", lambda o: o["size"]),
    Column("modified", lambda o: o.get("modified")),
    Column("etag", lambda o: o.get("etag"), wide=True),
    Column("url", lambda o: o.get("url"), wide=True),
]


def file_rows(storage, job: str, run: str, objects: list[dict]) -> list[dict]:
    prefix = storage.run_prefix(job, run)
    return [{"job": job, "run": run, "path": o["key"], "size": o["size"], "modified": o.get("modified"),
             "etag": o.get("etag"), "url": storage.url(prefix + o["key"])} for o in objects]


def run_files(storage, job: str, run: str) -> list[dict]:
    return storage.objects(storage.run_prefix(job, run), f"listing run {run} of job {job}")
