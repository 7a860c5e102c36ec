"""Where settings come from: flags > MLCTL_* environment > the config file > built-in defaults.

The config file is $XDG_CONFIG_HOME/mlctl/config.yaml. Platform documents (DESIGN.md, "Platform
configuration") are stored beside it as platforms/<name>.yaml; `--platform NAME` picks one, and
MLCTL_PLATFORM_FILE points at a document directly (the sandbox's `env` sets it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mlctl import yamlio
from mlctl.errors import NotFound, UsageError
from mlctl.formats import OUTPUT_FORMATS
from mlctl.paths import config_dir

# setting name -> (environment variable, default)
SETTINGS: dict[str, tuple[str, Any]] = {
    "platform": ("MLCTL_PLATFORM", None),
    "cluster": ("MLCTL_CLUSTER", None),
    "namespace": ("MLCTL_NAMESPACE", None),
    "output": ("MLCTL_OUTPUT", "table"),
    "no_color": ("MLCTL_NO_COLOR", False),
    "verbose": ("MLCTL_VERBOSE", 0),
    "debug": ("MLCTL_DEBUG", False),
    "yes": ("MLCTL_YES", False),
}
_TRUE = {"1", "true", "yes", "on"}


def config_path(env=None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("MLCTL_CONFIG") or config_dir(env) / "config.yaml")


def _load_yaml(path: Path, what: str) -> Any:
    import yaml

    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise UsageError(f"cannot read {what} {path}: {e.strerror}") from e
    try:
        return yamlio.load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise UsageError(f"{path}{where}: {what} is not valid YAML",
                         hint=f"fix or remove {path}") from e


def _coerce(name: str, value: Any) -> Any:
    if name in ("no_color", "debug", "yes"):
        return value if isinstance(value, bool) else str(value).strip().lower() in _TRUE
    if name == "verbose":
        try:
            return int(value)
        except (TypeError, ValueError):
            return 1 if str(value).strip().lower() in _TRUE else 0
    return value


class Config:
    """Resolved settings. `flags` holds only values given on the command line."""

    # a plain class, not a dataclass: dataclasses (and inspect) cost start-up time on every command
    def __init__(self, flags: dict[str, Any] | None = None, env: dict[str, str] | None = None):
        self.flags = {} if flags is None else flags
        self.env = dict(os.environ) if env is None else env
        self._file: dict | None = None

    @property
    def file(self) -> dict:
        if self._file is None:
            data = _load_yaml(config_path(self.env), "config file") or {}
            if not isinstance(data, dict):
                raise UsageError(f"{config_path(self.env)}: config file must be a mapping",
                                 hint=f"fix or remove {config_path(self.env)}")
            self._file = data
        return self._file

    def source(self, name: str) -> str:
        """Where a setting's value comes from: flag, env, file or default."""
        if self.flags.get(name) is not None:
            return "flag"
        if self.env.get(SETTINGS[name][0]) not in (None, ""):
            return "env"
        if self._file_value(name) is not None:
            return "file"
        return "default"

    def _file_value(self, name: str) -> Any:
        if name != "platform":
            profile = (self.file.get("platforms") or {}).get(self._platform_name_raw() or "", {})
            if isinstance(profile, dict) and profile.get(name) is not None:
                return profile[name]
        return self.file.get(name)

    def _platform_name_raw(self) -> str | None:
        return self.flags.get("platform") or self.env.get("MLCTL_PLATFORM") or self.file.get("platform")

    def get(self, name: str) -> Any:
        src = self.source(name)
        if src == "flag":
            value = self.flags[name]
        elif src == "env":
            value = self.env[SETTINGS[name][0]]
        elif src == "file":
            value = self._file_value(name)
        else:
            value = SETTINGS[name][1]
        value = _coerce(name, value)
        if name == "output" and value not in OUTPUT_FORMATS:
            where = {"flag": "-o", "env": "MLCTL_OUTPUT", "file": str(config_path(self.env))}.get(src, src)
            raise UsageError(f"unknown output format {value!r} (from {where})",
                             hint=f"use one of: {', '.join(OUTPUT_FORMATS)}")
        return value

    # --- writing -----------------------------------------------------------------------------
    def save(self) -> None:
        import yaml

        path = config_path(self.env)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(self.file, sort_keys=True))
        tmp.replace(path)

    # --- platform documents --------------------------------------------------------------------
    def platform_name(self) -> str | None:
        """The configured platform profile's name; None when --platform names a document file."""
        value = self.get("platform")
        return None if value and is_document_path(value) else value

    def platform_path(self, name: str) -> Path:
        return config_dir(self.env) / "platforms" / f"{name}.yaml"

    def platform(self) -> Platform:
        """The selected platform document; a clear error when none is configured."""
        direct = self.env.get("MLCTL_PLATFORM_FILE")
        value = self.get("platform")
        if value and is_document_path(value):  # --platform FILE, as kubectl's --kubeconfig: no login needed
            return Platform.load(Path(value).expanduser())
        name = self.platform_name()
        if direct and self.source("platform") not in ("flag",):
            return Platform.load(Path(direct))
        if not name:
            raise NotFound("no platform is configured",
                           hint="run 'mlctl login --platform URL|FILE' or 'mlctl sandbox up'")
        path = self.platform_path(name)
        if not path.exists():
            raise NotFound(f"platform {name!r} is not configured",
                           hint=f"run 'mlctl login --platform URL|FILE' to add it ({', '.join(self.platform_names()) or 'none configured'})")
        return Platform.load(path)

    def platform_names(self) -> list[str]:
        folder = config_dir(self.env) / "platforms"
        return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def is_document_path(value: str) -> bool:
    """Whether a --platform value names a document file rather than a configured profile (profile names
    have no path separator and no file suffix)."""
    return "/" in value or value.endswith((".yaml", ".yml", ".json"))


