"""The pod runner's pure parts (env, $(VAR) expansion, limits, which pods are real, volumes and path
rewriting) and the gateway's routes."""

from __future__ import annotations

import pytest

from mlctl.sandbox import gateway, pods
from mlctl.sandbox.podrunner import (
    ConfigError,
    Mount,
    claim_dir,
    expand,
    is_real_pod,
    memory_limit,
    plan_mounts,
    pod_env,
    rewrite,
    volume_files,
)

IMAGES = {"mlctl.sandbox/3dgan:1": {}}


def pod(**container) -> dict:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"app": "x"},
                         "annotations": {"a": "b"}},
            "spec": {"nodeName": "kwok-cpu-0", "serviceAccountName": "default",
                     "containers": [{"name": "main", "image": "mlctl.sandbox/3dgan:1", **container}]},
            "status": {"podIP": "127.10.0.7", "hostIP": "127.0.0.1"}}


def test_expansion_follows_kubernetes():
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)", env) == "1-two"
    assert expand("$(MISSING)", env) == "$(MISSING)"
    assert expand("$$(A)", env) == "$(A)"
    assert expand("no vars", env) == "no vars"


def test_env_sources_in_order_and_expanded():
    data = {("Secret", "s3"): {"AWS_ACCESS_KEY_ID": "alice", "AWS_SECRET_ACCESS_KEY": "x"},
            ("ConfigMap", "cm"): {"EPOCHS": "3"}}

    def read(kind, name, namespace):
        assert namespace == "ns"
        return data.get((kind, name))

    p = pod(envFrom=[{"secretRef": {"name": "s3"}}, {"configMapRef": {"name": "cm"}, "prefix": "CFG_"}],
            env=[{"name": "MLCTL_OUTPUT_URL", "value": "s3://b/alice/r/"},
                 {"name": "OUTPUT_URL", "value": "$(MLCTL_OUTPUT_URL)"},
                 {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "AWS_ACCESS_KEY_ID"}}},
                 {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                 {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                 {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                 {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                 {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}}}],
            resources={"limits": {"memory": "2Gi"}})
    env = pod_env(p, p["spec"]["containers"][0], read, {"PATH": "/bin"})
    assert env == {"PATH": "/bin", "AWS_ACCESS_KEY_ID": "alice", "AWS_SECRET_ACCESS_KEY": "x", "CFG_EPOCHS": "3",
                   "MLCTL_OUTPUT_URL": "s3://b/alice/r/", "OUTPUT_URL": "s3://b/alice/r/", "KEY": "alice",
                   "IP": "127.10.0.7", "APP": "x", "NAME": "p", "MEM": "2048"}


@pytest.mark.parametrize("env", [
    [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "missing", "key": "k"}}}],
    [{"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "absent"}}}],
])
def test_a_missing_source_is_a_config_error(env):
    p = pod(env=env)
    with pytest.raises(ConfigError):
        pod_env(p, p["spec"]["containers"][0], lambda k, n, ns: {"other": "v"} if n == "cm" else None, {})


def test_memory_limit_and_real_pods():
    assert memory_limit({"resources": {"limits": {"memory": "512Mi"}}}) == 512 * 2**20
    assert memory_limit({"resources": {"requests": {"memory": "1Gi"}}}) is None
    assert is_real_pod(pod(), IMAGES)
    unscheduled = pod()
    del unscheduled["spec"]["nodeName"]
    assert not is_real_pod(unscheduled, IMAGES)
    assert not is_real_pod(pod(image="registry.example.org/ml/3dgan:1"), IMAGES)


def test_image_names_share_the_prefix_the_kwok_stages_skip():
    from mlctl.sandbox.build import assets_dir

    stages = (assets_dir() / "kwok" / "stages.yaml").read_text()
    assert stages.count(f'select(startswith("{pods.PREFIX}"))') == 3  # running, finish, delete
    assert all(pods.is_real(name) for name in pods.IMAGES)
    assert sorted(pods.IMAGES) == ["mlctl.sandbox/3dgan:1", "mlctl.sandbox/kserve:1", "mlctl.sandbox/notebook:1"]


