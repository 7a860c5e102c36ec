"""Benchmark: `mlctl admin sync` against `kubectl apply --server-side` of the same objects, in one run.

    .venv/bin/python bench/admin_sync.py [--users 10000] [--groups 200] [--state-dir DIR] [--keep]

1. Starts (or reuses) a bench-only sandbox: its own clusters (DIR, default ~/.local/state/mlctl/bench-sandbox)
   so 10,000 namespaces never land in the shared sandbox, and its own KDC + Keycloak (realm ml). Keycloak is
   (re)started with the JVM's server JIT, as in production; the test sandbox's Keycloak stops at C1 (the
   quick client compiler) to start sooner, which makes its steady state about half as fast.
2. Scripts the directory: USERS users and GROUPS groups (each with a GPU quota attribute; every user in
   1-3 groups) through Keycloak's partial import, in batches.
3. Times, on cluster `local`:
   - mlctl first sync and no-op re-sync (through the real command, `-o json`, which also counts requests);
   - kubectl apply --server-side of the same desired objects (same names under a `k-` namespace prefix, so
     the two never share objects), first and again, counting its requests from `-v=6` logs.
   Each phase also reads the API server's own count (`apiserver_request_total` from /metrics, before and
   after) of requests on the tenancy resources (namespaces, resourcequotas, rolebindings, limitranges,
   quotarequests; not subresources, so not the quota controller's status writes).
4. Prints times, request counts and the ratios against the goals: no-op re-sync <= 5 s and <= 0.05x
   kubectl's re-apply with a constant number of LISTs (no per-namespace GETs); first sync <= 0.2x kubectl's
   first apply.

Nothing here asserts: it prints one measurement; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mlctl.io import IO  # noqa: E402
from mlctl.main import run as mlctl_run  # noqa: E402

PREFIX = "bench"


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def start_platform(state_dir: Path, fresh_clusters: bool = True) -> dict:
    """The bench sandbox; fresh_clusters: its clusters start from an empty etcd, so that the first sync is a
    first sync (Keycloak's database, with its scripted users, is kept)."""
    import shutil

    from mlctl.sandbox import core, kdc, keycloak, procs

    began = time.monotonic()
    if fresh_clusters:
        core.down(state_dir)
        shutil.rmtree(state_dir / "etcd", ignore_errors=True)
    info = core.up(state_dir)
    state = procs.State.load(state_dir)
    keycloak.stop(state)  # restarted with the server JIT, as a production Keycloak runs (the sandbox's stops at C1)
    kc = keycloak.start(state, kdc.start(state), jvm_flags="")
    log(f"bench sandbox ready in {time.monotonic() - began:.0f} s ({state_dir})")
    return {"core": info, "kc": kc, "env": core.env(state_dir)}


def stop_platform(state_dir: Path) -> None:
    from mlctl.sandbox import core, kdc, keycloak, procs

    state = procs.State.load(state_dir)
    for step in (lambda: keycloak.stop(state), lambda: kdc.stop(state), lambda: core.down(state_dir)):
        with contextlib.suppress(Exception):
            step()


def populate(kc: dict, users: int, groups: int) -> None:
    """USERS users and GROUPS groups in realm ml (idempotent: existing ones are skipped)."""
    from keycloak import KeycloakAdmin

    from mlctl.sandbox import keycloak as sandbox_keycloak

    admin_user, admin_password = sandbox_keycloak.BOOTSTRAP_ADMIN
    admin = KeycloakAdmin(server_url=kc["url"] + "/", username=admin_user, password=admin_password,
                          realm_name=kc["realm"], user_realm_name="master", verify=kc["ca_file"], timeout=300)
    began = time.monotonic()
    group_reps = [{"name": f"{PREFIX}-g{j:03d}", "path": f"/{PREFIX}-g{j:03d}",
                   "attributes": {"mlctl.io/quota.requests.nvidia.com/gpu": [str(1 + j % 8)]}}
                  for j in range(groups)]
    admin.partial_import_realm(kc["realm"], {"ifResourceExists": "SKIP", "groups": group_reps})
    batch = 1000
    for start in range(0, users, batch):
        reps = []
        for i in range(start, min(users, start + batch)):
            choices = sorted({i % groups, (i * 7) % groups, (i * 13) % groups})
            member_of = choices[: 1 + i % 3]  # every user in 1-3 groups
            reps.append({"username": f"{PREFIX}-u{i:05d}", "enabled": True,
                         "groups": [f"/{PREFIX}-g{j:03d}" for j in member_of]})
        admin.partial_import_realm(kc["realm"], {"ifResourceExists": "SKIP", "users": reps})
    log(f"keycloak: {users} users, {groups} groups in place ({time.monotonic() - began:.0f} s)")


def platform_file(env: dict, kc: dict, into: Path) -> Path:
    import base64

    doc = yaml.safe_load(Path(env["MLCTL_PLATFORM_FILE"]).read_text())
    doc["keycloak"] = {"issuer": kc["issuer"], "clientId": kc["client_id"],
                       "certificateAuthorityData": base64.b64encode(Path(kc["ca_file"]).read_bytes()).decode()}
    path = into / "platform.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def mlctl_sync(env: dict) -> tuple[float, dict, int]:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        out = IO(io.StringIO(), io.StringIO(), io.StringIO(), stdin_tty=False, stdout_tty=False, stderr_tty=False)
        began = time.monotonic()
        code = mlctl_run(["admin", "sync", "--cluster", "local", "-o", "json", "--concurrency", "32",
                          "--lock-timeout", "120"], io=out)
        seconds = time.monotonic() - began
    finally:
        os.environ.clear()
        os.environ.update(saved)
    if code != 0:
        raise SystemExit(f"mlctl admin sync exited {code}: {out.stderr.getvalue()[-2000:]}")
    return seconds, json.loads(out.stdout.getvalue()), code


def kubectl_objects(platform: Path, kc_env: dict) -> list[dict]:
    """The objects admin sync applies, renamed under namespace prefix k- (no ownership clash)."""
    from mlctl.admin import keycloak_admin
    from mlctl.admin.desired import desired_state
    from mlctl.admin.objects import Settings
    from mlctl.factory import Factory

    f = Factory(env={**os.environ, **kc_env})
    directory, _ = keycloak_admin.load(f, kc_env["MLCTL_ADMIN_CLIENT_ID"], kc_env["MLCTL_CLIENT_SECRET"])
    doc = yaml.safe_load(platform.read_text())
    state = desired_state(directory, [], Settings.from_platform(doc, doc["clusters"][0]))
    out = []
    for obj in state.objects.values():
        obj = copy.deepcopy(obj)
        meta = obj["metadata"]
        if obj["kind"] == "Namespace":
            meta["name"] = "k-" + meta["name"]
            meta["labels"]["app.kubernetes.io/managed-by"] = "bench-kubectl"
        else:
            meta["namespace"] = "k-" + meta["namespace"]
            meta["labels"]["app.kubernetes.io/managed-by"] = "bench-kubectl"
        out.append(obj)
    out.sort(key=lambda o: o["kind"] != "Namespace")  # namespaces first, as kubectl needs
    return out


TENANCY_RESOURCES = {"namespaces", "resourcequotas", "rolebindings", "limitranges", "quotarequests"}
METRIC = re.compile(r'^apiserver_request_total\{([^}]*)\} (\S+)$')
LABEL = re.compile(r'(\w+)="([^"]*)"')


def server_counts(api) -> dict[str, float]:
    """{"POST namespaces": n, ...}: the API server's apiserver_request_total on the tenancy resources."""
    raw = "".join(api.lines("/metrics", what="reading the API server's metrics"))
    out: dict[str, float] = {}
    for line in raw.splitlines():
        m = METRIC.match(line)
        if not m:
            continue
        labels = dict(LABEL.findall(m.group(1)))
        if labels.get("resource") in TENANCY_RESOURCES and not labels.get("subresource"):
            key = f"{labels['verb']} {labels['resource']}"
            out[key] = out.get(key, 0) + float(m.group(2))
    return out


def measured(api, fn):
    """fn()'s result, plus the API server's request counts during it."""
    before = server_counts(api)
    value = fn()
    after = server_counts(api)
    delta = {k: int(after[k] - before.get(k, 0)) for k in sorted(after) if after[k] - before.get(k, 0)}
    return value, delta


REQUEST_LINE = re.compile(r'"Response" verb="(\w+)"')  # kubectl -v=6 (klog structured)


def kubectl_apply(kubectl: str, kubeconfig: str, objects: list[dict], workdir: Path) -> tuple[float, dict]:
    ns = workdir / "namespaces.yaml"
    rest = workdir / "objects.yaml"
    ns.write_text(yaml.safe_dump_all([o for o in objects if o["kind"] == "Namespace"]))
    rest.write_text(yaml.safe_dump_all([o for o in objects if o["kind"] != "Namespace"]))
    counts: dict[str, int] = {}
    began = time.monotonic()
    for path in (ns, rest):
        proc = subprocess.run([kubectl, f"--kubeconfig={kubeconfig}", "--context=sandbox-local", "apply",
                               "--server-side", "--force-conflicts", "--field-manager=bench-kubectl", "-v=6",
                               "-f", str(path)], capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"kubectl apply failed: {proc.stderr[-2000:]}")
        for line in proc.stderr.splitlines():
            m = REQUEST_LINE.search(line)
            if m:
                counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return time.monotonic() - began, counts


def main() -> None:
    from bytecode import compile_package

    compile_package()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--state-dir", type=Path,
                        default=Path(os.path.expanduser("~/.local/state/mlctl/bench-sandbox")))
    parser.add_argument("--keep", action="store_true", help="Leave the bench sandbox running afterwards.")
    parser.add_argument("--reuse-clusters", action="store_true",
                        help="Keep the clusters' objects of an earlier run (the first sync is then no first sync).")
    args = parser.parse_args()
    try:
        measure(args)
    finally:  # also when the bench fails half-way: nothing of the bench sandbox stays running
        if not args.keep:
            stop_platform(args.state_dir)


