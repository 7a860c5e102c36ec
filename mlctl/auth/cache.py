"""The token cache: $XDG_CACHE_HOME/mlctl/tokens/<platform>/, directory 0700, files 0600.

session.json holds the SSO session (refresh token, access token, user, groups); cluster-<name>.json holds
the token exchanged for that cluster's audience. One lock file serialises refreshes, so parallel kubectl
calls refresh once and the others read the result.

SEED_ENV names a read-only session file (a notebook's mounted copy of its owner's session,
docs/notebooks.md): when the cache has no session yet, it is copied in once, and never again after a logout.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import time
from pathlib import Path

from mlctl.paths import cache_dir

EARLY_REFRESH_SECONDS = 60  # refresh a token this long before it expires
SEED_ENV = "MLCTL_SESSION_SEED"


def jwt_claims(token: str) -> dict:
    """The claims of a JWT, unverified (only to read names and expiry the server already vouched for)."""
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}


class TokenCache:
    def __init__(self, platform: str, root: Path | None = None, env=None):
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in platform)
        self.dir = (root or cache_dir(env) / "tokens") / safe
        self.seed = (os.environ if env is None else env).get(SEED_ENV) or None
        self._seed_mark = self.dir.parent / f".{safe}.seeded"  # outside dir: clear() (logout) keeps it

    def _ensure_dir(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.dir, 0o700)
        os.chmod(self.dir.parent, 0o700)

    def _read(self, name: str) -> dict | None:
        try:
            data = json.loads((self.dir / name).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _write(self, name: str, data: dict) -> None:
        self._ensure_dir()
        tmp = self.dir / f".{name}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
        os.replace(tmp, self.dir / name)

    # session --------------------------------------------------------------------------------------
    def session(self) -> dict | None:
        data = self._read("session.json")
        if data is None and self.seed and not self._seed_mark.exists():
            data = self._seeded()
        return data

    def _seeded(self) -> dict | None:
        try:
            data = json.loads(Path(self.seed).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or not data.get("user"):
            return None
        self.save_session(data)
        fd = os.open(self._seed_mark, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
        return data

    def save_session(self, data: dict) -> None:
        self._write("session.json", data)

    # per-cluster tokens ------------------------------------------------------------------------------
    def cluster_token(self, cluster: str) -> dict | None:
        return self._read(f"cluster-{cluster}.json")

    def save_cluster_token(self, cluster: str, token: str, expires_at: float) -> None:
        self._write(f"cluster-{cluster}.json", {"token": token, "expires_at": expires_at})

    def fresh_cluster_token(self, cluster: str, now: float | None = None) -> dict | None:
        entry = self.cluster_token(cluster)
        now = time.time() if now is None else now
        if entry and entry.get("token") and entry.get("expires_at", 0) - EARLY_REFRESH_SECONDS > now:
            return entry
        return None

    def cluster_tokens(self) -> dict[str, dict]:
        out = {}
        if self.dir.is_dir():
            for path in sorted(self.dir.glob("cluster-*.json")):
                data = self._read(path.name)
                if data:
                    out[path.stem.removeprefix("cluster-")] = data
        return out

    def drop_cluster_tokens(self) -> None:
        for path in self.dir.glob("cluster-*.json"):
            path.unlink(missing_ok=True)

    @contextlib.contextmanager
    def lock(self):
        """An exclusive lock across processes for refreshing tokens."""
        self._ensure_dir()
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def clear(self) -> None:
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)


def exec_credential(token: str, expires_at: float) -> dict:
    """The client.authentication.k8s.io/v1 ExecCredential kubectl expects from a credential plugin."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires_at))
    return {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": token, "expirationTimestamp": stamp},
    }
