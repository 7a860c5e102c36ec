"""`mlctl notebook` paths that need no server, through the real entry point: render, checks, errors."""

from __future__ import annotations

import yaml

from tests.conftest import mlctl

DOC = """\
apiVersion: mlctl.io/v1alpha1
kind: Platform
name: lab
gateway: {url: "https://gw.example.org"}
notebooks:
  cluster: local
  defaultProfile: jupyterlab
  profiles:
    jupyterlab: {image: mlctl.sandbox/notebook:1, pool: vgpu, gpus: 1, cpu: "1", memory: 2Gi, volume: 5Gi}
    cpu-only: {image: mlctl.sandbox/notebook:1, pool: cpu, gpus: 0, cpu: "2", memory: 4Gi, volume: 5Gi}
clusters:
- name: local
  server: https://127.0.0.1:6443
  pools:
    vgpu: {nodeSelector: {mlctl.io/pool: vgpu}, gpuResource: nvidia.com/gpu.shared, gpusPerNode: 4, nodes: 20,
           cpuPerNode: 16, memoryPerNode: 128Gi,
           tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]}
    cpu: {nodeSelector: {mlctl.io/pool: cpu}, gpusPerNode: 0, nodes: 40, cpuPerNode: 64, memoryPerNode: 256Gi}
- name: gcp
  server: https://127.0.0.1:7443
  pools:
    gpu: {nodeSelector: {mlctl.io/pool: gpu}, gpuResource: nvidia.com/gpu, gpusPerNode: 8, nodes: 128}
"""


def _doc(home):
    path = home / "platform.yaml"
    path.write_text(DOC)
    return str(path)


def test_dry_run_client_prints_secret_claim_and_notebook_without_login(home):
    r = mlctl("notebook", "create", "nb1", "--dry-run=client", "--platform", _doc(home))
    assert r.code == 0, r.err
    secret, claim, nb = yaml.safe_load_all(r.out)
    assert [o["kind"] for o in (secret, claim, nb)] == ["Secret", "PersistentVolumeClaim", "Notebook"]
    assert set(secret["stringData"].values()) == {"(redacted)"}
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    pod = nb["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"mlctl.io/pool": "vgpu"}
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu.shared"] == "1"
    assert nb["metadata"]["namespace"] == "u-user"


def test_flags_and_profiles_shape_the_notebook(home):
    r = mlctl("notebook", "create", "cpu1", "--profile", "cpu-only", "--memory", "8Gi", "--volume", "20Gi",
              "--mount", "datasets:/data", "--dry-run=client", "--platform", _doc(home), "-n", "team")
    assert r.code == 0, r.err
    _, claim, nb = yaml.safe_load_all(r.out)
    c = nb["spec"]["template"]["spec"]["containers"][0]
    assert c["resources"]["requests"] == {"cpu": "2", "memory": "8Gi"}
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert {"name": "data-0", "mountPath": "/data", "readOnly": True} in c["volumeMounts"]
    assert nb["metadata"]["namespace"] == "team"


def test_more_than_a_node_has_is_exit_6_before_any_login(home):
    r = mlctl("notebook", "create", "nb1", "--gpus", "5", "--platform", _doc(home))
    assert r.code == 6, r.err
    assert r.err.startswith("error: 5 GPUs for the notebook but nodes in pool vgpu of cluster local have 4")
    assert "Traceback" not in r.err and r.out == ""
    r = mlctl("notebook", "create", "nb1", "--check", "--memory", "200Gi", "--platform", _doc(home))
    assert r.code == 6 and "memory" in r.err


def test_usage_errors_are_exit_2(home):
    doc = _doc(home)
    for args, text in ((["--profile", "gpu-xl"], "no notebook profile 'gpu-xl'"),
                       (["--pool", "cpu", "--gpus", "1"], "has no GPUs"),
                       (["--mount", "data"], "expected SRC:PATH")):
        r = mlctl("notebook", "create", "nb1", *args, "--platform", doc)
        assert r.code == 2 and text in r.err, (args, r.err)
    r = mlctl("notebook", "create", "Bad_Name", "--platform", doc)
    assert r.code == 2 and "invalid notebook name" in r.err


def test_verbs_need_a_login(home):
    doc = _doc(home)
    for args in (["list"], ["status", "nb1"], ["stop", "nb1"], ["start", "nb1"], ["open", "nb1"],
                 ["logs", "nb1"], ["delete", "nb1", "--yes"], ["create", "nb1"]):
        r = mlctl("notebook", *args, "--platform", doc)
        assert r.code == 3 and "not logged in" in r.err, (args, r.err)


def test_help_lists_every_verb(home):
    r = mlctl("notebook", "--help")
    assert r.code == 0
    for verb in ("create", "list", "status", "stop", "start", "delete", "open", "logs"):
        assert f"  {verb} " in r.out
