"""Where a job's outputs live in S3, and the small parsers the artifacts verbs share (pure functions).

Layout (docs/artifacts.md): `s3://<outputs bucket>/<user prefix><job>/<run>/<path>`, where the user prefix
is the platform document's `s3.prefix` template (`{user}/`) and a run id is chosen at submission: a UTC
timestamp and a short random id, `20261129T080000Z-3f9a1c`, so run ids sort by time and a job submitted
again writes beside its last run instead of over it.
"""

from __future__ import annotations

import datetime as dt
import os
import re

from mlctl.errors import NotFound, UsageError

DEFAULT_PREFIX = "{user}/"
RUN_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")
_JOB = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_PRESIGN_SECONDS = 7 * 86400  # SigV4's limit for a presigned URL


def new_run_id(now: dt.datetime | None = None, token: str | None = None) -> str:
    """A run id: UTC timestamp to the second + 6 hex digits (two submissions in one second differ)."""
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{token or os.urandom(3).hex()}"


def is_run_id(text: str) -> bool:
    return bool(RUN_ID.match(text))


def run_time(run: str) -> dt.datetime | None:
    """When the run was submitted, from its id."""
    if not is_run_id(run):
        return None
    return dt.datetime.strptime(run[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)


def latest(runs: list[str]) -> str | None:
    """The newest run id (ids sort by time); ids that are not run ids are ignored."""
    valid = sorted(r for r in runs if is_run_id(r))
    return valid[-1] if valid else None


def outputs_bucket(s3: dict) -> str:
    bucket = (s3.get("buckets") or {}).get("outputs") if isinstance(s3.get("buckets"), dict) else None
    if not bucket:
        raise UsageError("the platform document's s3 section names no outputs bucket (s3.buckets.outputs)",
                         hint="ask the platform admins to publish it")
    return str(bucket)


def user_prefix(s3: dict, user: str) -> str:
    prefix = str(s3.get("prefix") or DEFAULT_PREFIX).format(user=user)
    return prefix if prefix.endswith("/") else prefix + "/"


def check_job(job: str) -> str:
    if not _JOB.match(job):
        raise UsageError(f"{job!r} is not a job name (lower-case letters, digits, '-' and '.')",
                         hint="list jobs with outputs with 'mlctl artifacts ls'")
    return job


def job_prefix(s3: dict, user: str, job: str) -> str:
    return f"{user_prefix(s3, user)}{check_job(job)}/"


def run_prefix(s3: dict, user: str, job: str, run: str) -> str:
    if not is_run_id(run):
        raise UsageError(f"{run!r} is not a run id (like 20261129T080000Z-3f9a1c)",
                         hint=f"list the runs with 'mlctl artifacts ls {job} --runs'")
    return f"{job_prefix(s3, user, job)}{run}/"


def run_url(s3: dict, user: str, job: str, run: str) -> str:
    """The OUTPUT_URL a job's run is told: s3://<outputs>/<user>/<job>/<run>/."""
    return f"s3://{outputs_bucket(s3)}/{run_prefix(s3, user, job, run)}"


def recorded_prefix(bucket: str, job_prefix_: str, url: str | None) -> str | None:
    """Where a job wrote when its spec named its own `output:` (the URL its job records): the key prefix in
    the outputs bucket, or None when the URL is the layout's own (or unknown). A URL in another bucket is a
    NotFound that names it: mlctl artifacts reads only the outputs bucket."""
    if not url:
        return None
    other, key = parse_s3_url(url)
    key = key if key.endswith("/") or not key else key + "/"
    if other != bucket:
        raise NotFound(f"the job wrote its outputs to {url}, outside the outputs bucket {bucket}",
                       hint="its spec names that output; read it there with an S3 client")
    if key.startswith(job_prefix_) and key != job_prefix_:
        return None  # the layout's own run folder: the runs listing finds it
    return key  # elsewhere, or the job's folder itself (`output: s3://<outputs>/<user>/<job>/`, no run folder)


def split_job_path(arg: str) -> tuple[str, str]:
    """`JOB[/PATH]` -> (job, path inside the run); path may be empty."""
    job, _, path = arg.strip().partition("/")
    return check_job(job), clean_path(path) if path else ""


def clean_path(path: str) -> str:
    """A path inside a run: no leading '/', no '.' or '..' parts (a key must not escape its run)."""
    keep_dir = path.endswith("/")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UsageError(f"{path!r}: '..' is not allowed in an artifact path")
    text = "/".join(parts)
    return text + "/" if keep_dir and text else text


def select(keys: list[str], wanted: list[str]) -> tuple[list[str], list[str]]:
    """The keys (relative to a run) that the wanted paths name: a path names itself and, as a folder,
    everything under it. Returns (selected keys in order, wanted paths that matched nothing)."""
    if not wanted:
        return list(keys), []
    chosen: dict[str, None] = {}
    missing = []
    for w in wanted:
        folder = w.rstrip("/") + "/"
        hits = [k for k in keys if k == w.rstrip("/") or k.startswith(folder)]
        if not hits:
            missing.append(w)
        chosen.update(dict.fromkeys(hits))
    return [k for k in keys if k in chosen], missing


def parse_duration(text: str) -> int:
    """'90', '2s', '30m', '1h', '7d' -> seconds; a presigned URL lives between 1 s and 7 days."""
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise UsageError(f"--expires {text!r}: not a duration", hint="use a number with s, m, h or d: 30m, 1h, 7d")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if not 1 <= seconds <= MAX_PRESIGN_SECONDS:
        raise UsageError(f"--expires {text!r}: must be between 1s and 7d (S3's limit for presigned URLs)")
    return seconds


def parse_s3_url(url: str) -> tuple[str, str]:
    if not url.startswith("s3://"):
        raise UsageError(f"{url!r} is not an s3:// URL")
    bucket, _, key = url[5:].partition("/")
    if not bucket:
        raise UsageError(f"{url!r} names no bucket")
    return bucket, key


def no_runs(job: str) -> NotFound:
    return NotFound(f"job {job!r} has no outputs in S3",
                    hint="'mlctl artifacts ls' lists the jobs that have outputs")
