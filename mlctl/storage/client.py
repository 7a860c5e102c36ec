"""The S3 client: built from the platform document's `s3` section and a user's credentials, with timeouts,
retries and a connection pool sized for the transfer threads; S3 errors become mlctl errors here.

Credentials are the user's Secret `mlctl-s3` (keys AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) in their
namespace, read with their own token (docs/storage.md). They are held in memory only: never printed,
logged or written.
"""

from __future__ import annotations

import base64
import contextlib
from dataclasses import dataclass, field

from mlctl.errors import AuthError, Forbidden, MlctlError, NotFound, Unavailable, UsageError
from mlctl.storage import layout

SECRET_NAME = "mlctl-s3"
SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
CONNECT_TIMEOUT = 3.0  # seconds; with READ_TIMEOUT and MAX_ATTEMPTS a hung server fails within ~12 s
READ_TIMEOUT = 5.0
MAX_ATTEMPTS = 2
POOL_SIZE = 64  # connections shared by the transfer threads (botocore's default of 10 would serialize them)

_FORBIDDEN = {"AccessDenied", "AllAccessDisabled", "403", "Forbidden"}
_NOT_FOUND = {"NoSuchKey", "NoSuchBucket", "NoSuchUpload", "404", "NotFound"}
_AUTH = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str = field(repr=False)

    def __repr__(self) -> str:  # a traceback or a log of this object shows no secret
        return f"Credentials(access_key={self.access_key!r}, secret_key=<redacted>)"


def section(platform) -> dict:
    """The platform document's s3 section; NotFound when the platform has no S3."""
    s3 = platform.section("s3")
    if not s3 or not s3.get("endpoint"):
        raise NotFound(f"platform {platform.name} has no S3 (no s3.endpoint in its platform document)",
                       hint="ask the platform admins to publish the s3 section")
    return s3


def credentials_from_secret(secret: dict, namespace: str, cluster: str) -> Credentials:
    """The two keys of a Secret object (base64 data, or stringData)."""
    data = secret.get("data") or {}
    values = {}
    for key in SECRET_KEYS:
        if key in data:
            try:
                values[key] = base64.b64decode(data[key]).decode()
            except (ValueError, UnicodeDecodeError):
                values[key] = ""
        else:
            values[key] = str((secret.get("stringData") or {}).get(key) or "")
    missing = [k for k in SECRET_KEYS if not values[k]]
    if missing:
        raise AuthError(f"Secret {SECRET_NAME} in namespace {namespace} on cluster {cluster} lacks {', '.join(missing)}",
                        hint="ask the platform admins to re-provision your S3 credentials")
    return Credentials(values["AWS_ACCESS_KEY_ID"], values["AWS_SECRET_ACCESS_KEY"])


def read_credentials(kube, namespace: str, cluster: str) -> Credentials:
    """The user's S3 credentials from Secret mlctl-s3 in their namespace, read with their own token."""
    try:
        secret = kube.get("Secret", SECRET_NAME, namespace, what=f"reading Secret {SECRET_NAME}")
    except NotFound as e:
        raise NotFound(f"no S3 credentials: Secret {SECRET_NAME} not found in namespace {namespace} on cluster {cluster}",
                       hint="the platform admins provision it (in the sandbox: 'mlctl sandbox s3-secrets')") from e
    return credentials_from_secret(secret, namespace, cluster)


def ca_file(platform, s3: dict, env=None) -> str | None:
    data = s3.get("certificateAuthorityData")
    if not data:
        return None
    from mlctl.paths import cached_ca_file

    return str(cached_ca_file(f"s3-{platform.name}", data, env))


def make_client(s3: dict, creds: Credentials, *, verify: str | bool | None = None, pool: int = POOL_SIZE):
    """A botocore S3 client (thread-safe; share one) for the endpoint, with mlctl's timeouts and retries."""
    import botocore.session
    from botocore.config import Config

    session = botocore.session.Session()
    config = Config(
        region_name=str(s3.get("region") or "us-east-1"), signature_version="s3v4",
        s3={"addressing_style": "path"}, connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT,
        retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS}, max_pool_connections=pool,
        # a streamed (aws-chunked) body is cut off by a server that refuses it early (docs/storage.md)
        request_checksum_calculation="when_required", response_checksum_validation="when_required",
        tcp_keepalive=True,
    )
    return session.create_client("s3", endpoint_url=str(s3["endpoint"]), verify=verify,
                                 aws_access_key_id=creds.access_key, aws_secret_access_key=creds.secret_key,
                                 config=config)


