"""The sandbox's Keycloak: keycloak-quarkus-dist from Maven Central, run over HTTPS as a plain process.

The distribution is unpacked and `kc.sh build` is run once per version into the cache
(${MLCTL_CACHE_DIR:-~/.cache/mlctl}/keycloak-<version>/), so every start is `start --optimized`.
Per-sandbox data (H2 database, TLS certificate, rendered realm) lives in <state>/keycloak/.
The realm `ml` is created through the admin REST API on the first start (see docs/identity.md); later
starts find it in the database and leave it alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import string
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path

import yaml

from mlctl.sandbox import pki, procs
from mlctl.sandbox.component import Component, Context

VERSION = os.environ.get("MLCTL_KEYCLOAK_VERSION", "26.4.7")
PROCESS = "keycloak"
REALM = "ml"
CLIENT_ID = "mlctl"
CLUSTER_AUDIENCES = ("local", "gcp")
ADMIN_CLIENT_ID = "mlctl-admin"
# Sandbox-only secrets. mlctl's secret is not confidential: Keycloak's standard token exchange (V2)
# refuses public clients, so the CLI's client is confidential and its secret ships in the platform document.
CLIENT_SECRET = "mlctl-sandbox-client-secret"
ADMIN_CLIENT_SECRET = "mlctl-admin-sandbox-secret"
CLUSTER_CLIENT_SECRET = "mlctl-cluster-sandbox-secret"
BOOTSTRAP_ADMIN = ("admin", "admin-sandbox-pw")
KERBEROS_COMPONENT_ID = "6d6c6374-6b72-6235-0000-000000000001"
# Bump when _setup_realm changes what it does, so existing sandboxes get the new steps.
_SETUP_REVISION = 3
# Build-time options baked into the cached distribution; changing them changes the cache marker.
BUILD_OPTIONS = ("--db=dev-file", "--health-enabled=true")
# Extra JVM flags: a C1-only JIT starts the server faster (measured in docs/identity.md).
_JVM_FLAGS = os.environ.get("MLCTL_KEYCLOAK_JVM_FLAGS", "-XX:TieredStopAtLevel=1")


def _realm_template() -> Path:
    from mlctl.sandbox.build import assets_dir

    return assets_dir() / "keycloak" / "realm-ml.json"


def cache_dir() -> Path:
    from mlctl.sandbox.build import cache_root

    return cache_root()


def _java_env() -> dict[str, str]:
    java_home = os.environ.get("MLCTL_KEYCLOAK_JAVA_HOME")
    return {"JAVA_HOME": java_home} if java_home else {}


def _download(version: str, into: Path) -> Path:
    """The dist zip from Maven Central through mvn (the only registry client this machine may use)."""
    zip_path = into / f"keycloak-quarkus-dist-{version}.zip"
    if zip_path.exists():
        return zip_path
    mvn = shutil.which("mvn")
    if not mvn:
        raise procs.SandboxError("mvn not found: install Maven to fetch keycloak-quarkus-dist")
    into.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [mvn, "-q", "-B", "dependency:copy", f"-Dartifact=org.keycloak:keycloak-quarkus-dist:{version}:zip",
         f"-DoutputDirectory={into}"],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=into,
    )
    if result.returncode != 0 or not zip_path.exists():
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-5:])
        raise procs.SandboxError(f"could not fetch keycloak-quarkus-dist {version} with mvn: {tail}")
    return zip_path


def ensure_dist(version: str = VERSION) -> Path:
    """The built distribution for version, unpacked and built once into the cache; return its home."""
    home = cache_dir() / f"keycloak-{version}"
    marker = home / ".mlctl-build"
    wanted = " ".join(BUILD_OPTIONS)
    if marker.exists() and marker.read_text() == wanted:
        return home
    with procs.file_lock(cache_dir() / f"keycloak-{version}.lock"):
        if marker.exists() and marker.read_text() == wanted:
            return home
        zip_path = _download(version, cache_dir() / "downloads")
        staging = Path(tempfile.mkdtemp(prefix=f"keycloak-{version}.", dir=cache_dir()))
        try:
            with zipfile.ZipFile(zip_path) as zf:
                zf.extractall(staging)
            unpacked = staging / f"keycloak-{version}"
            for script in (unpacked / "bin").glob("*.sh"):
                script.chmod(0o755)
            result = subprocess.run(
                ["/bin/bash", str(unpacked / "bin" / "kc.sh"), "build", *BUILD_OPTIONS],
                capture_output=True, text=True, stdin=subprocess.DEVNULL, env={**os.environ, **_java_env()},
            )
            if result.returncode != 0:
                tail = "\n".join((result.stdout + result.stderr).splitlines()[-5:])
                raise procs.SandboxError(f"kc.sh build failed: {tail}")
            (unpacked / ".mlctl-build").write_text(wanted)
            if home.exists():
                shutil.rmtree(home)
            unpacked.rename(home)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return home


def _paths(state: procs.State) -> dict[str, Path]:
    d = state.root / "keycloak"
    return {"dir": d, "db": d / "h2" / "keycloakdb", "realm": d / "realm-ml.json", "applied": d / "realm-ml.applied"}


def info(state: procs.State) -> dict:
    port = state.port("keycloak-https")
    url = f"https://127.0.0.1:{port}"
    ca_crt, _ = pki.ensure_ca(state.root / "pki")
    return {
        "url": url,
        "issuer": f"{url}/realms/{REALM}",
        "realm": REALM,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "audiences": list(CLUSTER_AUDIENCES),
        "audience_scopes": {aud: f"audience-{aud}" for aud in CLUSTER_AUDIENCES},
        "admin_client_id": ADMIN_CLIENT_ID,
        "admin_client_secret": ADMIN_CLIENT_SECRET,
        "ca_file": str(ca_crt),
        "management_url": f"https://127.0.0.1:{state.port('keycloak-management')}",
        "version": VERSION,
    }


def _render_realm(kdc_info: dict) -> dict:
    text = string.Template(_realm_template().read_text()).substitute(
        KERBEROS_COMPONENT_ID=KERBEROS_COMPONENT_ID,
        KRB5_REALM=kdc_info["realm"],
        SERVER_PRINCIPAL=kdc_info.get("service_principal", f"HTTP/127.0.0.1@{kdc_info['realm']}"),
        KEYTAB=kdc_info["keytab"],
        MLCTL_CLIENT_SECRET=CLIENT_SECRET,
        ADMIN_CLIENT_SECRET=ADMIN_CLIENT_SECRET,
        CLUSTER_CLIENT_SECRET=CLUSTER_CLIENT_SECRET,
    )
    return json.loads(text)


class _Admin:
    """A tiny client of Keycloak's admin REST API, authenticated as the bootstrap admin."""

    def __init__(self, url: str, ca_file: str):
        import requests

        # verify is passed on every call: a Session's own verify loses to REQUESTS_CA_BUNDLE.
        self.url, self.ca_file, self.http = url, ca_file, requests.Session()
        resp = self.http.post(
            f"{url}/realms/master/protocol/openid-connect/token",
            data={"grant_type": "password", "client_id": "admin-cli",
                  "username": BOOTSTRAP_ADMIN[0], "password": BOOTSTRAP_ADMIN[1]},
            timeout=30, verify=ca_file,
        )
        if resp.status_code != 200:
            raise procs.SandboxError(f"Keycloak bootstrap admin login failed: HTTP {resp.status_code}")
        self.http.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"

    def call(self, method: str, path: str, ok=(200, 201, 204), **kw):
        resp = self.http.request(method, f"{self.url}/admin/realms{path}", timeout=60, verify=self.ca_file, **kw)
        if resp.status_code not in ok:
            raise procs.SandboxError(f"Keycloak admin {method} {path}: HTTP {resp.status_code} {resp.text[:300]}")
        return resp.json() if resp.content and resp.headers.get("content-type", "").startswith("application/json") else None


