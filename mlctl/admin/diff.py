"""Which live objects need a write (pure): an object is written only when it is missing, when a field mlctl
sets differs from the live value, or when the field set mlctl-admin-sync manages (its managedFields entries)
is not the field set mlctl would apply now (so a field mlctl stopped setting is removed). Quantities compare
by value ("1.5" equals "1500m"); fields the server added are ignored.

A missing object is created with a POST (about a third cheaper for the API server than a server-side apply
that creates), which leaves an `Update` entry of mlctl-admin-sync; the first time such an object needs an
update, adoption_patch turns that entry into the manager's `Apply` entry (as kubectl does when it upgrades
client-side-applied objects), so that the server-side apply that follows removes fields mlctl stopped
setting.
"""

from __future__ import annotations

from decimal import Decimal

import yaml

from mlctl.jobs.quantity import QuantityError, parse_quantity

Path = tuple[str, ...]
# Fields every object names but managedFields never lists.
_IDENTITY = {("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace")}
# Fields the API server sets itself on create; a create's Update entry lists them, mlctl never applies them.
SERVER_SET: set[Path] = {("metadata", "labels", "kubernetes.io/metadata.name")}


def desired_paths(obj: dict, prefix: Path = ()) -> set[Path]:
    """Leaf field paths of an object as applied (lists are atomic leaves)."""
    out: set[Path] = set()
    for key, value in obj.items():
        path = prefix + (key,)
        if isinstance(value, dict) and value:
            out |= desired_paths(value, path)
        else:
            out.add(path)
    return out - _IDENTITY if not prefix else out


