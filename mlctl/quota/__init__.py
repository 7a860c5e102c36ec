"""Quota arithmetic (pure): group grants, the one effective ResourceQuota and the record of its sources.

Effective quota = the platform default + each of the user's groups' grant + each approved quota request
(DESIGN.md, "Tenancy and quota"). Kubernetes enforces every ResourceQuota of a namespace separately, so the
sum lives in ONE ResourceQuota; the annotation SOURCES_ANNOTATION records which source gave what, as JSON:

    [{"source": "default", "resources": {"requests.cpu": "8", ...}},
     {"source": "group", "name": "gpu-power-users", "resources": {"requests.nvidia.com/gpu": "8"}},
     {"source": "request", "name": "qr-7f3k2", "resources": {"requests.nvidia.com/gpu": "4"}}]

Group grants are Keycloak group attributes named GROUP_ATTRIBUTE_PREFIX + <ResourceQuota key>, e.g.
`mlctl.io/quota.requests.nvidia.com/gpu: "8"` (the sandbox realm, sandbox/keycloak/realm-ml.json). A group
with the attribute CLUSTER_ATTRIBUTE (`mlctl.io/quota-cluster`, one value per cluster) grants its quota on
those clusters only; without it, on every cluster (docs/burst.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import NamedTuple

from mlctl.jobs.quantity import QuantityError, format_quantity, parse_quantity

GROUP_ATTRIBUTE_PREFIX = "mlctl.io/quota."
CLUSTER_ATTRIBUTE = "mlctl.io/quota-cluster"
SOURCES_ANNOTATION = "mlctl.io/quota-sources"
QUOTA_NAME = "mlctl-quota"

# The platform document's `quota.default` replaces this when present.
BUILTIN_DEFAULT: dict[str, str] = {
    "requests.cpu": "8",
    "requests.memory": "32Gi",
    "requests.nvidia.com/gpu": "1",
    "pods": "20",
}

# What a QuotaRequest may ask for (spec.resources keys; the CRD's schema allows exactly these) and the
# ResourceQuota keys each adds to. `limits.<r>` is raised too when the quota already limits it.
REQUEST_RESOURCES: dict[str, str] = {
    "nvidia.com/gpu": "requests.nvidia.com/gpu",
    "cpu": "requests.cpu",
    "memory": "requests.memory",
    "pods": "pods",
    "storage": "requests.storage",
}
COUNTED = {"pods", "nvidia.com/gpu", "requests.nvidia.com/gpu", "limits.nvidia.com/gpu", "services",
           "persistentvolumeclaims", "configmaps", "secrets"}

# The rows `mlctl quota show` always prints, in this order, when the quota has them.
SHOWN_FIRST = ("requests.nvidia.com/gpu", "limits.nvidia.com/gpu", "requests.cpu", "limits.cpu",
               "requests.memory", "limits.memory", "pods")


class QuotaError(ValueError):
    """A grant, default or request that is not a valid quota; the message names where it came from."""


def kind_of(resource: str) -> str:
    """"memory" for memory/storage keys, "cpu" for cpu keys, "" for counts (format_quantity's kinds)."""
    base = resource.split(".", 1)[1] if resource.startswith(("requests.", "limits.")) else resource
    if base in ("memory", "storage", "ephemeral-storage"):
        return "memory"
    if base == "cpu":
        return "cpu"
    return ""


def fmt(resource: str, value: Decimal) -> str:
    return format_quantity(value, kind_of(resource))


def _resource_name_ok(name: str) -> bool:
    import re

    return bool(re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?(/[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?)?",
                             name)) and len(name) <= 253


def parse_resources(values: Mapping[str, object], where: str) -> dict[str, Decimal]:
    """{quota key: quantity text} -> {quota key: Decimal}; negative or malformed values are errors."""
    out: dict[str, Decimal] = {}
    for key, raw in values.items():
        if not isinstance(key, str) or not _resource_name_ok(key):
            raise QuotaError(f"{where}: {key!r} is not a ResourceQuota resource name")
        try:
            value = parse_quantity(raw)  # type: ignore[arg-type]
        except QuantityError as e:
            raise QuotaError(f"{where}: {key}: {e}") from e
        if value < 0:
            raise QuotaError(f"{where}: {key}: {raw} is negative")
        if key in COUNTED and value != value.to_integral_value():
            raise QuotaError(f"{where}: {key}: {raw} must be a whole number")
        out[key] = value
    return out


def grant_clusters(attributes: Mapping[str, object]) -> tuple[str, ...] | None:
    """The clusters a group's grant is limited to (its CLUSTER_ATTRIBUTE values), None for every cluster."""
    raw = (attributes or {}).get(CLUSTER_ATTRIBUTE)
    if raw is None:
        return None
    items = raw if isinstance(raw, list) else [raw]
    names = []
    for item in items:  # "gcp" or "gcp,aws" in one value are both accepted
        names += [n.strip() for n in str(item).split(",") if n.strip()]
    return tuple(sorted(set(names)))


def group_grant(group: str, attributes: Mapping[str, object], cluster: str | None = None) -> dict[str, Decimal]:
    """The quota a group grants on cluster, from its Keycloak attributes (values are lists, as Keycloak
    returns them). A grant limited to other clusters (CLUSTER_ATTRIBUTE) is {} here; cluster None ignores
    the limit."""
    only = grant_clusters(attributes)
    if cluster is not None and only is not None and cluster not in only:
        return {}
    values: dict[str, object] = {}
    for name, raw in (attributes or {}).items():
        if not name.startswith(GROUP_ATTRIBUTE_PREFIX):
            continue
        items = raw if isinstance(raw, list) else [raw]
        distinct = {str(v).strip() for v in items if str(v).strip()}
        if len(distinct) > 1:
            raise QuotaError(f"group {group}: attribute {name} has several values ({', '.join(sorted(distinct))})")
        if distinct:
            values[name[len(GROUP_ATTRIBUTE_PREFIX):]] = distinct.pop()
    return parse_resources(values, f"group {group}")


def request_grant(name: str, resources: Mapping[str, object], base: Iterable[str] = ()) -> dict[str, Decimal]:
    """What an approved QuotaRequest adds, as quota keys. base: the keys the quota already has."""
    base = set(base)
    out: dict[str, Decimal] = {}
    unknown = sorted(set(resources) - set(REQUEST_RESOURCES))
    if unknown:
        raise QuotaError(f"request {name}: unknown resource {', '.join(unknown)} "
                         f"(allowed: {', '.join(REQUEST_RESOURCES)})")
    for key, raw in resources.items():
        quota_key = REQUEST_RESOURCES[key]
        value = parse_resources({quota_key: raw}, f"request {name}")[quota_key]
        out[quota_key] = value
        limit_key = "limits." + quota_key.split(".", 1)[1] if quota_key.startswith("requests.") else None
        if limit_key and limit_key in base:
            out[limit_key] = value
    return out


# NamedTuples, not dataclasses: every submission checks the quota (see jobs/spec.py)
class Source(NamedTuple):
    source: str  # default | group | request
    name: str | None
    resources: Mapping[str, Decimal] = MappingProxyType({})
    clusters: tuple[str, ...] | None = None  # a group grant limited to these clusters

    @property
    def label(self) -> str:
        text = self.source if self.name is None else f"{self.source} {self.name}"
        if self.clusters:
            text += f" ({', '.join(self.clusters)} only)"
        return text

    def to_dict(self) -> dict:
        d: dict = {"source": self.source}
        if self.name is not None:
            d["name"] = self.name
        if self.clusters:
            d["clusters"] = list(self.clusters)
        d["resources"] = {k: fmt(k, v) for k, v in sorted(self.resources.items())}
        return d


class Effective(NamedTuple):
    hard: dict[str, Decimal]
    sources: list[Source]

    def hard_text(self) -> dict[str, str]:
        return {k: fmt(k, v) for k, v in sorted(self.hard.items())}

    def annotation(self) -> str:
        """The sources as compact, deterministic JSON (a changed annotation means a changed quota)."""
        return json.dumps([s.to_dict() for s in self.sources], separators=(",", ":"), sort_keys=False)


def effective(default: Mapping[str, Decimal], groups: Mapping[str, Mapping[str, Decimal]],
              requests: Mapping[str, Mapping[str, Decimal]],
              group_clusters: Mapping[str, tuple[str, ...] | None] | None = None) -> Effective:
    """default + every group's grant + every approved request, summed per key; sources in a stable order.
    group_clusters: the clusters a group's grant is limited to (recorded in the sources annotation)."""
    scoped = group_clusters or {}
    sources = [Source("default", None, dict(default))]
    sources += [Source("group", g, dict(groups[g]), scoped.get(g)) for g in sorted(groups) if groups[g]]
    sources += [Source("request", r, dict(requests[r])) for r in sorted(requests) if requests[r]]
    hard: dict[str, Decimal] = {}
    for s in sources:
        for key, value in s.resources.items():
            hard[key] = hard.get(key, Decimal(0)) + value
    return Effective(hard, sources)


def parse_sources(annotation: str | None) -> list[Source]:
    """The sources recorded on a ResourceQuota; an absent or garbled annotation gives []."""
    if not annotation:
        return []
    try:
        data = json.loads(annotation)
        return [Source(str(d["source"]), d.get("name"),
                       {k: parse_quantity(v) for k, v in (d.get("resources") or {}).items()},
                       tuple(d["clusters"]) if d.get("clusters") else None)
                for d in data]
    except (ValueError, TypeError, KeyError, AttributeError):
        return []


class UsageRow(NamedTuple):
    resource: str
    used: Decimal
    hard: Decimal
    contributions: list[tuple[str, Decimal]]  # (source label, amount)
    keys: tuple[str, ...] = ()  # the ResourceQuota keys merged into this row (requests.X and limits.X)

    @property
    def fraction(self) -> float:
        if self.hard <= 0:
            return 1.0 if self.used > 0 else 0.0
        return float(self.used / self.hard)

    @property
    def used_text(self) -> str:
        return fmt(self.resource, self.used)

    @property
    def hard_text(self) -> str:
        return fmt(self.resource, self.hard)

    @property
    def free(self) -> Decimal:
        return max(Decimal(0), self.hard - self.used)

    def breakdown(self) -> str:
        return " + ".join(f"{fmt(self.resource, v)} {label}" for label, v in self.contributions) or "-"

    def to_dict(self) -> dict:
        return {"resource": self.resource, "keys": list(self.keys or (self.resource,)), "used": self.used_text,
                "hard": self.hard_text, "free": fmt(self.resource, self.free),
                "sources": [{"source": label, "amount": fmt(self.resource, v)} for label, v in self.contributions]}


def usage_rows(quota: Mapping) -> list[UsageRow]:
    """Rows of used vs hard for a ResourceQuota object (a dict as the API returns it)."""
    spec = quota.get("spec") or {}
    status = quota.get("status") or {}
    hard = status.get("hard") or spec.get("hard") or {}
    used = status.get("used") or {}
    sources = parse_sources(((quota.get("metadata") or {}).get("annotations") or {}).get(SOURCES_ANNOTATION))
    order = [k for k in SHOWN_FIRST if k in hard] + sorted(k for k in hard if k not in SHOWN_FIRST)
    rows = []
    merged: set[str] = set()
    for key in order:
        if key in merged:
            continue
        base = key.split(".", 1)[1] if key.startswith(("requests.", "limits.")) else None
        if base and "/" in base:
            # One row per extended resource (GPUs), named X: Kubernetes counts extended resources under
            # requests.X only (limits.X is accepted, never counted), so the row shows requests.X when the
            # quota has it. cpu and memory keep a row per key: their requests and limits differ.
            keys = [k for k in (f"requests.{base}", f"limits.{base}") if k in hard]
            name = base
        else:
            keys, name = [key], key
        merged.update(keys)
        counted = keys[0]
        contributions = [(s.label, s.resources[counted]) for s in sources if s.resources.get(counted)]
        rows.append(UsageRow(name, parse_quantity(used.get(counted, "0")), parse_quantity(hard[counted]),
                             contributions, tuple(keys)))
    return rows


def bar(fraction: float, width: int = 20) -> str:
    """A text bar for a terminal: '███████░░░░░' (clamped at full)."""
    filled = max(0, min(width, round(fraction * width)))
    return "█" * filled + "░" * (width - filled)


def explain_exceeded(message: str, quota: Mapping | None = None) -> str | None:
    """A one-line explanation of an apiserver "exceeded quota" message, naming the quota and its sources.

    The message looks like: pods "x" is forbidden: exceeded quota: mlctl-quota, requested:
    requests.nvidia.com/gpu=4, used: requests.nvidia.com/gpu=0, limited: requests.nvidia.com/gpu=1
    """
    import re

    m = re.search(r"exceeded quota: ([^,]+), requested: (.*?), used: (.*?), limited: (.*)$", message.strip())
    if not m:
        return None
    name = m.group(1).strip()

    def pairs(text: str) -> dict[str, str]:
        return dict(p.split("=", 1) for p in text.split(",") if "=" in p)

    requested, used, limited = pairs(m.group(2)), pairs(m.group(3)), pairs(m.group(4))
    parts = []
    rows = {k: r for r in usage_rows(quota) for k in (r.keys or (r.resource,))} if quota else {}
    for key, limit in limited.items():
        text = f"{key}: requested {requested.get(key, '?')}, in use {used.get(key, '?')}, limit {limit}"
        row = rows.get(key)
        if row and row.contributions:
            text += f" ({row.breakdown()})"
        parts.append(text)
    return f"over ResourceQuota {name}: " + "; ".join(parts)


def readable_quotas(read) -> list[dict]:
    """The namespace's ResourceQuotas as {name, hard, used}, from read() (the ResourceQuota objects); none
    readable (403) means no quota check."""
    from mlctl.errors import Forbidden

    try:
        items = read()
    except Forbidden:
        return []
    return [{"name": q["metadata"]["name"],
             "hard": dict((q.get("status") or {}).get("hard") or (q.get("spec") or {}).get("hard") or {}),
             "used": dict((q.get("status") or {}).get("used") or {})} for q in items]
