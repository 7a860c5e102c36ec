"""admin sync without a cluster: desired state, which objects need an apply, LIST/PATCH counts against a
fake API server that does server-side apply bookkeeping (managedFields), orphans, crash recovery."""

from __future__ import annotations

import copy
import json
import threading
from collections import Counter

import pytest

from mlctl.admin import diff
from mlctl.admin.desired import Directory, User, desired_state, key_of
from mlctl.admin.objects import FIELD_MANAGER, SELECTOR, Settings, install_objects
from mlctl.admin.sync import SyncOptions, run_sync, sync_cluster
from mlctl.quota import SOURCES_ANNOTATION, parse_resources

GPU_GROUP = {"mlctl.io/quota.requests.nvidia.com/gpu": ["8"], "mlctl.io/quota.requests.memory": ["64Gi"]}


def settings(**kw) -> Settings:
    return Settings(default=parse_resources({"requests.cpu": "8", "requests.memory": "32Gi",
                                             "requests.nvidia.com/gpu": "1", "pods": "20"}, "test"), **kw)


def directory(bob_groups=("ml-users", "gpu-power-users"), extra_users=()) -> Directory:
    users = [User("alice"), User("bob"), User("carol", enabled=False), User("service-account-mlctl-admin"),
             *[User(u) for u in extra_users]]
    groups = {"ml-users": {}, "gpu-power-users": GPU_GROUP, "burst-gcp": {"mlctl.io/clusters": ["gcp"]}}
    members = {"ml-users": {"alice", "bob", "carol", *extra_users}, "gpu-power-users": set(),
               "burst-gcp": {"alice"}}
    for g in bob_groups:
        members[g].add("bob")
    return Directory(users, groups, members)


def hard(state, ns):
    return state.objects[("ResourceQuota", ns, "mlctl-quota")]["spec"]["hard"]


# ---- desired state ----------------------------------------------------------------------------------------

