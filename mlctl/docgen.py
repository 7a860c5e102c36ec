"""Generates the committed completions/ and man/ files from the command tree.

`python -m mlctl.docgen` rewrites them; tests check that the committed files equal what this produces.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mlctl import __version__

REPO = Path(__file__).resolve().parent.parent


def walk(cmd: click.Command, path: list[str]):
    """Yield (path, command) for cmd and every visible subcommand, depth first, sorted."""
    yield path, cmd
    if isinstance(cmd, click.Group):
        ctx = click.Context(cmd, info_name=path[-1], **(cmd.context_settings or {}))
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            yield from walk(sub, [*path, name])


def _roff(text: str) -> str:
    out = []
    for line in text.replace("\\", "\\\\").splitlines():
        if line.startswith((".", "'")):
            line = "\\&" + line
        out.append(line.replace("-", "\\-"))
    return "\n".join(out)


def man_page(path: list[str], cmd: click.Command) -> str:
    name = "-".join(path)
    ctx = click.Context(cmd, info_name=" ".join(path), **(cmd.context_settings or {}))
    help_text = (cmd.help or "").replace("\b\n", "")
    summary = cmd.get_short_help_str(200)
    usage = " ".join(cmd.collect_usage_pieces(ctx))
    lines = [
        f'.TH "{name.upper()}" "1" "" "mlctl {__version__}" "mlctl manual"',
        ".SH NAME",
        f"{_roff(name)} \\- {_roff(summary)}",
        ".SH SYNOPSIS",
        f".B {_roff(' '.join(path))}",
        _roff(usage),
        ".SH DESCRIPTION",
        ".nf",
        _roff(help_text.strip()),
        ".fi",
    ]
    options = [p for p in cmd.get_params(ctx) if isinstance(p, click.Option) and not p.hidden]
    if options:
        lines.append(".SH OPTIONS")
        for opt in options:
            record = opt.get_help_record(ctx)
            if record:
                lines += [".TP", f".B {_roff(record[0])}", _roff(record[1] or "")]
    if isinstance(cmd, click.Group):
        lines.append(".SH COMMANDS")
        for sub_name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, sub_name)
            if sub is None or sub.hidden:
                continue
            lines += [".TP", f".B {_roff(sub_name)}", _roff(sub.get_short_help_str(200)),
                      f"See \\fB{_roff('-'.join([*path, sub_name]))}\\fR(1)."]
    lines += [".SH EXIT STATUS",
              "0 ok, 1 unexpected failure, 2 invalid input or usage, 3 not logged in or authentication failed, "
              "4 not found, 5 forbidden, 6 quota or capacity exceeded, 7 server unavailable or timed out, "
              "130 interrupted."]
    if len(path) > 1:
        lines += [".SH SEE ALSO", f"\\fB{_roff('-'.join(path[:-1]))}\\fR(1)"]
    return "\n".join(lines) + "\n"


# The widths click's help takes (the terminal's columns, at most the context's max_content_width, minus 2)
# when stdout is piped (80 columns) and on a terminal of 100 columns or more: `mlctl --help` is answered from
# these renderings without loading click (main._fast).
HELP_WIDTHS = (78, 98)


def root_help(width: int) -> str:
    """What `mlctl --help` prints at a formatter width."""
    import io

    import click.formatting

    from mlctl.io import IO
    from mlctl.main import run

    saved = click.formatting.FORCED_WIDTH
    click.formatting.FORCED_WIDTH = width
    try:
        out = IO.test()
        code = run(["--help"], io=out)
    finally:
        click.formatting.FORCED_WIDTH = saved
    assert code == 0 and isinstance(out.stdout, io.StringIO)
    return out.stdout.getvalue()


def generate() -> dict[str, str]:
    """relative path -> content of every generated file."""
    from mlctl.cli import cli
    from mlctl.commands.completion import SHELLS, script

    files = {f"mlctl/data/help/{w}.txt": root_help(w) for w in HELP_WIDTHS}
    for shell in SHELLS:
        files[f"completions/mlctl.{shell}"] = script(shell)
    for path, cmd in walk(cli, ["mlctl"]):
        files[f"man/{'-'.join(path)}.1"] = man_page(path, cmd)
    return files


def main(argv: list[str]) -> int:
    check = "--check" in argv
    files = generate()
    stale = []
    for rel, content in files.items():
        target = REPO / rel
        if target.exists() and target.read_text() == content:
            continue
        stale.append(rel)
        if not check:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
    for folder in ("man",):
        for old in (REPO / folder).glob("*.1"):
            if f"{folder}/{old.name}" not in files:
                stale.append(f"{folder}/{old.name}")
                if not check:
                    old.unlink()
    if check and stale:
        print("stale generated files: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
