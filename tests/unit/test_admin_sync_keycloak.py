"""Reading the directory: big pages, group attributes once, memberships from group member lists."""

from __future__ import annotations

from mlctl.admin import keycloak_admin
from mlctl.admin.keycloak_admin import read_directory


class FakeAdmin:
    def __init__(self, users: int, groups: int, per_group: int):
        self.users = [{"username": f"u{i}", "enabled": i % 50 != 0} for i in range(users)]
        self.groups = [{"id": f"g{j}", "name": f"group{j}", "path": f"/group{j}",
                        "attributes": {"mlctl.io/quota.pods": [str(j)]}, "subGroupCount": 0} for j in range(groups)]
        if self.groups:
            self.groups[0]["subGroups"] = [{"id": "sub", "name": "gpu", "path": "/group0/gpu", "attributes": {}}]
        self.per_group = per_group
        self.uncounted = 0  # users added after the count was read
        self.calls: list[str] = []

    @staticmethod
    def _page(items, query):
        return items[query["first"]:query["first"] + query["max"]]

    def get_users(self, query):
        self.calls.append("users")
        assert query["briefRepresentation"] is True
        return self._page(self.users, query)

    def users_count(self, query):
        self.calls.append("count")
        return len(self.users) - self.uncounted

    def get_groups(self, query, full_hierarchy=False):
        self.calls.append("groups")
        assert query["briefRepresentation"] is False  # attributes are needed
        return self._page(self.groups, query)

    def get_group_members(self, group_id, query):
        self.calls.append(f"members {group_id}")
        n = 0 if group_id == "sub" else int(group_id[1:])
        members = [{"username": f"u{(n * 7 + k) % len(self.users)}"} for k in range(self.per_group)]
        return self._page(members, query)

    def get_user_groups(self, *a, **kw):  # pragma: no cover - must never be called
        raise AssertionError("per-user group queries do not scale")


def test_requests_scale_with_pages_not_users_times_groups():
    admin = FakeAdmin(users=2500, groups=200, per_group=30)
    d, calls = read_directory(admin)
    assert len(d.users) == 2500 and sum(not u.enabled for u in d.users) == 50
    # the count, 3 user pages, 1 group page, 1 member page per group
    assert calls == len(admin.calls) == 1 + 3 + 1 + 201
    assert d.groups["group5"] == {"mlctl.io/quota.pods": ["5"]}
    assert "group0/gpu" in d.groups  # subgroups are named by path
    assert d.members["group1"] == {f"u{(7 + k) % 2500}" for k in range(30)}


def test_large_groups_page_their_members(monkeypatch):
    monkeypatch.setattr(keycloak_admin, "PAGE", 10)
    admin = FakeAdmin(users=25, groups=2, per_group=25)
    d, _ = read_directory(admin)
    assert len(d.members["group1"]) == 25
    assert admin.calls.count("members g1") == 3


def test_users_added_after_the_count_are_read_too(monkeypatch):
    monkeypatch.setattr(keycloak_admin, "PAGE", 10)
    admin = FakeAdmin(users=35, groups=1, per_group=1)
    admin.uncounted = 15  # the count says 20: two full pages, then two more are found one by one
    d, _ = read_directory(admin)
    assert [u.username for u in d.users] == [f"u{i}" for i in range(35)]
    assert admin.calls.count("users") == 4


def test_an_empty_realm_takes_one_page():
    admin = FakeAdmin(users=0, groups=0, per_group=0)
    d, _ = read_directory(admin)
    assert d.users == [] and admin.calls.count("users") == 1
