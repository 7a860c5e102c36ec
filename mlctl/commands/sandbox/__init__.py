"""mlctl sandbox: the platform's real servers built from upstream and run on this machine."""

from mlctl.cli import lazy_group

group = lazy_group("sandbox", {
    "up": ("mlctl.commands.sandbox.up:command", "Build (once) and start the sandbox; idempotent."),
    "down": ("mlctl.commands.sandbox.down:command", "Stop every process the sandbox started."),
    "status": ("mlctl.commands.sandbox.status:command", "Show the sandbox's processes, ports and health."),
    "login": ("mlctl.commands.sandbox.login:command",
              "Log in to the sandbox as one of its users (alice, bob, carol, dave) or as its admin client."),
    "preempt": ("mlctl.commands.sandbox.preempt:command",
                "Preempt sandbox nodes (default cluster gcp): their pods are terminated, the nodes come back later."),
    "env": ("mlctl.commands.sandbox.env:command", "Print shell exports for using the sandbox (eval it)."),
    "s3-secrets": ("mlctl.commands.sandbox.s3_secrets:command",
                   "Write each sandbox user's S3 credentials Secret (mlctl-s3) into their namespaces (after admin sync)."),
}, help="Run the whole platform locally, from real upstream servers.")
