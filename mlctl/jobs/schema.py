"""The TrainingJob spec schema (published by `mlctl train schema`) and the small validator that enforces it.

The schema is a JSON-Schema (2020-12) dict using only: type, properties, required, additionalProperties,
propertyNames, enum, const, minimum, maximum, minLength, maxLength, pattern, format, items, oneOf, default,
description. The validator below implements exactly that subset, stops at the first problem and words it
for a physicist ("must be an integer ≥ 0, got "eight""). Formats are checked in Python (FORMATS), with a
`pattern` alongside where one exists so that editors using the published schema agree.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from mlctl.jobs.quantity import QuantityError, parse_quantity

API_VERSION = "mlctl.io/v1alpha1"
KIND = "TrainingJob"
FRAMEWORKS = ("tensorflow", "pytorch")
RESTART_POLICIES = ("ExitCode", "OnFailure", "Never")
# The operator names pods and Services <name>-worker-<index>; Services must be DNS-1035 labels (≤ 63
# characters, starting with a letter), so the job name leaves room for the longest suffix.
NAME_MAX = 40
DEFAULT_SECRET = "mlctl-s3"
INT32_MAX = 2**31 - 1

Path = tuple  # of str (mapping keys) and int (list indices)


class SchemaError(Exception):
    """A value breaks the schema: the path of the offending field and a message without the location."""

    def __init__(self, path: Path, message: str):
        super().__init__(message)
        self.path = path
        self.message = message


# ---- formats -------------------------------------------------------------------------------------------

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_JOB_NAME = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
_ABS_PATH = r"^/"
_S3_URL = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$"
_REPLICA = r"^(Chief|Master|Worker)-[0-9]+$"


def _quantity_ok(value: str) -> str | None:
    try:
        number = parse_quantity(value)
    except QuantityError:
        return "bad"
    return None if number > 0 else "not positive"


def _memory_ok(value: str) -> str | None:
    problem = _quantity_ok(value)
    if problem:
        return problem
    number = parse_quantity(value)
    if number < 2**20 and value.strip().isdigit():
        return f"that is {value.strip()} bytes; did you mean {value.strip()}Gi?"
    if number != number.to_integral_value():
        # "16m" is 16 millibytes: always a typo for 16Mi.
        return f"is a fraction of a byte; did you mean {value.strip()[:-1]}Mi?" if value.strip().endswith(
            "m") else "is a fraction of a byte"
    return None


def _image_ok(value: str) -> str | None:
    return None if value and not any(c.isspace() for c in value) else "bad"


def _regex(pattern: str) -> Callable[[str], str | None]:
    compiled = re.compile(pattern)
    return lambda value: None if compiled.search(value) else "bad"


# format name -> (checker returning None or a problem, what a valid value looks like)
FORMATS: dict[str, tuple[Callable[[str], str | None], str]] = {
    "job-name": (_regex(_JOB_NAME), f"a lowercase name of letters, digits and '-' starting with a letter, "
                                    f"at most {NAME_MAX} characters"),
    "dns-label": (_regex(_DNS_LABEL), "a lowercase name of letters, digits and '-' (a DNS-1123 label)"),
    "dns-subdomain": (_regex(_DNS_SUBDOMAIN), "a lowercase name of letters, digits, '-' and '.'"),
    "env-name": (_regex(_ENV_NAME), "an environment variable name (letters, digits, '_', '-', '.')"),
    "abs-path": (_regex(_ABS_PATH), "an absolute path"),
    "s3-url": (_regex(_S3_URL), "an S3 URL such as s3://bucket/prefix/"),
    "cpu": (_quantity_ok, "a positive CPU quantity such as 4, 0.5 or 500m"),
    "memory": (_memory_ok, "a positive memory quantity such as 16Gi or 512Mi"),
    "image": (_image_ok, "a container image reference such as registry.example.org/ml/train:1.0"),
    "replica": (_regex(_REPLICA), "a replica such as Worker-1, Chief-0 or Master-0"),
}


# ---- the schema ----------------------------------------------------------------------------------------

def _string(fmt: str | None = None, description: str = "", **extra: Any) -> dict:
    s: dict[str, Any] = {"type": "string", "minLength": 1}
    if fmt:
        s["format"] = fmt
    pattern = {"job-name": _JOB_NAME, "dns-label": _DNS_LABEL, "dns-subdomain": _DNS_SUBDOMAIN,
               "env-name": _ENV_NAME, "abs-path": _ABS_PATH, "s3-url": _S3_URL,
               "replica": _REPLICA}.get(fmt or "")
    if pattern:
        s["pattern"] = pattern
    if description:
        s["description"] = description
    s.update(extra)
    return s


def _integer(minimum: int, maximum: int, description: str, **extra: Any) -> dict:
    return {"type": "integer", "minimum": minimum, "maximum": maximum, "description": description, **extra}


# Plain YAML scalars (4, 0.5, true) are accepted where text is expected and kept as written.
_SCALAR_TEXT = ["string", "number", "integer", "boolean"]

_RESOURCES = {
    "type": "object",
    "description": "What each worker gets.",
    "additionalProperties": False,
    "properties": {
        "gpus": _integer(0, 1024, "GPUs per worker.", default=0),
        "cpu": {"type": ["string", "number"], "format": "cpu", "default": "1",
                "description": "CPU per worker (Kubernetes quantity: 4, 0.5, 500m). Requests = limits."},
        "memory": {"type": "string", "format": "memory", "default": "4Gi",
                   "description": "Memory per worker (Kubernetes quantity: 16Gi, 512Mi). Requests = limits."},
        "pool": _string("dns-label", "Portable node pool name from the platform (gpu, vgpu, cpu...). "
                                     "Default: gpu when gpus > 0, else cpu."),
    },
}

_DATA_MOUNT = {
    "type": "object",
    "description": "A read-only mount: exactly one of hostPath and pvc.",
    "additionalProperties": False,
    "required": ["name", "mountPath"],
    "properties": {
        "name": _string("dns-label", "Volume name, unique in the job."),
        "hostPath": _string("abs-path", "A path on the node (an EOS- or CVMFS-like share)."),
        "pvc": _string("dns-subdomain", "A PersistentVolumeClaim in your namespace."),
        "mountPath": _string("abs-path", "Where the data appears in the container."),
        "readOnly": {"const": True, "description": "Data mounts are always read-only."},
    },
}

_OUTPUT_OBJECT = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "url": _string("s3-url", "Where the job writes its artifacts; passed as MLCTL_OUTPUT_URL."),
        "secret": _string("dns-subdomain", "Secret holding AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.",
                          default=DEFAULT_SECRET),
    },
}

_SIMULATE = {
    "type": "object",
    "description": "Sandbox only: how the simulated kubelet runs the pods.",
    "additionalProperties": False,
    "properties": {
        "runSeconds": _integer(0, 86400, "Seconds each pod runs before it exits."),
        "exitCode": _integer(0, 255, "Exit code of the failing pods (all pods unless failReplica)."),
        "failReplica": _string("replica", "The one replica that exits with exitCode (default 1)."),
    },
}

# Fields a cluster override may change (everything but identity and the overrides themselves).
_OVERRIDABLE = {
    "image": _string("image", "Container image."),
    "command": {"type": "array", "items": {"type": _SCALAR_TEXT},
                "description": "Entrypoint (default: the image's)."},
    "args": {"type": "array", "items": {"type": _SCALAR_TEXT}, "description": "Arguments to the command."},
    "env": {"type": "object", "propertyNames": {"format": "env-name", "pattern": _ENV_NAME},
            "additionalProperties": {"type": _SCALAR_TEXT},
            "description": "Environment variables (values are text)."},
    "workers": _integer(1, 4096, "Number of pods. TensorFlow: 1 Chief + (workers-1) Workers; "
                                 "PyTorch: 1 Master + (workers-1) Workers.", default=1),
    "resources": _RESOURCES,
    "data": {"type": "array", "items": _DATA_MOUNT, "maxItems": 64, "description": "Read-only data mounts."},
    "output": {"oneOf": [_string("s3-url"), _OUTPUT_OBJECT],
               "description": "S3 URL for artifacts, or {url, secret}. Credentials come from the Secret."},
    "restartPolicy": {"type": "string", "enum": list(RESTART_POLICIES), "default": "ExitCode",
                      "description": "ExitCode: the operator restarts pods that exit with a retryable code "
                                     "(preemption, 128+), fails on 1-127."},
    "backoffLimit": _integer(0, 1000, "Restarts before the job is marked failed.", default=3),
    "ttlSecondsAfterFinished": _integer(0, INT32_MAX, "How long a finished job is kept.", default=86400),
    "activeDeadlineSeconds": _integer(1, INT32_MAX, "Kill the job after this many seconds."),
    "simulate": _SIMULATE,
}

_OVERRIDE = {
    "type": "object",
    "description": "Partial spec merged over the top level when the job runs on this cluster.",
    "additionalProperties": False,
    "properties": _OVERRIDABLE,
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://mlctl.io/schemas/v1alpha1/trainingjob.json",
    "title": "mlctl TrainingJob",
    "description": "A distributed training job, rendered to a Kubeflow TFJob or PyTorchJob.",
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "name", "framework", "image"],
    "properties": {
        "apiVersion": {"const": API_VERSION},
        "kind": {"const": KIND},
        "name": _string("job-name", "Job name (also names the pods).", maxLength=NAME_MAX),
        "framework": {"type": "string", "enum": list(FRAMEWORKS)},
        **_OVERRIDABLE,
        "clusters": {"type": "object", "propertyNames": {"format": "dns-label", "pattern": _DNS_LABEL},
                     "additionalProperties": _OVERRIDE,
                     "description": "Per-cluster overrides, keyed by cluster name."},
    },
}


def schema() -> dict:
    """The published schema (a copy: callers may mutate it)."""
    return copy.deepcopy(SCHEMA)


_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_][-A-Za-z0-9_./]{0,62}$")


def format_path(path: Path) -> str:
    """("data", 0, "mountPath") -> "data[0].mountPath"; odd keys are quoted: env["a b"]."""
    text = ""
    for key in path:
        if isinstance(key, int):
            text += f"[{key}]"
        elif _PLAIN_KEY.match(str(key)):
            text += f".{key}" if text else str(key)
        else:
            shown = str(key) if len(str(key)) <= 40 else str(key)[:37] + "..."
            text += "[" + json.dumps(shown) + "]"
    return text


# ---- looking fields up ---------------------------------------------------------------------------------

# Words people bring from TFJob/Kubernetes, pointing at the field that does the job here.
ALIASES = {"replicas": "workers", "gpu": "resources.gpus", "nodeSelector": "resources.pool",
           "nodepool": "resources.pool", "volumes": "data", "volumeMounts": "data", "mounts": "data",
           "restart": "restartPolicy", "ttl": "ttlSecondsAfterFinished", "timeout": "activeDeadlineSeconds",
           "deadline": "activeDeadlineSeconds", "outputs": "output", "environment": "env",
           "cluster": "clusters", "backoff": "backoffLimit"}


def _all_fields(s: dict, prefix: str = "") -> list[str]:
    out = []
    for key, sub in s.get("properties", {}).items():
        path = f"{prefix}{key}"
        out.append(path)
        if sub.get("type") == "object" and "properties" in sub:
            out += _all_fields(sub, path + ".")
    return out


_EVERY_FIELD = _all_fields(SCHEMA)


def _squash(word: str) -> str:
    return word.lower().replace("_", "").replace("-", "")


def suggest(key: str, valid: list[str], prefix: str, root: str = "") -> str:
    """', did you mean X?' for an unknown key among `valid` fields at `prefix` (like "resources."); `root`
    is where spec paths start ("" or "clusters.gcp."). Falls back to listing the valid fields."""
    for candidate in valid:
        if _squash(candidate) == _squash(key):
            return f", did you mean {prefix}{candidate}?"
    alias = ALIASES.get(key) or ALIASES.get(key.lower())
    if alias and (root == "" or alias != "clusters"):
        return f", did you mean {root}{alias}?"
    import difflib

    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if close:
        return f", did you mean {prefix}{close[0]}?"
    # The right field in the wrong place: `gpus:` at the top level is resources.gpus.
    leaves = {f: f.rsplit(".", 1)[-1] for f in _EVERY_FIELD}
    elsewhere = [f for f, leaf in leaves.items() if _squash(leaf) == _squash(key)]
    if not elsewhere:
        import difflib

        near = difflib.get_close_matches(key, list(leaves.values()), n=1, cutoff=0.75)
        elsewhere = [f for f, leaf in leaves.items() if near and leaf == near[0]]
    if elsewhere:
        return f", did you mean {root}{elsewhere[0]}?"
    return f"; valid fields: {', '.join(sorted(valid))}" if valid else ""


# ---- validation ----------------------------------------------------------------------------------------

def describe(value: Any) -> str:
    """A value as the user wrote it, short: "eight", 8, true, null, a list, a mapping."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        text = str(value) if value.bit_length() < 200 else "a huge number"
        return text
    if isinstance(value, float):
        return "a huge number" if math.isinf(value) else ("nan" if value != value else repr(value))
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return '"' + text.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, bytes):
        return "binary data"
    return f'"{str(value)[:40]}"'


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "other"


