"""The notebook image, volumes of real pods, the gateway's browser login and WebSockets, in the sandbox
(docs/workloads.md).

What runs for real: JupyterLab 4 (jupyter-server and jupyterlab from PyPI, the `mlctl.sandbox/notebook:1`
image) as a process the sandbox's pod runner starts for a plain Pod and Service in alice's namespace — the
pod the notebook controller's StatefulSet would make (container named after the notebook, NB_PREFIX,
port 8888, labels `statefulset` and `notebook-name`); no Notebook object or controller is involved here. The
gateway, Keycloak's own login form and Debian's headless Chromium are real too. The claim is bound by the
test (a PersistentVolume and the claim's status written as the binder would, storage class ""), so the test
does not depend on the sandbox's provisioner; the pod runner gives it its directory under the state dir.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.integration.support import unavailable
from tests.integration.test_workloads_sandbox import user_token

pytestmark = pytest.mark.integration

IMAGE = "mlctl.sandbox/notebook:1"
NAME = "nb1"
CLAIM = "nb1-workspace"
CONFIG = b"platform: sandbox\nuser: alice\n"


# ---- helpers ---------------------------------------------------------------------------------------------

class Gateway:
    """HTTPS calls to the gateway, verified with the sandbox CA; a cookie jar per instance (JupyterLab's
    _xsrf cookie must come back with every change, as a browser's would)."""

    def __init__(self, sandbox, ca: Path, token: str | None = None):
        url = sandbox.platform["gateway"]["url"]
        self.url = url
        self.host, port = url.removeprefix("https://").split(":")
        self.port = int(port)
        self.ca_file = str(ca)
        self.ctx = ssl.create_default_context(cafile=self.ca_file)
        self.token = token
        self.jar: dict[str, str] = {}

    def call(self, method: str, path: str, body: dict | None = None, headers: dict | None = None):
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=60)
        sent = {"Content-Type": "application/json", **(headers or {})}
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        if self.jar:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.jar.items())
        if "_xsrf" in self.jar and method not in ("GET", "HEAD"):
            sent["X-XSRFToken"] = self.jar["_xsrf"]
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=sent)
            resp = conn.getresponse()
            raw = resp.read()
            for name, value in resp.getheaders():
                if name.lower() == "set-cookie":
                    k, _, v = value.split(";")[0].partition("=")
                    self.jar[k.strip()] = v
            return resp.status, dict(resp.getheaders()), raw
        finally:
            conn.close()

    def json(self, method: str, path: str, body: dict | None = None):
        status, _, raw = self.call(method, path, body)
        assert 200 <= status < 300, (method, path, status, raw[:300])
        return json.loads(raw) if raw else None


