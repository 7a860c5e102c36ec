"""The sandbox's one runner: it orders the components, builds them, starts (or keeps, or restarts) them, and
stops them. `mlctl sandbox up|down|status|env` and the integration tests' fixture call it.

Order (each step idempotent): the KDC; Keycloak with its realm (ready before an API server starts); the control
plane of both clusters, with the apiserver flags of the components before it; access (RBAC for the platform
admins, what `mlctl admin install` applies); the training-operators; the pod runner (pods that really run,
docs/workloads.md); S3; the gateway (HTTPS in front of cluster local's Services). A component whose process died, or whose
command line or configuration changed, is started again by the next `up`; everything else is kept.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import yaml

from mlctl.sandbox import (
    access,
    build,
    core,
    gateway,
    kdc,
    keycloak,
    kserve,
    metrics,
    opa,
    pods,
    s3,
    training,
)
from mlctl.sandbox.component import Component, Context
from mlctl.sandbox.procs import State


def components() -> list[Component]:
    return [kdc.KDC(), keycloak.Keycloak(), opa.OPA(), metrics.Aggregation(), core.ControlPlane(),
            access.Access(), training.TrainingOperator(), kserve.KServe(), pods.PodRunner(), s3.S3(),
            gateway.Gateway(), metrics.Metrics()]


def _merge_platform(root: Path, part: dict) -> None:
    """Merge a component's part into the platform document: top-level keys replace, `clusters` maps a
    cluster name to keys of its entry."""
    path = root / "platform.yaml"
    if not part or not path.exists():
        return
    doc = yaml.safe_load(path.read_text()) or {}
    for key, value in part.items():
        if key == "clusters":
            for entry in doc.get("clusters") or []:
                entry.update(value.get(entry.get("name"), {}))
        else:
            doc[key] = value
    text = yaml.safe_dump(doc, sort_keys=False)
    if path.read_text() != text:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)


def up(root: Path | str | None = None, only: list[Component] | None = None) -> dict:
    """Build what is missing, then start every component in order; return status() plus timings."""
    started = time.monotonic()
    root = Path(root or core.state_dir())
    root.mkdir(parents=True, exist_ok=True)
    comps = only or components()
    log_path = root / "logs" / "build.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    ctx = Context(root, comps)
    with open(log_path, "ab") as log:
        build.ensure([b for c in comps for b in c.binaries], log)
        for c in comps:
            c.prepare(ctx, log)
    timings: dict[str, float] = {}
    try:
        clusters_up = False
        for c in comps:
            began = time.monotonic()
            if c.after_clusters and clusters_up:
                for cluster in core.CLUSTERS:
                    for obj in c.manifests(ctx, cluster):
                        ctx.kube(cluster).apply(obj, f"mlctl-sandbox-{c.name}", force=True)
            ctx.info[c.name] = c.start(ctx) or {}
            clusters_up = clusters_up or isinstance(c, core.ControlPlane)
            # every part so far: the document exists only once the control plane has written it
            for done in comps[:comps.index(c) + 1]:
                _merge_platform(root, done.platform(ctx))
            timings[c.name] = round(time.monotonic() - began, 1)
    finally:
        ctx.close()
    result = core.status(root)
    result["timings"] = timings
    if "keycloak" in ctx.info:
        result["keycloak"] = {"issuer": ctx.info["keycloak"]["issuer"], "realm": ctx.info["keycloak"]["realm"]}
    if "kdc" in ctx.info:
        result["kdc"] = {"realm": ctx.info["kdc"]["realm"], "krb5_conf": str(ctx.info["kdc"]["krb5_conf"])}
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def down(root: Path | str | None = None, *, purge: bool = False) -> list[str]:
    """Stop every process the components started (clients first, etcd last); data stays unless purge."""
    return core.down(root, purge=purge)


def status(root: Path | str | None = None) -> dict:
    return core.status(root)


def env(root: Path | str | None = None) -> dict[str, str]:
    """The environment that points kubectl, Kerberos clients and mlctl at the sandbox."""
    root = Path(root or core.state_dir())
    out = core.env(root)
    with contextlib.suppress(Exception):
        out["KRB5_CONFIG"] = str(kdc.info(State.load(root))["krb5_conf"])
    return out
