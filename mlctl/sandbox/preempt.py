"""Preempting the sandbox's preemptible nodes, as a cloud reclaims spot VMs, and bringing them back.

preempt(): for each node, its pods are terminated the way a node shutdown terminates them (phase Failed,
reason Terminated, exit code 137, condition DisruptionTarget), then the Node is deleted. The training-operator
treats exit code 137 as retryable under restartPolicy ExitCode (and OnFailure), deletes the pod and
creates it again, and the scheduler puts it on another node.

Replacement nodes (same names, from nodes.node_manifests) come back after `return_after` seconds. A CLI
cannot keep a thread alive, so the pending returns are recorded in <state>/preempted.json and a short-lived
detached helper (`python -m mlctl.sandbox.preempt <state dir>`) creates them when they are due and exits
when none is left; `sandbox up` (core's create_nodes) and the next preempt() also bring back any node
whose time has come, should the helper have been killed.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

from mlctl.sandbox.procs import SandboxError

PENDING = "preempted.json"
EXIT_CODE = 137  # SIGKILL: what a container reports when its node goes away
MESSAGE = "Pod was terminated in response to imminent node shutdown."


def _pending_path(root: Path) -> Path:
    return Path(root) / PENDING


def pending(root: Path) -> list[dict]:
    try:
        return json.loads(_pending_path(root).read_text())
    except (OSError, ValueError):
        return []


def _save(root: Path, items: list[dict]) -> None:
    path = _pending_path(root)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(items, indent=1))
    tmp.replace(path)


def _kube(root: Path, cluster: str):
    from mlctl.kube.api import from_kubeconfig

    return from_kubeconfig(str(Path(root) / "kubeconfig"), f"sandbox-{cluster}", cluster=cluster)


def preemptible_nodes(kube, cluster: str) -> list[str]:
    from mlctl.sandbox import nodes

    spec = nodes.CLUSTERS[cluster]
    pools = {p.name for p in spec.pools if p.preemptible}
    return sorted(n["metadata"]["name"] for n in kube.list("Node", selector=nodes.POOL_LABEL)
                  if (n["metadata"].get("labels") or {}).get(nodes.POOL_LABEL) in pools)


def _terminate(kube, pod: dict) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    statuses = [{"name": c["name"], "ready": False, "restartCount": 0, "image": c.get("image", ""),
                 "imageID": "", "state": {"terminated": {"exitCode": EXIT_CODE, "reason": "Error",
                                                          "finishedAt": now, "startedAt": now}}}
                for c in pod["spec"].get("containers") or []]
    conditions = [c for c in (pod.get("status") or {}).get("conditions") or []
                  if c.get("type") not in ("Ready", "ContainersReady", "DisruptionTarget")]
    conditions += [{"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet",
                    "message": MESSAGE, "lastTransitionTime": now},
                   {"type": "Ready", "status": "False", "lastTransitionTime": now},
                   {"type": "ContainersReady", "status": "False", "lastTransitionTime": now}]
    kube.patch("Pod", pod["metadata"]["name"], {"status": {
        "phase": "Failed", "reason": "Terminated", "message": MESSAGE, "conditions": conditions,
        "containerStatuses": statuses}}, pod["metadata"]["namespace"], sub="status",
        what=f"terminating pod {pod['metadata']['name']}")


def preempt(root: Path, cluster: str, names: list[str] | None = None, count: int | None = None,
            return_after: float = 30.0, spawn: bool = True) -> list[str]:
    """Preempt the named nodes (or `count` random busy-first preemptible ones) of cluster; return their
    names. Each comes back after return_after seconds (0: not at all until `sandbox up`)."""
    root = Path(root)
    kube = _kube(root, cluster)
    try:
        restore_due(root)
        allowed = preemptible_nodes(kube, cluster)
        if names:
            wrong = [n for n in names if n not in allowed]
            if wrong:
                raise SandboxError(f"not preemptible nodes of cluster {cluster}: {', '.join(wrong)}")
            chosen = list(names)
        else:
            if not allowed:
                raise SandboxError(f"cluster {cluster} has no preemptible nodes")
            chosen = random.sample(allowed, min(count or 1, len(allowed)))
        for name in chosen:
            pods = kube.list("Pod", field_selector=f"spec.nodeName={name}")
            kube.delete("Node", name, what=f"deleting node {name}")  # first: kwok stops running its pods
            for pod in pods:
                if (pod.get("status") or {}).get("phase") in ("Pending", "Running"):
                    _terminate(kube, pod)
        if return_after > 0:
            due = time.time() + return_after
            items = [p for p in pending(root) if not (p["cluster"] == cluster and p["node"] in chosen)]
            _save(root, items + [{"cluster": cluster, "node": n, "returnAt": due} for n in chosen])
            if spawn:
                subprocess.Popen([sys.executable, "-m", "mlctl.sandbox.preempt", str(root)],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True, close_fds=True)
        return chosen
    finally:
        kube.close()


def restore_due(root: Path, now: float | None = None) -> list[str]:
    """Create the nodes whose return is due (same names and labels as before); return their names."""
    from mlctl.sandbox import nodes

    now = time.time() if now is None else now
    items = pending(root)
    due = [p for p in items if p["returnAt"] <= now]
    if not due:
        return []
    back = []
    for cluster in sorted({p["cluster"] for p in due}):
        kube = _kube(root, cluster)
        try:
            wanted = {p["node"] for p in due if p["cluster"] == cluster}
            for manifest in nodes.node_manifests(nodes.CLUSTERS[cluster]):
                if manifest["metadata"]["name"] in wanted:
                    try:
                        kube.create(manifest, strict=False)
                    except Exception as e:  # noqa: BLE001 - already back (sandbox up made it)
                        if getattr(e, "status", None) != 409:
                            raise
                    back.append(manifest["metadata"]["name"])
        finally:
            kube.close()
    _save(root, [p for p in pending(root) if p not in due])
    return back


def _helper(root: Path) -> None:
    """The detached helper: sleep until the next return is due, restore, until nothing is pending."""
    while True:
        items = pending(root)
        if not items:
            return
        time.sleep(max(0.0, min(p["returnAt"] for p in items) - time.time()))
        restore_due(root)


if __name__ == "__main__":
    _helper(Path(sys.argv[1]))
