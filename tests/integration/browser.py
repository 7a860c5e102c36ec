"""A real browser for integration tests: Debian's `chromium`, headless, driven over the DevTools protocol.

    with Browser(tmp_path, trust=[gateway_url, keycloak_url]) as browser:
        page = browser.open(url, login=("alice", password), ready="document.querySelector('#jp-main-dock-panel')")
        page.title, page.text, page.url, page.screenshot   # screenshot: a PNG under tmp_path

Chromium runs as a child process with its own profile in a temporary directory. It trusts the sandbox's
servers without `--ignore-certificate-errors`: the harness connects to each origin named in `trust` with
the sandbox CA, so only a certificate that CA signed is accepted, and hands that certificate's public-key
hash to `--ignore-certificate-errors-spki-list`. The protocol goes over one WebSocket (websocket-client) to
the browser endpoint, with a flat session attached to one tab.

`open` follows the page to Keycloak's login form when it is sent there, fills in the user's name and
password (never logged or returned), submits it, and waits until the page is back on the URL it was asked
for and `ready` (a JavaScript expression) is truthy.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

CHROMIUM = "chromium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--remote-debugging-port=0", "--no-first-run", "--no-default-browser-check",
         "--disable-dev-shm-usage", "--window-size=1280,900")


class BrowserError(Exception):
    pass


@dataclass
class Page:
    url: str
    title: str
    text: str
    screenshot: Path
    logged_in: bool  # the page went through Keycloak's login form on the way


def chromium() -> str | None:
    return shutil.which(CHROMIUM)


def spki_hash(der_cert: bytes) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)) of a certificate: what Chromium's SPKI list names."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key = x509.load_der_x509_certificate(der_cert).public_key()
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def served_certificate(url: str, ca_file: Path) -> bytes:
    """The certificate an HTTPS origin serves, verified against ca_file (else ssl.SSLError)."""
    parts = urlsplit(url)
    ctx = ssl.create_default_context(cafile=str(ca_file))
    with socket.create_connection((parts.hostname, parts.port or 443), timeout=10) as sock, \
            ctx.wrap_socket(sock, server_hostname=parts.hostname) as tls:
        return tls.getpeercert(binary_form=True)


class Browser:
    def __init__(self, workdir: Path, *, trust: list[str] = (), ca_file: Path | None = None, timeout: float = 90):
        self.workdir = Path(workdir)
        self.trust, self.ca_file, self.timeout = list(trust), ca_file, timeout
        self.proc: subprocess.Popen | None = None
        self.ws = None
        self.ids = itertools.count(1)
        self.session: str | None = None
        self.profile: str | None = None
        self.shots = itertools.count(1)

    # ---- lifetime ----------------------------------------------------------------------------------------

    def __enter__(self) -> Browser:
        import websocket

        binary = chromium()
        if binary is None:
            raise BrowserError("chromium is not installed (scripts/system-packages.sh installs it)")
        self.profile = tempfile.mkdtemp(prefix="chromium-", dir=self.workdir)
        flags = [*FLAGS, f"--user-data-dir={self.profile}"]
        if self.trust:
            hashes = [spki_hash(served_certificate(u, self.ca_file)) for u in self.trust]
            flags.append("--ignore-certificate-errors-spki-list=" + ",".join(hashes))
        log = open(self.workdir / "chromium.log", "wb")  # noqa: SIM115 - closed in __exit__
        self._log = log
        self.proc = subprocess.Popen([binary, *flags, "about:blank"], stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        active = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (active.exists() and len(active.read_text().splitlines()) >= 2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise BrowserError(f"chromium did not open its DevTools port (see {self.workdir / 'chromium.log'})")
            time.sleep(0.1)
        port, path = active.read_text().splitlines()[:2]
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=self.timeout,
                                              suppress_origin=True)
        # the tab Chromium opened: a tab of its own would be a background one, whose frames (and so
        # JupyterLab's rendering, driven by requestAnimationFrame) are throttled
        pages = [t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page"]
        target = pages[0]["targetId"] if pages else self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Runtime.enable", session=True)
        self.call("Page.bringToFront", session=True)
        self.call("Emulation.setFocusEmulationEnabled", {"enabled": True}, session=True)
        return self

    def __exit__(self, *exc) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                self.call("Browser.close")
            with contextlib.suppress(Exception):
                self.ws.close()
            self.ws = None
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if getattr(self, "_log", None):
            self._log.close()
        if self.profile:
            shutil.rmtree(self.profile, ignore_errors=True)

    # ---- the protocol ------------------------------------------------------------------------------------

    def call(self, method: str, params: dict | None = None, *, session: bool = False) -> dict:
        """One DevTools command; events that arrive meanwhile are dropped (the harness polls the page)."""
        ident = next(self.ids)
        message = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        self.ws.send(json.dumps(message))
        while True:
            answer = json.loads(self.ws.recv())
            if answer.get("id") == ident:
                if "error" in answer:
                    raise BrowserError(f"{method}: {answer['error'].get('message')}")
                return answer.get("result") or {}

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, session=True)
        if "exceptionDetails" in result:
            return None
        return (result.get("result") or {}).get("value")

    def _wait(self, what: str, check, timeout: float | None = None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out waiting for {what} (at {self.evaluate('location.href')})")
            time.sleep(0.25)

    # ---- pages -------------------------------------------------------------------------------------------

    def open(self, url: str, *, login: tuple[str, str] | None = None, ready: str = "true",
             screenshot: str | None = None) -> Page:
        """Load url, log in through Keycloak's form if the page is sent there, wait for `ready`, and return
        the page's title, text and a screenshot."""
        answer = self.call("Page.navigate", {"url": url}, session=True)
        if answer.get("errorText"):
            raise BrowserError(f"cannot load {url}: {answer['errorText']}")
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
        logged_in = False

        def settled():
            state = self.evaluate("JSON.stringify([location.href, document.readyState,"
                                  " !!document.querySelector('#kc-form-login')])")
            return json.loads(state) if state else None

        while True:
            href, ready_state, form = self._wait("the page to load", lambda: (s := settled()) and
                                                 s[1] == "complete" and s)
            if form and login and not logged_in:
                self._submit_login(*login)
                logged_in = True
                self._wait("the login to leave Keycloak", lambda: not (settled() or [None, None, True])[2])
                continue
            if form:
                raise BrowserError("the page is Keycloak's login form" + (" again: the login failed" if logged_in
                                                                           else "; no login was given"))
            if href.startswith(origin):
                break
            time.sleep(0.25)
        self._wait(f"the page to be ready ({ready})", lambda: self.evaluate(f"!!({ready})"))
        # two animation frames: what the DOM holds now is painted before the screenshot
        self.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))")
        shot = self.workdir / (screenshot or f"page-{next(self.shots)}.png")
        data = self.call("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        shot.write_bytes(base64.b64decode(data))
        return Page(url=self.evaluate("location.href"), title=self.evaluate("document.title") or "",
                    text=self.evaluate("document.body ? document.body.innerText : ''") or "",
                    screenshot=shot, logged_in=logged_in)

    def _submit_login(self, username: str, password: str) -> None:
        user, secret = json.dumps(username), json.dumps(password)
        fill = ("(() => { const f = document.querySelector('#kc-form-login');"
                f" document.querySelector('#username').value = {user};"
                f" document.querySelector('#password').value = {secret};"
                " const button = f.querySelector('#kc-login'); if (button) button.click(); else f.submit();"
                " return true; })()")
        if not self.evaluate(fill):
            raise BrowserError("cannot fill in Keycloak's login form")

    def cookies(self) -> list[dict]:
        """The browser's cookies (name, domain, httpOnly, secure, sameSite, ...; values left out)."""
        found = self.call("Storage.getCookies").get("cookies") or []
        return [{k: v for k, v in c.items() if k != "value"} for c in found]

    def fetch_status(self, url: str) -> int:
        """The status of a GET the page makes with its cookies (same origin)."""
        return int(self.evaluate(f"fetch({json.dumps(url)}, {{credentials: 'same-origin'}}).then(r => r.status)")
                   or 0)
