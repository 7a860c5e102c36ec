"""The pure parts of mlctl/storage: the layout, run ids, path selection, presign expiry, resume decisions,
error translation, and the metrics table and chart."""

from __future__ import annotations

import datetime as dt

import pytest

from mlctl.errors import Forbidden, NotFound, Unavailable, UsageError
from mlctl.storage import layout
from mlctl.storage.transfer import CHUNK, Plan, chunk_size_for, chunks, is_single_part_etag, resume_plan

S3 = {"endpoint": "https://s3.lab.test", "buckets": {"outputs": "lab-outputs"}, "prefix": "{user}/"}
RUN = "20261129T080000Z-3f9a1c"


def test_the_layout_is_bucket_user_job_run():
    assert layout.run_url(S3, "alice", "gan3d", RUN) == f"s3://lab-outputs/alice/gan3d/{RUN}/"
    assert layout.job_prefix(S3, "alice", "gan3d") == "alice/gan3d/"
    assert layout.run_prefix({**S3, "prefix": "users/{user}"}, "bob", "j", RUN) == f"users/bob/j/{RUN}/"


def test_run_ids_sort_by_time_and_differ_within_a_second():
    now = dt.datetime(2026, 11, 29, 8, 0, 0, tzinfo=dt.UTC)
    a, b = layout.new_run_id(now), layout.new_run_id(now)
    assert a != b and layout.is_run_id(a) and a.startswith("20261129T080000Z-")
    later = layout.new_run_id(now + dt.timedelta(seconds=1), token="000000")
    assert layout.latest([later, a, b, "not-a-run"]) == later
    assert layout.run_time(RUN) == now
    assert layout.latest([]) is None


@pytest.mark.parametrize("bad", ["", "Gan3d", "a/b", "-x", ".."])
def test_job_names_are_checked(bad):
    with pytest.raises(UsageError):
        layout.check_job(bad)


def test_a_run_id_is_checked():
    with pytest.raises(UsageError, match="not a run id"):
        layout.run_prefix(S3, "alice", "gan3d", "latest")


def test_job_path_and_selection():
    assert layout.split_job_path("gan3d/epoch-1/generator.npz") == ("gan3d", "epoch-1/generator.npz")
    assert layout.split_job_path("gan3d") == ("gan3d", "")
    with pytest.raises(UsageError):
        layout.clean_path("../bob/x")
    keys = ["epoch-1/a.npz", "epoch-1/b.npz", "epoch-10/a.npz", "metrics.jsonl"]
    assert layout.select(keys, ["epoch-1"]) == (["epoch-1/a.npz", "epoch-1/b.npz"], [])
    assert layout.select(keys, ["metrics.jsonl", "nope/"]) == (["metrics.jsonl"], ["nope/"])
    assert layout.select(keys, []) == (keys, [])


@pytest.mark.parametrize(("text", "seconds"), [("2s", 2), ("90", 90), ("30m", 1800), ("1h", 3600), ("7d", 604800)])
def test_presign_expiry(text, seconds):
    assert layout.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["0s", "8d", "1w", "1.5h", "-1h", "soon"])
def test_presign_expiry_out_of_range_or_malformed(text):
    with pytest.raises(UsageError, match="--expires"):
        layout.parse_duration(text)


