"""The desired state of one cluster, computed purely from the directory (users, groups, memberships), the
approved quota requests found in the cluster and the platform's settings.

A group whose quota attributes are invalid is reported, and the quota of its members is left as it is in
the cluster (rather than lowered to what the valid sources alone would give); the same for a request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from mlctl.admin import objects
from mlctl.admin.objects import Settings
from mlctl.quota import QuotaError, effective, grant_clusters, group_grant, request_grant
from mlctl.tenancy import user_namespace

Key = tuple[str, str, str]  # (kind, namespace or "", name)

SERVICE_ACCOUNT_PREFIX = "service-account-"


def key_of(obj: dict) -> Key:
    meta = obj.get("metadata") or {}
    return (obj["kind"], meta.get("namespace") or "", meta["name"])


def describe(key: Key) -> str:
    kind, ns, name = key
    return f"{kind.lower()}/{name}" + (f" in {ns}" if ns else "")


@dataclass(frozen=True)
class User:
    username: str
    enabled: bool = True


@dataclass
class Directory:
    """What Keycloak says: users, groups (name -> attributes) and members (group name -> usernames)."""

    users: list[User]
    groups: dict[str, dict] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)

    def groups_of(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for group in sorted(self.members):
            for user in self.members[group]:
                out.setdefault(user, []).append(group)
        return out


@dataclass
class Problem:
    subject: str  # "group gpu-power-users", "quotarequest u-bob/qr-1", "user x@y"
    message: str

    def to_dict(self) -> dict:
        return {"subject": self.subject, "message": self.message}


@dataclass
class DesiredState:
    objects: dict[Key, dict]
    namespaces: dict[str, str]  # namespace -> username
    problems: list[Problem]
    quota_held: set[str]  # namespaces whose quota is left unchanged because a source is invalid


def tenants(directory: Directory, settings: Settings) -> list[str]:
    """Users who get a namespace: enabled, not a client's service account, in userGroup when one is set."""
    allowed = None
    if settings.user_group:
        allowed = directory.members.get(settings.user_group, set())
    return sorted(u.username for u in directory.users
                  if u.enabled and not u.username.startswith(SERVICE_ACCOUNT_PREFIX)
                  and (allowed is None or u.username in allowed))


def request_phase(qr: dict) -> str:
    return ((qr.get("status") or {}).get("phase")) or "Pending"


def desired_state(directory: Directory, requests: Iterable[dict], settings: Settings) -> DesiredState:
    problems: list[Problem] = []
    grants: dict[str, dict[str, Decimal]] = {}
    bad_groups: set[str] = set()
    for group in sorted(directory.groups):
        try:
            # a grant limited to other clusters (mlctl.io/quota-cluster) is empty on this one
            grants[group] = group_grant(group, directory.groups[group], settings.cluster)
        except QuotaError as e:
            bad_groups.add(group)
            problems.append(Problem(f"group {group}", str(e)))

    approved: dict[str, list[dict]] = {}
    for qr in requests:
        if request_phase(qr) == "Approved":
            approved.setdefault(qr["metadata"]["namespace"], []).append(qr)

    users = tenants(directory, settings)
    groups_of = directory.groups_of()
    out: dict[Key, dict] = {}
    namespaces: dict[str, str] = {}
    held: set[str] = set()
    quotas: dict[tuple[str, ...], tuple[dict[str, str], str]] = {}  # group set -> (hard, sources annotation)
    for user in users:
        ns = user_namespace(user)
        if ns in namespaces:
            problems.append(Problem(f"user {user}", f"namespace {ns} is already {namespaces[ns]}'s; skipped"))
            continue
        namespaces[ns] = user
        for obj in (objects.namespace(user), objects.owner_binding(user, settings),
                    objects.limit_range(user, settings)):
            out[key_of(obj)] = obj
        mine = groups_of.get(user, [])
        if any(g in bad_groups for g in mine):
            held.add(ns)
            continue
        request_grants: dict[str, dict[str, Decimal]] = {}
        try:
            base = set(settings.default) | {k for g in mine for k in grants.get(g, {})}
            for qr in approved.get(ns, []):
                name = qr["metadata"]["name"]
                request_grants[name] = request_grant(name, (qr.get("spec") or {}).get("resources") or {}, base)
        except QuotaError as e:
            problems.append(Problem(f"quotarequest {ns}/{name}", str(e)))
            held.add(ns)
            continue
        # users of the same groups without requests share one quota: computed once per group set
        shared = None if request_grants else tuple(mine)
        quota_fields = quotas.get(shared) if shared is not None else None
        if quota_fields is None:
            eff = effective(settings.default, {g: grants[g] for g in mine if g in grants}, request_grants,
                            {g: grant_clusters(directory.groups[g]) for g in mine if g in grants})
            quota_fields = (eff.hard_text(), eff.annotation())
            if shared is not None:
                quotas[shared] = quota_fields
        quota = objects.resource_quota(user, *quota_fields)
        out[key_of(quota)] = quota
    return DesiredState(out, namespaces, problems, held)
