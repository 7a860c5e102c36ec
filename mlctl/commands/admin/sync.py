"""mlctl admin sync: reconcile namespaces, owner RoleBindings, ResourceQuotas and LimitRanges from Keycloak."""

from __future__ import annotations

from dataclasses import dataclass

import click

from mlctl.cli import mlctl_command
from mlctl.commands.admin.common import access_options
from mlctl.output import Column, print_list, to_json


@dataclass
class Options:
    dry_run: str = "none"
    prune: bool = False
    force: bool = False
    concurrency: int = 16
    lock_timeout: float = 30.0
    client_id: str | None = None
    client_secret: str | None = None
    kubeconfig: str | None = None
    context_template: str = "{cluster}"


def admin_credentials(f, opts: Options) -> tuple[str, str]:
    """--client-id/--client-secret > MLCTL_ADMIN_CLIENT_ID/MLCTL_CLIENT_SECRET > a client-credentials login."""
    from mlctl.auth.session import cache_for
    from mlctl.errors import AuthError

    session = cache_for(f).session() or {}
    client_id = opts.client_id or f.env.get("MLCTL_ADMIN_CLIENT_ID") or session.get("client_id")
    secret = opts.client_secret or f.env.get("MLCTL_CLIENT_SECRET") or session.get("client_secret")
    if not client_id or not secret:
        raise AuthError("admin sync needs the Keycloak admin client's id and secret",
                        hint="set MLCTL_ADMIN_CLIENT_ID and MLCTL_CLIENT_SECRET, or log in with "
                             "'mlctl login --client-credentials'")
    return client_id, secret


def background(fn):
    """fn() started in a daemon thread (Ctrl-C is not held up by it); its Future."""
    import threading
    from concurrent.futures import Future

    future: Future = Future()

    def target():
        try:
            future.set_result(fn())
        except BaseException as e:  # noqa: BLE001 - handed to whoever waits for the result
            future.set_exception(e)

    threading.Thread(target=target, name="keycloak-directory", daemon=True).start()
    return future


def run(f, opts: Options) -> int:
    from mlctl.admin import keycloak_admin
    from mlctl.admin.lease import KubeLeaseStore, LeaseLock
    from mlctl.admin.objects import LEASE_NAME, SYSTEM_NAMESPACE
    from mlctl.admin.sync import SyncOptions, run_sync, settings_resolver
    from mlctl.commands.admin.common import kube_api, selected_clusters
    from mlctl.kube.errors import kube_errors

    clusters = selected_clusters(f)
    settings_for = settings_resolver(f.platform.doc, f.platform.clusters)
    for c in clusters:
        settings_for(c["name"])  # a bad platform quota section fails before anything is read
    client_id, secret = admin_credentials(f, opts)
    apis = {c["name"]: kube_api(f, c["name"], opts.kubeconfig, opts.context_template)
            for c in clusters}
    sync_opts = SyncOptions(dry_run=opts.dry_run, prune=opts.prune, force=opts.force,
                            concurrency=opts.concurrency, lock_timeout=opts.lock_timeout)
    lock = None
    if opts.dry_run == "none":
        home = f.platform.clusters[0]["name"]
        home_api = apis.get(home) or kube_api(f, home, opts.kubeconfig, opts.context_template)
        lock = LeaseLock(KubeLeaseStore(home_api, LEASE_NAME, SYSTEM_NAMESPACE), LEASE_NAME, SYSTEM_NAMESPACE)
        with kube_errors(f"taking lease {SYSTEM_NAMESPACE}/{LEASE_NAME}", home):
            lock.acquire(opts.lock_timeout)
        lock.start_renewing()
    try:
        # Keycloak's directory is read while the clusters are listed; the diff needs both.
        loading = background(lambda: keycloak_admin.load(f, client_id, secret))

        noted = []

        def directory():
            d, _ = loading.result()
            if not noted:
                noted.append(True)
                f.io.note(f"keycloak: {len(d.users)} users, {len(d.groups)} groups")
            return d

        summary = run_sync(apis, directory, settings_for, sync_opts, lock=lock,
                           io=f.io if f.config.get("verbose") else None)
        summary.keycloak_requests = loading.result()[1]
    finally:
        if lock is not None:
            lock.release()
    _print(f, summary, opts)
    return summary.exit_code()


