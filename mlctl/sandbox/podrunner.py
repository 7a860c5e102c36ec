"""The sandbox's pod runner: a kubelet for the pods whose image is one of the sandbox's own (pods.IMAGES).

    python -m mlctl.sandbox.podrunner --config <state>/pod-runner/config.json

One process for both clusters; a thread per cluster watches pods (mlctl.kube.api) and the main thread owns
every pod's process and status. The contract — what it does and what it leaves out — is docs/workloads.md.
In short: the pod's command/args (or the image's entrypoint) run in a working directory holding the image's
files, with the image's venv first on PATH, the pod's env (values, secret/configMap/field refs, envFrom,
$(VAR) expansion) and a loopback address of its own as pod IP; output goes to a CRI-format log file that
kwok serves through a Logs object; the exit code decides the phase; restartPolicy restarts in place; a
deleted pod's process gets SIGTERM, then SIGKILL after the grace period, and then the pod is removed.
At most maxPods processes run at once; the others stay Pending with an event saying why.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import datetime as dt
import ipaddress
import logging
import os
import queue
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("pod-runner")

COMPONENT = "mlctl-pod-runner"
FIELD_MANAGER = "mlctl-pod-runner"
# Pod IPs: one loopback address per pod, from 127.10.0.1 upwards (127.0.0.1 is every server of the sandbox).
IP_BASE = int(ipaddress.IPv4Address("127.10.0.1"))
IP_COUNT = 256 * 256 * 16
HOST_IP = "127.0.0.1"  # the kwok nodes' InternalIP
POLL = 0.2
PROBE_EVERY = 0.5
BACKOFF_MAX = 30.0
STOP_GRACE = 5.0  # when the runner itself stops
NICE = 10  # real pods yield the CPU to the sandbox's control plane
PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _listening_ips() -> set[str]:
    """The IPv4 addresses some process on this machine has a listening TCP socket on (/proc/net/tcp)."""
    out = set()
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A":  # TCP_LISTEN
                out.add(socket.inet_ntoa(bytes.fromhex(fields[1].split(":")[0])[::-1]))
    return out


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cri_time() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def is_real_pod(pod: dict, images: dict) -> bool:
    """Scheduled to a node, and a container's image is one of the sandbox's."""
    spec = pod.get("spec") or {}
    return bool(spec.get("nodeName")) and any(c.get("image") in images for c in spec.get("containers") or [])


# ---- environment -----------------------------------------------------------------------------------------

_VAR = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined names are replaced, undefined ones kept, $$ is a literal $."""
    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR.sub(sub, text)


class ConfigError(Exception):
    """The pod's env cannot be built yet (a missing Secret or key): CreateContainerConfigError."""

    reason = "CreateContainerConfigError"
    event = "Failed"


class MountError(ConfigError):
    """A volume cannot be set up yet (a claim that is missing or not bound): the pod waits, as a kubelet's
    does, in ContainerCreating with a FailedMount event."""

    reason = "ContainerCreating"
    event = "FailedMount"


def _field(pod: dict, path: str) -> str:
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {"metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
              "metadata.uid": meta.get("uid"), "spec.nodeName": spec.get("nodeName"),
              "spec.serviceAccountName": spec.get("serviceAccountName"), "status.hostIP": status.get("hostIP"),
              "status.podIP": status.get("podIP"),
              "status.podIPs": ",".join(p.get("ip", "") for p in status.get("podIPs") or [])}
    if path not in simple:
        raise ConfigError(f"fieldRef {path} is not supported by the sandbox")
    return str(simple[path] or "")


def _resource_field(container: dict, ref: dict) -> str:
    import math

    from mlctl.jobs.quantity import parse_quantity

    where, _, name = ref.get("resource", "").partition(".")
    value = ((container.get("resources") or {}).get(where) or {}).get(name)
    if value is None:
        return "0"
    divisor = parse_quantity(ref.get("divisor") or "1")
    return str(math.ceil(parse_quantity(value) / divisor))


