"""What the quota verbs share: the user's namespace on a cluster, and the Kube for it."""

from __future__ import annotations


def target_api(f, cluster: str | None = None):
    from mlctl.commands.train.common import target

    t = target(f, cluster)
    return t, f.kube(t.cluster["name"])