def _matches_type(value: Any, expected: str | list) -> bool:
    kinds = expected if isinstance(expected, list) else [expected]
    actual = _type_of(value)
    return actual in kinds or (actual == "integer" and "number" in kinds)


def expectation(s: dict) -> str:
    """What a valid value looks like, for "must be ..." messages."""
    if "const" in s:
        const = s["const"]
        return f"exactly {describe(const) if not isinstance(const, str) else const}"
    if "enum" in s:
        return "one of " + ", ".join(str(v) for v in s["enum"])
    if "format" in s and s["format"] in FORMATS:
        return FORMATS[s["format"]][1]
    kind = s.get("type")
    if kind == "integer":
        return f"an integer ≥ {s['minimum']}" if "minimum" in s else "an integer"
    if kind == "object":
        return "a mapping"
    if kind == "array":
        return "a list"
    if "oneOf" in s:
        return " or ".join(expectation(branch) for branch in s["oneOf"])
    return "text" if kind == "string" or (isinstance(kind, list) and "string" in kind) else str(kind)


def _fail(path: Path, s: dict, value: Any, detail: str | None = None) -> SchemaError:
    message = f"must be {expectation(s)}, got {describe(value)}"
    if detail:
        message += f" ({detail})"
    return SchemaError(path, message)