def pod_env(pod: dict, container: dict, read, base: dict[str, str]) -> dict[str, str]:
    """The container's environment: base (the image's and the runner's), then envFrom, then env, each
    value expanded against what is defined before it. read(kind, name, namespace) returns the object's
    data (Secret values decoded) or None when it does not exist."""
    env = dict(base)
    namespace = pod["metadata"]["namespace"]

    def source(kind: str, name: str, optional: bool) -> dict[str, str] | None:
        data = read(kind, name, namespace)
        if data is None and not optional:
            raise ConfigError(f'{kind.lower()} "{name}" not found')
        return data

    for item in container.get("envFrom") or []:
        prefix = item.get("prefix") or ""
        for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
            if key in item:
                ref = item[key]
                data = source(kind, ref["name"], bool(ref.get("optional")))
                for k, v in (data or {}).items():
                    env[prefix + k] = v
    for item in container.get("env") or []:
        name = item["name"]
        if "valueFrom" not in item:
            env[name] = expand(str(item.get("value", "")), env)
            continue
        vf = item["valueFrom"]
        if "fieldRef" in vf:
            env[name] = _field(pod, vf["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in vf:
            env[name] = _resource_field(container, vf["resourceFieldRef"])
        else:
            kind, ref = ("Secret", vf["secretKeyRef"]) if "secretKeyRef" in vf else ("ConfigMap", vf["configMapKeyRef"])
            data = source(kind, ref["name"], bool(ref.get("optional")))
            if data is None:
                continue
            if ref["key"] not in data:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'couldn\'t find key {ref["key"]} in {kind} {namespace}/{ref["name"]}')
            env[name] = data[ref["key"]]
    return env


def memory_limit(container: dict) -> int | None:
    """limits.memory in bytes (becomes RLIMIT_AS), None without a limit."""
    from mlctl.jobs.quantity import parse_quantity

    value = ((container.get("resources") or {}).get("limits") or {}).get("memory")
    return int(parse_quantity(value)) if value is not None else None


# ---- volumes and the pod root ----------------------------------------------------------------------------

#: the volume types the runner gives real pods; a mount of any other type is left out (docs/workloads.md)
VOLUME_TYPES = ("persistentVolumeClaim", "secret", "configMap", "emptyDir", "hostPath")
SECRET_MODE = 0o600
CONFIG_MAP_MODE = 0o644


@dataclass(frozen=True)
class Mount:
    """One volumeMount of the container, resolved against the pod's volumes."""

    path: str  # mountPath, normalised ("/home/jovyan")
    volume: str
    kind: str  # one of VOLUME_TYPES
    source: dict  # the volume's entry for that type
    sub_path: str = ""
    read_only: bool = False


def plan_mounts(pod: dict, container: dict) -> tuple[list[Mount], list[str]]:
    """The container's mounts the runner supports, outermost first, and a note for each one it leaves out
    (a projected service-account token, hostPath, ...). A mount naming no volume is an error."""
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    mounts, skipped = [], []
    for vm in container.get("volumeMounts") or []:
        volume = volumes.get(vm.get("name"))
        if volume is None:
            raise ConfigError(f'volumeMount {vm.get("name")} names no volume of the pod')
        path = os.path.normpath(vm.get("mountPath") or "")
        if not path.startswith("/") or path == "/":
            raise ConfigError(f"mountPath {vm.get('mountPath')!r} must be an absolute path below /")
        kind = next((k for k in VOLUME_TYPES if k in volume), None)
        if kind is None:
            other = next((k for k in volume if k != "name"), "unknown")
            skipped.append(f"{vm['name']} ({other}) at {path}")
            continue
        sub = os.path.normpath(vm.get("subPath") or ".")
        if sub.startswith("/") or sub == ".." or sub.startswith("../"):
            raise ConfigError(f"subPath {vm.get('subPath')!r} must be a relative path inside the volume")
        mounts.append(Mount(path, vm["name"], kind, volume[kind] or {}, "" if sub == "." else sub,
                            bool(vm.get("readOnly")) or kind in ("secret", "configMap")))
    mounts.sort(key=lambda m: (m.path.count("/"), m.path))
    return mounts, skipped


def _under(path: str, mount: str) -> bool:
    return path == mount or path.startswith(mount.rstrip("/") + "/")


def rewrite(value: str, mount_paths: list[str], root: str) -> str:
    """A value that names a path at or under one of mount_paths, moved under the pod root: the whole value
    (`/home/jovyan/x`), each element of a `:`-separated list of absolute paths (`/a:/b`), or the value of
    an `--option=/path` / `NAME=/path` argument. Anything else is returned unchanged."""
    if not mount_paths or "/" not in value:
        return value

    def one(path: str) -> str:
        if path.startswith("/") and any(_under(os.path.normpath(path), m) for m in mount_paths):
            return root.rstrip("/") + path
        return path

    head, eq, tail = value.partition("=")
    if eq and not head.startswith("/") and tail.startswith("/") and re.fullmatch(r"-{0,2}[\w.-]+", head):
        return head + "=" + rewrite(tail, mount_paths, root)
    if value.startswith("/") and ":" in value:
        return ":".join(one(p) for p in value.split(":"))
    return one(value)


def volume_files(kind: str, source: dict, data: dict[str, bytes] | None) -> dict[str, tuple[bytes, int]]:
    """The files of a secret or configMap volume: {relative path: (content, mode)}. data is the object's
    decoded data (None: it does not exist). items select and rename keys; defaultMode and an item's mode
    set the mode (secrets 0600 by default, configMaps 0644)."""
    name = source.get("secretName") if kind == "secret" else source.get("name")
    label = "secret" if kind == "secret" else "configmap"
    if data is None:
        if source.get("optional"):
            return {}
        raise ConfigError(f'{label} "{name}" not found')
    default = source.get("defaultMode")
    mode = int(default) if default is not None else (SECRET_MODE if kind == "secret" else CONFIG_MAP_MODE)
    items = source.get("items")
    if not items:
        return {key: (value, mode) for key, value in data.items()}
    files = {}
    for item in items:
        if item["key"] not in data:
            if source.get("optional"):
                continue
            raise ConfigError(f'couldn\'t find key {item["key"]} in {label} "{name}"')
        path = os.path.normpath(item.get("path") or item["key"])
        if path.startswith("/") or path.startswith(".."):
            raise ConfigError(f"item path {item.get('path')!r} must stay inside the volume")
        files[path] = (data[item["key"]], int(item["mode"]) if item.get("mode") is not None else mode)
    return files


def claim_dir(volumes_dir: Path, cluster: str, namespace: str, claim: str) -> Path:
    """Where a persistentVolumeClaim's files live: they outlive the pods that mount it, not the claim."""
    return volumes_dir / cluster / namespace / claim


# ---- one pod ---------------------------------------------------------------------------------------------

@dataclass
class Pod:
    cluster: str
    namespace: str
    name: str
    uid: str
    obj: dict
    seq: int = 0
    ip: str | None = None
    proc: subprocess.Popen | None = None
    pumps: list = field(default_factory=list)
    restarts: int = 0
    started_at: str | None = None
    start_time: str | None = None  # the pod's (first start)
    ready: bool = False
    probe_after: float = 0.0
    next_start: float = 0.0  # back-off
    last_state: dict = field(default_factory=dict)
    phase: str = "Pending"  # Pending | Running | BackOff | Done
    kill_at: float | None = None
    killed: bool = False
    deleted: bool = False
    waiting_reason: str | None = None
    transitions: dict = field(default_factory=dict)
    dir: Path | None = None
    unsent: dict | None = None  # a status the API server could not take yet
    retry_at: float = 0.0
    links: list = field(default_factory=list)  # mount points the runner made, some inside other volumes

    @property
    def key(self) -> tuple[str, str, str]:
        return self.cluster, self.namespace, self.name

    @property
    def ref(self) -> str:
        return f"{self.cluster}:{self.namespace}/{self.name}"

    @property
    def container(self) -> dict:
        return self.obj["spec"]["containers"][0]

    @property
    def terminating(self) -> bool:
        return bool(self.obj["metadata"].get("deletionTimestamp"))

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def holds_slot(self) -> bool:
        return self.phase in ("Running", "BackOff") or self.alive


class Runner:
    def __init__(self, cfg: dict):
        from mlctl.kube.api import from_kubeconfig

        self.cfg = cfg
        self.images: dict = cfg["images"]
        self.max_pods = int(cfg["maxPods"])
        self.pods_dir = Path(cfg["podsDir"])
        self.volumes_dir = Path(cfg.get("volumesDir") or self.pods_dir.parent / "volumes")
        self.can_mount = _can_mount()
        if not self.can_mount:
            log.warning("no private mount namespaces here: readOnly volume mounts stay writable")
        self.kubes = {c: from_kubeconfig(cfg["kubeconfig"], ctx, cluster=c) for c, ctx in cfg["clusters"].items()}
        self.events: queue.Queue = queue.Queue()
        self.pods: dict[tuple[str, str, str], Pod] = {}
        self.stopping = threading.Event()
        self.opened: set[str] = set()
        self.seq = 0
        # each sandbox on the machine starts at a block of its own, so two sandboxes' pods rarely meet
        self.next_ip = (zlib.crc32(str(self.pods_dir).encode()) % (IP_COUNT // 256)) * 256

    # ---- watching ----------------------------------------------------------------------------------------

    def _watch(self, cluster: str, kind: str = "Pod") -> None:
        kube = self.kubes[cluster]
        tag = "" if kind == "Pod" else "CLAIM-"

        def opened() -> None:
            self.events.put((tag + "OPENED", cluster, None))

        while not self.stopping.is_set():
            try:
                for typ, obj in kube.watch(kind, on_open=opened):
                    if self.stopping.is_set():
                        return
                    self.events.put((tag + typ, cluster, obj))
            except Exception as e:  # noqa: BLE001 - a lost API server: keep trying until stopped
                log.warning("watch of %s on %s failed (%s); retrying", kind, cluster, e)
                self.stopping.wait(2)

    # ---- the loop ----------------------------------------------------------------------------------------

    def run(self, ready_file: Path) -> None:
        for cluster in self.kubes:
            threading.Thread(target=self._watch, args=(cluster,), daemon=True, name=f"watch-{cluster}").start()
            threading.Thread(target=self._watch, args=(cluster, "PersistentVolumeClaim"), daemon=True,
                             name=f"watch-claims-{cluster}").start()
        while not self.stopping.is_set():
            try:
                typ, cluster, obj = self.events.get(timeout=POLL)
                self._on_event(typ, cluster, obj)
                while True:
                    typ, cluster, obj = self.events.get_nowait()
                    self._on_event(typ, cluster, obj)
            except queue.Empty:
                pass
            if len(self.opened) == len(self.kubes) and not ready_file.exists():
                ready_file.write_text(str(os.getpid()))
            for pod in sorted(self.pods.values(), key=lambda p: p.seq):
                try:
                    self._step(pod)
                except Exception as e:  # noqa: BLE001 - one pod's trouble must not stop the others
                    log.warning("%s: %s", pod.ref, e)
        self._shutdown()

    def _on_event(self, typ: str, cluster: str, obj: dict | None) -> None:
        if typ == "OPENED":
            self.opened.add(cluster)
            return
        if typ.startswith("CLAIM-"):
            self._on_claim(typ[6:], cluster, obj)
            return
        meta = obj.get("metadata") or {}
        key = (cluster, meta.get("namespace"), meta.get("name"))
        pod = self.pods.get(key)
        if pod and pod.uid != meta.get("uid"):  # the same name again: the old pod is gone
            self._forget(pod)
            pod = None
        if typ == "DELETED":
            if pod:
                self._forget(pod)
            return
        if not is_real_pod(obj, self.images):
            return
        if pod is None:
            self.seq += 1
            pod = Pod(cluster, key[1], key[2], meta.get("uid"), obj, seq=self.seq)
            pod.dir = self.pods_dir / cluster / key[1] / f"{key[2]}-{pod.uid[:8]}"
            self.pods[key] = pod
            self._adopt(pod)
        else:
            pod.obj = obj

    def _adopt(self, pod: Pod) -> None:
        """A pod seen for the first time: new, already finished, or one a previous runner ran."""
        status = pod.obj.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed"):
            pod.phase = "Done"
            return
        ip = status.get("podIP")
        if ip and self._ours(ip):
            pod.ip = ip
            cs = (status.get("containerStatuses") or [{}])[0]
            pod.restarts = int(cs.get("restartCount") or 0)
            pod.start_time = status.get("startTime")
            if "running" in (cs.get("state") or {}) or "waiting" in (cs.get("state") or {}):
                # the process died with the previous runner: an exit like any other (killed)
                pod.started_at = ((cs.get("state") or {}).get("running") or {}).get("startedAt") or now_iso()
                pod.phase = "Running"
                self._exited(pod, 137, "the sandbox's pod runner restarted")

    # ---- claims' directories -----------------------------------------------------------------------------

    def _on_claim(self, typ: str, cluster: str, obj: dict | None) -> None:
        """A deleted claim takes its directory with it; on (re)opening the watch, directories of claims
        that went away meanwhile (or were recreated under the same name) are removed."""
        if typ == "OPENED":
            self._prune_claims(cluster)
            return
        if typ != "DELETED":
            return
        meta = obj.get("metadata") or {}
        self._remove_claim(cluster, meta.get("namespace"), meta.get("name"), meta.get("uid"))

    def _uid_file(self, cluster: str, namespace: str, claim: str) -> Path:
        return self.volumes_dir / cluster / namespace / f".{claim}.uid"

    def _remove_claim(self, cluster: str, namespace: str, claim: str, uid: str | None) -> None:
        import shutil

        marker = self._uid_file(cluster, namespace, claim)
        recorded = marker.read_text().strip() if marker.exists() else None
        if uid is not None and recorded is not None and recorded != uid:
            return  # a newer claim of the same name owns the directory now
        path = claim_dir(self.volumes_dir, cluster, namespace, claim)
        if path.exists() or marker.exists():
            shutil.rmtree(path, ignore_errors=True)
            marker.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # the namespace's directory, once it holds no claim
                path.parent.rmdir()
            log.info("%s:%s/%s: claim deleted, its directory removed", cluster, namespace, claim)

    def _prune_claims(self, cluster: str) -> None:
        base = self.volumes_dir / cluster
        if not base.is_dir():
            return
        try:
            live = {(c["metadata"]["namespace"], c["metadata"]["name"]): c["metadata"].get("uid")
                    for c in self.kubes[cluster].list("PersistentVolumeClaim")}
        except Exception as e:  # noqa: BLE001 - pruning waits for the next reconnect
            log.warning("cannot list claims of %s: %s", cluster, e)
            return
        for ns_dir in base.iterdir():
            for marker in ns_dir.glob(".*.uid"):
                claim = marker.name[1:-4]
                uid = live.get((ns_dir.name, claim))
                if uid is None or uid != marker.read_text().strip():
                    self._remove_claim(cluster, ns_dir.name, claim, None)

    # ---- the pod root ------------------------------------------------------------------------------------

    def _read_bytes(self, cluster: str, kind: str, name: str, namespace: str) -> dict[str, bytes] | None:
        obj = self.kubes[cluster].find(kind, name, namespace)
        if obj is None:
            return None
        if kind == "Secret":
            return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        return {**{k: str(v).encode() for k, v in (obj.get("data") or {}).items()},
                **{k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()}}

    def _mount(self, pod: Pod, mounts: list[Mount]) -> tuple[list[str], list[str]]:
        """Lay out the pod root: each mountPath a symlink to the volume's directory (or its subPath).
        Returns the real paths to make read-only for the process, and the hostPath mounts left out because
        this machine does not have the path."""
        import shutil

        root = pod.dir / "root"
        root.mkdir(parents=True, exist_ok=True)
        read_only, missing = [], []
        for m in mounts:
            if m.kind == "persistentVolumeClaim":
                claim = m.source.get("claimName") or ""
                obj = self.kubes[pod.cluster].find("PersistentVolumeClaim", claim, pod.namespace)
                if obj is None:
                    raise MountError(f'persistentvolumeclaim "{claim}" not found')
                if (obj.get("status") or {}).get("phase") != "Bound":
                    raise MountError(f'persistentvolumeclaim "{claim}" is not bound')
                source = claim_dir(self.volumes_dir, pod.cluster, pod.namespace, claim)
                source.mkdir(parents=True, exist_ok=True)
                self._uid_file(pod.cluster, pod.namespace, claim).write_text(obj["metadata"].get("uid", "") + "\n")
            elif m.kind == "emptyDir":
                source = pod.dir / "volumes" / m.volume
                source.mkdir(parents=True, exist_ok=True)
            elif m.kind == "hostPath":  # a site's shared file system (data mounts): this machine's path
                source = Path(os.path.normpath(m.source.get("path") or "/"))
                if not source.exists():
                    # the sandbox creates nothing outside its state dir: the mount is left out
                    missing.append(f"{m.volume} (hostPath {source}) at {m.path}")
                    continue
            else:
                kind = "Secret" if m.kind == "secret" else "ConfigMap"
                name = m.source.get("secretName") if m.kind == "secret" else m.source.get("name")
                files = volume_files(m.kind, m.source, self._read_bytes(pod.cluster, kind, name, pod.namespace))
                source = pod.dir / "volumes" / m.volume
                if source.exists():
                    _make_writable(source)
                    shutil.rmtree(source)
                source.mkdir(parents=True, mode=0o755)
                for rel, (content, mode) in sorted(files.items()):
                    path = source / rel
                    path.parent.mkdir(parents=True, exist_ok=True)
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode & 0o777)
                    with os.fdopen(fd, "wb") as f:
                        f.write(content)
                    os.chmod(path, mode & 0o777)
            target = source / m.sub_path if m.sub_path else source
            if m.sub_path and not target.exists():
                if m.kind in ("secret", "configMap"):
                    raise ConfigError(f"subPath {m.sub_path} is not in volume {m.volume}")
                target.mkdir(parents=True, exist_ok=True)
            link = root / m.path.lstrip("/")
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink():
                link.unlink()
            elif link.is_dir() and not any(link.iterdir()):
                link.rmdir()
            elif link.exists():
                raise MountError(f"mount point {m.path} is already taken by a file of another volume")
            link.symlink_to(target)
            if link not in pod.links:
                pod.links.append(link)
            if m.read_only:
                read_only.append(str(target.resolve()))
        return read_only, missing

    def _unmount(self, pod: Pod) -> None:
        """After the pod: mount points made inside other volumes go, and so do the pod's own volumes
        (emptyDir, secret and configMap files); claims' directories stay."""
        import shutil

        for link in reversed(pod.links):
            with contextlib.suppress(OSError):
                if link.is_symlink():
                    link.unlink()
        pod.links = []
        if pod.dir is not None:
            for sub in ("volumes", "root"):
                if (pod.dir / sub).exists():
                    _make_writable(pod.dir / sub)
                    shutil.rmtree(pod.dir / sub, ignore_errors=True)

    def _ours(self, ip: str) -> bool:
        try:
            n = int(ipaddress.IPv4Address(ip))
        except ValueError:
            return False
        return IP_BASE <= n < IP_BASE + IP_COUNT

    def _allocate_ip(self) -> str:
        # also skip addresses something already listens on (another sandbox's pod)
        used = {p.ip for p in self.pods.values() if p.ip} | _listening_ips()
        for _ in range(IP_COUNT):
            ip = str(ipaddress.IPv4Address(IP_BASE + self.next_ip))
            self.next_ip = (self.next_ip + 1) % IP_COUNT
            if ip not in used:
                return ip
        raise RuntimeError("no free loopback address for a pod")

    def _step(self, pod: Pod) -> None:
        if pod.deleted:
            return
        if pod.unsent is not None and time.monotonic() >= pod.retry_at:
            self._patch(pod, pod.unsent)
        if pod.terminating:
            self._terminate(pod)
            return
        if pod.phase == "Done":
            return
        if pod.phase == "Pending":
            self._maybe_start(pod)
        elif pod.phase == "BackOff":
            if time.monotonic() >= pod.next_start:
                self._start(pod)
        elif pod.phase == "Running":
            code = pod.proc.poll() if pod.proc else None
            if code is not None:
                self._exited(pod, code if code >= 0 else 128 - code, None)
            elif not pod.ready and time.monotonic() >= pod.probe_after and self._probe(pod):
                pod.ready = True
                log.info("%s: ready (readiness probe passed)", pod.ref)
                self._status(pod)

    # ---- starting ----------------------------------------------------------------------------------------

    def _maybe_start(self, pod: Pod) -> None:
        spec = pod.obj["spec"]
        if len(spec.get("containers") or []) != 1 or spec.get("initContainers"):
            pod.phase = "Done"
            message = "the sandbox runs pods of exactly one container and no init containers"
            self._patch(pod, {"phase": "Failed", "reason": "Unsupported", "message": message})
            self._event(pod, "Unsupported", message, "Warning")
            return
        if pod.container.get("image") not in self.images:
            pod.phase = "Done"
            message = f"image {pod.container.get('image')} is not a sandbox image"
            self._patch(pod, {"phase": "Failed", "reason": "Unsupported", "message": message})
            return
        running = sum(1 for p in self.pods.values() if p is not pod and p.holds_slot())
        if running >= self.max_pods:
            if pod.waiting_reason != "RealPodLimit":
                pod.waiting_reason = "RealPodLimit"
                message = (f"{running} of at most {self.max_pods} real pods of the sandbox are running; this pod "
                           "starts when one ends (MLCTL_SANDBOX_REAL_PODS)")
                self._event(pod, "RealPodLimit", message, "Warning")
                self._status(pod, waiting=("RealPodLimit", message))
            return
        if time.monotonic() < pod.next_start:
            return
        self._start(pod)

    def _read(self, cluster: str):
        def read(kind: str, name: str, namespace: str) -> dict | None:
            obj = self.kubes[cluster].find(kind, name, namespace)
            if obj is None:
                return None
            data = dict(obj.get("data") or {})
            if kind == "Secret":
                return {k: base64.b64decode(v).decode(errors="replace") for k, v in data.items()}
            return {**data, **{k: base64.b64decode(v).decode(errors="replace")
                               for k, v in (obj.get("binaryData") or {}).items()}}
        return read

    def _start(self, pod: Pod) -> None:
        image = self.images[pod.container["image"]]
        if pod.ip is None:
            pod.ip = (pod.obj.get("status") or {}).get("podIP") if self._ours(
                (pod.obj.get("status") or {}).get("podIP") or "") else self._allocate_ip()
        work = pod.dir / "work"
        work.mkdir(parents=True, exist_ok=True)
        (pod.dir / "tmp").mkdir(exist_ok=True)
        app = Path(image["app"])
        for item in app.iterdir():  # the image's files, as its WORKDIR would hold them
            link = work / item.name
            if not link.exists() and not link.is_symlink():
                link.symlink_to(item)
        base = {
            "PATH": f"{Path(image['python']).parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(work), "TMPDIR": str(pod.dir / "tmp"), "HOSTNAME": pod.name, "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1", "POD_IP": pod.ip, "POD_NAME": pod.name, "POD_NAMESPACE": pod.namespace,
            # the images trust the sandbox's CA as a site's images trust the site's CA
            "SSL_CERT_FILE": self.cfg["caFile"], "AWS_CA_BUNDLE": self.cfg["caFile"],
            "REQUESTS_CA_BUNDLE": self.cfg["caFile"],
        }
        if self.cfg.get("binDir"):  # mlctl and kubectl, as the platform's images carry them
            base["PATH"] = base["PATH"].replace(":", f":{self.cfg['binDir']}:", 1)
        base.update(image.get("env") or {})
        status = dict(pod.obj.get("status") or {})
        status.update(podIP=pod.ip, podIPs=[{"ip": pod.ip}], hostIP=HOST_IP)
        try:
            mounts, skipped = plan_mounts(pod.obj, pod.container)
            read_only, missing = self._mount(pod, mounts)
            env = pod_env({**pod.obj, "status": status}, pod.container, self._read(pod.cluster), base)
        except ConfigError as e:
            if pod.waiting_reason != e.reason:
                pod.waiting_reason = e.reason
                self._event(pod, e.event, f"Error: {e}" if e.event == "Failed" else str(e), "Warning")
                self._status(pod, waiting=(e.reason, str(e)))
            pod.next_start = time.monotonic() + 2
            pod.phase = "Pending" if pod.phase == "Pending" else "BackOff"
            return
        if skipped and not pod.restarts:
            log.info("%s: volumes left out (not supported by the sandbox): %s", pod.ref, ", ".join(skipped))
        if missing and not pod.restarts:
            message = f"left out, not on this machine: {', '.join(missing)}"
            log.info("%s: %s", pod.ref, message)
            self._event(pod, "HostPathMissing", message, "Warning")
        paths, root = [m.path for m in mounts], str(pod.dir / "root")
        env = {k: rewrite(v, paths, root) for k, v in env.items()}
        working_dir = pod.container.get("workingDir")
        if working_dir and any(_under(os.path.normpath(working_dir), p) for p in paths):
            work = Path(rewrite(os.path.normpath(working_dir), paths, root))
            work.mkdir(parents=True, exist_ok=True)
        # the image's own entrypoint names its program in the image's directory, wherever workingDir is
        command = pod.container.get("command") or [str(app / a) if (app / a).is_file() else a
                                                   for a in image["entrypoint"]]
        args = pod.container.get("args") or []
        argv = [rewrite(expand(a, env), paths, root) for a in [*command, *args]]
        logs = pod.dir / "logs"
        logs.mkdir(exist_ok=True)
        name = pod.container["name"]
        current = logs / f"{name}-{pod.restarts}.log"
        self._logs_object(pod, current, logs / f"{name}-{pod.restarts - 1}.log" if pod.restarts else None)
        out = open(current, "ab")  # noqa: SIM115 - closed by the pumps when the process ends
        limit = memory_limit(pod.container)
        try:
            proc = subprocess.Popen(argv, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True,
                                    preexec_fn=lambda: _in_child(limit, read_only if self.can_mount else []))
        except (OSError, subprocess.SubprocessError) as e:
            out.close()
            message = f"cannot run {argv[0]}: {getattr(e, 'strerror', None) or e}"
            self._event(pod, "Failed", message, "Warning")
            pod.started_at = now_iso()
            pod.phase = "Running"
            self._exited(pod, 128, message)
            return
        lock = threading.Lock()
        pod.pumps = [threading.Thread(target=_pump, args=(s, n, out, lock), daemon=True)
                     for s, n in ((proc.stdout, "stdout"), (proc.stderr, "stderr"))]
        for t in pod.pumps:
            t.start()
        threading.Thread(target=_close_after, args=(pod.pumps, out), daemon=True).start()
        pod.proc, pod.phase, pod.ready, pod.waiting_reason = proc, "Running", False, None
        pod.started_at = now_iso()
        pod.start_time = pod.start_time or pod.started_at
        probe = pod.container.get("readinessProbe") or {}
        pod.probe_after = time.monotonic() + float(probe.get("initialDelaySeconds") or 0)
        if not (probe.get("httpGet") or probe.get("tcpSocket")):
            pod.ready = True  # no probe the sandbox can run: ready once started
        log.info("%s: started pid %d on %s (restart %d)", pod.ref, proc.pid, pod.ip, pod.restarts)
        self._status(pod)
        self._event(pod, "Started", f"Started container {name} as process {proc.pid} on {pod.ip}", "Normal")

    def _logs_object(self, pod: Pod, current: Path, previous: Path | None) -> None:
        """kwok's Logs object for the pod: kubectl logs (and --previous) read these files."""
        entry = {"containers": [pod.container["name"]], "logsFile": str(current), "follow": True}
        if previous is not None:
            entry["previousLogsFile"] = str(previous)
        self.kubes[pod.cluster].apply({
            "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Logs",
            "metadata": {"name": pod.name, "namespace": pod.namespace,
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": pod.name,
                                              "uid": pod.uid}]},
            "spec": {"logs": [entry]},
        }, FIELD_MANAGER, force=True)

    # ---- readiness ---------------------------------------------------------------------------------------

    def _probe(self, pod: Pod) -> bool:
        pod.probe_after = time.monotonic() + PROBE_EVERY
        probe = pod.container.get("readinessProbe") or {}
        ports = {p.get("name"): p.get("containerPort") for p in pod.container.get("ports") or []}

        def port(value) -> int:
            return int(ports.get(value, value)) if isinstance(value, str) and not value.isdigit() else int(value)

        try:
            if probe.get("tcpSocket"):
                with socket.create_connection((pod.ip, port(probe["tcpSocket"]["port"])), timeout=1):
                    return True
            get = probe["httpGet"]
            import http.client

            host = get.get("host") or pod.ip
            cls = http.client.HTTPSConnection if get.get("scheme") == "HTTPS" else http.client.HTTPConnection
            kwargs = {"context": _insecure()} if cls is http.client.HTTPSConnection else {}
            conn = cls(host, port(get["port"]), timeout=1, **kwargs)
            try:
                conn.request("GET", get.get("path") or "/",
                             headers={h["name"]: h["value"] for h in get.get("httpHeaders") or []})
                return 200 <= conn.getresponse().status < 400
            finally:
                conn.close()
        except (OSError, ValueError, KeyError):
            return False

    # ---- exits, restarts, deletion -----------------------------------------------------------------------

    def _exited(self, pod: Pod, code: int, message: str | None) -> None:
        for t in pod.pumps:
            t.join(timeout=2)
        pod.pumps = []
        pid = pod.proc.pid if pod.proc else None
        pod.proc = None
        reason = "Completed" if code == 0 else "Error"
        terminated = {"exitCode": code, "reason": reason, "startedAt": pod.started_at, "finishedAt": now_iso()}
        if message:
            terminated["message"] = message
        log.info("%s: process %s exited %d", pod.ref, pid, code)
        policy = pod.obj["spec"].get("restartPolicy") or "Always"
        pod.ready = False
        if policy == "Always" or (policy == "OnFailure" and code != 0):
            pod.restarts += 1
            pod.last_state = {"terminated": terminated}
            delay = min(BACKOFF_MAX, 2.0 ** (pod.restarts - 1))
            pod.next_start = time.monotonic() + delay
            pod.phase = "BackOff"
            # until the next start, `logs --previous` (and `logs`) show the run that just ended
            ended = pod.dir / "logs" / f"{pod.container['name']}-{pod.restarts - 1}.log"
            self._logs_object(pod, ended, ended)
            message = f"back-off {delay:.0f}s restarting failed container={pod.container['name']} pod={pod.name}"
            self._status(pod, waiting=("CrashLoopBackOff", message) if pod.restarts > 1 else
                         ("ContainerCreating", None))
            self._event(pod, "BackOff" if pod.restarts > 1 else "Restarting",
                        f"container exited {code}; restarting in {delay:.0f} s (restartPolicy {policy})", "Normal")
        else:
            pod.phase = "Done"
            self._status(pod, terminated=terminated)

    def _terminate(self, pod: Pod) -> None:
        """The pod is being deleted: SIGTERM, SIGKILL after its grace period, then remove it."""
        if pod.alive:
            if pod.kill_at is None:
                grace = pod.obj["metadata"].get("deletionGracePeriodSeconds")
                if grace is None:
                    grace = pod.obj["spec"].get("terminationGracePeriodSeconds", 30)
                pod.kill_at = time.monotonic() + float(grace)
                self._event(pod, "Killing", f"Stopping container {pod.container['name']}", "Normal")
                _signal(pod.proc, signal.SIGTERM)
            elif time.monotonic() >= pod.kill_at and not pod.killed:
                pod.killed = True
                _signal(pod.proc, signal.SIGKILL)
            return
        if pod.proc is not None:
            pod.proc.wait()
            for t in pod.pumps:
                t.join(timeout=2)
            pod.proc = None
        from mlctl.errors import NotFound

        self._unmount(pod)
        with contextlib.suppress(NotFound):
            self.kubes[pod.cluster].delete("Pod", pod.name, pod.namespace, grace_seconds=0)
        pod.deleted = True
        pod.phase = "Done"

    def _forget(self, pod: Pod) -> None:
        if pod.alive:
            _signal(pod.proc, signal.SIGKILL)
            pod.proc.wait()
        self._unmount(pod)
        self.pods.pop(pod.key, None)

    def _shutdown(self) -> None:
        alive = [p for p in self.pods.values() if p.alive]
        for p in alive:
            _signal(p.proc, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for p in alive:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            if p.proc.poll() is None:
                _signal(p.proc, signal.SIGKILL)
                p.proc.wait()
        for kube in self.kubes.values():
            kube.close()

    # ---- status and events -------------------------------------------------------------------------------

    def _condition(self, pod: Pod, kind: str, ok: bool, reason: str | None = None) -> dict:
        value = "True" if ok else "False"
        old = pod.transitions.get(kind)
        if not old or old[0] != value:
            pod.transitions[kind] = (value, now_iso())
        cond = {"type": kind, "status": value, "lastTransitionTime": pod.transitions[kind][1]}
        if reason:
            cond["reason"] = reason
        return cond

    def _status(self, pod: Pod, *, waiting: tuple[str, str | None] | None = None,
                terminated: dict | None = None) -> None:
        c = pod.container
        started = pod.phase == "Running" and pod.proc is not None
        if terminated:
            state = {"terminated": terminated}
        elif started:
            state = {"running": {"startedAt": pod.started_at}}
        else:
            reason, message = waiting or ("ContainerCreating", None)
            state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
        cs = {"name": c["name"], "image": c["image"], "imageID": f"{c['image']}@sandbox", "ready": pod.ready,
              "started": started, "restartCount": pod.restarts, "state": state}
        if started:
            cs["containerID"] = f"mlctl://{pod.proc.pid}"
        if pod.last_state:
            cs["lastState"] = pod.last_state
        done = terminated is not None
        phase = ("Succeeded" if terminated["exitCode"] == 0 else "Failed") if done else (
            "Running" if pod.start_time and (started or pod.restarts) else "Pending")
        scheduled = [x for x in (pod.obj.get("status") or {}).get("conditions") or [] if x.get("type") == "PodScheduled"]
        conditions = [*scheduled,
                      self._condition(pod, "Initialized", True),
                      self._condition(pod, "PodReadyToStartContainers", pod.ip is not None and not done),
                      self._condition(pod, "ContainersReady", pod.ready, None if pod.ready else
                                      ("PodCompleted" if done else "ContainersNotReady")),
                      self._condition(pod, "Ready", pod.ready, None if pod.ready else
                                      ("PodCompleted" if done else "ContainersNotReady"))]
        status = {"phase": phase, "hostIP": HOST_IP, "hostIPs": [{"ip": HOST_IP}], "conditions": conditions,
                  "containerStatuses": [cs], "qosClass": (pod.obj.get("status") or {}).get("qosClass")}
        if pod.ip:
            status.update(podIP=pod.ip, podIPs=[{"ip": pod.ip}])
        if pod.start_time:
            status["startTime"] = pod.start_time
        self._patch(pod, status)

    def _patch(self, pod: Pod, status: dict) -> None:
        """Write the pod's status; one the API server could not take (it restarts) is retried by _step."""
        from mlctl.errors import MlctlError, NotFound, Unavailable

        try:
            pod.obj = self.kubes[pod.cluster].patch("Pod", pod.name, {"status": status}, pod.namespace,
                                                    sub="status", manager=FIELD_MANAGER)
            pod.unsent = None
        except NotFound:
            pod.unsent = None
        except Unavailable as e:
            log.warning("%s: status update failed, will retry: %s", pod.ref, e)
            pod.unsent, pod.retry_at = status, time.monotonic() + 2
        except MlctlError as e:
            log.warning("%s: status update refused: %s", pod.ref, e)
            pod.unsent = None

    def _event(self, pod: Pod, reason: str, message: str, type_: str) -> None:
        from mlctl.errors import MlctlError

        stamp = now_iso()
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{pod.name}.{uuid.uuid4().hex[:16]}", "namespace": pod.namespace},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": pod.name, "namespace": pod.namespace,
                               "uid": pod.uid, "fieldPath": f"spec.containers{{{pod.container['name']}}}"},
            "reason": reason, "message": message, "type": type_, "count": 1,
            "firstTimestamp": stamp, "lastTimestamp": stamp,
            "source": {"component": COMPONENT, "host": pod.obj["spec"].get("nodeName", "")},
            "reportingComponent": COMPONENT, "reportingInstance": socket.gethostname(),
        }
        try:
            self.kubes[pod.cluster].create(event)
        except MlctlError as e:
            log.warning("%s: event refused: %s", pod.ref, e)


