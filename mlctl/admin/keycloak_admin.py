"""Reading the directory from Keycloak's admin REST API (python-keycloak KeycloakAdmin, client credentials).

Requests grow with users/PAGE + groups (+ members/PAGE per group), never with users x groups: users are
paged in large pages, groups are read once with their attributes, and memberships come from each group's
member list (not from each user's group list). Pages and member lists are read several at once.
"""

from __future__ import annotations

import threading

from mlctl.admin.desired import Directory, User

PAGE = 1000


def _paged(fetch, query: dict) -> list[dict]:
    out: list[dict] = []
    first = 0
    while True:
        page = fetch({**query, "first": first, "max": PAGE})
        out.extend(page)
        if len(page) < PAGE:
            return out
        first += PAGE


def _flatten(groups: list[dict]) -> list[dict]:
    out = []
    for g in groups:
        out.append(g)
        out.extend(_flatten(g.get("subGroups") or []))
    return out


def group_name(group: dict) -> str:
    """Top-level groups by name (gpu-power-users); subgroups by path without the leading slash (atlas/gpu)."""
    path = str(group.get("path") or "").strip("/")
    return path or str(group.get("name"))


def read_directory(admin, workers: int = 8) -> tuple[Directory, int]:
    """The directory, and the number of admin API requests it took. admin: a KeycloakAdmin (or a fake).

    `workers` requests run at once: the user count first, then every page of users (the last page is
    followed up one by one, in case users were added meanwhile) beside the groups, then the groups' member
    lists."""
    from concurrent.futures import ThreadPoolExecutor

    calls = 0
    lock = threading.Lock()

    def counted(fn):
        def call(*args, **kwargs):
            nonlocal calls
            with lock:
                calls += 1
            return fn(*args, **kwargs)

        return call

    brief = {"briefRepresentation": True}
    get_users = counted(admin.get_users)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="keycloak") as pool:
        # briefRepresentation=false brings the attributes; subgroups are fetched (and counted) by python-keycloak
        top_groups = pool.submit(_paged, counted(lambda q: admin.get_groups(q, full_hierarchy=False)),
                                 {"briefRepresentation": False})
        total = counted(admin.users_count)({})
        pages = list(pool.map(lambda first: get_users({**brief, "first": first, "max": PAGE}),
                              range(0, max(total, 1), PAGE)))
        first = len(pages) * PAGE
        while len(pages[-1]) == PAGE:  # more users than counted
            pages.append(get_users({**brief, "first": first, "max": PAGE}))
            first += PAGE
        every = _flatten(top_groups.result())

        def members_of(g: dict) -> set[str]:
            return {u["username"] for u in _paged(counted(lambda q: admin.get_group_members(g["id"], q)), brief)}

        member_sets = list(pool.map(members_of, every))
    users = [User(u["username"], bool(u.get("enabled", True))) for page in pages for u in page]
    groups = {group_name(g): g.get("attributes") or {} for g in every}
    members = {group_name(g): m for g, m in zip(every, member_sets, strict=True)}
    return Directory(users, groups, members), calls


def keycloak_admin(keycloak: dict, client_id: str, secret: str, ca_file: str | None):
    """A KeycloakAdmin for the realm of keycloak.issuer (built in auth/, the only importer of keycloak)."""
    from mlctl.auth.sso import admin_client

    return admin_client(keycloak, client_id, secret, ca_file)


def load(f, client_id: str, secret: str) -> tuple[Directory, int]:
    """Read the directory of the platform's Keycloak; Keycloak errors become mlctl errors."""
    from mlctl.auth.session import keycloak_ca_file
    from mlctl.auth.sso import Sso
    from mlctl.errors import AuthError, Forbidden

    kc = f.platform.section("keycloak") or {}
    ca = keycloak_ca_file(f)
    sso = Sso(kc, ca)  # only for its error translation
    try:
        with sso.errors("reading users and groups from Keycloak"):
            admin = keycloak_admin(kc, client_id, secret, str(ca) if ca else None)
            return read_directory(admin)
    except AuthError as e:
        raise AuthError(e.message, hint=f"check the admin client {client_id!r} and its secret "
                                        "(--client-id/--client-secret, MLCTL_ADMIN_CLIENT_ID/MLCTL_CLIENT_SECRET)") from e
    except Forbidden as e:
        raise Forbidden(e.message, hint=f"the service account of {client_id!r} needs realm-management roles "
                                        "view-users, query-users, query-groups") from e
