"""The admin-sync Lease with a fake clock and an in-memory store that checks resourceVersions."""

from __future__ import annotations

import copy

import pytest

from mlctl.admin.lease import Conflict, LeaseLock, can_take, expires_at, format_time, holder
from mlctl.errors import UNAVAILABLE, Unavailable


class Clock:
    def __init__(self, t=1_000_000.0):
        self.t = t

    def __call__(self):
        return self.t

    def sleep(self, seconds):
        self.t += seconds


class Store:
    """One Lease object with optimistic concurrency, like the API server."""

    def __init__(self):
        self.obj = None
        self.rv = 0
        self.writes = []

    def get(self):
        return copy.deepcopy(self.obj)

    def create(self, lease):
        if self.obj is not None:
            raise Conflict("exists")
        return self._store(lease)

    def replace(self, lease):
        if self.obj is None or lease["metadata"].get("resourceVersion") != self.obj["metadata"]["resourceVersion"]:
            raise Conflict("stale")
        return self._store(lease)

    def _store(self, lease):
        self.rv += 1
        stored = copy.deepcopy(lease)
        stored["metadata"]["resourceVersion"] = str(self.rv)
        self.obj = stored
        self.writes.append(holder(stored))
        return copy.deepcopy(stored)


def lock(store, clock, me, duration=30):
    return LeaseLock(store, "mlctl-admin-sync", "mlctl-system", me=me, duration=duration, clock=clock,
                     sleep=clock.sleep)


def test_can_take_free_expired_or_own():
    now = 1000.0
    held = {"spec": {"holderIdentity": "a", "renewTime": format_time(now - 10), "leaseDurationSeconds": 30}}
    assert can_take(None, "b", now)
    assert not can_take(held, "b", now)
    assert can_take(held, "a", now)
    assert can_take(held, "b", now + 21)
    assert expires_at(held) == pytest.approx(now + 20)
    assert can_take({"spec": {"leaseDurationSeconds": 1}}, "b", now)  # released: no holder


def test_second_run_waits_then_gives_up_with_exit_7():
    clock, store = Clock(), Store()
    a = lock(store, clock, "run-a")
    a.acquire(timeout=0)
    b = lock(store, clock, "run-b")
    with pytest.raises(Unavailable) as e:
        b.acquire(timeout=10)
    assert e.value.exit_code == UNAVAILABLE and "run-a" in e.value.message
    assert "--lock-timeout" in e.value.hint
    assert store.writes == ["run-a"]  # b never wrote


def test_second_run_gets_it_once_released():
    clock, store = Clock(), Store()
    a = lock(store, clock, "run-a")
    a.acquire(timeout=0)
    a.release()
    b = lock(store, clock, "run-b")
    b.acquire(timeout=0)
    assert holder(store.obj) == "run-b" and store.obj["spec"]["leaseTransitions"] == 0
    assert b.held


def test_a_crashed_holders_lease_expires():
    clock, store = Clock(), Store()
    lock(store, clock, "crashed").acquire(timeout=0)  # never renewed nor released
    b = lock(store, clock, "run-b")
    b.acquire(timeout=60)  # waits ~30 s of fake time for the expiry
    assert holder(store.obj) == "run-b" and store.obj["spec"]["leaseTransitions"] == 1
    assert clock.t - 1_000_000.0 >= 30


def test_renew_keeps_it_and_a_lost_lease_stops_the_holder():
    clock, store = Clock(), Store()
    a = lock(store, clock, "run-a")
    a.acquire(timeout=0)
    clock.sleep(20)
    assert a.renew() and a.held
    clock.sleep(25)
    assert a.held  # renewed 25 s ago with 30 s duration
    clock.sleep(40)
    assert not a.held  # expired without renewal
    lock(store, clock, "run-b").acquire(timeout=0)
    assert not a.renew() and not a.held
    a.release()  # must not clear b's lease
    assert holder(store.obj) == "run-b"


def test_racing_creators_one_wins():
    clock, store = Clock(), Store()
    a, b = lock(store, clock, "run-a"), lock(store, clock, "run-b")
    real_get = store.get
    store.get = lambda: None  # both read "no lease" before either writes
    assert a.try_acquire()
    assert not b.try_acquire()  # create conflicts
    store.get = real_get
    assert holder(store.obj) == "run-a"