def schema_at(s: dict, path: Path) -> dict | None:
    """The sub-schema for a path (None when the path leads nowhere)."""
    for key in path:
        if "oneOf" in s:
            s = next((b for b in s["oneOf"] if b.get("type") == "object"), s)
        if isinstance(key, int):
            s = s.get("items")
        elif key in s.get("properties", {}):
            s = s["properties"][key]
        elif isinstance(s.get("additionalProperties"), dict):
            s = s["additionalProperties"]
        else:
            return None
        if s is None:
            return None
    return s


def validate(value: Any, s: dict, path: Path = ()) -> None:
    """Raise SchemaError for the first thing about value (in document order) that s does not allow."""
    if "oneOf" in s:
        for branch in s["oneOf"]:
            if _matches_type(value, branch.get("type", [])):
                validate(value, branch, path)
                return
        raise _fail(path, s, value)
    if "const" in s:
        if value != s["const"] or type(value) is not type(s["const"]):
            raise _fail(path, s, value)
        return
    if "type" in s and not _matches_type(value, s["type"]):
        raise _fail(path, s, value)
    if "enum" in s and value not in s["enum"]:
        import difflib

        hint = difflib.get_close_matches(str(value), [str(v) for v in s["enum"]], n=1, cutoff=0.5)
        message = f"must be {expectation(s)}, got {describe(value)}"
        raise SchemaError(path, message + (f"; did you mean {hint[0]}?" if hint else ""))
    if isinstance(value, int) and not isinstance(value, bool):
        if "minimum" in s and value < s["minimum"]:
            raise _fail(path, s, value)
        if "maximum" in s and value > s["maximum"]:
            raise SchemaError(path, f"must be an integer ≤ {s['maximum']}, got {describe(value)}")
    if isinstance(value, str | int | float) and not isinstance(value, bool) and (
            "format" in s or "pattern" in s or "minLength" in s):
        text = str(value)
        if len(text) < s.get("minLength", 0):
            raise SchemaError(path, f"must not be empty; expected {expectation(s)}")
        if len(text) > s.get("maxLength", 10**6):
            raise SchemaError(path, f"must be at most {s['maxLength']} characters, got {len(text)}")
        fmt = s.get("format")
        if fmt in FORMATS:
            problem = FORMATS[fmt][0](text)
            if problem:
                raise _fail(path, s, value, None if problem in ("bad", "not positive") else problem)
        elif "pattern" in s and not re.search(s["pattern"], text):
            raise _fail(path, s, value)
    if isinstance(value, dict):
        _validate_object(value, s, path)
    if isinstance(value, list):
        if len(value) > s.get("maxItems", 10**6):
            raise SchemaError(path, f"must have at most {s['maxItems']} entries, got {len(value)}")
        items = s.get("items")
        if items is not None:
            for i, item in enumerate(value):
                validate(item, items, path + (i,))


