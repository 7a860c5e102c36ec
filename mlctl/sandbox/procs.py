"""Start, find and stop the sandbox's processes; every pid and port is recorded in state.json.

`down` stops exactly what `up` started: a recorded pid is signalled only while /proc says it still runs
the recorded executable, so a recycled pid is never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


class SandboxError(Exception):
    """A sandbox component could not be built, started or reached."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def running(pid: int, argv0: str) -> bool:
    """True while pid is alive and still runs argv0 (not a zombie, not a recycled pid)."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if status.rsplit(")", 1)[-1].split()[0] == "Z":
        return False
    cmd = _cmdline(pid)
    return bool(cmd) and cmd[0] == argv0


@dataclass
class State:
    """The sandbox's state directory and its state.json."""

    root: Path
    data: dict = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path) -> State:
        path = root / "state.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        data.setdefault("processes", {})
        data.setdefault("ports", {})
        return cls(root, data)

    def refresh(self) -> None:
        """Re-read state.json: several State objects (and processes) share it, so every change is a
        read-modify-write of what is on disk now, never a write-back of an old copy."""
        path = self.root / "state.json"
        if path.exists():
            data = json.loads(path.read_text())
            data.setdefault("processes", {})
            data.setdefault("ports", {})
            self.data = data

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / "state.json.tmp"
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True))
        tmp.replace(self.root / "state.json")

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def port(self, name: str) -> int:
        """The port recorded for name, choosing a free one the first time."""
        self.refresh()
        ports = self.data["ports"]
        if name not in ports:
            taken = set(ports.values())
            port = free_port()
            while port in taken:
                port = free_port()
            ports[name] = port
            self.save()
        return ports[name]

    def is_running(self, name: str) -> bool:
        proc = self.data["processes"].get(name)
        return bool(proc) and running(proc["pid"], proc["argv"][0])

    def start(self, name: str, argv: list[str], *, env: dict | None = None, cwd: Path | None = None,
              secret_env: dict | None = None) -> int:
        """Start argv as a detached process named name unless it already runs; return its pid."""
        self.refresh()
        if self.is_running(name):
            return self.data["processes"][name]["pid"]
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {}), **(secret_env or {})}, cwd=cwd, start_new_session=True,
            )
        self.data["processes"][name] = {"pid": proc.pid, "argv": argv, "env": env or {},
                                        "cwd": str(cwd) if cwd else None, "log": str(log), "started": time.time()}
        self.save()
        return proc.pid

    def ensure(self, name: str, argv: list[str], *, files: list[Path] = (), env: dict | None = None,
               cwd: Path | None = None, port: int | None = None, stop_timeout: float = 15.0,
               secret_env: dict | None = None) -> str:
        """Start name unless it already runs with the same argv, environment and configuration files;
        return "kept", "started" or "restarted" (a process whose configuration changed is restarted).
        secret_env reaches the process but is never written to state.json (only its digest, through the
        fingerprint), so such a process is started again by ensure, not by restart()."""
        self.refresh()
        fp = fingerprint(argv, list(files), {**(env or {}), **(secret_env or {})})
        if self.is_running(name):
            if self.data.get("fingerprints", {}).get(name) == fp:
                return "kept"
            self.stop(name, timeout=stop_timeout)
            action = "restarted"
        else:
            action = "started"
        self.start(name, argv, env=env, cwd=cwd, secret_env=secret_env)
        if port is not None:
            self.data["processes"][name]["port"] = port
        self.data.setdefault("fingerprints", {})[name] = fp
        self.save()
        return action

    def restart(self, name: str, timeout: float = 15.0) -> int:
        """Stop the process named name and start it again as it was started (argv, extra environment,
        directory); return the new pid."""
        self.refresh()
        proc = self.data["processes"].get(name)
        if not proc or "env" not in proc:
            raise SandboxError(f"cannot restart {name}: it was not started by this version of mlctl "
                               "(run 'mlctl sandbox down' and 'mlctl sandbox up')")
        self.stop(name, timeout)
        return self.start(name, proc["argv"], env=proc["env"], cwd=Path(proc["cwd"]) if proc["cwd"] else None)

    def stop(self, name: str, timeout: float = 15.0) -> bool:
        """Stop the process named name (TERM, then KILL); True if it was running."""
        self.refresh()
        proc = self.data["processes"].get(name)
        if not proc:
            return False
        pid, argv0 = proc["pid"], proc["argv"][0]
        was_running = running(pid, argv0)
        if was_running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while running(pid, argv0) and time.monotonic() < deadline:
                _reap(pid)
                time.sleep(0.1)
            if running(pid, argv0):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                while running(pid, argv0):
                    _reap(pid)
                    time.sleep(0.05)
        _reap(pid)
        del self.data["processes"][name]
        self.save()
        return was_running

    def log_tail(self, name: str, lines: int = 5) -> str:
        path = self.logs / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def probe(port: int, path: str, *, tls: bool = True, ca_file: Path | str | None = None,
          client_cert: tuple | None = None, timeout: float = 2.0) -> tuple[int, str]:
    """GET path on 127.0.0.1:port, the readiness probe of every sandbox process: (status, body). Over TLS
    verified by ca_file when given (and with a client certificate), over TLS unverified when not (only
    liveness matters then), or plain HTTP (tls=False)."""
    import http.client
    import ssl

    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # not create_default_context: no system CA store needed
        if ca_file:
            ctx.load_verify_locations(str(ca_file))
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if client_cert:
            ctx.load_cert_chain(*client_cert)
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace").strip()
    finally:
        conn.close()


