"""mlctl.policy against the real policy in a real OPA (started by mlctl.sandbox.opa in a scratch state
directory), and its error paths against a fake OPA in this process: none of them may come out as an allow."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlctl import errors
from mlctl.policy import Decision, decide, decisions, require
from mlctl.sandbox import opa, pki
from mlctl.sandbox.procs import State
from tests.unit.opa_binary import opa_binary

CAROL = ("carol", ["ml-users"])
ALICE = ("alice", ["ml-users", "burst-gcp"])


def platform_doc(url: str, ca_file=None) -> dict:
    opa_section = {"url": url}
    if ca_file:
        opa_section["certificateAuthorityData"] = base64.b64encode(ca_file.read_bytes()).decode()
    return {"apiVersion": "mlctl.io/v1alpha1", "kind": "Platform", "name": "lab", "opa": opa_section,
            "clusters": [{"name": "local", "server": "https://127.0.0.1:1"},
                         {"name": "gcp", "server": "https://127.0.0.1:2"}]}


# ---- the real policy in a real OPA ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_opa(tmp_path_factory):
    opa_binary()
    root = tmp_path_factory.mktemp("opa-state")
    state = State.load(root)
    info = opa.start(state)
    yield {"state": state, "info": info, "doc": platform_doc(info["url"], root / "pki" / "ca.crt")}
    opa.stop(State.load(root))


def test_carol_is_denied_gcp_with_the_policys_reason(real_opa):
    d = decide(real_opa["doc"], *CAROL, "gcp")
    assert (d.allow, d.rule, d.cluster) == (False, "group", "gcp")
    assert d.reasons == ("cluster gcp is open only to members of burst-gcp or platform-admins, and carol is in ml-users",)
    assert d.id  # OPA's decision-log id, for the admins
    with pytest.raises(errors.Forbidden) as raised:
        require(d)
    assert raised.value.exit_code == errors.FORBIDDEN == 5
    assert raised.value.message == ("the cluster policy denies gcp: cluster gcp is open only to members of "
                                    "burst-gcp or platform-admins, and carol is in ml-users")
    assert "\n" not in raised.value.message
    assert "group that may use gcp" in raised.value.hint and d.id in raised.value.hint


def test_alice_may_burst_a_job_that_fits_and_sees_the_limits(real_opa):
    d = decide(real_opa["doc"], *ALICE, "gcp", {"gpus": 64, "pools": ["gpu"], "preemptible": True})
    assert d.allow and d.rule == "allowed" and d.reasons == ()
    assert d.limits == {"maxGpusPerJob": 128, "pools": ["gpu"], "preemptibleOnly": True}
    assert require(d) is d


def test_a_job_over_the_limits_is_denied_with_every_reason(real_opa):
    d = decide(real_opa["doc"], *ALICE, "gcp", {"gpus": 256, "pools": ["gpu"], "preemptible": True})
    assert not d.allow and d.rule == "gpus-per-job"
    with pytest.raises(errors.Forbidden, match="at most 128 GPUs, and this one asks for 256") as raised:
        require(d)
    assert "at most 128 GPUs per job on gcp" in raised.value.hint


def test_decisions_lists_every_cluster_in_the_platforms_order(real_opa):
    ds = decisions(real_opa["doc"], *CAROL)
    assert list(ds) == ["local", "gcp"]
    assert ds["local"].allow and not ds["gcp"].allow
    assert all(isinstance(d, Decision) for d in ds.values())


def test_an_unknown_cluster_is_denied_not_an_error(real_opa):
    d = decide(real_opa["doc"], *ALICE, "aws")
    assert not d.allow and d.rule == "unknown-cluster"


def test_changed_limits_restart_opa_and_change_the_decision(real_opa, tmp_path):
    """Admins change the data file, not code: a changed file restarts OPA, an unchanged one keeps it."""
    state = State.load(real_opa["state"].root)
    policy = tmp_path / "policy"
    shutil.copytree(opa.policy_dir(), policy)
    try:
        assert opa.start(state, policy)["action"] == "restarted"  # another directory: another command line
        assert opa.start(state, policy)["action"] == "kept"
        data = json.loads((policy / "data.json").read_text())
        data["mlctl"]["config"]["clusters"]["gcp"]["maxGpusPerJob"] = 512
        (policy / "data.json").write_text(json.dumps(data))
        again = opa.start(state, policy)
        assert again["action"] == "restarted" and again["pid"] != real_opa["info"]["pid"], state.log_tail("opa")
        d = decide(real_opa["doc"], *ALICE, "gcp", {"gpus": 256, "pools": ["gpu"], "preemptible": True})
        assert d.allow and d.limits["maxGpusPerJob"] == 512
    finally:
        back = opa.start(state)  # the repository's policy again, for the other tests
        assert back["action"] == "restarted", (back, state.log_tail("opa", 10))


def test_the_api_refuses_to_replace_the_policy(real_opa):
    import http.client

    info = real_opa["info"]
    ctx = ssl.create_default_context(cafile=info["ca_file"])
    conn = http.client.HTTPSConnection("127.0.0.1", info["port"], context=ctx, timeout=5)
    try:
        conn.request("PUT", "/v1/data/mlctl/config/clusters/gcp/groups", body=b'["ml-users"]')
        assert conn.getresponse().status == 401
    finally:
        conn.close()
    assert not decide(real_opa["doc"], *CAROL, "gcp").allow


def test_a_dead_opa_is_started_again(real_opa):
    state = State.load(real_opa["state"].root)
    assert opa.stop(state)
    with pytest.raises(errors.Unavailable) as raised:
        decide(real_opa["doc"], *ALICE, "local")
    assert raised.value.exit_code == errors.UNAVAILABLE == 7
    assert opa.start(state)["action"] == "started"
    assert decide(real_opa["doc"], *ALICE, "local").allow


def test_a_port_taken_while_opa_was_down_is_chosen_again(real_opa, monkeypatch):
    state = State.load(real_opa["state"].root)
    port = opa.info(state)["port"]
    assert opa.stop(state)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen(1)
        moved = opa.start(state)
        assert moved["action"] == "started" and moved["port"] != port and moved["running"]
        # taken in the moment between mlctl's check and OPA's own bind: OPA exits, and one more port is tried
        assert opa.stop(state)
        state.data["ports"][opa.PORT] = port
        state.save()
        monkeypatch.setattr(opa, "_bindable", lambda p: True)
        again = opa.start(state)
        assert again["port"] != port and again["running"]
        assert "address already in use" in (real_opa["state"].root / "logs" / "opa.log").read_text()
    assert decide(platform_doc(again["url"], real_opa["state"].root / "pki" / "ca.crt"), *ALICE, "gcp").allow


# ---- error paths against a fake OPA ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    crt, key = pki.issue(d, "fake-opa", "fake-opa", hosts=("127.0.0.1",))
    other = tmp_path_factory.mktemp("other-pki")
    pki.ensure_ca(other)
    return {"ca": d / "ca.crt", "crt": crt, "key": key, "other_ca": other / "ca.crt"}


@pytest.fixture
def fake(tls):
    """A TLS server on 127.0.0.1 answering every POST with what the test put in reply (status, body)."""
    reply = {"status": 200, "body": b"{}"}
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append({"path": self.path, "body": json.loads(self.rfile.read(int(self.headers["Content-Length"])))})
            self.send_response(reply["status"])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply["body"])))
            self.end_headers()
            self.wfile.write(reply["body"])

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls["crt"], tls["key"])
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()

    def set_reply(status: int, body):
        reply["status"] = status
        reply["body"] = body if isinstance(body, bytes) else json.dumps(body).encode()

    yield {"doc": platform_doc(f"https://127.0.0.1:{server.server_port}", tls["ca"]), "reply": set_reply,
           "seen": seen, "port": server.server_port}
    server.shutdown()
    server.server_close()


def test_the_query_is_the_documented_input_on_the_v1_data_api(fake):
    fake["reply"](200, {"result": {"allow": True, "reasons": [], "limits": {}, "rule": "allowed"}})
    d = decide(fake["doc"], "alice", ["ml-users", "burst-gcp"], "gcp", {"gpus": 8, "pools": ["gpu"], "preemptible": True})
    assert d.allow and d.id is None
    assert fake["seen"] == [{"path": "/v1/data/mlctl/clusters/decision", "body": {"input": {
        "user": "alice", "groups": ["burst-gcp", "ml-users"], "cluster": "gcp",
        "job": {"gpus": 8, "pools": ["gpu"], "preemptible": True}}}}]


@pytest.mark.parametrize("status, body, error, words", [
    (500, {"code": "internal_error", "message": "boom"}, errors.Unavailable, "failed (HTTP 500): boom"),
    (503, b"not json", errors.Unavailable, "failed (HTTP 503): not json"),
    (200, {}, errors.Unavailable, "has no decision data.mlctl.clusters.decision"),
    (200, b"<html>", errors.MlctlError, "the answer is not a JSON object"),
    (200, {"result": {"allow": "yes", "reasons": []}}, errors.MlctlError, "no boolean allow"),
    (200, {"result": {"reasons": []}}, errors.MlctlError, "no boolean allow"),
    (200, {"result": {"allow": True, "reasons": "fine"}}, errors.MlctlError, "reasons is not a list"),
    (200, {"result": True}, errors.MlctlError, "no boolean allow"),
    (401, {"code": "unauthorized", "message": "request rejected by administrative policy"}, errors.MlctlError,
     "refused the query (HTTP 401): request rejected by administrative policy"),
    (404, {"code": "undefined_document"}, errors.MlctlError, "refused the query (HTTP 404)"),
])
def test_a_bad_answer_is_an_error_never_a_decision(fake, status, body, error, words):
    fake["reply"](status, body)
    with pytest.raises(error) as raised:
        decide(fake["doc"], *ALICE, "gcp")
    assert type(raised.value) is error and words in raised.value.message
    assert raised.value.exit_code in (errors.UNEXPECTED, errors.UNAVAILABLE)


def test_decisions_must_be_an_object_of_decisions(fake):
    fake["reply"](200, {"result": [{"allow": True}]})
    with pytest.raises(errors.MlctlError, match="not an object of decisions"):
        decisions(fake["doc"], *ALICE)
    fake["reply"](200, {"result": {"gcp": {"allow": True}, "local": {"allow": "maybe"}}})
    with pytest.raises(errors.MlctlError, match="no boolean allow"):
        decisions(fake["doc"], *ALICE)


def test_an_untrusted_certificate_is_unavailable(fake, tls):
    doc = platform_doc(fake["doc"]["opa"]["url"], tls["other_ca"])
    with pytest.raises(errors.Unavailable, match="is not trusted") as raised:
        decide(doc, *ALICE, "gcp")
    assert raised.value.exit_code == 7
    assert fake["seen"] == []


def test_nothing_listening_is_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the query: refused
    with pytest.raises(errors.Unavailable, match="cannot reach the policy server") as raised:
        decide(platform_doc(f"https://127.0.0.1:{port}"), *ALICE, "gcp")
    assert raised.value.exit_code == 7 and "no decision means no access" in raised.value.hint


def test_a_server_that_never_answers_is_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)  # the kernel completes the connection; nobody ever reads or writes
        with pytest.raises(errors.Unavailable, match="did not answer within 0.3 s") as raised:
            decide(platform_doc(f"https://127.0.0.1:{s.getsockname()[1]}"), *ALICE, "gcp", timeout=0.3)
    assert raised.value.exit_code == 7


def test_the_default_timeout_is_five_seconds():
    import inspect

    from mlctl.policy import opa as client

    assert client.TIMEOUT == 5.0
    assert inspect.signature(decide).parameters["timeout"].default == 5.0


@pytest.mark.parametrize("section, error, words", [
    (None, errors.Unavailable, "names no policy server (opa.url)"),
    ({"url": ""}, errors.Unavailable, "names no policy server"),
    ({"url": "https://127.0.0.1:1", "certificateAuthorityData": "not base64!"}, errors.UsageError,
     "not a base64 PEM certificate"),
    ({"url": "ftp://127.0.0.1:1"}, errors.UsageError, "is not an http(s) URL"),
])
def test_a_platform_without_a_usable_opa_section(section, error, words):
    doc = platform_doc("https://unused")
    doc["opa"] = section
    with pytest.raises(error) as raised:
        decide(doc, *ALICE, "gcp")
    assert words in raised.value.message


def test_the_platform_object_is_accepted_like_its_document(fake):
    from mlctl.config import Platform

    fake["reply"](200, {"result": {"allow": False, "reasons": ["no"], "rule": "group"}, "decision_id": "d-1"})
    d = decide(Platform.parse(fake["doc"]), *CAROL, "gcp")
    assert d == Decision(cluster="gcp", allow=False, reasons=("no",), limits={}, rule="group", id="d-1")


def test_require_without_reasons_still_says_it_denies():
    with pytest.raises(errors.Forbidden, match="the cluster policy denies gcp: denied without a reason"):
        require(Decision(cluster="gcp", allow=False))
