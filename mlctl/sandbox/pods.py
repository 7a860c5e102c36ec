"""Pods that really run: the sandbox's image table and the pod-runner component (docs/workloads.md).

A pod scheduled to a kwok node whose container image is one of IMAGES is not simulated by kwok (the stages
in kwok/stages.yaml skip images under PREFIX): the pod runner (podrunner.py, one process for both clusters)
runs it as a local process from the image's cached venv (images.py), on a loopback address of its own, and
owns its status. Every other pod is kwok's.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from mlctl.sandbox import images
from mlctl.sandbox.component import Component, Context
from mlctl.sandbox.procs import SandboxError, interpreter, wait_until

PREFIX = "mlctl.sandbox/"
PROCESS = "pod-runner"
#: how many real pod processes may run at once (both clusters together)
MAX_PODS_ENV = "MLCTL_SANDBOX_REAL_PODS"
DEFAULT_MAX_PODS = 4
KWOK_MODULE = "sigs.k8s.io/kwok"
LOGS_CRD = "logs.kwok.x-k8s.io"


@dataclass(frozen=True)
class Image:
    """An image name, the sandbox image (directory under assets/images/) it runs, and its default command
    (run in a working directory that holds the image's files, with the venv first on PATH)."""

    name: str
    folder: str
    entrypoint: tuple[str, ...]
    #: the image's python can import the installed mlctl (its mlctl.pth reads MLCTL_SANDBOX_SITE)
    mlctl: bool = False


IMAGES: dict[str, Image] = {i.name: i for i in (
    Image(f"{PREFIX}3dgan:1", "3dgan", ("python", "trainer.py")),
    Image(f"{PREFIX}kserve:1", "kserve", ("python", "server.py")),
    Image(f"{PREFIX}notebook:1", "notebook", ("python", "start.py"), mlctl=True),
)}
#: the environment variable the images' mlctl.pth reads: where the installed mlctl and its packages are
SITE_ENV = "MLCTL_SANDBOX_SITE"


def is_real(image: str) -> bool:
    """Whether a container image is one the sandbox runs (the kwok stages use the same prefix)."""
    return image.startswith(PREFIX)


def max_pods() -> int:
    raw = os.environ.get(MAX_PODS_ENV, "")
    try:
        value = int(raw) if raw else DEFAULT_MAX_PODS
    except ValueError:
        raise SandboxError(f"{MAX_PODS_ENV}={raw!r} is not a whole number") from None
    if value < 1:
        raise SandboxError(f"{MAX_PODS_ENV} must be at least 1, got {value}")
    return value


def logs_crd() -> dict:
    """kwok's Logs CRD, read from its module in the Go module cache (the kwok build downloaded it)."""
    import yaml

    from mlctl.sandbox import build

    path = build.module_dir("kwok", KWOK_MODULE) / "kustomize" / "crd" / "bases" / "kwok.x-k8s.io_logs.yaml"
    try:
        return yaml.safe_load(path.read_text())
    except OSError as e:
        raise SandboxError(f"kwok's Logs CRD is not at {path}: {e}") from e


def _ready_pid(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except FileNotFoundError:  # a runner starting over removes it
        return None


def mlctl_site() -> list[str]:
    """The directory holding the installed mlctl package, then the site-packages of the Python running it:
    what an image's python appends to sys.path to import mlctl (the image does not pin mlctl's version)."""
    import site
    import sys

    import mlctl

    paths = [str(Path(mlctl.__file__).resolve().parents[1])]
    for p in [*site.getsitepackages(), site.getusersitepackages()]:
        if p not in paths and Path(p).is_dir() and Path(p).resolve() != Path(sys.prefix).resolve():
            paths.append(p)
    return paths


def tools_dir(ctx: Context) -> Path:
    """A bin/ that real pods have on PATH: `mlctl` (the installed one, run by the Python that runs the
    sandbox) and the sandbox's `kubectl` from the build cache."""
    import shlex

    from mlctl.sandbox import core

    home = ctx.dir(PROCESS) / "bin"
    home.mkdir(parents=True, exist_ok=True)
    script = home / "mlctl"
    text = ("#!/bin/sh\n# the mlctl that runs the sandbox\n"
            f"exec {shlex.quote(interpreter())} -c 'import sys; from mlctl.main import main; main()' \"$@\"\n")
    if not script.exists() or script.read_text() != text:
        script.write_text(text)
        script.chmod(0o755)
    kubectl = home / "kubectl"
    target = core.binaries()["kubectl"]
    if kubectl.is_symlink() and kubectl.resolve() != target.resolve():
        kubectl.unlink()
    if not kubectl.is_symlink() and target.exists():
        kubectl.symlink_to(target)
    return home


def config(ctx: Context) -> dict:
    """What the runner process reads: clusters (kubeconfig contexts), images, the bound, the CA that the
    images trust, where claims' directories and the pods' tools live."""
    import os

    from mlctl.sandbox import core

    table = {}
    for image in IMAGES.values():
        python = images.ensure(image.folder)
        table[image.name] = {"python": str(python), "app": str(python.parents[2] / "app"),
                             "entrypoint": list(image.entrypoint),
                             "env": {SITE_ENV: os.pathsep.join(mlctl_site())} if image.mlctl else {}}
    return {"kubeconfig": str(ctx.kubeconfig), "clusters": {c: f"sandbox-{c}" for c in core.CLUSTERS},
            "images": table, "maxPods": max_pods(), "caFile": str(ctx.pki / "ca.crt"),
            "podsDir": str(ctx.root / "pods"), "volumesDir": str(ctx.root / "volumes"),
            "binDir": str(tools_dir(ctx))}


def info(root: Path) -> dict:
    """The runner's configuration as it was started (maxPods, images, podsDir), read from the state dir."""
    return json.loads((root / PROCESS / "config.json").read_text())


class PodRunner(Component):
    """One process running the pods of both clusters whose image is a sandbox image (podrunner.py)."""

    name = PROCESS

    def prepare(self, ctx: Context, log) -> None:
        for image in IMAGES.values():
            images.ensure(image.folder, Path(log.name) if hasattr(log, "name") else None)

    def manifests(self, ctx: Context, cluster: str) -> list[dict]:
        return [logs_crd()]

    def start(self, ctx: Context) -> dict:
        home = ctx.dir(PROCESS)
        cfg = config(ctx)
        path = home / "config.json"
        text = json.dumps(cfg, indent=2, sort_keys=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        for cluster in cfg["clusters"]:
            wait_until(lambda c=cluster: _established(ctx.kube(c)), 30, f"kwok's Logs CRD in cluster {cluster}")
        state = ctx.state
        argv = [interpreter(), "-m", "mlctl.sandbox.podrunner", f"--config={path}"]
        # its own code is part of its configuration: an upgraded mlctl restarts it
        from mlctl.kube import api
        from mlctl.sandbox import podrunner

        code = [Path(podrunner.__file__), Path(api.__file__)]
        action = state.ensure(PROCESS, argv, files=[path, ctx.kubeconfig, *code], cwd=home)
        ready = home / "ready"
        wait_until(lambda: state.is_running(PROCESS) and
                   _ready_pid(ready) == str(state.data["processes"][PROCESS]["pid"]),
                   60, "the pod runner to watch both clusters", state, PROCESS)
        proc = state.data["processes"][PROCESS]
        return {"pid": proc["pid"], "log": proc["log"], "action": action, "maxPods": cfg["maxPods"],
                "images": sorted(cfg["images"])}

    def processes(self, ctx: Context) -> list[str]:
        return [PROCESS]


def _established(kube) -> bool:
    crd = kube.find("CustomResourceDefinition", LOGS_CRD)
    return bool(crd) and any(c.get("type") == "Established" and c.get("status") == "True"
                             for c in (crd.get("status") or {}).get("conditions") or [])
