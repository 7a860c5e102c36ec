"""The inference protocols' requests: the gateway path of a service, and the checks a request body gets
before it is sent (a malformed one is exit 2 here, not a 400 from the model server).

- v1 (KServe's V1, TensorFlow Serving style): `POST /v1/models/<model>:predict`, `{"instances": [...]}`;
- v2 (Open Inference Protocol): `POST /v2/models/<model>/infer`, `{"inputs": [{name, shape, datatype, data}]}`.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from mlctl.errors import UsageError

PROTOCOLS = ("v1", "v2")


def gateway_path(namespace: str, name: str, protocol: str) -> str:
    """The path on the platform's gateway for InferenceService name (KServe's path-based routing,
    /serve/<namespace>/<name>/..., to the service's predictor); the model is named after the service."""
    base = f"/serve/{quote(namespace, safe='')}/{quote(name, safe='')}"
    model = name
    if protocol == "v1":
        return f"{base}/v1/models/{quote(model, safe='')}:predict"
    return f"{base}/v2/models/{quote(model, safe='')}/infer"


def parse_body(text: str | bytes, where: str) -> dict:
    """The request body as JSON; UsageError naming the line and column of a syntax error."""
    try:
        data = json.loads(text)
    except UnicodeDecodeError:
        raise UsageError(f"{where}: not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise UsageError(f"{where}: malformed JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{where}: the request must be a JSON object, not {type(data).__name__}")
    return data


def check_body(data: dict, protocol: str, where: str) -> None:
    """The body's shape for the protocol; a v1 body sent as v2 (or the other way) is named as such."""
    if protocol == "v1":
        inputs = data.get("inputs")
        v2_like = isinstance(inputs, list) and any(isinstance(i, dict) and "datatype" in i for i in inputs)
        if "instances" in data or (inputs is not None and not v2_like):
            if not isinstance(data.get("instances", inputs), list):
                raise UsageError(f"{where}: \"instances\" must be a list")
            return
        hint = "this looks like a v2 request: pass --protocol v2" if v2_like else None
        raise UsageError(f"{where}: a v1 request needs \"instances\": [...]", hint=hint)
    inputs = data.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        hint = "this looks like a v1 request: pass --protocol v1" if "instances" in data else None
        raise UsageError(f"{where}: a v2 request needs \"inputs\": [{{name, shape, datatype, data}}, ...]", hint=hint)
    for i, item in enumerate(inputs):
        missing = [k for k in ("name", "shape", "datatype", "data") if not isinstance(item, dict) or k not in item]
        if missing:
            raise UsageError(f"{where}: inputs[{i}] has no {', '.join(missing)}")


def encode(data: dict) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def server_message(body: bytes) -> str:
    """The model server's or gateway's one-line reason from an error body (KServe: {"error": "..."})."""
    text = body.decode(errors="replace").strip()
    try:
        doc = json.loads(text)
    except ValueError:
        return text.splitlines()[0][:300] if text else ""
    if isinstance(doc, dict):
        for key in ("error", "message", "detail"):
            if doc.get(key):
                return str(doc[key]).splitlines()[0][:300]
    return text[:300]
