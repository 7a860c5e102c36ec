"""What the notebook verbs share: the cluster notebooks run on, the user's namespace, reading a notebook."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Target:
    cluster: dict
    namespace: str
    user: str
    kube: object = None


def notebook_cluster(f) -> dict:
    """--cluster, else the platform's notebooks.cluster, else the home cluster."""
    from mlctl.notebooks import section

    explicit = f.config.get("cluster")
    return f.platform.cluster(explicit or section(f.platform.doc).get("cluster"))


def target(f, user: str | None = None) -> Target:
    from mlctl.commands.train.common import current_user
    from mlctl.tenancy import user_namespace

    cluster = notebook_cluster(f)
    user = user or current_user(f)
    namespace = f.config.get("namespace") or user_namespace(user)
    return Target(cluster, namespace, user, None)


def connect(f, t: Target):
    if t.kube is None:
        t.kube = f.kube(t.cluster["name"])
    return t.kube


def get_notebook(f, t: Target, name: str) -> dict:
    from mlctl.errors import NotFound

    nb = connect(f, t).find("Notebook", name, t.namespace)
    if nb is None:
        raise NotFound(f"notebook {name} not found in {t.namespace} on cluster {t.cluster['name']}",
                       hint="see 'mlctl notebook list'")
    nb.setdefault("kind", "Notebook")
    nb.setdefault("apiVersion", "kubeflow.org/v1")
    return nb


def summary(f, t: Target, nb: dict) -> dict:
    """The notebook as `status` and `-o json` show it."""
    from mlctl import notebooks as N

    meta = nb["metadata"]
    c = N.container(nb)
    requests = (c.get("resources") or {}).get("requests") or {}
    return {"name": meta["name"], "namespace": meta.get("namespace"), "cluster": t.cluster["name"],
            "state": N.state(nb), "message": N.message(nb), "image": c.get("image"),
            "pool": (meta.get("annotations") or {}).get("mlctl.io/pool"),
            "gpus": N.gpus(nb), "cpu": requests.get("cpu"), "memory": requests.get("memory"),
            "workspace": (meta.get("annotations") or {}).get("mlctl.io/workspace"),
            "url": N.url(f.platform.section("gateway"), meta.get("namespace"), meta["name"]),
            "readyReplicas": int((nb.get("status") or {}).get("readyReplicas") or 0),
            "created": meta.get("creationTimestamp")}


def login_secret(f, t: Target, name: str) -> dict:
    """The notebook's configuration Secret for the logged-in user: the platform document and a copy of the
    session, refreshed first so the notebook starts with the newest tokens."""
    from mlctl import notebooks as N
    from mlctl.auth.session import cache_for, fresh_access_token

    _, session = fresh_access_token(f, cache_for(f))
    return N.config_secret(name, t.cluster["name"], t.namespace, t.user, f.platform.doc, session)


def refresh_secret(f, t: Target, name: str) -> None:
    """Write the user's current session into the notebook's Secret (`start`: a login renewed since)."""
    secret = login_secret(f, t, name)
    kube = connect(f, t)
    secret_name = secret["metadata"]["name"]
    if kube.find("Secret", secret_name, t.namespace) is None:
        kube.create(secret, what=f"creating secret/{secret_name}")
    else:
        kube.patch("Secret", secret_name, {"stringData": secret["stringData"]}, t.namespace,
                   what=f"updating secret/{secret_name}")


def wait_for(f, t: Target, nb: dict, done, what: str, timeout: float | None) -> dict:
    """Watch the notebook until done(nb); Unavailable (exit 7) after timeout seconds."""
    import time

    from mlctl import logs
    from mlctl.errors import NotFound, Unavailable

    name = nb["metadata"]["name"]
    deadline = None if timeout is None else time.monotonic() + timeout
    kube = connect(f, t)
    while not done(nb):
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise Unavailable(f"notebook {name} is not {what} after {timeout:g}s",
                              hint=f"see 'mlctl notebook status {name}' and 'mlctl notebook logs {name}'")
        version = nb["metadata"].get("resourceVersion")
        for event, obj in kube.watch("Notebook", t.namespace, name=name, resource_version=version,
                                     timeout=min(left, 60) if left is not None else 60,
                                     on_open=lambda: logs.info(__name__, "watching notebook/%s", name)):
            if event == "DELETED":
                raise NotFound(f"notebook/{name} was deleted")
            nb = obj
            if done(nb):
                break
        else:
            nb = get_notebook(f, t, name)  # the watch ended (its timeout): read the object afresh
    return nb


def wait_ready(f, t: Target, nb: dict, timeout: float | None) -> dict:
    from mlctl import notebooks as N

    f.io.note(f"waiting for notebook/{nb['metadata']['name']} to be Ready")
    return wait_for(f, t, nb, lambda n: N.ready(n) and not N.stopped(n), "Ready", timeout)


def show_result(f, name: str, nb: dict) -> None:
    """What start and stop print on stdout after their note: the name, or the Notebook as JSON/YAML."""
    if f.output == "name":
        f.io.out(f"notebook/{name}")
    elif f.output in ("json", "yaml"):
        from mlctl.output import print_object

        print_object(f.io, nb, f.output)
