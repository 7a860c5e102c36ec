"""One `admin sync` at a time: a coordination.k8s.io Lease, as client-go's leader election uses one.

A run takes the lease when it is free, released (no holder) or expired (renewTime + leaseDurationSeconds
is past, which is what a crashed holder leaves behind); creation and updates carry the resourceVersion
they read, so of two runs racing for it exactly one wins (the other gets 409 Conflict and keeps waiting).
The holder renews it from a thread every duration/3 and releases it at the end. The clock and the sleep
are injected, so the logic is tested without waiting.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Protocol

from mlctl.errors import Unavailable

log = logging.getLogger(__name__)


class Conflict(Exception):
    """Someone else changed the lease between our read and our write."""


class LeaseStore(Protocol):
    def get(self) -> dict | None: ...
    def create(self, lease: dict) -> dict: ...  # raises Conflict when it exists
    def replace(self, lease: dict) -> dict: ...  # raises Conflict on a stale resourceVersion


def identity() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def format_time(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> float | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def holder(lease: dict | None) -> str | None:
    return ((lease or {}).get("spec") or {}).get("holderIdentity") or None


def expires_at(lease: dict) -> float:
    spec = lease.get("spec") or {}
    renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime")) or 0.0
    return renewed + float(spec.get("leaseDurationSeconds") or 0)


def can_take(lease: dict | None, me: str, now: float) -> bool:
    """Free, released, ours already, or expired."""
    if lease is None:
        return True
    who = holder(lease)
    return who is None or who == me or expires_at(lease) <= now


class LeaseLock:
    def __init__(self, store: LeaseStore, name: str, namespace: str, *, me: str | None = None,
                 duration: int = 30, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep):
        self.store, self.name, self.namespace = store, name, namespace
        self.me = me or identity()
        self.duration = duration
        self.clock, self.sleep = clock, sleep
        self._lease: dict | None = None
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one attempt ---------------------------------------------------------------------------------
    def _body(self, current: dict | None, now: float) -> dict:
        spec = dict((current or {}).get("spec") or {})
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder(current) != self.me:
            spec["acquireTime"] = format_time(now)
            if current is not None and holder(current):
                transitions += 1
        spec.update({"holderIdentity": self.me, "leaseDurationSeconds": self.duration,
                     "renewTime": format_time(now), "leaseTransitions": transitions})
        meta = {"name": self.name, "namespace": self.namespace,
                "labels": {"app.kubernetes.io/managed-by": "mlctl"}}
        if current is not None:
            meta["resourceVersion"] = current["metadata"]["resourceVersion"]
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}

    def try_acquire(self) -> bool:
        current = self.store.get()
        now = self.clock()
        if not can_take(current, self.me, now):
            return False
        try:
            body = self._body(current, now)
            self._lease = self.store.create(body) if current is None else self.store.replace(body)
        except Conflict:
            return False
        return True

    def acquire(self, timeout: float, poll: float = 1.0) -> None:
        """Take the lease, waiting up to timeout seconds; Unavailable (exit 7) naming the holder if not."""
        deadline = self.clock() + timeout
        while True:
            if self.try_acquire():
                self._lost.clear()
                return
            if self.clock() >= deadline:
                current = self.store.get()
                who = holder(current) or "another run"
                left = max(0, int(expires_at(current) - self.clock())) if current else 0
                raise Unavailable(
                    f"another 'mlctl admin sync' holds lease {self.namespace}/{self.name} ({who}); gave up "
                    f"after {timeout:g} s",
                    hint=f"retry later or pass a longer --lock-timeout; a crashed run's lease expires in {left} s")
            self.sleep(min(poll, max(0.0, deadline - self.clock())) or poll)

    def renew(self) -> bool:
        """Extend our lease; False (and held becomes False) when it was taken from us."""
        if self._lease is None or self._lost.is_set():
            return False
        try:
            self._lease = self.store.replace(self._body(self._lease, self.clock()))
            return True
        except Conflict:
            current = self.store.get()
            if holder(current) == self.me and current is not None:
                self._lease = current
                return self.renew()
            self._lost.set()
            return False

    @property
    def held(self) -> bool:
        return self._lease is not None and not self._lost.is_set() and expires_at(self._lease) > self.clock()

    def release(self) -> None:
        """Give the lease up now (holder cleared), so the next run need not wait for it to expire."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._lease is None or self._lost.is_set():
            return
        body = self._body(self._lease, self.clock())
        body["spec"].pop("holderIdentity", None)
        body["spec"]["leaseDurationSeconds"] = 1
        try:
            self.store.replace(body)
        except Exception as e:  # noqa: BLE001 - an unreleased lease only expires; never fail the run for it
            log.info("could not release lease %s/%s: %s", self.namespace, self.name, e)
        self._lease = None

    # -- background renewal ------------------------------------------------------------------------------
    def start_renewing(self) -> None:
        def loop():
            while not self._stop.wait(self.duration / 3):
                try:
                    if not self.renew():
                        log.warning("lost lease %s/%s", self.namespace, self.name)
                        return
                except Exception as e:  # noqa: BLE001 - a failed renewal is retried until the lease expires
                    log.info("renewing lease failed: %s", e)

        self._thread = threading.Thread(target=loop, name="lease-renewal", daemon=True)
        self._thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


class KubeLeaseStore:
    """The LeaseStore over a Kube (mlctl/kube/api.py): a missing Lease reads as None, a 409 is a Conflict."""

    def __init__(self, api, name: str, namespace: str):
        self.api, self.name, self.namespace = api, name, namespace

    def _conflicts(self, fn):
        try:
            return fn()
        except Exception as e:
            if getattr(e, "status", None) == 409:
                raise Conflict(str(e)) from e
            raise

    def get(self) -> dict | None:
        return self.api.find("Lease", self.name, self.namespace)

    def create(self, lease: dict) -> dict:
        from mlctl.errors import USAGE, MlctlError

        try:
            return self._conflicts(lambda: self.api.create(lease, strict=False))
        except MlctlError as e:
            if getattr(e, "status", None) == 404:  # the Lease's namespace is missing: not installed
                raise MlctlError(f"namespace {self.namespace} does not exist on cluster {self.api.cluster}",
                                 hint="run 'mlctl admin install' first", exit_code=USAGE) from e
            raise

    def replace(self, lease: dict) -> dict:
        return self._conflicts(lambda: self.api.replace(lease))
