"""Printing lists and objects in the format -o asks for.

table: rich on a terminal (colour, relative ages), plain tabulate columns when piped (absolute times);
wide: table plus extra columns; json/yaml: complete, machine-readable; name: kind/name per line.
Lists print as a JSON/YAML array of items; an empty list prints a note on stderr (tables) and exits 0.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from mlctl.io import IO


class Column(NamedTuple):  # not a dataclass: every list and render loads this module (docs/cli.md)
    header: str
    value: Callable[[Any], Any]
    wide: bool = False  # shown only with -o wide
    style: str | None = None  # rich style on a terminal


def age(ts: dt.datetime | str | None, now: dt.datetime | None = None) -> str:
    """Relative age like kubectl: 45s, 12m, 3h, 5d."""
    if ts is None:
        return "<unknown>"
    if isinstance(ts, str):
        ts = parse_time(ts)
    now = now or dt.datetime.now(dt.UTC)
    seconds = max(0, int((now - ts).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "m" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_time(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _cell(value: Any, tty: bool) -> str:
    if value is None:
        return "<none>" if not tty else "-"
    if isinstance(value, dt.datetime):
        return age(value) if tty else value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or ("-" if tty else "<none>")
    return str(value)


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)


def to_yaml(data: Any) -> str:
    import yaml

    return yaml.safe_dump(json.loads(to_json(data)), sort_keys=False, default_flow_style=False)


def stream_lines(io: IO, lines, stopped: str) -> None:
    """Write log lines as they come (flushed: `logs -f` is read live); Ctrl-C notes `stopped` (what keeps
    running) and goes on as an interrupt."""
    try:
        for line in lines:
            io.stdout.write(line)
            io.stdout.flush()
    except KeyboardInterrupt:
        io.note(stopped)
        raise


def print_object(io: IO, obj: Any, fmt: str, *, name: str | None = None,
                 render: Callable[[IO, Any], None] | None = None) -> None:
    """One object: json/yaml in full; name as kind/name; table/wide through render (or yaml)."""
    if fmt == "json":
        io.out(to_json(obj))
    elif fmt == "yaml":
        io.stdout.write(to_yaml(obj))
    elif fmt == "name":
        io.out(name or str(obj))
    elif render is not None:
        render(io, obj)
    else:
        io.stdout.write(to_yaml(obj))


def print_list(
    io: IO,
    items: Sequence[Any],
    columns: Sequence[Column],
    fmt: str,
    *,
    raw: Callable[[Any], Any] = lambda item: item,
    name: Callable[[Any], str] | None = None,
    empty: str = "No resources found.",
    title: str | None = None,
) -> None:
    if fmt == "json":
        io.out(to_json([raw(i) for i in items]))
        return
    if fmt == "yaml":
        io.stdout.write(to_yaml([raw(i) for i in items]))
        return
    if not items:
        io.note(empty)
        return
    if fmt == "name":
        for item in items:
            io.out(name(item) if name else str(columns[0].value(item)))
        return
    shown = [c for c in columns if fmt == "wide" or not c.wide]
    if io.stdout_tty:
        _rich_table(io, items, shown, title)
    else:
        from tabulate import tabulate

        rows = [[_cell(c.value(i), False) for c in shown] for i in items]
        io.out(tabulate(rows, headers=[c.header.upper() for c in shown], tablefmt="plain",
                        disable_numparse=True))


def _rich_table(io: IO, items: Sequence[Any], columns: Sequence[Column], title: str | None) -> None:
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold" if io.color else None, title=title,
                  show_edge=False)
    for c in columns:
        table.add_column(c.header.upper(), style=c.style if io.color else None, no_wrap=True)
    for item in items:
        table.add_row(*[_cell(c.value(item), True) for c in columns])
    io.console.print(table)
