"""Where a job's outputs are when its spec names its own `output:` (storage/layout.recorded_prefix), which
`mlctl artifacts` and `mlctl serve create --model JOB` both rely on."""

from __future__ import annotations

import pytest

from mlctl.errors import NotFound
from mlctl.storage import layout

S3 = {"buckets": {"outputs": "mlctl-outputs"}, "prefix": "{user}/"}


def test_an_explicit_output_in_the_outputs_bucket_is_its_own_prefix():
    job = layout.job_prefix(S3, "bob", "gan3d")
    assert layout.recorded_prefix("mlctl-outputs", job, "s3://mlctl-outputs/bob/explicit") == "bob/explicit/"
    assert layout.recorded_prefix("mlctl-outputs", job, "s3://mlctl-outputs/bob/explicit/") == "bob/explicit/"


def test_an_explicit_output_that_is_the_jobs_own_folder_is_its_prefix():
    """`output: s3://mlctl-outputs/bob/gan3d/` (the demo's): the files lie in the job's folder, in no run."""
    job = layout.job_prefix(S3, "bob", "gan3d")
    assert layout.recorded_prefix("mlctl-outputs", job, "s3://mlctl-outputs/bob/gan3d/") == "bob/gan3d/"


def test_the_layouts_own_run_url_and_no_url_add_nothing():
    job = layout.job_prefix(S3, "bob", "gan3d")
    run_url = layout.run_url(S3, "bob", "gan3d", "20261201T100000Z-abcdef")
    assert layout.recorded_prefix("mlctl-outputs", job, run_url) is None
    assert layout.recorded_prefix("mlctl-outputs", job, None) is None


def test_another_bucket_is_named_in_the_error():
    """examples/3dgan.yaml's `output: s3://ml-outputs/3dgan/` on a platform whose outputs bucket differs."""
    with pytest.raises(NotFound, match="s3://ml-outputs/3dgan/, outside the outputs bucket mlctl-outputs"):
        layout.recorded_prefix("mlctl-outputs", "bob/gan3d/", "s3://ml-outputs/3dgan/")
