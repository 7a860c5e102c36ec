"""`mlctl serve create`'s options -> a KServe v1beta1 InferenceService (a plain dict), and reading one back.

Pure and deterministic, like the job renderer: `--dry-run=client` needs no cluster. Decisions (docs/serve.md):
- the deployment mode is the cluster's (`serving.deploymentMode` in its platform entry, RawDeployment when
  unset); in RawDeployment KServe's HPA scales on CPU only, so `--target-concurrency` needs Serverless;
- a pool gives the predictor its node selector, tolerations and GPU resource name, as for training;
- requests equal limits (Guaranteed QoS, and it satisfies a quota on either requests.* or limits.*);
- the model server reads the model from S3 with the namespace's `mlctl-s3` Secret and the platform's
  endpoint, region and CA, exactly as a training job writes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mlctl.errors import UsageError

API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"
MANAGED_BY = "mlctl"
RAW, SERVERLESS = "RawDeployment", "Serverless"
DEFAULT_SECRET = "mlctl-s3"
# KServe's own model formats (its ClusterServingRuntimes) and the platform's 3dgan generator.
FRAMEWORKS = ("3dgan", "huggingface", "lightgbm", "mlflow", "onnx", "paddle", "pmml", "pytorch", "sklearn",
              "tensorflow", "triton", "xgboost")
MODEL_ANNOTATION = "mlctl.io/model"
JOB_ANNOTATION = "mlctl.io/job"
RUN_ANNOTATION = "mlctl.io/run"
# KServe's predictor objects are <name>-predictor; a label value holds 63 characters.
MAX_NAME = 63 - len("-predictor")
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class ServeOptions:
    name: str
    model_uri: str
    framework: str
    gpus: int = 0
    pool: str | None = None
    cpu: str = "1"
    memory: str = "4Gi"
    min_replicas: int = 1
    max_replicas: int | None = None
    target_utilization: int | None = None
    target_concurrency: int | None = None
    job: str | None = None  # the training job the model came from (--model JOB)
    run: str | None = None

    @property
    def pool_name(self) -> str:
        return self.pool or ("gpu" if self.gpus else "cpu")

    @property
    def max(self) -> int:
        return self.max_replicas if self.max_replicas is not None else self.min_replicas


def check_name(name: str) -> str:
    if not _NAME.match(name) or len(name) > MAX_NAME:
        raise UsageError(f"{name!r} is not a valid service name: lower-case letters, digits and '-', starting "
                         f"with a letter, at most {MAX_NAME} characters")
    return name


def check_framework(framework: str) -> str:
    if framework not in FRAMEWORKS:
        raise UsageError(f"unknown framework {framework!r}", hint=f"use one of: {', '.join(FRAMEWORKS)}")
    return framework


def deployment_mode(cluster: dict) -> str:
    mode = (cluster.get("serving") or {}).get("deploymentMode") if isinstance(cluster.get("serving"), dict) else None
    return str(mode or RAW)


def validate(opts: ServeOptions, cluster: dict) -> None:
    """UsageError (exit 2) for options KServe would refuse or silently ignore."""
    check_name(opts.name)
    check_framework(opts.framework)
    if opts.gpus < 0:
        raise UsageError("--gpus must be 0 or more")
    if opts.min_replicas < 1:
        raise UsageError("--min-replicas must be at least 1",
                         hint="scale to zero needs KServe's Serverless mode; this platform runs RawDeployment")
    if opts.max < opts.min_replicas:
        raise UsageError(f"--max-replicas {opts.max} is below --min-replicas {opts.min_replicas}")
    if opts.target_utilization is not None and opts.target_concurrency is not None:
        raise UsageError("--target-utilization and --target-concurrency exclude each other")
    if opts.target_utilization is not None and not 1 <= opts.target_utilization <= 100:
        raise UsageError("--target-utilization is a CPU percentage between 1 and 100")
    if opts.target_concurrency is not None:
        if opts.target_concurrency < 1:
            raise UsageError("--target-concurrency must be at least 1")
        if deployment_mode(cluster) != SERVERLESS:
            raise UsageError(f"cluster {cluster.get('name', '?')} serves in KServe's {deployment_mode(cluster)} "
                             "mode, whose HPA scales on CPU only; --target-concurrency needs Serverless (Knative)",
                             hint="use --target-utilization PERCENT")


def as_job_spec(opts: ServeOptions, replicas: int):
    """The predictor as a job spec of `replicas` workers, so training's capacity and quota checks
    (jobs/check.py) apply unchanged."""
    from mlctl.jobs.spec import Resources, Spec

    return Spec(name=opts.name, framework="tensorflow", image="-", workers=replicas,
                resources=Resources(gpus=opts.gpus, cpu=opts.cpu, memory=opts.memory, pool=opts.pool_name))


def _s3_env(s3: dict | None) -> list[dict]:
    env = []
    if s3 and s3.get("endpoint"):
        env.append({"name": "AWS_ENDPOINT_URL", "value": str(s3["endpoint"])})
    if s3 and s3.get("region"):
        env.append({"name": "AWS_DEFAULT_REGION", "value": str(s3["region"])})
    if s3 and s3.get("podCaBundle"):
        env.append({"name": "AWS_CA_BUNDLE", "value": str(s3["podCaBundle"])})
    return env


def inference_service(opts: ServeOptions, cluster: dict, *, namespace: str, user: str,
                      s3: dict | None = None) -> dict:
    """The InferenceService `mlctl serve create` creates (validate() first)."""
    from mlctl.jobs.render import gpu_resource, label_value, pool_of

    validate(opts, cluster)
    spec = as_job_spec(opts, opts.min_replicas)
    pool = pool_of(spec, cluster)
    amounts = {"cpu": opts.cpu, "memory": opts.memory}
    gpu = gpu_resource(spec, cluster)
    if gpu:
        amounts[gpu] = str(opts.gpus)
    resources = {"requests": dict(sorted(amounts.items())), "limits": dict(sorted(amounts.items()))}
    mode = deployment_mode(cluster)
    model: dict[str, Any] = {"modelFormat": {"name": opts.framework}, "storageUri": opts.model_uri,
                             "resources": resources}
    env = _s3_env(s3)
    if env:
        model["env"] = env
    if opts.model_uri.startswith("s3://"):
        model["envFrom"] = [{"secretRef": {"name": DEFAULT_SECRET}}]
    predictor: dict[str, Any] = {"minReplicas": opts.min_replicas, "maxReplicas": opts.max}
    if opts.target_utilization is not None:
        predictor["scaleMetric"] = "cpu"
        predictor["scaleTarget"] = opts.target_utilization
    elif opts.target_concurrency is not None:
        predictor["scaleMetric"] = "concurrency"
        predictor["scaleTarget"] = opts.target_concurrency
    node_selector = pool.get("nodeSelector") or {}
    if node_selector:
        predictor["nodeSelector"] = {str(k): str(v) for k, v in sorted(node_selector.items())}
    tolerations = [dict(sorted(t.items())) for t in pool.get("tolerations") or [] if isinstance(t, dict)]
    if tolerations:
        predictor["tolerations"] = tolerations
    predictor["model"] = model
    annotations = {"serving.kserve.io/deploymentMode": mode, "mlctl.io/cluster": str(cluster.get("name", "")),
                   "mlctl.io/user": user, MODEL_ANNOTATION: opts.job or opts.model_uri}
    if mode == RAW:
        annotations["serving.kserve.io/autoscalerClass"] = "hpa"
    if opts.job:
        annotations[JOB_ANNOTATION] = opts.job
    if opts.run:
        annotations[RUN_ANNOTATION] = opts.run
    labels = {"app.kubernetes.io/managed-by": MANAGED_BY, "mlctl.io/user": label_value(user)}
    return {"apiVersion": API_VERSION, "kind": KIND,
            "metadata": {"name": opts.name, "namespace": namespace, "labels": labels,
                         "annotations": dict(sorted(annotations.items()))},
            "spec": {"predictor": predictor}}


def scale_patch(min_replicas: int | None, max_replicas: int | None, target_utilization: int | None,
                current: dict) -> dict:
    """The merge patch of `mlctl serve scale`, checked against the service's current bounds."""
    predictor = (current.get("spec") or {}).get("predictor") or {}
    current_min = int(predictor.get("minReplicas") or 1)
    lo = min_replicas if min_replicas is not None else current_min
    hi = max_replicas if max_replicas is not None else (int(predictor.get("maxReplicas") or 0) or current_min)
    if min_replicas is None and max_replicas is None and target_utilization is None:
        raise UsageError("nothing to change", hint="pass --min-replicas, --max-replicas or --target-utilization")
    if lo < 1:
        raise UsageError("--min-replicas must be at least 1")
    if hi < lo:
        raise UsageError(f"max replicas {hi} would be below min replicas {lo}")
    if target_utilization is not None and not 1 <= target_utilization <= 100:
        raise UsageError("--target-utilization is a CPU percentage between 1 and 100")
    change: dict[str, Any] = {"minReplicas": lo, "maxReplicas": hi}
    if target_utilization is not None:
        change.update(scaleMetric="cpu", scaleTarget=target_utilization)
    return {"spec": {"predictor": change}}