def test_the_bound_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(pods.MAX_PODS_ENV, raising=False)
    assert pods.max_pods() == pods.DEFAULT_MAX_PODS == 4
    monkeypatch.setenv(pods.MAX_PODS_ENV, "2")
    assert pods.max_pods() == 2
    monkeypatch.setenv(pods.MAX_PODS_ENV, "0")
    with pytest.raises(Exception, match="at least 1"):
        pods.max_pods()


@pytest.mark.parametrize("path, want", [
    ("/serve/u-alice/gen/v1/models/gen:predict", ("u-alice", "gen", "/v1/models/gen:predict", "serve")),
    ("/serve/u-alice/gen/", ("u-alice", "gen", "/", "serve")),
    ("/serve/u-alice/gen", ("u-alice", "gen", "/", "serve")),
    ("/notebook/u-alice/nb1/lab?x=1", ("u-alice", "nb1", "/notebook/u-alice/nb1/lab?x=1", "notebook")),
])
def test_gateway_routes(path, want):
    assert gateway.split(path) == want


@pytest.mark.parametrize("path", ["/", "/serve/u-alice", "/serve//gen/", "/other/a/b/c"])
def test_gateway_refuses_other_paths(path):
    with pytest.raises(gateway.Refused) as e:
        gateway.split(path)
    assert e.value.status == 404


def test_gateway_lets_owners_and_shared_groups_through():
    class FakeKube:
        def __init__(self, objects):
            self.objects = objects

        def find(self, kind, name, namespace=None):
            return self.objects.get((kind, name, namespace))

    ns = {"metadata": {"name": "u-alice", "annotations": {"mlctl.io/owner-username": "alice"}}}
    binding = {"subjects": [{"kind": "User", "name": "oidc:carol"}]}
    routes = gateway.Routes(FakeKube({("Namespace", "u-alice", None): ns,
                                      ("RoleBinding", "mlctl-owner", "u-alice"): binding}))
    plain = {"metadata": {"name": "gen"}}
    shared = {"metadata": {"name": "gen", "annotations": {"mlctl.io/shared-with": "physics, gpu-power-users"}}}
    assert routes.allowed("u-alice", plain, {"preferred_username": "alice"})
    assert routes.allowed("u-alice", plain, {"preferred_username": "carol"})
    assert not routes.allowed("u-alice", plain, {"preferred_username": "bob", "groups": ["gpu-power-users"]})
    assert routes.allowed("u-alice", shared, {"preferred_username": "bob", "groups": ["gpu-power-users"]})
    assert not routes.allowed("u-alice", shared, {"preferred_username": "dave", "groups": ["ml-users"]})



def notebook_pod() -> dict:
    p = pod(volumeMounts=[{"name": "config", "mountPath": "/etc/mlctl/"},
                          {"name": "data", "mountPath": "/home/jovyan/data", "readOnly": True, "subPath": "shared"},
                          {"name": "workspace", "mountPath": "/home/jovyan"},
                          {"name": "kube-api-access-x", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
                          {"name": "scratch", "mountPath": "/tmp/scratch"},
                          {"name": "eos", "mountPath": "/eos/data", "readOnly": True}])
    p["spec"]["volumes"] = [
        {"name": "workspace", "persistentVolumeClaim": {"claimName": "nb1-workspace"}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "datasets", "readOnly": True}},
        {"name": "config", "secret": {"secretName": "mlctl-config"}},
        {"name": "scratch", "emptyDir": {}},
        {"name": "eos", "hostPath": {"path": "/srv/eos/data"}},
        {"name": "kube-api-access-x", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}]
    return p


def test_mounts_outermost_first_with_unsupported_volumes_left_out():
    p = notebook_pod()
    mounts, skipped = plan_mounts(p, p["spec"]["containers"][0])
    assert [(m.path, m.kind, m.sub_path, m.read_only) for m in mounts] == [
        ("/eos/data", "hostPath", "", True),
        ("/etc/mlctl", "secret", "", True),  # secret and configMap volumes are always read-only
        ("/home/jovyan", "persistentVolumeClaim", "", False),
        ("/tmp/scratch", "emptyDir", "", False),
        ("/home/jovyan/data", "persistentVolumeClaim", "shared", True),
    ]
    assert mounts[2].source == {"claimName": "nb1-workspace"}
    assert skipped == ["kube-api-access-x (projected) at /var/run/secrets/kubernetes.io/serviceaccount"]


