"""render(): golden files for both frameworks × both clusters, and the rules the golden files encode.

MLCTL_UPDATE_GOLDEN=1 rewrites tests/unit/golden/<example>-<cluster>.yaml; review the diff before keeping it.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

from mlctl.errors import UsageError
from mlctl.jobs import load_spec, render
from mlctl.jobs.render import label_value

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
GOLDEN = HERE / "golden"
CLUSTERS = {c["name"]: c for c in yaml.safe_load((GOLDEN / "inputs" / "platform-clusters.yaml").read_text())}
S3 = {"endpoint": "https://s3.sandbox.test:9000"}
EXAMPLES = {"3dgan": "3dgan.yaml", "mnist-pytorch": "mnist-pytorch.yaml"}


def spec_of(example: str, cluster: str | None = None, sets=()):
    text = (ROOT / "examples" / EXAMPLES[example]).read_text()
    return load_spec(text, EXAMPLES[example], sets=sets, cluster=cluster)


def rendered(example="3dgan", cluster="local", sets=(), user="jdoe", s3=S3):
    return render(spec_of(example, cluster, sets), CLUSTERS[cluster], user=user, namespace="u-jdoe", s3=s3)


def job_of(*args, **kwargs) -> dict:
    objects = rendered(*args, **kwargs)
    assert len(objects) == 1
    return objects[0]


def replicas_of(job: dict) -> dict:
    return job["spec"]["tfReplicaSpecs" if job["kind"] == "TFJob" else "pytorchReplicaSpecs"]


def containers(job: dict):
    for replica in replicas_of(job).values():
        yield replica["template"]["spec"]["containers"][0]


# ---- golden files --------------------------------------------------------------------------------------

@pytest.mark.parametrize("cluster", ["local", "gcp"])
@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_golden(example, cluster):
    text = yaml.safe_dump_all(rendered(example, cluster), sort_keys=True, default_flow_style=False)
    golden = GOLDEN / f"{example}-{cluster}.yaml"
    if os.environ.get("MLCTL_UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert golden.exists(), f"{golden.name} is missing: run MLCTL_UPDATE_GOLDEN=1 pytest {__file__}"
    assert text == golden.read_text(), "render output changed; if intended, rerun with MLCTL_UPDATE_GOLDEN=1"


def test_output_is_deterministic_and_inputs_untouched():
    spec = spec_of("3dgan", "gcp")
    cluster = copy.deepcopy(CLUSTERS["gcp"])
    first = render(spec, cluster, user="jdoe", namespace="u-jdoe", s3=S3)
    assert cluster == CLUSTERS["gcp"]
    assert render(spec, cluster, user="jdoe", namespace="u-jdoe", s3=S3) == first
    assert yaml.safe_dump(first) == yaml.safe_dump(render(spec, cluster, user="jdoe", namespace="u-jdoe", s3=S3))


# ---- shape ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("example,kind,field,lead,container", [
    ("3dgan", "TFJob", "tfReplicaSpecs", "Chief", "tensorflow"),
    ("mnist-pytorch", "PyTorchJob", "pytorchReplicaSpecs", "Master", "pytorch"),
])
@pytest.mark.parametrize("workers", [1, 2, 7])
def test_workers_become_a_lead_plus_workers(example, kind, field, lead, container, workers):
    job = job_of(example, "local", sets=[f"workers={workers}"])
    assert job["apiVersion"] == "kubeflow.org/v1" and job["kind"] == kind
    specs = job["spec"][field]
    assert specs[lead]["replicas"] == 1
    assert specs.get("Worker", {"replicas": 0})["replicas"] == workers - 1
    assert set(specs) == ({lead, "Worker"} if workers > 1 else {lead})
    assert all(c["name"] == container for c in containers(job))


def test_gcp_burst_gets_its_pool_and_the_override():
    job = job_of("3dgan", "gcp")
    worker = replicas_of(job)["Worker"]
    assert worker["replicas"] == 15
    pod = worker["template"]["spec"]
    assert pod["nodeSelector"]["mlctl.io/pool"] == "gpu"
    assert {"key": "cloud.google.com/gke-preemptible", "operator": "Equal", "value": "true",
            "effect": "NoSchedule"} in pod["tolerations"]
    resources = pod["containers"][0]["resources"]
    assert resources["requests"] == resources["limits"] == {"cpu": "32", "memory": "200Gi", "nvidia.com/gpu": "8"}
    assert job["spec"]["runPolicy"]["activeDeadlineSeconds"] == 21600
    assert pod["volumes"] == [{"name": "showers", "persistentVolumeClaim": {"claimName": "3dgan-showers",
                                                                           "readOnly": True}}]


def test_cpu_pool_has_no_gpu_resource_and_no_tolerations():
    job = job_of("mnist-pytorch", "local", sets=["resources.gpus=0", "resources.pool=cpu"])
    for container in containers(job):
        assert "nvidia.com/gpu" not in container["resources"]["requests"]
    pod = replicas_of(job)["Master"]["template"]["spec"]
    assert "tolerations" not in pod and pod["nodeSelector"] == {"mlctl.io/pool": "cpu"}


def test_data_mounts_are_always_read_only():
    job = job_of("3dgan", "local")
    for container in containers(job):
        assert container["volumeMounts"] and all(m["readOnly"] is True for m in container["volumeMounts"])
    pod = replicas_of(job)["Chief"]["template"]["spec"]
    assert pod["volumes"][0]["hostPath"] == {"path": "/eos/project/ml/3dgan/showers", "type": "Directory"}


def test_output_env_uses_the_secret_and_never_a_value():
    job = job_of("3dgan", "local", sets=["output.secret=team-s3"])
    for container in containers(job):
        env = {e["name"]: e for e in container["env"]}
        assert env["MLCTL_OUTPUT_URL"]["value"] == env["OUTPUT_URL"]["value"] == "s3://ml-outputs/3dgan/"
        assert env["AWS_ENDPOINT_URL"]["value"] == S3["endpoint"]
        assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(env)  # only through envFrom
        assert container["envFrom"] == [{"secretRef": {"name": "team-s3"}}]
        names = [e["name"] for e in container["env"]]
        assert names.index("MLCTL_OUTPUT_URL") < names.index("TF_CPP_MIN_LOG_LEVEL")  # user vars may use $(...)


def test_no_s3_env_without_platform_s3_or_output():
    job = job_of("3dgan", "local", s3=None)
    assert all("AWS_ENDPOINT_URL" not in {e["name"] for e in c["env"]} for c in containers(job))
    text = (ROOT / "examples" / "3dgan.yaml").read_text().replace("output: s3://ml-outputs/3dgan/\n", "")
    bare = render(load_spec(text, "x.yaml"), CLUSTERS["local"], user="u", namespace="n", s3=None)[0]
    for c in containers(bare):
        assert not {e["name"] for e in c.get("env", [])} & {"OUTPUT_URL", "MLCTL_OUTPUT_URL", "AWS_ENDPOINT_URL"}
        assert "envFrom" not in c
    assert "mlctl.io/output-url" not in bare["metadata"]["annotations"]


PLATFORM_S3 = {"endpoint": "https://s3.lab.test", "region": "eu-west-1", "buckets": {"outputs": "lab-outputs"},
               "prefix": "{user}/", "podCaBundle": "/etc/mlctl/s3-ca.crt"}
RUN = "20261129T080000Z-3f9a1c"


def test_a_run_writes_under_the_platform_layout_with_the_users_secret():
    text = (ROOT / "examples" / "3dgan.yaml").read_text().replace("output: s3://ml-outputs/3dgan/\n", "")
    job = render(load_spec(text, "x.yaml"), CLUSTERS["local"], user="alice", namespace="u-alice",
                 s3=PLATFORM_S3, run=RUN)[0]
    url = f"s3://lab-outputs/alice/gan3d/{RUN}/"
    notes = job["metadata"]["annotations"]
    assert (notes["mlctl.io/output-url"], notes["mlctl.io/run"]) == (url, RUN)
    for c in containers(job):
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["OUTPUT_URL"] == env["MLCTL_OUTPUT_URL"] == url
        assert (env["AWS_ENDPOINT_URL"], env["AWS_DEFAULT_REGION"], env["AWS_CA_BUNDLE"]) == (
            "https://s3.lab.test", "eu-west-1", "/etc/mlctl/s3-ca.crt")
        assert c["envFrom"] == [{"secretRef": {"name": "mlctl-s3"}}]


def test_two_runs_of_one_spec_differ_only_in_the_run():
    text = (ROOT / "examples" / "3dgan.yaml").read_text().replace("output: s3://ml-outputs/3dgan/\n", "")
    spec = load_spec(text, "x.yaml")
    a = render(spec, CLUSTERS["local"], user="alice", namespace="u-alice", s3=PLATFORM_S3, run=RUN)
    b = render(spec, CLUSTERS["local"], user="alice", namespace="u-alice", s3=PLATFORM_S3,
               run="20261129T090000Z-000000")
    assert a != b
    assert yaml.safe_dump(a).replace(RUN, "20261129T090000Z-000000") == yaml.safe_dump(b)


def test_a_spec_output_url_wins_over_the_layout():
    job = render(spec_of("3dgan", "local"), CLUSTERS["local"], user="alice", namespace="u-alice",
                 s3=PLATFORM_S3, run=RUN)[0]
    assert job["metadata"]["annotations"]["mlctl.io/output-url"] == "s3://ml-outputs/3dgan/"


@pytest.mark.parametrize("name", ["OUTPUT_URL", "AWS_CA_BUNDLE"])
def test_the_variables_mlctl_sets_are_refused_in_env(name):
    text = (ROOT / "examples" / "3dgan.yaml").read_text().replace("  TF_CPP_MIN_LOG_LEVEL: 2", f"  {name}: x")
    with pytest.raises(UsageError, match=name):
        load_spec(text, "x.yaml")


def test_labels_and_annotations_tie_the_job_to_user_and_spec():
    job = job_of("3dgan", "local", user="Jane.Doe@cern.ch")
    labels = job["metadata"]["labels"]
    assert labels == {"app.kubernetes.io/managed-by": "mlctl", "mlctl.io/spec-name": "gan3d",
                      "mlctl.io/user": "Jane.Doe-cern.ch"}
    assert job["metadata"]["annotations"]["mlctl.io/user"] == "Jane.Doe@cern.ch"
    assert job["metadata"]["annotations"]["mlctl.io/spec-hash"] == spec_of("3dgan", "local").spec_hash
    for replica in replicas_of(job).values():
        assert replica["template"]["metadata"]["labels"] == labels
        assert replica["template"]["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
    other = job_of("3dgan", "local", sets=["workers=2"])
    assert other["metadata"]["annotations"]["mlctl.io/spec-hash"] != job["metadata"]["annotations"]["mlctl.io/spec-hash"]


@pytest.mark.parametrize("user,label", [("jdoe", "jdoe"), ("a@b", "a-b"), ("-x-", "x"), ("é" * 3 + "z", "z"),
                                        ("u" * 80, "u" * 63)])
def test_label_value(user, label):
    assert label_value(user) == label


def test_run_policy_and_restart_policy():
    job = job_of("3dgan", "local", sets=["restartPolicy=OnFailure", "backoffLimit=7", "ttlSecondsAfterFinished=60"])
    assert job["spec"]["runPolicy"] == {"backoffLimit": 7, "cleanPodPolicy": "None", "ttlSecondsAfterFinished": 60}
    assert all(r["restartPolicy"] == "OnFailure" for r in replicas_of(job).values())


def test_simulate_annotations():
    job = job_of("3dgan", "local")
    for replica in replicas_of(job).values():
        notes = replica["template"]["metadata"]["annotations"]
        assert notes["mlctl.io/run-seconds"] == "8" and "mlctl.io/exit-code" not in notes
    everyone = job_of("3dgan", "local", sets=["simulate.exitCode=3"])
    assert all(r["template"]["metadata"]["annotations"]["mlctl.io/exit-code"] == "3"
               for r in replicas_of(everyone).values())
    one = replicas_of(job_of("3dgan", "local", sets=["simulate.failReplica=Worker-1"]))
    assert one["Worker"]["template"]["metadata"]["annotations"]["mlctl.io/exit-code"] == "1"
    assert one["Worker"]["template"]["metadata"]["annotations"]["mlctl.io/fail-index"] == "1"
    assert "mlctl.io/exit-code" not in one["Chief"]["template"]["metadata"]["annotations"]
    plain = job_of("3dgan", "local", sets=["simulate={}"])
    assert all("mlctl.io/run-seconds" not in r["template"]["metadata"]["annotations"]
               for r in replicas_of(plain).values())


def test_unknown_pool_lists_the_clusters_pools():
    with pytest.raises(UsageError) as info:
        rendered("3dgan", "gcp", sets=["resources.pool=vgpu"])
    assert info.value.message == "cluster gcp has no pool vgpu (its pools: gpu)"
    with pytest.raises(UsageError, match=r"its pools: cpu, gpu, vgpu"):
        rendered("3dgan", "local", sets=["resources.pool=tpu"])


def test_gpus_on_a_pool_without_gpus():
    with pytest.raises(UsageError, match="pool cpu of cluster local has no GPUs"):
        rendered("3dgan", "local", sets=["resources.pool=cpu"])


def test_preemptible_pools_get_a_restart_policy_and_backoff_that_survive_lost_nodes():
    from mlctl.jobs.render import preemption_policy

    spec = spec_of("3dgan", "gcp", ["restartPolicy=Never"])
    assert preemption_policy(spec, CLUSTERS["gcp"]) == ("ExitCode", 3 + 16)
    (job,) = render(spec, CLUSTERS["gcp"], user="jdoe", namespace="u-jdoe")
    assert {r["restartPolicy"] for r in job["spec"]["tfReplicaSpecs"].values()} == {"ExitCode"}
    local = spec_of("3dgan", "local", ["restartPolicy=Never"])
    assert preemption_policy(local, CLUSTERS["local"]) == ("Never", 3)