def measure(args) -> None:
    from mlctl.admin.objects import Settings, install
    from mlctl.sandbox import core
    from mlctl.sandbox import keycloak as sandbox_keycloak

    platform = start_platform(args.state_dir, fresh_clusters=not args.reuse_clusters)
    kc, env = platform["kc"], platform["env"]
    populate(kc, args.users, args.groups)
    work = Path(tempfile.mkdtemp(prefix="mlctl-bench-"))
    pfile = platform_file(env, kc, work)
    kc_env = {"MLCTL_PLATFORM_FILE": str(pfile), "XDG_CONFIG_HOME": str(work / "config"),
              "XDG_CACHE_HOME": str(work / "cache"), "MLCTL_ADMIN_CLIENT_ID": sandbox_keycloak.ADMIN_CLIENT_ID,
              "MLCTL_CLIENT_SECRET": sandbox_keycloak.ADMIN_CLIENT_SECRET,
              "MLCTL_ADMIN_KUBECONFIG": env["KUBECONFIG"]}
    from mlctl.kube.client import for_admin

    api = for_admin(env["KUBECONFIG"], "local", "sandbox-{cluster}")
    install(api, Settings.from_platform({}, None))

    kubectl = str(core.binaries()["kubectl"])
    objects = kubectl_objects(pfile, kc_env)
    log(f"{len(objects)} objects per tool")

    (first_s, first, _), s_first = measured(api, lambda: mlctl_sync(kc_env))
    (k_first_s, k_first), s_k_first = measured(api, lambda: kubectl_apply(kubectl, env["KUBECONFIG"], objects, work))
    (again_s, again, _), s_again = measured(api, lambda: mlctl_sync(kc_env))
    (k_again_s, k_again), s_k_again = measured(api, lambda: kubectl_apply(kubectl, env["KUBECONFIG"], objects, work))

    def reqs(summary):
        return summary["clusters"][0]["requests"]

    lists = sum(n for k, n in s_again.items() if k.startswith("LIST"))
    gets = sum(n for k, n in s_again.items() if k.startswith("GET"))  # the Lease is not a tenancy resource
    result = {
        "users": args.users, "groups": args.groups, "objects": len(objects),
        "mlctl": {"first": {"seconds": round(first_s, 2), "created": first["created"], "requests": reqs(first),
                            "serverCounted": s_first, "keycloakRequests": first["keycloakRequests"]},
                  "noop": {"seconds": round(again_s, 2), "unchanged": again["unchanged"], "requests": reqs(again),
                           "serverCounted": s_again}},
        "kubectl": {"first": {"seconds": round(k_first_s, 2), "requests": k_first, "serverCounted": s_k_first},
                    "again": {"seconds": round(k_again_s, 2), "requests": k_again, "serverCounted": s_k_again}},
        "ratios": {"first": round(first_s / k_first_s, 3), "noop": round(again_s / k_again_s, 3)},
        "goals": {"first <= 0.2": first_s / k_first_s <= 0.2, "noop <= 0.05": again_s / k_again_s <= 0.05,
                  "noop <= 5 s": again_s <= 5,
                  "noop LISTs": lists, "noop per-namespace GETs": gets},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