def _validate_object(value: dict, s: dict, path: Path) -> None:
    props = s.get("properties", {})
    extra = s.get("additionalProperties", True)
    names = s.get("propertyNames")
    dotted = [p for p in path if isinstance(p, str)]
    root = f"clusters.{dotted[1]}." if len(dotted) >= 2 and dotted[0] == "clusters" else ""
    prefix = format_path(path) + "." if path else ""
    for key, item in value.items():
        if names is not None:
            try:
                validate(key, {"type": "string", **names}, path + (key,))
            except SchemaError as e:
                raise SchemaError(path + (key,), f"bad name: {e.message}") from None
        if key in props:
            validate(item, props[key], path + (key,))
        elif extra is False:
            raise SchemaError(path + (key,), unknown_field(str(key), list(props), path, prefix, root))
        elif isinstance(extra, dict):
            validate(item, extra, path + (key,))
    for key in s.get("required", []):
        if key not in value:
            raise SchemaError(path + (key,), f"required field is missing (expected {expectation(props[key])})"
                              if key in props else "required field is missing")


def unknown_field(key: str, valid: list[str], path: Path, prefix: str, root: str) -> str:
    if len(path) == 2 and path[0] == "clusters" and key in SCHEMA["properties"]:
        return "cannot differ per cluster; set it at the top level"
    return "unknown field" + suggest(key, valid, prefix, root)


def defaults(s: dict = SCHEMA) -> dict[str, Any]:
    """{dotted path: default} for every field with a `default`."""
    return {f: schema_at(s, tuple(f.split("."))).get("default") for f in _EVERY_FIELD
            if "default" in (schema_at(s, tuple(f.split("."))) or {})}
