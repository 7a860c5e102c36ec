"""Start-up benchmark: mlctl against `python3 -c pass` and against kubectl, measured in the same run.

Prints the median wall time of each command over N runs and the ratios the project tracks:
  mlctl token (cached) / kubectl version --client   (goal <= 1.0: it runs on every kubectl call)
  mlctl --version      / kubectl version --client   (goal <= 1.0)
  mlctl --help         / kubectl --help             (goal <= 1.0)
  mlctl --version, token / python3 -c pass          (for information: what is left above the interpreter)
  completion request / kubectl __complete           (for information)
Usage: python bench/startup.py [--runs N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        sys.exit(f"bench: {name} not found (run 'make install')")
    return found


def _cached_token_home() -> dict:
    """A throw-away config and token cache holding a fresh token for cluster local of platform 'bench'."""
    import tempfile
    import time as _time

    home = Path(tempfile.mkdtemp(prefix="mlctl-bench-"))
    (home / "config" / "mlctl").mkdir(parents=True)
    (home / "config" / "mlctl" / "config.yaml").write_text("platform: bench\n")
    cache = home / "cache" / "mlctl" / "tokens" / "bench"
    cache.mkdir(parents=True)
    (cache / "cluster-local.json").write_text(json.dumps({"token": "bench", "expires_at": _time.time() + 86400}))
    return {"XDG_CONFIG_HOME": str(home / "config"), "XDG_CACHE_HOME": str(home / "cache")}


def measure(argv: list[str], runs: int, env: dict | None = None) -> float:
    """Median wall-clock seconds of argv over runs (after one warm-up run)."""
    env = {**os.environ, **(env or {})}
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    from bytecode import compile_package

    compile_package()
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    mlctl, kubectl = _tool("mlctl"), _tool("kubectl")
    token_env = _cached_token_home()
    complete_env = {"_MLCTL_COMPLETE": "bash_complete", "COMP_WORDS": "mlctl clusters li", "COMP_CWORD": "2"}
    cases = {
        "python3 -c pass": ([sys.executable, "-c", "pass"], None),
        "mlctl --version": ([mlctl, "--version"], None),
        "mlctl --help": ([mlctl, "--help"], None),
        "mlctl completion request": ([mlctl], complete_env),
        # as kubectl runs it from an mlctl-<cluster> context
        "mlctl token (cached)": ([mlctl, "token", "--platform", "bench", "--cluster", "local"], token_env),
        "kubectl version --client": ([kubectl, "version", "--client"], None),
        "kubectl --help": ([kubectl, "--help"], None),
        "kubectl __complete": ([kubectl, "__complete", "get", ""], None),
    }
    results = {name: measure(argv, args.runs, env) for name, (argv, env) in cases.items()}
    ratios = {
        "mlctl token (cached) / kubectl version --client":
            results["mlctl token (cached)"] / results["kubectl version --client"],
        "mlctl --version / kubectl version --client": results["mlctl --version"] / results["kubectl version --client"],
        "mlctl --version / python3 -c pass": results["mlctl --version"] / results["python3 -c pass"],
        "kubectl version --client / python3 -c pass":
            results["kubectl version --client"] / results["python3 -c pass"],
        "mlctl --help / kubectl --help": results["mlctl --help"] / results["kubectl --help"],
        "mlctl completion / python3 -c pass": results["mlctl completion request"] / results["python3 -c pass"],
        "mlctl token (cached) / python3 -c pass": results["mlctl token (cached)"] / results["python3 -c pass"],
        "mlctl completion / kubectl __complete":
            results["mlctl completion request"] / results["kubectl __complete"],
    }
    if args.json:
        print(json.dumps({"seconds": results, "ratios": ratios}, indent=2))
        return 0
    print(f"median of {args.runs} runs each")
    for name, seconds in results.items():
        print(f"  {name:<28} {seconds * 1000:7.1f} ms")
    print("ratios")
    for name, ratio in ratios.items():
        print(f"  {name:<48} {ratio:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
