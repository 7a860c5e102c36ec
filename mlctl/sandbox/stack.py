"""The whole sandbox platform: KDC, Keycloak, both clusters (authenticating Keycloak JWTs), the
training-operator, and the RBAC that ties Keycloak identities to cluster roles.

Order: the KDC, then Keycloak with its realm (the API servers discover it when they start), OPA (gcp's
apiserver asks it, docs/policy.md), then both clusters, then RBAC, mlctl's own CRD and roles (what `mlctl admin
install` applies), the Kubeflow CRDs and the training-operators.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import yaml

from mlctl.sandbox import core, kdc, keycloak, opa, training
from mlctl.sandbox.procs import State

USER_PREFIX = "oidc:"
GROUP_PREFIX = "oidc:"


def authentication_config(kc: dict, audience: str) -> str:
    """The kube-apiserver AuthenticationConfiguration trusting Keycloak tokens for one audience."""
    ca = Path(kc["ca_file"]).read_text()
    return yaml.safe_dump({
        "apiVersion": "apiserver.config.k8s.io/v1beta1",
        "kind": "AuthenticationConfiguration",
        "jwt": [{
            "issuer": {"url": kc["issuer"], "audiences": [audience], "certificateAuthority": ca},
            "claimMappings": {
                "username": {"claim": "preferred_username", "prefix": USER_PREFIX},
                "groups": {"claim": "groups", "prefix": GROUP_PREFIX},
            },
        }],
    }, sort_keys=False)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def _platform_identity(root: Path, kc: dict) -> None:
    """Fill the platform document's keycloak section and each cluster's token-exchange scope."""
    path = root / "platform.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["keycloak"] = {
        "issuer": kc["issuer"],
        "clientId": kc["client_id"],
        # Keycloak's standard token exchange refuses public clients; this secret is distributed with the
        # platform document like an installed application's and protects nothing by itself.
        "clientSecret": kc["client_secret"],
        "certificateAuthorityData": base64.b64encode(Path(kc["ca_file"]).read_bytes()).decode(),
    }
    for cluster in doc["clusters"]:
        cluster["audience"] = cluster["name"]
        cluster["tokenExchangeScope"] = kc["audience_scopes"][cluster["name"]]
    _write(path, yaml.safe_dump(doc, sort_keys=False))


RBAC = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: mlctl-platform-admins, labels: {app.kubernetes.io/managed-by: mlctl-sandbox}}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: "oidc:platform-admins"}
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "oidc:service-account-mlctl-admin"}
"""


def _apply_rbac(kubeconfig: Path, context: str) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    from mlctl.sandbox import kubeclient

    api = kubeclient.api_client(kubeconfig, context)
    try:
        rbac = client.RbacAuthorizationV1Api(api)
        body = yaml.safe_load(RBAC)
        try:
            rbac.create_cluster_role_binding(body)
        except ApiException as e:
            if e.status != 409:
                raise
            rbac.replace_cluster_role_binding(body["metadata"]["name"], body)
    finally:
        api.close()


def _install_tenancy(kubeconfig: Path, platform_doc: dict, cluster: str) -> None:
    """What `mlctl admin install` applies: the QuotaRequest CRD, mlctl's ClusterRoles and bindings."""
    from mlctl.admin.kubeapi import KubeApi, admin_api_client
    from mlctl.admin.objects import Settings, install

    entry = next(c for c in platform_doc["clusters"] if c["name"] == cluster)
    client = admin_api_client(str(kubeconfig), cluster, "sandbox-{cluster}", 4)
    try:
        install(KubeApi(client, cluster), Settings.from_platform(platform_doc, entry))
    finally:
        client.close()


def _ensure_operator_binary(root: Path) -> None:
    """Build the training-operator once (cached by version like the control plane's binaries)."""
    import os

    if not os.access(training.binary(), os.X_OK):
        log = root / "logs" / "build.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        core.build(["training_operator"], [training.binary()], log=log)


def up(root: Path | None = None) -> dict:
    started = time.monotonic()
    root = Path(root or core.state_dir())
    root.mkdir(parents=True, exist_ok=True)
    state = State.load(root)
    kdc_info = kdc.start(state)
    # Keycloak (with its realm) must answer before an API server starts: an apiserver whose first OIDC
    # discovery fails retries only every 10 s, and tokens are refused until then.
    kc = keycloak.start(state, kdc_info)
    extra = {}
    for cluster in core.CLUSTERS:
        authn = _write(root / "clusters" / cluster / "authentication.yaml", authentication_config(kc, cluster))
        extra[cluster] = [f"--authentication-config={authn}"]
    opa.build(root / "logs" / "build.log")  # OPA before the clusters: gcp's apiserver asks it (docs/policy.md)
    opa_info = opa.start(state)
    extra["gcp"] += opa.webhook_files(opa_info, "gcp", root / "clusters" / "gcp", USER_PREFIX)
    result = core.up(root, apiserver_extra=extra)
    state = State.load(root)  # core.up recorded its processes; continue from what is on disk
    _platform_identity(root, kc)
    opa.publish(root / "platform.yaml", opa_info)
    kubeconfig = root / "kubeconfig"
    _ensure_operator_binary(root)
    operators = {}
    platform_doc = yaml.safe_load((root / "platform.yaml").read_text())
    for cluster in core.CLUSTERS:
        context = f"sandbox-{cluster}"
        _apply_rbac(kubeconfig, context)
        _install_tenancy(kubeconfig, platform_doc, cluster)
        training.install_crds(kubeconfig, context)
        operators[cluster] = training.start(state, cluster, kubeconfig, context)
    result = core.status(root)
    result["keycloak"] = {"issuer": kc["issuer"], "realm": kc["realm"]}
    result["opa"] = {"url": opa_info["url"]}
    result["kdc"] = {"realm": kdc_info["realm"], "krb5_conf": str(kdc_info["krb5_conf"])}
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def env(root: Path | None = None) -> dict[str, str]:
    root = Path(root or core.state_dir())
    out = core.env(root)
    out["KRB5_CONFIG"] = str(kdc.info(State.load(root))["krb5_conf"])
    return out
