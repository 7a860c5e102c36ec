"""mlctl serve load against hey, and mlctl serve predict against curl, on the same endpoint in one run
(`make bench-serve`).

Needs a running sandbox with KServe and bob's namespace and Secret (`mlctl sandbox up`, `mlctl admin sync` as
the admin, `mlctl sandbox s3-secrets`). hey (github.com/rakyll/hey v0.1.5) is built like the sandbox's other
binaries (`mlctl/sandbox/assets/go/hey/`, cached by version); curl is the system's.

What it does: logs bob in (a private config), trains a tiny 3dgan job with the real image for its final model
(or uses BENCH_MODEL=s3://...|JOB), creates an InferenceService with one fixed replica (so both tools meet the
same capacity) and waits until it is Ready; then ROUNDS rounds, each running hey and `mlctl serve load` for
DURATION seconds at CONCURRENCY (alternating which goes first), and PREDICTS interleaved pairs of
`curl` and `mlctl serve predict -v` with the same token, CA and body. BENCH_SERVICE=NAME uses an existing
service of bob's instead (nothing is created or deleted).

Both load tools' percentiles are computed the same way (nearest rank) from every request they timed (hey's
`-o csv` rows, mlctl's own figures); throughput is requests / duration. Goals: mlctl's throughput >= 0.9x
hey's, its p50 and p99 within 10% of hey's, and predict's request latency <= 1.2x curl's time_total (the
process's whole wall time is printed beside it). The figures are printed even when cleanup fails.

Each round also prints the CPU seconds the load tool itself used: on 2 cores the model server shares the
CPU with the load tool, so how a tool's threads spread over the cores changes the server it measures.
Both tools are therefore pinned to the same CPU (`taskset -c 1`; BENCH_CLIENT_CPUS= to turn it off, or
another list), so the server gets the same share from either.
"""

from __future__ import annotations

import csv
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

MLCTL = str(Path(sys.executable).parent / "mlctl")
DURATION = int(os.environ.get("BENCH_DURATION", "30"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "8"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
# both load tools run under `taskset -c CPUS` (default 1, on a machine of 2 CPUs or more; "" for none), so each
# leaves the model server the same CPU
CLIENT_CPUS = os.environ.get("BENCH_CLIENT_CPUS", "1" if (os.cpu_count() or 1) >= 2 else "")
PIN = ["taskset", "-c", CLIENT_CPUS] if CLIENT_CPUS else []
PREDICTS = int(os.environ.get("BENCH_PREDICTS", "15"))
NOISE = [round(0.1 * ((i * 7) % 11 - 5), 3) for i in range(16)]


def sh(argv: list[str], env: dict, *, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, env=env, input=stdin, capture_output=True, text=True,
                          stdin=None if stdin is not None else subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} ... exited {proc.returncode}: {proc.stderr.strip()[-600:]}")
    return proc


def percentile(values: list[float], p: float) -> float:
    from mlctl.serve.stats import percentile as nearest_rank

    return nearest_rank(sorted(values), p)


def child_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def hey_run(hey: Path, url: str, token: str, data: Path) -> dict:
    began = child_cpu()
    argv = [*PIN, str(hey), "-z", f"{DURATION}s", "-c", str(CONCURRENCY), "-m", "POST", "-T", "application/json",
            "-H", f"Authorization: Bearer {token}", "-D", str(data), "-o", "csv", url]
    proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise SystemExit(f"hey exited {proc.returncode}: {proc.stderr.strip()[-400:]}")
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    times = [float(r["response-time"]) for r in rows]
    errors = sum(1 for r in rows if r.get("status-code") != "200")
    return {"requests": len(rows), "errors": errors, "rps": len(rows) / DURATION,
            "p50": percentile(times, 50) * 1000, "p99": percentile(times, 99) * 1000,
            "cpu": child_cpu() - began}


def mlctl_run(env: dict, name: str, data: Path) -> dict:
    began = child_cpu()
    proc = sh([*PIN, MLCTL, "serve", "load", name, "--data", str(data), "-c", str(CONCURRENCY), "-d", str(DURATION),
               "-o", "json"], env)
    s = json.loads(proc.stdout)
    return {"requests": s["requests"], "errors": sum(s["errors"].values()), "rps": s["requests"] / DURATION,
            "p50": s["latencyMs"]["p50"], "p99": s["latencyMs"]["p99"], "cpu": child_cpu() - began}


def predict_pairs(env: dict, name: str, url: str, token: str, ca: str, data: Path) -> dict:
    curl, mine, wall = [], [], []
    for _ in range(PREDICTS):
        proc = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{time_total} %{http_code}", "--cacert", ca,
                               "-H", f"Authorization: Bearer {token}", "-H", "Content-Type: application/json",
                               "--data-binary", f"@{data}", url], capture_output=True, text=True)
        seconds, code = proc.stdout.split()
        if code != "200":
            raise SystemExit(f"curl got HTTP {code}")
        curl.append(float(seconds) * 1000)
        began = time.monotonic()
        out = sh([MLCTL, "serve", "predict", name, "--data", str(data), "-v"], env)
        wall.append((time.monotonic() - began) * 1000)
        # "POST /serve/...: HTTP 200, N bytes in X ms"
        mine.append(float(out.stderr.rsplit(" in ", 1)[1].split()[0]))
    return {"curl": statistics.median(curl), "mlctl": statistics.median(mine), "wall": statistics.median(wall)}


