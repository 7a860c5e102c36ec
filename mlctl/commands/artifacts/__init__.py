"""mlctl artifacts: what jobs wrote to S3 (s3://<outputs>/<user>/<job>/<run>/...): list, fetch, upload, share, delete."""

from mlctl.cli import lazy_group

group = lazy_group("artifacts", {
    "ls": ("mlctl.commands.artifacts.ls:command", "List jobs with outputs, a run's files, or a job's runs."),
    "list": ("mlctl.commands.artifacts.ls:alias", "Alias of ls."),
    "get": ("mlctl.commands.artifacts.get:command", "Download a run's files (resumes an interrupted download)."),
    "put": ("mlctl.commands.artifacts.put:command", "Upload files into a job's run."),
    "url": ("mlctl.commands.artifacts.url:command", "Print a presigned URL that fetches one file without credentials."),
    "rm": ("mlctl.commands.artifacts.rm:command", "Delete files, a run, or every run of a job."),
    "metrics": ("mlctl.commands.artifacts.metrics:command",
                "Show a run's per-epoch metrics as a table and a chart of each loss."),
}, help="Job outputs in S3: list, download, upload, share and delete; per-epoch metrics.")
