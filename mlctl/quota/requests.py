"""QuotaRequest objects (mlctl.io/v1alpha1, the CRD in mlctl/data/crds/quotarequest.yaml), built and
checked without a cluster, and the status patch an admin's decision writes.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from mlctl.errors import UsageError
from mlctl.jobs.quantity import QuantityError, parse_quantity
from mlctl.quota import REQUEST_RESOURCES, fmt

API_VERSION = "mlctl.io/v1alpha1"
KIND = "QuotaRequest"
PHASES = ("Pending", "Approved", "Denied")
WHOLE = ("nvidia.com/gpu", "pods")


def check_resources(resources: dict[str, object]) -> dict[str, str]:
    """Validate what is asked for as the CRD does, with messages that name the flag."""
    if not resources:
        raise UsageError("a quota request must ask for something",
                         hint="for example: mlctl quota request --gpu 4 --reason '...'")
    out: dict[str, str] = {}
    for key, raw in resources.items():
        if key not in REQUEST_RESOURCES:
            raise UsageError(f"unknown resource {key!r}", hint=f"ask for one of: {', '.join(REQUEST_RESOURCES)}")
        try:
            value = parse_quantity(raw)  # type: ignore[arg-type]
        except QuantityError as e:
            raise UsageError(f"{key}: {e}") from e
        if value <= 0:
            raise UsageError(f"{key}: {raw} must be more than zero")
        if key in WHOLE and value != value.to_integral_value():
            raise UsageError(f"{key}: {raw} must be a whole number")
        out[key] = str(raw).strip()
    return out


def build(namespace: str, resources: dict[str, object], reason: str, user: str | None = None) -> dict:
    reason = (reason or "").strip()
    if len(reason) < 3:
        raise UsageError("a quota request needs a --reason (at least a few words for the admins)")
    labels = {"app.kubernetes.io/managed-by": "mlctl"}
    meta: dict = {"generateName": "qr-", "namespace": namespace, "labels": labels}
    if user:
        meta["annotations"] = {"mlctl.io/requested-by": user}
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": meta,
            "spec": {"resources": check_resources(resources), "reason": reason}}


def phase(qr: dict) -> str:
    return (qr.get("status") or {}).get("phase") or "Pending"


def decision(phase_: str, by: str, message: str | None = None, now: dt.datetime | None = None) -> dict:
    """The merge patch of the status subresource that records an admin's decision."""
    if phase_ not in ("Approved", "Denied"):
        raise ValueError(phase_)
    now = now or dt.datetime.now(dt.UTC)
    status = {"phase": phase_, "decidedBy": by, "decidedAt": now.strftime("%Y-%m-%dT%H:%M:%SZ")}
    status["message"] = message or None  # null removes an older decision's message
    return {"status": status}


def summary(qr: dict) -> str:
    """"4 GPUs, 64Gi memory" for a request's resources."""
    parts = []
    for key, raw in ((qr.get("spec") or {}).get("resources") or {}).items():
        try:
            value = parse_quantity(raw)
        except QuantityError:
            parts.append(f"{raw} {key}")
            continue
        text = fmt(REQUEST_RESOURCES.get(key, key), Decimal(value))
        parts.append(f"{text} GPU{'s' if value != 1 else ''}" if key == "nvidia.com/gpu" else f"{text} {key}")
    return ", ".join(parts)
