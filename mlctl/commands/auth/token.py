"""mlctl token: the kubectl exec credential plugin (client.authentication.k8s.io/v1 ExecCredential).

It runs on every kubectl call, so a cached token is answered from the cache alone: no Keycloak, requests or
kubernetes import, and no platform document parsing.
"""

from __future__ import annotations

import json

import click

from mlctl.cli import mlctl_command


def run(f) -> None:
    from mlctl.auth.cache import TokenCache, exec_credential
    from mlctl.errors import UsageError

    # kubeconfig entries pass both --platform and --cluster: then no config file or YAML is read at all
    cluster = f.flags.get("cluster") or f.config.get("cluster")
    if not cluster:
        raise UsageError("--cluster is required", hint="e.g. mlctl token --cluster local")
    platform = f.flags.get("platform") or f.config.platform_name() or f.platform.name
    cache = TokenCache(platform, env=f.env)
    entry = cache.fresh_cluster_token(cluster)
    if entry:
        token, expires_at = entry["token"], entry["expires_at"]
    else:
        from mlctl.auth.session import cluster_token

        token, expires_at = cluster_token(f, f.platform.cluster(cluster), cache)
    f.io.out(json.dumps(exec_credential(token, expires_at)))


@mlctl_command("token")
@click.pass_obj
def command(f):
    """Print a token for --cluster as a kubectl ExecCredential (used by mlctl-<cluster> contexts)."""
    run(f)
