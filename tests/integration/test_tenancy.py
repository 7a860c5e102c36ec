"""Tenancy and quota on the sandbox: admin install/sync, quota arithmetic in real ResourceQuotas, the Lease,
the QuotaRequest CRD's validation, quota enforcement, and (with the sandbox's Keycloak and OIDC-enabled API
servers) the directory-driven sync, group moves, requests and RBAC between users.

Cluster-level tests use made-up users with a per-test prefix, so they never touch the realm's alice/bob and
can run beside other tests. The Keycloak tests use the realm's users and restore any group they change.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import uuid

import pytest

from tests.conftest import mlctl
from tests.integration.support import unavailable

pytestmark = pytest.mark.integration

GPU_GROUP = {"mlctl.io/quota.requests.nvidia.com/gpu": ["8"], "mlctl.io/quota.requests.memory": ["64Gi"],
             "mlctl.io/quota.requests.storage": ["500Gi"]}  # storage: a key the default quota lacks


# ---- fixtures ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def env(sandbox, tmp_path_factory):
    """Environment for mlctl against the sandbox, with an isolated config/cache per 'person'."""
    base = tmp_path_factory.mktemp("tenancy")

    @contextlib.contextmanager
    def person(name: str):
        saved = dict(os.environ)
        for key in list(os.environ):
            if key.startswith("MLCTL_") and key not in ("MLCTL_CACHE_DIR", "MLCTL_SANDBOX_DIR"):
                del os.environ[key]
        os.environ.update({"XDG_CONFIG_HOME": str(base / name / "config"),
                           "XDG_CACHE_HOME": str(base / name / "cache"),
                           "MLCTL_PLATFORM_FILE": str(sandbox.platform_file)})
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)

    return person


@pytest.fixture(scope="module")
def installed(sandbox, env):
    """`mlctl admin install` on both clusters with the sandbox's admin kubeconfig."""
    with env("installer"):
        r = mlctl("admin", "install", "--kubeconfig", str(sandbox.kubeconfig))
    assert r.code == 0, r.err
    assert "customresourcedefinition/quotarequests.mlctl.io applied" in r.err
    for cluster in ("local", "gcp"):
        sandbox.wait_for(lambda c=cluster: _crd_established(sandbox, c), 30, f"QuotaRequest CRD on {cluster}")
    return True


def _crd_established(sandbox, cluster: str) -> bool:
    proc = sandbox.kubectl("get", "crd", "quotarequests.mlctl.io", "-o", "json", cluster=cluster, check=False)
    if proc.returncode:
        return False
    conditions = json.loads(proc.stdout).get("status", {}).get("conditions", [])
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


@pytest.fixture
def kube(sandbox, installed):
    """A counted admin Kube per cluster."""
    from mlctl.kube.client import for_admin

    apis = {c: for_admin(str(sandbox.kubeconfig), c, "sandbox-{cluster}") for c in ("local", "gcp")}
    yield apis
    for api in apis.values():
        api.close()


@pytest.fixture
def people(kube):
    """Made-up users for this test ({role: username}); their namespaces are deleted afterwards."""
    tag = uuid.uuid4().hex[:6]
    users = {role: f"t{tag}-{role}" for role in ("alice", "bob")}
    yield users
    from mlctl.tenancy import user_namespace

    for api in kube.values():
        for user in users.values():
            with contextlib.suppress(Exception):
                api.delete("Namespace", user_namespace(user))


def settings():
    from mlctl.admin.objects import Settings
    from mlctl.quota import BUILTIN_DEFAULT, parse_resources

    return Settings(default=parse_resources(BUILTIN_DEFAULT, "test"))


def directory(people: dict, bob_in_gpu_group: bool = True):
    from mlctl.admin.desired import Directory, User

    members = {"gpu-power-users": {people["bob"]} if bob_in_gpu_group else set(),
               "ml-users": set(people.values())}
    return Directory([User(u) for u in people.values()],
                     {"gpu-power-users": GPU_GROUP, "ml-users": {}}, members)


def quota_of(api, user: str) -> dict:
    from mlctl.tenancy import user_namespace

    return api.find("ResourceQuota", "mlctl-quota", user_namespace(user))