def test_desired_state_default_for_alice_and_group_extra_for_bob():
    state = desired_state(directory(), [], settings())
    assert sorted(state.namespaces) == ["u-alice", "u-bob"]  # carol is disabled; service accounts get none
    assert hard(state, "u-alice") == {"pods": "20", "requests.cpu": "8", "requests.memory": "32Gi",
                                      "requests.nvidia.com/gpu": "1"}
    assert hard(state, "u-bob")["requests.nvidia.com/gpu"] == "9"
    assert hard(state, "u-bob")["requests.memory"] == "96Gi"
    quota = state.objects[("ResourceQuota", "u-bob", "mlctl-quota")]
    sources = json.loads(quota["metadata"]["annotations"][SOURCES_ANNOTATION])
    assert [s.get("name") for s in sources] == [None, "gpu-power-users"]
    rb = state.objects[("RoleBinding", "u-bob", "mlctl-owner")]
    assert rb["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "oidc:bob"}]
    assert rb["roleRef"]["name"] == "mlctl-user"
    ns = state.objects[("Namespace", "", "u-bob")]
    assert ns["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "mlctl"
    assert ns["metadata"]["labels"]["mlctl.io/owner"] == "bob"


def test_moving_bob_out_of_the_group_lowers_his_quota():
    state = desired_state(directory(bob_groups=("ml-users",)), [], settings())
    assert hard(state, "u-bob")["requests.nvidia.com/gpu"] == "1"


def test_only_approved_requests_count_and_per_namespace():
    reqs = [
        {"metadata": {"name": "qr-a", "namespace": "u-alice"}, "spec": {"resources": {"nvidia.com/gpu": 4}},
         "status": {"phase": "Approved"}},
        {"metadata": {"name": "qr-b", "namespace": "u-alice"}, "spec": {"resources": {"nvidia.com/gpu": 8}}},
        {"metadata": {"name": "qr-c", "namespace": "u-alice"}, "spec": {"resources": {"pods": 5}},
         "status": {"phase": "Denied"}},
    ]
    state = desired_state(directory(), reqs, settings())
    assert hard(state, "u-alice")["requests.nvidia.com/gpu"] == "5"
    assert hard(state, "u-bob")["requests.nvidia.com/gpu"] == "9"


def test_a_bad_group_attribute_is_reported_and_its_members_quota_held():
    d = directory()
    d.groups["gpu-power-users"] = {"mlctl.io/quota.requests.nvidia.com/gpu": ["-8"]}
    state = desired_state(d, [], settings())
    assert [p.subject for p in state.problems] == ["group gpu-power-users"]
    assert "u-bob" in state.quota_held and ("ResourceQuota", "u-bob", "mlctl-quota") not in state.objects
    assert ("Namespace", "", "u-bob") in state.objects  # the rest of bob's namespace is still reconciled
    assert ("ResourceQuota", "u-alice", "mlctl-quota") in state.objects


def test_user_group_limits_tenants():
    state = desired_state(directory(), [], settings(user_group="gpu-power-users"))
    assert sorted(state.namespaces) == ["u-bob"]


def test_install_objects_rbac():
    objs = {(o["kind"], o["metadata"]["name"]): o for o in install_objects(settings())}
    crd = objs[("CustomResourceDefinition", "quotarequests.mlctl.io")]
    assert crd["spec"]["versions"][0]["subresources"] == {"status": {}}
    user_rules = objs[("ClusterRole", "mlctl-user")]["rules"]
    qr_rules = [r for r in user_rules if r["apiGroups"] == ["mlctl.io"]]
    assert qr_rules == [{"apiGroups": ["mlctl.io"], "resources": ["quotarequests"],
                         "verbs": ["create", "get", "list", "watch", "delete"]}]
    assert not any("quotarequests/status" in r["resources"] for r in user_rules)
    admin_rules = objs[("ClusterRole", "mlctl-quota-admin")]["rules"]
    assert any("quotarequests/status" in r["resources"] and "patch" in r["verbs"] for r in admin_rules)
    assert objs[("ClusterRoleBinding", "mlctl-quota-admin")]["subjects"][0]["name"] == "oidc:platform-admins"
    assert objs[("ClusterRoleBinding", "mlctl-admin-sync")]["subjects"][0]["name"] == (
        "oidc:service-account-mlctl-admin")
    assert [o["kind"] for o in install_objects(settings())][:2] == ["CustomResourceDefinition", "Namespace"]


# ---- the fake API server ----------------------------------------------------------------------------------

def _fields(paths, dots: bool) -> dict:
    """fieldsV1 of leaf paths; an Update entry also lists each map itself ('.'), as the API server writes."""
    out: dict = {}
    for path in paths:
        node = out
        for part in path[:-1]:
            node = node.setdefault(f"f:{part}", {".": {}} if dots else {})
        node[f"f:{path[-1]}"] = {}
    return out


def _get(obj, path):
    for part in path:
        obj = obj[part]
    return obj


def _set(obj, path, value):
    for part in path[:-1]:
        obj = obj.setdefault(part, {})
    obj[path[-1]] = copy.deepcopy(value)


def _drop(obj, path):
    for part in path[:-1]:
        obj = obj.get(part) or {}
    obj.pop(path[-1], None)


def _canonical(value: str) -> str:
    return {"1.5": "1500m"}.get(value, value)  # the apiserver's canonical form of some quantities


def _conflict(what: str):
    from mlctl.kube.errors import from_status

    return from_status(409, "Conflict", what, "writing", "local")


class FakeKube:
    """Stores objects and does the managedFields bookkeeping of the API server that admin sync relies on:
    a create leaves an Update entry; an apply sets the fields it applies, takes them from other managers
    (force) and removes the fields its previous apply owned that nobody owns any more; a JSON patch can
    replace managedFields, guarded by resourceVersion."""

    def __init__(self, cluster="local", fail_after: int | None = None):
        self.cluster = cluster
        self.objects: dict[tuple, dict] = {}
        self.counts: Counter = Counter()
        self.fail_after = fail_after
        self.busy: set[str] = set()
        self._lock = threading.Lock()
        self.rv = 0

    @property
    def requests(self):
        return {f"{m} {k}": n for (m, k), n in sorted(self.counts.items())}

    def list(self, kind, *, namespace=None, selector=None):
        self.counts[("LIST", kind)] += 1
        out = []
        for obj in self.objects.values():
            if obj["kind"] != kind:
                continue
            labels = obj["metadata"].get("labels") or {}
            if selector and labels.get(selector.split("=")[0]) != selector.split("=")[1]:
                continue
            out.append(copy.deepcopy(obj))
        return out

    def find(self, kind, name, namespace=None):
        self.counts[("GET", kind)] += 1
        obj = self.objects.get((kind, namespace or "", name))
        return copy.deepcopy(obj) if obj else None

    def exists_any(self, kind, namespace):
        self.counts[("LIST", kind)] += 1
        return namespace in self.busy and kind == "Pod"

    def _count_write(self, method, kind):
        self.counts[(method, kind)] += 1
        if self.fail_after is not None and writes(self) > self.fail_after:
            raise ConnectionError("the process was killed")

    def _store(self, key, stored):
        self.rv += 1
        stored["metadata"]["resourceVersion"] = str(self.rv)
        if stored["kind"] == "ResourceQuota":
            stored["spec"]["hard"] = {k: _canonical(v) for k, v in stored["spec"]["hard"].items()}
        if stored["kind"] == "Namespace":
            stored["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = key[2]
        self.objects[key] = stored
        return copy.deepcopy(stored)

    def create(self, obj, *, dry_run=False, strict=True, manager=None):
        with self._lock:
            self._count_write("POST", obj["kind"])
            key = key_of(obj)
            if key in self.objects:
                raise _conflict("AlreadyExists")
            if dry_run:
                return obj
            paths = diff.desired_paths(obj) | (diff.SERVER_SET if obj["kind"] == "Namespace" else set())
            stored = copy.deepcopy(obj)
            stored["metadata"]["managedFields"] = [{"manager": manager, "operation": "Update",
                                                    "fieldsV1": _fields(paths, dots=True)}]
            return self._store(key, stored)

    def apply(self, obj, manager, *, force=True, dry_run=False):
        with self._lock:
            self._count_write("PATCH", obj["kind"])
            if dry_run:
                return obj
            key = key_of(obj)
            stored = copy.deepcopy(self.objects.get(key) or {k: obj[k] for k in ("apiVersion", "kind")})
            stored.setdefault("metadata", {}).update({k: obj["metadata"][k] for k in ("name", "namespace")
                                                      if k in obj["metadata"]})
            applied = diff.desired_paths(obj)
            entries = stored["metadata"].get("managedFields") or []
            mine = next((e for e in entries if e["manager"] == manager and e["operation"] == "Apply"), None)
            before = diff._fields_paths(mine["fieldsV1"]) if mine else set()
            others = []
            for e in entries:
                if e is mine:
                    continue
                left = diff._fields_paths(e["fieldsV1"]) - applied
                if left:
                    others.append({**e, "fieldsV1": _fields(left, dots=False)})
            still_owned = set().union(*(diff._fields_paths(e["fieldsV1"]) for e in others))
            for path in before - applied - still_owned:
                _drop(stored, path)
            for path in applied:
                _set(stored, path, _get(obj, path))
            stored["metadata"]["managedFields"] = others + [
                {"manager": manager, "operation": "Apply", "fieldsV1": _fields(applied, dots=False)}]
            return self._store(key, stored)

    def patch_json(self, kind, name, namespace, ops):
        with self._lock:
            self._count_write("PATCH", kind)
            key = (kind, namespace or "", name)
            stored = copy.deepcopy(self.objects[key])
            for op in ops:
                assert op["op"] == "replace", op
                field = op["path"].rsplit("/", 1)[1]
                if field == "resourceVersion" and op["value"] != stored["metadata"]["resourceVersion"]:
                    raise _conflict("Conflict")
                stored["metadata"][field] = copy.deepcopy(op["value"])
            return self._store(key, stored)

    def delete(self, kind, name, namespace=None, *, dry_run=False):
        self.counts[("DELETE", kind)] += 1
        if not dry_run:
            del self.objects[(kind, namespace or "", name)]


def writes(api: FakeKube) -> int:
    return sum(n for (m, _), n in api.counts.items() if m in ("POST", "PATCH"))


def patches(api: FakeKube) -> int:
    return sum(n for (m, _), n in api.counts.items() if m == "PATCH")


def lists(api: FakeKube) -> int:
    return sum(n for (m, _), n in api.counts.items() if m == "LIST")


def test_first_sync_creates_then_resync_writes_nothing_with_constant_lists():
    api = FakeKube()
    first = sync_cluster(api, directory(), settings(), SyncOptions())
    assert (first.created, first.updated, first.errors) == (8, 0, [])  # 2 users x 4 objects
    assert lists(api) == 5
    api.counts.clear()
    again = sync_cluster(api, directory(), settings(), SyncOptions())
    assert (again.created, again.updated, again.unchanged) == (0, 0, 8)
    assert patches(api) == 0 and lists(api) == 5 and set(m for m, _ in api.counts) == {"LIST"}


def test_resync_cost_does_not_grow_with_users():
    many = directory(extra_users=[f"user{i}" for i in range(300)])
    api = FakeKube()
    sync_cluster(api, many, settings(), SyncOptions(concurrency=8))
    api.counts.clear()
    result = sync_cluster(api, many, settings(), SyncOptions(concurrency=8))
    assert result.unchanged == 302 * 4 and lists(api) == 5 and patches(api) == 0


def test_group_change_updates_only_bobs_quota():
    api = FakeKube()
    sync_cluster(api, directory(), settings(), SyncOptions())
    api.counts.clear()
    result = sync_cluster(api, directory(bob_groups=("ml-users",)), settings(), SyncOptions())
    assert [c["object"] for c in result.changes] == ["resourcequota/mlctl-quota in u-bob"]
    assert api.objects[("ResourceQuota", "u-bob", "mlctl-quota")]["spec"]["hard"]["requests.nvidia.com/gpu"] == "1"


def test_quantities_compare_by_value():
    s = Settings(default=parse_resources({"requests.cpu": "1.5"}, "t"))
    api = FakeKube()
    sync_cluster(api, directory(), s, SyncOptions())
    assert api.objects[("ResourceQuota", "u-alice", "mlctl-quota")]["spec"]["hard"]["requests.cpu"] == "1500m"
    assert sync_cluster(api, directory(), s, SyncOptions()).updated == 0


def test_someone_elses_edit_is_reverted_and_a_dropped_field_is_noticed():
    api = FakeKube()
    sync_cluster(api, directory(), settings(), SyncOptions())
    api.objects[("ResourceQuota", "u-alice", "mlctl-quota")]["spec"]["hard"]["pods"] = "1000"
    result = sync_cluster(api, directory(), settings(), SyncOptions())
    assert [c["object"] for c in result.changes] == ["resourcequota/mlctl-quota in u-alice"]
    # a key mlctl managed but no longer wants (here: a default without pods) must be applied away
    fewer = Settings(default=parse_resources({"requests.cpu": "8", "requests.memory": "32Gi",
                                              "requests.nvidia.com/gpu": "1"}, "t"))
    result = sync_cluster(api, directory(), fewer, SyncOptions())
    assert result.updated == 2
    assert "pods" not in api.objects[("ResourceQuota", "u-alice", "mlctl-quota")]["spec"]["hard"]


def test_first_sync_posts_and_a_later_update_adopts_the_create_entry_then_applies():
    storage = {**GPU_GROUP, "mlctl.io/quota.requests.storage": ["500Gi"]}  # a key the default lacks
    d = directory()
    d.groups["gpu-power-users"] = storage
    api = FakeKube()
    sync_cluster(api, d, settings(), SyncOptions())
    assert api.requests["POST ResourceQuota"] == 2 and patches(api) == 0
    quota = api.objects[("ResourceQuota", "u-bob", "mlctl-quota")]
    assert [(e["manager"], e["operation"]) for e in quota["metadata"]["managedFields"]] == [(FIELD_MANAGER, "Update")]
    assert quota["spec"]["hard"]["requests.storage"] == "500Gi"
    api.counts.clear()
    assert sync_cluster(api, d, settings(), SyncOptions()).unchanged == 8 and writes(api) == 0

    result = sync_cluster(api, directory(bob_groups=("ml-users",)), settings(), SyncOptions())
    assert [c["object"] for c in result.changes] == ["resourcequota/mlctl-quota in u-bob"]
    assert patches(api) == 2  # the adoption, then the apply
    quota = api.objects[("ResourceQuota", "u-bob", "mlctl-quota")]
    assert "requests.storage" not in quota["spec"]["hard"]  # only an Apply entry can remove it
    assert [(e["manager"], e["operation"]) for e in quota["metadata"]["managedFields"]] == [(FIELD_MANAGER, "Apply")]
    api.counts.clear()
    assert sync_cluster(api, directory(bob_groups=("ml-users",)), settings(), SyncOptions()).updated == 0
    assert writes(api) == 0


def test_without_adoption_a_dropped_key_would_stay():
    """Guards the fake itself: an apply cannot remove a field that the create's Update entry still owns."""
    api = FakeKube()
    sync_cluster(api, directory(), settings(), SyncOptions())
    obj = copy.deepcopy(api.objects[("ResourceQuota", "u-bob", "mlctl-quota")])
    del obj["spec"]["hard"]["pods"]
    for key in ("managedFields", "resourceVersion"):
        del obj["metadata"][key]
    api.apply(obj, FIELD_MANAGER)
    assert "pods" in api.objects[("ResourceQuota", "u-bob", "mlctl-quota")]["spec"]["hard"]


def test_adoption_reads_again_when_the_object_changed_meanwhile():
    api = FakeKube()
    sync_cluster(api, directory(), settings(), SyncOptions())
    real_patch = api.patch_json
    calls = []

    def changed_first(kind, name, namespace, ops):
        calls.append(ops)
        if len(calls) == 1:  # e.g. the quota controller wrote the status after the LIST
            api.objects[(kind, namespace, name)]["metadata"]["resourceVersion"] = "changed"
        return real_patch(kind, name, namespace, ops)

    api.patch_json = changed_first
    result = sync_cluster(api, directory(bob_groups=("ml-users",)), settings(), SyncOptions())
    assert result.errors == [] and len(calls) == 2 and api.requests["GET ResourceQuota"] == 1
    assert api.objects[("ResourceQuota", "u-bob", "mlctl-quota")]["spec"]["hard"]["requests.nvidia.com/gpu"] == "1"


def test_a_create_that_finds_the_object_applies_over_it():
    api = FakeKube()
    api.objects[("Namespace", "", "u-alice")] = {"apiVersion": "v1", "kind": "Namespace",
                                                 "metadata": {"name": "u-alice", "resourceVersion": "1"}}
    result = sync_cluster(api, directory(), settings(), SyncOptions())
    assert result.errors == [] and result.created == 8
    assert api.requests["POST Namespace"] == 2 and api.requests["PATCH Namespace"] == 1
    assert api.objects[("Namespace", "", "u-alice")]["metadata"]["labels"]["mlctl.io/tenant"] == "true"
    assert sync_cluster(api, directory(), settings(), SyncOptions()).unchanged == 8


def test_adoption_patch():
    entries = [
        {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status",
         "fieldsV1": {"f:status": {}}},
        {"manager": FIELD_MANAGER, "operation": "Update", "time": "t1", "fieldsV1": {
            "f:metadata": {"f:labels": {".": {}, "f:a": {}, "f:kubernetes.io/metadata.name": {}}}}},
    ]
    live = {"metadata": {"resourceVersion": "7", "managedFields": entries}}
    ops = diff.adoption_patch(live, FIELD_MANAGER)
    assert ops[1] == {"op": "replace", "path": "/metadata/resourceVersion", "value": "7"}
    assert ops[0]["value"] == [entries[0], {"manager": FIELD_MANAGER, "operation": "Apply", "time": "t1",
                                            "fieldsType": "FieldsV1",
                                            "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:a": {}}}}}]
    assert diff.managed_paths(live, FIELD_MANAGER) == {("metadata", "labels", "a")}
    # an Apply entry already there takes the Update entry's fields in, and the Update entry goes
    both = entries + [{"manager": FIELD_MANAGER, "operation": "Apply", "fieldsV1": {"f:spec": {"f:x": {}}}}]
    merged = diff.adoption_patch({"metadata": {"resourceVersion": "8", "managedFields": both}}, FIELD_MANAGER)
    assert [(e["manager"], e["operation"]) for e in merged[0]["value"]] == [
        ("kube-controller-manager", "Update"), (FIELD_MANAGER, "Apply")]
    assert merged[0]["value"][1]["fieldsV1"] == {"f:spec": {"f:x": {}}, "f:metadata": {"f:labels": {".": {}, "f:a": {}}}}
    assert diff.adoption_patch({"metadata": {"managedFields": both[2:]}}, FIELD_MANAGER) is None
    assert diff.adoption_patch({"metadata": {"managedFields": entries[:1]}}, FIELD_MANAGER) is None


