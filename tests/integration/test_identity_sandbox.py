"""The sandbox's identity servers: the MIT KDC and Keycloak (realm ml), exercised the way mlctl will use them.

Uses the KDC and Keycloak of the session's sandbox (tests/integration/conftest.py).
Under CI=true a failure to start fails the tests; elsewhere it skips them.
"""

from __future__ import annotations

import base64
import html.parser
import json
import os
import sys
import time
import urllib.parse

import pytest

from tests.integration.support import unavailable

pytestmark = pytest.mark.integration

requests = pytest.importorskip("requests")

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


@pytest.fixture(scope="session")
def identity(sandbox):
    from mlctl.sandbox import kdc, keycloak, procs

    root = sandbox.root  # the shared session sandbox: its KDC and Keycloak are already running
    state = procs.State.load(root)
    owned = {name: not state.is_running(name) for name in (kdc.PROCESS, keycloak.PROCESS)}
    try:
        began = time.monotonic()
        kdc_info = kdc.start(state)
        kc = keycloak.start(state, kdc_info)
    except (procs.SandboxError, OSError) as exc:
        unavailable(f"identity sandbox did not start: {exc}")
    print(f"\nidentity sandbox: KDC+Keycloak ready in {time.monotonic() - began:.1f} s "
          f"(Keycloak launch to ready realm {kc['startup_seconds']} s)", file=sys.stderr)
    # Clients of the sandbox realm use its krb5.conf; MIT krb5 reads KRB5_CONFIG on every new context.
    previous = os.environ.get("KRB5_CONFIG")
    os.environ["KRB5_CONFIG"] = kdc_info["krb5_conf"]
    yield {"state": state, "kdc": kdc_info, "kc": kc, "owned": owned}
    if previous is None:
        os.environ.pop("KRB5_CONFIG", None)
    else:
        os.environ["KRB5_CONFIG"] = previous
    if owned[keycloak.PROCESS]:
        keycloak.stop(state)
    if owned[kdc.PROCESS]:
        kdc.stop(state)


def claims(jwt: str) -> dict:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def audiences(token_claims: dict) -> list[str]:
    aud = token_claims.get("aud", [])
    return [aud] if isinstance(aud, str) else list(aud)


def token_endpoint(kc: dict) -> str:
    return f"{kc['issuer']}/protocol/openid-connect/token"


def client_auth(kc: dict) -> dict:
    return {"client_id": kc["client_id"], "client_secret": kc["client_secret"]}


def password_grant(kc: dict, user: str, password: str) -> dict:
    resp = requests.post(token_endpoint(kc), verify=kc["ca_file"], timeout=30, data={
        "grant_type": "password", "username": user, "password": password, "scope": "openid", **client_auth(kc),
    })
    assert resp.status_code == 200, resp.text
    return resp.json()


class _Forms(html.parser.HTMLParser):
    """The forms of an HTML page: action, method and the name/value of inputs and submit buttons."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "method": (a.get("method") or "get").lower(),
                               "id": a.get("id", ""), "fields": {}, "buttons": {}})
        elif tag in ("input", "button") and self.forms and a.get("name"):
            kind = (a.get("type") or ("submit" if tag == "button" else "text")).lower()
            target = self.forms[-1]["buttons" if kind == "submit" else "fields"]
            target[a["name"]] = a.get("value") or ""


def forms_of(page: str) -> list[dict]:
    parser = _Forms()
    parser.feed(page)
    return parser.forms


def browser_login(session, kc: dict, url: str, user: str, password: str) -> requests.Response:
    """Drive Keycloak's pages as a browser would: sign in, accept consent, until no form asks for more."""
    resp = session.get(url, verify=kc["ca_file"], timeout=30)
    for _ in range(6):
        forms = [f for f in forms_of(resp.text) if f["method"] == "post"]
        if not forms:
            return resp
        form = forms[0]
        data = dict(form["fields"])
        if "username" in data or "password" in data:
            data.update(username=user, password=password)
        if "accept" in form["buttons"]:  # the device grant's consent page
            data["accept"] = form["buttons"]["accept"] or "Yes"
        action = urllib.parse.urljoin(resp.url, html.unescape(form["action"]))
        resp = session.post(action, data=data, verify=kc["ca_file"], timeout=30)
    raise AssertionError(f"login did not finish: {resp.status_code} {resp.text[:500]}")


