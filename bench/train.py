"""Train benchmarks against the running sandbox, each compared with kubectl in the same run.

  submit:  `mlctl train SPEC` vs `kubectl create -f` of the same rendered YAML   (goal <= 1.1x)
  list:    `mlctl train list` vs `kubectl get tfjobs` with N jobs in a namespace  (goal <= 1.0x)
  plugin:  `kubectl --context mlctl-local get pods` through mlctl's exec plugin vs the same kubeconfig with a
           static token: the time the plugin adds to every kubectl call (for information)

Both tools authenticate the same way (bob's Keycloak login; kubectl through mlctl's exec plugin), so the
ratio compares the tools, not the credentials. Each create starts on a settled cluster (the job before it
and its pods deleted and gone), the tools taking turns going first: timed right after the previous round's
deletions, while the controllers still worked on them, the tool that always went first measured slower
(docs/train.md). The listed jobs are created suspended (runPolicy.suspend),
so the training-operator makes no pods for them.
Usage: python bench/train.py [--jobs 5000] [--runs 5] [--keep]   (needs `mlctl sandbox up`)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BIN = Path(sys.executable).parent
MLCTL = str(BIN / "mlctl")
REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "examples" / "3dgan.yaml"
SETS = ["--set", "workers=2", "--set", "resources.cpu=1", "--set", "resources.memory=2Gi",
        "--set", "resources.gpus=1"]


def run(argv: list[str], env: dict, stdin: str | None = None) -> subprocess.CompletedProcess:
    out = subprocess.run(argv, capture_output=True, text=True, env=env, input=stdin, timeout=600)
    if out.returncode != 0:
        sys.exit(f"bench: {' '.join(argv[:4])} failed: {out.stderr.strip()}")
    return out


def timed(argv: list[str], env: dict) -> float:
    start = time.perf_counter()
    run(argv, env)
    return time.perf_counter() - start


def exec_plugin_cost(kubectl: str, env: dict, home: Path, runs: int) -> tuple[float, float]:
    """Median ms of `kubectl get pods` in bob's namespace through the mlctl-local context (exec plugin, cached
    token) and through a copy of that context whose user holds the same token statically. The copy is 0600
    in the bench's own directory and removed at once."""
    import yaml

    kubeconfig = yaml.safe_load(Path(env["KUBECONFIG"]).read_text())
    token = json.loads(run([MLCTL, "token", "--cluster", "local"], env).stdout)["status"]["token"]
    context = next(c for c in kubeconfig["contexts"] if c["name"] == "mlctl-local")
    static = {**kubeconfig, "users": [{"name": "static", "user": {"token": token}}],
              "contexts": [{"name": "static", "context": {**context["context"], "user": "static"}}],
              "current-context": "static"}
    path = home / "static-kubeconfig"
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(static))
    try:
        argv = [kubectl, "get", "pods", "-n", "u-bob"]
        timed([*argv, "--context", "mlctl-local"], env)  # warm-up: the token is cached from here on
        plugin = [timed([*argv, "--context", "mlctl-local"], env) for _ in range(runs)]
        static_env = {**env, "KUBECONFIG": str(path)}
        static_times = [timed(argv, static_env) for _ in range(runs)]
    finally:
        path.unlink(missing_ok=True)
    return statistics.median(plugin) * 1000, statistics.median(static_times) * 1000