def sync_only_these(api, d, opts=None):
    """sync_cluster with a directory of made-up users (other tenants' namespaces are only reported)."""
    from mlctl.admin.sync import SyncOptions, sync_cluster

    return sync_cluster(api, d, settings(), opts or SyncOptions())


# ---- against the API servers (admin credentials, made-up users) ------------------------------------------

def test_sync_creates_default_and_group_quota_then_resync_only_lists(kube, people):
    api = kube["local"]
    first = sync_only_these(api, directory(people))
    assert first.errors == [] and first.created == 8
    assert api.requests["POST Namespace"] == 2 and not any(k.startswith("PATCH") for k in api.requests)
    alice, bob = quota_of(api, people["alice"]), quota_of(api, people["bob"])
    assert alice["spec"]["hard"]["requests.nvidia.com/gpu"] == "1"
    assert bob["spec"]["hard"]["requests.nvidia.com/gpu"] == "9"
    assert bob["spec"]["hard"]["requests.memory"] == "96Gi"
    sources = json.loads(bob["metadata"]["annotations"]["mlctl.io/quota-sources"])
    assert [s.get("name") for s in sources] == [None, "gpu-power-users"]
    from mlctl.tenancy import user_namespace

    rb = api.get("RoleBinding", "mlctl-owner", user_namespace(people["bob"]))
    assert rb["subjects"][0]["name"] == f"oidc:{people['bob']}" and rb["roleRef"]["name"] == "mlctl-user"
    assert api.find("LimitRange", "mlctl-limits", user_namespace(people["bob"])) is not None

    api.counts.clear()
    again = sync_only_these(api, directory(people))
    assert (again.created, again.updated, again.unchanged) == (0, 0, 8)
    assert set(api.requests) == {"LIST Namespace", "LIST ResourceQuota", "LIST RoleBinding", "LIST LimitRange",
                                 "LIST QuotaRequest"}
    assert all(n == 1 for n in api.requests.values())


def test_group_change_and_approved_request_change_the_quota(kube, people):
    from mlctl.quota.requests import build, decision
    from mlctl.tenancy import user_namespace

    api = kube["local"]
    sync_only_these(api, directory(people))
    assert quota_of(api, people["bob"])["spec"]["hard"]["requests.storage"] == "500Gi"
    moved = sync_only_these(api, directory(people, bob_in_gpu_group=False))
    written = [c["object"] for c in moved.changes if c["action"] in ("create", "update")]
    assert written == [f"resourcequota/mlctl-quota in {user_namespace(people['bob'])}"]
    quota = quota_of(api, people["bob"])
    assert quota["spec"]["hard"]["requests.nvidia.com/gpu"] == "1"
    # created by a POST, then adopted for server-side apply: the key the group gave is gone
    assert "requests.storage" not in quota["spec"]["hard"]
    ours = [(e["operation"], e.get("subresource")) for e in quota["metadata"]["managedFields"]
            if e["manager"] == "mlctl-admin-sync"]
    assert ours == [("Apply", None)]
    api.counts.clear()
    assert sync_only_these(api, directory(people, bob_in_gpu_group=False)).updated == 0

    ns = user_namespace(people["alice"])
    qr = api.create(build(ns, {"nvidia.com/gpu": "4"}, "scaling the 3dgan training", people["alice"]))
    pending = sync_only_these(api, directory(people))
    assert not any(c["object"].endswith(ns) and "resourcequota" in c["object"] for c in pending.changes)
    api.patch_status("QuotaRequest", qr["metadata"]["name"], ns, decision("Approved", "dave"))
    sync_only_these(api, directory(people))
    hard = quota_of(api, people["alice"])["spec"]["hard"]
    assert hard["requests.nvidia.com/gpu"] == "5"