class Platform:
    """A platform document: Keycloak, OPA, S3 and the cluster registry."""

    def __init__(self, doc: dict, path: Path | None = None):
        self.doc = doc
        self.path = path

    @classmethod
    def load(cls, path: Path) -> Platform:
        doc = _load_yaml(path, "platform document")
        if doc is None and not path.exists():
            raise NotFound(f"platform document {path} does not exist")
        return cls.parse(doc, path)

    @classmethod
    def parse(cls, doc: Any, path: Path | None = None) -> Platform:
        where = str(path) if path else "platform document"
        if not isinstance(doc, dict) or doc.get("kind") != "Platform":
            raise UsageError(f"{where}: not a platform document (kind: Platform)")
        clusters = doc.get("clusters")
        if not isinstance(clusters, list) or not clusters:
            raise UsageError(f"{where}: clusters: must be a non-empty list")
        for i, c in enumerate(clusters):
            if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not c.get("server"):
                raise UsageError(f"{where}: clusters[{i}]: needs at least name and server")
        return cls(doc, path)

    @property
    def name(self) -> str:
        return str(self.doc.get("name") or (self.path.stem if self.path else "platform"))

    @property
    def clusters(self) -> list[dict]:
        return self.doc["clusters"]

    def cluster_names(self) -> list[str]:
        return [c["name"] for c in self.clusters]

    def cluster(self, name: str | None) -> dict:
        """The named cluster's entry, or the first (home) cluster when name is None."""
        if name is None:
            return self.clusters[0]
        for c in self.clusters:
            if c["name"] == name:
                return c
        raise NotFound(f"cluster {name!r} is not in platform {self.name}",
                       hint=f"known clusters: {', '.join(self.cluster_names())}")

    def section(self, key: str) -> dict | None:
        value = self.doc.get(key)
        return value if isinstance(value, dict) else None


def adopt_platform(f) -> bool:
    """`mlctl login --platform URL|FILE`: fetch the document, store it as a profile named after it and make it
    current; False when --platform names a profile already."""
    value = f.flags.get("platform")
    if not value or not (value.startswith(("https://", "http://")) or is_document_path(value)
                         or Path(value).is_file()):
        return False
    import yaml

    from mlctl.errors import Unavailable

    if value.startswith(("https://", "http://")):
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(value, timeout=10) as resp:
                text = resp.read().decode()
        except urllib.error.HTTPError as e:
            if e.code == 404:
                raise NotFound(f"no platform document at {value}") from e
            raise Unavailable(f"fetching {value} returned HTTP {e.code}") from e
        except (OSError, ValueError) as e:
            raise Unavailable(f"cannot fetch the platform document from {value}") from e
    else:
        try:
            text = Path(value).read_text()
        except OSError as e:
            raise NotFound(f"cannot read platform document {value}: {e.strerror}") from e
    try:
        doc = yamlio.load(text)
    except yaml.YAMLError as e:
        raise UsageError(f"{value}: platform document is not valid YAML") from e
    platform = Platform.parse(doc, Path(value) if not value.startswith("http") else None)
    target = f.config.platform_path(platform.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(doc, sort_keys=False))
    f.config.file["platform"] = platform.name
    f.config.save()
    f.flags["platform"] = platform.name
    f.__dict__.pop("platform", None)
    return True
