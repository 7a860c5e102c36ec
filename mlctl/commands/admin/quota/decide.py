"""mlctl admin quota approve|deny [NAMESPACE/]NAME: record an admin's decision in the request's status.

The decision goes to the status subresource, which only mlctl-quota-admin may write; the next
`mlctl admin sync` folds approved requests into the namespace's ResourceQuota.
"""

from __future__ import annotations

import click

from mlctl.cli import mlctl_command
from mlctl.commands.admin.common import access_options


def find(api, ref: str, namespace: str | None) -> dict:
    """A request by NAMESPACE/NAME, NAME with -n, or a NAME unique across namespaces."""
    from mlctl.errors import NotFound, UsageError
    from mlctl.kube.errors import kube_errors

    ns, _, name = ref.rpartition("/")
    ns = ns or namespace
    with kube_errors(f"reading quota request {ref}", api.cluster):
        if ns:
            qr = api.find("QuotaRequest", name, ns)
            if qr is None:
                raise NotFound(f"quota request {ns}/{name} does not exist on cluster {api.cluster}",
                               hint="see 'mlctl admin quota list'")
            return qr
        matches = [q for q in api.list("QuotaRequest") if q["metadata"]["name"] == name]
    if not matches:
        raise NotFound(f"quota request {name} does not exist on cluster {api.cluster}",
                       hint="see 'mlctl admin quota list'")
    if len(matches) > 1:
        raise UsageError(f"quota request {name} exists in several namespaces",
                         hint="name it as NAMESPACE/NAME: " + ", ".join(
                             f"{q['metadata']['namespace']}/{name}" for q in matches))
    return matches[0]


def run(f, ref: str, phase: str, message: str | None, dry_run: str, kubeconfig, context_template) -> None:
    from mlctl.commands.admin.common import kube_api, me
    from mlctl.errors import Forbidden
    from mlctl.kube.errors import kube_errors
    from mlctl.output import print_object
    from mlctl.quota.requests import decision, summary
    from mlctl.quota.requests import phase as phase_of
    from mlctl.tenancy import user_namespace

    cluster = f.cluster_name()
    api = kube_api(f, cluster, kubeconfig, context_template)
    qr = find(api, ref, f.config.get("namespace"))
    ns, name = qr["metadata"]["namespace"], qr["metadata"]["name"]
    who = me(f)
    if phase == "Approved" and who != "admin" and ns == user_namespace(who):
        raise Forbidden(f"you cannot approve your own quota request {ns}/{name}",
                        hint="ask another platform admin")
    if phase_of(qr) == phase:
        f.io.note(f"quotarequest/{name} in {ns} is already {phase.lower()}")
    patch = decision(phase, who, message)
    if dry_run == "client":
        f.io.note(f"quotarequest/{name} in {ns} would be {phase.lower()} (client dry run)")
        return
    with kube_errors(f"recording the decision on quota request {ns}/{name}", cluster):
        updated = api.patch_status("QuotaRequest", name, ns, patch, dry_run=dry_run == "server")
    suffix = " (server dry run)" if dry_run == "server" else ""
    f.io.note(f"quotarequest/{name} in {ns} {phase.lower()}{suffix}: {summary(qr)}")
    if phase == "Approved" and dry_run == "none":
        f.io.note("it takes effect at the next 'mlctl admin sync'")
    if f.output in ("json", "yaml"):
        print_object(f.io, updated, f.output)


def _command(verb: str, phase: str, doc: str):
    @mlctl_command(verb)
    @click.argument("ref", metavar="[NAMESPACE/]NAME")
    @click.option("-m", "--message", help="A note for the user (why, or what was granted).")
    @click.option("--dry-run", type=click.Choice(["none", "client", "server"]), default="none", show_default=True)
    @access_options
    @click.pass_obj
    def command(f, ref, message, dry_run, kubeconfig, context_template):
        run(f, ref, phase, message, dry_run, kubeconfig, context_template)

    command.help = doc
    return command


approve = _command("approve", "Approved", "Approve a quota request (sync applies it).")
deny = _command("deny", "Denied", "Deny a quota request, with a message for the user.")
