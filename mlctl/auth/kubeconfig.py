"""Writing kubeconfig contexts that use `mlctl token` as their exec credential plugin.

Only mlctl's own entries (named mlctl-<cluster>) are added or replaced; the user's other clusters,
users and contexts, and the current context, are left as they were (unless there was none).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from mlctl import yamlio


def default_path(env=None) -> Path:
    value = (os.environ if env is None else env).get("KUBECONFIG")
    if value:
        return Path(value.split(os.pathsep)[0])
    return Path.home() / ".kube" / "config"


def _upsert(items: list, name: str, key: str, value: dict) -> None:
    for item in items:
        if item.get("name") == name:
            item[key] = value
            return
    items.append({"name": name, key: value})


def mlctl_command() -> str:
    """How kubectl should run mlctl: the installed script beside this interpreter, else from PATH."""
    candidate = Path(sys.executable).parent / "mlctl"
    return str(candidate) if candidate.exists() else (shutil.which("mlctl") or "mlctl")


def write_contexts(path: Path, platform: str, clusters: list[dict], namespace: str | None) -> list[str]:
    import yaml

    doc = {}
    if path.exists():
        doc = yamlio.load(path.read_text()) or {}
    doc.setdefault("apiVersion", "v1")
    doc.setdefault("kind", "Config")
    for key in ("clusters", "users", "contexts"):
        doc[key] = doc.get(key) or []
    names = []
    for cluster in clusters:
        name = f"mlctl-{cluster['name']}"
        entry = {"server": cluster["server"]}
        if cluster.get("certificateAuthorityData"):
            entry["certificate-authority-data"] = cluster["certificateAuthorityData"]
        _upsert(doc["clusters"], name, "cluster", entry)
        _upsert(doc["users"], name, "user", {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": mlctl_command(),
            "args": ["token", "--platform", platform, "--cluster", cluster["name"]],
            "interactiveMode": "Never",
            "provideClusterInfo": False,
        }})
        context = {"cluster": name, "user": name}
        if namespace:
            context["namespace"] = namespace
        _upsert(doc["contexts"], name, "context", context)
        names.append(name)
    if not doc.get("current-context") and names:
        doc["current-context"] = names[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".mlctl.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(doc, fh, sort_keys=False)
    os.replace(tmp, path)
    return names
