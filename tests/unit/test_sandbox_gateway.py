"""The gateway's browser login, its pure parts: PKCE, who counts as a browser, the cookies, where a login may
return to, what reaches the log, logins in progress."""

from __future__ import annotations

import base64
import hashlib

import pytest

from mlctl.sandbox import gateway


def test_pkce_challenge_is_the_s256_of_the_verifier():
    verifier, challenge = gateway.pkce_pair()
    assert 43 <= len(verifier) <= 128  # RFC 7636 4.1
    want = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert challenge == want and len(challenge) == 43
    assert gateway.pkce_pair()[0] != verifier


@pytest.mark.parametrize("method, accept, browser", [
    ("GET", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),
    ("HEAD", "TEXT/HTML", True),
    ("GET", "*/*", False),
    ("GET", "application/json", False),
    ("GET", "", False),
    ("POST", "text/html", False),
])
def test_only_page_loads_are_sent_to_the_login(method, accept, browser):
    assert gateway.wants_html(method, accept) is browser


@pytest.mark.parametrize("path, want", [
    ("/notebook/u-alice/nb1/lab?reset", "/notebook/u-alice/nb1/lab?reset"),
    ("//evil.example.org/x", "/"),
    ("https://evil.example.org/", "/"),
    ("/\\evil.example.org", "/"),
    ("/oauth2/callback?state=x", "/"),
])
def test_a_login_returns_only_to_a_page_of_the_gateway(path, want):
    assert gateway.safe_next(path) == want


def test_cookies_are_httponly_secure_and_lax():
    value = gateway.cookie("mlctl-token", "abc", max_age=300)
    assert value == "mlctl-token=abc; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=300"
    assert gateway.cookie("mlctl-login", "", path="/oauth2/callback", max_age=0).endswith("Max-Age=0")


def test_the_workload_gets_its_own_cookies_but_never_the_gateways():
    header = "mlctl-token=jwt; _xsrf=2|abc; mlctl-login=s; username-x=y"
    assert gateway.upstream_cookie(header) == "_xsrf=2|abc; username-x=y"
    assert gateway.upstream_cookie("mlctl-token=jwt") == ""
    assert gateway.cookies(header)["mlctl-token"] == "jwt"


def test_the_log_never_holds_the_code_or_the_state():
    line = '"GET /oauth2/callback?state=S3cr3t&session_state=abc&iss=https%3A%2F%2Fk&code=C0DE HTTP/1.1" 302 -'
    out = gateway.redact(line)
    assert "S3cr3t" not in out and "C0DE" not in out and "abc" not in out
    assert "iss=https%3A%2F%2Fk" in out
    assert gateway.redact("/notebook/u-alice/nb1/api/contents?content=1") == "/notebook/u-alice/nb1/api/contents?content=1"


def test_a_login_is_finished_once_and_only_by_the_browser_that_began_it(monkeypatch):
    logins = gateway.Logins()
    state, challenge = logins.begin("/notebook/u-alice/nb1/lab")
    with pytest.raises(gateway.Refused) as e:
        logins.finish(state, "another-browsers-state")
    assert e.value.status == 400
    with pytest.raises(gateway.Refused):
        logins.finish(state, None)
    verifier, page = logins.finish(state, state)
    assert page == "/notebook/u-alice/nb1/lab"
    assert challenge == base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    with pytest.raises(gateway.Refused, match="already used"):
        logins.finish(state, state)


def test_an_old_login_expires(monkeypatch):
    logins = gateway.Logins()
    clock = [1000.0]
    monkeypatch.setattr(gateway.time, "monotonic", lambda: clock[0])
    state, _ = logins.begin("/")
    clock[0] += gateway.LOGIN_SECONDS + 1
    with pytest.raises(gateway.Refused, match="expired"):
        logins.finish(state, state)


def test_logins_in_progress_are_bounded(monkeypatch):
    monkeypatch.setattr(gateway, "MAX_LOGINS", 3)
    logins = gateway.Logins()
    states = [logins.begin("/")[0] for _ in range(5)]
    assert len(logins.pending) == 3 and states[0] not in logins.pending and states[-1] in logins.pending
