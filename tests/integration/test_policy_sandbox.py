"""The cluster policy end to end in the sandbox: mlctl's client asks the sandbox's OPA, gcp's kube-apiserver
asks the same OPA through its authorization webhook, and both refuse when OPA is down (docs/policy.md).

Users log in through the ordinary flows (`mlctl sandbox login`), and their cluster tokens come from
`mlctl token`, as kubectl gets them. Tokens never reach an assertion message.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
import requests

from mlctl import errors
from mlctl.policy import decide, decisions, require
from mlctl.sandbox import opa
from tests.conftest import mlctl

pytestmark = pytest.mark.integration

CAROL_REASON = "cluster gcp is open only to members of burst-gcp or platform-admins, and carol is in ml-users"
SSR = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
GCP_NODES = 128


class Token(str):
    """A bearer token that never shows itself in a test report."""

    def __repr__(self) -> str:
        return "Token(<redacted>)"


class Person(dict):
    """A logged-in sandbox user: groups, tokens by cluster, the environment of their mlctl config."""

    def __repr__(self) -> str:
        return f"Person({self['user']!r}, groups={self['groups']!r})"


@pytest.fixture(scope="module")
def people(sandbox, tmp_path_factory):
    """alice, carol and dave logged in, each with their own mlctl config and cache: {user: Person}."""
    base = tmp_path_factory.mktemp("people")
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("MLCTL_")]:
            if key not in ("MLCTL_CACHE_DIR", "MLCTL_SANDBOX_DIR", "MLCTL_SANDBOX_SRC"):
                mp.delenv(key)
        mp.setenv("MLCTL_SANDBOX_DIR", str(sandbox.root))
        for user in ("alice", "carol", "dave"):
            env = {"XDG_CONFIG_HOME": str(base / user / "config"), "XDG_CACHE_HOME": str(base / user / "cache"),
                   "KUBECONFIG": str(base / user / "kubeconfig")}
            for k, v in env.items():
                mp.setenv(k, v)
            r = mlctl("sandbox", "login", user)
            assert r.code == 0, r.err
            who = mlctl("whoami", "-o", "json")
            assert who.code == 0, who.err
            tokens = {}
            for cluster in ("local", "gcp"):
                t = mlctl("token", "--cluster", cluster)
                assert t.code == 0, t.err
                tokens[cluster] = Token(json.loads(t.out)["status"]["token"])
            out[user] = Person(user=user, groups=json.loads(who.out)["groups"], tokens=tokens,
                               env={**env, "MLCTL_SANDBOX_DIR": str(sandbox.root)})
    return out


def server(sandbox, cluster: str) -> str:
    return next(c["server"] for c in sandbox.platform["clusters"] if c["name"] == cluster)


def call(sandbox, token: str, cluster: str, method: str, path: str, body: dict | None = None) -> requests.Response:
    return requests.request(method, server(sandbox, cluster) + path, json=body, timeout=30,
                            headers={"Authorization": f"Bearer {token}"}, verify=str(sandbox.root / "pki" / "ca.crt"))


def self_review(sandbox, token: str, cluster: str = "gcp") -> requests.Response:
    return call(sandbox, token, cluster, "POST", SSR,
                {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})


def opa_running(sandbox) -> bool:
    return sandbox.state.is_running(opa.PROCESS)


# ---- mlctl's client against the sandbox's OPA ----------------------------------------------------------

def test_the_platform_document_names_the_sandboxs_opa(sandbox):
    section = sandbox.platform["opa"]
    assert section["url"].startswith("https://127.0.0.1:")
    assert section["url"] == opa.info(sandbox.state)["url"] and section["certificateAuthorityData"]


def test_carols_groups_are_denied_gcp_with_the_policys_reason(sandbox, people):
    carol = people["carol"]
    assert carol["groups"] == ["ml-users"]
    d = decide(sandbox.platform, "carol", carol["groups"], "gcp")
    assert (d.allow, d.rule, d.reasons) == (False, "group", (CAROL_REASON,))
    with pytest.raises(errors.Forbidden) as raised:
        require(d)
    assert raised.value.exit_code == 5 and raised.value.message == f"the cluster policy denies gcp: {CAROL_REASON}"
    assert decide(sandbox.platform, "carol", carol["groups"], "local").allow


def test_alice_may_burst_within_the_limits(sandbox, people):
    alice = people["alice"]
    assert "burst-gcp" in alice["groups"]
    job = {"gpus": 128, "pools": ["gpu"], "preemptible": True}
    d = require(decide(sandbox.platform, "alice", alice["groups"], "gcp", job))
    assert d.limits == {"maxGpusPerJob": 128, "pools": ["gpu"], "preemptibleOnly": True} and d.id
    over = decide(sandbox.platform, "alice", alice["groups"], "gcp", {**job, "gpus": 129, "pools": ["vgpu"]})
    assert not over.allow and over.reasons == (
        "a job on gcp may use at most 128 GPUs, and this one asks for 129",
        "pool vgpu is not available on gcp (allowed: gpu)",
    )
    listing = decisions(sandbox.platform, "alice", alice["groups"])
    assert list(listing) == ["local", "gcp"] and all(x.allow for x in listing.values())


# ---- gcp's apiserver asks the same OPA ---------------------------------------------------------------------

CAROLS_PODS = "/api/v1/namespaces/u-carol/pods"


def test_gcp_refuses_carol_with_the_policys_reason_and_local_does_not(sandbox, people):
    tokens = people["carol"]["tokens"]
    refused = call(sandbox, tokens["gcp"], "gcp", "GET", CAROLS_PODS)
    assert refused.status_code == 403, refused.text
    status = refused.json()
    assert status["reason"] == "Forbidden"
    assert status["message"] == ('pods is forbidden: User "oidc:carol" cannot list resource "pods" in API group "" '
                                 f'in the namespace "u-carol": {CAROL_REASON}')
    tfjob = call(sandbox, tokens["gcp"], "gcp", "POST", "/apis/kubeflow.org/v1/namespaces/u-carol/tfjobs", _tfjob("x"))
    assert tfjob.status_code == 403 and tfjob.json()["message"].endswith(CAROL_REASON)
    # on local (no webhook) the same request reaches RBAC, which says no for its own reason
    local = call(sandbox, tokens["local"], "local", "GET", "/api/v1/namespaces/kube-system/pods")
    assert local.status_code == 403 and CAROL_REASON not in local.json()["message"]


def test_carol_may_still_ask_who_she_is_and_what_she_may_do(sandbox, people):
    token = people["carol"]["tokens"]["gcp"]
    assert call(sandbox, token, "gcp", "GET", "/apis").status_code == 200  # discovery, so kubectl gets as far
    assert self_review(sandbox, token).json()["status"]["userInfo"]["username"] == "oidc:carol"
    review = call(sandbox, token, "gcp", "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"namespace": "u-carol", "verb": "create", "group": "kubeflow.org",
                                        "resource": "tfjobs"}}})
    assert review.status_code == 201, review.text
    assert review.json()["status"] == {"allowed": False, "denied": True, "reason": CAROL_REASON}


def test_login_leaves_carols_gcp_context_out_and_kubectl_shows_her_the_reason(sandbox, people, tmp_path):
    from mlctl.auth.kubeconfig import write_contexts

    env = {**os.environ, **people["carol"]["env"]}
    assert "mlctl-gcp" not in Path(env["KUBECONFIG"]).read_text()  # login wrote only what the policy allows
    # the context login left out, written by hand: the server decides, and says why
    env["KUBECONFIG"] = str(tmp_path / "kubeconfig")
    gcp = next(c for c in sandbox.platform["clusters"] if c["name"] == "gcp")
    write_contexts(Path(env["KUBECONFIG"]), "sandbox", [gcp], "u-carol")

    def kubectl(*args):
        return subprocess.run([str(sandbox.kubectl_path), "--context", "mlctl-gcp", *args], capture_output=True,
                              text=True, timeout=60, env=env)

    get = kubectl("get", "pods", "-n", "u-carol")
    assert get.returncode == 1
    assert get.stderr.strip().splitlines()[-1] == (
        'Error from server (Forbidden): pods is forbidden: User "oidc:carol" cannot list resource "pods" in API '
        f'group "" in the namespace "u-carol": {CAROL_REASON}')
    can_i = kubectl("auth", "can-i", "create", "tfjobs.kubeflow.org", "-n", "u-carol")
    assert can_i.returncode == 1 and can_i.stdout.strip() == f"no - {CAROL_REASON}", can_i.stdout + can_i.stderr


def test_gcp_leaves_allowed_users_to_rbac(sandbox, people):
    alice, dave = people["alice"]["tokens"]["gcp"], people["dave"]["tokens"]["gcp"]
    # the webhook had no opinion, so RBAC decided: alice has no rights in kube-system, and no policy reason
    pods = call(sandbox, alice, "gcp", "GET", "/api/v1/namespaces/kube-system/pods")
    assert pods.status_code == 403 and "cluster gcp is open" not in pods.json()["message"]
    # dave is a platform admin: the policy lets him in and RBAC binds platform-admins to cluster-admin
    assert call(sandbox, dave, "gcp", "GET", "/api/v1/namespaces/kube-system/pods").status_code == 200


# ---- OPA down: platform users are refused, the rest of the cluster keeps working ---------------------------

def _service_account_token(sandbox, ns: str) -> str:
    core = sandbox.core("gcp")
    core.create_namespaced_service_account(ns, {"metadata": {"name": "probe"}})
    req = core.create_namespaced_service_account_token("probe", ns, {"spec": {"expirationSeconds": 600}})
    return req.status.token


def _ready_nodes(sandbox) -> int:
    nodes = sandbox.core("gcp").list_node(label_selector="mlctl.io/cluster=gcp").items
    return sum(1 for n in nodes for c in n.status.conditions or [] if c.type == "Ready" and c.status == "True")


def _tfjob(name: str) -> dict:
    container = {"name": "tensorflow", "image": "registry.example/mlctl/train:sandbox"}
    template = {"metadata": {"annotations": {"mlctl.io/run-seconds": "2"}},
                "spec": {"tolerations": [{"operator": "Exists"}], "containers": [container]}}
    return {"apiVersion": "kubeflow.org/v1", "kind": "TFJob", "metadata": {"name": name},
            "spec": {"tfReplicaSpecs": {"Chief": {"replicas": 1, "restartPolicy": "Never", "template": template}}}}


def _job_end(custom, ns: str, name: str) -> str | None:
    job = custom.get_namespaced_custom_object("kubeflow.org", "v1", ns, "tfjobs", name)
    for c in job.get("status", {}).get("conditions") or []:
        if c["type"] in ("Succeeded", "Failed") and c["status"] == "True":
            return c["type"]
    return None


def test_with_opa_down_gcp_refuses_platform_users_and_the_client_exits_7(sandbox, people, namespace):
    from kubernetes import client

    alice = people["alice"]["tokens"]["gcp"]
    assert self_review(sandbox, alice).status_code == 201
    ns = namespace("gcp")
    sa_token = _service_account_token(sandbox, ns)
    custom = client.CustomObjectsApi(sandbox.api("gcp"))
    state = sandbox.state
    assert opa.stop(state)
    try:
        refused = sandbox.wait_for(lambda: (r := self_review(sandbox, alice)).status_code != 201 and [r], 60,
                                   "gcp to refuse alice with OPA down")[0]
        # failurePolicy Deny: the webhook's error is a refusal (kube-apiserver answers an authorizer error
        # with 500), never RBAC's allow
        assert refused.status_code == 500 and "Internal Server Error" in refused.text, refused.text
        assert call(sandbox, people["dave"]["tokens"]["gcp"], "gcp", "GET",
                    "/api/v1/namespaces/kube-system/pods").status_code == 500  # even cluster-admins by RBAC
        assert self_review(sandbox, people["alice"]["tokens"]["local"], "local").status_code == 201

        with pytest.raises(errors.Unavailable) as raised:
            decide(sandbox.platform, "alice", people["alice"]["groups"], "gcp")
        assert raised.value.exit_code == errors.UNAVAILABLE == 7
        assert "cannot reach the policy server" in raised.value.message

        # identities that are not the platform's never reach the webhook: a service account, the admin
        # (client certificate), the controllers, kwok and the training-operator carry on
        assert call(sandbox, sa_token, "gcp", "GET", "/apis").status_code == 200
        assert _ready_nodes(sandbox) == GCP_NODES
        name = f"burst-{uuid.uuid4().hex[:6]}"
        custom.create_namespaced_custom_object("kubeflow.org", "v1", ns, "tfjobs", _tfjob(name))
        assert sandbox.wait_for(lambda: _job_end(custom, ns, name), 120, f"tfjob {name} to finish") == "Succeeded"
        assert not opa_running(sandbox)
    finally:
        opa.start(state)
    sandbox.wait_for(lambda: self_review(sandbox, alice).status_code == 201, 60, "gcp to accept alice again")


def test_the_webhook_files_name_the_running_opa(sandbox):
    config = Path(sandbox.root / "clusters" / "gcp" / "authorization.yaml").read_text()
    assert opa.webhook_url(opa.info(sandbox.state), "gcp") in config
    assert "failurePolicy: Deny" in config
    argv = sandbox.state.data["processes"]["gcp-kube-apiserver"]["argv"]
    assert not any(a.startswith("--authorization-mode") for a in argv)
    local = sandbox.state.data["processes"]["local-kube-apiserver"]["argv"]
    assert "--authorization-mode=Node,RBAC" in local and not any(a.startswith("--authorization-config") for a in local)
