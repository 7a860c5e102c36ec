"""The sandbox notebook controller's pure parts (mlctl/sandbox/notebooks.py): what a Notebook yields, the status
mirrored from its pod, re-emitted events, and the volumes made for claims. The sandbox's controller stands in for
the upstream Kubeflow notebook-controller (docs/notebook-controller.md)."""

from __future__ import annotations

from pathlib import Path

from mlctl.sandbox import notebooks as nbs

NOW = "2026-12-01T12:00:00Z"
LATER = "2026-12-01T12:05:00Z"


def notebook(name="nb1", namespace="u-alice", *, annotations=None, labels=None, container=None, spec=None):
    c = {"name": name, "image": "mlctl.sandbox/notebook:1", **(container or {})}
    return {"apiVersion": "kubeflow.org/v1", "kind": "Notebook",
            "metadata": {"name": name, "namespace": namespace, "uid": "u-1234",
                         "annotations": annotations or {}, "labels": labels or {}},
            "spec": {"template": {"spec": {"containers": [c], **(spec or {})}}}}


def test_statefulset_follows_the_upstream_template():
    nb = notebook(labels={"team": "cms"}, annotations={"kubectl.kubernetes.io/last-applied-configuration": "{}",
                                                       "notebooks.kubeflow.org/server-type": "jupyter",
                                                       "mlctl.io/profile": "jupyterlab"})
    sts = nbs.statefulset(nb)
    assert sts["metadata"]["name"] == "nb1" and sts["metadata"]["namespace"] == "u-alice"
    assert sts["metadata"]["ownerReferences"] == [{"apiVersion": "kubeflow.org/v1", "kind": "Notebook",
                                                   "name": "nb1", "uid": "u-1234", "controller": True,
                                                   "blockOwnerDeletion": True}]
    spec = sts["spec"]
    assert spec["replicas"] == 1 and spec["selector"] == {"matchLabels": {"statefulset": "nb1"}}
    meta = spec["template"]["metadata"]
    assert meta["labels"] == {"statefulset": "nb1", "notebook-name": "nb1", "team": "cms"}
    # annotations naming kubectl or notebook stay on the Notebook, as upstream
    assert meta["annotations"] == {"mlctl.io/profile": "jupyterlab"}
    [c] = spec["template"]["spec"]["containers"]
    assert c["workingDir"] == "/home/jovyan"
    assert c["ports"] == [{"containerPort": 8888, "name": "notebook-port", "protocol": "TCP"}]
    assert c["env"] == [{"name": "NB_PREFIX", "value": "/notebook/u-alice/nb1"}]
    assert spec["template"]["spec"]["securityContext"] == {"fsGroup": 100}
    # the Notebook itself is not changed
    assert "env" not in nb["spec"]["template"]["spec"]["containers"][0]


def test_statefulset_keeps_what_the_spec_sets():
    nb = notebook(container={"workingDir": "/work", "ports": [{"containerPort": 9000, "name": "lab"}],
                             "env": [{"name": "HOME", "value": "/home/jovyan"},
                                     {"name": "NB_PREFIX", "value": "/elsewhere"}]},
                  spec={"securityContext": {"runAsUser": 1000}})
    sts = nbs.statefulset(nb)
    [c] = sts["spec"]["template"]["spec"]["containers"]
    assert c["workingDir"] == "/work" and c["ports"] == [{"containerPort": 9000, "name": "lab"}]
    assert c["env"] == [{"name": "HOME", "value": "/home/jovyan"},
                        {"name": "NB_PREFIX", "value": "/notebook/u-alice/nb1"}]
    assert sts["spec"]["template"]["spec"]["securityContext"] == {"runAsUser": 1000}
    svc = nbs.service(nb)
    assert svc["spec"]["ports"] == [{"name": "http-nb1", "port": 80, "targetPort": 9000, "protocol": "TCP"}]


def test_stop_annotation_scales_to_zero():
    assert nbs.statefulset(notebook(annotations={"kubeflow-resource-stopped": "2026-12-01T12:00:00Z"})
                           )["spec"]["replicas"] == 0
    assert nbs.statefulset(notebook())["spec"]["replicas"] == 1


def test_service_defaults_to_the_notebook_port():
    svc = nbs.service(notebook())
    assert svc["metadata"]["name"] == "nb1" and svc["metadata"]["ownerReferences"][0]["kind"] == "Notebook"
    assert svc["spec"] == {"type": "ClusterIP", "selector": {"statefulset": "nb1"},
                           "ports": [{"name": "http-nb1", "port": 80, "targetPort": 8888, "protocol": "TCP"}]}


