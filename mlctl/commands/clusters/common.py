"""What the clusters verbs share: the registry joined with the policy's decision for the current user and
each pool's free GPUs now."""

from __future__ import annotations


def session_user(f) -> tuple[str | None, list[str]]:
    """(user, groups) of the current session, (None, []) when not logged in."""
    from mlctl.auth.session import cache_for

    try:
        session = cache_for(f).session() or {}
    except Exception:  # noqa: BLE001 - no platform profile yet: nobody is logged in
        return None, []
    return session.get("user"), list(session.get("groups") or [])


def access(f, user: str | None, groups: list[str]) -> tuple[dict, str | None]:
    """({cluster: Decision}, problem): the policy's decisions for the user (one query); problem says why
    there are none (not logged in, OPA unreachable)."""
    from mlctl.errors import MlctlError

    if not user:
        return {}, "not logged in"
    try:
        return f.opa().decisions(user, groups), None
    except MlctlError as e:
        return {}, e.message


def free_gpus(f, cluster: dict) -> dict[str, int] | None:
    """{pool: free GPUs now} read with the user's token; None when the user may not list nodes and pods
    there, or the cluster cannot be asked."""
    from mlctl.errors import MlctlError
    from mlctl.kube.capacity import free_by_pool

    try:
        free = free_by_pool(f.kube(cluster["name"]), cluster)
    except MlctlError:
        return None
    if free is None:
        return None
    return {name: p.free_gpus for name, p in free.items() if p.gpu_resource}


def row(f, cluster: dict, decisions: dict, problem: str | None, default: str, logged_in: bool) -> dict:
    d = decisions.get(cluster["name"])
    free = free_gpus(f, cluster) if logged_in and (d is None or d.allow) else None
    return {
        "name": cluster["name"], "default": cluster["name"] == default, "provider": cluster.get("provider"),
        "allowed": d.allow if d else None,
        "reason": d.reason if d else (problem or f"cluster {cluster['name']} is not in the policy"),
        "decisionId": d.id if d else None,
        "freeGpus": free,
        "gpus": {name: (p.get("gpusPerNode") or 0) * (p.get("nodes") or 0)
                 for name, p in sorted((cluster.get("pools") or {}).items()) if p.get("gpuResource")},
        "gpuHourCost": float(cluster.get("gpuHourCost") or 0),
        "server": cluster.get("server"),
        "entry": cluster,
    }


def free_text(r: dict) -> str:
    if r["freeGpus"] is None:
        return "unknown"
    return ",".join(f"{pool} {r['freeGpus'].get(pool, 0)}/{total}" for pool, total in r["gpus"].items()) or "-"


def access_text(r: dict) -> str:
    return {True: "allowed", False: "denied", None: "unknown"}[r["allowed"]]
