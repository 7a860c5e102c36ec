"""Bench: what the policy and capacity checks add to `mlctl train SPEC --check --cluster gcp`.

Runs the real CLI (one process per run, as a user would) against the running sandbox as alice, alternating
runs with the checks and without them (MLCTL_BENCH_SKIP_PREFLIGHT=1, honoured with --check only), and prints
the medians and their difference (goal: <= 30 ms). Figures are printed even when cleanup fails.

    MLCTL_SANDBOX_DIR=... python bench/burst.py [RUNS]
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MLCTL = str(Path(sys.executable).parent / "mlctl")
SPEC = """name: benchburst
framework: tensorflow
image: registry.example.org/ml/test:1
workers: 2
resources: {gpus: 8, cpu: "4", memory: 16Gi, pool: gpu}
"""


def main(runs: int) -> None:
    from bytecode import compile_package

    compile_package()
    home = Path(tempfile.mkdtemp(prefix="mlctl-bench-burst-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLCTL_") or k == "MLCTL_SANDBOX_DIR"}
    env.update(XDG_CONFIG_HOME=str(home / "config"), XDG_CACHE_HOME=str(home / "cache"),
               XDG_STATE_HOME=str(home / "state"), KUBECONFIG=str(home / "kubeconfig"))
    spec = home / "spec.yaml"
    spec.write_text(SPEC)
    times: dict[str, list[float]] = {"with checks": [], "without": []}
    try:
        subprocess.run([MLCTL, "sandbox", "login", "alice", "--no-kubeconfig"], env=env, check=True,
                       capture_output=True, timeout=120)
        argv = [MLCTL, "train", str(spec), "--check", "--cluster", "gcp"]
        subprocess.run(argv, env=env, check=True, capture_output=True, timeout=60)  # warm the token cache
        for _ in range(runs):
            for label, extra in (("with checks", {}), ("without", {"MLCTL_BENCH_SKIP_PREFLIGHT": "1"})):
                began = time.perf_counter()
                proc = subprocess.run(argv, env={**env, **extra}, capture_output=True, text=True, timeout=60)
                times[label].append(time.perf_counter() - began)
                if proc.returncode != 0:
                    print(f"{label}: exit {proc.returncode}: {proc.stderr.strip()}", file=sys.stderr)
    finally:
        with_checks = statistics.median(times["with checks"]) if times["with checks"] else float("nan")
        without = statistics.median(times["without"]) if times["without"] else float("nan")
        print(f"runs: {len(times['with checks'])} each (alternating)")
        print(f"median with policy + capacity checks: {with_checks * 1000:.0f} ms")
        print(f"median without:                       {without * 1000:.0f} ms")
        print(f"added: {(with_checks - without) * 1000:.0f} ms (goal <= 30 ms)")
        try:
            shutil.rmtree(home)
        except OSError as e:
            print(f"cleanup failed: {e}", file=sys.stderr)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 15)
