"""mlctl notebook create NAME: check, then create the notebook's Secret, workspace claim and Notebook."""

from __future__ import annotations

from dataclasses import dataclass, field

import click

from mlctl.cli import mlctl_command


@dataclass
class Options:
    name: str
    profile: str | None = None
    image: str | None = None
    pool: str | None = None
    gpus: int | None = None
    cpu: str | None = None
    memory: str | None = None
    volume: str | None = None
    mounts: list[str] = field(default_factory=list)
    check: bool = False
    dry_run: str = "none"
    wait: bool = False
    timeout: float | None = None
    output: str = "table"


def request(f, opts: Options, cluster: dict):
    from mlctl import notebooks as N

    return N.resolve(N.section(f.platform.doc), cluster, opts.name, profile=opts.profile, image=opts.image,
                     pool=opts.pool, gpus=opts.gpus, cpu=opts.cpu, memory=opts.memory, volume=opts.volume,
                     mounts=tuple(opts.mounts))


def check_quota(kube, req, cluster: dict, namespace: str, claim_exists: bool) -> None:
    """Exit 6 when the namespace quota cannot take the notebook (its pod, and its workspace when new)."""
    from mlctl import notebooks as N
    from mlctl.errors import QuotaExceeded
    from mlctl.jobs.check import check_fit
    from mlctl.quota import readable_quotas

    for quota in readable_quotas(lambda: kube.list("ResourceQuota", namespace, what="reading the namespace quota")):
        try:
            check_fit(N.as_spec(req), cluster, quota)
        except QuotaExceeded as e:
            raise QuotaExceeded(e.message.replace("the job needs", "the notebook needs"),
                                hint="ask for fewer GPUs, CPUs or less memory, stop another notebook, or see "
                                     "`mlctl quota show`") from None
        if not claim_exists:
            problems = N.storage_problems(req, quota)
            if problems:
                raise QuotaExceeded("; ".join(problems),
                                    hint="ask for a smaller --volume, delete unused workspaces, or see "
                                         "`mlctl quota show`")


def run(f, opts: Options) -> None:
    from mlctl import notebooks as N
    from mlctl.commands.notebook.common import connect, notebook_cluster, target
    from mlctl.commands.train import preflight
    from mlctl.commands.train.common import user_or_placeholder
    from mlctl.errors import QuotaExceeded, UsageError
    from mlctl.jobs.check import check_fit
    from mlctl.output import to_yaml
    from mlctl.policy import require

    cluster = notebook_cluster(f)
    req = request(f, opts, cluster)
    spec = N.as_spec(req)
    try:  # capacity first: it needs no server, so an impossible notebook fails before any login
        check_fit(spec, cluster)
    except QuotaExceeded as e:
        raise QuotaExceeded(e.message.replace(" per worker", " for the notebook"),
                            hint="ask for fewer GPUs, CPUs or memory, or another --pool") from None
    if opts.dry_run == "client":
        t = target(f, user=user_or_placeholder(f))
        objects = [N.redacted(N.config_secret(req.name, req.cluster, t.namespace, t.user, f.platform.doc, {})),
                   N.workspace_claim(req, t.namespace, t.user), N.notebook_object(req, cluster, t.namespace, t.user)]
        for obj in objects:
            f.io.stdout.write("---\n" + to_yaml(obj))
        return
    t = target(f)
    skip = preflight.skip_checks(f, opts.check)
    if not skip:
        require(preflight.ask_policy(f, spec, cluster, t.user, "notebook"))
    kube = connect(f, t)
    if kube.find("Notebook", req.name, t.namespace) is not None:
        raise UsageError(f"notebook {req.name} already exists in {t.namespace} on cluster {cluster['name']}",
                         hint=f"use 'mlctl notebook start {req.name}', or delete it first")
    existing_claim = kube.find("PersistentVolumeClaim", req.claim_name, t.namespace)
    check_quota(kube, req, cluster, t.namespace, existing_claim is not None)
    for m in req.mounts:
        if not m.host_path and kube.find("PersistentVolumeClaim", m.source, t.namespace) is None:
            from mlctl.errors import NotFound

            raise NotFound(f"PVC {m.source} (--mount {m.source}:{m.path}) does not exist in {t.namespace}",
                           hint="create or stage the data PVC first")
    if not skip:
        fit = preflight.fit_now(f, spec, cluster)
        if fit.ok is False:
            f.io.warn(f"notebook {req.name} will wait for room on {cluster['name']}: {fit.why}")
    if opts.check:
        f.io.note(f"notebook {req.name} fits cluster {cluster['name']} and the quota of namespace {t.namespace}")
        return
    if existing_claim is not None:
        f.io.note(f"reusing workspace {req.claim_name} (kept from an earlier notebook {req.name})")
    created = create(f, t, req, cluster, with_claim=existing_claim is None, server_dry_run=opts.dry_run == "server")
    suffix = " (server dry run)" if opts.dry_run == "server" else ""
    f.io.note(f"notebook/{req.name} created on {cluster['name']} in {t.namespace}{suffix}")
    if opts.dry_run == "server":
        return
    if opts.wait:
        from mlctl.commands.notebook.common import wait_ready

        created = wait_ready(f, t, created, timeout=opts.timeout)
    address = N.url(f.platform.section("gateway"), t.namespace, req.name)
    if address:
        f.io.note(f"open it with 'mlctl notebook open {req.name}' ({address})")
    if opts.output == "name":
        f.io.out(f"notebook/{req.name}")
    elif opts.output in ("json", "yaml"):
        from mlctl.output import print_object

        print_object(f.io, created, opts.output)


