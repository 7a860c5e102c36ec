import datetime as dt

from mlctl.io import IO
from mlctl.output import Column, age, print_list


def test_age_like_kubectl():
    now = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    assert age(now - dt.timedelta(seconds=45), now) == "45s"
    assert age(now - dt.timedelta(minutes=12), now) == "12m"
    assert age(now - dt.timedelta(hours=3), now) == "3h"
    assert age(now - dt.timedelta(days=5), now) == "5d"
    assert age("2026-01-01T23:00:00Z", now) == "60m"


def test_times_relative_on_tty_absolute_when_piped():
    created = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    cols = [Column("name", lambda x: x["n"]), Column("age", lambda x: x["t"])]
    piped = IO.test()
    print_list(piped, [{"n": "a", "t": created}], cols, "table")
    assert created.strftime("%Y-%m-%dT%H:%M") in piped.stdout.getvalue()
    tty = IO.test(tty=True)
    print_list(tty, [{"n": "a", "t": created}], cols, "table")
    assert "5m" in tty.stdout.getvalue()