# ---- processes -------------------------------------------------------------------------------------------

CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18


def _read_only_mounts(paths: list[str]) -> None:
    """In a mount namespace of the process's own, bind each path onto itself read-only: the process (even
    as root) cannot write there, while the pods that mount the volume writable still can."""
    if _LIBC.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    if _LIBC.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), "mount --make-rprivate /")
    for path in paths:
        p = path.encode()
        if _LIBC.mount(p, p, None, MS_BIND | MS_REC, None) != 0 or \
                _LIBC.mount(b"none", p, None, MS_REMOUNT | MS_BIND | MS_RDONLY, None) != 0:
            raise OSError(ctypes.get_errno(), f"read-only bind mount of {path}")


def _can_mount() -> bool:
    """Whether this process may make private mount namespaces (root with CAP_SYS_ADMIN): tried in a child."""
    if _LIBC is None:
        return False
    pid = os.fork()
    if pid == 0:
        try:
            ok = _LIBC.unshare(CLONE_NEWNS) == 0 and _LIBC.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) == 0
            os._exit(0 if ok else 1)
        finally:
            os._exit(1)
    return os.waitpid(pid, 0)[1] == 0


def _make_writable(path: Path) -> None:
    for p in [path, *path.rglob("*")]:
        with contextlib.suppress(OSError):
            if p.is_dir() and not p.is_symlink():
                p.chmod(0o755)


