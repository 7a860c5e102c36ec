"""Reading YAML through libyaml when PyYAML was built with it: the platform document, the config file and
kubeconfigs are read on every command, and the C parser takes a tenth of the pure-Python one's time.
Both raise yaml.YAMLError with the same marks. (Specs keep the Python parser: their errors name lines
through its nodes, jobs/spec.py.)"""

from __future__ import annotations

from typing import Any


def load(text: str | bytes) -> Any:
    import yaml

    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - a safe loader
