"""The Notebook API on the sandbox's cluster local, used as a namespace owner (alice, after `mlctl admin sync`).

These tests run against the sandbox's own notebook controller (mlctl/sandbox/notebookcontroller.py), which stands
in for the upstream Kubeflow notebook-controller and implements its contract (docs/notebook-controller.md): a
StatefulSet and a Service of the Notebook's name, the stop annotation scaling it to zero, status mirrored from
the pod, pod and StatefulSet events re-emitted on the Notebook, and claims of the default StorageClass bound.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import mlctl
from tests.integration.test_train import tenants  # noqa: F401 - fixture: admin sync done

pytestmark = pytest.mark.integration

NAMESPACE = "u-alice"
SIMULATED = "registry.example.org/ml/jupyter-scipy:1"  # not a sandbox image: kwok runs the pod


@pytest.fixture
def alice(sandbox, tenants, tmp_path):  # noqa: F811 - tenants is a fixture
    """A Kube on cluster local as alice, logged in through Keycloak (mlctl login + mlctl token)."""
    from mlctl.kube.api import Kube

    env = {"XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "KUBECONFIG": str(tmp_path / "kubeconfig")}
    r = mlctl("login", "--platform", str(sandbox.platform_file), "--password", "-u", "alice", "--no-kubeconfig",
              stdin="alice-pw\n", env=env)
    assert r.code == 0, r.err

    def token() -> str:
        r = mlctl("token", "--cluster", "local", env=env)
        assert r.code == 0, r.err
        return json.loads(r.out)["status"]["token"]

    entry = next(c for c in sandbox.platform["clusters"] if c["name"] == "local")
    kube = Kube(entry["server"], "local", ca_data=base64.b64decode(entry["certificateAuthorityData"]), token=token)
    yield kube
    kube.close()


def notebook(name: str, image: str, *, claim: str | None = None, command: list[str] | None = None) -> dict:
    """A Notebook as a user writes it: the pod spec of a vGPU-pool notebook, a workspace claim at /home/jovyan."""
    vgpu = {"nodeSelector": {"mlctl.io/pool": "vgpu"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}
    container = {"name": name, "image": image,
                 "resources": {"requests": {"cpu": "500m", "memory": "1Gi", "nvidia.com/gpu.shared": "1"},
                               "limits": {"cpu": "1", "memory": "2Gi", "nvidia.com/gpu.shared": "1"}}}
    spec = {**vgpu, "containers": [container]}
    if command:
        container["command"] = command
    if claim:
        container["volumeMounts"] = [{"name": "workspace", "mountPath": "/home/jovyan"}]
        spec["volumes"] = [{"name": "workspace", "persistentVolumeClaim": {"claimName": claim}}]
    return {"apiVersion": "kubeflow.org/v1", "kind": "Notebook",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"mlctl.io/test": "true"}},
            "spec": {"template": {"spec": spec}}}


def workspace(name: str, size: str = "1Gi") -> dict:
    """A claim that names no class: the API server's DefaultStorageClass admission gives it `standard`."""
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}}


def status(kube, name: str) -> dict:
    return (kube.get("Notebook", name, NAMESPACE).get("status") or {})


def ready(kube, name: str) -> bool:
    st = status(kube, name)
    return st.get("readyReplicas") == 1 and "running" in (st.get("containerState") or {}) and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])


def cleanup(kube, name: str, claim: str | None) -> None:
    from mlctl.errors import MlctlError

    for kind, obj in (("Notebook", name), ("PersistentVolumeClaim", claim)):
        if obj:
            try:
                kube.delete(kind, obj, NAMESPACE)
            except MlctlError:
                pass


