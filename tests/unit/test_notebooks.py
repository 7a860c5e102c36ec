"""Notebook logic without a server: profiles and flags, the objects a notebook becomes, reading its state."""

from __future__ import annotations

import json

import pytest
import yaml

from mlctl import notebooks as N
from mlctl.auth.cache import TokenCache
from mlctl.errors import UsageError

SECTION = {"cluster": "local", "defaultProfile": "jupyterlab", "profiles": {
    "jupyterlab": {"image": "mlctl.sandbox/notebook:1", "pool": "vgpu", "gpus": 1, "cpu": "1", "memory": "2Gi",
                   "volume": "5Gi"},
    "cpu-only": {"image": "lab/cpu:2", "pool": "cpu", "gpus": 0, "cpu": "2", "memory": "4Gi", "volume": "1Gi"}}}
CLUSTER = {"name": "local", "server": "https://127.0.0.1:6443", "certificateAuthorityData": "Q0E=", "pools": {
    "vgpu": {"nodeSelector": {"mlctl.io/pool": "vgpu"}, "gpuResource": "nvidia.com/gpu.shared", "gpusPerNode": 4,
             "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]},
    "gpu": {"nodeSelector": {"mlctl.io/pool": "gpu"}, "gpuResource": "nvidia.com/gpu", "gpusPerNode": 4},
    "cpu": {"nodeSelector": {"mlctl.io/pool": "cpu"}, "gpusPerNode": 0}}}


def test_default_profile_gives_image_pool_and_resources():
    req = N.resolve(SECTION, CLUSTER, "nb1")
    assert (req.profile, req.image, req.pool, req.gpus, req.cpu, req.memory, req.volume) == (
        "jupyterlab", "mlctl.sandbox/notebook:1", "vgpu", 1, "1", "2Gi", "5Gi")


def test_flags_win_over_the_profile_and_a_cpu_pool_means_no_gpus():
    req = N.resolve(SECTION, CLUSTER, "nb1", profile="jupyterlab", pool="cpu", cpu="4", memory="8Gi")
    assert (req.pool, req.gpus, req.cpu, req.memory) == ("cpu", 0, "4", "8Gi")
    req = N.resolve(SECTION, CLUSTER, "nb2", profile="cpu-only", volume="20Gi")
    assert (req.image, req.pool, req.gpus, req.volume) == ("lab/cpu:2", "cpu", 0, "20Gi")
    assert N.resolve(SECTION, CLUSTER, "nb3", image="my/img:1").image == "my/img:1"


@pytest.mark.parametrize("kwargs, text", [
    ({"profile": "nope"}, "no notebook profile 'nope' (profiles: cpu-only, jupyterlab)"),
    ({"pool": "tpu"}, "has no pool tpu"),
    ({"pool": "cpu", "gpus": 1}, "pool cpu of cluster local has no GPUs"),
    ({"memory": "lots"}, "--memory"),
    ({"cpu": "0"}, "--cpu: must be greater than zero"),
    ({"mounts": ("data",)}, "expected SRC:PATH"),
    ({"mounts": ("data:/home/jovyan",)}, "workspace or configuration"),
])
def test_bad_requests_are_usage_errors(kwargs, text):
    with pytest.raises(UsageError) as e:
        N.resolve(SECTION, CLUSTER, "nb1", **kwargs)
    assert text in e.value.message


@pytest.mark.parametrize("name", ["NB", "1nb", "nb_1", "nb-", "x" * 53, ""])
def test_names_must_be_dns_labels_short_enough_for_the_statefulset(name):
    with pytest.raises(UsageError):
        N.check_name(name)


def test_notebook_object_has_pool_gpu_workspace_config_and_read_only_data():
    req = N.resolve(SECTION, CLUSTER, "nb1", mounts=("datasets:/data", "/eos/lab:/eos"))
    nb = N.notebook_object(req, CLUSTER, "u-alice", "alice")
    assert (nb["apiVersion"], nb["kind"], nb["metadata"]["namespace"]) == ("kubeflow.org/v1", "Notebook", "u-alice")
    pod = nb["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"mlctl.io/pool": "vgpu"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    (c,) = pod["containers"]
    assert c["name"] == "nb1" and c["image"] == "mlctl.sandbox/notebook:1"
    assert c["resources"]["limits"]["nvidia.com/gpu.shared"] == "1"
    assert c["resources"]["requests"] == c["resources"]["limits"]  # the LimitRange's defaults never apply
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["HOME"] == "/home/jovyan" and env["KUBECONFIG"] == "/etc/mlctl/kubeconfig"
    assert env["MLCTL_PLATFORM_FILE"] == "/etc/mlctl/platform.yaml"
    assert env["MLCTL_SESSION_SEED"] == "/etc/mlctl/session.json"
    assert env["XDG_CACHE_HOME"].startswith("/var/run/mlctl/")
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/home/jovyan"]["name"]]["persistentVolumeClaim"] == {"claimName": "nb1-workspace"}
    assert mounts["/etc/mlctl"]["readOnly"] is True
    assert volumes[mounts["/etc/mlctl"]["name"]]["secret"] == {"secretName": "nb1-mlctl", "defaultMode": 0o400}
    assert "emptyDir" in volumes[mounts["/var/run/mlctl"]["name"]]
    assert mounts["/data"]["readOnly"] and volumes[mounts["/data"]["name"]]["persistentVolumeClaim"] == {
        "claimName": "datasets", "readOnly": True}
    assert volumes[mounts["/eos"]["name"]]["hostPath"] == {"path": "/eos/lab"}


def test_cpu_notebook_has_no_gpu_resource():
    req = N.resolve(SECTION, CLUSTER, "nb1", profile="cpu-only")
    c = N.notebook_object(req, CLUSTER, "u-bob", "bob")["spec"]["template"]["spec"]["containers"][0]
    assert not [k for k in c["resources"]["limits"] if "gpu" in k]


def test_config_secret_holds_platform_session_without_client_secret_and_kubeconfig():
    session = {"user": "alice", "groups": ["ml-users"], "method": "password", "access_token": "a.b.c",
               "expires_at": 10, "refresh_token": "rt-4f9e", "refresh_expires_at": 20, "client_secret": "s3cr3t"}
    doc = {"kind": "Platform", "name": "lab", "clusters": [CLUSTER, {"name": "gcp", "server": "https://g"}]}
    secret = N.config_secret("nb1", "local", "u-alice", "alice", doc, session)
    data = secret["stringData"]
    assert yaml.safe_load(data["platform.yaml"]) == doc
    copied = json.loads(data["session.json"])
    assert copied["user"] == "alice" and copied["refresh_token"] == "rt-4f9e" and "client_secret" not in copied
    kube = yaml.safe_load(data["kubeconfig"])
    assert kube["current-context"] == "mlctl-local"
    assert [c["context"]["namespace"] for c in kube["contexts"]] == ["u-alice", "u-alice"]
    assert kube["users"][1]["user"]["exec"]["args"] == ["token", "--cluster", "gcp"]
    shown = N.redacted(secret)
    assert set(shown["stringData"]) == set(data) and "rt-4f9e" not in json.dumps(shown) and "a.b.c" not in json.dumps(shown)


def test_storage_quota_counts_a_new_workspace():
    req = N.resolve(SECTION, CLUSTER, "nb1", volume="10Gi")
    assert N.storage_problems(req, {"hard": {"requests.storage": "20Gi"}, "used": {"requests.storage": "5Gi"}}) == []
    (problem,) = N.storage_problems(req, {"hard": {"requests.storage": "12Gi"}, "used": {"requests.storage": "5Gi"}})
    assert "10Gi of storage" in problem and "7Gi free" in problem
    assert N.storage_problems(req, {"hard": {"persistentvolumeclaims": "2"}, "used": {"persistentvolumeclaims": "2"}})


@pytest.mark.parametrize("meta, status, state", [
    ({}, {"readyReplicas": 1}, "Ready"),
    ({}, {}, "Starting"),
    ({}, {"containerState": {"waiting": {"reason": "ContainerCreating"}}}, "ContainerCreating"),
    ({"annotations": {N.STOP_ANNOTATION: "2026-01-01T00:00:00Z"}}, {"readyReplicas": 0}, "Stopped"),
    ({"annotations": {N.STOP_ANNOTATION: "2026-01-01T00:00:00Z"}}, {"readyReplicas": 1}, "Stopping"),
])
def test_state_from_the_notebook_status(meta, status, state):
    assert N.state({"metadata": meta, "status": status}) == state


def test_url_at_the_gateway():
    assert N.url({"url": "https://gw:8443/"}, "u-alice", "nb1") == "https://gw:8443/notebook/u-alice/nb1/"
    assert N.url(None, "u-alice", "nb1") is None


def test_a_seeded_session_is_copied_once_and_not_again_after_logout(tmp_path):
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"user": "alice", "refresh_token": "r"}))
    cache = TokenCache("lab", root=tmp_path / "tokens", env={"MLCTL_SESSION_SEED": str(seed)})
    assert cache.session()["user"] == "alice"
    assert (cache.dir / "session.json").stat().st_mode & 0o777 == 0o600
    cache.save_session({"user": "alice", "refresh_token": "newer"})
    assert cache.session()["refresh_token"] == "newer"  # the cache, not the seed, once copied
    cache.clear()
    assert cache.session() is None
    assert TokenCache("lab", root=tmp_path / "tokens", env={}).session() is None


