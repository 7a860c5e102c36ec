"""mlctl admin quota: users' quota requests, across namespaces, and the admins' decisions."""

from mlctl.cli import lazy_group

group = lazy_group("quota", {
    "list": ("mlctl.commands.admin.quota.list:command", "List quota requests in every namespace."),
    "approve": ("mlctl.commands.admin.quota.decide:approve", "Approve a quota request (sync applies it)."),
    "deny": ("mlctl.commands.admin.quota.decide:deny", "Deny a quota request, with a message for the user."),
}, help="List, approve and deny users' quota requests.")
