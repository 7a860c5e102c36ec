"""`mlctl admin sync`: make every cluster's tenancy match Keycloak, with few requests, safely under cron.

Per cluster: ONE label-selected LIST per kind (namespaces, resourcequotas, rolebindings, limitranges; all
quotarequests, as the CRD is mlctl's own), the desired state computed purely (desired.py), and writes only
of the objects diff.needs_apply says differ, namespaces first, then the rest, from a thread pool: a POST
for a missing object, a server-side apply (field manager mlctl-admin-sync, force) for one that differs.
Nothing is read per namespace, so a re-sync that changes nothing costs a constant number of requests. A
Lease in the home cluster keeps runs from overlapping; every step is idempotent, so a run that crashed
half-way is finished by the next one.

Namespaces of users who left are reported; `--prune` deletes those holding no workloads or volumes, and
`--force` deletes them regardless.
"""

from __future__ import annotations

import gc
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from mlctl.admin import objects
from mlctl.admin.desired import DesiredState, Directory, Key, describe, desired_state, key_of
from mlctl.admin.diff import adoption_patch, needs_apply, unified
from mlctl.admin.objects import FIELD_MANAGER, SELECTOR, TENANT_LABEL, Settings
from mlctl.errors import MlctlError

log = logging.getLogger(__name__)

LISTED_KINDS = ("Namespace", "ResourceQuota", "RoleBinding", "LimitRange")
WORKLOAD_KINDS = ("Pod", "PersistentVolumeClaim", "TFJob", "PyTorchJob", "Notebook", "InferenceService")


@dataclass
class SyncOptions:
    dry_run: str = "none"  # none | client | server
    prune: bool = False
    force: bool = False
    concurrency: int = 16
    lock_timeout: float = 30.0
    lease_duration: int = 30
    show_diff: bool = True


@dataclass
class ClusterResult:
    cluster: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    orphaned: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    changes: list[dict] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)
    exit_codes: list[int] = field(default_factory=list)
    directory_problems: list[dict] | None = None  # the groups' and users' problems (the same on every cluster)

    def to_dict(self, with_diffs: bool) -> dict:
        changes = self.changes if with_diffs else [{k: v for k, v in c.items() if k != "diff"}
                                                    for c in self.changes]
        return {"cluster": self.cluster, "created": self.created, "updated": self.updated,
                "unchanged": self.unchanged, "deleted": self.deleted, "orphaned": self.orphaned,
                "quotaHeld": self.held, "errors": self.errors, "changes": changes,
                "requests": self.requests}


def _error(result: ClusterResult, subject: str, exc: Exception) -> None:
    from mlctl.kube.errors import translate

    err = exc if isinstance(exc, MlctlError) else translate(exc, subject, result.cluster)
    result.errors.append({"object": subject, "message": err.message})
    result.exit_codes.append(err.exit_code)


def _index(items: list[dict]) -> dict[Key, dict]:
    return {key_of(o): o for o in items}


class Guard:
    """Stops writes once the lease is lost (another run may be writing by then)."""

    def __init__(self, lock=None):
        self.lock = lock

    def check(self) -> None:
        if self.lock is not None and not self.lock.held:
            from mlctl.errors import Unavailable

            raise Unavailable("lost the admin-sync lease; stopped writing",
                              hint="another run took over; re-run 'mlctl admin sync' later")


def plan(desired: DesiredState, live: dict[Key, dict]) -> list[tuple[Key, dict, str | None]]:
    """(key, desired object, reason or None when unchanged) for every desired object; namespaces first."""
    out = []
    for key in sorted(desired.objects, key=lambda k: (k[0] != "Namespace", k[1], k[0], k[2])):
        obj = desired.objects[key]
        out.append((key, obj, needs_apply(obj, live.get(key), FIELD_MANAGER)))
    return out


def orphans(desired: DesiredState, live_namespaces: list[dict]) -> list[str]:
    """Tenant namespaces mlctl made whose user is no longer a tenant."""
    return sorted(ns["metadata"]["name"] for ns in live_namespaces
                  if (ns["metadata"].get("labels") or {}).get(TENANT_LABEL) == "true"
                  and ns["metadata"]["name"] not in desired.namespaces
                  and not ns["metadata"].get("deletionTimestamp"))


def list_live(api) -> dict[str, list[dict]] | Exception:
    """The cluster's tenancy objects (one LIST per kind, plus every QuotaRequest), or the exception that
    stopped the listing (one unreachable cluster must not stop the others)."""
    try:
        listed = {kind: api.list(kind, selector=SELECTOR) for kind in LISTED_KINDS}
        listed["QuotaRequest"] = api.list("QuotaRequest")
        return listed
    except Exception as e:  # noqa: BLE001 - reported by sync_cluster as the cluster's error
        if _crd_missing(e):
            return MlctlError(f"the QuotaRequest CRD is not installed on cluster {api.cluster}",
                              hint="run 'mlctl admin install' first", exit_code=2)
        return e