def run_in_kernel(gateway: Gateway, prefix: str, code: str) -> str:
    """Start a kernel through the gateway, run code over the kernel's WebSocket (tunnelled by the gateway),
    return its stdout, and shut the kernel down."""
    import websocket

    kernel = gateway.json("POST", f"{prefix}/api/kernels", {"name": "python3"})
    try:
        ws = websocket.create_connection(
            f"wss://{gateway.host}:{gateway.port}{prefix}/api/kernels/{kernel['id']}/channels",
            header=[f"Authorization: Bearer {gateway.token}"], cookie="; ".join(f"{k}={v}" for k, v in gateway.jar.items()),
            sslopt={"ca_certs": gateway.ca_file}, timeout=90, suppress_origin=True)
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({"header": {"msg_id": msg_id, "username": "alice", "session": uuid.uuid4().hex,
                                       "msg_type": "execute_request", "version": "5.3"},
                            "parent_header": {}, "metadata": {}, "channel": "shell",
                            "content": {"code": code, "silent": False, "store_history": False,
                                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}))
        out = []
        while True:
            msg = json.loads(ws.recv())
            if (msg.get("parent_header") or {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "stream":
                out.append(msg["content"]["text"])
            elif kind == "error":
                out.append("ERROR " + msg["content"]["ename"] + ": " + msg["content"]["evalue"])
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                break
        ws.close()
        return "".join(out)
    finally:
        gateway.call("DELETE", f"{prefix}/api/kernels/{kernel['id']}")


def notebook_pod(namespace: str) -> dict:
    """The pod a Notebook's StatefulSet yields: one container named after it, NB_PREFIX, port 8888; the
    workspace claim at /home/jovyan, the user's configuration Secret at /etc/mlctl."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": NAME, "namespace": namespace, "labels": {"statefulset": NAME, "notebook-name": NAME}},
        "spec": {
            "nodeSelector": {"mlctl.io/pool": "cpu"},
            "terminationGracePeriodSeconds": 5,
            "containers": [{
                "name": NAME, "image": IMAGE,
                "env": [{"name": "NB_PREFIX", "value": f"/notebook/{namespace}/{NAME}"},
                        {"name": "HOME", "value": "/home/jovyan"},
                        {"name": "MLCTL_CONFIG", "value": "/etc/mlctl/config.yaml"}],
                "ports": [{"name": "notebook-port", "containerPort": 8888, "protocol": "TCP"}],
                "workingDir": "/home/jovyan",
                "volumeMounts": [{"name": "workspace", "mountPath": "/home/jovyan"},
                                 {"name": "config", "mountPath": "/etc/mlctl", "readOnly": True}],
            }],
            "volumes": [{"name": "workspace", "persistentVolumeClaim": {"claimName": CLAIM}},
                        # the API server fills in defaultMode 0644 when none is given: say 0600
                        {"name": "config", "secret": {"secretName": "mlctl-config", "defaultMode": 0o600}}],
        },
    }


def bound_claim(sandbox, namespace: str, pv: str) -> None:
    """A claim bound to a PersistentVolume made for it, as a binder would (storage class "")."""
    kube = sandbox.kube()
    claim = kube.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                         "metadata": {"name": CLAIM, "namespace": namespace},
                         "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "",
                                  "resources": {"requests": {"storage": "1Gi"}}}})
    kube.create({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
                 "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                          "persistentVolumeReclaimPolicy": "Delete", "hostPath": {"path": f"/nonexistent/{pv}"},
                          "claimRef": {"namespace": namespace, "name": CLAIM, "uid": claim["metadata"]["uid"]}}})
    kube.patch("PersistentVolumeClaim", CLAIM, {"spec": {"volumeName": pv}}, namespace)
    kube.patch("PersistentVolumeClaim", CLAIM, {"status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"],
                                                           "capacity": {"storage": "1Gi"}}}, namespace, sub="status")


def start_pod(sandbox, namespace: str, gateway: Gateway) -> None:
    sandbox.kube().create(notebook_pod(namespace))
    prefix = f"/notebook/{namespace}/{NAME}"

    def answering():
        pod = sandbox.kube().get("Pod", NAME, namespace)
        restarts = sum(c.get("restartCount", 0) for c in (pod.get("status") or {}).get("containerStatuses") or [])
        if (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded") or restarts > 1:
            pytest.fail(f"JupyterLab exited: {sandbox.kubectl('logs', '-n', namespace, NAME).stdout[-2000:]}")
        return gateway.call("GET", f"{prefix}/api/status")[0] == 200

    sandbox.wait_for(answering, 180, "JupyterLab to answer through the gateway")


def delete_pod(sandbox, namespace: str) -> None:
    from mlctl.errors import NotFound

    sandbox.kube().delete("Pod", NAME, namespace)

    def gone():
        try:
            sandbox.kube().get("Pod", NAME, namespace)
        except NotFound:
            return True
        return False

    sandbox.wait_for(gone, 60, "the notebook pod to be deleted")


def delete_claim(sandbox, namespace: str) -> None:
    """Delete the claim; its `kubernetes.io/pvc-protection` finalizer is taken off once no pod uses it, by
    the controller-manager's protection controller where it runs, else here, as that controller would."""
    from mlctl.errors import NotFound

    kube = sandbox.kube()
    try:
        kube.delete("PersistentVolumeClaim", CLAIM, namespace)
        claim = kube.get("PersistentVolumeClaim", CLAIM, namespace)
    except NotFound:
        return
    if claim["metadata"].get("finalizers"):
        try:
            kube.patch("PersistentVolumeClaim", CLAIM, {"metadata": {"finalizers": None}}, namespace)
        except NotFound:
            pass


@pytest.fixture(scope="module")
def notebook(sandbox, tmp_path_factory):
    """alice's namespace with the claim, the configuration Secret, the notebook pod and its Service."""
    from mlctl.sandbox import pods

    if IMAGE not in pods.info(sandbox.root)["images"]:
        unavailable("the sandbox's pod runner predates the notebook image: run `mlctl sandbox up`")
    home = tmp_path_factory.mktemp("notebook")
    kube = sandbox.kube()
    ns = f"t-notebook-runner-{uuid.uuid4().hex[:6]}"
    pv = f"pv-{ns}"
    try:
        kube.create({"apiVersion": "v1", "kind": "Namespace",
                     "metadata": {"name": ns, "labels": {"mlctl.io/test": "true"},
                                  "annotations": {"mlctl.io/owner-username": "alice"}}})
        sandbox.wait_for(lambda: kube.find("ServiceAccount", "default", ns), 30, f"service account default in {ns}")
        bound_claim(sandbox, ns, pv)
        kube.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "mlctl-config", "namespace": ns},
                     "data": {"config.yaml": base64.b64encode(CONFIG).decode()}})
        kube.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": NAME, "namespace": ns},
                     "spec": {"selector": {"statefulset": NAME},
                              "ports": [{"name": f"http-{NAME}", "port": 80, "targetPort": 8888, "protocol": "TCP"}]}})
        ca = home / "ca.crt"
        ca.write_bytes(base64.b64decode(sandbox.platform["gateway"]["certificateAuthorityData"]))
        alice = Gateway(sandbox, ca, user_token(sandbox, home, "alice"))
        start_pod(sandbox, ns, alice)
        yield {"namespace": ns, "alice": alice, "ca": ca, "home": home, "pv": pv}
    finally:
        try:
            kube.delete("Pod", NAME, ns)
            sandbox.wait_for(lambda: not kube.find("Pod", NAME, ns), 60, "the notebook pod to be deleted")
            delete_claim(sandbox, ns)
        except Exception:  # noqa: BLE001 - cleanup must not hide the test's own result
            pass
        for kind, name, namespace in (("Namespace", ns, None), ("PersistentVolume", pv, None)):
            try:
                kube.delete(kind, name, namespace)
            except Exception:  # noqa: BLE001 - cleanup must not hide the test's own result
                pass


