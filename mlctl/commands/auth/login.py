"""mlctl login: one SSO login that gives credentials for every cluster the user may use."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import click

from mlctl.cli import mlctl_command


@dataclass
class Options:
    method: str | None  # kerberos | device | password | client-credentials | None (auto)
    username: str | None
    client_id: str | None
    kubeconfig: Path | None
    write_kubeconfig: bool
    secret: str | None = None  # a password or client secret handed over by code (the sandbox), never argv


def _read_secret(f, prompt: str) -> str:
    if f.io.stdin_tty:
        import getpass

        value = getpass.getpass(prompt, stream=f.io.stderr)
    else:
        value = f.io.stdin.readline().rstrip("\n")
    if not value:
        from mlctl.errors import UsageError

        raise UsageError(f"no {prompt.strip(': ').lower()} given", hint="type it at the prompt or pipe it on stdin")
    return value


def run(f, opts: Options) -> None:
    from mlctl.auth import session as sess
    from mlctl.auth.kerberos import has_ticket
    from mlctl.auth.kubeconfig import default_path, write_contexts
    from mlctl.config import adopt_platform
    from mlctl.errors import MlctlError, UsageError

    if adopt_platform(f):
        f.io.note(f"platform {f.platform.name!r} stored and selected")
    platform = f.platform
    sso = sess.sso_for(f)
    cache = sess.cache_for(f)
    method = opts.method or ("kerberos" if has_ticket() else "device")

    if method == "kerberos":
        tokens = sso.kerberos()
    elif method == "device":
        device = sso.device_start()
        url = device.get("verification_uri_complete") or device.get("verification_uri")
        f.io.err(f"Open {url} and confirm the code {device.get('user_code')} (expires in "
                 f"{int(device.get('expires_in', 600)) // 60} min). Waiting...")
        tokens = sso.device_poll(device)
    elif method == "password":
        username = opts.username or (os.environ.get("USER") if not f.io.stdin_tty else None)
        if not username:
            if not f.io.can_prompt:
                raise UsageError("--username is required for a password login without a terminal")
            f.io.stderr.write("Username: ")
            f.io.stderr.flush()
            username = f.io.stdin.readline().strip()
        tokens = sso.password(username, opts.secret or _read_secret(f, "Password: "))
    elif method == "client-credentials":
        if not opts.client_id:
            raise UsageError("--client-id is required with --client-credentials")
        secret = opts.secret or f.env.get("MLCTL_CLIENT_SECRET") or _read_secret(f, "Client secret: ")
        tokens = sso.client_credentials(opts.client_id, secret)
    else:  # pragma: no cover - click restricts the choice
        raise UsageError(f"unknown login method {method}")

    session = sess.session_from_tokens(tokens, method)
    if method == "client-credentials":
        # cron has no refresh token: keep what re-grants it, in the 0600 cache only
        session["client_id"], session["client_secret"] = opts.client_id, secret
    cache.clear()
    cache.save_session(session)

    allowed, refused = sess.exchange_all(f, platform.clusters, cache)
    # kubeconfig contexts only for the clusters the policy allows: the others would only ever answer 403
    left_out: list[tuple[str, str]] = []
    if platform.section("opa"):
        try:
            decisions = f.opa().decisions(session["user"], session["groups"])
        except MlctlError as e:
            left_out = [(c["name"], f"the policy could not be asked: {e.message}") for c in allowed]
            allowed = []
        else:
            left_out = [(c["name"], decisions[c["name"]].reason if c["name"] in decisions
                         else f"cluster {c['name']} is not in the policy")
                        for c in allowed if not (decisions.get(c["name"]) and decisions[c["name"]].allow)]
            allowed = [c for c in allowed if decisions.get(c["name"]) and decisions[c["name"]].allow]
    groups = ", ".join(session["groups"]) or "none"
    f.io.note(f"Logged in to {platform.name} as {session['user']} ({method}; groups: {groups})")
    for name, why in refused:
        f.io.note(f"  cluster {name}: no access ({why})")
    if opts.write_kubeconfig and allowed:
        from mlctl.tenancy import user_namespace

        path = opts.kubeconfig or default_path(f.env)
        names = write_contexts(path, platform.name, allowed, user_namespace(session["user"]))
        f.io.note(f"kubeconfig {path}: contexts {', '.join(names)}")
    if opts.write_kubeconfig:
        for name, why in left_out:
            f.io.note(f"  no kubeconfig context for cluster {name}: {why}")


@mlctl_command("login")
@click.option("--kerberos", "method", flag_value="kerberos", help="Use your Kerberos ticket (default when you have one).")
@click.option("--device", "method", flag_value="device", help="Device authorization: open a URL, confirm a code.")
@click.option("--password", "method", flag_value="password",
              help="User name and password; the password is read from the terminal or stdin, never from argv.")
@click.option("--client-credentials", "method", flag_value="client-credentials",
              help="A service client (cron); the secret comes from MLCTL_CLIENT_SECRET or stdin.")
@click.option("--username", "-u", help="User name for --password.")
@click.option("--client-id", help="Client id for --client-credentials.")
@click.option("--kubeconfig", type=click.Path(dir_okay=False, path_type=Path),
              help="kubeconfig to add mlctl-<cluster> contexts to (default: $KUBECONFIG or ~/.kube/config).")
@click.option("--no-kubeconfig", is_flag=True, help="Do not write kubeconfig contexts.")
@click.pass_obj
def command(f, method, username, client_id, kubeconfig, no_kubeconfig):
    """Log in to the platform (Kerberos, device flow, password or client credentials).

    \b
    mlctl login --platform https://ml.example.org/platform.yaml
    mlctl login --device
    echo "$PASSWORD" | mlctl login --password -u alice
    """
    run(f, Options(method=method, username=username, client_id=client_id, kubeconfig=kubeconfig,
                   write_kubeconfig=not no_kubeconfig))
