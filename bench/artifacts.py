"""mlctl artifacts get/put against `aws s3 cp` in one run, on the sandbox's S3 (`make bench-artifacts`).

Needs a running sandbox with alice's namespace and Secret (`mlctl sandbox up`, `mlctl admin sync` as the
admin, `mlctl sandbox s3-secrets`). awscli is installed once into its own venv under the cache
($XDG_CACHE_HOME/mlctl/bench/awscli), never into mlctl's dependencies. Both tools use the same endpoint,
alice's credentials (awscli through its environment) and the sandbox CA (`--ca-bundle`).

Cases: one object of SIZE_MB (1 GiB), and FILES files of 64 KiB; each uploaded then downloaded by both
tools. Prints MB/s and files/s for both and the ratios (goals: >= 1.0x for the large object, >= 2x for the
small files), even when cleanup fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

AWSCLI_VERSION = "1.46.2"
SIZE_MB = int(os.environ.get("BENCH_SIZE_MB", "1024"))
FILES = int(os.environ.get("BENCH_FILES", "1000"))
SMALL = 64 * 1024
MLCTL = str(Path(sys.executable).parent / "mlctl")


def awscli() -> Path:
    from mlctl.paths import cache_dir

    home = cache_dir() / "bench" / f"awscli-{AWSCLI_VERSION}"
    exe = home / "bin" / "aws"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)
        subprocess.run([str(home / "bin" / "pip"), "install", "-q", f"awscli=={AWSCLI_VERSION}"], check=True)
    return exe


def run(argv: list[str], env: dict) -> float:
    began = time.monotonic()
    proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    seconds = time.monotonic() - began
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} ... exited {proc.returncode}: {proc.stderr.strip()[-400:]}")
    return seconds


def main() -> int:
    from bytecode import compile_package

    compile_package()
    import yaml

    from mlctl.sandbox import core, kdc, procs, s3
    from mlctl.storage.layout import new_run_id

    root = core.state_dir()
    state = procs.State.load(root)
    part = yaml.safe_load((root / "platform.yaml").read_text())["s3"]
    ca = s3.info(state)["ca_file"]
    access_key, secret = s3.user_credentials(root, "alice")
    aws = awscli()
    work = Path(tempfile.mkdtemp(prefix="mlctl-bench-artifacts-"))
    home = work / "home"
    env = {**os.environ, "XDG_CONFIG_HOME": str(home / "config"), "XDG_CACHE_HOME": str(home / "cache"),
           "MLCTL_SANDBOX_DIR": str(root)}
    env.pop("MLCTL_PLATFORM", None)
    aws_env = {"PATH": os.environ["PATH"], "HOME": str(home), "AWS_ACCESS_KEY_ID": access_key,
               "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": part["region"],
               "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required"}
    aws_args = ["--endpoint-url", part["endpoint"], "--ca-bundle", ca, "--only-show-errors"]
    users = kdc.info(state)["users"]
    login = subprocess.run([MLCTL, "login", "--platform", str(root / "platform.yaml"), "--password", "-u", "alice",
                            "--no-kubeconfig"], input=users["alice"] + "\n", env=env, capture_output=True, text=True)
    if login.returncode != 0:
        raise SystemExit(f"mlctl login failed: {login.stderr.strip()}")

    job = f"bench-{uuid.uuid4().hex[:6]}"
    run_a = new_run_id()
    base = f"s3://{part['buckets']['outputs']}/alice/{job}"
    big = work / "big" / "big.bin"
    small = work / "small"
    big.parent.mkdir(parents=True)
    small.mkdir()
    with open(big, "wb") as f:
        block = os.urandom(1024 * 1024)
        for _ in range(SIZE_MB):
            f.write(block)
    for i in range(FILES):
        (small / f"f{i:04d}.bin").write_bytes(os.urandom(SMALL))

    results: dict[str, dict[str, float]] = {}
    try:
        t = {}
        t["mlctl put big"] = run([MLCTL, "artifacts", "put", job, str(big)], env)
        # the first put started a run; later ones go to it (--run keeps both tools' keys apart)
        runs = subprocess.run([MLCTL, "artifacts", "ls", job, "--runs", "-o", "name"], env=env,
                              capture_output=True, text=True, check=True).stdout.split()
        run_m = runs[0].split("/", 1)[1]
        t["aws put big"] = run([str(aws), "s3", "cp", str(big), f"{base}/{run_a}/big.bin", *aws_args], aws_env)
        t["mlctl get big"] = run([MLCTL, "artifacts", "get", job, "big.bin", "--run", run_m, "-d",
                                  str(work / "m-big")], env)
        t["aws get big"] = run([str(aws), "s3", "cp", f"{base}/{run_a}/big.bin", str(work / "a-big" / "big.bin"),
                                *aws_args], aws_env)
        t["mlctl put small"] = run([MLCTL, "artifacts", "put", job, str(small), "--run", run_m], env)
        t["aws put small"] = run([str(aws), "s3", "cp", "--recursive", str(small), f"{base}/{run_a}/small/",
                                  *aws_args], aws_env)
        t["mlctl get small"] = run([MLCTL, "artifacts", "get", job, "small/", "--run", run_m, "-d",
                                    str(work / "m-small")], env)
        t["aws get small"] = run([str(aws), "s3", "cp", "--recursive", f"{base}/{run_a}/small/",
                                  str(work / "a-small"), *aws_args], aws_env)
        mb = SIZE_MB * 1024 * 1024 / 1e6
        for tool in ("mlctl", "aws"):
            results[tool] = {"put MB/s": mb / t[f"{tool} put big"], "get MB/s": mb / t[f"{tool} get big"],
                             "put files/s": FILES / t[f"{tool} put small"],
                             "get files/s": FILES / t[f"{tool} get small"]}
    finally:
        try:
            if results:
                print(f"one {SIZE_MB} MiB object, {FILES} files of 64 KiB (sandbox S3, versitygw)")
                print(f"{'':14}{'mlctl':>10}{'aws s3 cp':>12}{'ratio':>8}")
                for metric in ("put MB/s", "get MB/s", "put files/s", "get files/s"):
                    m, a = results["mlctl"][metric], results["aws"][metric]
                    goal = 1.0 if "MB/s" in metric else 2.0
                    print(f"{metric:14}{m:10.1f}{a:12.1f}{m / a:7.2f}x  (goal >= {goal:.1f}x)")
                sys.stdout.flush()
        finally:
            try:
                subprocess.run([MLCTL, "artifacts", "rm", job, "--yes"], env=env, capture_output=True, timeout=300)
                subprocess.run([str(aws), "s3", "rm", "--recursive", f"{base}/", *aws_args], env=aws_env,
                               capture_output=True, timeout=300)
            except Exception as e:  # noqa: BLE001 - the figures are printed already
                print(f"cleanup failed: {e}", file=sys.stderr)
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
