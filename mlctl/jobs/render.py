"""Spec + cluster entry -> the Kubernetes objects to create (a Kubeflow TFJob or PyTorchJob), as plain dicts.

Pure and deterministic: the same inputs give byte-identical YAML, so `--dry-run` needs no cluster and golden
files can pin the output. Decisions are in docs/job-spec.md ("Rendering").
"""

from __future__ import annotations

import re
from typing import Any

from mlctl.errors import UsageError
from mlctl.jobs.schema import DEFAULT_SECRET
from mlctl.jobs.spec import Spec

KUBEFLOW_API = "kubeflow.org/v1"
MANAGED_BY = "mlctl"
# framework -> (kind, replica-specs field, container name the operator looks for)
FRAMEWORKS = {
    "tensorflow": ("TFJob", "tfReplicaSpecs", "tensorflow"),
    "pytorch": ("PyTorchJob", "pytorchReplicaSpecs", "pytorch"),
}
# Annotations read by the sandbox's simulated kubelet (kwok stages); harmless on a real cluster.
SIM_RUN_SECONDS = "mlctl.io/run-seconds"
SIM_EXIT_CODE = "mlctl.io/exit-code"
SIM_FAIL_INDEX = "mlctl.io/fail-index"
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def label_value(text: str) -> str:
    """text made into a valid label value (≤ 63 chars of [A-Za-z0-9-_.], alphanumeric at both ends)."""
    if len(text) <= 63 and _LABEL_VALUE.match(text):
        return text
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", cleaned)


def pool_of(spec: Spec, cluster: dict) -> dict:
    """The cluster's entry for the spec's pool; UsageError naming the pools it does have."""
    pools = cluster.get("pools") or {}
    pool = pools.get(spec.resources.pool) if isinstance(pools, dict) else None
    if not isinstance(pool, dict):
        name = cluster.get("name", "?")
        have = ", ".join(sorted(pools)) if isinstance(pools, dict) and pools else "none"
        raise UsageError(f"cluster {name} has no pool {spec.resources.pool} (its pools: {have})",
                         hint="set resources.pool (or clusters.<name>.resources.pool) to one of them")
    return pool


def gpu_resource(spec: Spec, cluster: dict) -> str | None:
    """The extended resource name for the spec's GPUs (nvidia.com/gpu), None when it asks for none."""
    if spec.resources.gpus == 0:
        return None
    pool = pool_of(spec, cluster)
    resource = pool.get("gpuResource")
    if not resource or not pool.get("gpusPerNode", 1):
        raise UsageError(f"pool {spec.resources.pool} of cluster {cluster.get('name', '?')} has no GPUs, "
                         f"but the spec asks for {spec.resources.gpus} per worker",
                         hint="pick a GPU pool with resources.pool, or set resources.gpus: 0")
    return str(resource)


def _s3_endpoint(s3: dict | None) -> str | None:
    if not s3:
        return None
    for key in ("endpoint", "endpointUrl", "endpointURL", "url"):
        if s3.get(key):
            return str(s3[key])
    return None


def output_url(spec: Spec, s3: dict | None, user: str, run: str | None) -> str | None:
    """Where the job writes: the spec's output.url when it names one, else the platform's layout
    s3://<outputs>/<user>/<job>/<run>/ (docs/artifacts.md) when there is a run id and an outputs bucket."""
    if spec.output:
        return spec.output.url
    if run and s3 and (s3.get("buckets") or {}).get("outputs"):
        from mlctl.storage.layout import run_url

        return run_url(s3, user, spec.name, run)
    return None


def _env(spec: Spec, s3: dict | None, url: str | None) -> list[dict]:
    # mlctl's variables come first so the user's values may refer to them as $(MLCTL_OUTPUT_URL).
    env: list[dict[str, Any]] = []
    if url:
        env.append({"name": "OUTPUT_URL", "value": url})
        env.append({"name": "MLCTL_OUTPUT_URL", "value": url})
    if spec.output or _s3_endpoint(s3):
        endpoint = _s3_endpoint(s3)
        if endpoint:
            env.append({"name": "AWS_ENDPOINT_URL", "value": endpoint})
        if s3 and s3.get("region"):
            env.append({"name": "AWS_DEFAULT_REGION", "value": str(s3["region"])})
        if s3 and s3.get("podCaBundle"):
            env.append({"name": "AWS_CA_BUNDLE", "value": str(s3["podCaBundle"])})
    env += [{"name": name, "value": value} for name, value in spec.env.items()]
    return env


def _env_from(spec: Spec, s3: dict | None) -> list[dict]:
    """The S3 credentials: every key of the user's Secret (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)."""
    if not (spec.output or _s3_endpoint(s3)):
        return []
    return [{"secretRef": {"name": spec.output.secret if spec.output else DEFAULT_SECRET}}]


def _resources(spec: Spec, cluster: dict) -> dict:
    # requests == limits: Guaranteed QoS, and it satisfies a quota on either requests.* or limits.*.
    amounts: dict[str, str] = {"cpu": spec.resources.cpu, "memory": spec.resources.memory}
    gpu = gpu_resource(spec, cluster)
    if gpu:
        amounts[gpu] = str(spec.resources.gpus)
    return {"requests": dict(sorted(amounts.items())), "limits": dict(sorted(amounts.items()))}