def main() -> int:
    from bytecode import compile_package

    compile_package()
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5, help="runs of each list; submissions: 4x as many")
    parser.add_argument("--keep", action="store_true", help="keep the namespace of listed jobs for a re-run")
    args = parser.parse_args()

    from mlctl.sandbox import core

    kubectl = str(core.binaries()["kubectl"])
    home = Path(tempfile.mkdtemp(prefix="mlctl-bench-train-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLCTL_")}
    env.update(XDG_CONFIG_HOME=str(home / "config"), XDG_CACHE_HOME=str(home / "cache"),
               KUBECONFIG=str(home / "kubeconfig"))
    run([MLCTL, "sandbox", "login", "--admin"], env)
    run([MLCTL, "admin", "sync"], env)
    run([MLCTL, "sandbox", "login", "bob"], env)

    # --- the exec plugin's share of a kubectl call -----------------------------------------------------
    plugin_ms, static_ms = exec_plugin_cost(kubectl, env, home, args.runs * 4)

    # --- submit latency ------------------------------------------------------------------------------
    # Each create starts on a settled cluster: the job before it (and its pods) deleted and gone, so neither
    # tool is timed while the controllers still work on the other's job. The tools take turns going first.
    from mlctl.kube.api import from_kubeconfig

    admin_api = from_kubeconfig(core.env(core.state_dir())["KUBECONFIG"], "sandbox-local")

    def settle(job: str) -> None:
        run([MLCTL, "train", "delete", job, "--cluster", "local", "--yes"], env)
        deadline = time.monotonic() + 120
        while admin_api.find("TFJob", job, "u-bob") is not None or admin_api.list(
                "Pod", "u-bob", selector=f"training.kubeflow.org/job-name={job}"):
            if time.monotonic() > deadline:
                sys.exit(f"bench: job {job} or its pods still there 120 s after the delete")
            time.sleep(0.05)

    mlctl_times, kubectl_times = [], []
    for i in range(args.runs * 4):  # a create varies more from one run to the next than a list
        name = f"b{uuid.uuid4().hex[:8]}"
        other = f"k{uuid.uuid4().hex[:8]}"
        rendered = run([MLCTL, "train", "render", str(SPEC), "--cluster", "local", *SETS, "--set", f"name={other}"],
                       env).stdout
        path = home / f"{other}.yaml"
        path.write_text(rendered)
        turns = [(mlctl_times, name, [MLCTL, "train", str(SPEC), "--cluster", "local", *SETS, "--set", f"name={name}"]),
                 (kubectl_times, other, [kubectl, "--context", "mlctl-local", "create", "-f", str(path)])]
        for times, job, argv in turns if i % 2 == 0 else reversed(turns):
            times.append(timed(argv, env))
            settle(job)
    admin_api.close()
    submit = statistics.median(mlctl_times) / statistics.median(kubectl_times)

    # --- list with many jobs ---------------------------------------------------------------------------
    run([MLCTL, "sandbox", "login", "--admin"], env)
    namespace = "mlctl-bench-jobs"
    admin = core.env(core.state_dir())["KUBECONFIG"]
    from mlctl.kube.api import from_kubeconfig

    api = from_kubeconfig(admin, "sandbox-local")
    try:
        api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    except Exception as e:
        if getattr(e, "status", None) != 409:
            raise
    job = json.loads(run([MLCTL, "train", "render", str(SPEC), "--cluster", "local", *SETS, "--user", "bench",
                          "-o", "json"], env).stdout)
    job["metadata"]["namespace"] = namespace
    job["spec"]["runPolicy"]["suspend"] = True

    def create(i: int) -> None:
        body = json.loads(json.dumps(job))
        body["metadata"]["name"] = f"job-{i:05d}"
        try:
            api.create(body, strict=False)
        except Exception as e:
            if getattr(e, "status", None) != 409:
                raise

    started = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(create, range(args.jobs)))
    print(f"{args.jobs} suspended TFJobs in {namespace} (created or found) in {time.perf_counter() - started:.1f} s")
    mlctl_list = [timed([MLCTL, "train", "list", "--cluster", "local", "-n", namespace], env)
                  for _ in range(args.runs)]
    kubectl_list = [timed([kubectl, "--context", "mlctl-local", "get", "tfjobs", "-n", namespace], env)
                    for _ in range(args.runs)]
    listing = statistics.median(mlctl_list) / statistics.median(kubectl_list)
    print(f"median of {args.runs * 4} submissions and {args.runs} lists each (quartiles in brackets)")
    for label, times in (("mlctl train SPEC   ", mlctl_times), ("kubectl create -f  ", kubectl_times)):
        q1, q2, q3 = statistics.quantiles(times, n=4)
        print(f"  {label}       {q2 * 1000:8.1f} ms   [{q1 * 1000:.1f} .. {q3 * 1000:.1f}]")
    print(f"  mlctl train list ({args.jobs})  {statistics.median(mlctl_list) * 1000:8.1f} ms")
    print(f"  kubectl get tfjobs        {statistics.median(kubectl_list) * 1000:8.1f} ms")
    print(f"  kubectl get pods, plugin  {plugin_ms:8.1f} ms")
    print(f"  kubectl get pods, static  {static_ms:8.1f} ms   (the plugin adds {plugin_ms - static_ms:.1f} ms)")
    print("ratios")
    print(f"  submit: mlctl / kubectl create    {submit:5.2f}x  (goal <= 1.1)")
    print(f"  list:   mlctl / kubectl get       {listing:5.2f}x  (goal <= 1.0)", flush=True)
    if not args.keep:
        # figures first, then the cleanup: one delete of the collection (one request, about 15 s for 5,000
        # jobs), then the namespace. The jobs go first: a namespace deletion still in progress when the
        # sandbox stops can leave its TFJobs behind, and the training-operator retries them on every start.
        started = time.perf_counter()
        api.delete_collection("TFJob", namespace)
        api.delete("Namespace", namespace)
        print(f"cleanup: TFJobs and namespace {namespace} deleted in {time.perf_counter() - started:.1f} s")
    api.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