def test_needs_apply_reasons():
    desired = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q", "namespace": "n",
               "labels": {"a": "1"}}, "spec": {"hard": {"pods": "2"}}}
    assert diff.needs_apply(desired, None, FIELD_MANAGER) == "create"
    live = copy.deepcopy(desired)
    assert diff.needs_apply(desired, live, FIELD_MANAGER).startswith("update: not yet managed")
    live["metadata"]["managedFields"] = [{"manager": FIELD_MANAGER, "operation": "Update", "fieldsV1": {
        "f:metadata": {"f:labels": {".": {}, "f:a": {}}}, "f:spec": {"f:hard": {"f:pods": {}}}}}]
    live["metadata"]["labels"]["added-by-someone"] = "x"
    assert diff.needs_apply(desired, live, FIELD_MANAGER) is None  # created by mlctl's POST
    live["metadata"]["managedFields"][0]["operation"] = "Apply"
    assert diff.needs_apply(desired, live, FIELD_MANAGER) is None
    live["spec"]["hard"]["pods"] = "3"
    assert diff.needs_apply(desired, live, FIELD_MANAGER) == "update: spec differs"
    live["spec"]["hard"]["pods"] = "2"
    live["spec"]["hard"]["cpu"] = "4"  # mlctl set it before and no longer wants it
    live["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:hard"]["f:cpu"] = {}
    assert diff.needs_apply(desired, live, FIELD_MANAGER) == "update: stop managing spec.hard.cpu"