# ---- tests -----------------------------------------------------------------------------------------------

def test_files_written_through_jupyterlab_land_in_the_claim_and_outlive_the_pod(sandbox, notebook):
    from mlctl.sandbox import podrunner

    ns, alice = notebook["namespace"], notebook["alice"]
    prefix = f"/notebook/{ns}/{NAME}"
    text = f"written through the gateway {uuid.uuid4().hex}\n"
    alice.call("GET", f"{prefix}/lab")  # JupyterLab's _xsrf cookie, as a browser gets it
    saved = alice.json("PUT", f"{prefix}/api/contents/hello.txt", {"type": "file", "format": "text", "content": text})
    assert saved["path"] == "hello.txt"
    claim_dir = sandbox.root / "volumes" / "local" / ns / CLAIM
    assert (claim_dir / "hello.txt").read_text() == text

    # inside the notebook (a kernel over the gateway's WebSocket tunnel): the paths the pod spec names
    # work, the Secret is there read-only, and mlctl and kubectl are on PATH
    out = run_in_kernel(alice, prefix, "\n".join([
        "import os, shutil, subprocess",
        "print('home', os.path.realpath(os.environ['HOME']))",
        "print('config', open(os.environ['MLCTL_CONFIG']).read().replace(chr(10), '|'))",
        "print('mode', oct(os.stat(os.environ['MLCTL_CONFIG']).st_mode & 0o777))",
        "try:\n    open(os.environ['MLCTL_CONFIG'], 'a').close()\n    print('writable yes')\n"
        "except OSError as e:\n    print('writable no', e.strerror)",
        "print('cwd', os.path.realpath(os.getcwd()))",
        "print('which', bool(shutil.which('mlctl')), bool(shutil.which('kubectl')))",
        "import mlctl; print('import', mlctl.__name__)",
        "print('version', subprocess.run(['mlctl', '--help'], capture_output=True, text=True).returncode)",
    ]))
    lines = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    assert lines["home"] == str(claim_dir.resolve()), out
    assert lines["cwd"] == str(claim_dir.resolve()), out
    assert lines["config"] == CONFIG.decode().replace("\n", "|"), out
    assert lines["mode"] == "0o600", out
    if podrunner._can_mount():
        assert lines["writable"] == "no Read-only file system", out
    assert lines["which"] == "True True", out
    assert lines["import"] == "mlctl" and lines["version"] == "0", out

    delete_pod(sandbox, ns)
    assert (claim_dir / "hello.txt").read_text() == text  # the claim's directory outlives the pod
    start_pod(sandbox, ns, alice)
    again = alice.json("GET", f"{prefix}/api/contents/hello.txt?content=1&format=text&type=file")
    assert again["content"] == text


