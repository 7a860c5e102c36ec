"""mlctl's client of the platform's OPA: the cluster policy's decision for a user, a cluster and a job.

Over the standard library's http.client and ssl (start-up time matters; requests would cost more than the
whole query), with a 5 s connect and read timeout. The server and its CA come from the platform document's
`opa` section ({url, certificateAuthorityData}). Failures are translated here, and none of them is ever an
allow: an unreachable or slow OPA is Unavailable (exit 7), an answer that is not a well-formed decision is an
error, and a deny becomes Forbidden (exit 5) through require(), carrying the policy's reasons.
"""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from mlctl.errors import Forbidden, MlctlError, Unavailable, UsageError

TIMEOUT = 5.0
DECISION = "mlctl/clusters/decision"
DECISIONS = "mlctl/clusters/decisions"

# what to do next, per rule of the sandbox assets' policy/clusters.rego that denied
_HINTS = {
    "group": "ask a platform admin for membership of a group that may use {cluster}, or choose another cluster",
    "gpus-per-job": "ask for at most {maxGpusPerJob} GPUs per job on {cluster}, or choose another cluster",
    "pools": "use one of {cluster}'s pools: {pools}",
    "preemptible-only": "run on a preemptible pool of {cluster}",
    "unknown-cluster": "'mlctl clusters list' shows the platform's clusters",
    "invalid-job": "fix the job spec's resources",
}


class Decision(NamedTuple):
    """What the cluster policy says about one cluster (data.mlctl.clusters.decision)."""

    cluster: str
    allow: bool
    reasons: tuple[str, ...] = ()
    limits: Mapping[str, Any] = MappingProxyType({})
    rule: str = ""
    id: str | None = None  # OPA's decision id: the line in OPA's decision log that recorded it

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons) or ("allowed" if self.allow else "denied without a reason")


def decide(platform, user: str, groups, cluster: str, job: dict | None = None, *,
           timeout: float = TIMEOUT, conn=None) -> Decision:
    """The policy's decision for user (in groups) on cluster; job is {gpus, pools, preemptible} (optional).

    platform is a config.Platform or a platform document (dict). Raises Unavailable when OPA cannot be
    asked, MlctlError when its answer is not a decision; a deny is returned (see require)."""
    result, decision_id = _query(platform, DECISION, _input(user, groups, cluster, job), timeout, conn=conn)
    return _decision(result, decision_id, cluster)


def decisions(platform, user: str, groups, job: dict | None = None, *,
              timeout: float = TIMEOUT) -> dict[str, Decision]:
    """The policy's decision for every cluster it knows, by name: the platform's clusters first, in the
    document's order. One query (data.mlctl.clusters.decisions)."""
    result, decision_id = _query(platform, DECISIONS, _input(user, groups, None, job), timeout)
    if not isinstance(result, dict):
        raise _malformed(DECISIONS, "not an object of decisions by cluster")
    order = [c.get("name") for c in _doc(platform).get("clusters") or [] if isinstance(c, dict)]
    names = [n for n in order if n in result] + sorted(n for n in result if n not in order)
    return {name: _decision(result[name], decision_id, name) for name in names}


class Client:
    """The policy server of one platform, as the Factory hands it out (`f.opa()`)."""

    def __init__(self, platform, timeout: float = TIMEOUT):
        self.platform, self.timeout = platform, timeout
        self._ahead = None

    def connect_ahead(self) -> None:
        """Open the connection the next decision will use now, in the background (mlctl/ahead.py)."""
        from mlctl.ahead import Ahead

        if self._ahead is None:
            self._ahead = Ahead(lambda: _connection(self.platform, self.timeout)[0])

    def decide(self, user: str, groups, cluster: str, job: dict | None = None) -> Decision:
        ahead, self._ahead = self._ahead, None
        return decide(self.platform, user, groups, cluster, job, timeout=self.timeout,
                      conn=ahead.take() if ahead else None)

    def decisions(self, user: str, groups, job: dict | None = None) -> dict[str, Decision]:
        return decisions(self.platform, user, groups, job, timeout=self.timeout)

    def limits(self, cluster: str) -> dict:
        """The policy's data for one cluster (data.mlctl.config.clusters.<name>: groups, users, limits), {}
        when the policy does not name it. For explanations only; decisions come from decide()."""
        result, _ = _query(self.platform, f"mlctl/config/clusters/{cluster}", None, self.timeout, method="GET",
                           missing_ok=True)
        return result if isinstance(result, dict) else {}


def require(decision: Decision) -> Decision:
    """Return decision if it allows; otherwise raise Forbidden (exit 5) with the policy's reasons."""
    if decision.allow:
        return decision
    values = {"cluster": decision.cluster, **{k: _words(v) for k, v in (decision.limits or {}).items()}}
    try:
        hint = _HINTS.get(decision.rule, "").format(**values) or None
    except (KeyError, IndexError):
        hint = None
    if decision.id:
        hint = f"{hint + ' ' if hint else ''}(policy decision {decision.id})"
    raise Forbidden(f"the cluster policy denies {decision.cluster}: {decision.reason}", hint=hint)


# ---- the query ---------------------------------------------------------------------------------------------