def _fields_paths(fields: dict, prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for key, value in fields.items():
        if key == ".":
            continue
        if not key.startswith("f:"):
            # k:{...}, v:..., i:... are list members: the list itself is the leaf mlctl compares
            out.add(prefix)
            continue
        path = prefix + (key[2:],)
        children = {k: v for k, v in (value or {}).items() if k != "."} if isinstance(value, dict) else {}
        if children:
            out |= _fields_paths(children, path)
        else:
            out.add(path)
    return out


def _own_entries(live: dict, manager: str, operation: str) -> list[int]:
    """Indexes of manager's managedFields entries of operation on the object itself (not a subresource)."""
    return [i for i, e in enumerate((live.get("metadata") or {}).get("managedFields") or [])
            if e.get("manager") == manager and e.get("operation") == operation and not e.get("subresource")]


# fieldsV1 -> its leaf paths. Objects of one kind that mlctl applies have the same field set (labels and
# annotations by key, lists atomic), so thousands of live objects share a handful of entries.
_PATHS_CACHE: dict[str, frozenset] = {}


def _cached_fields_paths(fields: dict) -> frozenset:
    key = repr(fields)
    paths = _PATHS_CACHE.get(key)
    if paths is None:
        if len(_PATHS_CACHE) > 4096:
            _PATHS_CACHE.clear()
        paths = _PATHS_CACHE[key] = frozenset(_fields_paths(fields)) - SERVER_SET
    return paths


def managed_paths(live: dict, manager: str) -> frozenset[Path] | None:
    """The leaf paths manager owns on live (through Apply, or through the Update of its create), or None
    when it owns none."""
    paths: frozenset[Path] | None = None
    for e in (live.get("metadata") or {}).get("managedFields") or []:
        if (e.get("manager") == manager and e.get("operation") in ("Apply", "Update")
                and not e.get("subresource")):
            own = _cached_fields_paths(e.get("fieldsV1") or {})
            paths = own if paths is None else paths | own
    return paths


def _union(a: dict, b: dict) -> dict:
    out = dict(a)
    for key, value in b.items():
        out[key] = _union(out[key], value) if isinstance(out.get(key), dict) and isinstance(value, dict) else value
    return out


def _without(fields: dict, path: Path) -> dict:
    """fieldsV1 without the leaf at path (f: keys)."""
    head = "f:" + path[0]
    if head not in fields:
        return fields
    out = dict(fields)
    if len(path) == 1:
        del out[head]
    elif isinstance(out[head], dict):
        out[head] = _without(out[head], path[1:])
    return out


def adoption_patch(live: dict, manager: str) -> list[dict] | None:
    """A JSON patch that makes manager's Update entries (left by its creates) part of its Apply entry, or None
    when it has no Update entry. It replaces managedFields whole and sets the resourceVersion the entries were
    read at, so the server answers 409 Conflict if the object changed meanwhile."""
    meta = live.get("metadata") or {}
    entries = [dict(e) for e in meta.get("managedFields") or []]
    updates = _own_entries(live, manager, "Update")
    if not updates:
        return None
    applies = _own_entries(live, manager, "Apply")
    target = applies[0] if applies else updates[0]
    fields = entries[target].get("fieldsV1") or {}
    for i in updates:
        fields = _union(fields, entries[i].get("fieldsV1") or {})
    for path in SERVER_SET:
        fields = _without(fields, path)
    entries[target] = {**entries[target], "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": fields}
    kept = [e for i, e in enumerate(entries) if i == target or i not in updates]
    return [{"op": "replace", "path": "/metadata/managedFields", "value": kept},
            {"op": "replace", "path": "/metadata/resourceVersion", "value": meta.get("resourceVersion")}]


def _uncovered(paths, others: set[Path]) -> list[Path]:
    """The paths that neither equal, lie inside, nor contain one of others (atomic structs are recorded as
    one leaf), in time linear in the paths' lengths: p is covered when p or one of its prefixes is in others,
    or when p is a prefix of one of others."""
    prefixes = {o[:k] for o in others for k in range(1, len(o))}
    return [p for p in paths
            if p not in others and p not in prefixes and not any(p[:k] in others for k in range(1, len(p)))]


def _quantity(value) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    try:
        return parse_quantity(value)
    except QuantityError:
        return None


_MISSING = object()


def same(desired, live) -> bool:
    """desired is contained in live: dicts by key (extra live keys allowed), lists item by item,
    scalars equal or equal as quantities. Equal values are not walked (most of a no-op sync's fields)."""
    if desired == live:
        return True
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return False
        for key, value in desired.items():
            have = live.get(key, _MISSING)
            if have is _MISSING or (value != have and not same(value, have)):
                return False
        return True
    if isinstance(desired, list):
        return (isinstance(live, list) and len(desired) == len(live)
                and all(same(d, lv) for d, lv in zip(desired, live, strict=True)))
    a, b = _quantity(desired), _quantity(live)
    return a is not None and b is not None and a == b


# (owned paths, wanted paths) -> the owned paths mlctl no longer sets: objects of one kind share a few pairs
_STALE_CACHE: dict[tuple[frozenset, frozenset], list[Path]] = {}


def needs_apply(desired: dict, live: dict | None, manager: str) -> str | None:
    """Why desired must be applied ("create", "update: ...") or None when live already matches."""
    if live is None:
        return "create"
    for part in ("metadata", "spec", "roleRef", "subjects", "rules", "data"):
        if part not in desired:
            continue
        want = desired[part]
        if part == "metadata":
            want = {k: v for k, v in want.items() if k in ("labels", "annotations")}
        if not same(want, live.get(part)):
            return f"update: {part} differs"
    owned = managed_paths(live, manager)
    if owned is None:
        return f"update: not yet managed by {manager}"
    wanted = frozenset(desired_paths(desired))
    stale = _STALE_CACHE.get((owned, wanted))
    if stale is None:
        if len(_STALE_CACHE) > 4096:
            _STALE_CACHE.clear()
        stale = _STALE_CACHE[(owned, wanted)] = sorted(_uncovered(owned, wanted))
    if stale:
        return f"update: stop managing {'.'.join(stale[0])}"
    return None


def project(live: dict | None, desired: dict) -> dict:
    """live restricted to the fields desired sets (for a readable diff)."""
    if live is None:
        return {}

    def pick(want, have):
        if isinstance(want, dict) and isinstance(have, dict):
            return {k: pick(v, have[k]) for k, v in want.items() if k in have}
        return have

    return pick(desired, live)


def unified(desired: dict, live: dict | None, label: str) -> str:
    """A unified diff of the live object (as far as mlctl sets it) against desired, in YAML."""
    import difflib

    before = yaml.safe_dump(project(live, desired), sort_keys=True).splitlines() if live else []
    after = yaml.safe_dump(desired, sort_keys=True).splitlines()
    lines = difflib.unified_diff(before, after, f"live/{label}", f"desired/{label}", lineterm="", n=2)
    return "\n".join(lines)