def _in_child(memory: int | None, read_only: list[str] | tuple = ()) -> None:
    """In the forked child before exec: die with the runner, read-only mounts, the memory limit, a lower
    priority."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if read_only:
        _read_only_mounts(list(read_only))
    if memory:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    os.nice(NICE)


def _signal(proc: subprocess.Popen, sig: int) -> None:
    """The process and whatever it started (its own session and group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _pump(stream, name: str, out, lock: threading.Lock) -> None:
    """Copy a stream into the CRI-format log file kwok serves: `<time> <stream> <F|P> <text>`."""
    for chunk in iter(lambda: stream.readline(16384), b""):
        tag = b"F" if chunk.endswith(b"\n") else b"P"
        with lock:
            out.write(f"{_cri_time()} {name} ".encode() + tag + b" " + chunk.rstrip(b"\n") + b"\n")
            out.flush()
    stream.close()


def _close_after(threads: list, out) -> None:
    for t in threads:
        t.join()
    out.close()


def _insecure():
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def main(argv: list[str] | None = None) -> int:
    from mlctl.sandbox.procs import controller_main

    return controller_main("python -m mlctl.sandbox.podrunner", argv, Runner,
                           lambda r: f"watching pods of {', '.join(r.kubes)}; at most {r.max_pods} real pods")


if __name__ == "__main__":
    sys.exit(main())