def _setup_realm(url: str, ca_file: str, kdc_info: dict, paths: dict[str, Path]) -> None:
    """Create realm ml and what a realm import cannot express; each step checks before it acts.

    A marker records what was applied to this database, so a restart skips the admin calls.
    """
    realm = _render_realm(kdc_info)
    applied = hashlib.sha256(f"{_SETUP_REVISION}\n{json.dumps(realm, sort_keys=True)}".encode()).hexdigest()
    db_file = paths["db"].with_name(paths["db"].name + ".mv.db")
    if db_file.exists() and paths["applied"].exists() and paths["applied"].read_text() == applied:
        return
    admin = _Admin(url, ca_file)
    paths["realm"].write_text(json.dumps(realm, indent=2))
    if "realm" not in admin.call("GET", f"/{REALM}", ok=(200, 404)):
        admin.call("POST", "", json=realm)

    # Audience client scopes, optional on mlctl: a login token names only mlctl, and a token exchange
    # with audience=<cluster> and scope=audience-<cluster> yields a token whose aud is that cluster.
    # Client attributes added to the template after a realm was created are merged into the live clients.
    for wanted in realm.get("clients", []):
        found = admin.call("GET", f"/{REALM}/clients", params={"clientId": wanted["clientId"]})
        if found:
            live = found[0]
            attrs = {**(live.get("attributes") or {}), **(wanted.get("attributes") or {})}
            if attrs != (live.get("attributes") or {}):
                admin.call("PUT", f"/{REALM}/clients/{live['id']}", json={**live, "attributes": attrs})
    # Group attributes added to the template after a realm was created (quota grants) replace the live ones
    # of the same name; attributes the template does not name are left alone.
    live_groups = {g["name"]: g for g in admin.call("GET", f"/{REALM}/groups", params={"briefRepresentation": "false"})}
    for wanted in realm.get("groups", []):
        live = live_groups.get(wanted["name"])
        if live is not None:
            attrs = {**(live.get("attributes") or {}), **(wanted.get("attributes") or {})}
            if attrs != (live.get("attributes") or {}):
                admin.call("PUT", f"/{REALM}/groups/{live['id']}", json={**live, "attributes": attrs})
    # The admin service client exchanges its own tokens for the clusters' audiences too (cron).
    for client_id in (CLIENT_ID, ADMIN_CLIENT_ID):
        _audience_scopes(admin, client_id)

    # Kerberos (SPNEGO) as an alternative in the browser flow: a ticket logs the user in without a form.
    for execution in admin.call("GET", f"/{REALM}/authentication/flows/browser/executions"):
        if execution.get("providerId") == "auth-spnego" and execution["requirement"] != "ALTERNATIVE":
            admin.call("PUT", f"/{REALM}/authentication/flows/browser/executions",
                       json={**execution, "requirement": "ALTERNATIVE"})
    paths["applied"].write_text(applied)