def sync_cluster(api, directory, settings: Settings, opts: SyncOptions, io=None,
                 guard: Guard | None = None, listed: dict | Exception | None = None) -> ClusterResult:
    """Reconcile one cluster. api: a Kube (mlctl/kube/api.py) or a fake with the same methods; directory: a
    Directory, or a callable returning it (called once the cluster is listed, so that reading Keycloak and
    listing clusters overlap); listed: what list_live(api) returned, when the caller listed already."""
    result = ClusterResult(api.cluster)
    guard = guard or Guard()
    note = (lambda text: io.note(f"{api.cluster}: {text}")) if io is not None else (lambda text: None)
    listed = list_live(api) if listed is None else listed
    if isinstance(listed, Exception):
        _error(result, "listing objects", listed)
        result.requests = api.requests
        return result
    directory = directory() if callable(directory) else directory
    gc.freeze()  # the listed objects and the directory live to the end: the collector need not walk them
    try:
        return _reconcile(api, directory, listed, settings, opts, result, guard, note)
    finally:
        gc.unfreeze()


def _reconcile(api, directory, listed: dict, settings: Settings, opts: SyncOptions, result: ClusterResult,
               guard: Guard, note) -> ClusterResult:
    requests = listed["QuotaRequest"]
    live: dict[Key, dict] = {}
    for kind in LISTED_KINDS:
        live.update(_index(listed[kind]))
    desired = desired_state(directory, requests, settings)
    result.held = sorted(desired.quota_held)
    result.directory_problems = [p.to_dict() for p in desired.problems if not p.subject.startswith("quotarequest ")]
    for problem in desired.problems:  # group problems are reported once, in the summary
        if not problem.subject.startswith("group "):
            result.errors.append({"object": problem.subject, "message": problem.message})
            result.exit_codes.append(2)
    work = plan(desired, live)
    result.unchanged = sum(1 for _, _, why in work if why is None)
    dry = opts.dry_run != "none"

    failed_namespaces: dict[str, int] = {}  # namespace -> exit code of its failure

    def write(item):
        key, obj, why = item
        change = {"action": "create" if why == "create" else "update", "object": describe(key), "reason": why}
        if opts.show_diff and dry:
            change["diff"] = unified(obj, live.get(key), describe(key).replace(" in ", "@"))
        try:
            if key[1] in failed_namespaces:
                raise MlctlError(f"skipped: namespace {key[1]} could not be written",
                                 exit_code=failed_namespaces[key[1]])
            new_namespace = bool(key[1]) and ("Namespace", "", key[1]) not in live
            if opts.dry_run == "server" and new_namespace:
                # the server cannot dry-run objects in a namespace that the dry run did not create
                change["note"] = "namespace is new: not checked by the server"
            elif opts.dry_run == "server" or not dry:
                guard.check()
                _write(api, key, obj, why, live.get(key), server_dry_run=opts.dry_run == "server")
        except Exception as e:  # noqa: BLE001 - recorded per object; the run goes on
            _error(result, describe(key), e)
            if key[0] == "Namespace":
                failed_namespaces[key[2]] = result.exit_codes[-1]
            return None
        if not dry:
            note(f"{describe(key)} {'created' if change['action'] == 'create' else 'updated'}")
        return change

    todo = [w for w in work if w[2] is not None]
    phases = [[w for w in todo if w[0][0] == "Namespace"], [w for w in todo if w[0][0] != "Namespace"]]
    with ThreadPoolExecutor(max_workers=max(1, opts.concurrency), thread_name_prefix="sync") as pool:
        for phase in phases:
            for change in pool.map(write, phase):
                if change is None:
                    continue
                result.changes.append(change)
                if change["action"] == "create":
                    result.created += 1
                else:
                    result.updated += 1

    result.orphaned = orphans(desired, listed["Namespace"])
    for ns in result.orphaned:
        _orphan(api, ns, opts, result, guard, note)
    result.requests = api.requests
    return result


def _status(e: Exception) -> int | None:
    return getattr(e, "status", None)


def _write(api, key: Key, obj: dict, why: str, live: dict | None, *, server_dry_run: bool) -> None:
    """Create a missing object with a POST (falling back to an apply if it exists after all); update with a
    server-side apply, after adopting the Update entry a POST left (diff.adoption_patch)."""
    if why == "create":
        try:
            api.create(obj, manager=FIELD_MANAGER, dry_run=server_dry_run)
            return
        except Exception as e:
            if _status(e) != 409:  # 409: it exists (made meanwhile, or without mlctl's label): apply over it
                raise
    elif live is not None and not server_dry_run:
        _adopt(api, key, live)
    api.apply(obj, FIELD_MANAGER, force=True, dry_run=server_dry_run)


