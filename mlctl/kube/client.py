"""The user's Kube for a cluster: its server and CA from the platform document, a token exchanged for its
audience (refreshed through the session's cache)."""

from __future__ import annotations

from mlctl.paths import cached_ca_file


def _ca_file(platform_name: str, cluster: dict, env=None) -> str | None:
    data = cluster.get("certificateAuthorityData")
    if not data:
        return None
    return str(cached_ca_file(f"{platform_name}-{cluster['name']}", data, env))


def for_user(f, cluster_name: str | None = None, timeout: float = 60.0):
    """A Kube for the cluster as the logged-in user."""
    from mlctl.auth.session import cache_for, cluster_token
    from mlctl.kube.api import Kube

    cluster = f.platform.cluster(cluster_name or f.config.get("cluster"))
    cache = cache_for(f)
    return Kube(cluster["server"], cluster["name"], ca_file=_ca_file(f.platform.name, cluster, f.env),
                token=lambda: cluster_token(f, cluster, cache)[0], timeout=timeout)


def for_admin(kubeconfig: str, cluster: str, template: str = "{cluster}", timeout: float = 60.0):
    """A Kube from a kubeconfig for cluster: context template.format(cluster=...), or else the one context
    whose name ends in -<cluster> (sandbox-local, mlctl-gcp)."""
    from mlctl.errors import NotFound
    from mlctl.kube.api import contexts, from_kubeconfig

    names = contexts(kubeconfig)
    wanted = template.format(cluster=cluster)
    if wanted not in names:
        suffixed = [n for n in names if n.endswith(f"-{cluster}")]
        if len(suffixed) != 1:
            raise NotFound(f"kubeconfig {kubeconfig} has no context {wanted!r} for cluster {cluster}",
                           hint="pass --context-template, e.g. 'admin@{cluster}'")
        wanted = suffixed[0]
    return from_kubeconfig(kubeconfig, wanted, cluster=cluster, timeout=timeout)
