"""`mlctl notebook` end to end on the sandbox (docs/notebooks.md).

The Notebook API on cluster local is served by the sandbox's own notebook controller, which implements the
upstream notebook-controller's contract (StatefulSet + Service, stop annotation, status mirrored from the pod;
docs/notebook-controller.md says what it leaves out): these tests run against it, not against upstream's.
The notebook's pod really runs JupyterLab (the image mlctl.sandbox/notebook:1, through the pod runner), and the
gateway in front of it checks the Keycloak token of whoever asks.

alice and bob log in through Keycloak with their own configs. alice's notebook is created once for the module
(`create --wait`) and the tests go through its life in file order: Ready and serving, a browser through
alice's login, bob refused, mlctl and kubectl inside it, stop/start keeping the workspace, delete.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import ssl
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tests.conftest import mlctl
from tests.integration.support import admin_sync, logged_in, unavailable

pytestmark = pytest.mark.integration
MLCTL = str(Path(sys.executable).parent / "mlctl")
NS = "u-alice"


@pytest.fixture(scope="module")
def synced(sandbox, tmp_path_factory):
    """Every Keycloak user's namespace and quota, by `mlctl admin sync` (cron's way)."""
    if sandbox.kube().find("CustomResourceDefinition", "notebooks.kubeflow.org") is None:
        unavailable("the sandbox has no Notebook API (the notebook-controller component)")
    admin_sync(sandbox, tmp_path_factory.mktemp("admin"))
    return True


@pytest.fixture(scope="module")
def people(sandbox, synced, tmp_path_factory):
    """{user: environment} for alice and bob, each logged in with a config of their own."""
    return logged_in(sandbox, tmp_path_factory.mktemp("notebooks"), ("alice", "bob"))


def as_user(people, user: str, *args: str, tty: bool = False):
    return mlctl(*args, env=people[user], tty=tty)


def token(people, user: str) -> str:
    r = as_user(people, user, "token", "--cluster", "local")
    assert r.code == 0, r.err
    return json.loads(r.out)["status"]["token"]


def gateway_get(sandbox, url: str, bearer: str | None, accept: str = "application/json") -> tuple[int, str]:
    """GET url at the gateway (verified with the platform's CA) as the token's user."""
    part = sandbox.platform["gateway"]
    ctx = ssl.create_default_context(cadata=base64.b64decode(part["certificateAuthorityData"]).decode())
    u = urlsplit(url)
    conn = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=30)
    headers = {"Accept": accept, **({"Authorization": f"Bearer {bearer}"} if bearer else {})}
    try:
        conn.request("GET", u.path + (f"?{u.query}" if u.query else ""), headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def notebook_pod(sandbox, name: str) -> dict | None:
    pods = sandbox.kube().list("Pod", NS, selector=f"notebook-name={name}")
    return pods[0] if pods else None


def pid_of(pod: dict | None) -> int | None:
    statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or [{}]
    cid = statuses[0].get("containerID") or ""
    return int(cid.removeprefix("mlctl://")) if "running" in (statuses[0].get("state") or {}) and \
        cid.startswith("mlctl://") else None


def process_environment(pid: int) -> tuple[dict[str, str], str]:
    """The environment and working directory the pod runner really gave the notebook's process."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    env = dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)
    return env, os.readlink(f"/proc/{pid}/cwd")


def in_notebook(nb_env: dict, cwd: str, *args: str, program: str = "mlctl") -> subprocess.CompletedProcess:
    """Run a program as a notebook terminal would: the process's environment and directory, nothing of ours."""
    exe = shutil.which(program, path=nb_env.get("PATH", ""))
    assert exe, f"{program} is not on the notebook's PATH ({nb_env.get('PATH')})"
    return subprocess.run([exe, *args], env=nb_env, cwd=cwd, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def cleanup(sandbox, name: str) -> None:
    kube = sandbox.kube()
    for kind, obj in (("Notebook", name), ("Secret", f"{name}-mlctl"), ("PersistentVolumeClaim", f"{name}-workspace")):
        try:
            kube.delete(kind, obj, NS)
        except Exception:  # noqa: BLE001 - cleanup must not hide the test's result
            pass


@pytest.fixture(scope="module")
def notebook(sandbox, people):
    """alice's vGPU notebook, created with `notebook create --wait` (Ready when this returns)."""
    name = f"nb{uuid.uuid4().hex[:6]}"
    r = as_user(people, "alice", "notebook", "create", name, "--pool", "vgpu", "--gpus", "1", "--wait",
                "--timeout", "240", "-o", "json")
    try:
        assert r.code == 0, r.err
        assert f"notebook/{name} created on local in {NS}" in r.err
        yield name
    finally:
        cleanup(sandbox, name)


# ---- tests, in the order of the notebook's life -------------------------------------------------------------

def test_notebook_becomes_a_statefulset_and_a_running_jupyterlab_that_list_shows_ready(sandbox, people, notebook):
    kube = sandbox.kube()
    sts = kube.get("StatefulSet", notebook, NS)
    assert sts["metadata"]["ownerReferences"][0]["kind"] == "Notebook"
    pod = notebook_pod(sandbox, notebook)
    assert pod and pid_of(pod), pod and pod.get("status")
    spec = pod["spec"]
    assert spec["nodeSelector"] == {"mlctl.io/pool": "vgpu"}
    assert kube.get("Node", spec["nodeName"])["metadata"]["labels"]["mlctl.io/pool"] == "vgpu"
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu.shared"] == "1"
    claim = kube.get("PersistentVolumeClaim", f"{notebook}-workspace", NS)
    assert claim["status"]["phase"] == "Bound"
    r = as_user(people, "alice", "notebook", "list", "-o", "json")
    assert r.code == 0, r.err
    (mine,) = [nb for nb in json.loads(r.out) if nb["metadata"]["name"] == notebook]
    assert mine["status"]["readyReplicas"] == 1
    r = as_user(people, "alice", "notebook", "list")
    row = next(line.split() for line in r.out.splitlines() if line.startswith(notebook + " "))
    assert row[1:4] == ["Ready", "vgpu", "1"], r.out
    # JupyterLab itself answers at the open URL, through the gateway, for alice
    url = as_user(people, "alice", "notebook", "open", notebook).out.strip()
    assert url == f"{sandbox.platform['gateway']['url']}/notebook/{NS}/{notebook}/"
    status, body = gateway_get(sandbox, url + "api/status", token(people, "alice"))
    assert status == 200 and "started" in json.loads(body), body[:300]
    logs = as_user(people, "alice", "notebook", "logs", notebook)
    assert logs.code == 0 and "Jupyter" in logs.out, logs.err


def test_headless_chromium_renders_jupyterlab_with_alices_login(sandbox, people, notebook, tmp_path):
    from mlctl.sandbox import kdc, keycloak, procs

    try:
        from tests.integration import browser
    except ImportError:
        unavailable("the headless-browser harness (tests/integration/browser.py) is not there")
    if browser.chromium() is None:
        unavailable("chromium is not installed (scripts/system-packages.sh)")
    url = as_user(people, "alice", "notebook", "open", notebook).out.strip()
    gateway_url = sandbox.platform["gateway"]["url"]
    keycloak_url = keycloak.info(procs.State.load(sandbox.root))["url"]
    ca = tmp_path / "ca.crt"
    ca.write_bytes(base64.b64decode(sandbox.platform["gateway"]["certificateAuthorityData"]))
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    with browser.Browser(artifacts, trust=[gateway_url, keycloak_url], ca_file=ca) as b:
        page = b.open(url, login=("alice", kdc.USERS["alice"]), screenshot=f"notebook-{notebook}.png",
                      ready="document.querySelector('#jp-main-dock-panel')")
    assert page.logged_in and page.url.startswith(url)
    assert "JupyterLab" in page.title, page.title
    assert page.screenshot.stat().st_size > 10_000
    print(f"screenshot: {page.screenshot}")


def test_bob_is_refused_at_the_url_and_sees_none_of_alices_notebooks(sandbox, people, notebook):
    url = as_user(people, "alice", "notebook", "open", notebook).out.strip()
    status, _ = gateway_get(sandbox, url + "api/status", token(people, "bob"))
    assert status == 403
    status, _ = gateway_get(sandbox, url + "api/status", None)
    assert status == 401
    r = as_user(people, "bob", "notebook", "list", "-o", "json")
    assert r.code == 0 and notebook not in r.out, r.out
    r = as_user(people, "bob", "notebook", "list", "-n", NS)
    assert r.code == 5 and notebook not in r.out + r.err, r.err
    r = as_user(people, "bob", "notebook", "status", notebook, "-n", NS)
    assert r.code == 5, r.err
    r = as_user(people, "bob", "notebook", "stop", notebook, "-n", NS)
    assert r.code == 5, r.err


def test_inside_the_notebook_mlctl_and_kubectl_work_as_alice_without_a_login(sandbox, people, notebook, tmp_path):
    nb_env, cwd = process_environment(pid_of(notebook_pod(sandbox, notebook)))
    assert os.path.realpath(nb_env["HOME"]) == cwd and "MLCTL_PLATFORM_FILE" in nb_env
    assert not any(v.startswith(str(Path(people["alice"]["XDG_CONFIG_HOME"]).parent)) for v in nb_env.values())
    r = in_notebook(nb_env, cwd, "whoami", "-o", "json")
    assert r.returncode == 0, r.stderr
    who = json.loads(r.stdout)
    assert who["user"] == "alice" and "burst-gcp" in who["groups"]
    # the policy decides for the notebook's owner as on her laptop: gcp is open to burst-gcp ...
    spec = Path(cwd) / "burst.yaml"
    doc = {"name": "nbburst", "framework": "tensorflow", "image": "registry.example.org/ml/test:1", "workers": 1,
           "resources": {"gpus": 1, "cpu": "1", "memory": "2Gi", "pool": "gpu"}}
    spec.write_text(yaml.safe_dump(doc))
    r = in_notebook(nb_env, cwd, "train", "burst.yaml", "--check", "--cluster", "gcp")
    assert r.returncode == 0, r.stderr
    assert "nbburst fits cluster gcp" in r.stderr
    # ... with at most 128 GPUs a job: the same answer, and the same exit 5, as outside the notebook
    spec.write_text(yaml.safe_dump({**doc, "workers": 20, "resources": {**doc["resources"], "gpus": 8}}))
    inside = in_notebook(nb_env, cwd, "train", "burst.yaml", "--check", "--cluster", "gcp")
    outside = as_user(people, "alice", "train", str(spec), "--check", "--cluster", "gcp")
    assert inside.returncode == outside.code == 5, (inside.stderr, outside.err)
    assert "128" in inside.stderr and inside.stderr.splitlines()[0] == outside.err.splitlines()[0]
    r = in_notebook(nb_env, cwd, "get", "pods", "-o", "name", program="kubectl")
    assert r.returncode == 0, r.stderr
    assert f"pod/{notebook}-0" in r.stdout.split()
    # the copy of the session lives in the pod's own writable cache, never in the read-only mount
    cache = Path(nb_env["XDG_CACHE_HOME"]) / "mlctl" / "tokens"
    assert (cache / "sandbox" / "session.json").stat().st_mode & 0o777 == 0o600


def test_stop_takes_it_to_zero_pods_and_start_brings_back_the_same_workspace(sandbox, people, notebook):
    _, cwd = process_environment(pid_of(notebook_pod(sandbox, notebook)))
    marker = f"kept {uuid.uuid4().hex}"
    (Path(cwd) / "results.txt").write_text(marker)
    r = as_user(people, "alice", "notebook", "stop", notebook, "--wait", "--timeout", "120")
    assert r.code == 0, r.err
    sandbox.wait_for(lambda: notebook_pod(sandbox, notebook) is None, 60, "the notebook's pod to go")
    assert sandbox.kube().get("StatefulSet", notebook, NS)["spec"]["replicas"] == 0
    r = as_user(people, "alice", "notebook", "list")
    assert next(line.split() for line in r.out.splitlines() if line.startswith(notebook + " "))[1] == "Stopped"
    r = as_user(people, "alice", "notebook", "start", notebook, "--wait", "--timeout", "240")
    assert r.code == 0, r.err
    url = as_user(people, "alice", "notebook", "open", notebook).out.strip()
    status, body = gateway_get(sandbox, url + "api/contents/results.txt?content=1", token(people, "alice"))
    assert status == 200, body[:300]
    assert json.loads(body)["content"] == marker


def test_a_notebook_over_the_quota_is_refused_with_6_and_nothing_is_created(sandbox, people):
    name = f"nb{uuid.uuid4().hex[:6]}"
    r = as_user(people, "alice", "notebook", "create", name, "--cpu", "12")
    assert r.code == 6, r.err
    assert "quota" in r.err and "requests.cpu" in r.err and "Traceback" not in r.err
    r = as_user(people, "alice", "notebook", "create", name, "--check", "--cpu", "12")
    assert r.code == 6
    kube = sandbox.kube()
    assert kube.find("Notebook", name, NS) is None
    assert kube.find("Secret", f"{name}-mlctl", NS) is None
    assert kube.find("PersistentVolumeClaim", f"{name}-workspace", NS) is None
    r = as_user(people, "alice", "notebook", "create", name, "--check")
    assert r.code == 0 and f"notebook {name} fits cluster local" in r.err, r.err
    assert kube.find("Notebook", name, NS) is None


def test_delete_keeps_the_workspace_unless_asked(sandbox, people, notebook):
    kube = sandbox.kube()
    claim = f"{notebook}-workspace"
    r = as_user(people, "alice", "notebook", "delete", notebook)
    assert r.code == 2 and "--yes" in r.err  # no terminal: no silent deletion
    r = as_user(people, "alice", "notebook", "delete", notebook, "--yes")
    assert r.code == 0, r.err
    assert kube.find("Notebook", notebook, NS) is None
    sandbox.wait_for(lambda: kube.find("Secret", f"{notebook}-mlctl", NS) is None, 30, "the notebook's Secret to go")
    sandbox.wait_for(lambda: notebook_pod(sandbox, notebook) is None, 60, "the notebook's pod to go")
    assert kube.get("PersistentVolumeClaim", claim, NS)["status"]["phase"] == "Bound"
    assert as_user(people, "alice", "notebook", "status", notebook).code == 4
    # the kept workspace is used again by a notebook of the same name, then removed when asked
    r = as_user(people, "alice", "notebook", "create", notebook, "--profile", "cpu-only")
    assert r.code == 0 and f"reusing workspace {claim}" in r.err, r.err
    r = as_user(people, "alice", "notebook", "delete", notebook, "--delete-volume", "--yes")
    assert r.code == 0, r.err
    sandbox.wait_for(lambda: kube.find("PersistentVolumeClaim", claim, NS) is None, 90, "the workspace claim to go")