def test_a_browser_only_on_a_desktop(monkeypatch):
    from mlctl.commands.notebook import open as open_cmd

    monkeypatch.setattr("sys.platform", "linux")
    assert not open_cmd.desktop({})
    assert open_cmd.desktop({"DISPLAY": ":0"}) and open_cmd.desktop({"WAYLAND_DISPLAY": "wayland-0"})


class _FakeKube:
    """Records creates and deletes; the create of `fail_on` (a kind) raises `error`."""

    def __init__(self, fail_on: str, error: BaseException):
        self.fail_on, self.error = fail_on, error
        self.created: list[str] = []
        self.deleted: list[str] = []

    def create(self, obj, dry_run=False, what=None):
        if obj["kind"] == self.fail_on:
            raise self.error
        self.created.append(obj["kind"])
        return {**obj, "metadata": {**obj["metadata"], "uid": "u1"}}

    def delete(self, kind, name, namespace=None, what=None):
        self.deleted.append(kind)

    def patch(self, *args, **kwargs):
        return {}


@pytest.mark.parametrize("fail_on, error", [("Notebook", KeyboardInterrupt()),
                                            ("PersistentVolumeClaim", RuntimeError("refused"))])
def test_a_create_that_fails_or_is_interrupted_removes_what_it_made(monkeypatch, fail_on, error):
    from mlctl.commands.notebook import common, create
    from mlctl.factory import Factory
    from mlctl.io import IO

    req = N.resolve(SECTION, CLUSTER, "nb1")
    kube = _FakeKube(fail_on, error)
    t = common.Target(CLUSTER, "u-alice", "alice", kube)
    monkeypatch.setattr(common, "login_secret", lambda f, t, name: N.config_secret(
        name, "local", t.namespace, t.user, {"clusters": [CLUSTER]}, {"user": "alice"}))
    with pytest.raises(type(error)):
        create.create(Factory(io=IO.test(), env={}), t, req, CLUSTER, with_claim=True, server_dry_run=False)
    assert kube.deleted == list(reversed(kube.created)) and kube.created


def test_a_kept_workspace_is_never_removed_by_a_failed_create(monkeypatch):
    from mlctl.commands.notebook import common, create
    from mlctl.factory import Factory
    from mlctl.io import IO

    kube = _FakeKube("Notebook", RuntimeError("refused"))
    t = common.Target(CLUSTER, "u-alice", "alice", kube)
    monkeypatch.setattr(common, "login_secret", lambda f, t, name: N.config_secret(
        name, "local", t.namespace, t.user, {"clusters": [CLUSTER]}, {"user": "alice"}))
    with pytest.raises(RuntimeError):
        create.create(Factory(io=IO.test(), env={}), t, N.resolve(SECTION, CLUSTER, "nb1"), CLUSTER,
                      with_claim=False, server_dry_run=False)
    assert kube.created == ["Secret"] and kube.deleted == ["Secret"]
