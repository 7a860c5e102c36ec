"""A load test's numbers: latency percentiles, throughput, errors by kind and the replica timeline.

Workers only append (list.append is atomic under the GIL, so the hot path takes no lock); the live view and
the summary read snapshots. Percentiles are nearest-rank over every request that got an answer.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field


def percentile(ordered: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty): the smallest value with at least p%
    of the values at or below it."""
    if not ordered:
        return None
    if p <= 0:
        return ordered[0]
    rank = math.ceil(p / 100 * len(ordered))
    return ordered[min(len(ordered), max(rank, 1)) - 1]


@dataclass
class Recorder:
    started: float = field(default_factory=time.monotonic)
    latencies: list[float] = field(default_factory=list)  # seconds, answered requests (any status)
    done: list[float] = field(default_factory=list)  # completion times (monotonic), for windowed rates
    errors: Counter = field(default_factory=Counter)
    timeline: list[dict] = field(default_factory=list)  # {"t": seconds since start, "replicas", "ready", "desired"}
    ended: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def success(self, seconds: float, now: float) -> None:
        self.latencies.append(seconds)
        self.done.append(now)

    def failure(self, kind: str, now: float, seconds: float | None = None) -> None:
        with self._lock:
            self.errors[kind] += 1
        self.done.append(now)
        if seconds is not None:
            self.latencies.append(seconds)

    def replicas(self, now: float, replicas: int, ready: int, desired: int | None) -> None:
        point = {"t": round(now - self.started, 1), "replicas": replicas, "ready": ready, "desired": desired}
        last = self.timeline[-1] if self.timeline else None
        if last is None or any(last[k] != point[k] for k in ("replicas", "ready", "desired")):
            self.timeline.append(point)

    def finish(self, now: float | None = None) -> None:
        self.ended = now if now is not None else time.monotonic()

    @property
    def requests(self) -> int:
        return len(self.done)

    def rate(self, now: float, window: float = 5.0) -> float:
        """Requests completed per second over the last `window` seconds."""
        done = self.done
        n, i = 0, len(done) - 1
        while i >= 0 and done[i] >= now - window:
            n, i = n + 1, i - 1
        span = min(window, max(now - self.started, 1e-9))
        return n / span

    def summary(self, concurrency: int, target_rps: float | None = None) -> dict:
        end = self.ended if self.ended is not None else time.monotonic()
        elapsed = max(end - self.started, 1e-9)
        ordered = sorted(self.latencies)
        def ms(v):
            return (None if v is None else round(v * 1000, 2))
        errors = dict(sorted(self.errors.items()))
        return {
            "requests": self.requests, "ok": self.requests - sum(errors.values()),
            "errors": errors, "duration": round(elapsed, 2), "concurrency": concurrency,
            "targetRps": target_rps, "rps": round(self.requests / elapsed, 2),
            "latencyMs": {"p50": ms(percentile(ordered, 50)), "p90": ms(percentile(ordered, 90)),
                          "p99": ms(percentile(ordered, 99)), "max": ms(ordered[-1] if ordered else None),
                          "mean": ms(sum(ordered) / len(ordered) if ordered else None)},
            "replicas": list(self.timeline),
        }


def error_kind(status: int | None = None, exc: BaseException | None = None) -> str:
    """A short, stable name for what went wrong with one request: "http 503", "timeout", "connection"."""
    if status is not None:
        return f"http {status}"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, (ConnectionError, OSError)):
        return "connection"
    return type(exc).__name__ if exc is not None else "unknown"


class Pacer:
    """Spreads at most `rps` request starts per second over all workers (None: as fast as they go)."""

    def __init__(self, rps: float | None, start: float):
        self.interval = 1.0 / rps if rps else 0.0
        self.next = start
        self._lock = threading.Lock()

    def slot(self) -> float:
        """The monotonic time at which the caller may send its next request."""
        if not self.interval:
            return 0.0
        with self._lock:
            at = self.next
            self.next = max(self.next + self.interval, time.monotonic() - 1.0)  # no burst after a stall
            return at