def test_a_notebook_runs_as_a_statefulset_and_service_and_stops_and_starts(sandbox, alice):
    name, claim = f"nb{uuid.uuid4().hex[:6]}", None
    claim = f"{name}-workspace"
    admin = sandbox.kube()
    began = time.monotonic()
    try:
        alice.create(workspace(claim))
        created = alice.create(notebook(name, SIMULATED, claim=claim))
        uid = created["metadata"]["uid"]

        # the claim of the default class gets a volume of its own, bound to it
        pvc = sandbox.wait_for(lambda: (c := alice.get("PersistentVolumeClaim", claim, NAMESPACE))
                               and (c.get("status") or {}).get("phase") == "Bound" and c, 60, f"claim {claim} bound")
        assert pvc["spec"]["storageClassName"] == "standard"
        pv = admin.get("PersistentVolume", pvc["spec"]["volumeName"])
        assert pv["spec"]["claimRef"]["uid"] == pvc["metadata"]["uid"] and pv["status"]["phase"] == "Bound"

        # StatefulSet and Service of the Notebook's name, owned by it; alice may read both
        sts = sandbox.wait_for(lambda: alice.find("StatefulSet", name, NAMESPACE), 60, f"statefulset {name}")
        [owner] = sts["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == ("Notebook", name, uid, True)
        assert sts["spec"]["replicas"] == 1
        svc = alice.get("Service", name, NAMESPACE)
        assert svc["metadata"]["ownerReferences"][0]["uid"] == uid
        assert [(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(f"http-{name}", 80, 8888)]
        assert svc["spec"]["selector"] == {"statefulset": name}

        # its pod, with the controller's labels and NB_PREFIX, Ready; the status mirrors it
        pod = sandbox.wait_for(lambda: alice.find("Pod", f"{name}-0", NAMESPACE), 60, f"pod {name}-0")
        pod_seen = time.monotonic() - began
        assert pod["metadata"]["labels"]["statefulset"] == name and pod["metadata"]["labels"]["notebook-name"] == name
        [c] = pod["spec"]["containers"]
        assert {"name": "NB_PREFIX", "value": f"/notebook/{NAMESPACE}/{name}"} in c["env"]
        assert c["ports"][0]["containerPort"] == 8888 and c["ports"][0]["name"] == "notebook-port"
        sandbox.wait_for(lambda: ready(alice, name), 90, f"notebook {name} to be ready")
        ready_after = time.monotonic() - began
        st = status(alice, name)
        pod = alice.get("Pod", f"{name}-0", NAMESPACE)
        assert st["containerState"] == pod["status"]["containerStatuses"][0]["state"]
        assert {c["type"] for c in st["conditions"]} == {c["type"] for c in pod["status"]["conditions"]}

        # the pod's and the StatefulSet's events, re-emitted on the Notebook (alice reads them)
        def reissued() -> set[str]:
            return {e["message"].split(":", 1)[0] for e in alice.events(NAMESPACE, {name})
                    if e["involvedObject"]["kind"] == "Notebook" and e["message"].startswith("Reissued from")}

        sandbox.wait_for(lambda: {f"Reissued from pod/{name}-0", f"Reissued from statefulset/{name}"} <= reissued(),
                         60, "events re-emitted on the notebook")

        # stopped: zero replicas, no pod, readyReplicas 0; started again: back, with the same claim
        alice.patch("Notebook", name, {"metadata": {"annotations": {"kubeflow-resource-stopped": "now"}}}, NAMESPACE)
        sandbox.wait_for(lambda: alice.get("StatefulSet", name, NAMESPACE)["spec"]["replicas"] == 0, 30,
                         "the statefulset scaled to zero")
        sandbox.wait_for(lambda: alice.find("Pod", f"{name}-0", NAMESPACE) is None, 90, f"pod {name}-0 to go")
        sandbox.wait_for(lambda: status(alice, name).get("readyReplicas") == 0
                         and status(alice, name).get("containerState") == {}, 30, "the status of a stopped notebook")
        alice.patch("Notebook", name, {"metadata": {"annotations": {"kubeflow-resource-stopped": None}}}, NAMESPACE)
        sandbox.wait_for(lambda: ready(alice, name), 90, f"notebook {name} ready again")
        pod = alice.get("Pod", f"{name}-0", NAMESPACE)
        assert pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim

        # deleted: the garbage collector takes the StatefulSet, the Service and the pod; the claim stays
        alice.delete("Notebook", name, NAMESPACE)
        sandbox.wait_for(lambda: alice.find("StatefulSet", name, NAMESPACE) is None
                         and alice.find("Service", name, NAMESPACE) is None, 60, "statefulset and service to go")
        sandbox.wait_for(lambda: alice.find("Pod", f"{name}-0", NAMESPACE) is None, 90, f"pod {name}-0 to go")
        assert alice.get("PersistentVolumeClaim", claim, NAMESPACE)["status"]["phase"] == "Bound"

        # deleting the claim deletes its volume (no pod uses it any more)
        alice.delete("PersistentVolumeClaim", claim, NAMESPACE)
        sandbox.wait_for(lambda: admin.find("PersistentVolumeClaim", claim, NAMESPACE) is None, 60, "the claim to go")
        sandbox.wait_for(lambda: admin.find("PersistentVolume", pv["metadata"]["name"]) is None, 60, "its volume to go")
        print(f"notebook {name}: pod created after {pod_seen:.1f} s, Ready after {ready_after:.1f} s")
    finally:
        cleanup(alice, name, claim)


def test_a_deleted_service_is_made_again(sandbox, alice):
    name = f"nb{uuid.uuid4().hex[:6]}"
    try:
        alice.create(notebook(name, SIMULATED))
        first = sandbox.wait_for(lambda: alice.find("Service", name, NAMESPACE), 60, f"service {name}")
        alice.delete("Service", name, NAMESPACE)
        again = sandbox.wait_for(lambda: (s := alice.find("Service", name, NAMESPACE)) and
                                 s["metadata"]["uid"] != first["metadata"]["uid"] and s, 60, f"service {name} again")
        assert again["spec"]["ports"][0]["port"] == 80
    finally:
        cleanup(alice, name, None)


def test_refusals_reach_the_notebook_as_warnings(sandbox, alice):
    """Over the namespace's quota, the StatefulSet's FailedCreate is re-emitted on the Notebook; a pod spec the
    API server refuses gives a Warning of the controller's own, and no StatefulSet."""
    over, invalid = f"nb{uuid.uuid4().hex[:6]}", f"nb{uuid.uuid4().hex[:6]}"
    try:
        big = notebook(over, SIMULATED)
        big["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "64"},
                                                                          "limits": {"cpu": "64"}}
        alice.create(big)
        bad = notebook(invalid, SIMULATED)
        bad["spec"]["template"]["spec"]["restartPolicy"] = "Sometimes"
        alice.create(bad)

        def warnings(name: str) -> list[dict]:
            return [e for e in alice.events(NAMESPACE, {name})
                    if e["involvedObject"]["kind"] == "Notebook" and e["type"] == "Warning"]

        quota = sandbox.wait_for(lambda: [e for e in warnings(over) if "exceeded quota" in e["message"]], 60,
                                 "the quota refusal on the notebook")
        assert quota[0]["reason"] == "FailedCreate"
        assert quota[0]["message"].startswith(f"Reissued from statefulset/{over}: ")
        # the StatefulSet controller retries and repeats its event: counted on one re-emitted event
        sandbox.wait_for(lambda: any(e.get("count", 1) > 1 for e in warnings(over) if "exceeded quota" in e["message"]),
                         60, "the repeated refusal counted on the notebook's event")
        assert alice.find("Pod", f"{over}-0", NAMESPACE) is None
        refused = sandbox.wait_for(lambda: warnings(invalid), 60, "the refusal of an invalid pod spec")
        assert refused[0]["reason"] == "FailedCreate" and "restartPolicy" in refused[0]["message"]
        assert alice.find("StatefulSet", invalid, NAMESPACE) is None
    finally:
        cleanup(alice, over, None)
        cleanup(alice, invalid, None)


def test_owners_roles_aggregate_the_notebook_rules(sandbox, alice):
    """kubeflow-notebooks-edit/-view aggregate into Kubernetes' admin/edit/view and kubeflow-notebooks-admin;
    alice, who owns u-alice, may create notebooks, claims and secrets there, and read StatefulSets, pods and
    events, but not in bob's namespace."""
    kube = sandbox.kube()

    def rules(role: str) -> list[dict]:
        return kube.get("ClusterRole", role).get("rules") or []

    def allows(role: str, verb: str) -> bool:
        return any("kubeflow.org" in r.get("apiGroups", []) and "notebooks" in r.get("resources", [])
                   and verb in r.get("verbs", []) for r in rules(role))

    sandbox.wait_for(lambda: allows("kubeflow-notebooks-admin", "create"), 30, "kubeflow-notebooks-admin aggregated")
    for role, verb in (("admin", "create"), ("edit", "delete"), ("view", "list")):
        sandbox.wait_for(lambda r=role, v=verb: allows(r, v), 30, f"notebooks in ClusterRole {role}")
    assert not allows("view", "create")

    def can(verb: str, resource: str, namespace: str, group: str = "") -> bool:
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                  "spec": {"resourceAttributes": {"namespace": namespace, "verb": verb, "group": group,
                                                  "resource": resource}}}
        out = alice.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body=review,
                            what="asking the API server")
        return bool(out["status"].get("allowed"))

    for verb, resource, group in (("create", "notebooks", "kubeflow.org"), ("delete", "notebooks", "kubeflow.org"),
                                  ("create", "persistentvolumeclaims", ""), ("create", "secrets", ""),
                                  ("get", "statefulsets", "apps"), ("list", "pods", ""), ("list", "events", "")):
        assert can(verb, resource, NAMESPACE, group), (verb, resource)
        assert not can(verb, resource, "u-bob", group), (verb, resource)


