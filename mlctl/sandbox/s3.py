"""The sandbox's S3 server: versitygw (posix backend, internal IAM) over HTTPS, run as a plain process.

versitygw is built by the sandbox's build table (build.py) from the version go/versitygw/go.mod pins. Its
data lives in <state>/s3/: `data/` (one directory per bucket, metadata in extended attributes), `iam/`
(the internal IAM's accounts) and `credentials/` (0700; one 0600 JSON file per account). See
docs/storage.md for what the platform document says about S3 and how credentials reach users.

Accounts: the gateway's root account is the platform's own (it creates buckets and users and bypasses
bucket policies); each sandbox user gets an account of role `user` whose access key id is the user name.
Isolation is a bucket policy on each bucket that allows every user only the keys under `<user>/` and a
listing only with a prefix under it (versitygw enforces policies, `s3:prefix` conditions included, for
accounts that are not root or admin; the integration tests check it).

The root secret reaches versitygw through its environment at start only: it is not recorded in state.json
(which records a process's extra environment), so restart versitygw with `start`, not `State.restart`.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import secrets
import ssl
import time
from pathlib import Path
from xml.sax.saxutils import escape

from mlctl.sandbox import pki
from mlctl.sandbox.component import Component, Context
from mlctl.sandbox.procs import SandboxError, State, answers, port_open, wait_until

MODULE = "github.com/versity/versitygw"
PROCESS = "versitygw"
REGION = "us-east-1"
BUCKETS = {"outputs": "mlctl-outputs", "models": "mlctl-models"}
USERS = ("alice", "bob", "carol", "dave")
ROOT_ACCOUNT = "root"  # the credentials file of the gateway's root account (the platform's)
ROOT_ACCESS_KEY = "mlctl-platform"
PREFIX_TEMPLATE = "{user}/"
SECRET_NAME = "mlctl-s3"
START_TIMEOUT = 60.0
# What a user may do with the keys under their prefix; listing is granted separately, by prefix.
OBJECT_ACTIONS = ("s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
                  "s3:ListMultipartUploadParts", "s3:GetObjectAttributes", "s3:GetObjectTagging",
                  "s3:PutObjectTagging")
LIST_ACTIONS = ("s3:ListBucket",)
# Bump when _provision changes what it does, so running sandboxes get the new steps.
_PROVISION_REVISION = 1


# ---- build ---------------------------------------------------------------------------------------------

def version() -> str:
    """The versitygw version the wrapper module pins (the build table's)."""
    from mlctl.sandbox import build as builds

    return builds.version("versitygw")


def binary() -> Path:
    """Where the build puts versitygw (it may not be built yet)."""
    from mlctl.sandbox import build as builds

    return builds.path("versitygw")


def build(log: Path | None = None) -> Path:
    """Build versitygw once (cached by version); return the binary."""
    from mlctl.sandbox import build as builds

    builds.ensure_logged(["versitygw"], log)
    return binary()


# ---- credentials ---------------------------------------------------------------------------------------

def _home(root: Path) -> Path:
    return Path(root) / "s3"


def _credentials_file(root: Path, account: str) -> Path:
    return _home(root) / "credentials" / f"{account}.json"


def _access_key(account: str) -> str:
    return ROOT_ACCESS_KEY if account == ROOT_ACCOUNT else account


def _ensure_credentials(root: Path, account: str) -> tuple[str, str]:
    """The account's (access key id, secret), generated once into a file only its owner may read."""
    path = _credentials_file(root, account)
    if path.exists():
        return _read_credentials(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    doc = {"accessKeyId": _access_key(account), "secretAccessKey": secrets.token_urlsafe(30)}
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)
    tmp.replace(path)
    return doc["accessKeyId"], doc["secretAccessKey"]


def _read_credentials(path: Path) -> tuple[str, str]:
    try:
        doc = json.loads(path.read_text())
        return doc["accessKeyId"], doc["secretAccessKey"]
    except (OSError, ValueError, KeyError) as e:
        raise SandboxError(f"cannot read the S3 credentials in {path}: {type(e).__name__}") from e


def user_credentials(root: Path, user: str) -> tuple[str, str]:
    """(access key id, secret) of a sandbox user's S3 account; `start` creates them."""
    if user not in USERS:
        raise SandboxError(f"{user!r} is not a sandbox user ({', '.join(USERS)})")
    path = _credentials_file(root, user)
    if not path.exists():
        raise SandboxError(f"no S3 credentials for {user} in {path.parent}; run 'mlctl sandbox up'")
    return _read_credentials(path)


def admin_credentials(root: Path) -> tuple[str, str]:
    """(access key id, secret) of the gateway's root account, the platform's own."""
    path = _credentials_file(root, ROOT_ACCOUNT)
    if not path.exists():
        raise SandboxError(f"no S3 root credentials in {path.parent}; run 'mlctl sandbox up'")
    return _read_credentials(path)


# ---- pure parts ----------------------------------------------------------------------------------------

def user_prefix(user: str) -> str:
    return PREFIX_TEMPLATE.format(user=user)


def bucket_policy(bucket: str, access_keys: dict[str, str]) -> dict:
    """The bucket policy that confines each user (name -> access key id) to the keys under `<user>/`.

    Listing is allowed only with a prefix under the user's own, so one user cannot even see another's key
    names. The root account needs no statement: versitygw lets root and admin accounts bypass policies.
    """
    statements = []
    for user, access_key in sorted(access_keys.items()):
        prefix = user_prefix(user)
        principal = {"AWS": [access_key]}
        statements.append({
            "Sid": f"{user}-objects", "Effect": "Allow", "Principal": principal,
            "Action": list(OBJECT_ACTIONS), "Resource": [f"arn:aws:s3:::{bucket}/{prefix}*"],
        })
        statements.append({
            "Sid": f"{user}-list", "Effect": "Allow", "Principal": principal,
            "Action": list(LIST_ACTIONS), "Resource": [f"arn:aws:s3:::{bucket}"],
            "Condition": {"StringLike": {"s3:prefix": [prefix, f"{prefix}*"]}},
        })
    return {"Version": "2012-10-17", "Statement": statements}


def account_xml(access_key: str, secret: str, role: str = "user") -> bytes:
    """The body of versitygw's admin `create-user` call (its Account type, as XML)."""
    return (f"<Account><Access>{escape(access_key)}</Access><Secret>{escape(secret)}</Secret>"
            f"<Role>{escape(role)}</Role></Account>").encode()


def secret_xml(secret: str) -> bytes:
    """The body of versitygw's admin `update-user` call that sets an account's secret."""
    return f"<MutableProps><Secret>{escape(secret)}</Secret></MutableProps>".encode()


def platform_part(info: dict) -> dict:
    """The platform document's `s3` section: where S3 is and how keys are laid out, never a secret."""
    return {
        "endpoint": info["endpoint"],
        "region": info["region"],
        "certificateAuthorityData": base64.b64encode(Path(info["ca_file"]).read_bytes()).decode(),
        "buckets": dict(info["buckets"]),
        "prefix": PREFIX_TEMPLATE,
        # the sandbox's pods are local processes, so the CA's own file is where they find it
        "podCaBundle": str(info["ca_file"]),
    }


def user_secret_object(namespace: str, access_key: str, secret: str) -> dict:
    """The Secret `mlctl-s3` that gives pods in a user's namespace their S3 credentials (envFrom-ready)."""
    def b64(value: str) -> str:
        return base64.b64encode(value.encode()).decode()

    return {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": SECRET_NAME, "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "mlctl"}},
        "data": {"AWS_ACCESS_KEY_ID": b64(access_key), "AWS_SECRET_ACCESS_KEY": b64(secret)},
    }


