"""Following a job: its state transitions on stderr (a live line on a terminal) and the lead replica's logs
on stdout. Ctrl-C stops following, never the job."""

from __future__ import annotations

import threading
import time

from mlctl.errors import MlctlError, Unavailable


def _elapsed(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s"


def lead_pod(jobs, job: dict) -> str | None:
    from mlctl.kube.jobs import KINDS, replica_of

    kind = KINDS[job["kind"]]
    pods = jobs.pods(job["metadata"]["name"])
    lead = [p for p in pods if replica_of(p)[0] == kind.lead.lower() and replica_of(p)[1] in ("0", None)]
    chosen = lead or sorted(pods, key=lambda p: p["metadata"]["name"])
    return chosen[0]["metadata"]["name"] if chosen else None


def _stream(f, jobs, pod: str, stop: threading.Event) -> None:
    try:
        for line in jobs.stream_logs(pod, follow=True):
            if stop.is_set():
                return
            f.io.stdout.write(line)
            f.io.stdout.flush()
    except MlctlError as e:
        f.io.warn(f"logs of {pod} unavailable: {e.message}")
    except Exception:  # noqa: BLE001 - the connection is closed under us when the job ends
        pass


POD_POLL_SECONDS = 2.0


def _watch_pods(f, jobs, name: str, stop: threading.Event) -> None:
    """Say, within seconds, when a pod cannot be scheduled (with the scheduler's reason) and when a pod was
    recreated (its node was lost, or it failed with a retryable exit code). The job's own status changes
    for neither, so its watch cannot tell."""
    from mlctl.kube.jobs import unschedulable

    uids: dict[str, str] = {}
    said: dict[str, str] = {}
    while True:
        try:
            pods = jobs.pods(name)
        except Exception:  # noqa: BLE001 - a failed poll is retried; the job watch reports lost servers
            pods = []
        for pod, why in sorted(unschedulable(pods).items()):
            if said.get(pod) != why:
                f.io.warn(f"pod {pod} cannot be scheduled: {why}")
                said[pod] = why
        for pod in pods:
            pod_name, uid = pod["metadata"]["name"], pod["metadata"].get("uid", "")
            if uids.get(pod_name, uid) != uid:
                f.io.note(f"pod {pod_name} was recreated (its node was lost, or it failed and is retried)")
            uids[pod_name] = uid
        if stop.wait(POD_POLL_SECONDS):
            return


def follow(f, jobs, job: dict, *, logs: bool, timeout: float | None = None) -> dict:
    """Watch job until it ends; raise when it failed (exit 1) or the wait timed out (exit 7)."""
    from mlctl.kube.jobs import KINDS, TERMINAL, reason, replicas_summary, state

    kind = KINDS[job["kind"]]
    name = job["metadata"]["name"]
    started = time.monotonic()
    last = None
    current = job
    stop = threading.Event()
    log_thread = None
    status = f.io.err_console.status(f"{kind.short}/{name}") if f.io.stderr_tty else None
    if status:
        status.start()
    pods_done = threading.Event()
    pod_thread = threading.Thread(target=_watch_pods, args=(f, jobs, name, pods_done), daemon=True)
    pod_thread.start()
    try:
        for current in jobs.watch(job, timeout):
            st, summary = state(current), replicas_summary(current)
            line = f"{kind.short}/{name}: {st:<10} {summary}"
            if (st, summary) != last:
                if status:
                    status.console.print(line)
                else:
                    f.io.note(line)
                last = (st, summary)
            if status:
                status.update(f"{line}  elapsed {_elapsed(time.monotonic() - started)}")
            if logs and log_thread is None and st in ("Running", *TERMINAL):
                pod = lead_pod(jobs, current)
                if pod:
                    log_thread = threading.Thread(target=_stream, args=(f, jobs, pod, stop), daemon=True)
                    log_thread.start()
    except KeyboardInterrupt:
        stop.set()
        if status:
            status.stop()
        f.io.note(f"stopped following; {kind.short}/{name} keeps running (see 'mlctl train status {name}')")
        raise
    finally:
        pods_done.set()
        if status:
            status.stop()
    if log_thread:
        log_thread.join(timeout=5)
        stop.set()
    took = _elapsed(time.monotonic() - started)
    if state(current) not in TERMINAL:
        raise Unavailable(f"{kind.short}/{name} is still {state(current)} after {took}",
                          hint=f"keep watching with 'mlctl train wait {name}'")
    if state(current) == "Failed":
        raise MlctlError(f"{kind.short}/{name} failed: {reason(current) or 'see mlctl train events ' + name}",
                         hint=f"'mlctl train logs {name} --replica worker-N' shows a failed replica's logs")
    f.io.note(f"{kind.short}/{name} succeeded after {took}")
    return current