def translate(e: Exception, what: str, endpoint: str = "S3") -> MlctlError:
    """A botocore exception as an mlctl error (one line, no credentials)."""
    from botocore import exceptions as bx

    if isinstance(e, bx.ClientError):
        err = e.response.get("Error", {}) or {}
        code = str(err.get("Code") or e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or "")
        if code in _FORBIDDEN:
            return Forbidden(f"S3 refused {what}: access denied",
                             hint="your S3 account reaches only your own prefix of the outputs bucket")
        if code in _NOT_FOUND:
            return NotFound(f"{what}: not found in S3 ({code})")
        if code in _AUTH:
            return AuthError(f"S3 did not accept your credentials for {what} ({code})",
                             hint="ask the platform admins to re-provision Secret mlctl-s3")
        if code in ("PreconditionFailed", "412"):
            return MlctlError(f"{what}: the object changed in S3 during the transfer", hint="run the command again")
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(status, int) and status >= 500:
            return Unavailable(f"S3 at {endpoint} failed {what}: {code or status}", hint="retry later")
        return MlctlError(f"S3 error during {what}: {code} {err.get('Message') or ''}".rstrip())
    if isinstance(e, (bx.ConnectTimeoutError, bx.ReadTimeoutError)):
        return Unavailable(f"S3 at {endpoint} timed out during {what}",
                           hint="the S3 server is not answering; retry later or ask the platform admins")
    if isinstance(e, (bx.EndpointConnectionError, bx.ConnectionClosedError, bx.SSLError,
                      bx.HTTPClientError, bx.ConnectionError)):
        return Unavailable(f"S3 at {endpoint} is unavailable during {what} ({type(e).__name__})",
                           hint="check that the platform's S3 server is up; retry later")
    if isinstance(e, bx.NoCredentialsError):
        return AuthError("no S3 credentials", hint="log in with 'mlctl login'")
    if isinstance(e, bx.ParamValidationError):
        return UsageError(f"{what}: {e}".splitlines()[0])
    if isinstance(e, bx.BotoCoreError):
        return MlctlError(f"S3 error during {what}: {type(e).__name__}")
    if isinstance(e, (TimeoutError, ConnectionError)):
        return Unavailable(f"S3 at {endpoint} is unavailable during {what} ({type(e).__name__})")
    raise e