def write_user_secrets(root: Path, kubes: dict | None = None) -> list[tuple[str, str]]:
    """Write each sandbox user's Secret `mlctl-s3` into their namespace on every cluster where it exists
    (run it after `mlctl admin sync`, which makes the namespaces but cannot know versitygw's secrets).
    kubes maps cluster -> an admin Kube; by default the sandbox's admin kubeconfig. Returns
    (cluster, namespace) pairs written; idempotent (server-side apply)."""
    import yaml

    from mlctl.tenancy import user_namespace

    root = Path(root)
    if kubes is None:
        from mlctl.kube.api import from_kubeconfig

        doc = yaml.safe_load((root / "platform.yaml").read_text()) or {}
        kubes = {c["name"]: from_kubeconfig(str(root / "kubeconfig"), f"sandbox-{c['name']}", cluster=c["name"])
                 for c in doc.get("clusters") or []}
    written = []
    for cluster, kube in kubes.items():
        for user in USERS:
            namespace = user_namespace(user)
            if kube.find("Namespace", namespace) is None:
                continue
            kube.apply(user_secret_object(namespace, *user_credentials(root, user)), manager="mlctl-sandbox-s3")
            written.append((cluster, namespace))
    return written


# ---- the process ---------------------------------------------------------------------------------------