@pytest.mark.parametrize("mount, volume, message", [
    ({"name": "nope", "mountPath": "/x"}, None, "names no volume"),
    ({"name": "v", "mountPath": "relative"}, {"name": "v", "emptyDir": {}}, "absolute"),
    ({"name": "v", "mountPath": "/x", "subPath": "../up"}, {"name": "v", "emptyDir": {}}, "inside the volume"),
    ({"name": "v", "mountPath": "/x", "subPath": "/abs"}, {"name": "v", "emptyDir": {}}, "inside the volume"),
])
def test_bad_mounts_are_config_errors(mount, volume, message):
    p = pod(volumeMounts=[mount])
    p["spec"]["volumes"] = [volume] if volume else []
    with pytest.raises(ConfigError, match=message):
        plan_mounts(p, p["spec"]["containers"][0])


def test_paths_under_a_mount_move_under_the_pod_root():
    mounts, root = ["/home/jovyan", "/etc/mlctl"], "/state/pods/local/ns/p-1234/root"
    assert rewrite("/home/jovyan", mounts, root) == root + "/home/jovyan"
    assert rewrite("/home/jovyan/work/train.py", mounts, root) == root + "/home/jovyan/work/train.py"
    assert rewrite("/etc/mlctl/config.yaml", mounts, root) == root + "/etc/mlctl/config.yaml"
    assert rewrite("--config=/etc/mlctl/config.yaml", mounts, root) == "--config=" + root + "/etc/mlctl/config.yaml"
    assert rewrite("/etc/mlctl/a:/usr/lib:/home/jovyan/b", mounts, root) == \
        f"{root}/etc/mlctl/a:/usr/lib:{root}/home/jovyan/b"
    # not at or under a mount: unchanged (a prefix of a name is not a parent directory)
    for value in ("/home/jovyanx", "/etc/mlctl-other/x", "/usr/bin/python", "relative/home/jovyan", "python",
                  "s3://bucket/home/jovyan", "a=b", "http://127.0.0.1/home/jovyan"):
        assert rewrite(value, mounts, root) == value
    assert rewrite("/home/jovyan/x", [], root) == "/home/jovyan/x"


def test_secret_and_config_map_files():
    data = {"config.yaml": b"a: 1\n", "kubeconfig": b"k", "token": b"\x00\xff"}
    assert volume_files("secret", {"secretName": "s"}, data) == {
        "config.yaml": (b"a: 1\n", 0o600), "kubeconfig": (b"k", 0o600), "token": (b"\x00\xff", 0o600)}
    assert volume_files("configMap", {"name": "c"}, {"x": b"1"}) == {"x": (b"1", 0o644)}
    items = {"secretName": "s", "defaultMode": 0o440,
             "items": [{"key": "config.yaml", "path": "mlctl/config.yaml"}, {"key": "token", "path": "t", "mode": 0o400}]}
    assert volume_files("secret", items, data) == {"mlctl/config.yaml": (b"a: 1\n", 0o440), "t": (b"\x00\xff", 0o400)}
    assert volume_files("secret", {"secretName": "s", "optional": True}, None) == {}
    with pytest.raises(ConfigError, match='secret "s" not found'):
        volume_files("secret", {"secretName": "s"}, None)
    with pytest.raises(ConfigError, match="couldn't find key absent"):
        volume_files("configMap", {"name": "c", "items": [{"key": "absent", "path": "a"}]}, {"x": b"1"})
    with pytest.raises(ConfigError, match="inside the volume"):
        volume_files("configMap", {"name": "c", "items": [{"key": "x", "path": "../x"}]}, {"x": b"1"})


def test_a_claims_directory_is_per_cluster_namespace_and_claim(tmp_path):
    assert claim_dir(tmp_path, "local", "u-alice", "nb1-workspace") == tmp_path / "local" / "u-alice" / "nb1-workspace"
    assert Mount("/x", "v", "emptyDir", {}).read_only is False
