"""The local audit trail: every policy decision and every submission, one JSON object per line, appended to
$XDG_STATE_HOME/mlctl/audit.jsonl (default ~/.local/state/mlctl/audit.jsonl; docs/burst.md).

A record says who, what, where, the policy's decision id and reason. It holds user and group names, never a
token. A trail that cannot be written is a warning, not a failure: the job's own annotations
(mlctl.io/policy-decision, mlctl.io/policy-reason) carry the same decision on the cluster.
"""

from __future__ import annotations

import datetime as dt
import json
import os

from mlctl.paths import state_dir

FILE = "audit.jsonl"


def path(env=None):
    return state_dir(env) / FILE


def record(f, event: str, **fields) -> None:
    """Append {time, event, **fields} to the trail (0600, one write per record, so concurrent runs do not
    interleave within a line)."""
    entry = {"time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "event": event,
             **{k: v for k, v in fields.items() if v is not None}}
    line = (json.dumps(entry, separators=(",", ":"), sort_keys=False) + "\n").encode()
    target = path(f.env)
    try:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError as e:
        f.io.warn(f"cannot write the audit trail {target}: {e.strerror}")


def decision(f, d, *, user: str, groups, job: str | None, request: dict | None, command: str) -> None:
    record(f, "decision", command=command, user=user, groups=sorted(groups or []), cluster=d.cluster, job=job,
           request=request, allow=d.allow, rule=d.rule, decisionId=d.id, reason=d.reason)
