"""The pod usage feeder's pure parts (mlctl/sandbox/metrics.py): reading a process session from /proc, the
CPU rate, the ResourceUsage it publishes, and which pods it measures."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlctl.sandbox import metrics

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def fake_proc(tmp_path: Path, procs: dict[int, tuple[int, str, tuple[int, int, int, int], int]]) -> Path:
    """A /proc with {pid: (session, comm, (utime, stime, cutime, cstime), rss pages)}."""
    root = tmp_path / "proc"
    root.mkdir()
    (root / "self").mkdir()  # not a pid: skipped
    for pid, (sid, comm, times, rss) in procs.items():
        d = root / str(pid)
        d.mkdir()
        # fields: pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
        # cutime cstime ...
        fields = ["S", "1", str(sid), str(sid), "0", "-1", "0", "0", "0", "0", "0", *map(str, times), "20", "10"]
        (d / "stat").write_text(f"{pid} ({comm}) {' '.join(fields)}\n")
        (d / "statm").write_text(f"1000 {rss} 10 1 0 50 0\n")
    return root


def test_session_usage_sums_cpu_and_resident_memory_of_every_process_of_the_session(tmp_path):
    proc = fake_proc(tmp_path, {
        100: (100, "python", (50, 10, 5, 1), 2000),
        101: (100, "worker (x) y", (30, 4, 0, 0), 500),  # a name with spaces and parentheses
        200: (200, "other", (999, 999, 0, 0), 9999),  # another session
    })
    cpu, rss = metrics.session_usage(100, proc)
    assert cpu == pytest.approx((50 + 10 + 5 + 1 + 30 + 4) / TICKS)
    assert rss == 2500 * PAGE
    assert metrics.session_usage(300, proc) is None


def test_session_usage_of_a_real_busy_process_grows():
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
    try:
        first = metrics.session_usage(child.pid)
        deadline = time.monotonic() + 30
        later = first
        while later[0] <= first[0] and time.monotonic() < deadline:
            time.sleep(0.1)
            later = metrics.session_usage(child.pid)
        assert later[0] > first[0]
        assert later[1] > 0
    finally:
        child.kill()
        child.wait()


def test_cpu_rate():
    assert metrics.cpu_rate(None, (10.0, 5.0)) is None
    assert metrics.cpu_rate((10.0, 5.0), (12.0, 6.5)) == pytest.approx(0.75)
    assert metrics.cpu_rate((10.0, 5.0), (12.0, 1.0)) is None  # counter went down: another process
    assert metrics.cpu_rate((10.0, 5.0), (10.0, 6.0)) is None


def test_quantities():
    assert metrics.quantity_cpu(0.0) == "1m"
    assert metrics.quantity_cpu(0.2504) == "250m"
    assert metrics.quantity_cpu(1.5) == "1500m"
    assert metrics.quantity_memory(10 * 1024 * 1024 + 5) == "10240Ki"
    assert metrics.quantity_memory(0) == "1Ki"


def pod(name: str, image: str = "mlctl.sandbox/kserve:1", phase: str = "Running", cid: str | None = "mlctl://42",
        running: bool = True, deleting: bool = False) -> dict:
    status = {"phase": phase}
    if cid is not None:
        status["containerStatuses"] = [{"name": "main", "containerID": cid,
                                        "state": {"running": {}} if running else {"waiting": {}}}]
    meta = {"name": name, "namespace": "ns", "uid": f"uid-{name}"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "spec": {"containers": [{"name": "main", "image": image}]}, "status": status}


def test_real_pid_only_for_running_real_pods():
    assert metrics.real_pid(pod("a")) == 42
    assert metrics.real_pid(pod("b", image="nginx")) is None
    assert metrics.real_pid(pod("c", phase="Pending")) is None
    assert metrics.real_pid(pod("d", cid=None)) is None
    assert metrics.real_pid(pod("e", running=False)) is None
    assert metrics.real_pid(pod("f", deleting=True)) is None
    assert metrics.real_pid(pod("g", cid="mlctl://x")) is None


def test_resource_usage_is_owned_by_its_pod():
    obj = metrics.resource_usage(pod("a"), 0.25, 64 * 1024 * 1024)
    assert obj["kind"] == "ResourceUsage" and obj["apiVersion"] == "kwok.x-k8s.io/v1alpha1"
    assert (obj["metadata"]["name"], obj["metadata"]["namespace"]) == ("a", "ns")
    assert obj["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Pod", "name": "a", "uid": "uid-a"}]
    assert obj["spec"]["usages"] == [{"usage": {"cpu": {"value": "250m"}, "memory": {"value": "65536Ki"}}}]


class FakeKube:
    def __init__(self, pods):
        self.pods = pods
        self.applied = []

    def list(self, kind, namespace=None, *, field_selector=None, what=None):
        assert (kind, field_selector) == ("Pod", "status.phase=Running")
        return self.pods

    def apply(self, obj, manager, force=True):
        self.applied.append(obj)
        return obj


def test_the_feeder_publishes_a_rate_from_the_second_round_on_and_forgets_gone_pods():
    clock = iter([0.0, 3.0, 6.0]).__next__
    cpu = {42: iter([10.0, 11.5, 11.5]), 43: iter([1.0, 1.0, 1.0])}
    kube = FakeKube([pod("a"), pod("b", image="nginx"), pod("c", cid="mlctl://43")])
    feeder = metrics.Feeder(kube, logging.getLogger("test"), usage=lambda pid: (next(cpu[pid]), 1 << 20),
                            clock=clock)
    assert feeder.once() == {}  # first sample: no rate yet
    assert feeder.once() == {"ns/a": (pytest.approx(0.5), 1 << 20), "ns/c": (0.0, 1 << 20)}
    assert [o["spec"]["usages"][0]["usage"]["cpu"]["value"] for o in kube.applied] == ["500m", "1m"]
    kube.pods = [pod("a")]
    assert set(feeder.once()) == {"ns/a"}
    assert set(feeder.samples) == {"uid-a"}


def test_the_feeder_starts_over_when_a_pod_restarted_with_another_pid():
    clock = iter([0.0, 3.0, 6.0]).__next__
    values = iter([100.0, 0.5, 1.1])
    kube = FakeKube([pod("a")])
    feeder = metrics.Feeder(kube, logging.getLogger("test"), usage=lambda pid: (next(values), 1), clock=clock)
    feeder.once()
    kube.pods = [pod("a", cid="mlctl://77")]
    assert feeder.once() == {}  # a new process: its first sample
    assert feeder.once()["ns/a"][0] == pytest.approx(0.2)


def test_aggregation_flags_only_on_local(tmp_path):
    from mlctl.sandbox.component import Context

    ctx = Context(tmp_path, [])
    agg = metrics.Aggregation()
    assert agg.apiserver_flags(ctx, "gcp") == []
    flags = agg.apiserver_flags(ctx, "local")
    assert f"--requestheader-client-ca-file={tmp_path / 'pki' / 'ca.crt'}" in flags
    assert "--requestheader-allowed-names=front-proxy-client" in flags
    assert f"--proxy-client-cert-file={tmp_path / 'pki' / 'front-proxy-client.crt'}" in flags
    assert (tmp_path / "pki" / "front-proxy-client.key").exists()
