"""Where the model to serve comes from (`--model s3://...|JOB`): the rules, as pure functions.

- an `s3://bucket/prefix/` URI is served as given (a folder: a trailing '/' is added);
- anything else must be a training job's name: its final model is the `model/` folder of the run it wrote,
  found in this order (docs/serve.md): the job on the cluster (its `mlctl.io/output-url` annotation, which
  also covers a spec's explicit `output:` URL), then the latest run under the platform's layout in S3.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlctl.errors import UsageError

MODEL_DIR = "model/"
# model.json's "format" -> the model format (KServe's modelFormat.name) that serves it
FORMATS = {"mlctl-3dgan-generator/v1": "3dgan"}
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_JOB = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


@dataclass(frozen=True)
class ModelRef:
    uri: str | None = None  # s3://bucket/prefix/
    job: str | None = None

    @property
    def bucket(self) -> str:
        return split_uri(self.uri or "")[0]

    @property
    def prefix(self) -> str:
        return split_uri(self.uri or "")[1]


def split_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def parse(text: str) -> ModelRef:
    """`--model`'s value as a ModelRef; UsageError (exit 2) when it is neither a valid URI nor a job name."""
    text = text.strip()
    if "://" in text:
        scheme = text.split("://", 1)[0]
        if scheme != "s3":
            raise UsageError(f"--model {text}: only s3:// model URIs are supported (not {scheme}://)",
                             hint="upload the model to S3, or pass the name of the training job that wrote it")
        bucket, key = split_uri(text)
        if not _BUCKET.match(bucket):
            raise UsageError(f"--model {text}: {bucket!r} is not a valid bucket name")
        if ".." in key.split("/"):
            raise UsageError(f"--model {text}: '..' is not allowed in a model URI")
        return ModelRef(uri=folder(text))
    if not _JOB.match(text):
        raise UsageError(f"--model {text!r} is neither an s3:// URI nor a training job's name",
                         hint="e.g. --model s3://mlctl-outputs/bob/gan3d/<run>/model/ or --model gan3d")
    return ModelRef(job=text)


def folder(uri: str) -> str:
    return uri if uri.endswith("/") else uri + "/"


def final_model(output_url: str) -> str:
    """A run's final model: the `model/` folder under what the job was told to write to (OUTPUT_URL)."""
    return folder(output_url) + MODEL_DIR


def framework_of(metadata: dict) -> str | None:
    """The model format a model.json describes, None when it is not one mlctl knows."""
    return FORMATS.get(str(metadata.get("format") or ""))