def test_managed_paths_collapse_list_members():
    fields = {"f:subjects": {}, "f:roleRef": {}, "f:spec": {"f:limits": {"k:{\"type\":\"Container\"}": {".": {}}}}}
    live = {"metadata": {"managedFields": [{"manager": "m", "operation": "Apply", "fieldsV1": fields}]}}
    assert diff.managed_paths(live, "m") == {("subjects",), ("roleRef",), ("spec", "limits")}
    assert diff.managed_paths(live, "other") is None


def test_crash_half_way_then_rerun_converges():
    api = FakeKube(fail_after=3)
    broken = sync_cluster(api, directory(), settings(), SyncOptions(concurrency=1))
    assert broken.errors and broken.created == 3
    api.fail_after = None
    fixed = sync_cluster(api, directory(), settings(), SyncOptions())
    assert fixed.errors == [] and fixed.created == 5 and fixed.unchanged == 3
    assert sync_cluster(api, directory(), settings(), SyncOptions()).unchanged == 8


def test_a_failed_namespace_skips_its_objects_and_sets_the_exit_code():
    api = FakeKube(fail_after=0)
    result = sync_cluster(api, directory(), settings(), SyncOptions(concurrency=1))
    assert result.created == 0 and len(result.errors) == 8
    assert set(result.exit_codes) == {7}  # ConnectionError = server unavailable


