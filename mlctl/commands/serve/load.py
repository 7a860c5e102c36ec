"""mlctl serve load NAME --data FILE --concurrency N --duration S [--rps R]: a bounded load test through the
gateway, with a live view of requests/s, latency percentiles, errors and the predictor's replicas.

N worker threads, each with one keep-alive HTTPS connection, send the same request until the duration
ends (or Ctrl-C, which ends it with the summary so far and exit 130). The replica count is read from the
predictor's Deployment and HPA every few seconds, during the load and for --cooldown seconds after it.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from dataclasses import dataclass

import click

from mlctl.cli import mlctl_command

SWITCH_INTERVAL = 0.001  # seconds; CPython's default is 0.005


@dataclass
class Options:
    name: str
    data: str
    concurrency: int = 8
    duration: float = 30.0
    rps: float | None = None
    protocol: str = "v1"
    interval: float = 3.0
    cooldown: float = 0.0


def worker(gateway, path: str, body: bytes, rec, stop: threading.Event, pacer) -> None:
    from mlctl.serve.stats import error_kind

    try:
        while not stop.is_set():
            at = pacer.slot()
            if at:
                delay = at - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    return
            try:
                answer = gateway.post(path, body)
            except Exception as e:  # noqa: BLE001 - every failure is counted by kind, the test goes on
                if stop.is_set():
                    return
                rec.failure(error_kind(exc=e), time.monotonic())  # no answer: no latency
                continue
            if answer.status < 400:
                rec.success(answer.seconds, time.monotonic())
            else:
                rec.failure(error_kind(answer.status), time.monotonic(), answer.seconds)
    finally:
        gateway.close()


class Replicas:
    """Reads the predictor's Deployment (replicas, ready) and HPA (desired) into the recorder."""

    def __init__(self, kube, namespace: str, name: str, rec):
        self.kube, self.namespace, self.name, self.rec = kube, namespace, name, rec
        self.last: dict | None = None
        self.broken = False

    def poll(self) -> None:
        from mlctl.commands.serve.common import predictor_objects
        from mlctl.errors import MlctlError
        from mlctl.serve.isvc import replicas

        if self.broken:
            return
        try:
            deployment, hpa = predictor_objects(self.kube, self.namespace, self.name)
        except MlctlError:
            return  # a slow or restarting API server must not stop the load; the next poll tries again
        if deployment is None:
            return  # not made yet, or not readable: the timeline shows only what was seen
        r = replicas(deployment)
        desired = ((hpa or {}).get("status") or {}).get("desiredReplicas")
        self.last = {"replicas": r["current"], "ready": r["ready"], "desired": desired}
        self.rec.replicas(time.monotonic(), r["current"], r["ready"], desired)


def line(rec, now: float, replicas: dict | None) -> str:
    from mlctl.serve.stats import percentile

    ordered = sorted(rec.latencies)
    pct = [percentile(ordered, p) for p in (50, 90, 99)]
    ms = [f"{v * 1000:.0f}ms" if v is not None else "-" for v in pct]
    errors = sum(rec.errors.values())
    reps = f"{replicas['ready']}/{replicas['replicas']}" + (
        f" (hpa {replicas['desired']})" if replicas and replicas.get("desired") is not None else "") \
        if replicas else "-"
    return (f"{now - rec.started:5.0f}s  requests {rec.requests}  rps {rec.rate(now):.1f}  p50 {ms[0]}  "
            f"p90 {ms[1]}  p99 {ms[2]}  errors {errors}  replicas {reps}")


def live_table(rec, now: float, replicas: dict | None, opts: Options):
    from rich.table import Table

    from mlctl.serve.stats import percentile

    ordered = sorted(rec.latencies)
    table = Table(title=f"serve load {opts.name}: {opts.concurrency} workers, {now - rec.started:.0f}s of "
                        f"{opts.duration:g}s", box=None, show_edge=False)
    for head in ("requests", "rps (5s)", "p50", "p90", "p99", "errors", "replicas ready/current (hpa)"):
        table.add_column(head, justify="right")
    pct = [percentile(ordered, p) for p in (50, 90, 99)]
    errors = ", ".join(f"{k}: {v}" for k, v in sorted(rec.errors.items())) or "0"
    reps = "-"
    if replicas:
        reps = f"{replicas['ready']}/{replicas['replicas']}" + (
            f" ({replicas['desired']})" if replicas.get("desired") is not None else "")
    table.add_row(str(rec.requests), f"{rec.rate(now):.1f}",
                  *[f"{v * 1000:.1f} ms" if v is not None else "-" for v in pct], errors, reps)
    return table


def print_summary(f, summary: dict) -> None:
    from mlctl.output import print_object

    def render(io, s):
        lat = s["latencyMs"]
        io.out(f"requests   {s['requests']} in {s['duration']:g}s ({s['rps']:g}/s, {s['concurrency']} workers"
               + (f", target {s['targetRps']:g}/s" if s["targetRps"] else "") + ")")
        io.out(f"ok         {s['ok']}")
        io.out("errors     " + (", ".join(f"{k}: {v}" for k, v in s["errors"].items()) or "0"))
        def fmt(v):
            return ("-" if v is None else f"{v:.1f} ms")
        io.out(f"latency    p50 {fmt(lat['p50'])}  p90 {fmt(lat['p90'])}  p99 {fmt(lat['p99'])}  "
               f"max {fmt(lat['max'])}  mean {fmt(lat['mean'])}")
        io.out("replicas   " + ("  ".join(f"{p['t']:g}s: {p['ready']}/{p['replicas']}"
                                          + (f" (hpa {p['desired']})" if p.get("desired") is not None else "")
                                          for p in s["replicas"]) or "-"))
        if s.get("interrupted"):
            io.out("(interrupted: the figures cover the requests until Ctrl-C)")

    print_object(f.io, summary, f.output, name=f"inferenceservice/{summary['name']}", render=render)