# ---- reading an InferenceService back ------------------------------------------------------------------

def predictor_name(name: str) -> str:
    """KServe's RawDeployment objects for the predictor: Deployment, Service and HPA share this name."""
    return f"{name}-predictor"


def condition(isvc: dict, kind: str = "Ready") -> dict:
    for c in (isvc.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return c
    return {}


def state(isvc: dict) -> str:
    """Ready, NotReady (with a failing condition) or Pending (no status yet); Deleting once deleted."""
    if (isvc.get("metadata") or {}).get("deletionTimestamp"):
        return "Deleting"
    ready = condition(isvc)
    if ready.get("status") == "True":
        return "Ready"
    if ready:
        return "NotReady"
    return "Pending"


def reason(isvc: dict) -> str:
    """Why it is not ready: the Ready condition's, else the first false condition's reason and message."""
    for c in [condition(isvc)] + list((isvc.get("status") or {}).get("conditions") or []):
        if c and c.get("status") == "False" and (c.get("reason") or c.get("message")):
            return ": ".join(x for x in (c.get("reason"), c.get("message")) if x)
    failed = ((isvc.get("status") or {}).get("modelStatus") or {}).get("lastFailureInfo") or {}
    return ": ".join(x for x in (failed.get("reason"), failed.get("message")) if x)


def model_of(isvc: dict) -> dict:
    return ((isvc.get("spec") or {}).get("predictor") or {}).get("model") or {}


def bounds(isvc: dict) -> tuple[int, int]:
    predictor = (isvc.get("spec") or {}).get("predictor") or {}
    lo = int(predictor.get("minReplicas") or 1)
    return lo, max(int(predictor.get("maxReplicas") or 0), lo)


def target(isvc: dict) -> str:
    predictor = (isvc.get("spec") or {}).get("predictor") or {}
    metric, value = predictor.get("scaleMetric"), predictor.get("scaleTarget")
    if metric == "cpu" or (metric is None and value is not None):
        return f"cpu {value}%"
    if metric:
        return f"{metric} {value}"
    return "cpu 80% (KServe's default)" if bounds(isvc)[1] > bounds(isvc)[0] else "-"


def replicas(deployment: dict | None) -> dict[str, int]:
    status = (deployment or {}).get("status") or {}
    spec = (deployment or {}).get("spec") or {}
    return {"desired": int(spec.get("replicas") or 0), "current": int(status.get("replicas") or 0),
            "ready": int(status.get("readyReplicas") or 0)}