COLUMNS = [
    Column("cluster", lambda c: c["cluster"], style="bold"),
    Column("created", lambda c: c["created"]),
    Column("updated", lambda c: c["updated"]),
    Column("unchanged", lambda c: c["unchanged"]),
    Column("deleted", lambda c: c["deleted"]),
    Column("orphaned", lambda c: len(c["orphaned"])),
    Column("errors", lambda c: len(c["errors"])),
    Column("requests", lambda c: sum(c["requests"].values()), wide=True),
]


def _print(f, summary, opts: Options) -> None:
    data = summary.to_dict(with_diffs=opts.dry_run != "none")
    fmt = f.output
    if fmt in ("json", "yaml"):
        if fmt == "json":
            f.io.out(to_json(data))
        else:
            from mlctl.output import to_yaml

            f.io.stdout.write(to_yaml(data))
    else:
        if opts.dry_run != "none":
            for cluster in data["clusters"]:
                for change in cluster["changes"]:
                    if change.get("diff"):
                        f.io.out(f"# cluster {cluster['cluster']}: {change['action']} {change['object']}")
                        f.io.out(change["diff"])
                    elif change["action"] in ("delete", "orphan"):
                        f.io.out(f"# cluster {cluster['cluster']}: {change['action']} {change['object']} "
                                 f"({change['reason']})")
        else:
            print_list(f.io, data["clusters"], COLUMNS, fmt if fmt != "name" else "table")
    suffix = f" ({opts.dry_run} dry run)" if opts.dry_run != "none" else ""
    verb = "would be " if opts.dry_run != "none" else ""
    f.io.note(f"{data['created']} {verb}created, {data['updated']} {verb}updated, {data['unchanged']} unchanged, "
              f"{data['deleted']} {verb}deleted, {data['orphaned']} orphaned, {data['errors']} errors{suffix}")
    for cluster in data["clusters"]:
        for ns in cluster["orphaned"]:
            if not opts.prune:
                f.io.warn(f"{cluster['cluster']}: namespace {ns} belongs to a user who left "
                          f"('--prune' deletes it when empty)")
        for err in cluster["errors"]:
            f.io.err(f"error: {cluster['cluster']}: {err['object']}: {err['message']}")
    for problem in data["problems"]:
        message = problem["message"]
        f.io.err(f"error: {message if message.startswith(problem['subject']) else problem['subject'] + ': ' + message}")


@mlctl_command("sync")
@click.option("--dry-run", type=click.Choice(["none", "client", "server"]), default="none", show_default=True,
              help="Print the diff instead of writing (server: also let the API servers validate it).")
@click.option("--prune", is_flag=True, help="Delete namespaces of users who left, when they hold nothing.")
@click.option("--force", is_flag=True, help="With --prune: delete them even when they hold workloads or volumes.")
@click.option("--concurrency", type=click.IntRange(1, 256), default=16, show_default=True,
              help="Parallel writes per cluster.")
@click.option("--lock-timeout", type=click.FloatRange(0), default=30.0, show_default=True, metavar="SECONDS",
              help="How long to wait for another sync's lease before exiting 7.")
@click.option("--client-id", metavar="ID", help="Keycloak admin client [env MLCTL_ADMIN_CLIENT_ID].")
@click.option("--client-secret", metavar="SECRET", help="Its secret [env MLCTL_CLIENT_SECRET].")
@access_options
@click.pass_obj
def command(f, dry_run, prune, force, concurrency, lock_timeout, client_id, client_secret, kubeconfig,
            context_template):
    """Make every cluster's namespaces, owner bindings and quotas match Keycloak.

    \b
    Exit status: 0 converged; 2 invalid group quota attributes or platform settings; 3 Keycloak refused
    the admin client; 5 forbidden; 7 a server is unreachable or another sync holds the lease; 1 mixed.
    With -o json, stdout is a summary (created/updated/unchanged/deleted/orphaned/errors per cluster).
    """
    from mlctl.errors import MlctlError

    if force and not prune:
        from mlctl.errors import UsageError

        raise UsageError("--force only makes sense with --prune")
    if force and dry_run == "none":
        f.io.confirm("delete namespaces of departed users even if they hold workloads?", yes=f.yes)
    code = run(f, Options(dry_run, prune, force, concurrency, lock_timeout, client_id, client_secret,
                          kubeconfig, context_template))
    if code:
        raise MlctlError("admin sync finished with errors (see above)", exit_code=code)
