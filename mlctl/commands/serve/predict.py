"""mlctl serve predict NAME --data FILE|- [--protocol v1|v2]: one request through the platform's gateway
with a token for the cluster's audience; the model's answer on stdout, the latency on stderr with -v."""

from __future__ import annotations

from dataclasses import dataclass

import click

from mlctl.cli import mlctl_command


@dataclass
class Options:
    name: str
    data: str
    protocol: str = "v1"
    verbose: int = 0


def read_data(path: str, stdin) -> tuple[bytes, str]:
    from mlctl.errors import NotFound, UsageError

    if path == "-":
        text = stdin.read()
        return (text.encode() if isinstance(text, str) else text), "<stdin>"
    try:
        with open(path, "rb") as fh:
            return fh.read(), path
    except FileNotFoundError:
        raise NotFound(f"data file {path} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not a data file") from None
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None


def prepare(f, name: str, data: str, protocol: str):
    """(target, gateway path, body): the request checked and the service found, before anything is sent."""
    from mlctl.commands.serve.common import get_service, target
    from mlctl.serve.protocol import check_body, encode, gateway_path, parse_body

    raw, where = read_data(data, f.io.stdin)
    body = parse_body(raw, where)
    check_body(body, protocol, where)
    t = target(f)
    get_service(f, t, name)
    return t, gateway_path(t.namespace, name, protocol), encode(body)


def send(gateway, path: str, body: bytes, label: str):
    from mlctl.commands.serve.common import answer_error, connection_error

    try:
        answer = gateway.post(path, body)
    except OSError as e:
        raise connection_error(e, gateway.url) from None
    if answer.status >= 400:
        raise answer_error(answer, label, "the gateway" if answer.status in (401, 403) else "the service")
    return answer


def run(f, opts: Options) -> None:
    from mlctl.commands.serve.common import gateway_for
    from mlctl.output import print_object

    t, path, body = prepare(f, opts.name, opts.data, opts.protocol)
    gateway = gateway_for(f, t.cluster)
    try:
        answer = send(gateway, path, body, f"inferenceservice/{opts.name}")
    finally:
        gateway.close()
    if opts.verbose:
        f.io.err(f"POST {path}: HTTP {answer.status}, {len(answer.body)} bytes in {answer.seconds * 1000:.1f} ms")
    if f.output == "yaml":
        import json

        print_object(f.io, json.loads(answer.body), "yaml")
    else:
        out = f.io.stdout
        text = answer.body.decode(errors="replace")
        out.write(text if text.endswith("\n") else text + "\n")


@mlctl_command("predict")
@click.argument("name")
@click.option("--data", required=True, metavar="FILE|-", help="The request body (JSON); - reads stdin.")
@click.option("--protocol", type=click.Choice(["v1", "v2"]), default="v1", show_default=True,
              help="KServe's v1 (:predict) or the Open Inference Protocol v2 (/infer).")
@click.pass_obj
def command(f, name, data, protocol):
    """Send one inference request through the gateway.

    \b
    mlctl serve predict gen3d --data request.json
    mlctl serve predict gen3d --data v2.json --protocol v2 -v
    """
    run(f, Options(name=name, data=data, protocol=protocol, verbose=f.config.get("verbose") or 0))