def _audience_scopes(admin, client_id: str) -> None:
    (mlctl,) = admin.call("GET", f"/{REALM}/clients", params={"clientId": client_id})
    scopes = {s["name"]: s["id"] for s in admin.call("GET", f"/{REALM}/client-scopes")}
    optional = {s["name"] for s in admin.call("GET", f"/{REALM}/clients/{mlctl['id']}/optional-client-scopes")}
    for audience in CLUSTER_AUDIENCES:
        name = f"audience-{audience}"
        if name not in scopes:
            admin.call("POST", f"/{REALM}/client-scopes", json={
                "name": name, "protocol": "openid-connect",
                "description": f"tokens for the API server of cluster {audience}",
                "attributes": {"include.in.token.scope": "true", "display.on.consent.screen": "false"},
                "protocolMappers": [{
                    "name": f"audience {audience}", "protocol": "openid-connect",
                    "protocolMapper": "oidc-audience-mapper",
                    "config": {"included.client.audience": audience, "access.token.claim": "true",
                               "id.token.claim": "false", "introspection.token.claim": "true"},
                }],
            })
            scopes = {s["name"]: s["id"] for s in admin.call("GET", f"/{REALM}/client-scopes")}
        if name not in optional:
            admin.call("PUT", f"/{REALM}/clients/{mlctl['id']}/optional-client-scopes/{scopes[name]}")


def _ready(management_url: str, ca_file: str) -> bool:
    import requests

    try:
        return requests.get(f"{management_url}/health/ready", verify=ca_file, timeout=2).status_code == 200
    except requests.RequestException:
        return False


USER_CACHE = 100_000  # users kept in Keycloak's cache: above any directory the sandbox or its benches hold