def test_password_grant_carries_groups(identity):
    kc = identity["kc"]
    tokens = password_grant(kc, "alice", "alice-pw")
    access = claims(tokens["access_token"])
    assert access["iss"] == kc["issuer"]
    assert access["preferred_username"] == "alice"
    assert sorted(access["groups"]) == ["burst-gcp", "ml-users"]
    assert sorted(claims(password_grant(kc, "bob", "bob-pw")["access_token"])["groups"]) == [
        "gpu-power-users", "ml-users"]
    # Refresh works (tests of mlctl's token cache rely on it).
    resp = requests.post(token_endpoint(kc), verify=kc["ca_file"], timeout=30, data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], **client_auth(kc)})
    assert resp.status_code == 200, resp.text
    assert claims(resp.json()["access_token"])["preferred_username"] == "alice"


def test_wrong_password_is_refused(identity):
    kc = identity["kc"]
    resp = requests.post(token_endpoint(kc), verify=kc["ca_file"], timeout=30, data={
        "grant_type": "password", "username": "alice", "password": "wrong", **client_auth(kc)})
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("cluster", ["local", "gcp"])
def test_token_exchange_to_cluster_audience(identity, cluster):
    kc = identity["kc"]
    login = claims(password_grant(kc, "carol", "carol-pw")["access_token"])
    assert cluster not in audiences(login)
    subject = password_grant(kc, "carol", "carol-pw")["access_token"]
    resp = requests.post(token_endpoint(kc), verify=kc["ca_file"], timeout=30, data={
        "grant_type": TOKEN_EXCHANGE, "subject_token": subject, "subject_token_type": ACCESS_TOKEN_TYPE,
        "audience": cluster, "scope": kc["audience_scopes"][cluster], **client_auth(kc)})
    assert resp.status_code == 200, resp.text
    exchanged = claims(resp.json()["access_token"])
    assert audiences(exchanged) == [cluster]
    assert exchanged["preferred_username"] == "carol"
    assert exchanged["groups"] == ["ml-users"]


def test_token_exchange_to_unknown_audience_is_refused(identity):
    kc = identity["kc"]
    subject = password_grant(kc, "carol", "carol-pw")["access_token"]
    resp = requests.post(token_endpoint(kc), verify=kc["ca_file"], timeout=30, data={
        "grant_type": TOKEN_EXCHANGE, "subject_token": subject, "subject_token_type": ACCESS_TOKEN_TYPE,
        "audience": "mlctl-admin", **client_auth(kc)})
    assert resp.status_code == 400


def test_device_authorization_grant(identity):
    kc = identity["kc"]
    resp = requests.post(f"{kc['issuer']}/protocol/openid-connect/auth/device", verify=kc["ca_file"],
                         timeout=30, data={"scope": "openid", **client_auth(kc)})
    assert resp.status_code == 200, resp.text
    device = resp.json()
    poll = {"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": device["device_code"],
            **client_auth(kc)}
    pending = requests.post(token_endpoint(kc), data=poll, verify=kc["ca_file"], timeout=30)
    assert pending.json()["error"] == "authorization_pending"

    with requests.Session() as browser:
        done = browser_login(browser, kc, device["verification_uri_complete"], "bob", "bob-pw")
    assert done.status_code == 200, done.text[:500]
    assert urllib.parse.urlparse(done.url).path.endswith("/device/status")

    deadline = time.monotonic() + 30
    while True:
        resp = requests.post(token_endpoint(kc), data=poll, verify=kc["ca_file"], timeout=30)
        if resp.status_code == 200 or time.monotonic() > deadline:
            break
        assert resp.json()["error"] in ("authorization_pending", "slow_down"), resp.text
        time.sleep(device.get("interval", 1))
    assert resp.status_code == 200, resp.text
    access = claims(resp.json()["access_token"])
    assert access["preferred_username"] == "bob"
    assert "gpu-power-users" in access["groups"]