def test_a_pod_over_quota_is_rejected_and_explained(kube, people, sandbox):
    from mlctl.errors import QuotaExceeded
    from mlctl.quota import explain_exceeded
    from mlctl.tenancy import user_namespace

    api = kube["local"]
    sync_only_these(api, directory(people))
    ns = user_namespace(people["alice"])
    sandbox.wait_for(lambda: (quota_of(api, people["alice"]).get("status") or {}).get("hard"), 30,
                     "the quota controller to fill in status.hard")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "too-many-gpus", "namespace": ns},
           "spec": {"containers": [{"name": "main", "image": "busybox", "resources": {
               "requests": {"nvidia.com/gpu": "2", "cpu": "1", "memory": "1Gi"},
               "limits": {"nvidia.com/gpu": "2", "cpu": "1", "memory": "1Gi"}}}]}}
    with pytest.raises(QuotaExceeded) as e:
        api.create(pod)
    err = e.value
    assert err.exit_code == 6 and err.status == 403
    assert "exceeded quota: mlctl-quota" in err.message
    explained = explain_exceeded(err.body, quota_of(api, people["alice"]))
    assert explained == ("over ResourceQuota mlctl-quota: requests.nvidia.com/gpu: requested 2, in use 0, "
                         "limit 1 (1 default)")


@pytest.mark.parametrize("resources, message", [
    ({"nvidia.com/gpu": -2}, "must be a quantity greater than zero"),
    ({"memory": "-1Gi"}, "must be a quantity greater than zero"),
    ({"nvidia.com/tpu": 1}, "unknown resource: allowed are nvidia.com/gpu, cpu, memory, pods, storage"),
    ({"nvidia.com/gpu": "1.5"}, "nvidia.com/gpu and pods must be whole numbers"),
])
def test_bad_quota_requests_are_refused_with_a_clear_error(kube, people, resources, message):
    from mlctl.errors import UsageError
    from mlctl.tenancy import user_namespace

    api = kube["local"]
    sync_only_these(api, directory(people))
    ns = user_namespace(people["alice"])
    body = {"apiVersion": "mlctl.io/v1alpha1", "kind": "QuotaRequest",
            "metadata": {"generateName": "qr-", "namespace": ns},
            "spec": {"resources": resources, "reason": "testing validation"}}
    with pytest.raises(UsageError) as e:
        api.create(body)
    assert e.value.exit_code == 2 and message in e.value.message


def test_two_concurrent_syncs_do_not_both_write(kube, people, sandbox):
    from mlctl.admin.lease import KubeLeaseStore, LeaseLock
    from mlctl.admin.objects import LEASE_NAME, SYSTEM_NAMESPACE
    from mlctl.admin.sync import SyncOptions, run_sync
    from mlctl.errors import Unavailable
    from mlctl.kube.client import for_admin

    started = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def one_run(name: str):
        api = for_admin(str(sandbox.kubeconfig), "local", "sandbox-{cluster}")  # own request counts
        lock = LeaseLock(KubeLeaseStore(api, LEASE_NAME, SYSTEM_NAMESPACE), LEASE_NAME, SYSTEM_NAMESPACE,
                         me=f"{name}-{people['alice']}", duration=15)
        started.wait()
        try:
            lock.acquire(timeout=1, poll=0.2)
        except Unavailable as e:
            outcomes[name] = ("refused", e.message, dict(api.requests))
            return
        try:
            lock.start_renewing()
            # hold the lease beyond the other's timeout, as a long sync would
            run_sync({"local": api}, directory(people), lambda _: settings(), SyncOptions(), lock=lock)
            threading.Event().wait(2.5)
            outcomes[name] = ("wrote", None, dict(api.requests))
        finally:
            lock.release()

    threads = [threading.Thread(target=one_run, args=(n,)) for n in ("first", "second")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    kinds = sorted(o[0] for o in outcomes.values())
    assert kinds == ["refused", "wrote"], outcomes
    refused = next(o for o in outcomes.values() if o[0] == "refused")
    assert "holds lease mlctl-system/mlctl-admin-sync" in refused[1]
    assert not any(k.startswith(("POST", "PATCH", "PUT", "DELETE")) and not k.endswith(" Lease") for k in refused[2])


def test_dry_run_server_writes_nothing(kube, people):
    from mlctl.admin.sync import SyncOptions

    api = kube["gcp"]
    result = sync_only_these(api, directory(people), SyncOptions(dry_run="server"))
    assert result.errors == [] and result.created == 8
    assert quota_of(api, people["alice"]) is None


def test_prune_keeps_a_namespace_with_workloads_unless_forced(kube, people):
    """The prune step of admin sync for two departed users, one of whom left a pod running. (The step is called
    for these two namespaces only: a whole sync with them gone would also prune other tests' tenants.)"""
    from mlctl.admin.sync import ClusterResult, Guard, SyncOptions, _orphan
    from mlctl.tenancy import user_namespace

    api = kube["local"]
    sync_only_these(api, directory(people))
    empty, busy = user_namespace(people["alice"]), user_namespace(people["bob"])
    api.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "left-running", "namespace": busy},
                "spec": {"containers": [{"name": "main", "image": "busybox"}]}})

    def deleting(ns: str) -> bool:
        live = api.find("Namespace", ns)
        return live is None or bool(live["metadata"].get("deletionTimestamp"))

    report = ClusterResult("local")
    for ns in (empty, busy):
        _orphan(api, ns, SyncOptions(), report, Guard(), lambda text: None)
    assert [c["action"] for c in report.changes] == ["orphan", "orphan"] and not deleting(empty)

    pruned = ClusterResult("local")
    for ns in (empty, busy):
        _orphan(api, ns, SyncOptions(prune=True), pruned, Guard(), lambda text: None)
    assert pruned.errors == [] and pruned.deleted == 1
    assert [c["action"] for c in pruned.changes] == ["delete", "orphan"]
    assert pruned.changes[1]["reason"].endswith("kept: holds pods (--force deletes)")
    assert deleting(empty) and not deleting(busy)

    forced = ClusterResult("local")
    _orphan(api, busy, SyncOptions(prune=True, force=True), forced, Guard(), lambda text: None)
    assert forced.errors == [] and forced.deleted == 1 and deleting(busy)