def start(state: procs.State, kdc_info: dict, *, timeout: float = 180, jvm_flags: str | None = None) -> dict:
    """Build (once), start (unless running) and set up Keycloak; return its issuer, url, client ids, CA file.
    jvm_flags: instead of _JVM_FLAGS (C1 only, for a fast start); "" gives the JVM's own server JIT.

    The returned dict also carries "startup_seconds" (time from launch to a ready realm, 0.0 if it was
    already running).
    """
    home = ensure_dist()
    paths = _paths(state)
    paths["dir"].mkdir(parents=True, exist_ok=True)
    pki_dir = state.root / "pki"
    pki.ensure_ca(pki_dir)
    crt, key = pki.issue(pki_dir, "keycloak", "keycloak", hosts=("127.0.0.1", "localhost"))
    out = info(state)
    port, mgmt_port = state.port("keycloak-https"), state.port("keycloak-management")
    began = time.monotonic()
    if state.is_running(PROCESS):
        began = None
    else:
        argv = [
            "/bin/bash", str(home / "bin" / "kc.sh"), "start", "--optimized",
            f"--hostname={out['url']}", "--http-enabled=false", "--http-host=127.0.0.1",
            f"--https-port={port}", f"--https-certificate-file={crt}", f"--https-certificate-key-file={key}",
            f"--http-management-port={mgmt_port}", "--cache=local",
            # Keycloak's user cache holds 10,000 users by default; a full read of a larger directory (admin
            # sync) then evicts each user before it is read again, and every user becomes database queries.
            f"--cache-embedded-users-max-count={USER_CACHE}",
            f"--db-url=jdbc:h2:file:{paths['db']};NON_KEYWORDS=VALUE",
        ]
        env = {
            **_java_env(),
            "KC_BOOTSTRAP_ADMIN_USERNAME": BOOTSTRAP_ADMIN[0],
            "KC_BOOTSTRAP_ADMIN_PASSWORD": BOOTSTRAP_ADMIN[1],
            "JAVA_OPTS_KC_HEAP": "-Xms128m -Xmx1g",
            # Java's GSS reads the sandbox realm's krb5.conf; the transaction log stays out of the shared
            # cached distribution, so sandboxes in different state dirs can run side by side.
            "JAVA_OPTS_APPEND": " ".join([
                f"-Djava.security.krb5.conf={kdc_info['krb5_conf']}",
                f"-Dquarkus.transaction-manager.object-store.directory={paths['dir'] / 'transaction-logs'}",
                _JVM_FLAGS if jvm_flags is None else jvm_flags,
            ]).strip(),
        }
        state.start(PROCESS, argv, env=env, cwd=paths["dir"])
    procs.wait_until(lambda: _ready(out["management_url"], out["ca_file"]), timeout,
                     f"Keycloak on port {port}", state, PROCESS)
    _setup_realm(out["url"], out["ca_file"], kdc_info, paths)
    out["startup_seconds"] = round(time.monotonic() - began, 1) if began is not None else 0.0
    return out


def stop(state: procs.State) -> bool:
    return state.stop(PROCESS, timeout=30)


USER_PREFIX = "oidc:"
GROUP_PREFIX = "oidc:"


def authentication_config(kc: dict, audience: str) -> str:
    """The kube-apiserver AuthenticationConfiguration trusting Keycloak tokens for one audience."""
    ca = Path(kc["ca_file"]).read_text()
    return yaml.safe_dump({
        "apiVersion": "apiserver.config.k8s.io/v1beta1",
        "kind": "AuthenticationConfiguration",
        "jwt": [{
            "issuer": {"url": kc["issuer"], "audiences": [audience], "certificateAuthority": ca},
            "claimMappings": {
                "username": {"claim": "preferred_username", "prefix": USER_PREFIX},
                "groups": {"claim": "groups", "prefix": GROUP_PREFIX},
            },
        }],
    }, sort_keys=False)


class Keycloak(Component):
    """Keycloak over HTTPS with realm ml, federated with the KDC. It must answer before an API server starts:
    an apiserver whose first OIDC discovery fails retries only every 10 s, and refuses tokens until then."""

    name = "keycloak"
    after_clusters = False

    def prepare(self, ctx: Context, log) -> None:
        ensure_dist()

    def start(self, ctx: Context) -> dict:
        return start(ctx.state, ctx.info["kdc"])

    def apiserver_flags(self, ctx: Context, cluster: str) -> list[str]:
        path = ctx.root / "clusters" / cluster / "authentication.yaml"
        text = authentication_config(ctx.info[self.name], cluster)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        return [f"--authentication-config={path}"]

    def platform(self, ctx: Context) -> dict:
        import base64

        kc = ctx.info[self.name]
        return {
            "keycloak": {
                "issuer": kc["issuer"],
                "clientId": kc["client_id"],
                # Keycloak's standard token exchange refuses public clients; this secret is distributed with the
                # platform document like an installed application's and protects nothing by itself.
                "clientSecret": kc["client_secret"],
                "certificateAuthorityData": base64.b64encode(Path(kc["ca_file"]).read_bytes()).decode(),
            },
            "clusters": {name: {"audience": name, "tokenExchangeScope": scope}
                         for name, scope in kc["audience_scopes"].items()},
        }

    def processes(self, ctx: Context) -> list[str]:
        return [PROCESS]
