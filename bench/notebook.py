"""Notebook start-up on the running sandbox: `mlctl notebook create --wait` to Ready, against kubectl in the
same run, and where the time goes.

  mlctl:   `mlctl notebook create NAME --wait` (checks, Secret, workspace claim, Notebook, watch to Ready)
  kubectl: `kubectl create -f` of the same objects (`--dry-run=client`) + `kubectl wait` for readyReplicas=1

Shares, from a watch of the namespace's Notebooks and Pods (this machine's clock at each event):
  controller:    Notebook created -> its pod created (the notebook controller and the StatefulSet controller)
  process start: pod started (running) -> Ready (JupyterLab listening, the runner's readiness)
The rest is mlctl's own checks and the scheduler/pod runner (pod created -> started). Both tools authenticate
the same way (alice's Keycloak login; kubectl through mlctl's exec plugin). Each notebook is deleted with its
workspace before the next run; the figures are printed before the cleanup, and printed even if it fails.
Usage: python bench/notebook.py [--runs 5]   (needs `mlctl sandbox up`)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

BIN = Path(sys.executable).parent
MLCTL = str(BIN / "mlctl")
NS = "u-alice"


def run(argv: list[str], env: dict, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, stdin=subprocess.DEVNULL)
    if check and out.returncode != 0:
        sys.exit(f"bench: {' '.join(argv[:4])} failed: {out.stderr.strip()}")
    return out


class Timeline:
    """Local times of the first Notebook ADDED, pod ADDED, pod running and pod Ready, per notebook name."""

    def __init__(self, kube):
        self.kube = kube
        self.seen: dict[str, dict[str, float]] = {}
        self.stop = threading.Event()
        self.opened = threading.Event()
        self.threads = [threading.Thread(target=self._watch, args=(kind,), daemon=True) for kind in ("Notebook", "Pod")]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def _mark(self, name: str, what: str) -> None:
        self.seen.setdefault(name, {}).setdefault(what, time.time())

    def _watch(self, kind: str) -> None:
        version = next(self.kube.pages(kind, NS, limit=1))["metadata"]["resourceVersion"]
        while not self.stop.is_set():
            for event, obj in self.kube.watch(kind, NS, resource_version=version, timeout=30,
                                              on_open=self.opened.set):
                version = obj["metadata"].get("resourceVersion") or version
                if event in ("DELETED", "SYNC"):
                    continue
                if kind == "Notebook":
                    self._mark(obj["metadata"]["name"], "notebook")
                    continue
                name = (obj["metadata"].get("labels") or {}).get("notebook-name")
                if not name:
                    continue
                self._mark(name, "pod")
                status = obj.get("status") or {}
                if any("running" in (c.get("state") or {}) for c in status.get("containerStatuses") or []):
                    self._mark(name, "started")
                if any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []):
                    self._mark(name, "ready")
                if self.stop.is_set():
                    return


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()

    from mlctl.kube.api import from_kubeconfig
    from mlctl.sandbox import core

    kubectl = str(core.binaries()["kubectl"])
    home = Path(tempfile.mkdtemp(prefix="mlctl-bench-notebook-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLCTL_") or k == "MLCTL_SANDBOX_DIR"}
    env.update(XDG_CONFIG_HOME=str(home / "config"), XDG_CACHE_HOME=str(home / "cache"),
               XDG_STATE_HOME=str(home / "state"), KUBECONFIG=str(home / "kubeconfig"))
    run([MLCTL, "sandbox", "login", "--admin"], env)
    run([MLCTL, "admin", "sync"], env)
    run([MLCTL, "sandbox", "login", "alice"], env)
    admin = from_kubeconfig(core.env(core.state_dir())["KUBECONFIG"], "sandbox-local")
    timeline = Timeline(admin)
    timeline.start()
    if not timeline.opened.wait(60):
        sys.exit("bench: could not watch the namespace")

    made: list[str] = []
    figures: dict[str, list[float]] = {"mlctl": [], "kubectl": [], "controller": [], "process": []}
    try:
        for i in range(args.runs):
            for tool in ("mlctl", "kubectl"):
                name = f"bn{tool[0]}{uuid.uuid4().hex[:6]}"
                made.append(name)
                started = time.perf_counter()
                if tool == "mlctl":
                    run([MLCTL, "notebook", "create", name, "--wait", "--timeout", str(args.timeout)], env)
                else:
                    objects = run([MLCTL, "notebook", "create", name, "--dry-run=client"], env).stdout
                    path = home / f"{name}.yaml"
                    path.write_text(objects)
                    run([kubectl, "--context", "mlctl-local", "create", "-f", str(path)], env)
                    run([kubectl, "--context", "mlctl-local", "wait", f"notebook/{name}",
                         "--for=jsonpath={.status.readyReplicas}=1", f"--timeout={int(args.timeout)}s"], env)
                figures[tool].append(time.perf_counter() - started)
                seen = timeline.seen.get(name, {})
                if tool == "mlctl" and {"notebook", "pod", "started", "ready"} <= set(seen):
                    figures["controller"].append(seen["pod"] - seen["notebook"])
                    figures["process"].append(seen["ready"] - seen["started"])
                print(f"run {i + 1} {tool:7} {figures[tool][-1]:6.1f} s", flush=True)
                run([MLCTL, "notebook", "delete", name, "--delete-volume", "--yes"], env, check=False)
    finally:
        timeline.stop.set()
        if figures["mlctl"]:
            m = statistics.median(figures["mlctl"])
            print(f"median of {len(figures['mlctl'])} runs")
            print(f"  mlctl notebook create --wait       {m:6.2f} s")
            if figures["kubectl"]:
                k = statistics.median(figures["kubectl"])
                print(f"  kubectl create -f + kubectl wait   {k:6.2f} s")
                print(f"  ratio mlctl / kubectl              {m / k:6.2f}x")
            if figures["controller"]:
                c, p = statistics.median(figures["controller"]), statistics.median(figures["process"])
                print(f"  controller share (Notebook created -> pod created)   {c:6.2f} s ({c / m:4.0%})")
                print(f"  process start share (pod started -> Ready)           {p:6.2f} s ({p / m:4.0%})")
            sys.stdout.flush()
        for name in made:  # anything a failed run left behind
            for kind, obj in (("Notebook", name), ("Secret", f"{name}-mlctl"),
                              ("PersistentVolumeClaim", f"{name}-workspace")):
                try:
                    if admin.find(kind, obj, NS) is not None:
                        admin.delete(kind, obj, NS)
                except Exception as e:  # noqa: BLE001 - the figures are out already
                    print(f"cleanup: {kind} {obj}: {e}", file=sys.stderr)
        admin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
