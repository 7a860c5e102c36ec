"""mlctl's XDG directories (a leaf module: the cached `mlctl token` path imports nothing heavier)."""

from __future__ import annotations

import os
from pathlib import Path


def config_dir(env=None) -> Path:
    """$XDG_CONFIG_HOME/mlctl; env is the environment to read (the Factory's), os.environ when None."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "mlctl"


def cache_dir(env=None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mlctl"


def state_dir(env=None) -> Path:
    """$XDG_STATE_HOME/mlctl (default ~/.local/state/mlctl): what mlctl keeps about its own actions."""
    env = os.environ if env is None else env
    base = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "mlctl"


def cached_ca_file(name: str, data_b64: str, env=None) -> Path:
    """A CA bundle from a platform document (base64 PEM) written to the cache, for clients that need a
    file; rewritten only when it changed."""
    import base64

    pem = base64.b64decode(data_b64)
    path = cache_dir(env) / "ca" / f"{name}.crt"
    if not path.exists() or path.read_bytes() != pem:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pem)
    return path
