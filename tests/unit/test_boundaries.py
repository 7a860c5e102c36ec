"""The layers hold: one Kubernetes client, one importer of each identity library. Checked on the source, so a
new module that opens its own connection fails here, not in review."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "mlctl"

# library -> where in mlctl it may be imported. The sandbox bootstraps the servers it runs (Keycloak's realm
# through its admin REST API, versitygw's accounts with signed requests): it is their operator, not a client
# of the platform, and docs/sandbox.md says so.
ALLOWED = {
    "kubernetes": (),
    "urllib3": (),
    "keycloak": ("auth/",),
    "gssapi": ("auth/",),
    "requests": ("auth/", "sandbox/keycloak.py"),
    "boto3": ("storage/", "sandbox/s3.py"),
    "botocore": ("storage/", "sandbox/s3.py"),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def test_each_library_is_imported_only_where_it_belongs():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("sandbox/assets/"):
            continue  # the sandbox's images are programs of their own, with their own venvs
        for lib in _imports(path) & set(ALLOWED):
            if not any(rel.startswith(prefix) for prefix in ALLOWED[lib]):
                wrong.append(f"{rel} imports {lib}")
    assert wrong == []


def test_only_the_kube_layer_speaks_the_kubernetes_api():
    """Kubernetes API paths (/api/v1/..., /apis/...) are built only under mlctl/kube/."""
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(("kube/", "sandbox/assets/")):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    node.value.startswith(("/api/v1", "/apis/")):
                wrong.append(f"{rel}:{node.lineno} {node.value}")
    assert wrong == []


def test_the_check_can_fail(tmp_path):
    """Guard against a scan that sees nothing: this file's own imports are found."""
    assert {"ast", "pathlib"} <= _imports(Path(__file__))