def _port(state: State, grace: float = 5.0) -> int:
    """The recorded port; re-chosen when versitygw is down and something else took it.

    A killed versitygw shows as not running (its main thread is a zombie) while its other threads still
    hold the listening socket for a moment, so the port gets `grace` seconds to close before it counts
    as taken.
    """
    port = state.port(PROCESS)
    if state.is_running(PROCESS):
        return port
    deadline = time.monotonic() + grace
    while port_open(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    if port_open(port):
        state.refresh()
        del state.data["ports"][PROCESS]
        state.save()
        port = state.port(PROCESS)
    return port


def _argv(exe: Path, root: Path, port: int, crt: Path, key: Path) -> list[str]:
    home = _home(root)
    return [
        str(exe), f"--port=127.0.0.1:{port}", f"--cert={crt}", f"--key={key}",
        f"--iam-dir={home / 'iam'}", f"--region={REGION}", "--health=/health",
        # kept-alive connections, as S3 services keep them (versitygw closes each one after a request unless told)
        "--keep-alive",
        "posix", str(home / "data"),
    ]


def _ssl_context(ca_file: str | Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # not create_default_context: no system CA store needed
    ctx.load_verify_locations(str(ca_file))
    return ctx


def ready(info: dict, timeout: float = 2.0) -> bool:
    """True when the gateway answers its health endpoint over TLS verified by the sandbox CA."""
    return answers(int(info["endpoint"].rsplit(":", 1)[1]), "/health", ca_file=info["ca_file"], timeout=timeout)


def info(state: State) -> dict:
    """Where the S3 server is (whether or not it runs)."""
    root = state.root
    ca_crt, _ = pki.ensure_ca(root / "pki")
    port = state.port(PROCESS)
    return {
        "endpoint": f"https://127.0.0.1:{port}",
        "ca_file": str(ca_crt),
        "region": REGION,
        "buckets": dict(BUCKETS),
        "prefix": PREFIX_TEMPLATE,
        "users": list(USERS),
        "credentials_dir": str(_home(root) / "credentials"),
        "version": version(),
    }


def start(state: State, *, timeout: float = START_TIMEOUT) -> dict:
    """Build (once) and start versitygw unless it runs with the same configuration, wait until it answers,
    then create (once) the accounts, the buckets and their policies, and write the platform document's
    s3 section (when <state>/platform.yaml exists). Returns info() plus "action" (started | restarted |
    kept)."""
    root = state.root
    exe = build(root / "logs" / "build.log")
    home = _home(root)
    for sub in ("data", "iam"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)  # the objects and the IAM file are the gateway's to serve, not to be read around it
    crt, key = pki.issue(root / "pki", "versitygw", "versitygw", hosts=("127.0.0.1", "localhost"))
    root_key, root_secret = _ensure_credentials(root, ROOT_ACCOUNT)
    users = {user: _ensure_credentials(root, user) for user in USERS}

    port = _port(state)
    argv = _argv(exe, root, port, crt, key)
    # the root secret reaches versitygw through its environment only: never recorded in state.json
    action = state.ensure(PROCESS, argv, files=[crt], port=port,
                          secret_env={"ROOT_ACCESS_KEY_ID": root_key, "ROOT_SECRET_ACCESS_KEY": root_secret})

    out = info(state)
    wait_until(lambda: ready(out), timeout, f"versitygw /health on port {port}", state, PROCESS)
    _provision(out, (root_key, root_secret), users, home / "provisioned")
    if (root / "platform.yaml").exists():  # the port may have changed
        publish(root / "platform.yaml", out)
    out["action"] = action
    return out


def stop(state: State) -> bool:
    """Stop versitygw; True if it was running."""
    return state.stop(PROCESS)


# ---- provisioning --------------------------------------------------------------------------------------

def _admin_call(out: dict, admin: tuple[str, str], path: str, body: bytes) -> tuple[int, str]:
    """A signed PATCH to versitygw's admin API (served on the S3 port); returns (status, error code)."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = f"{out['endpoint']}{path}"
    request = AWSRequest(method="PATCH", url=url, data=body)
    S3SigV4Auth(Credentials(*admin), "s3", REGION).add_auth(request)
    port = int(out["endpoint"].rsplit(":", 1)[1])
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=_ssl_context(out["ca_file"]))
    try:
        conn.request("PATCH", path, body=body, headers=dict(request.headers.items()))
        resp = conn.getresponse()
        text = resp.read().decode(errors="replace")
    except (OSError, http.client.HTTPException) as e:
        raise SandboxError(f"versitygw admin {path.split('?')[0]}: {e}") from e
    finally:
        conn.close()
    code = re.search(r"<Code>([^<]*)</Code>", text)
    return resp.status, code.group(1) if code else ""


def _ensure_account(out: dict, admin: tuple[str, str], access_key: str, secret: str) -> None:
    status, code = _admin_call(out, admin, "/create-user", account_xml(access_key, secret))
    if status < 300:
        return
    if code == "XAdminUserExists":
        # keep the gateway's secret equal to the one in the credentials file
        status, code = _admin_call(out, admin, f"/update-user?access={access_key}", secret_xml(secret))
        if status < 300:
            return
    raise SandboxError(f"versitygw admin could not create or update account {access_key}: HTTP {status} {code}")


def _client(out: dict, credentials: tuple[str, str]):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=out["endpoint"], region_name=REGION, verify=out["ca_file"],
        aws_access_key_id=credentials[0], aws_secret_access_key=credentials[1],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )


def _provision(out: dict, admin: tuple[str, str], users: dict[str, tuple[str, str]], marker: Path) -> None:
    """Accounts, buckets and bucket policies; a marker of what was applied skips the calls next time."""
    access_keys = {user: creds[0] for user, creds in users.items()}
    policies = {bucket: bucket_policy(bucket, access_keys) for bucket in BUCKETS.values()}
    digest = hashlib.sha256(json.dumps({
        "revision": _PROVISION_REVISION, "policies": policies,
        "secrets": {u: hashlib.sha256(c[1].encode()).hexdigest() for u, c in users.items()},
    }, sort_keys=True).encode()).hexdigest()
    if marker.exists() and marker.read_text() == digest:
        return
    from botocore.exceptions import ClientError

    for access_key, secret in users.values():
        _ensure_account(out, admin, access_key, secret)
    s3 = _client(out, admin)
    for bucket, policy in policies.items():
        try:
            s3.create_bucket(Bucket=bucket)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise SandboxError(f"cannot create bucket {bucket}: {e.response['Error'].get('Code')}") from e
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    marker.write_text(digest)



def publish(platform_file: Path, out: dict) -> None:
    """Write platform_part(out) into the platform document's `s3` key (read-modify-write)."""
    import yaml

    doc = yaml.safe_load(platform_file.read_text()) or {}
    part = platform_part(out)
    if doc.get("s3") != part:
        doc["s3"] = part
        tmp = platform_file.with_suffix(platform_file.suffix + ".tmp")
        tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
        tmp.replace(platform_file)


class S3(Component):
    """The S3 server: buckets for job outputs and models, an account per user confined to its prefix."""

    name = "s3"
    binaries = ("versitygw",)

    def start(self, ctx: Context) -> dict:
        return start(ctx.state)

    def platform(self, ctx: Context) -> dict:
        return {"s3": platform_part(ctx.info[self.name])}

    def processes(self, ctx: Context) -> list[str]:
        return [PROCESS]
