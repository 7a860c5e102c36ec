"""What admin verbs share: admin access to each cluster (a kubeconfig, or the logged-in session)."""

from __future__ import annotations

import click

ACCESS_OPTIONS = [
    click.option("--kubeconfig", envvar="MLCTL_ADMIN_KUBECONFIG", metavar="FILE",
                 help="Use this kubeconfig's credentials instead of your mlctl login [env MLCTL_ADMIN_KUBECONFIG]."),
    click.option("--context-template", default="{cluster}", show_default=True, metavar="TEMPLATE",
                 help="Kubeconfig context of each cluster; else the one context named *-<cluster>."),
]


def access_options(f):
    for opt in reversed(ACCESS_OPTIONS):
        f = opt(f)
    return f


def selected_clusters(f, all_by_default: bool = True) -> list[dict]:
    """--cluster (one) or every cluster of the platform."""
    name = f.config.get("cluster")
    if name:
        return [f.platform.cluster(name)]
    return list(f.platform.clusters) if all_by_default else [f.platform.cluster(None)]


def kube_api(f, cluster: str, kubeconfig: str | None, context_template: str):
    from mlctl.kube.errors import kube_errors

    with kube_errors("connecting", cluster):
        return f.kube(cluster, kubeconfig=kubeconfig, context_template=context_template)


def me(f) -> str:
    """Who is acting: the logged-in user (the kubeconfig case has no SSO user: 'admin')."""
    from mlctl.auth.session import cache_for

    session = cache_for(f).session() or {}
    return session.get("user") or "admin"