def test_the_controller_picks_up_what_changed_while_it_was_down(sandbox, alice):
    """The controller is a sandbox process like any other: stopped, the next `up` starts it again, and it
    reconciles the Notebooks made meanwhile from its first list."""
    from mlctl.sandbox import notebooks, runner

    name = f"nb{uuid.uuid4().hex[:6]}"
    state = sandbox.state
    try:
        assert state.stop(notebooks.PROCESS)
        assert not sandbox.state.is_running(notebooks.PROCESS)
        alice.create(notebook(name, SIMULATED))
        runner.up(sandbox.root, only=[notebooks.NotebookController()])
        assert sandbox.state.is_running(notebooks.PROCESS)
        sandbox.wait_for(lambda: ready(alice, name), 90, f"notebook {name} made while the controller was down")
        assert alice.find("Service", name, NAMESPACE) is not None
    finally:
        cleanup(alice, name, None)
        if not sandbox.state.is_running(notebooks.PROCESS):
            runner.up(sandbox.root, only=[notebooks.NotebookController()])


NOTEBOOK_IMAGE = "mlctl.sandbox/notebook:1"


def test_a_notebook_of_the_real_image_serves_jupyterlab_under_its_prefix(sandbox, alice, tmp_path):
    """The sandbox's notebook image runs for real (the pod runner): the pod the controller makes from alice's
    Notebook serves JupyterLab's API at NB_PREFIX through the gateway and the Service `<name>`."""
    import http.client
    import ssl

    name, claim = f"nb{uuid.uuid4().hex[:6]}", None
    claim = f"{name}-workspace"
    gateway = sandbox.platform["gateway"]
    ca = tmp_path / "ca.crt"
    ca.write_bytes(base64.b64decode(gateway["certificateAuthorityData"]))
    ctx = ssl.create_default_context(cafile=str(ca))
    host, port = gateway["url"].removeprefix("https://").split(":")
    token = alice._token()

    def get(path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=30)
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    try:
        alice.create(workspace(claim))
        nb = notebook(name, NOTEBOOK_IMAGE, claim=claim)
        c = nb["spec"]["template"]["spec"]["containers"][0]
        c["env"] = [{"name": "HOME", "value": "/home/jovyan"}]
        c["resources"]["limits"]["memory"] = "4Gi"
        alice.create(nb)
        sandbox.wait_for(lambda: ready(alice, name), 180, f"notebook {name} of the real image to be ready")
        pod = alice.get("Pod", f"{name}-0", NAMESPACE)
        assert pod["status"]["containerStatuses"][0]["containerID"].startswith("mlctl://")  # a real process
        status = sandbox.wait_for(lambda: (r := get(f"/notebook/{NAMESPACE}/{name}/api/status"))[0] == 200 and r,
                                  120, "JupyterLab to answer through the gateway")
        assert "started" in json.loads(status[1])
        code, _ = get(f"/notebook/{NAMESPACE}/{name}/lab")
        assert code == 200

        # the workspace: the volume provisioned for the claim is the directory JupyterLab serves as $HOME
        pvc = alice.get("PersistentVolumeClaim", claim, NAMESPACE)
        volume = sandbox.kube().get("PersistentVolume", pvc["spec"]["volumeName"])
        marker = f"written beside the notebook {uuid.uuid4().hex}"
        (Path(volume["spec"]["hostPath"]["path"]) / "hello.txt").write_text(marker)

        def content() -> str | None:
            code, body = get(f"/notebook/{NAMESPACE}/{name}/api/contents/hello.txt?content=1")
            return json.loads(body)["content"] if code == 200 else None

        assert sandbox.wait_for(content, 30, "JupyterLab to serve the workspace file") == marker
    finally:
        cleanup(alice, name, claim)