def test_chunks_cover_the_object():
    assert chunks(0) == [(0, 0)]
    assert chunks(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert chunk_size_for(5, threshold=16) == 5 and chunk_size_for(17, threshold=16, chunk=8) == 8


ETAG = "0123456789abcdef0123456789abcdef"


def rec(**kw):
    return {"etag": ETAG, "size": 100, "chunk": 40, "done": [0, 2], **kw}


@pytest.mark.parametrize(("recorded", "part_size", "want"), [
    (None, 50, Plan(fresh=True)),  # no record: the .part cannot be trusted
    (rec(), None, Plan(fresh=True)),  # no .part
    (rec(etag="ffff"), 100, Plan(fresh=True)),  # the object changed
    (rec(size=99), 100, Plan(fresh=True)),
    (rec(chunk=50), 100, Plan(fresh=True)),
    (rec(), 101, Plan(fresh=True)),  # larger than the object
    (rec(), 100, Plan(fresh=False, done=frozenset({0, 2}))),  # chunks 0 and 2 kept, 1 fetched
    (rec(), 40, Plan(fresh=False, done=frozenset({0}))),  # chunk 2 is not in the file after all
    (rec(done=[0, 7, "x"]), 100, Plan(fresh=False, done=frozenset({0}))),
])
def test_resume_plan_for_chunked_objects(recorded, part_size, want):
    assert resume_plan(recorded, part_size, 100, ETAG, 40) == want


def test_resume_plan_for_a_one_request_object_continues_where_the_part_ends():
    recorded = {"etag": ETAG, "size": 100, "chunk": 100, "done": []}
    assert resume_plan(recorded, 60, 100, ETAG, 100) == Plan(fresh=False, offset=60)
    assert resume_plan(recorded, 60, 100, "other", 100) == Plan(fresh=True)
    assert resume_plan(recorded, 60, 100, "", 100) == Plan(fresh=True)  # no ETag: nothing to match


def test_single_part_etags_are_md5s():
    assert is_single_part_etag(ETAG)
    assert not is_single_part_etag(ETAG + "-3") and not is_single_part_etag("")
    assert CHUNK == 8 * 1024 * 1024


def client_error(code: str, status: int):
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "ListObjectsV2")


def test_errors_are_translated_at_the_edge():
    from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

    from mlctl.storage.client import translate

    assert isinstance(translate(client_error("AccessDenied", 403), "listing"), Forbidden)
    assert isinstance(translate(client_error("NoSuchKey", 404), "reading x"), NotFound)
    assert isinstance(translate(client_error("NoSuchBucket", 404), "listing"), NotFound)
    assert isinstance(translate(client_error("InternalError", 500), "listing"), Unavailable)
    for e in (EndpointConnectionError(endpoint_url="https://s3"), ConnectTimeoutError(endpoint_url="https://s3"),
              ReadTimeoutError(endpoint_url="https://s3")):
        err = translate(e, "listing", "https://s3")
        assert isinstance(err, Unavailable) and "\n" not in err.message


def test_credentials_repr_hides_the_secret():
    from mlctl.storage.client import Credentials, credentials_from_secret

    creds = credentials_from_secret({"data": {"AWS_ACCESS_KEY_ID": "YWxpY2U=", "AWS_SECRET_ACCESS_KEY": "czNjcjN0"}},
                                    "u-alice", "local")
    assert (creds.access_key, creds.secret_key) == ("alice", "s3cr3t")
    assert "s3cr3t" not in repr(creds) and "s3cr3t" not in str(Credentials("a", "s3cr3t"))


def test_metrics_parsing_and_chart():
    from mlctl.commands.artifacts.metrics import losses, metric_names, parse_metrics
    from mlctl.output.chart import line_chart

    rows = parse_metrics('{"epoch": 1, "loss_g": 0.7, "loss_d": 1.4, "time": 0.5}\nnot json\n'
                         '{"epoch": 2, "loss_g": 0.6, "loss_d": 1.3, "time": 0.4}\n')
    assert [r["epoch"] for r in rows] == [1, 2]
    assert losses(metric_names(rows)) == ["loss_g", "loss_d"]
    chart = line_chart("loss_g", [0.7, 0.6, 0.65], height=5)
    lines = chart.splitlines()
    assert lines[0] == "loss_g (epoch 1-3)"
    assert lines[1].startswith("0.700 |*") and lines[5].startswith("0.600 |")
    assert lines[5][len("0.600 |") + 8] == "*"  # epoch 2 (the minimum) is 8 columns right, on the bottom row
    assert line_chart("x", []) == "x: no values"