def setup(env: dict, root: Path, work: Path) -> tuple[str, bool, str | None]:
    """(service name, whether this run created it, the job it trained or None)."""
    if os.environ.get("BENCH_SERVICE"):
        return os.environ["BENCH_SERVICE"], False, None
    model, job = os.environ.get("BENCH_MODEL"), None
    if not model:
        job = model = f"bench-gan-{uuid.uuid4().hex[:6]}"
        spec = work / "gan.yaml"
        spec.write_text(f"name: {job}\nframework: tensorflow\nimage: mlctl.sandbox/3dgan:1\nworkers: 1\n"
                        "resources: {gpus: 0, cpu: 1, memory: 2Gi, pool: cpu}\nenv: {EPOCHS: 2, SAMPLES: 32}\n")
        sh([MLCTL, "train", str(spec), "--cluster", "local", "--wait", "--timeout", "300"], env)
    name = f"bench-gen3d-{uuid.uuid4().hex[:6]}"
    sh([MLCTL, "serve", "create", name, "--model", model, "--min-replicas", "1", "--max-replicas", "1",
        "--wait", "--timeout", "300"], env)
    return name, True, job


def main() -> int:
    from bytecode import compile_package

    compile_package()
    import yaml

    from mlctl.sandbox import build, core, kdc, procs

    root = core.state_dir()
    state = procs.State.load(root)
    platform = yaml.safe_load((root / "platform.yaml").read_text())
    hey = build.ensure(["hey"])["hey"]
    work = Path(tempfile.mkdtemp(prefix="mlctl-bench-serve-"))
    home = work / "home"
    env = {**os.environ, "XDG_CONFIG_HOME": str(home / "config"), "XDG_CACHE_HOME": str(home / "cache"),
           "MLCTL_SANDBOX_DIR": str(root), "KUBECONFIG": str(home / "kubeconfig")}
    env.pop("MLCTL_PLATFORM", None)
    users = kdc.info(state)["users"]
    sh([MLCTL, "login", "--platform", str(root / "platform.yaml"), "--password", "-u", "bob", "--no-kubeconfig"],
       env, stdin=users["bob"] + "\n")
    data = work / "v1.json"
    data.write_text(json.dumps({"instances": [{"noise": NOISE, "energy": 50.0}]}))
    ca = work / "gateway-ca.crt"
    import base64

    ca.write_bytes(base64.b64decode(platform["gateway"]["certificateAuthorityData"]))
    name, created, job = setup(env, root, work)
    figures: dict = {}
    try:
        token = json.loads(sh([MLCTL, "token", "--cluster", "local"], env).stdout)["status"]["token"]
        url = f"{platform['gateway']['url']}/serve/u-bob/{name}/v1/models/{name}:predict"
        for _ in range(10):  # warm-up: the model server's first answers are slower
            sh([MLCTL, "serve", "predict", name, "--data", str(data)], env)
        hey_rounds, mlctl_rounds = [], []
        for r in range(ROUNDS):
            order = ("hey", "mlctl") if r % 2 == 0 else ("mlctl", "hey")
            for tool in order:
                if tool == "hey":
                    hey_rounds.append(hey_run(hey, url, token, data))
                else:
                    mlctl_rounds.append(mlctl_run(env, name, data))
        figures["load"] = {"hey": hey_rounds, "mlctl": mlctl_rounds}
        figures["predict"] = predict_pairs(env, name, url, token, str(ca), data)
    finally:
        report(figures)
        if created:
            p = sh([MLCTL, "serve", "delete", name, "--yes"], env, check=False)
            if p.returncode:
                print(f"cleanup: serve delete {name} failed: {p.stderr.strip()}", file=sys.stderr)
        if job:
            sh([MLCTL, "train", "delete", job, "--cluster", "local", "--yes"], env, check=False)
    return 0


def report(figures: dict) -> None:
    if "load" in figures:
        h, m = figures["load"]["hey"], figures["load"]["mlctl"]
        print(f"serve load vs hey: {len(h)} rounds of {DURATION}s at concurrency {CONCURRENCY}")
        print(f"{'round':<7}{'tool':<7}{'requests':>9}{'errors':>8}{'rps':>9}{'p50 ms':>9}{'p99 ms':>9}{'cpu s':>9}"
              + (f"   (both pinned to CPU {CLIENT_CPUS})" if CLIENT_CPUS else ""))
        for i, (a, b) in enumerate(zip(h, m, strict=False), 1):
            for tool, x in (("hey", a), ("mlctl", b)):
                print(f"{i:<7}{tool:<7}{x['requests']:>9}{x['errors']:>8}{x['rps']:>9.1f}{x['p50']:>9.1f}"
                      f"{x['p99']:>9.1f}{x['cpu']:>9.1f}")
        rps = sum(x["rps"] for x in m) / sum(x["rps"] for x in h)
        p50 = statistics.mean(x["p50"] for x in m) / statistics.mean(x["p50"] for x in h)
        p99 = statistics.mean(x["p99"] for x in m) / statistics.mean(x["p99"] for x in h)
        print(f"throughput mlctl/hey {rps:.2f}x (goal >= 0.90x) {'ok' if rps >= 0.9 else 'NOT MET'}")
        within = abs(p50 - 1) <= 0.1 and abs(p99 - 1) <= 0.1
        above = p50 > 1.1 or p99 > 1.1
        print(f"p50 mlctl/hey {p50:.2f}x, p99 mlctl/hey {p99:.2f}x (goal within 10%): "
              + ("ok" if within else "NOT MET, " + ("mlctl slower" if above else "mlctl's latencies lower")))
    if "predict" in figures:
        p = figures["predict"]
        ratio = p["mlctl"] / p["curl"]
        print(f"serve predict vs curl ({PREDICTS} pairs, medians): curl {p['curl']:.1f} ms, mlctl request "
              f"{p['mlctl']:.1f} ms -> {ratio:.2f}x (goal <= 1.2x) {'ok' if ratio <= 1.2 else 'NOT MET'}; "
              f"mlctl process wall {p['wall']:.0f} ms")


if __name__ == "__main__":
    sys.exit(main())
