"""The Factory: lazily built, cached access to streams, configuration, the platform and clients.

Commands get everything through it, so nothing heavy is imported or connected before it is needed,
and tests can hand a command a Factory with test streams and a chosen environment.
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import TYPE_CHECKING

from mlctl.io import IO

if TYPE_CHECKING:  # the config module (pathlib, YAML) loads only when a command reads settings
    from mlctl.config import Config, Platform


class Factory:
    def __init__(self, io: IO | None = None, env: dict[str, str] | None = None):
        self.io = io or IO.system()
        self.env = dict(os.environ) if env is None else env
        self.flags: dict = {}
        self._kubes: dict = {}
        self._storage = None

    @cached_property
    def config(self) -> Config:
        from mlctl.config import Config

        return Config(flags=self.flags, env=self.env)

    @cached_property
    def platform(self) -> Platform:
        return self.config.platform()

    def cluster_name(self, explicit: str | None = None) -> str:
        """The cluster a command acts on: explicit argument > --cluster > MLCTL_CLUSTER > file > home."""
        name = explicit or self.config.get("cluster")
        return self.platform.cluster(name)["name"]

    def kube(self, cluster: str | None = None, *, kubeconfig: str | None = None,
             context_template: str = "{cluster}"):
        """The Kube (mlctl/kube/api.py) of a cluster, built once: as the logged-in user, or from a kubeconfig
        (admin verbs' --kubeconfig)."""
        name = self.cluster_name(cluster)
        key = (name, kubeconfig, context_template)
        if key not in self._kubes:
            from mlctl.kube import client

            self._kubes[key] = (client.for_admin(kubeconfig, name, context_template) if kubeconfig
                                else client.for_user(self, name))
        return self._kubes[key]

    def opa(self):
        """The platform's policy server (mlctl/policy/opa.py: decide, decisions), built once."""
        if "_opa" not in self.__dict__:
            from mlctl.policy.opa import Client

            self.__dict__["_opa"] = Client(self.platform)
        return self.__dict__["_opa"]

    def storage(self):
        """The logged-in user's S3 outputs (mlctl/storage/client.py), built once."""
        if self._storage is None:
            from mlctl.storage.client import for_user

            self._storage = for_user(self)
        return self._storage

    @property
    def output(self) -> str:
        return self.config.get("output")

    @property
    def yes(self) -> bool:
        return self.config.get("yes")