def test_api_clients_without_a_token_get_401_and_browsers_are_sent_to_keycloak(sandbox, notebook):
    ns = notebook["namespace"]
    anonymous = Gateway(sandbox, notebook["ca"])
    status, headers, _ = anonymous.call("GET", f"/notebook/{ns}/{NAME}/api/status")
    assert status == 401 and headers.get("WWW-Authenticate", "").startswith("Bearer")

    status, headers, _ = anonymous.call("GET", f"/notebook/{ns}/{NAME}/lab", headers={"Accept": "text/html"})
    assert status == 302
    location = urlsplit(headers["Location"])
    issuer = sandbox.platform["keycloak"]["issuer"]
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{issuer}/protocol/openid-connect/auth"
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert query["client_id"] == "gateway" and query["response_type"] == "code"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["redirect_uri"] == sandbox.platform["gateway"]["url"] + "/oauth2/callback"
    login_cookie = headers["Set-Cookie"]
    assert login_cookie.startswith(f"mlctl-login={query['state']};")
    assert all(flag in login_cookie for flag in ("HttpOnly", "Secure", "SameSite=Lax"))
    # a callback whose state another browser began is refused; with this browser's state, a forged code is
    # refused by Keycloak, and the state cannot be used twice
    status, _, body = Gateway(sandbox, notebook["ca"]).call("GET", f"/oauth2/callback?state={query['state']}&code=x")
    assert status == 400, body
    status, _, body = anonymous.call("GET", f"/oauth2/callback?state={query['state']}&code=forged")
    assert status == 401 and b"Keycloak refused" in body, body
    status, _, body = anonymous.call("GET", f"/oauth2/callback?state={query['state']}&code=forged")
    assert status == 400 and b"already used" in body, body


def test_bob_is_refused_at_alices_notebook(sandbox, notebook):
    ns = notebook["namespace"]
    bob = Gateway(sandbox, notebook["ca"], user_token(sandbox, notebook["home"], "bob"))
    for path in ("lab", "api/contents"):
        status, _, body = bob.call("GET", f"/notebook/{ns}/{NAME}/{path}")
        assert status == 403, body


def test_chromium_logs_alice_in_and_renders_jupyterlab_and_refuses_bob(sandbox, notebook, tmp_path):
    from mlctl.sandbox import kdc, keycloak, procs
    from tests.integration import browser

    if browser.chromium() is None:
        unavailable("chromium is not installed (scripts/system-packages.sh)")
    ns = notebook["namespace"]
    gateway_url = sandbox.platform["gateway"]["url"]
    keycloak_url = keycloak.info(procs.State.load(sandbox.root))["url"]
    url = f"{gateway_url}/notebook/{ns}/{NAME}/lab"
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    # the workspace holds a file the file browser must list
    alice = notebook["alice"]
    alice.call("GET", f"/notebook/{ns}/{NAME}/lab")
    alice.json("PUT", f"/notebook/{ns}/{NAME}/api/contents/from-the-test.txt",
               {"type": "file", "format": "text", "content": "x"})

    with browser.Browser(artifacts, trust=[gateway_url, keycloak_url], ca_file=notebook["ca"]) as b:
        page = b.open(url, login=("alice", kdc.USERS["alice"]), screenshot="jupyterlab-alice.png",
                      ready="document.querySelector('#jp-main-dock-panel .jp-Launcher') && "
                            "document.body.innerText.includes('from-the-test.txt')")
        assert page.logged_in
        assert page.url.startswith(url)
        assert "JupyterLab" in page.title
        assert "from-the-test.txt" in page.text
        assert page.screenshot.stat().st_size > 10_000
        token = [c for c in b.cookies() if c["name"] == "mlctl-token"]
        assert token and token[0]["httpOnly"] and token[0]["secure"] and token[0]["sameSite"] == "Lax"
        # the page's own API calls under the prefix work with the cookie
        assert b.fetch_status(f"/notebook/{ns}/{NAME}/api/contents") == 200

    with browser.Browser(artifacts, trust=[gateway_url, keycloak_url], ca_file=notebook["ca"]) as b:
        page = b.open(url, login=("bob", kdc.USERS["bob"]), screenshot="refused-bob.png",
                      ready="document.body && document.body.innerText.length > 0")
        assert page.logged_in
        assert "bob may not use" in page.text
        assert b.fetch_status(f"/notebook/{ns}/{NAME}/api/contents") == 403
    print(f"screenshots in {artifacts}")


def test_deleting_the_claim_removes_its_directory(sandbox, notebook):
    ns = notebook["namespace"]
    claim_dir = sandbox.root / "volumes" / "local" / ns / CLAIM
    assert claim_dir.is_dir()
    delete_pod(sandbox, ns)
    delete_claim(sandbox, ns)
    sandbox.wait_for(lambda: not claim_dir.exists(), 30, "the claim's directory to be removed")