def create(f, t, req, cluster: dict, *, with_claim: bool, server_dry_run: bool) -> dict:
    """Secret, claim, Notebook in that order; whatever was created is deleted again if a later step fails or
    is interrupted, so nothing is left half-made."""
    from mlctl import notebooks as N
    from mlctl.commands.notebook.common import connect, login_secret

    kube = connect(f, t)
    secret = login_secret(f, t, req.name)
    objects = [secret] + ([N.workspace_claim(req, t.namespace, t.user)] if with_claim else [])
    objects.append(N.notebook_object(req, cluster, t.namespace, t.user))
    made: list[dict] = []
    try:
        notebook = None
        for obj in objects:
            label = f"{obj['kind'].lower()}/{obj['metadata']['name']}"
            result = kube.create(obj, dry_run=server_dry_run, what=f"creating {label}")
            if not server_dry_run:
                made.append(obj)
            notebook = result
        if not server_dry_run:
            # The Secret goes with the Notebook (garbage collector); the workspace claim is kept on purpose.
            kube.patch("Secret", secret["metadata"]["name"],
                       {"metadata": {"ownerReferences": [N.owner_reference(notebook)]}}, t.namespace,
                       what=f"updating secret/{secret['metadata']['name']}")
        return notebook
    except BaseException:
        for obj in reversed(made):
            try:
                kube.delete(obj["kind"], obj["metadata"]["name"], t.namespace,
                            what=f"removing {obj['kind'].lower()}/{obj['metadata']['name']} again")
            except Exception:  # the original error is what the user needs to see
                f.io.warn(f"could not remove {obj['kind'].lower()}/{obj['metadata']['name']}; delete it by hand")
        raise


@mlctl_command("create")
@click.argument("name")
@click.option("--profile", metavar="P", help="A notebook profile of the platform (image and default resources).")
@click.option("--image", metavar="I", help="Container image instead of the profile's.")
@click.option("--pool", metavar="POOL", help="Node pool: vgpu, gpu or cpu (default: the profile's).")
@click.option("--gpus", type=click.IntRange(min=0), help="GPUs (vGPU slices on the vgpu pool).")
@click.option("--cpu", metavar="N", help="CPUs, e.g. 2 or 500m.")
@click.option("--memory", metavar="Q", help="Memory, e.g. 4Gi.")
@click.option("--volume", metavar="SIZE", help="Size of a new workspace volume at /home/jovyan, e.g. 10Gi.")
@click.option("--mount", "mounts", multiple=True, metavar="SRC:PATH",
              help="Mount a PVC or a shared path read-only (repeatable).")
@click.option("--check", is_flag=True, help="Only check that the notebook fits the pool, the policy and your quota.")
@click.option("--dry-run", type=click.Choice(["none", "client", "server"]), default="none", show_default=True,
              help="client: print the objects; server: let the API server validate them without saving.")
@click.option("--wait", is_flag=True, help="Wait until the notebook is Ready.")
@click.option("--timeout", type=float, help="Give up waiting after this many seconds (exit 7).")
@click.pass_obj
def command(f, name, profile, image, pool, gpus, cpu, memory, volume, mounts, check, dry_run, wait, timeout):
    """Create a notebook server with a workspace volume and your platform login inside.

    \b
    mlctl notebook create nb1 --wait
    mlctl notebook create big --pool gpu --gpus 2 --memory 16Gi --mount datasets:/data
    mlctl notebook create cpu1 --profile cpu-only --check
    """
    run(f, Options(name=name, profile=profile, image=image, pool=pool, gpus=gpus, cpu=cpu, memory=memory,
                   volume=volume, mounts=list(mounts), check=check, dry_run=dry_run, wait=wait, timeout=timeout,
                   output=f.output))
