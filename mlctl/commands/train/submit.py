"""mlctl train SPEC: check, render and submit a job spec; optionally wait for it or follow it.

This module imports no click: `command` (the click command) is built on first use (PEP 562), so main.py's
fast path can parse a plain `mlctl train SPEC [flags]` with parse_fast() and call run() directly. Both
parsers read the same flags; a test runs each case through both and compares output and exit code.
"""

from __future__ import annotations

from typing import NamedTuple

DRY_RUN = ("none", "client", "server")


class Options(NamedTuple):
    spec: str
    sets: tuple[str, ...] = ()
    check: bool = False
    dry_run: str = "none"
    wait: bool = False
    follow: bool = False
    timeout: float | None = None
    output: str = "table"


def run(f, opts: Options) -> None:
    from mlctl.commands.train import preflight
    from mlctl.commands.train.common import jobs_for, read_spec_text, target, user_or_placeholder

    text, filename = read_spec_text(opts.spec)
    cluster = f.platform.cluster(f.config.get("cluster"))
    if opts.dry_run != "client":
        preflight.connect_ahead(f, cluster["name"])  # the handshakes overlap what follows
    from mlctl.jobs.check import check_fit
    from mlctl.jobs.render import render
    from mlctl.jobs.spec import load_spec
    from mlctl.storage.layout import new_run_id

    spec = load_spec(text, filename, opts.sets, cluster=cluster["name"])
    # Capacity first: it needs no server, so an impossible request fails before any login or request.
    for warning in check_fit(spec, cluster):
        f.io.warn(warning)
    run_id = new_run_id()  # a job submitted again writes beside its last run (docs/artifacts.md)
    if opts.dry_run == "client":
        from mlctl.output import to_yaml

        t = target(f, cluster["name"], user=user_or_placeholder(f))
        for obj in render(spec, cluster, user=t.user, namespace=t.namespace, s3=f.platform.section("s3"),
                          run=run_id):
            f.io.stdout.write("---\n" + to_yaml(obj))
        return
    t = target(f, cluster["name"])
    jobs = jobs_for(f, t)
    # The policy, quota, PVCs and free room, read at once; nothing is created before the policy allowed it
    # (a deny is exit 5, no answer exit 7).
    decision, fit = preflight.run_checks(f, spec, cluster, t, jobs, "train",
                                         skip=preflight.skip_checks(f, opts.check))
    if fit is not None and fit.ok is False:
        f.io.warn(f"{spec.name} will wait on {cluster['name']}: {fit.why}")
    if opts.check:
        f.io.note(f"{spec.name} fits cluster {cluster['name']} and the quota of namespace {t.namespace}")
        return
    preflight.submit(f, spec, cluster, t, jobs, decision, dry_run=opts.dry_run, output=opts.output,
                     follow=opts.follow, wait=opts.wait, timeout=opts.timeout, command="train", run=run_id)


def looks_like_spec(arg: str) -> bool:
    """What `mlctl train ARG` takes as a spec file rather than a verb (the group and parse_fast agree)."""
    return arg.endswith((".yaml", ".yml", ".json")) or "/" in arg or arg == "-"


# The flags parse_fast() knows: global ones (before or after SPEC) and submit's own (after SPEC only, as in
# click, where the group parses what comes before the spec). Anything else goes to click.
_GLOBAL_VALUE = {"--platform": "platform", "--cluster": "cluster", "-n": "namespace", "--namespace": "namespace",
                 "-o": "output", "--output": "output"}
_GLOBAL_FLAG = {"--no-color": "no_color", "-y": "yes", "--yes": "yes"}
_OWN_FLAG = {"--check": "check", "--wait": "wait", "--follow": "follow", "-f": "follow"}
_OWN_VALUE = ("--set", "--dry-run", "--timeout")


def parse_fast(args: list[str]) -> tuple[dict, Options] | None:
    """`train SPEC [flags]` (args after "train") as (global flags, Options) without click, or None for
    anything it does not read exactly as click would (help, -v/--debug, an unknown or repeated-short form, a
    bad value, a second argument), which the full command tree then answers with its own message."""
    from mlctl.formats import OUTPUT_FORMATS

    flags: dict = {}
    own: dict = {}
    sets: list[str] = []
    spec = None
    rest = iter(args)
    for arg in rest:
        if not arg.startswith("-") or arg == "-":
            if spec is not None or not looks_like_spec(arg):
                return None
            spec = arg
            continue
        name, sep, value = arg.partition("=")
        if not name.startswith("--"):
            if sep:  # -n=ns: click reads the value "=ns"
                return None
        if name in _GLOBAL_FLAG or name in _OWN_FLAG:
            if sep:
                return None
            if name in _OWN_FLAG:
                if spec is None:
                    return None
                own[_OWN_FLAG[name]] = True
            else:
                flags[_GLOBAL_FLAG[name]] = True
            continue
        if name not in _GLOBAL_VALUE and name not in _OWN_VALUE:
            return None
        if not sep:
            value = next(rest, None)
            if value is None or value.startswith("-"):
                return None
        if name in _GLOBAL_VALUE:
            if name in ("-o", "--output") and value not in OUTPUT_FORMATS:
                return None
            flags[_GLOBAL_VALUE[name]] = value
            continue
        if spec is None:
            return None
        if name == "--set":
            sets.append(value)
        elif name == "--dry-run":
            if value not in DRY_RUN:
                return None
            own["dry_run"] = value
        else:
            try:
                own["timeout"] = float(value)
            except ValueError:
                return None
    if spec is None:
        return None
    return flags, Options(spec=spec, sets=tuple(sets), **own)


HELP = """Submit a job spec (same as 'mlctl train SPEC').

    \b
    mlctl train 3dgan.yaml --cluster gcp --follow
    mlctl train 3dgan.yaml --set workers=2 --set resources.gpus=1 --check
    """


def _build_command():
    import click

    from mlctl.cli import mlctl_command

    @mlctl_command("submit", help=HELP)
    @click.argument("spec")
    @click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a spec field (repeatable).")
    @click.option("--check", is_flag=True, help="Only check that the job fits the pool and your quota.")
    @click.option("--dry-run", type=click.Choice(DRY_RUN), default="none", show_default=True,
                  help="client: print the objects; server: let the API server validate them without saving.")
    @click.option("--wait", is_flag=True, help="Wait until the job succeeds or fails.")
    @click.option("--follow", "-f", is_flag=True, help="Show live status, then stream the lead replica's logs.")
    @click.option("--timeout", type=float, help="Give up waiting after this many seconds (exit 7).")
    @click.pass_obj
    def command(f, spec, sets, check, dry_run, wait, follow, timeout):
        run(f, Options(spec=spec, sets=tuple(sets), check=check, dry_run=dry_run, wait=wait, follow=follow,
                       timeout=timeout, output=f.output))

    return command


def __getattr__(name: str):
    if name != "command":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    command = globals()["command"] = _build_command()
    return command
