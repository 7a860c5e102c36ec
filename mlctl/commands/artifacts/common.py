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
    return storage

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
