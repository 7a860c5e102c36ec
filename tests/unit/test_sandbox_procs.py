"""The sandbox's process table (mlctl/sandbox/procs.py) with real child processes."""

from __future__ import annotations

import time

import pytest

from mlctl.sandbox.procs import SandboxError, State, running


def _wait_for_file(path, timeout=10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"{path} was not written")


def test_restart_starts_the_process_again_as_it_was_started(tmp_path):
    state = State.load(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    argv = ["sh", "-c", 'echo "$GREETING $(pwd)" > "$OUT"; sleep 60']
    first = state.start("greeter", argv, env={"GREETING": "hello", "OUT": str(tmp_path / "out1")}, cwd=work)
    assert _wait_for_file(tmp_path / "out1") == f"hello {work}"
    try:
        state.data["processes"]["greeter"]["env"]["OUT"] = str(tmp_path / "out2")  # to see the second start
        state.save()
        second = State.load(tmp_path).restart("greeter", timeout=5)
        assert second != first and not running(first, "sh") and running(second, "sh")
        assert _wait_for_file(tmp_path / "out2") == f"hello {work}"
    finally:
        State.load(tmp_path).stop("greeter", timeout=5)


def test_restart_refuses_a_process_recorded_without_its_environment(tmp_path):
    state = State.load(tmp_path)
    state.data["processes"]["old"] = {"pid": 1, "argv": ["x"], "log": "x", "started": 0}
    state.save()
    with pytest.raises(SandboxError, match="not started by this version"):
        State.load(tmp_path).restart("old")


def test_a_secret_environment_reaches_the_process_but_not_the_state_file(tmp_path):
    """How the S3 server gets its root secret: in the child's environment, never in state.json nor in this
    process's environment; a changed secret restarts the process, the same one keeps it."""
    import os

    state = State.load(tmp_path)
    argv = ["sh", "-c", 'echo "$TOKEN" > "$OUT"; sleep 60']
    env = {"OUT": str(tmp_path / "out")}
    try:
        assert state.ensure("keeper", argv, env=env, secret_env={"TOKEN": "s3cr3t-1"}) == "started"
        assert _wait_for_file(tmp_path / "out") == "s3cr3t-1"
        assert "s3cr3t" not in (tmp_path / "state.json").read_text() and "TOKEN" not in os.environ
        assert State.load(tmp_path).ensure("keeper", argv, env=env, secret_env={"TOKEN": "s3cr3t-1"}) == "kept"
        (tmp_path / "out").unlink()
        assert State.load(tmp_path).ensure("keeper", argv, env=env, secret_env={"TOKEN": "s3cr3t-2"}) == "restarted"
        assert _wait_for_file(tmp_path / "out") == "s3cr3t-2"
    finally:
        State.load(tmp_path).stop("keeper", timeout=5)