def _input(user: str, groups, cluster: str | None, job: dict | None) -> dict:
    doc: dict[str, Any] = {"user": user, "groups": sorted(groups or [])}
    if cluster is not None:
        doc["cluster"] = cluster
    if job is not None:
        doc["job"] = job
    return doc


def _doc(platform) -> dict:
    return platform.doc if hasattr(platform, "doc") else platform


def _url(platform) -> str:
    doc = _doc(platform)
    section = doc.get("opa")
    url = section.get("url") if isinstance(section, dict) else None
    if not url:
        raise Unavailable(f"platform {doc.get('name') or 'the platform'} names no policy server (opa.url)",
                          hint="ask the platform admins to publish OPA in the platform document")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"opa.url {url!r} in the platform document is not an http(s) URL")
    return url


def _context(platform) -> ssl.SSLContext:
    """TLS to the policy server: the platform document's opa.certificateAuthorityData, else the system's CAs."""
    doc = _doc(platform)
    ca = doc["opa"].get("certificateAuthorityData")
    if not ca:
        return ssl.create_default_context()
    import base64
    import binascii

    try:
        return ssl.create_default_context(cadata=base64.b64decode(ca, validate=True).decode())
    except (binascii.Error, UnicodeDecodeError, ssl.SSLError) as e:
        raise UsageError(f"platform {doc.get('name') or 'the platform'}: opa.certificateAuthorityData is not a "
                         "base64 PEM certificate",
                         hint="fetch the platform document again with 'mlctl login --platform'") from e


def _connection(platform, timeout: float):
    """(a connection to the platform's policy server, not yet connected; its URL)."""
    url = _url(platform)
    parts = urlsplit(url)
    if parts.scheme == "http":
        return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout), url
    return http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout,
                                       context=_context(platform)), url


def _query(platform, path: str, input_doc: dict | None, timeout: float, *, method: str = "POST",
           missing_ok: bool = False, conn=None) -> tuple[Any, str | None]:
    """POST {"input": ...} (or GET) to OPA's v1 data API at path; return (result, decision id). conn: one
    connected ahead to the same server (Client.connect_ahead), else a new one."""
    if conn is None:
        conn, url = _connection(platform, timeout)
    else:
        url = _url(platform)
    parts = urlsplit(url)
    target = f"{parts.path.rstrip('/')}/v1/data/{path}"
    body = json.dumps({"input": input_doc}).encode() if method == "POST" else None
    try:
        conn.request(method, target, body=body, headers={"Content-Type": "application/json", "User-Agent": "mlctl"})
        resp = conn.getresponse()
        raw = resp.read()
    except ssl.SSLCertVerificationError as e:
        raise Unavailable(f"the policy server at {url} is not trusted: {e.verify_message}",
                          hint="the platform document's opa.certificateAuthorityData may be out of date") from e
    except TimeoutError as e:
        raise Unavailable(f"the policy server at {url} did not answer within {timeout:g} s",
                          hint="retry later; no decision means no access") from e
    except (OSError, http.client.HTTPException) as e:
        detail = getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise Unavailable(f"cannot reach the policy server at {url}: {detail}",
                          hint="retry later; no decision means no access") from e
    finally:
        conn.close()
    try:
        answer = json.loads(raw) if raw else None
    except ValueError:
        answer = None
    if resp.status >= 500:
        raise Unavailable(f"the policy server at {url} failed (HTTP {resp.status}): {_message(answer, raw)}",
                          hint="retry later; no decision means no access")
    if resp.status != 200:
        raise MlctlError(f"the policy server at {url} refused the query (HTTP {resp.status}): "
                         f"{_message(answer, raw)}", hint="tell the platform admins")
    if not isinstance(answer, dict):
        raise _malformed(path, "the answer is not a JSON object")
    if "result" not in answer:
        if missing_ok:
            return None, answer.get("decision_id")
        # the v1 data API answers 200 without a result when the document is undefined (policy not loaded)
        raise Unavailable(f"the policy server at {url} has no decision data.{path.replace('/', '.')}",
                          hint="the cluster policy is not loaded; tell the platform admins")
    return answer["result"], answer.get("decision_id")


def _decision(result: Any, decision_id: str | None, cluster: str) -> Decision:
    if not isinstance(result, dict) or not isinstance(result.get("allow"), bool):
        raise _malformed(DECISION, "no boolean allow")
    reasons = result.get("reasons", [])
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise _malformed(DECISION, "reasons is not a list of strings")
    limits = result.get("limits") if isinstance(result.get("limits"), dict) else {}
    return Decision(cluster=str(result.get("cluster") or cluster), allow=result["allow"], reasons=tuple(reasons),
                    limits=limits, rule=str(result.get("rule") or ""), id=decision_id)


def _malformed(path: str, what: str) -> MlctlError:
    return MlctlError(f"the policy server's data.{path.replace('/', '.')} is malformed: {what}",
                      hint="tell the platform admins; mlctl treats it as no decision")


def _message(answer: Any, raw: bytes) -> str:
    if isinstance(answer, dict) and answer.get("message"):
        return str(answer["message"])[:300]
    return raw.decode(errors="replace").strip()[:300] or "no message"


def _words(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)