def run(f, opts: Options) -> None:
    from mlctl.commands.serve.common import gateway_for
    from mlctl.commands.serve.predict import prepare, send
    from mlctl.errors import UsageError
    from mlctl.serve.stats import Pacer, Recorder

    if opts.concurrency < 1 or opts.concurrency > 1024:
        raise UsageError("--concurrency must be between 1 and 1024")
    if not 0 < opts.duration <= 3600:
        raise UsageError("--duration must be more than 0 and at most 3600 seconds")
    if opts.rps is not None and opts.rps <= 0:
        raise UsageError("--rps must be more than 0")
    t, path, body = prepare(f, opts.name, opts.data, opts.protocol)
    kube = f.kube(t.cluster["name"])
    gateway = gateway_for(f, t.cluster)
    # One request first: a refused token, a forbidden service or no ready replica is an error with its exit
    # code, not thousands of counted failures.
    send(gateway, path, body, f"inferenceservice/{opts.name}")
    gateway.close()
    rec = Recorder()
    replicas = Replicas(kube, t.namespace, opts.name, rec)
    replicas.poll()
    stop = threading.Event()
    pacer = Pacer(opts.rps, time.monotonic())
    threads = [threading.Thread(target=worker, args=(gateway.clone(), path, body, rec, stop, pacer),
                                name=f"load-{i}", daemon=True) for i in range(opts.concurrency)]
    # Each latency is timed in its worker thread: a thread whose answer has arrived waits for the interpreter
    # lock up to the switch interval (5 ms by default), and a collection pauses every thread; both would
    # show in the tail as the server's time. The objects alive now are left out of every collection.
    sys.setswitchinterval(SWITCH_INTERVAL)
    gc.freeze()
    rec.started = time.monotonic()
    for th in threads:
        th.start()
    interrupted = False
    live = None
    if f.io.stderr_tty:
        from rich.live import Live

        live = Live(live_table(rec, rec.started, replicas.last, opts), console=f.io.err_console,
                    refresh_per_second=2, transient=False)
        live.start()
    try:
        deadline = rec.started + opts.duration
        next_poll = rec.started + opts.interval
        next_line = rec.started + 5
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            stop.wait(min(0.5, deadline - now))
            now = time.monotonic()
            if now >= next_poll:
                replicas.poll()
                next_poll = now + opts.interval
            if live is not None:
                live.update(live_table(rec, now, replicas.last, opts))
            elif now >= next_line:
                f.io.err(line(rec, now, replicas.last))
                next_line = now + 5
        stop.set()
        rec.finish()
        if opts.cooldown > 0:
            cool_down(f, replicas, opts, live)
    except KeyboardInterrupt:
        interrupted = True
        stop.set()
        if rec.ended is None:
            rec.finish()
    finally:
        stop.set()
        if live is not None:
            live.stop()
        for th in threads:
            th.join(timeout=2)
    summary = {"name": opts.name, "cluster": t.cluster["name"], "namespace": t.namespace,
               "protocol": opts.protocol, **rec.summary(opts.concurrency, opts.rps)}
    if interrupted:
        summary["interrupted"] = True
    print_summary(f, summary)
    if interrupted:
        raise KeyboardInterrupt


def cool_down(f, replicas: Replicas, opts: Options, live) -> None:
    """After the load: keep reading the replicas until they are back at the service's minimum (the HPA
    scaled down) or --cooldown seconds have passed."""
    from mlctl.serve.isvc import bounds

    lo = bounds(replicas.kube.get("InferenceService", opts.name, replicas.namespace))[0]
    f.io.note(f"load ended; watching replicas for up to {opts.cooldown:g}s until they are back at {lo}")
    end = time.monotonic() + opts.cooldown
    while time.monotonic() < end:
        time.sleep(min(opts.interval, max(0.0, end - time.monotonic())))
        replicas.poll()
        last = replicas.last or {}
        if live is None:
            f.io.err(f"  replicas {last.get('ready')}/{last.get('replicas')} (hpa {last.get('desired')})")
        if last.get("replicas") == lo and last.get("desired") in (None, lo) and \
                any(p["replicas"] > lo for p in replicas.rec.timeline):
            return


@mlctl_command("load")
@click.argument("name")
@click.option("--data", required=True, metavar="FILE", help="The request body (JSON) every request sends.")
@click.option("--concurrency", "-c", type=int, default=8, show_default=True, help="Requests in flight.")
@click.option("--duration", "-d", type=float, default=30.0, show_default=True, help="Seconds of load.")
@click.option("--rps", type=float, help="At most this many requests per second in all (default: no limit).")
@click.option("--protocol", type=click.Choice(["v1", "v2"]), default="v1", show_default=True)
@click.option("--interval", type=float, default=3.0, show_default=True, help="Seconds between replica readings.")
@click.option("--cooldown", type=float, default=0.0, show_default=True,
              help="After the load, keep reading replicas this long, until they are back at the minimum.")
@click.pass_obj
def command(f, name, data, concurrency, duration, rps, protocol, interval, cooldown):
    """Load-test a service: live requests/s, latency percentiles, errors and replicas.

    \b
    mlctl serve load gen3d --data request.json --concurrency 32 --duration 90
    mlctl serve load gen3d --data request.json -c 4 -d 30 --rps 20 -o json
    """
    run(f, Options(name=name, data=data, concurrency=concurrency, duration=duration, rps=rps, protocol=protocol,
                   interval=interval, cooldown=cooldown))