def pod(*, state=None, name="nb1", conditions=None):
    return {"status": {"phase": "Running",
                       "containerStatuses": [{"name": name, "state": state or {"running": {"startedAt": NOW}}}],
                       "conditions": conditions if conditions is not None else [
                           {"type": "Ready", "status": "True", "lastTransitionTime": NOW},
                           {"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                            "lastTransitionTime": NOW}]}}


def test_status_mirrors_the_pod():
    sts = {"status": {"readyReplicas": 1}}
    status = nbs.notebook_status(notebook(), sts, pod(), LATER)
    assert status["readyReplicas"] == 1
    assert status["containerState"] == {"running": {"startedAt": NOW}}
    assert status["conditions"] == [
        {"type": "Ready", "status": "True", "lastProbeTime": LATER, "lastTransitionTime": NOW},
        {"type": "PodScheduled", "status": "True", "lastProbeTime": LATER, "lastTransitionTime": NOW}]


def test_status_without_a_pod_or_a_container_of_the_notebooks_name():
    assert nbs.notebook_status(notebook(), {"status": {"replicas": 0}}, None, NOW) == {
        "readyReplicas": 0, "containerState": {}, "conditions": []}
    # upstream reads the container named after the Notebook only
    status = nbs.notebook_status(notebook(), None, pod(name="other"), NOW)
    assert status["containerState"] == {} and len(status["conditions"]) == 2


def test_unchanged_pod_gives_no_status_patch():
    nb = notebook()
    first = nbs.notebook_status(nb, {"status": {"readyReplicas": 1}}, pod(), NOW)
    nb["status"] = first
    again = nbs.notebook_status(nb, {"status": {"readyReplicas": 1}}, pod(), LATER)
    assert again == first and nbs.status_patch(nb["status"], again) is None
    # a changed condition takes the new time
    changed = pod(conditions=[{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}])
    after = nbs.notebook_status(nb, {"status": {"readyReplicas": 0}}, changed, LATER)
    assert after["conditions"] == [{"type": "Ready", "status": "False", "reason": "ContainersNotReady",
                                    "lastProbeTime": LATER, "lastTransitionTime": LATER}]


def test_status_patch_nulls_a_state_that_is_gone():
    before = {"readyReplicas": 0, "containerState": {"waiting": {"reason": "ContainerCreating"}}, "conditions": []}
    after = {"readyReplicas": 1, "containerState": {"running": {"startedAt": NOW}}, "conditions": []}
    assert nbs.status_patch(before, after) == {"status": {
        "readyReplicas": 1, "containerState": {"running": {"startedAt": NOW}, "waiting": None}, "conditions": []}}
    assert nbs.status_patch(None, after)["status"]["readyReplicas"] == 1


def test_events_are_reissued_on_the_notebook():
    event = {"metadata": {"name": "nb1-0.abc", "namespace": "u-alice", "uid": "e-1"},
             "involvedObject": {"kind": "Pod", "name": "nb1-0", "namespace": "u-alice"},
             "reason": "Scheduled", "message": "Successfully assigned u-alice/nb1-0 to vgpu-0", "type": "Normal",
             "count": 1}
    out = nbs.reissued_event(event, notebook(), NOW)
    assert out["involvedObject"] == {"apiVersion": "kubeflow.org/v1", "kind": "Notebook", "name": "nb1",
                                     "namespace": "u-alice", "uid": "u-1234"}
    assert out["message"] == "Reissued from pod/nb1-0: Successfully assigned u-alice/nb1-0 to vgpu-0"
    assert out["reason"] == "Scheduled" and out["type"] == "Normal"
    assert out["metadata"]["namespace"] == "u-alice" and out["metadata"]["name"].startswith("nb1.")
    # the same source event gives the same name: a repeat (count 2) is counted on it, a restart emits no twin
    again = nbs.reissued_event({**event, "count": 2}, notebook(), LATER)
    assert again["metadata"]["name"] == out["metadata"]["name"] and (out["count"], again["count"]) == (1, 2)
    other = {**event, "metadata": {**event["metadata"], "uid": "e-2"}}
    assert nbs.reissued_event(other, notebook(), NOW)["metadata"]["name"] != out["metadata"]["name"]


def test_which_notebook_an_event_is_about():
    pods = {("u-alice", "nb1-0"): "nb1"}
    about = {"kind": "Pod", "namespace": "u-alice"}
    assert nbs.event_notebook({"involvedObject": {**about, "name": "nb1-0"}}, pods) == "nb1"
    assert nbs.event_notebook({"involvedObject": {**about, "name": "web-0"}}, pods) is None
    assert nbs.event_notebook({"involvedObject": {"kind": "StatefulSet", "name": "nb1"}}, pods) == "nb1"
    assert nbs.event_notebook({"involvedObject": {"kind": "Service", "name": "nb1"}}, pods) is None


def test_a_refusal_is_a_warning_on_the_notebook():
    out = nbs.warning_event(notebook(), "FailedCreate", "applying statefulset/nb1: invalid", NOW)
    assert (out["type"], out["reason"], out["involvedObject"]["kind"]) == ("Warning", "FailedCreate", "Notebook")
    assert out["source"] == {"component": "notebook-controller"}
    # the same refusal of the same generation: one event
    assert nbs.warning_event(notebook(), "FailedCreate", "applying statefulset/nb1: invalid", LATER
                             )["metadata"]["name"] == out["metadata"]["name"]


def claim(**spec):
    return {"metadata": {"name": "nb1-workspace", "namespace": "u-alice", "uid": "c-1",
                         "annotations": {"volume.kubernetes.io/storage-provisioner": "mlctl.io/local"}},
            "spec": {"storageClassName": "standard", "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "5Gi"}}, **spec},
            "status": {"phase": "Pending"}}


def test_claims_of_the_default_class_get_a_volume():
    assert nbs.wants_volume(claim())
    assert not nbs.wants_volume(claim(volumeName="pv-1"))
    assert not nbs.wants_volume(claim(storageClassName="fast"))
    assert not nbs.wants_volume({**claim(), "status": {"phase": "Bound"}})
    unannotated = claim()
    unannotated["metadata"]["annotations"] = {}
    assert not nbs.wants_volume(unannotated)  # not yet handed to a provisioner by the binder
    directory = nbs.claim_dir(Path("/state/volumes"), "local", "u-alice", "nb1-workspace")
    assert directory == Path("/state/volumes/local/u-alice/nb1-workspace")
    pv = nbs.volume_for(claim(), str(directory))
    assert pv["metadata"]["name"] == "pvc-c-1"
    assert pv["metadata"]["annotations"] == {"pv.kubernetes.io/provisioned-by": "mlctl.io/local"}
    assert pv["spec"]["claimRef"] == {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                      "namespace": "u-alice", "name": "nb1-workspace", "uid": "c-1"}
    assert pv["spec"]["capacity"] == {"storage": "5Gi"} and pv["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pv["spec"]["storageClassName"] == "standard" and pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert pv["spec"]["hostPath"] == {"path": "/state/volumes/local/u-alice/nb1-workspace"}


def test_released_volumes_of_this_provisioner_are_deleted():
    pv = nbs.volume_for(claim(), "/v")
    assert not nbs.released({**pv, "status": {"phase": "Bound"}})
    assert nbs.released({**pv, "status": {"phase": "Released"}})
    other = {**pv, "metadata": {"name": "x", "annotations": {}}, "status": {"phase": "Released"}}
    assert not nbs.released(other)
    retained = {**pv, "spec": {**pv["spec"], "persistentVolumeReclaimPolicy": "Retain"},
                "status": {"phase": "Released"}}
    assert not nbs.released(retained)


def test_manifests_and_platform_part():
    comp = nbs.NotebookController()
    local = {(o["kind"], o["metadata"]["name"]) for o in comp.manifests(None, "local")}
    assert local == {("StorageClass", "standard"), ("CustomResourceDefinition", "notebooks.kubeflow.org"),
                     ("ClusterRole", "kubeflow-notebooks-admin"), ("ClusterRole", "kubeflow-notebooks-edit"),
                     ("ClusterRole", "kubeflow-notebooks-view")}
    assert {o["kind"] for o in comp.manifests(None, "gcp")} == {"StorageClass"}
    crd = next(o for o in comp.manifests(None, "local") if o["kind"] == "CustomResourceDefinition")
    assert [(v["name"], v["served"], v["storage"]) for v in crd["spec"]["versions"]] == [
        ("v1", True, True), ("v1beta1", True, False), ("v1alpha1", True, False)]
    part = comp.platform(None)["notebooks"]
    assert part["cluster"] == "local" and part["defaultProfile"] in part["profiles"]
    assert part["profiles"]["jupyterlab"]["image"] == "mlctl.sandbox/notebook:1"
    assert part["profiles"]["jupyterlab"]["pool"] == "vgpu" and part["profiles"]["cpu-only"]["gpus"] == 0
