"""Bursting end to end on the sandbox (docs/burst.md): the policy before anything is created, gcp's API server
refusing the same job from kubectl, alice's 3dgan on 16 preemptible gcp nodes surviving 3 preempted nodes,
`burst --cluster auto` choosing local or gcp, --max-cost, the GPU limit, OPA down, a missing PVC and an
unschedulable pod.

alice (burst-gcp) and carol (ml-users) log in through `mlctl sandbox login`, each with their own config,
cache, audit trail and kubeconfig; their groups are not changed. Tokens never reach an assertion message.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from mlctl.sandbox import opa
from tests.conftest import REPO, mlctl
from tests.integration.support import admin_sync, logged_in

pytestmark = pytest.mark.integration

GAN = str(REPO / "examples" / "3dgan.yaml")
MLCTL = str(Path(sys.executable).parent / "mlctl")
CAROL_REASON = "cluster gcp is open only to members of burst-gcp or platform-admins, and carol is in ml-users"


@pytest.fixture(scope="module")
def synced(sandbox, tmp_path_factory):
    """Every Keycloak user's namespace and quota on both clusters, by `mlctl admin sync` (cron's way)."""
    admin_sync(sandbox, tmp_path_factory.mktemp("admin"))
    return True


@pytest.fixture(scope="module")
def people(sandbox, synced, tmp_path_factory):
    """{user: environment} for alice and carol, logged in."""
    return logged_in(sandbox, tmp_path_factory.mktemp("burst"), ("alice", "carol"))


def as_user(people, user: str, *args: str):
    return mlctl(*args, env=people[user])


def audit(people, user: str) -> list[dict]:
    path = Path(people[user]["XDG_STATE_HOME"]) / "mlctl" / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def small_spec(tmp_path: Path, **fields) -> tuple[str, str]:
    name = f"b{uuid.uuid4().hex[:7]}"
    doc = {"name": name, "framework": "tensorflow", "image": "registry.example.org/ml/test:1",
           "command": ["python", "train.py"], "workers": 1,
           "resources": {"gpus": 1, "cpu": "1", "memory": "2Gi", "pool": "gpu"}, "simulate": {"runSeconds": 3}}
    doc.update(fields)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path), name


def tfjobs(sandbox, cluster: str, ns: str) -> list[str]:
    return [j["metadata"]["name"] for j in sandbox.kube(cluster).list("TFJob", ns)]


def delete_job(sandbox, cluster: str, ns: str, name: str) -> None:
    try:
        sandbox.kube(cluster).delete("TFJob", name, ns)
    except Exception:  # noqa: BLE001 - cleanup must not hide the test's result
        pass


@pytest.fixture
def showers_pvc(sandbox, people):
    """PVC 3dgan-showers in u-alice on gcp, bound to a PV (the data staged there; the test stages it)."""
    kube = sandbox.kube("gcp")
    release(kube, "PersistentVolumeClaim", "3dgan-showers", "u-alice")  # a run killed before its cleanup
    pv = f"t-showers-{uuid.uuid4().hex[:6]}"
    kube.create({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
                 "spec": {"capacity": {"storage": "1Ti"}, "accessModes": ["ReadOnlyMany"],
                          "storageClassName": "", "hostPath": {"path": "/eos/project/ml/3dgan/showers"},
                          "claimRef": {"namespace": "u-alice", "name": "3dgan-showers"}}})
    kube.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                 "metadata": {"name": "3dgan-showers", "namespace": "u-alice"},
                 "spec": {"accessModes": ["ReadOnlyMany"], "storageClassName": "", "volumeName": pv,
                          "resources": {"requests": {"storage": "1Ti"}}}})
    sandbox.wait_for(lambda: (kube.get("PersistentVolumeClaim", "3dgan-showers", "u-alice").get("status") or {})
                     .get("phase") == "Bound", 60, "PVC 3dgan-showers to be bound")
    yield "3dgan-showers"
    release(kube, "PersistentVolumeClaim", "3dgan-showers", "u-alice")
    release(kube, "PersistentVolume", pv, None)


def release(kube, kind: str, name: str, namespace: str | None) -> None:
    """Delete a PVC or PV now, without waiting for the protection controllers to clear its finalizer (a pod of
    a job may still be going away)."""
    try:
        kube.patch(kind, name, {"metadata": {"finalizers": None}}, namespace)
        kube.delete(kind, name, namespace)
    except Exception:  # noqa: BLE001 - gone already
        pass
    # the claim must be gone before the next test stages it again
    import time

    deadline = time.monotonic() + 30
    while kube.find(kind, name, namespace) is not None and time.monotonic() < deadline:
        time.sleep(0.2)


# ---- carol: refused before anything is created, by mlctl and by gcp's API server ----------------------------

def test_carol_is_refused_gcp_before_anything_is_created_and_kubectl_gets_403(sandbox, people, tmp_path):
    r = as_user(people, "carol", "train", GAN, "--cluster", "gcp")
    assert r.code == 5, r.err
    assert r.err.splitlines()[0] == f"error: the cluster policy denies gcp: {CAROL_REASON}"
    assert "policy decision" in r.err
    assert tfjobs(sandbox, "gcp", "u-carol") == []
    (entry,) = [e for e in audit(people, "carol") if e["event"] == "decision"]
    assert (entry["user"], entry["cluster"], entry["allow"], entry["reason"]) == ("carol", "gcp", False, CAROL_REASON)
    assert entry["decisionId"] and entry["request"] == {"gpus": 128, "pools": ["gpu"], "preemptible": True}

    # the same TFJob from kubectl, with a gcp token from `mlctl token --cluster gcp`: gcp's API server says no
    from mlctl.auth.kubeconfig import write_contexts

    rendered = as_user(people, "carol", "train", "render", GAN, "--cluster", "gcp")
    assert rendered.code == 0, rendered.err
    (tmp_path / "job.yaml").write_text(rendered.out)
    env = {**os.environ, **people["carol"], "KUBECONFIG": str(tmp_path / "kubeconfig")}
    gcp = next(c for c in sandbox.platform["clusters"] if c["name"] == "gcp")
    write_contexts(Path(env["KUBECONFIG"]), "sandbox", [gcp], "u-carol")
    proc = subprocess.run([str(sandbox.kubectl_path), "--context", "mlctl-gcp", "create", "-f",
                           str(tmp_path / "job.yaml")], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 1
    assert "Forbidden" in proc.stderr and proc.stderr.strip().endswith(CAROL_REASON), proc.stderr
    assert tfjobs(sandbox, "gcp", "u-carol") == []


def test_carols_local_work_is_unaffected(sandbox, people, tmp_path):
    path, name = small_spec(tmp_path)
    r = as_user(people, "carol", "train", path, "--cluster", "local", "--wait", "--timeout", "120")
    try:
        assert r.code == 0, r.err
        assert f"tfjob/{name} succeeded" in r.err
        job = sandbox.kube("local").get("TFJob", name, "u-carol")
        notes = job["metadata"]["annotations"]
        assert notes["mlctl.io/policy-reason"] == "allowed" and notes["mlctl.io/policy-decision"]
        events = [e["event"] for e in audit(people, "carol")]
        assert events[-2:] == ["decision", "submission"]
    finally:
        delete_job(sandbox, "local", "u-carol", name)


def test_login_writes_contexts_only_for_allowed_clusters(people):
    kubeconfig = yaml.safe_load(Path(people["carol"]["KUBECONFIG"]).read_text())
    assert [c["name"] for c in kubeconfig["contexts"]] == ["mlctl-local"]
    alice = yaml.safe_load(Path(people["alice"]["KUBECONFIG"]).read_text())
    assert sorted(c["name"] for c in alice["contexts"]) == ["mlctl-gcp", "mlctl-local"]


def test_clusters_list_and_explain_for_carol(people):
    r = as_user(people, "carol", "clusters", "list", "-o", "json")
    assert r.code == 0, r.err
    access = {c["name"]: c["access"] for c in json.loads(r.out)}
    assert access["local"]["allowed"] is True and access["gcp"]["allowed"] is False
    assert access["gcp"]["reason"] == CAROL_REASON
    assert access["local"]["freeGpus"] is None  # users may not list nodes: unknown, not guessed
    r = as_user(people, "carol", "clusters", "explain", "gcp", GAN)
    assert r.code == 0, r.err
    assert f"because {CAROL_REASON}" in r.out and "open to groups: burst-gcp, platform-admins" in r.out
    assert "job gan3d: 128 GPUs in pool gpu, preemptible" in r.out


# ---- alice: 3dgan on gcp, unchanged, through preemption -----------------------------------------------------

def test_a_missing_pvc_is_refused_before_submission(sandbox, people):
    r = as_user(people, "alice", "train", GAN, "--cluster", "gcp")
    assert r.code == 4, r.err
    assert r.err.splitlines()[0] == ("error: PVC 3dgan-showers (data showers) does not exist in u-alice on "
                                     "cluster gcp")
    assert "gan3d" not in tfjobs(sandbox, "gcp", "u-alice")


def _running_pods(kube) -> list[dict]:
    return [p for p in kube.list("Pod", "u-alice", selector="training.kubeflow.org/job-name=gan3d")
            if (p.get("status") or {}).get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]


def _age(stamp: str) -> float:
    import datetime as dt

    return (dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))).total_seconds()


def test_alice_runs_3dgan_on_gcp_and_survives_three_preempted_nodes(sandbox, people, showers_pvc):
    kube = sandbox.kube("gcp")
    r = as_user(people, "alice", "train", GAN, "--cluster", "gcp", "--set", "simulate.runSeconds=45")
    try:
        assert r.code == 0, r.err
        assert "tfjob/gan3d created on gcp in u-alice" in r.err
        first = sandbox.wait_for(lambda: (p := _running_pods(kube)) and len(p) == 16 and p, 120,
                                 "16 running workers of gan3d")
        nodes = {p["spec"]["nodeName"] for p in first}
        assert len(nodes) == 16 and all(n.startswith("gcp-gpu-") for n in nodes)
        victims = sorted(nodes)[:3]

        def settled():
            # creation times have one-second resolution: `train status` tells a recreated pod by its being more
            # than a second younger than the first, so the first ones must be older than that when they go
            return _age(max(p["metadata"]["creationTimestamp"] for p in first)) > 2.5

        sandbox.wait_for(settled, 30, "the first workers to be a few seconds old")
        pre = mlctl("sandbox", "preempt", "--cluster", "gcp", *victims, "--return-after", "20",
                    env={"MLCTL_SANDBOX_DIR": str(sandbox.root)})
        assert pre.code == 0, pre.err
        assert pre.out.split() == [f"node/{n}" for n in victims]
        old = {p["metadata"]["uid"] for p in first}

        def recovered():
            pods = _running_pods(kube)
            fresh = [p for p in pods if p["metadata"]["uid"] not in old]
            return len(pods) == 16 and len(fresh) == 3 and not {p["spec"]["nodeName"] for p in fresh} & set(victims)

        sandbox.wait_for(recovered, 120, "3 lost workers recreated on other nodes")
        status = json.loads(as_user(people, "alice", "train", "status", "gan3d", "--cluster", "gcp", "-o", "json").out)
        # `train status` names recreated replicas from pod ages (kube/jobs.py restarts())
        fresh = {p["metadata"]["name"] for p in _running_pods(kube) if p["metadata"]["uid"] not in old}
        assert set(status["restarts"]["recreated"]) == fresh, (status["restarts"], fresh)
        wait = as_user(people, "alice", "train", "wait", "gan3d", "--cluster", "gcp", "--timeout", "240")
        assert wait.code == 0, wait.err
        sandbox.wait_for(lambda: all(kube.find("Node", n) for n in victims), 90, "the preempted nodes to come back")
    finally:
        delete_job(sandbox, "gcp", "u-alice", "gan3d")


def test_a_job_over_the_policys_gpu_limit_is_refused_before_submission(sandbox, people):
    r = as_user(people, "alice", "train", GAN, "--cluster", "gcp", "--set", "clusters.gcp.workers=17")
    assert r.code == 5, r.err
    assert "a job on gcp may use at most 128 GPUs, and this one asks for 136" in r.err
    assert "gan3d" not in tfjobs(sandbox, "gcp", "u-alice")


# ---- burst --cluster auto, --max-cost -------------------------------------------------------------------

def test_burst_auto_picks_local_when_it_fits_and_gcp_when_local_is_full(sandbox, people, tmp_path):
    path, name = small_spec(tmp_path)
    r = as_user(people, "alice", "burst", path, "--cluster", "auto", "--check")
    assert r.code == 0, r.err
    assert f"{name} goes to cluster local (auto)" in r.err
    # fill alice's local GPUs (her quota there is 1) with a long simulated job
    filler, filler_name = small_spec(tmp_path, simulate={"runSeconds": 600})
    r = as_user(people, "alice", "train", filler, "--cluster", "local")
    try:
        assert r.code == 0, r.err

        def local_full():
            quota = sandbox.kube("local").get("ResourceQuota", "mlctl-quota", "u-alice")
            return (quota.get("status") or {}).get("used", {}).get("requests.nvidia.com/gpu") == "1"

        sandbox.wait_for(local_full, 60, "alice's local GPU quota to be in use")
        r = as_user(people, "alice", "burst", path, "--cluster", "auto")
        assert r.code == 0, r.err
        assert "local: passed over: the job needs 1 GPUs but the namespace quota has 0 free" in r.err
        assert f"{name} goes to cluster gcp (auto)" in r.err
        assert name in tfjobs(sandbox, "gcp", "u-alice")
        r = as_user(people, "alice", "burst", path, "--cluster", "auto", "--max-cost", "1", "--check")
        assert r.code == 6, r.err
        assert "gcp: passed over: " in r.err and "more than --max-cost 1" in r.err
    finally:
        delete_job(sandbox, "local", "u-alice", filler_name)
        delete_job(sandbox, "gcp", "u-alice", name)


def test_max_cost_below_gcps_price_is_exit_6(people):
    r = as_user(people, "alice", "burst", GAN, "--cluster", "gcp", "--max-cost", "100")
    assert r.code == 6, r.err
    assert r.err.splitlines()[0] == ("error: gan3d costs 317.44/hour on gcp (128 GPUs × 2.48 per GPU-hour), "
                                     "more than --max-cost 100")


# ---- OPA down: exit 7, and gcp refuses -----------------------------------------------------------------------

def test_with_opa_stopped_train_exits_7_and_gcp_refuses(sandbox, people, tmp_path):
    path, name = small_spec(tmp_path)
    state = sandbox.state
    assert opa.stop(state)
    try:
        r = as_user(people, "alice", "train", path, "--cluster", "gcp")
        assert r.code == 7, r.err
        assert "cannot reach the policy server" in r.err and "no decision means no access" in r.err
        assert name not in tfjobs(sandbox, "gcp", "u-alice")
        # the API server fails closed too: alice's own request is refused (authorizer error: 500)
        listing = as_user(people, "alice", "train", "list", "--cluster", "gcp")
        assert listing.code == 7, listing.err
    finally:
        opa.start(state)


# ---- a pod that cannot be scheduled is reported with the scheduler's reason ---------------------------------

def test_an_unschedulable_pod_is_reported_within_seconds(sandbox, people, tmp_path):
    kube = sandbox.kube("gcp")
    claim = f"unbound-{uuid.uuid4().hex[:6]}"
    kube.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim, "namespace": "u-alice"},
                 "spec": {"accessModes": ["ReadOnlyMany"], "storageClassName": "",
                          "resources": {"requests": {"storage": "1Gi"}}}})
    path, name = small_spec(tmp_path, data=[{"name": "d", "pvc": claim, "mountPath": "/data"}])
    try:
        r = as_user(people, "alice", "train", path, "--cluster", "gcp", "--wait", "--timeout", "15")
        assert r.code == 7, r.err
        assert f"pod {name}-chief-0 cannot be scheduled: " in r.err and "unbound immediate PersistentVolumeClaims" in r.err
        status = as_user(people, "alice", "train", "status", name, "--cluster", "gcp")
        assert f"pod {name}-chief-0 cannot be scheduled" in status.out
    finally:
        delete_job(sandbox, "gcp", "u-alice", name)
        release(kube, "PersistentVolumeClaim", claim, "u-alice")