def _simulation(spec: Spec, replica: str) -> dict[str, str]:
    sim = spec.simulate
    if sim is None:
        return {}
    notes: dict[str, str] = {}
    if sim.run_seconds is not None:
        notes[SIM_RUN_SECONDS] = str(sim.run_seconds)
    if sim.fail_replica:
        kind, _, index = sim.fail_replica.partition("-")
        if kind == replica:
            notes[SIM_EXIT_CODE] = str(sim.exit_code if sim.exit_code is not None else 1)
            notes[SIM_FAIL_INDEX] = index
    elif sim.exit_code is not None:
        notes[SIM_EXIT_CODE] = str(sim.exit_code)
    return notes


def _pod_template(spec: Spec, cluster: dict, replica: str, labels: dict, s3: dict | None,
                  url: str | None) -> dict:
    pool = pool_of(spec, cluster)
    container: dict[str, Any] = {"name": FRAMEWORKS[spec.framework][2], "image": spec.image}
    if spec.command:
        container["command"] = list(spec.command)
    if spec.args:
        container["args"] = list(spec.args)
    env = _env(spec, s3, url)
    if env:
        container["env"] = env
    env_from = _env_from(spec, s3)
    if env_from:
        container["envFrom"] = env_from
    container["resources"] = _resources(spec, cluster)
    if spec.data:
        container["volumeMounts"] = [{"name": d.name, "mountPath": d.mount_path, "readOnly": True}
                                     for d in spec.data]
    pod: dict[str, Any] = {"containers": [container]}
    node_selector = pool.get("nodeSelector") or {}
    if node_selector:
        pod["nodeSelector"] = {str(k): str(v) for k, v in sorted(node_selector.items())}
    tolerations = [dict(sorted(t.items())) for t in pool.get("tolerations") or [] if isinstance(t, dict)]
    if tolerations:
        pod["tolerations"] = tolerations
    if spec.data:
        pod["volumes"] = [
            {"name": d.name, "hostPath": {"path": d.host_path, "type": "Directory"}} if d.host_path
            else {"name": d.name, "persistentVolumeClaim": {"claimName": d.pvc, "readOnly": True}}
            for d in spec.data]
    # Istio sidecars never exit, so a job whose pods get one would never complete.
    annotations = {"sidecar.istio.io/inject": "false", **_simulation(spec, replica)}
    return {"metadata": {"labels": dict(labels), "annotations": dict(sorted(annotations.items()))},
            "spec": pod}


def preemption_policy(spec: Spec, cluster: dict) -> tuple[str, int]:
    """(restartPolicy, backoffLimit) of the job on cluster. On a preemptible pool a lost node must not end the
    job: Never becomes ExitCode (the operator recreates a pod that was killed or deleted, and fails the job on
    an exit code that says the program itself failed), and every worker may lose its node once on top of the
    spec's own backoffLimit."""
    if not pool_of(spec, cluster).get("preemptible"):
        return spec.restart_policy, spec.backoff_limit
    policy = "ExitCode" if spec.restart_policy == "Never" else spec.restart_policy
    return policy, spec.backoff_limit + spec.workers


def render(spec: Spec, cluster: dict, *, user: str, namespace: str, s3: dict | None = None,
           run: str | None = None) -> list[dict]:
    """The objects `mlctl train` creates in `namespace` of `cluster` (today one TFJob or PyTorchJob).

    run is the run id chosen at submission (storage/layout.py); with the platform's s3 section it decides
    the job's OUTPUT_URL."""
    kind, replica_field, _ = FRAMEWORKS[spec.framework]
    restart_policy, backoff_limit = preemption_policy(spec, cluster)
    labels = {"app.kubernetes.io/managed-by": MANAGED_BY, "mlctl.io/spec-name": spec.name,
              "mlctl.io/user": label_value(user)}
    # the GPU total rides along as an annotation so `mlctl train list` can show it from metadata alone
    annotations = {"mlctl.io/cluster": str(cluster.get("name", "")), "mlctl.io/spec-hash": spec.spec_hash,
                   "mlctl.io/user": user, "mlctl.io/gpus": str(spec.workers * spec.resources.gpus)}
    url = output_url(spec, s3, user, run)
    if url:
        annotations["mlctl.io/output-url"] = url
    if run:
        annotations["mlctl.io/run"] = run
    if pool_of(spec, cluster).get("preemptible"):
        annotations["mlctl.io/preemptible"] = "true"
    run_policy: dict[str, Any] = {"backoffLimit": backoff_limit, "cleanPodPolicy": "None",
                                  "ttlSecondsAfterFinished": spec.ttl_seconds_after_finished}
    if spec.active_deadline_seconds is not None:
        run_policy["activeDeadlineSeconds"] = spec.active_deadline_seconds
    replica_specs = {
        replica: {"replicas": count, "restartPolicy": restart_policy,
                  "template": _pod_template(spec, cluster, replica, labels, s3, url)}
        for replica, count in spec.replicas().items()
    }
    job = {
        "apiVersion": KUBEFLOW_API,
        "kind": kind,
        "metadata": {"name": spec.name, "namespace": namespace, "labels": labels,
                     "annotations": dict(sorted(annotations.items()))},
        "spec": {"runPolicy": dict(sorted(run_policy.items())), replica_field: replica_specs},
    }
    return [job]