def _adopt(api, key: Key, live: dict, attempts: int = 3) -> None:
    kind, namespace, name = key
    for attempt in range(1, attempts + 1):
        ops = adoption_patch(live, FIELD_MANAGER)
        if ops is None:
            return
        try:
            api.patch_json(kind, name, namespace or None, ops)
            return
        except Exception as e:
            if _status(e) != 409 or attempt == attempts:  # 409: changed since it was read: read it again
                raise
        live = api.find(kind, name, namespace or None)
        if live is None:
            return


def _crd_missing(e: Exception) -> bool:
    return _status(e) == 404 and "quotarequests" in str(getattr(e, "body", "") or e)


def _orphan(api, ns: str, opts: SyncOptions, result: ClusterResult, guard: Guard, note) -> None:
    change = {"action": "orphan", "object": f"namespace/{ns}", "reason": "its user is no longer in the directory"}
    if not opts.prune:
        result.changes.append(change)
        return
    try:
        if not opts.force:
            busy = [k for k in WORKLOAD_KINDS if api.exists_any(k, ns)]
            if busy:
                change["reason"] += f"; kept: holds {', '.join(k.lower() + 's' for k in busy)} (--force deletes)"
                result.changes.append(change)
                return
        if opts.dry_run == "server" or opts.dry_run == "none":
            guard.check()
            api.delete("Namespace", ns, dry_run=opts.dry_run == "server")
    except Exception as e:  # noqa: BLE001
        _error(result, f"namespace/{ns}", e)
        return
    change["action"] = "delete"
    result.changes.append(change)
    result.deleted += 1
    if opts.dry_run == "none":
        note(f"namespace/{ns} deleted")


@dataclass
class Summary:
    dry_run: str
    clusters: list[ClusterResult]
    problems: list[dict]
    keycloak_requests: int
    lock_skipped: bool = False

    def total(self, attr: str) -> int:
        return sum(getattr(c, attr) for c in self.clusters)

    @property
    def error_count(self) -> int:
        return sum(len(c.errors) for c in self.clusters) + len(self.problems)

    def exit_code(self) -> int:
        """0 when converged; otherwise the one exit code all failures share, else 1."""
        from mlctl.errors import OK, UNEXPECTED, USAGE

        codes = {code for c in self.clusters for code in c.exit_codes}
        if self.problems:
            codes.add(USAGE)
        if not codes:
            return OK
        return codes.pop() if len(codes) == 1 else UNEXPECTED

    def to_dict(self, with_diffs: bool = False) -> dict:
        return {
            "dryRun": self.dry_run,
            "created": self.total("created"), "updated": self.total("updated"),
            "unchanged": self.total("unchanged"), "deleted": self.total("deleted"),
            "orphaned": sum(len(c.orphaned) for c in self.clusters),
            "errors": self.error_count,
            "problems": self.problems,
            "keycloakRequests": self.keycloak_requests,
            "clusters": [c.to_dict(with_diffs) for c in self.clusters],
        }


def run_sync(apis: dict, directory: Directory, settings_for, opts: SyncOptions, *, lock=None, io=None,
             directory_requests: int = 0) -> Summary:
    """Sync each cluster of apis ({name: Kube}) under lock (a started LeaseLock, or None for dry runs). The
    clusters are listed at once; directory (a Directory, or a callable returning it) is needed only after.

    settings_for(cluster name) -> Settings (a cluster may have its own default quota).
    """
    guard = Guard(lock)
    with ThreadPoolExecutor(max_workers=max(1, len(apis)), thread_name_prefix="list") as pool:
        listed = dict(zip(apis, pool.map(list_live, apis.values()), strict=True))
    results = [sync_cluster(api, directory, settings_for(name), opts, io=io, guard=guard, listed=listed[name])
               for name, api in apis.items()]
    problems = next((r.directory_problems for r in results if r.directory_problems is not None), None)
    if problems is None and apis:  # no cluster could be listed: the directory's problems are still worth reporting
        directory = directory() if callable(directory) else directory
        problems = [p.to_dict() for p in desired_state(directory, [], settings_for(next(iter(apis)))).problems]
    problems = problems or []
    return Summary(opts.dry_run, results, problems, directory_requests)


def settings_resolver(platform_doc: dict, clusters: list[dict]):
    by_name = {c["name"]: c for c in clusters}
    cache: dict[str, Settings] = {}

    def settings_for(name: str) -> Settings:
        if name not in cache:
            cache[name] = objects.Settings.from_platform(platform_doc, by_name.get(name))
        return cache[name]

    return settings_for
