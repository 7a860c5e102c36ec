"""The sandbox's Kerberos realm: Debian's MIT krb5kdc as a long-running process.

The realm, its database and its configuration live in <state>/krb5/. Clients point KRB5_CONFIG at the
krb5.conf written there; Keycloak reads the same file (through java.security.krb5.conf) and accepts SPNEGO
with the HTTP service keytab written there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from mlctl.sandbox import procs
from mlctl.sandbox.component import Component, Context

REALM = "MLCTL.TEST"
PROCESS = "kdc"
# Sandbox-only passwords: the same people, with the same passwords, exist in Keycloak's realm.
USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "dave": "dave-pw"}
# Keycloak is reached as https://127.0.0.1:PORT; localhost is accepted too.
SERVICE_HOSTS = ("127.0.0.1", "localhost")
_MASTER_PASSWORD = "mlctl-sandbox-master"
_ENCTYPES = "aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal"


def _tool(name: str) -> str:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise procs.SandboxError(f"{name} not found: install the Debian packages krb5-kdc, krb5-admin-server, krb5-user")


def _paths(state: procs.State) -> dict[str, Path]:
    d = state.root / "krb5"
    return {
        "dir": d,
        "krb5_conf": d / "krb5.conf",
        "kdc_conf": d / "kdc.conf",
        "database": d / "principal",
        "stash": d / "stash",
        "keytab": d / "http.keytab",
    }


def _env(paths: dict[str, Path]) -> dict[str, str]:
    return {"KRB5_CONFIG": str(paths["krb5_conf"]), "KRB5_KDC_PROFILE": str(paths["kdc_conf"])}


def _write_configs(paths: dict[str, Path], port: int) -> None:
    paths["dir"].mkdir(parents=True, exist_ok=True)
    paths["krb5_conf"].write_text(
        f"""[libdefaults]
    default_realm = {REALM}
    dns_lookup_kdc = false
    dns_lookup_realm = false
    dns_canonicalize_hostname = false
    rdns = false
    ignore_acceptor_hostname = true
    udp_preference_limit = 1
    forwardable = true

[realms]
    {REALM} = {{
        kdc = 127.0.0.1:{port}
    }}

[domain_realm]
    127.0.0.1 = {REALM}
    localhost = {REALM}
"""
    )
    paths["kdc_conf"].write_text(
        f"""[kdcdefaults]
    kdc_listen = 127.0.0.1:{port}
    kdc_tcp_listen = 127.0.0.1:{port}

[realms]
    {REALM} = {{
        database_name = {paths["database"]}
        key_stash_file = {paths["stash"]}
        acl_file = {paths["dir"] / "kadm5.acl"}
        kdc_listen = 127.0.0.1:{port}
        kdc_tcp_listen = 127.0.0.1:{port}
        supported_enctypes = {_ENCTYPES}
        max_life = 10h
        max_renewable_life = 7d
    }}

[logging]
    kdc = STDERR
"""
    )


def _run(argv: list[str], env: dict[str, str], what: str) -> None:
    result = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise procs.SandboxError(f"{what} failed: {(result.stderr or result.stdout).strip()}")


def _create_database(paths: dict[str, Path], env: dict[str, str]) -> None:
    """Create the realm's database, people and HTTP service keytab once (marked by the keytab)."""
    if paths["keytab"].exists() and paths["database"].exists():
        return
    for leftover in paths["dir"].glob("principal*"):
        leftover.unlink()
    paths["stash"].unlink(missing_ok=True)
    _run([_tool("kdb5_util"), "create", "-s", "-r", REALM, "-P", _MASTER_PASSWORD], env, "kdb5_util create")
    queries = [f"addprinc -pw {password} {user}" for user, password in USERS.items()]
    services = [f"HTTP/{host}" for host in SERVICE_HOSTS]
    queries += [f"addprinc -randkey {s}" for s in services]
    tmp = paths["keytab"].with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    queries.append(f"ktadd -k {tmp} {' '.join(services)}")
    kadmin = _tool("kadmin.local")
    for query in queries:
        _run([kadmin, "-r", REALM, "-q", query], env, f"kadmin.local {query.split(' -pw ')[0]}")
    tmp.replace(paths["keytab"])


def info(state: procs.State) -> dict:
    paths = _paths(state)
    return {
        "realm": REALM,
        "kdc_port": state.port("kdc"),
        "krb5_conf": str(paths["krb5_conf"]),
        "keytab": str(paths["keytab"]),
        "service_principal": f"HTTP/{SERVICE_HOSTS[0]}@{REALM}",
        "users": dict(USERS),
    }


def start(state: procs.State) -> dict:
    """Create (once) and start the KDC unless it runs; return realm, kdc_port, krb5_conf, keytab, ..."""
    paths = _paths(state)
    port = state.port("kdc")
    env = _env(paths)
    _write_configs(paths, port)
    _create_database(paths, env)
    if not state.is_running(PROCESS):
        # -n: stay in the foreground, so the recorded pid is the KDC itself.
        state.start(PROCESS, [_tool("krb5kdc"), "-n", "-r", REALM], env=env)
    procs.wait_until(lambda: procs.port_open(port), 30, f"the KDC on port {port}", state, PROCESS)
    return info(state)


def stop(state: procs.State) -> bool:
    return state.stop(PROCESS)


def kinit(kdc_info: dict, user: str, password: str, ccache: Path | str) -> None:
    """Obtain a ticket for user into the file ccache (tests and `sandbox` helpers only)."""
    result = subprocess.run(
        [_tool("kinit"), "-c", f"FILE:{ccache}", f"{user}@{kdc_info['realm']}"],
        input=password + "\n", capture_output=True, text=True,
        env={**os.environ, "KRB5_CONFIG": kdc_info["krb5_conf"]},
    )
    if result.returncode != 0:
        raise procs.SandboxError(f"kinit {user} failed: {(result.stderr or result.stdout).strip()}")


class KDC(Component):
    """The MIT KDC of the sandbox's Kerberos realm (Debian's krb5-kdc; no build)."""

    name = "kdc"
    after_clusters = False

    def start(self, ctx: Context) -> dict:
        return start(ctx.state)

    def processes(self, ctx: Context) -> list[str]:
        return [PROCESS]
