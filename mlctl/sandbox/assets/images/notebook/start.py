"""The sandbox's notebook image (mlctl.sandbox/notebook:1): JupyterLab as Kubeflow's notebook images start it.

Served under $NB_PREFIX (the notebook controller sets /notebook/<namespace>/<name>), bound to the pod's own
address $POD_IP on port 8888 (NOTEBOOK_PORT overrides), files from $HOME. JupyterLab's own token and password
are off, as in Kubeflow's images: the gateway in front of it authenticates the user and lets only the
notebook's owner through (docs/workloads.md).
"""

import os
import sys


def argv() -> list[str]:
    prefix = "/" + os.environ.get("NB_PREFIX", "/").strip("/")
    home = os.environ.get("HOME") or os.getcwd()
    return [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
            f"--ServerApp.ip={os.environ.get('POD_IP', '127.0.0.1')}",
            f"--ServerApp.port={os.environ.get('NOTEBOOK_PORT', '8888')}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.base_url={prefix}",
            f"--ServerApp.root_dir={home}",
            "--IdentityProvider.token=",
            "--ServerApp.allow_origin=*", "--ServerApp.allow_remote_access=True",
            "--ServerApp.authenticate_prometheus=False",
            *sys.argv[1:]]


if __name__ == "__main__":
    os.makedirs(os.environ.get("HOME") or ".", exist_ok=True)
    args = argv()
    os.execv(args[0], args)