def test_spnego_login_with_kerberos_ticket(identity, tmp_path):
    """A ticket from kinit logs alice in (authorization-code flow) without a password typed."""
    import gssapi

    from mlctl.sandbox import kdc

    kc, kdc_info = identity["kc"], identity["kdc"]
    ccache = tmp_path / "ccache"
    kdc.kinit(kdc_info, "alice", "alice-pw", ccache)
    redirect_uri = "http://127.0.0.1:38765/callback"
    auth_url = f"{kc['issuer']}/protocol/openid-connect/auth?" + urllib.parse.urlencode({
        "client_id": kc["client_id"], "response_type": "code", "redirect_uri": redirect_uri,
        "scope": "openid", "state": "s1"})
    host = urllib.parse.urlparse(kc["url"]).hostname
    with requests.Session() as browser:
        challenge = browser.get(auth_url, verify=kc["ca_file"], timeout=30, allow_redirects=False)
        assert challenge.status_code == 401
        assert challenge.headers["WWW-Authenticate"].startswith("Negotiate")
        creds = gssapi.Credentials(usage="initiate", store={"ccache": f"FILE:{ccache}"})
        context = gssapi.SecurityContext(
            name=gssapi.Name(f"HTTP@{host}", gssapi.NameType.hostbased_service), creds=creds,
            usage="initiate", mech=gssapi.OID.from_int_seq("1.3.6.1.5.5.2"))
        negotiate = base64.b64encode(context.step()).decode()
        resp = browser.get(auth_url, verify=kc["ca_file"], timeout=30, allow_redirects=False,
                           headers={"Authorization": f"Negotiate {negotiate}"})
    assert resp.status_code == 302, resp.text[:500]
    query = urllib.parse.parse_qs(urllib.parse.urlparse(resp.headers["Location"]).query)
    assert query["state"] == ["s1"]
    resp = requests.post(token_endpoint(kc), verify=kc["ca_file"], timeout=30, data={
        "grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": redirect_uri,
        **client_auth(kc)})
    assert resp.status_code == 200, resp.text
    access = claims(resp.json()["access_token"])
    # The Kerberos principal maps onto the realm's existing alice, who keeps her groups.
    assert access["preferred_username"] == "alice"
    assert sorted(access["groups"]) == ["burst-gcp", "ml-users"]
    assert access["sub"] == claims(password_grant(kc, "alice", "alice-pw")["access_token"])["sub"]


def test_admin_service_client_lists_users_and_groups(identity):
    from keycloak import KeycloakAdmin, KeycloakOpenIDConnection

    kc = identity["kc"]
    connection = KeycloakOpenIDConnection(
        server_url=kc["url"], realm_name=kc["realm"], client_id=kc["admin_client_id"],
        client_secret_key=kc["admin_client_secret"], verify=kc["ca_file"])
    admin = KeycloakAdmin(connection=connection)
    users = {u["username"] for u in admin.get_users({})}
    assert {"alice", "bob", "carol", "dave"} <= users
    groups = {g["name"]: g for g in admin.get_groups({"briefRepresentation": False})}
    assert set(groups) >= {"ml-users", "gpu-power-users", "burst-gcp", "platform-admins"}
    assert groups["gpu-power-users"]["attributes"]["mlctl.io/quota.requests.nvidia.com/gpu"] == ["8"]
    members = {u["username"] for u in admin.get_group_members(groups["gpu-power-users"]["id"])}
    assert members == {"bob"}
    bob = admin.get_user_id("bob")
    assert {g["name"] for g in admin.get_user_groups(bob)} == {"ml-users", "gpu-power-users"}


def test_keycloak_restart_keeps_realm(identity):
    """A second start (warm: built dist, existing database) finds the realm as it was. Runs last."""
    from mlctl.sandbox import keycloak

    state = identity["state"]  # the shared sandbox's Keycloak: restarted in place, ready again on return
    keycloak.stop(state)
    kc = keycloak.start(state, identity["kdc"])
    print(f"\nKeycloak warm restart: launch to ready realm {kc['startup_seconds']} s", file=sys.stderr)
    access = claims(password_grant(kc, "dave", "dave-pw")["access_token"])
    assert sorted(access["groups"]) == ["ml-users", "platform-admins"]
