"""What the quota verbs share: the user's namespace on a cluster, and a KubeApi for it."""

from __future__ import annotations


def target_api(f, cluster: str | None = None):
    from mlctl.admin.kubeapi import KubeApi
    from mlctl.commands.train.common import target
    from mlctl.kube.client import api_client
    from mlctl.kube.errors import kube_errors

    t = target(f, cluster)
    with kube_errors("connecting", t.cluster["name"]):
        api = KubeApi(api_client(f, t.cluster["name"]), t.cluster["name"])
    return t, api