@contextlib.contextmanager
def s3_errors(what: str, endpoint: str = "S3"):
    """Translate botocore errors raised inside into mlctl errors (MlctlErrors pass through)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (ClientError, BotoCoreError, TimeoutError, ConnectionError) as e:
        raise translate(e, what, endpoint) from None


class Storage:
    """One user's view of the outputs bucket: jobs, runs and the objects of a run."""

    def __init__(self, client, s3: dict, user: str):
        self.client = client
        self.s3 = s3
        self.user = user
        self.bucket = layout.outputs_bucket(s3)
        self.endpoint = str(s3.get("endpoint"))
        # job -> (run id, output URL) as the cluster recorded it, for jobs whose spec names its own output
        # (set by the artifacts verbs; None: only the layout is looked at)
        self.recorded = None
        self._outside: dict[tuple[str, str], str] = {}
        self.small = None  # the lean client for small objects (make_lean), when for_user made this Storage

    def errors(self, what: str):
        return s3_errors(what, self.endpoint)

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _prefixes(self, prefix: str, what: str) -> list[str]:
        names: list[str] = []
        with self.errors(what):
            for page in self.client.get_paginator("list_objects_v2").paginate(
                    Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
                names += [p["Prefix"][len(prefix):].rstrip("/") for p in page.get("CommonPrefixes") or []]
        return names

    def jobs(self) -> list[str]:
        """Names of the user's jobs that have outputs."""
        return sorted(self._prefixes(layout.user_prefix(self.s3, self.user), "listing your jobs"))

    def runs(self, job: str) -> list[str]:
        """The job's run ids, oldest first."""
        names = self._prefixes(layout.job_prefix(self.s3, self.user, job), f"listing the runs of job {job}")
        return sorted(r for r in names if layout.is_run_id(r))

    def pick_run(self, job: str, run: str | None) -> str:
        """The given run (checked), or the job's latest."""
        if run:
            layout.run_prefix(self.s3, self.user, job, run)  # validates the id
            if run not in self.runs(job):
                raise NotFound(f"job {job!r} has no run {run}",
                               hint=f"list its runs with 'mlctl artifacts ls {job} --runs'")
            return run
        runs = self.runs(job)
        if not runs:
            outside = self.recorded_run(job)
            if outside:
                return outside
            raise layout.no_runs(job)
        return runs[-1]

    def recorded_run(self, job: str, record: tuple[str | None, str] | None = None) -> str | None:
        """The run of a job that wrote outside the layout (its spec's `output:`), from the cluster's record
        (record: that (run id, URL) when the caller has it); run_prefix(job, run) then gives where."""
        record = record or (self.recorded(job) if self.recorded else None)
        if not record:
            return None
        run, url = record
        key = layout.recorded_prefix(self.bucket, layout.job_prefix(self.s3, self.user, job), url)
        if key is None:
            return None
        run = run or "output"
        self._outside[(job, run)] = key
        return run

    def has_objects(self, prefix: str, what: str) -> bool:
        with self.errors(what):
            return bool(self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1).get("KeyCount"))

    def run_prefix(self, job: str, run: str) -> str:
        if (job, run) in self._outside:
            return self._outside[(job, run)]
        return layout.run_prefix(self.s3, self.user, job, run)

    def objects(self, prefix: str, what: str) -> list[dict]:
        """Every object under prefix: {key, size, modified, etag} with key relative to prefix."""
        out = []
        with self.errors(what):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for o in page.get("Contents") or []:
                    out.append({"key": o["Key"][len(prefix):], "size": int(o["Size"]),
                                "modified": o.get("LastModified"), "etag": str(o.get("ETag", "")).strip('"')})
        return out

    def head(self, key: str, what: str) -> dict:
        with self.errors(what):
            h = self.client.head_object(Bucket=self.bucket, Key=key)
        return {"size": int(h["ContentLength"]), "etag": str(h.get("ETag", "")).strip('"'),
                "modified": h.get("LastModified")}

    def read(self, key: str, what: str) -> bytes:
        with self.errors(what):
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def presign(self, key: str, seconds: int) -> str:
        with self.errors("presigning a URL"):
            return self.client.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": key},
                                                      ExpiresIn=seconds)

    def delete(self, keys: list[str], what: str) -> int:
        """Delete keys (absolute), 1,000 a request; returns how many were deleted."""
        done = 0
        for i in range(0, len(keys), 1000):
            batch = keys[i:i + 1000]
            with self.errors(what):
                resp = self.client.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": k} for k in batch], "Quiet": True})
            errors = resp.get("Errors") or []
            if errors:
                code = errors[0].get("Code", "")
                exc = Forbidden if code in _FORBIDDEN else MlctlError
                raise exc(f"S3 refused {what}: {code} for {len(errors)} of {len(batch)} objects")
            done += len(batch)
        return done


def for_user(f, pool: int = POOL_SIZE) -> Storage:
    """The logged-in user's Storage: the platform's s3 section, their Secret on the command's cluster."""
    from mlctl.auth.session import cache_for
    from mlctl.tenancy import user_namespace

    s3 = section(f.platform)
    session = cache_for(f).session()
    if not session or not session.get("user"):
        raise AuthError("not logged in", hint="run 'mlctl login'")
    user = session["user"]
    cluster = f.cluster_name()
    namespace = f.config.get("namespace") or user_namespace(user)
    creds = read_credentials(f.kube(cluster), namespace, cluster)
    verify = ca_file(f.platform, s3, f.env)
    storage = Storage(make_client(s3, creds, verify=verify, pool=pool), s3, user)
    storage.small = make_lean(s3, creds, verify=verify)
    return storage


def make_lean(s3: dict, creds: Credentials, *, verify: str | bool | None = None):
    """The client for small objects (storage/lean.py), with the same endpoint, credentials, CA and timeouts."""
    from mlctl.storage.lean import LeanS3

    return LeanS3(s3, creds.access_key, creds.secret_key, verify=verify, connect_timeout=CONNECT_TIMEOUT,
                  read_timeout=READ_TIMEOUT)
