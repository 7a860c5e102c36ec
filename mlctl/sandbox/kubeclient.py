"""Admin Kubernetes clients for the sandbox's own bootstrapping (one ApiClient per kubeconfig context)."""

from __future__ import annotations

from pathlib import Path


def api_client(kubeconfig: Path, context: str, pool_size: int = 16):
    """A kubernetes ApiClient for one context of kubeconfig; never touches the global default config."""
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), context=context,
                            client_configuration=configuration, persist_config=False)
    configuration.connection_pool_maxsize = pool_size
    return client.ApiClient(configuration)


def has_service_account(api, namespace: str, name: str) -> bool:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        client.CoreV1Api(api).read_namespaced_service_account(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True
