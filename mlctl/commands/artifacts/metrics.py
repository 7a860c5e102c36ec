"""mlctl artifacts metrics JOB [--run R] [--follow]: a run's per-epoch metrics (metrics.jsonl) as a table and
a text chart of each loss; --follow polls until the job ends."""

from __future__ import annotations

import json
from dataclasses import dataclass

import click

from mlctl.cli import mlctl_command
from mlctl.commands.artifacts.common import run_option, storage_of, user_option

METRICS_FILE = "metrics.jsonl"
POLL_SECONDS = 2.0


@dataclass
class Options:
    job: str
    run: str | None = None
    follow: bool = False
    interval: float = POLL_SECONDS
    output: str = "table"
    owner: str | None = None


def parse_metrics(text: str) -> list[dict]:
    """One object per line; lines that are not JSON objects with an epoch are skipped (a writer may be
    rewriting the file)."""
    rows = []
    for line in text.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("epoch"), int):
            rows.append(doc)
    return rows


def metric_names(rows: list[dict]) -> list[str]:
    """Numeric keys other than epoch, in first-seen order."""
    names: dict[str, None] = {}
    for r in rows:
        for k, v in r.items():
            if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool):
                names.setdefault(k)
    return list(names)


def losses(names: list[str]) -> list[str]:
    return [n for n in names if "loss" in n.lower()] or [n for n in names if n != "time"]


def render_table(f, rows: list[dict], names: list[str], fmt: str) -> None:
    from mlctl.output import Column, print_list

    columns = [Column("epoch", lambda r: r["epoch"], style="bold")]
    columns += [Column(n, (lambda r, n=n: _fmt(r.get(n)))) for n in names]
    print_list(f.io, rows, columns, fmt, name=lambda r: f"epoch/{r['epoch']}", empty="No metrics yet.")


def _fmt(value) -> str | None:
    if isinstance(value, float):
        return f"{value:.4f}"
    return None if value is None else str(value)


def render_charts(f, rows: list[dict], names: list[str]) -> None:
    from mlctl.output.chart import line_chart

    for name in losses(names):
        f.io.out("")
        f.io.out(line_chart(name, [r.get(name) for r in rows]))


def _job_state(f, job: str) -> tuple[str | None, str | None]:
    """(state, run id from the job's annotation) of the job on the command's cluster; (None, None) when it
    is not there (deleted, or its TTL passed)."""
    from mlctl.errors import NotFound
    from mlctl.kube.jobs import Jobs, state
    from mlctl.tenancy import user_namespace

    cluster = f.cluster_name()
    storage = f.storage()
    namespace = f.config.get("namespace") or user_namespace(storage.user)
    try:
        obj = Jobs(f.kube(cluster), namespace, cluster).get(job)
    except NotFound:
        return None, None
    return state(obj), ((obj.get("metadata") or {}).get("annotations") or {}).get("mlctl.io/run")


def run(f, opts: Options) -> None:
    from mlctl.storage import layout

    job = layout.check_job(opts.job)
    storage = storage_of(f, opts.owner)
    if not opts.follow:
        run_id = storage.pick_run(job, opts.run)
        rows = parse_metrics(storage.read(storage.run_prefix(job, run_id) + METRICS_FILE,
                                          f"reading {METRICS_FILE} of job {job}").decode(errors="replace"))
        show(f, job, run_id, rows, opts.output)
        return
    follow(f, opts, job, storage)


def show(f, job: str, run_id: str, rows: list[dict], fmt: str) -> None:
    names = metric_names(rows)
    if fmt in ("json", "yaml"):
        from mlctl.output import print_object

        print_object(f.io, rows, fmt)
        return
    f.io.note(f"job {job}, run {run_id}: {len(rows)} epoch(s)")
    render_table(f, rows, names, fmt)
    if rows and fmt in ("table", "wide"):
        render_charts(f, rows, names)


def follow(f, opts: Options, job: str, storage) -> None:
    """Poll metrics.jsonl; print each new epoch as it appears (stderr), stop when the job has ended."""
    import threading

    from mlctl.errors import NotFound

    stop = threading.Event()
    run_id = opts.run
    seen = 0
    rows: list[dict] = []
    while True:
        state, annotated = _job_state(f, job)
        run_id = run_id or annotated
        if run_id is None:
            runs = storage.runs(job)
            run_id = runs[-1] if runs else None
        if run_id is not None:
            try:
                text = storage.read(storage.run_prefix(job, run_id) + METRICS_FILE,
                                    f"reading {METRICS_FILE} of job {job}").decode(errors="replace")
                rows = parse_metrics(text)
            except NotFound:
                rows = []
            for r in rows[seen:]:
                f.io.note(f"{job} epoch {r['epoch']}: " + " ".join(
                    f"{k}={_fmt(v)}" for k, v in r.items() if k != "epoch"))
            seen = max(seen, len(rows))
        if state in ("Succeeded", "Failed") or (state is None and run_id is not None):
            if state:
                f.io.note(f"job {job} {state.lower()}")
            break
        if state is None and run_id is None:
            raise layout_no_runs(job)
        stop.wait(opts.interval)  # the poll interval: S3 has no change notification here
    show(f, job, run_id, rows, opts.output)


def layout_no_runs(job: str):
    from mlctl.storage import layout

    return layout.no_runs(job)


@mlctl_command("metrics")
@click.argument("job")
@run_option
@user_option
@click.option("--follow", "-f", is_flag=True, help="Print new epochs as they appear until the job ends.")
@click.pass_obj
def command(f, job, run_id, owner, follow):
    """Show a run's per-epoch metrics as a table and a chart of each loss.

    Reads metrics.jsonl of the run (one JSON object per epoch, as the 3dgan trainer writes it).

    \b
    mlctl artifacts metrics gan3d
    mlctl artifacts metrics gan3d --follow      until the job succeeds or fails
    """
    run(f, Options(job=job, run=run_id, follow=follow, output=f.output, owner=owner))