def answers(port: int, path: str, **kwargs) -> bool:
    """Whether probe(port, path, ...) gets a 200."""
    import http.client

    try:
        return probe(port, path, **kwargs)[0] == 200
    except (OSError, http.client.HTTPException):
        return False


@contextlib.contextmanager
def file_lock(path: Path):
    """An exclusive lock across processes on the file path (created with its folder): one build of a
    cached thing at a time, whoever else wants it."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def fingerprint(argv: list[str], files: list[Path], env: dict | None = None) -> str:
    """What a process was started with: argv, extra environment and the contents of its config files."""
    import hashlib

    h = hashlib.sha256(json.dumps([argv, sorted((env or {}).items())]).encode())
    for f in files:
        h.update(f.read_bytes() if f.exists() else b"")
    return h.hexdigest()


def _reap(pid: int) -> None:
    """Collect pid if it is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def wait_until(check: Callable[[], bool], timeout: float, what: str, state: State | None = None,
               name: str | None = None) -> None:
    """Poll check until it is true; on timeout raise SandboxError naming what and the log's tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if state and name and not state.is_running(name):
            time.sleep(0.2)  # seen once right after a start: confirm before calling it dead
            if not state.is_running(name) and not check():
                raise SandboxError(f"{name} exited while waiting for {what}{_see_log(state, name)}")
        time.sleep(0.2)
    raise SandboxError(f"timed out after {timeout:.0f} s waiting for {what}{_see_log(state, name)}")


def _see_log(state: State | None, name: str | None) -> str:
    """Where to read why (one line: the log's own lines stay in the log)."""
    if not (state and name):
        return ""
    path = state.logs / f"{name}.log"
    return f" (see {path})" if path.exists() else ""


def interpreter() -> str:
    """The Python that runs mlctl, named the same way whichever of its names started it (`python`,
    `python3`, ...): a sandbox process started once by the mlctl command and once from pytest must not look
    like a changed command line, which would restart it."""
    import sys

    stable = Path(sys.prefix) / "bin" / "python"
    return str(stable) if stable.is_file() and os.access(stable, os.X_OK) else sys.executable


def controller_main(prog: str, argv: list[str] | None, make: Callable[[dict], object], started: Callable) -> int:
    """main() of a sandbox controller run as `python -m PROG --config FILE` (the pod runner, the notebook
    controller): logs on stdout, make(config) builds it (it has a `stopping` Event and `run(ready_file)`,
    which writes <config dir>/ready once it serves), started(it) returns the first log line; SIGTERM and
    SIGINT stop it."""
    import argparse
    import logging
    import sys

    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--config", required=True, type=Path)
    opts = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    log = logging.getLogger(prog.split()[-1])
    cfg = json.loads(opts.config.read_text())
    ready = opts.config.parent / "ready"
    with contextlib.suppress(FileNotFoundError):
        ready.unlink()
    controller = make(cfg)

    def stop(signum, frame):
        controller.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("%s", started(controller))
    controller.run(ready)
    log.info("stopped")
    return 0
