"""mlctl serve create NAME --model s3://...|JOB: check, build and create one InferenceService.

Order (docs/serve.md): the options and the pool's declared capacity (no server), then the model (the job's
final model, present in S3; its format when --framework is not given), the namespace quota, a serving
runtime for the framework; only then the one object is created, so a failure leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import dataclass

import click

from mlctl.cli import mlctl_command
from mlctl.commands.serve.common import dry_run_option


@dataclass
class Options:
    name: str
    model: str
    framework: str | None = None
    gpus: int = 0
    pool: str | None = None
    cpu: str = "1"
    memory: str = "4Gi"
    min_replicas: int = 1
    max_replicas: int | None = None
    target_utilization: int | None = None
    target_concurrency: int | None = None
    check: bool = False
    dry_run: str = "none"
    wait: bool = False
    timeout: float = 300.0


def serve_options(opts: Options, uri: str, framework: str, job: str | None = None, run: str | None = None):
    from mlctl.serve.isvc import ServeOptions

    return ServeOptions(name=opts.name, model_uri=uri, framework=framework, gpus=opts.gpus, pool=opts.pool,
                        cpu=opts.cpu, memory=opts.memory, min_replicas=opts.min_replicas,
                        max_replicas=opts.max_replicas, target_utilization=opts.target_utilization,
                        target_concurrency=opts.target_concurrency, job=job, run=run)


def check_capacity(f, sopts, cluster: dict, quota: dict | None = None) -> None:
    """min replicas must fit (exit 6); max replicas that cannot fit is a warning (the HPA stops short)."""
    from mlctl.errors import QuotaExceeded
    from mlctl.jobs.check import check_fit
    from mlctl.serve.isvc import as_job_spec

    def replicas(text: str) -> str:  # training's wording, said of replicas
        return text.replace("per worker", "per replica").replace("workers", "replicas").replace("the job", "the service")

    try:
        check_fit(as_job_spec(sopts, sopts.min_replicas), cluster, quota)
    except QuotaExceeded as e:
        raise QuotaExceeded(replicas(e.message), hint="lower --min-replicas or the per-replica resources, "
                                                      "or see 'mlctl quota show'") from None
    if sopts.max > sopts.min_replicas:
        try:
            check_fit(as_job_spec(sopts, sopts.max), cluster, quota)
        except QuotaExceeded as e:
            f.io.warn(f"{sopts.max} replicas will not fit ({replicas(e.message)}); the autoscaler stops short "
                      "of --max-replicas")


def resolve_job(f, t, job: str) -> tuple[str, str | None]:
    """A training job's final model: (s3 URI of its model/ folder, run id or None). The job on the cluster
    first (its output-url annotation, which an explicit `output:` URL sets too), else its latest run in S3."""
    from mlctl.commands.train.common import jobs_for
    from mlctl.errors import NotFound
    from mlctl.serve.model import final_model
    from mlctl.storage.layout import run_url

    try:
        found = jobs_for(f, t).get(job)
    except NotFound:
        found = None
    if found is not None:
        notes = (found.get("metadata") or {}).get("annotations") or {}
        url = notes.get("mlctl.io/output-url")
        if url:
            return final_model(url), notes.get("mlctl.io/run")
    storage = f.storage()
    try:
        run = storage.pick_run(job, None)
    except NotFound:
        where = f"namespace {t.namespace} on cluster {t.cluster['name']}"
        raise NotFound(f"training job {job!r} is not in {where} and has no outputs in S3",
                       hint="pass the model's s3:// URI, or see 'mlctl train list' and 'mlctl artifacts ls'") from None
    return final_model(run_url(storage.s3, storage.user, job, run)), run


def check_model(f, ref_uri: str, job: str | None) -> dict | None:
    """The model folder must hold objects (exit 4 otherwise); returns its model.json when it has one."""
    import json

    from mlctl.errors import NotFound
    from mlctl.serve.model import split_uri

    storage = f.storage()
    bucket, prefix = split_uri(ref_uri)
    with storage.errors(f"reading {ref_uri}"):
        listing = storage.client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=50)
    keys = [o["Key"] for o in listing.get("Contents") or []]
    if not keys:
        if job:
            raise NotFound(f"training job {job!r} has no final model at {ref_uri}",
                           hint=f"has it finished? see 'mlctl train status {job}' and 'mlctl artifacts ls {job}'")
        raise NotFound(f"no model at {ref_uri} (nothing under that prefix)",
                       hint="check the URI with 'mlctl artifacts ls', or pass a training job's name")
    if prefix + "model.json" not in keys:
        return None
    with storage.errors(f"reading {ref_uri}model.json"):
        body = storage.client.get_object(Bucket=bucket, Key=prefix + "model.json")["Body"].read()
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def check_runtime(kube, cluster: str, framework: str) -> None:
    """A ClusterServingRuntime must support the framework (when the user may list them)."""
    from mlctl.errors import Forbidden, NotFound, Unavailable, UsageError

    try:
        runtimes = kube.list("ClusterServingRuntime", what="listing serving runtimes")
    except Forbidden:
        return
    except NotFound:
        raise Unavailable(f"KServe is not installed on cluster {cluster} (no ClusterServingRuntime kind)",
                          hint="ask the platform admins") from None
    formats = sorted({str(m.get("name")) for r in runtimes if not (r.get("spec") or {}).get("disabled")
                      for m in (r.get("spec") or {}).get("supportedModelFormats") or [] if m.get("name")})
    if framework not in formats:
        raise UsageError(f"no serving runtime on cluster {cluster} serves framework {framework!r}",
                         hint=f"frameworks served there: {', '.join(formats) or 'none'}")


def run(f, opts: Options) -> None:
    from mlctl.commands.serve.common import target
    from mlctl.commands.train.common import user_or_placeholder
    from mlctl.errors import UsageError
    from mlctl.output import print_object, to_yaml
    from mlctl.quota import readable_quotas
    from mlctl.serve import isvc, model

    isvc.check_name(opts.name)
    if opts.framework is not None:
        isvc.check_framework(opts.framework)
    cluster = f.platform.cluster(f.config.get("cluster"))
    ref = model.parse(opts.model)
    # Everything that needs no server first: the flags, the pool and its declared capacity.
    draft = serve_options(opts, ref.uri or "s3://placeholder/", opts.framework or isvc.FRAMEWORKS[0])
    isvc.validate(draft, cluster)
    check_capacity(f, draft, cluster)
    s3 = f.platform.section("s3")
    if opts.dry_run == "client" and ref.uri:
        if opts.framework is None:
            raise UsageError("--framework is required with --dry-run=client and an s3:// model",
                             hint="the format is read from the model's model.json only when mlctl reads S3")
        t_user = user_or_placeholder(f)
        from mlctl.tenancy import user_namespace

        namespace = f.config.get("namespace") or user_namespace(t_user)
        obj = isvc.inference_service(draft, cluster, namespace=namespace, user=t_user, s3=s3)
        f.io.stdout.write(to_json_or_yaml(obj, f.output, to_yaml))
        return
    t = target(f)
    kube = f.kube(cluster["name"])
    uri, run_id = (ref.uri, None) if ref.uri else resolve_job(f, t, ref.job)
    metadata = check_model(f, uri, ref.job)
    framework = opts.framework or (model.framework_of(metadata) if metadata else None)
    if framework is None:
        raise UsageError(f"cannot tell the framework of the model at {uri}", hint="pass --framework, e.g. --framework 3dgan")
    sopts = serve_options(opts, uri, framework, job=ref.job, run=run_id)
    for quota in readable_quotas(lambda: kube.list("ResourceQuota", t.namespace, what="reading the namespace quota")):
        check_capacity(f, sopts, cluster, quota)
    check_runtime(kube, cluster["name"], framework)
    obj = isvc.inference_service(sopts, cluster, namespace=t.namespace, user=t.user, s3=s3)
    if opts.dry_run == "client":
        f.io.stdout.write(to_json_or_yaml(obj, f.output, to_yaml))
        return
    if opts.check:
        f.io.note(f"inferenceservice/{opts.name} ({framework}, {sopts.min_replicas}-{sopts.max} replicas) fits "
                  f"cluster {cluster['name']} and the quota of namespace {t.namespace}; model {uri}")
        return
    server = opts.dry_run == "server"
    created = kube.create(obj, dry_run=server, strict=True, manager="mlctl",
                          what=f"creating inferenceservice/{opts.name}")
    label = f"inferenceservice/{opts.name}"
    f.io.note(f"{label} created on {cluster['name']} in {t.namespace}" + (" (server dry run)" if server else "")
              + f": model {uri}")
    if not server and opts.wait:
        created = wait_ready(f, kube, t.namespace, opts.name, opts.timeout)
    if f.output in ("json", "yaml"):
        print_object(f.io, created, f.output)
    elif f.output == "name":
        f.io.out(label)


def to_json_or_yaml(obj: dict, fmt: str, to_yaml) -> str:
    from mlctl.output import to_json

    return to_json(obj) + "\n" if fmt == "json" else "---\n" + to_yaml(obj)


def wait_ready(f, kube, namespace: str, name: str, timeout: float) -> dict:
    """Watch the service until its Ready condition is True; Unavailable (exit 7) after timeout."""
    import time

    from mlctl.errors import NotFound, Unavailable
    from mlctl.serve.isvc import reason, state

    deadline = time.monotonic() + timeout
    current = kube.get("InferenceService", name, namespace)
    last = None
    while True:
        now_state = state(current)
        if now_state != last:
            why = reason(current)
            f.io.note(f"inferenceservice/{name}: {now_state}" + (f" ({why})" if why and now_state != "Ready" else ""))
            last = now_state
        if now_state == "Ready":
            return current
        left = deadline - time.monotonic()
        if left <= 0:
            raise Unavailable(f"inferenceservice/{name} was not Ready after {timeout:g}s"
                              + (f": {reason(current)}" if reason(current) else ""),
                              hint=f"see 'mlctl serve describe {name}'")
        for event, obj in kube.watch("InferenceService", namespace, name=name, timeout=min(left, 30),
                                     resource_version=current["metadata"].get("resourceVersion")):
            if event == "DELETED":
                raise NotFound(f"inferenceservice/{name} was deleted")
            current = obj
            if state(current) != last:
                break


@mlctl_command("create")
@click.argument("name")
@click.option("--model", required=True, metavar="s3://...|JOB",
              help="The model folder in S3, or a training job whose final model to serve.")
@click.option("--framework", metavar="F", help="Model format (default: read from the model's model.json).")
@click.option("--gpus", type=int, default=0, show_default=True, help="GPUs per replica.")
@click.option("--pool", metavar="P", help="Node pool (default: gpu with --gpus, else cpu).")
@click.option("--cpu", default="1", show_default=True, help="CPUs per replica.")
@click.option("--memory", default="4Gi", show_default=True, help="Memory per replica.")
@click.option("--min-replicas", type=int, default=1, show_default=True)
@click.option("--max-replicas", type=int, help="Upper bound for the autoscaler (default: --min-replicas).")
@click.option("--target-utilization", type=int, metavar="PERCENT", help="Scale on average CPU utilization.")
@click.option("--target-concurrency", type=int, metavar="N",
              help="Scale on requests in flight per replica (KServe Serverless mode only).")
@click.option("--check", is_flag=True, help="Only check the model, the pool's capacity and your quota.")
@dry_run_option
@click.option("--wait", is_flag=True, help="Wait until the service is Ready.")
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds --wait waits (then exit 7).")
@click.pass_obj
def command(f, name, model, framework, gpus, pool, cpu, memory, min_replicas, max_replicas, target_utilization,
            target_concurrency, check, dry_run, wait, timeout):
    """Serve a model from S3 or from a training job's final model.

    \b
    mlctl serve create gen3d --model gan3d --min-replicas 1 --max-replicas 4 --target-utilization 50
    mlctl serve create gen3d --model s3://mlctl-outputs/bob/gan3d/RUN/model/ --framework 3dgan --wait
    """
    run(f, Options(name=name, model=model, framework=framework, gpus=gpus, pool=pool, cpu=cpu, memory=memory,
                   min_replicas=min_replicas, max_replicas=max_replicas, target_utilization=target_utilization,
                   target_concurrency=target_concurrency, check=check, dry_run=dry_run, wait=wait,
                   timeout=timeout))

