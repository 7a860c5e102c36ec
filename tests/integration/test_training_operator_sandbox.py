"""The sandbox's training-operator turns TFJobs and PyTorchJobs into pods, and kwok's stages finish them.

Uses the fixtures of tests/integration/conftest.py: `sandbox` (session) and `namespace` (a fresh namespace
per test). Timeouts below bound the waiting; no test asserts on timing.
"""

from __future__ import annotations

import pytest

from mlctl.sandbox import training
from mlctl.sandbox.procs import State
from tests.integration.support import unavailable

pytestmark = pytest.mark.integration

GROUP, VERSION = "kubeflow.org", "v1"
JOB_NAME_LABEL = "training.kubeflow.org/job-name"
REPLICA_TYPE_LABEL = "training.kubeflow.org/replica-type"
CLUSTER = "local"
CONTEXT = f"sandbox-{CLUSTER}"


@pytest.fixture(scope="module")
def operator(sandbox):
    if not training.binary().is_file():
        message = f"{training.binary()} is missing: run python -m mlctl.sandbox.build training-operator"
        unavailable(message)
    training.install_crds(sandbox.kubeconfig, CONTEXT)
    # Idempotent: a no-op when `sandbox up` already started it.
    return training.start(State.load(sandbox.root), CLUSTER, sandbox.kubeconfig, CONTEXT)


@pytest.fixture
def custom(sandbox, operator):
    from kubernetes import client

    return client.CustomObjectsApi(sandbox.api(CLUSTER))


def replica(container: str, count: int, *, run_seconds: int = 3, exit_code: int = 0) -> dict:
    annotations = {"mlctl.io/run-seconds": str(run_seconds)}
    if exit_code:
        annotations["mlctl.io/exit-code"] = str(exit_code)
    return {
        "replicas": count,
        "restartPolicy": "Never",
        "template": {
            "metadata": {"annotations": annotations},
            "spec": {
                # kwok nodes carry their pools' taints; these pods only exercise the operator, so any node does.
                "tolerations": [{"operator": "Exists"}],
                "containers": [{"name": container, "image": "registry.example/mlctl/train:sandbox"}],
            },
        },
    }


def tfjob(name: str, *, chief_seconds: int = 3, worker_exit_code: int = 0) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "TFJob", "metadata": {"name": name},
        "spec": {"tfReplicaSpecs": {
            "Chief": replica("tensorflow", 1, run_seconds=chief_seconds),
            "Worker": replica("tensorflow", 2, exit_code=worker_exit_code),
        }},
    }


def pytorchjob(name: str) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "PyTorchJob", "metadata": {"name": name},
        "spec": {"pytorchReplicaSpecs": {"Master": replica("pytorch", 1), "Worker": replica("pytorch", 1)}},
    }


def wait_for_pods(sandbox, namespace: str, job: str, count: int) -> list:
    def pods():
        found = sandbox.core(CLUSTER).list_namespaced_pod(namespace, label_selector=f"{JOB_NAME_LABEL}={job}")
        return found.items if len(found.items) == count else None

    return sandbox.wait_for(pods, 60, f"{count} pods of {job}")


def wait_for_end(sandbox, custom, namespace: str, plural: str, name: str) -> str:
    """The job's terminal condition, Succeeded or Failed, once it has one."""

    def end():
        job = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
        for c in job.get("status", {}).get("conditions") or []:
            if c["type"] in ("Succeeded", "Failed") and c["status"] == "True":
                return c["type"]
        return None

    return sandbox.wait_for(end, 120, f"{plural}/{name} to finish")


def test_tfjob_creates_chief_and_worker_pods_and_succeeds(sandbox, namespace, custom):
    ns = namespace(CLUSTER)
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, "tfjobs", tfjob("mnist"))

    pods = wait_for_pods(sandbox, ns, "mnist", 3)
    assert sorted(p.metadata.labels[REPLICA_TYPE_LABEL] for p in pods) == ["chief", "worker", "worker"]
    assert all(p.metadata.annotations["mlctl.io/run-seconds"] == "3" for p in pods)

    assert wait_for_end(sandbox, custom, ns, "tfjobs", "mnist") == "Succeeded"


def test_pytorchjob_creates_master_and_worker_pods_and_succeeds(sandbox, namespace, custom):
    ns = namespace(CLUSTER)
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, "pytorchjobs", pytorchjob("resnet"))

    pods = wait_for_pods(sandbox, ns, "resnet", 2)
    assert sorted(p.metadata.labels[REPLICA_TYPE_LABEL] for p in pods) == ["master", "worker"]

    assert wait_for_end(sandbox, custom, ns, "pytorchjobs", "resnet") == "Succeeded"


def test_failing_worker_fails_the_tfjob(sandbox, namespace, custom):
    ns = namespace(CLUSTER)
    # The chief outlives the failing workers: a chief that succeeded first would mark the job Succeeded.
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, "tfjobs",
                                           tfjob("broken", chief_seconds=600, worker_exit_code=1))

    wait_for_pods(sandbox, ns, "broken", 3)
    assert wait_for_end(sandbox, custom, ns, "tfjobs", "broken") == "Failed"
