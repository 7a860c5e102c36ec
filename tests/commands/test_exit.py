"""main() ends the process with os._exit after the atexit handlers ran and stdout/stderr were flushed
(main._exit): nothing a normal exit would have written or removed may be lost, and the exit code stays."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO

# Registers an atexit handler and optionally leaves a non-daemon thread running, then runs mlctl's main.
PROBE = """
import atexit, sys, threading, time
atexit.register(lambda: print("atexit handler ran", file=sys.stderr))
if sys.argv[1] == "thread":
    def late():
        time.sleep(0.3)
        print("thread finished", file=sys.stderr)
    threading.Thread(target=late).start()
sys.argv = ["mlctl", *sys.argv[2:]]
from mlctl.main import main
main()
"""


def _main(*args: str, mode: str = "plain") -> subprocess.CompletedProcess:
    # buffered streams, as on a user's machine (PYTHONUNBUFFERED would hide output lost without a flush)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run([sys.executable, "-c", PROBE, mode, *args], capture_output=True, text=True,
                          timeout=60, cwd=REPO, env=env)


def test_output_and_exit_code_survive_the_fast_exit(platform):
    version = _main("--version")  # answered before the command tree: nothing but main flushes its stdout
    assert version.returncode == 0 and version.stdout == "mlctl 0.1.0\n"
    schema = _main("train", "schema")
    assert schema.returncode == 0
    assert schema.stdout.rstrip().endswith("}") and '"properties"' in schema.stdout  # the whole document
    assert schema.stderr.strip().splitlines()[-1] == "atexit handler ran"
    missing = _main("train", "missing/spec.yaml")
    assert missing.returncode == 4
    assert missing.stderr.splitlines()[0] == "error: spec file missing/spec.yaml does not exist"
    assert missing.stderr.strip().splitlines()[-1] == "atexit handler ran"


def test_a_live_thread_is_waited_for(platform):
    done = _main("--version", mode="thread")
    assert done.returncode == 0 and done.stdout == "mlctl 0.1.0\n"
    assert "thread finished" in done.stderr.splitlines()