# ---- with Keycloak: the real directory, logins, RBAC between users ---------------------------------------

@pytest.fixture(scope="module")
def keycloak(sandbox):
    kc = sandbox.platform.get("keycloak")
    if not kc or not kc.get("issuer"):
        unavailable("the platform document has no keycloak section (Keycloak not wired into `sandbox up`)")
    from mlctl.sandbox import keycloak as sandbox_keycloak

    return {"doc": kc, "admin_secret": sandbox_keycloak.ADMIN_CLIENT_SECRET,
            "bootstrap": sandbox_keycloak.BOOTSTRAP_ADMIN, "realm": sandbox_keycloak.REALM}


def _admin_env():
    from mlctl.sandbox import keycloak as sandbox_keycloak

    os.environ["MLCTL_ADMIN_CLIENT_ID"] = sandbox_keycloak.ADMIN_CLIENT_ID
    os.environ["MLCTL_CLIENT_SECRET"] = sandbox_keycloak.ADMIN_CLIENT_SECRET


def _sync(sandbox, env, *extra):
    with env("cron"):
        _admin_env()
        r = mlctl("admin", "sync", "-o", "json", "--kubeconfig", str(sandbox.kubeconfig), *extra)
    assert r.code == 0, r.err
    return json.loads(r.out)


def _login(env, user: str, password: str):
    with env(user):
        r = mlctl("login", "--password", "-u", user, "--no-kubeconfig", stdin=password + "\n")
    assert r.code == 0, r.err


def _realm_admin(sandbox, keycloak):
    from keycloak import KeycloakAdmin

    from mlctl.auth.session import keycloak_ca_file
    from mlctl.factory import Factory

    issuer = keycloak["doc"]["issuer"]
    server = issuer.split("/realms/")[0]
    with contextlib.ExitStack():
        f = Factory(env={"MLCTL_PLATFORM_FILE": str(sandbox.platform_file)})
        ca = keycloak_ca_file(f)
    user, password = keycloak["bootstrap"]
    return KeycloakAdmin(server_url=server + "/", username=user, password=password, realm_name=keycloak["realm"],
                         user_realm_name="master", verify=str(ca) if ca else True)


def _hard(sandbox, user: str, cluster: str = "local") -> dict:
    proc = sandbox.kubectl("get", "resourcequota", "mlctl-quota", "-n", f"u-{user}", "-o", "json", cluster=cluster)
    return json.loads(proc.stdout)["spec"]["hard"]


