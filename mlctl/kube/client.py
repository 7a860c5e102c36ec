"""ApiClients per cluster, authenticated with the token exchanged for that cluster's audience."""

from __future__ import annotations

from pathlib import Path

from mlctl.paths import cached_ca_file


def _ca_file(platform_name: str, cluster: dict) -> str | None:
    data = cluster.get("certificateAuthorityData")
    if not data:
        return None
    return str(cached_ca_file(f"{platform_name}-{cluster['name']}", data))


def quiet_urllib3() -> None:
    """Configuration() resets urllib3's log level to WARNING; its retry warnings about dropped connections
    (an apiserver restarting while mlctl resumes its watch) are not for users unless they ask (--debug)."""
    import logging

    if logging.getLogger().level > logging.DEBUG or logging.getLogger().level == logging.NOTSET:
        logging.getLogger("urllib3").setLevel(logging.ERROR)


def api_client(f, cluster_name: str | None = None):
    """An ApiClient for the cluster, as the logged-in user; its token refreshes through the cache."""
    from kubernetes import client

    from mlctl.auth.session import cache_for, cluster_token

    cluster = f.platform.cluster(cluster_name or f.config.get("cluster"))
    cache = cache_for(f)
    config = client.Configuration()
    config.host = cluster["server"]
    ca = _ca_file(f.platform.name, cluster)
    if ca:
        config.ssl_ca_cert = ca
    config.verify_ssl = True

    def refresh(cfg):
        token, _ = cluster_token(f, cluster, cache)
        cfg.api_key["BearerToken"] = token

    # kubernetes >= 36 reads the bearer token under "BearerToken" (the old "authorization" key is only an alias
    # whose prefix is not applied): without the prefix the server sees an anonymous request.
    config.api_key_prefix["BearerToken"] = "Bearer"
    quiet_urllib3()
    refresh(config)
    config.refresh_api_key_hook = refresh
    return client.ApiClient(config)


def admin_client(kubeconfig: Path, context: str):
    """An ApiClient from a kubeconfig context (the sandbox's admin, tests); no global config is touched."""
    from kubernetes import config

    return config.new_client_from_config(config_file=str(kubeconfig), context=context)


def rest_client(f, cluster_name: str | None = None):
    """A KubeRest (standard-library client) for the cluster, as the logged-in user."""
    from mlctl.auth.session import cache_for, cluster_token
    from mlctl.kube.rest import KubeRest

    cluster = f.platform.cluster(cluster_name or f.config.get("cluster"))
    cache = cache_for(f)
    return KubeRest(cluster["server"], _ca_file(f.platform.name, cluster),
                    lambda: cluster_token(f, cluster, cache)[0], cluster["name"])