def test_dry_run_writes_nothing_and_shows_a_diff():
    api = FakeKube()
    result = sync_cluster(api, directory(), settings(), SyncOptions(dry_run="client"))
    assert api.objects == {} and patches(api) == 0 and result.created == 8
    quota_change = next(c for c in result.changes if c["object"] == "resourcequota/mlctl-quota in u-bob")
    assert "+    requests.nvidia.com/gpu: '9'" in quota_change["diff"]


def test_departed_users_are_reported_pruned_only_when_empty_unless_forced():
    api = FakeKube()
    sync_cluster(api, directory(extra_users=["eve", "mallory"]), settings(), SyncOptions())
    api.busy.add("u-mallory")
    result = sync_cluster(api, directory(), settings(), SyncOptions())
    assert result.orphaned == ["u-eve", "u-mallory"] and result.deleted == 0
    assert ("Namespace", "", "u-eve") in api.objects
    result = sync_cluster(api, directory(), settings(), SyncOptions(prune=True))
    assert result.deleted == 1 and ("Namespace", "", "u-eve") not in api.objects
    kept = next(c for c in result.changes if c["object"] == "namespace/u-mallory")
    assert "kept: holds pods" in kept["reason"]
    result = sync_cluster(api, directory(), settings(), SyncOptions(prune=True, force=True))
    assert result.deleted == 1 and ("Namespace", "", "u-mallory") not in api.objects


