"""The one version table of the sandbox's binaries, and their build from the Go module proxy.

Each entry names a Go wrapper module under the sandbox's assets (`go/<wrapper>/go.mod`, whose require line is
the single source of the version) and the packages to build from it. Binaries are cached by version outside
the work tree, in `$MLCTL_CACHE_DIR/bin/<wrapper>-<version>/` (default `~/.cache/mlctl/bin`), and built once:
a file lock per binary keeps two sandboxes from building the same one at the same time.

    python -m mlctl.sandbox.build [NAME ...]      # build (or find cached) the named binaries, default all
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from mlctl.sandbox.procs import SandboxError, file_lock


def assets_dir() -> Path:
    """The sandbox's assets (Go wrapper modules, kwok stages, realm, manifests, policy, images): package data
    shipped with mlctl, or $MLCTL_SANDBOX_SRC when set (a checkout being worked on)."""
    if os.environ.get("MLCTL_SANDBOX_SRC"):
        return Path(os.environ["MLCTL_SANDBOX_SRC"]).expanduser()
    return Path(__file__).resolve().parent / "assets"


def cache_root() -> Path:
    if os.environ.get("MLCTL_CACHE_DIR"):
        return Path(os.environ["MLCTL_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mlctl"


def bin_dir() -> Path:
    return cache_root() / "bin"


@dataclass(frozen=True)
class Binary:
    """A wrapper module and the commands built from it ({output name: Go package})."""

    wrapper: str
    module: str
    commands: dict[str, str]
    version_ldflags: tuple[str, ...] = field(default=())  # Go packages whose gitVersion etc. are stamped
    ldflags: tuple[str, ...] = field(default=())  # more -X flags; {v} is the version


BINARIES: dict[str, Binary] = {
    "etcd": Binary("etcd", "go.etcd.io/etcd/server/v3", {"etcd": "."}),
    "kubernetes": Binary(
        "kubernetes", "k8s.io/kubernetes",
        {c: f"k8s.io/kubernetes/cmd/{c}" for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler",
                                                   "kubectl")},
        version_ldflags=("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"),
    ),
    "kwok": Binary("kwok", "sigs.k8s.io/kwok", {"kwok": "sigs.k8s.io/kwok/cmd/kwok"}),
    "training-operator": Binary("training-operator", "github.com/kubeflow/training-operator",
                                {"training-operator": "github.com/kubeflow/training-operator/cmd/training-operator.v1"}),
    "versitygw": Binary("versitygw", "github.com/versity/versitygw",
                        {"versitygw": "github.com/versity/versitygw/cmd/versitygw"},
                        ldflags=("-X main.Version={v}", "-X main.Build={v}")),
    "opa": Binary("opa", "github.com/open-policy-agent/opa", {"opa": "github.com/open-policy-agent/opa"}),
    "metrics-server": Binary("metrics-server", "sigs.k8s.io/metrics-server",
                             {"metrics-server": "sigs.k8s.io/metrics-server/cmd/metrics-server"},
                             ldflags=("-X k8s.io/client-go/pkg/version.gitVersion={v}",)),
    "kserve": Binary("kserve", "github.com/kserve/kserve", {"kserve-manager": "github.com/kserve/kserve/cmd/manager"}),
    # not a sandbox server: the reference load generator of bench/serve.py, built on demand
    "hey": Binary("hey", "github.com/rakyll/hey", {"hey": "github.com/rakyll/hey"}),
}


def version(name: str) -> str:
    """The version of BINARIES[name]'s module, as its wrapper's go.mod requires it."""
    b = BINARIES[name]
    gomod = assets_dir() / "go" / b.wrapper / "go.mod"
    if not gomod.is_file():
        raise SandboxError(f"{gomod} not found; set MLCTL_SANDBOX_SRC to a directory holding the sandbox's assets")
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(b.module)}\s+(v\S+)", gomod.read_text(), re.MULTILINE)
    if not match:
        raise SandboxError(f"{b.module} is not required by {gomod}")
    return match.group(1)


def versions() -> dict[str, str]:
    return {name: version(name) for name in BINARIES}


def path(name: str, command: str | None = None) -> Path:
    """Where the command (default: the entry's only or first command) of BINARIES[name] is cached."""
    b = BINARIES[name]
    return bin_dir() / f"{b.wrapper}-{version(name)}" / (command or next(iter(b.commands)))


def paths(name: str) -> dict[str, Path]:
    return {c: path(name, c) for c in BINARIES[name].commands}


def _ldflags(b: Binary, v: str) -> str:
    flags = ["-s", "-w"]
    minor = v.split(".")[1] if v.count(".") >= 2 else "0"
    for pkg in b.version_ldflags:
        flags += [f"-X {pkg}.gitVersion={v}", f"-X {pkg}.gitMajor=1", f"-X {pkg}.gitMinor={minor}",
                  f"-X {pkg}.gitTreeState=clean", f"-X {pkg}.buildDate=1970-01-01T00:00:00Z"]
    flags += [f.format(v=v) for f in b.ldflags]
    return " ".join(flags)


def ensure(names: list[str] | tuple[str, ...], log=None) -> dict[str, Path]:
    """Build every command of the named entries that is not cached yet; return {command: path}.

    log: a binary file object for the Go tool's output (default: this process's stderr)."""
    out: dict[str, Path] = {}
    for name in names:
        b = BINARIES[name]
        v = version(name)
        wrapper = assets_dir() / "go" / b.wrapper
        for command, package in b.commands.items():
            target = path(name, command)
            out[command] = target
            if os.access(target, os.X_OK):
                continue
            with file_lock(target.parent / f".{target.name}.lock"):
                if os.access(target, os.X_OK):  # built by another process meanwhile
                    continue
                started = time.monotonic()
                tmp = target.with_name(f".{target.name}.tmp")
                env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": os.environ.get("GOFLAGS", "-buildvcs=false")}
                argv = ["go", "build", "-trimpath", "-ldflags", _ldflags(b, v), "-o", str(tmp), package]
                try:
                    result = subprocess.run(argv, cwd=wrapper, env=env, stdin=subprocess.DEVNULL,
                                            stdout=log or sys.stderr, stderr=subprocess.STDOUT)
                except FileNotFoundError as e:
                    raise SandboxError("building the sandbox needs Go (the 'go' command is not on PATH)") from e
                if result.returncode != 0:
                    where = f" (see {log.name})" if log is not None and hasattr(log, "name") else ""
                    raise SandboxError(f"building {command} {v} failed{where}")
                tmp.replace(target)
                line = f"built {command} {v} in {time.monotonic() - started:.0f} s\n"
                (log.write(line.encode()) if log is not None else sys.stderr.write(line))
    return out


def ensure_logged(names: list[str] | tuple[str, ...], log: Path | None = None) -> dict[str, Path]:
    """ensure(names), the Go tool's output appended to the file log (this process's stderr when None)."""
    if log is None:
        return ensure(names)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return ensure(names, out)


def module_dir(wrapper: str, module: str) -> Path:
    """Where the Go module cache holds module, as the wrapper module go/<wrapper>/ requires it (its build
    downloaded it): upstream files mlctl reads rather than copies (CRDs)."""
    try:
        out = subprocess.run(["go", "list", "-m", "-f", "{{.Dir}}", module], cwd=assets_dir() / "go" / wrapper,
                             capture_output=True, text=True, check=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as e:
        raise SandboxError(f"cannot locate {module} in the Go module cache: {e}") from e
    return Path(out.stdout.strip())


def main(argv: list[str]) -> int:
    names = argv or list(BINARIES)
    unknown = [n for n in names if n not in BINARIES]
    if unknown:
        print(f"error: unknown binaries: {', '.join(unknown)} (known: {', '.join(BINARIES)})", file=sys.stderr)
        return 2
    try:
        for command, target in ensure(names).items():
            print(f"{command}\t{target}")
    except SandboxError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
