"""mlctl quota: your namespace's quota (what you use, what you have, where it comes from) and requests."""

from mlctl.cli import lazy_group

group = lazy_group("quota", {
    "show": ("mlctl.commands.quota.show:command", "Show used vs hard quota and which source grants what."),
    "request": ("mlctl.commands.quota.request:command", "Ask the admins for more quota (GPUs, CPU, memory, pods)."),
    "requests": ("mlctl.commands.quota.requests:command", "List your quota requests and their decisions."),
}, help="Your quota: usage, where it comes from, and requests for more.")
