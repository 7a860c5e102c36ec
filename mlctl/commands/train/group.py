"""The `mlctl train` group: `mlctl train SPEC` submits; `mlctl train VERB` manages (verbs load lazily)."""

from __future__ import annotations

from mlctl.cli import CONTEXT_SETTINGS, LazyGroup, _option_params
from mlctl.commands.train.submit import looks_like_spec

VERBS = {
    "submit": ("mlctl.commands.train.submit:command", "Submit a job spec (same as 'mlctl train SPEC')."),
    "render": ("mlctl.commands.train.render:command", "Print the Kubernetes objects a spec becomes on a cluster."),
    "schema": ("mlctl.commands.train.schema:command", "Print the job spec's JSON schema."),
    "list": ("mlctl.commands.train.list:command", "List your training jobs."),
    "status": ("mlctl.commands.train.status:command", "Show a job's state and replicas."),
    "describe": ("mlctl.commands.train.describe:command", "Show a job in full: spec, replicas, pods, events."),
    "logs": ("mlctl.commands.train.logs:command", "Print (or follow) the logs of a job's replica."),
    "events": ("mlctl.commands.train.events:command", "List the Kubernetes events of a job and its pods."),
    "delete": ("mlctl.commands.train.delete:command", "Delete a training job and its pods."),
    "wait": ("mlctl.commands.train.wait:command", "Wait until a job succeeds or fails."),
}


class TrainGroup(LazyGroup):
    """`mlctl train SPEC` submits; `mlctl train VERB` manages. Anything not a verb is taken as a spec file."""

    def resolve_command(self, ctx, args):
        if args and args[0] not in self.list_commands(ctx) and (args[0] == "-" or not args[0].startswith("-")):
            if looks_like_spec(args[0]):  # "-": the spec on stdin
                return "submit", self.get_command(ctx, "submit"), args
        return super().resolve_command(ctx, args)


group = TrainGroup(
    name="train", lazy=VERBS, context_settings=CONTEXT_SETTINGS, params=_option_params(),
    help="""Submit distributed TensorFlow/PyTorch training and manage your jobs.

    \b
    mlctl train 3dgan.yaml --cluster gcp --follow
    mlctl train list
    mlctl train logs 3dgan -f""",
    short_help="Submit distributed training jobs from a short spec and follow them.",
)