def test_summary_json_and_exit_code():
    apis = {"local": FakeKube("local"), "gcp": FakeKube("gcp")}
    summary = run_sync(apis, directory(), lambda name: settings(), SyncOptions())
    data = summary.to_dict()
    assert (data["created"], data["errors"], summary.exit_code()) == (16, 0, 0)
    assert [c["cluster"] for c in data["clusters"]] == ["local", "gcp"]
    assert data["clusters"][0]["requests"]["LIST Namespace"] == 1
    d = directory()
    d.groups["gpu-power-users"] = {"mlctl.io/quota.requests.nvidia.com/gpu": ["x"]}
    assert run_sync(apis, d, lambda name: settings(), SyncOptions()).exit_code() == 2


def test_lists_are_label_selected():
    api = FakeKube()
    api.objects[("Namespace", "", "kube-system")] = {"kind": "Namespace", "metadata": {"name": "kube-system"}}
    result = sync_cluster(api, directory(), settings(), SyncOptions())
    assert result.orphaned == [] and SELECTOR == "app.kubernetes.io/managed-by=mlctl"


@pytest.mark.parametrize("dry_run", ["client", "server"])
def test_dry_runs_never_delete(dry_run):
    api = FakeKube()
    sync_cluster(api, directory(extra_users=["eve"]), settings(), SyncOptions())
    sync_cluster(api, directory(), settings(), SyncOptions(prune=True, dry_run=dry_run))
    assert ("Namespace", "", "u-eve") in api.objects


def test_uncovered_paths_agree_with_the_pairwise_definition():
    import random

    from mlctl.admin.diff import _uncovered

    def covered(p, others):  # equals, is inside, or contains one of others
        return any(p[:len(o)] == o or o[:len(p)] == p for o in others)

    rng = random.Random(7)
    names = ["metadata", "labels", "spec", "hard", "a", "b"]
    for _ in range(300):
        def path():
            return tuple(rng.choice(names) for _ in range(rng.randint(1, 4)))

        paths, others = {path() for _ in range(6)}, {path() for _ in range(5)}
        assert sorted(_uncovered(paths, others)) == sorted(p for p in paths if not covered(p, others))