def test_admin_sync_from_keycloak_gives_default_and_group_quota(sandbox, env, installed, keycloak):
    summary = _sync(sandbox, env)
    assert summary["errors"] == 0, summary
    for cluster in ("local", "gcp"):
        assert _hard(sandbox, "bob", cluster)["requests.nvidia.com/gpu"] == "9"
    # burst-gcp's grant names gcp (mlctl.io/quota-cluster): alice gets it there alone
    assert _hard(sandbox, "alice", "local")["requests.nvidia.com/gpu"] == "1"
    gcp = _hard(sandbox, "alice", "gcp")
    assert (gcp["requests.nvidia.com/gpu"], gcp["requests.cpu"], gcp["requests.memory"]) == ("129", "520", "4128Gi")
    again = _sync(sandbox, env)
    assert (again["created"], again["updated"]) == (0, 0)


def test_moving_a_user_between_groups_in_keycloak_changes_the_quota(sandbox, env, installed, keycloak):
    """A Keycloak user of the test's own (the realm's people keep their groups, whatever happens here)."""
    admin = _realm_admin(sandbox, keycloak)
    name = f"t{uuid.uuid4().hex[:6]}"
    uid = admin.create_user({"username": name, "enabled": True})
    group = admin.get_group_by_path("/gpu-power-users")["id"]
    try:
        _sync(sandbox, env)
        assert _hard(sandbox, name)["requests.nvidia.com/gpu"] == "1"
        admin.group_user_add(uid, group)
        _sync(sandbox, env)
        assert _hard(sandbox, name)["requests.nvidia.com/gpu"] == "9"
        admin.group_user_remove(uid, group)
        _sync(sandbox, env)
        hard = _hard(sandbox, name)
        assert hard["requests.nvidia.com/gpu"] == "1"
        assert "limits.nvidia.com/gpu" not in hard  # granted by the group only, so removed with it
    finally:
        admin.delete_user(uid)
        for cluster in ("local", "gcp"):
            sandbox.kubectl("delete", "namespace", f"u-{name}", "--wait=false", cluster=cluster, check=False)


def test_request_approve_and_rbac_between_users(sandbox, env, installed, keycloak):
    _sync(sandbox, env)
    _login(env, "alice", "alice-pw")
    _login(env, "dave", "dave-pw")
    with env("alice"):
        r = mlctl("quota", "request", "--gpu", "2", "--reason", "integration test of quota requests", "-o", "name")
        assert r.code == 0, r.err
        name = r.out.strip().split("/")[-1]
        bad = mlctl("quota", "request", "--gpu", "-2", "--reason", "negative")
        assert bad.code == 2 and "more than zero" in bad.err
        # alice cannot decide her own request (no quotarequests/status for users)
        own = mlctl("admin", "quota", "approve", f"u-alice/{name}")
        assert own.code == 5, own.err
        # nor read or change bob's namespace, nor change her own quota
        assert mlctl("quota", "show", "-n", "u-bob").code == 5
        assert mlctl("quota", "requests", "-n", "u-bob").code == 5
    from mlctl.errors import Forbidden
    from mlctl.factory import Factory

    with env("alice"):
        api = Factory().kube("local")
        with pytest.raises(Forbidden) as e:
            api.patch("ResourceQuota", "mlctl-quota", {"spec": {"hard": {"requests.nvidia.com/gpu": "100"}}},
                      "u-alice")
        assert e.value.status == 403
        with pytest.raises(Forbidden) as e:
            api.list("Pod", "u-bob")
        assert e.value.status == 403
    with env("dave"):
        r = mlctl("admin", "quota", "approve", f"u-alice/{name}", "-m", "granted for the test")
        assert r.code == 0, r.err
    try:
        _sync(sandbox, env)
        assert _hard(sandbox, "alice")["requests.nvidia.com/gpu"] == "3"
        with env("alice"):
            shown = json.loads(mlctl("quota", "show", "-o", "json").out)
        gpu = next(row for row in shown["resources"] if row["resource"] == "nvidia.com/gpu")
        assert {s["source"] for s in gpu["sources"]} == {"default", f"request {name}"}
    finally:
        sandbox.kubectl("delete", "quotarequest", name, "-n", "u-alice", check=False)
        _sync(sandbox, env)
